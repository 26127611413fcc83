"""Tests for the bundled instrument recordings (`ddsp.bundled`, `ddsp/assets/`).

Every file is read back with soundfile and checked against measurements made here: format, rate,
channels, level, duration, and, for the single notes, the fundamental measured by an independent
numpy estimator (harmonic-sum spectrum + interpolated harmonic peaks) against the pitch in the name.
"""
import os
import re

import numpy as np
import pytest
import soundfile as sf

from ddsp import bundled

SR = 16000
NOTE_RE = re.compile(r'^([a-z]+)_note_([A-G]s?)(-?\d)_(\d+)\.flac$')
PITCH_CLASS = {'C': 0, 'Cs': 1, 'D': 2, 'Ds': 3, 'E': 4, 'F': 5, 'Fs': 6, 'G': 7, 'Gs': 8, 'A': 9,
               'As': 10, 'B': 11}

# The assets the tests and the demo rely on, with their allowed durations in seconds.
EXPECTED = {
    'violin_phrase.flac': (50.0, 70.0),
    'violin_phrase_eval.flac': (10.0, 15.0),
    'voice_like_phrase.flac': (6.0, 10.0),
    'violin_note_A4_69.flac': (1.5, 1.5),
    'trumpet_note_C5_72.flac': (1.5, 1.5),
    'flute_note_G5_79.flac': (1.5, 1.5),
    'cello_note_C3_48.flac': (1.5, 1.5),
    'clarinet_note_D4_62.flac': (1.5, 1.5),
}


def midi_to_hz(midi):
  return 440.0 * 2.0 ** ((np.asarray(midi, np.float64) - 69.0) / 12.0)


def measure_f0(x, sr, fmin=50.0, fmax=2000.0):
  """Fundamental (Hz) of a steady harmonic tone x [n_samples], numpy only.

  1. Coarse (McLeod pitch method): the normalised square difference function
     NSDF(tau) = 2 r(tau) / m(tau), r the autocorrelation (via FFT) and m(tau) the summed energy of the
     two overlapping parts; the period is the first local maximum reaching 0.9 of the highest one in
     the lag range [sr/fmax, sr/fmin], refined by parabolic interpolation.
  2. Fine: in the Hann-windowed spectrum zero-padded 8x, parabolic interpolation of the log-magnitude
     peak near each harmonic k f (k up to 12, below 7 kHz, skipping harmonics 40 dB under the
     strongest), and the power-weighted mean of f_k / k.
  """
  x = np.asarray(x, np.float64)
  x = x - x.mean()
  n = len(x)
  min_lag, max_lag = int(sr / fmax), int(np.ceil(sr / fmin))
  if n < 2 * max_lag:
    raise ValueError('Need at least %d samples to measure down to %g Hz, got %d.' % (2 * max_lag, fmin,
                                                                                    n))
  spec = np.fft.rfft(x, 2 * n)
  r = np.fft.irfft(spec * np.conj(spec))[:max_lag + 2]
  cs = np.concatenate([[0.0], np.cumsum(x ** 2)])
  lags = np.arange(max_lag + 2)
  m = cs[n - lags] + (cs[n] - cs[lags])
  nsdf = 2 * r / np.maximum(m, 1e-12)
  inner = np.arange(max(min_lag, 1), max_lag + 1)
  peaks = inner[(nsdf[inner] > nsdf[inner - 1]) & (nsdf[inner] >= nsdf[inner + 1]) &
                (nsdf[inner] > 0)]
  if not peaks.size:
    raise ValueError('No periodicity between %g and %g Hz.' % (fmin, fmax))
  tau = peaks[np.nonzero(nsdf[peaks] >= 0.9 * nsdf[peaks].max())[0][0]]
  a, b, c = nsdf[tau - 1:tau + 2]
  curvature = a - 2 * b + c
  f0 = sr / (tau + (0.5 * (a - c) / curvature if curvature < 0 else 0.0))
  n_fft = 1 << int(np.ceil(np.log2(n * 8)))
  mag = np.abs(np.fft.rfft(x * np.hanning(n), n_fft))
  logmag = np.log(mag + 1e-12 * mag.max())
  top = 0.0
  estimates, weights = [], []
  for k in range(1, 13):
    if k * f0 > min(7000.0, 0.45 * sr):
      break
    lo, hi = int((k - 0.3) * f0 * n_fft / sr), int((k + 0.3) * f0 * n_fft / sr)
    j = lo + int(np.argmax(mag[lo:hi]))
    top = max(top, mag[j])
    if mag[j] < 0.01 * top:
      continue
    a, b, c = logmag[j - 1:j + 2]
    curvature = a - 2 * b + c
    delta = 0.5 * (a - c) / curvature if curvature < 0 else 0.0
    estimates.append((j + delta) * sr / n_fft / k)
    weights.append(mag[j] ** 2)
    f0 = float(np.average(estimates, weights=weights))
  return f0


def cents(f, ref):
  return 1200.0 * np.log2(f / ref)


def read(name):
  audio, sr = sf.read(bundled.asset_path(name), dtype='float64')
  return audio, sr


# --- the estimator itself, against closed-form synthetic tones --------------------------------------
@pytest.mark.parametrize('f0,amps', [
    (131.7, [1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2, 0.2, 0.1]),  # Rich, low.
    (293.66 * 2 ** (30 / 1200), [1.0, 0.05, 0.6, 0.03, 0.4, 0.02, 0.25]),  # Odd harmonics, 30 c sharp.
    (446.0, [0.3, 1.0, 0.7, 0.4]),  # Second harmonic strongest.
    (293.0, [0.5, 0.007, 0.3, 0.009, 1.0, 0.06, 0.8, 0.2]),  # Clarinet-like: fifth strongest.
    (790.0, [1.0, 0.1, 0.03]),  # Nearly sinusoidal, high.
])
def test_measure_f0_on_synthetic_tones(f0, amps):
  t = np.arange(int(0.85 * SR)) / SR
  rng = np.random.RandomState(0)
  x = sum(a * np.sin(2 * np.pi * (k + 1) * f0 * t + rng.uniform(0, 6.3)) for k, a in enumerate(amps))
  x = x + 0.01 * rng.randn(len(t))
  assert abs(cents(measure_f0(x, SR), f0)) < 1.0


def test_measure_f0_detects_a_mistuned_note():
  # A tone 30 cents sharp of A4 must read about 30 cents, i.e. fail the 15-cent check below.
  t = np.arange(int(0.85 * SR)) / SR
  f = 440.0 * 2 ** (30 / 1200)
  x = np.sin(2 * np.pi * f * t) + 0.5 * np.sin(4 * np.pi * f * t)
  assert abs(cents(measure_f0(x, SR), 440.0) - 30.0) < 1.0


# --- the asset index ---------------------------------------------------------------------------------
def test_list_assets_has_expected_files():
  listed = bundled.list_assets()
  assert listed == sorted(listed)
  missing = sorted(set(EXPECTED) - set(listed))
  assert not missing, 'missing assets: %s' % missing
  for name in listed:
    assert os.path.isfile(bundled.asset_path(name))
    assert os.path.dirname(bundled.asset_path(name)) == os.path.join(
        os.path.dirname(os.path.abspath(bundled.__file__)), 'assets')
  assert 'README.md' not in listed


def test_asset_path_accepts_stem_without_extension():
  assert bundled.asset_path('violin_note_A4_69') == bundled.asset_path('violin_note_A4_69.flac')


def test_asset_path_unknown_name_lists_available():
  with pytest.raises(FileNotFoundError) as err:
    bundled.asset_path('no_such_sound.flac')
  assert 'no_such_sound' in str(err.value)
  assert 'violin_phrase.flac' in str(err.value)


@pytest.mark.parametrize('bad', ['', '../setup.py', 'assets/violin_phrase.flac', '..'])
def test_asset_path_rejects_paths(bad):
  with pytest.raises(ValueError, match='plain file name'):
    bundled.asset_path(bad)


def test_asset_path_rejects_non_string():
  with pytest.raises(TypeError, match='str'):
    bundled.asset_path(3)


def test_readme_lists_every_asset():
  with open(os.path.join(bundled.ASSETS_DIR, 'README.md'), encoding='utf-8') as f:
    readme = f.read()
  for name in bundled.list_assets():
    assert name in readme, '%s is not documented in ddsp/assets/README.md' % name
  assert 'FluidR3' in readme and 'MIT' in readme


def test_total_size_is_small():
  total = sum(os.path.getsize(bundled.asset_path(n)) for n in bundled.list_assets())
  assert total < 4.5 * 1024 * 1024  # 1.8 MB at 16 kHz + the two 48 kHz violin phrases (2 MB)


# --- every file -------------------------------------------------------------------------------------
@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_asset_format_and_level(name):
  info = sf.info(bundled.asset_path(name))
  assert (info.samplerate, info.channels) == (SR, 1)
  assert (info.format, info.subtype) == ('FLAC', 'PCM_16')
  audio, sr = read(name)
  assert sr == SR and audio.ndim == 1
  assert np.all(np.isfinite(audio))
  peak = np.max(np.abs(audio))
  assert 20 * np.log10(peak) == pytest.approx(-1.0, abs=0.1)  # Peak-normalised to -1 dBFS.
  assert np.mean(np.abs(audio) > 0.99) == 0.0  # Nothing at full scale: no clipping.
  rms_db = 10 * np.log10(np.mean(audio ** 2))
  assert rms_db > -30.0  # Not silent.
  lo, hi = EXPECTED[name]
  assert lo - 1e-9 <= len(audio) / SR <= hi + 1e-9


@pytest.mark.parametrize('name', sorted(n for n in EXPECTED if '_note_' in n))
def test_note_pitch_matches_name(name):
  match = NOTE_RE.match(name)
  assert match, name
  _, pitch_class, octave, midi = match.groups()
  midi = int(midi)
  assert 12 * (int(octave) + 1) + PITCH_CLASS[pitch_class] == midi, 'name and MIDI number disagree'
  audio, _ = read(name)
  assert len(audio) == int(1.5 * SR)
  # Steady part: after the attack, before the release.
  f0 = measure_f0(audio[int(0.3 * SR):int(1.15 * SR)], SR)
  error = cents(f0, midi_to_hz(midi))
  assert abs(error) < 15.0, '%s: measured %.2f Hz, %+.1f cents from MIDI %d' % (name, f0, error, midi)
  # The note sustains: the steady part keeps most of the energy of the first half second.
  env = np.sqrt(np.mean(audio[:int(1.2 * SR)].reshape(-1, SR // 10) ** 2, axis=1))
  assert env[3:11].min() > 0.2 * env.max()


def _frames_f0_and_level(audio, frame_s=0.1, hop_s=0.25):
  n, hop = int(frame_s * SR), int(hop_s * SR)
  starts = range(0, len(audio) - n, hop)
  level = np.array([10 * np.log10(np.mean(audio[s:s + n] ** 2) + 1e-12) for s in starts])
  f0 = np.array([measure_f0(audio[s:s + n], SR, fmin=100.0, fmax=1500.0) if lv > -35 else np.nan
                 for s, lv in zip(starts, level)])
  return f0, level


@pytest.mark.parametrize('name,low,high,min_span,min_dynamics_db', [
    ('violin_phrase.flac', 54.5, 88.5, 24, 8.0),
    ('violin_phrase_eval.flac', 54.5, 88.5, 12, 6.0),
    ('voice_like_phrase.flac', 52.0, 76.0, 7, 4.0),
])
def test_phrase_is_a_melody_in_range(name, low, high, min_span, min_dynamics_db):
  audio, _ = read(name)
  f0, level = _frames_f0_and_level(audio)
  midi = 69 + 12 * np.log2(f0[np.isfinite(f0)] / 440.0)
  assert len(midi) > 0.6 * len(f0)  # Mostly sounding.
  in_range = np.mean((midi > low) & (midi < high))
  assert in_range > 0.9, 'only %.0f%% of frames in MIDI %g-%g' % (100 * in_range, low, high)
  # A melody, not one held note: the central 90% of frame pitches spans several semitones.
  assert np.percentile(midi, 95) - np.percentile(midi, 5) >= min_span * 0.75
  # Dynamics: the sounding frames' levels vary (10th to 90th percentile).
  sounding = level[level > -35]
  assert np.percentile(sounding, 90) - np.percentile(sounding, 10) > min_dynamics_db


def test_violin_phrase_has_rests():
  audio, _ = read('violin_phrase.flac')
  win = SR // 20
  rms_db = 10 * np.log10(np.mean(audio[:len(audio) // win * win].reshape(-1, win) ** 2, axis=1)
                         + 1e-12)
  quiet = rms_db < -50.0
  # Count runs of at least 300 ms (6 windows) of near silence.
  runs, length = 0, 0
  for q in quiet:
    length = length + 1 if q else 0
    runs += length == 6
  assert runs >= 4
