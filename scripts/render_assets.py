r"""Renders the small bundled instrument recordings in `ddsp/assets/`.

The audio is synthesised from MIDI with FluidSynth and the General MIDI SoundFont FluidR3_GM (Frank Wen
and contributors, MIT licence), both as packaged by Debian:

  apt-get update && apt-get install -y fluidsynth fluid-soundfont-gm
  .venv/bin/python scripts/render_assets.py

These are generation-time tools only. The library, its tests and the demo read the committed FLAC files
and never need FluidSynth or the SoundFont.

What the script does, per asset:
  1. Composes the notes (a fixed-seed procedural melody for the violin phrases, a hand-written tune for
     the voice, one held note for each single-note file) and writes them as a Standard MIDI File. The
     MIDI bytes are written here directly (format 0, 1 tick = 1 ms), so no MIDI package is required.
  2. Renders the MIDI with `fluidsynth -R 0 -C 0` (reverb and chorus off: dry) to 32-bit float WAV at
     44.1 kHz, the rate the SoundFont's samples were recorded at.
  3. Mixes the stereo render to mono, resamples to 16 kHz (48 kHz for the `*_48k` phrases) with soxr
     (very high quality), trims the trailing release below -60 dB of the peak, fades the last 20 ms,
     peak-normalises to -1 dBFS and writes 16-bit FLAC atomically (temporary file + rename).
  4. Checks the written file: its rate, mono, peak below full scale, not silent and, for single notes, the
     measured fundamental (autocorrelation + harmonic peak refinement) within 15 cents of the nominal
     MIDI pitch. The measurements are printed.

Everything is deterministic: the same inputs give the same MIDI bytes and, with the same FluidSynth and
SoundFont versions, the same audio.
"""
import os
import shutil
import struct
import subprocess
import sys
import tempfile

from absl import app
from absl import flags
import numpy as np
import soundfile as sf
import soxr

FLAGS = flags.FLAGS

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

flags.DEFINE_string('output_dir', os.path.join(_REPO, 'ddsp', 'assets'),
                    'Folder the FLAC files are written to.')
flags.DEFINE_string('soundfont', '/usr/share/sounds/sf2/FluidR3_GM.sf2',
                    'Path of the FluidR3_GM SoundFont (Debian package fluid-soundfont-gm).')
flags.DEFINE_string('fluidsynth', 'fluidsynth', 'FluidSynth executable (Debian package fluidsynth).')
flags.DEFINE_integer('render_rate', 44100, 'Sample rate FluidSynth renders at before resampling.')
flags.DEFINE_integer('sample_rate', 16000, 'Sample rate of the written assets.')
flags.DEFINE_float('peak_db', -1.0, 'Peak level of every asset after normalisation, in dBFS.')
flags.DEFINE_list('only', [], 'Render only these assets (file names); all of them when empty.')
flags.DEFINE_string('keep_midi_dir', None, 'If set, the generated .mid files are also copied here.')

# General MIDI programs, 0-based (the number sent in the Program Change message).
PROGRAM_VIOLIN = 40
PROGRAM_CELLO = 42
PROGRAM_TRUMPET = 56
PROGRAM_VOICE_OOHS = 53
PROGRAM_CLARINET = 71
PROGRAM_FLUTE = 73

NOTE_NAMES = ('C', 'Cs', 'D', 'Ds', 'E', 'F', 'Fs', 'G', 'Gs', 'A', 'As', 'B')

# Pitch-bend range is the General MIDI default, +-2 semitones over +-8192.
_BEND_UNITS_PER_CENT = 8192.0 / 200.0


def note_name(midi):
  """Scientific pitch name with A4 = MIDI 69, e.g. 60 -> 'C4', 61 -> 'Cs4'."""
  return '%s%d' % (NOTE_NAMES[midi % 12], midi // 12 - 1)


def midi_to_hz(midi):
  return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


# ---------------------------------------------------------------------------------------------------
# Standard MIDI File writer.
# ---------------------------------------------------------------------------------------------------
class MidiTrack:
  """Collects channel-0 MIDI events with times in milliseconds and writes a format-0 SMF.

  Ties at the same millisecond are ordered: controllers and program changes, then note-offs, then
  note-ons, so that a legato note-off never cuts a note-on at the same tick.
  """

  _ORDER_SETUP, _ORDER_CONTROL, _ORDER_NOTE_OFF, _ORDER_NOTE_ON = 0, 1, 2, 3

  def __init__(self, program):
    self._events = []
    self._seq = 0
    self._add(0, self._ORDER_SETUP, bytes([0xC0, program]))
    # Volume, centre pan, full expression, no modulation wheel, reverb/chorus sends at 0 (dry).
    for cc, value in ((7, 100), (10, 64), (11, 127), (1, 0), (91, 0), (93, 0)):
      self._add(0, self._ORDER_SETUP, bytes([0xB0, cc, value]))
    self._add(0, self._ORDER_SETUP, bytes([0xE0, 0x00, 0x40]))  # Pitch bend centred.

  def _add(self, time_ms, order, data):
    if time_ms < 0:
      raise ValueError('MIDI event at negative time %r ms.' % time_ms)
    self._events.append((int(round(time_ms)), order, self._seq, data))
    self._seq += 1

  def note(self, start_ms, end_ms, pitch, velocity):
    if not 0 <= pitch <= 127 or not 1 <= velocity <= 127:
      raise ValueError('Bad note: pitch %r, velocity %r.' % (pitch, velocity))
    if end_ms <= start_ms:
      raise ValueError('Note %d ends (%r ms) before it starts (%r ms).' % (pitch, end_ms, start_ms))
    self._add(start_ms, self._ORDER_NOTE_ON, bytes([0x90, pitch, velocity]))
    self._add(end_ms, self._ORDER_NOTE_OFF, bytes([0x80, pitch, 0]))

  def control(self, time_ms, cc, value):
    self._add(time_ms, self._ORDER_CONTROL, bytes([0xB0, cc, int(np.clip(round(value), 0, 127))]))

  def pitch_bend_cents(self, time_ms, cents):
    value = int(np.clip(round(8192 + cents * _BEND_UNITS_PER_CENT), 0, 16383))
    self._add(time_ms, self._ORDER_CONTROL, bytes([0xE0, value & 0x7F, value >> 7]))

  def end_marker(self, time_ms):
    """A harmless event that keeps FluidSynth rendering (note releases) until `time_ms`."""
    self.control(time_ms, 11, 127)

  def to_bytes(self):
    ticks_per_beat, tempo_us = 500, 500000  # 1 tick = 1 ms.
    body = bytearray()
    body += _vlq(0) + b'\xff\x51\x03' + tempo_us.to_bytes(3, 'big')
    last = 0
    for time_ms, _, _, data in sorted(self._events):
      body += _vlq(time_ms - last) + data
      last = time_ms
    body += _vlq(0) + b'\xff\x2f\x00'
    header = b'MThd' + struct.pack('>IHHH', 6, 0, 1, ticks_per_beat)
    return header + b'MTrk' + struct.pack('>I', len(body)) + bytes(body)


def _vlq(value):
  """MIDI variable-length quantity."""
  if value < 0:
    raise ValueError('Negative MIDI delta time %d.' % value)
  out = [value & 0x7F]
  value >>= 7
  while value:
    out.append((value & 0x7F) | 0x80)
    value >>= 7
  return bytes(reversed(out))


# ---------------------------------------------------------------------------------------------------
# Expression helpers.
# ---------------------------------------------------------------------------------------------------
def add_vibrato(track, start_ms, end_ms, rng, depth_cents, rate_hz, onset_ms=220, ramp_ms=350):
  """Delayed pitch-bend vibrato over one note, then the bend is re-centred at the note's end."""
  track.pitch_bend_cents(start_ms, 0.0)
  t = start_ms + onset_ms
  phase = rng.uniform(0, 2 * np.pi)
  while t < end_ms - 30:
    ramp = min(1.0, (t - start_ms - onset_ms) / ramp_ms)
    cents = depth_cents * ramp * np.sin(2 * np.pi * rate_hz * (t - start_ms) / 1000.0 + phase)
    track.pitch_bend_cents(t, cents)
    t += 10
  track.pitch_bend_cents(end_ms, 0.0)


def add_expression(track, start_ms, end_ms, curve):
  """Writes CC11 every 20 ms from `curve(t_ms)` (values 0..127)."""
  t = start_ms
  while t <= end_ms:
    track.control(t, 11, curve(t))
    t += 20


# ---------------------------------------------------------------------------------------------------
# Compositions.
# ---------------------------------------------------------------------------------------------------
_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)  # Natural minor; the melody raises the 7th at cadences.


def _next_degree(rng, idx, centre, n):
  """One melodic move on the scale: mostly steps, some thirds, rare leaps, never a repeat.

  Moves towards the phrase's register `centre` are favoured in proportion to the distance from it,
  and moves that would leave the range [0, n) are excluded.
  """
  steps = np.array([-4, -3, -2, -1, 1, 2, 3, 4])
  p = np.array([.03, .06, .15, .26, .26, .15, .06, .03])
  p = p * (1.0 + 0.12 * np.maximum(0, np.sign(steps) * (centre - idx)))
  p = np.where((idx + steps >= 0) & (idx + steps < n), p, 0.0)
  return int(idx + rng.choice(steps, p=p / p.sum()))


def compose_violin(seed, seconds, tonic_pc, mode, low=55, high=88):
  """A procedural, scale-based solo violin line.

  Phrases of 6-14 beats with a random-walk melody (mostly steps, some thirds and the odd leap), mixed
  note values, slurred (legato, slightly overlapping) notes with a few detached ones, a dynamic level
  per phrase, CC11 hairpins over each phrase plus swells on long notes, delayed vibrato on notes of a
  beat or longer, and rests between phrases. Every phrase ends on a long tonic-chord tone.

  Returns (MidiTrack, list of (start_ms, end_ms, pitch, velocity)).
  """
  rng = np.random.RandomState(seed)
  scale = _MAJOR if mode == 'major' else _MINOR
  pitches = [p for p in range(low, high + 1) if (p - tonic_pc) % 12 in scale]
  tonic_chord = [i for i, p in enumerate(pitches) if (p - tonic_pc) % 12 in (scale[0], scale[2],
                                                                             scale[4])]
  track = MidiTrack(PROGRAM_VIOLIN)
  notes = []
  t_ms = 150.0
  end_target_ms = seconds * 1000.0
  idx = int(np.argmin([abs(p - 69) for p in pitches]))
  while t_ms < end_target_ms - 2500:
    beat_ms = rng.uniform(560, 720)
    remaining_beats = (end_target_ms - t_ms) / beat_ms
    phrase_beats = min(rng.uniform(6, 14), remaining_beats - 1.0)
    # Register drifts between phrases: the walk is pulled towards a per-phrase centre.
    centre = rng.randint(2, len(pitches) - 2)
    level = rng.uniform(58, 112)  # Phrase dynamic (velocity).
    phrase = []
    beats = 0.0
    while beats < phrase_beats - 1.5:
      dur = rng.choice([0.5, 0.5, 1.0, 1.0, 1.0, 1.5, 2.0, 0.75, 0.25, 3.0],
                       p=[.14, .14, .2, .14, .1, .1, .08, .04, .02, .04])
      if beats + dur > phrase_beats - 1.5:
        dur = max(0.5, phrase_beats - 1.5 - beats)
      phrase.append([idx, dur])
      beats += dur
      idx = _next_degree(rng, idx, centre, len(pitches))
    # Cadence: the nearest tonic-chord tone, held 2-3 beats.
    idx = min((i for i in tonic_chord if i != phrase[-1][0]), key=lambda i: abs(i - idx))
    phrase.append([idx, rng.choice([2.0, 2.5, 3.0])])
    n = len(phrase)
    phrase_start = t_ms
    phrase_len_ms = sum(d for _, d in phrase) * beat_ms
    # Hairpin over the phrase: crescendo to a peak somewhere in the middle, then diminuendo.
    peak_at = rng.uniform(0.35, 0.7)
    low_cc, high_cc = rng.uniform(55, 80), rng.uniform(105, 127)
    starts = []
    for k, (i, dur) in enumerate(phrase):
      pos = k / max(1, n - 1)
      velocity = level + 14 * np.sin(np.pi * pos) + rng.normal(0, 5)
      velocity = int(np.clip(velocity, 35, 122))
      start = t_ms
      length = dur * beat_ms
      detached = rng.rand() < 0.15 and k < n - 1
      # Slurred notes overlap the next one by 15 ms; a repeated pitch is re-struck without overlap
      # (its note-off would otherwise end the new note too).
      repeat_next = k < n - 1 and phrase[k + 1][0] == i
      end = start + (0.8 * length if detached else length + (0 if repeat_next else 15))
      if k == n - 1:
        end = start + length
      track.note(start, end, pitches[i], velocity)
      notes.append((start, end, pitches[i], velocity))
      starts.append((start, end, dur))
      t_ms += length
    phrase_end = t_ms

    def curve(t, s=phrase_start, total=phrase_len_ms, pk=peak_at, lo=low_cc, hi=high_cc, st=starts):
      x = (t - s) / total
      base = lo + (hi - lo) * (x / pk if x < pk else max(0.0, (1 - x) / (1 - pk)))
      # Messa di voce on notes of 1.5 beats or more: a swell in the middle of the note.
      for a, b, d in st:
        if d >= 1.5 and a <= t <= b:
          base += 18 * np.sin(np.pi * (t - a) / (b - a)) - 6
      return np.clip(base, 30, 127)

    add_expression(track, phrase_start, phrase_end, curve)
    for a, b, d in starts:
      if d >= 1.0:
        add_vibrato(track, a, b, rng, depth_cents=rng.uniform(12, 24), rate_hz=rng.uniform(5.0, 6.2))
      else:
        track.pitch_bend_cents(a, 0.0)
    t_ms += rng.uniform(600, 1500)  # Rest between phrases.
    idx = _next_degree(rng, idx, centre, len(pitches))
  track.end_marker(notes[-1][1] + 1200)
  return track, notes


def compose_voice():
  """A short, simple C-major tune (own composition) for Voice Oohs, with swells and gentle vibrato."""
  rng = np.random.RandomState(7)
  beat_ms = 480.0
  tune = [(64, 1), (67, 1), (69, 1.5), (67, .5), (64, 1), (62, 1), (60, 2), (None, .5),
          (62, 1), (64, 1), (67, 1), (65, .5), (64, .5), (62, 3)]
  track = MidiTrack(PROGRAM_VOICE_OOHS)
  notes = []
  t_ms = 100.0
  for pitch, beats in tune:
    length = beats * beat_ms
    if pitch is not None:
      end = t_ms + length + (10 if beats < 3 else 0)
      track.note(t_ms, end, pitch, 90 if beats >= 1.5 else 80)
      notes.append((t_ms, end, pitch, 90))
      add_expression(track, t_ms, end,
                     lambda t, a=t_ms, b=end: 92 + 30 * np.sin(np.pi * min(1.0, (t - a) / (b - a))))
      if beats >= 1:
        add_vibrato(track, t_ms, end, rng, depth_cents=15, rate_hz=5.3, onset_ms=180)
    t_ms += length
  track.end_marker(notes[-1][1] + 1000)
  return track, notes


def compose_single_note(program, pitch, hold_ms=1250):
  track = MidiTrack(program)
  track.note(0, hold_ms, pitch, 100)
  track.end_marker(1700)
  return track, [(0, hold_ms, pitch, 100)]


HIGH_RATE = 48000  # the full-band violin phrases for 48 kHz experiments (gin/recipes/realtime_48k_violin.gin)


def asset_specs():
  """name -> (compose function, nominal MIDI pitch or None, exact duration in seconds or None, sample rate or
  None for --sample_rate)."""
  specs = {
      'violin_phrase.flac': (lambda: compose_violin(seed=2028, seconds=60.0, tonic_pc=2,
                                                    mode='major'), None, None, None),
      'violin_phrase_eval.flac': (lambda: compose_violin(seed=57, seconds=12.5, tonic_pc=9,
                                                         mode='minor'), None, None, None),
      'voice_like_phrase.flac': (compose_voice, None, None, None),
      # Full band (rendered at 44.1 kHz, so content up to about 20 kHz), for 48 kHz training and evaluation.
      'violin_phrase_48k.flac': (lambda: compose_violin(seed=4848, seconds=30.0, tonic_pc=7,
                                                        mode='major'), None, None, HIGH_RATE),
      'violin_phrase_eval_48k.flac': (lambda: compose_violin(seed=4849, seconds=9.5, tonic_pc=4,
                                                             mode='minor'), None, None, HIGH_RATE),
  }
  for instrument, program, pitch in (('violin', PROGRAM_VIOLIN, 69), ('trumpet', PROGRAM_TRUMPET, 72),
                                     ('flute', PROGRAM_FLUTE, 79), ('cello', PROGRAM_CELLO, 48),
                                     ('clarinet', PROGRAM_CLARINET, 62)):
    name = '%s_note_%s_%d.flac' % (instrument, note_name(pitch), pitch)
    specs[name] = ((lambda p=program, m=pitch: compose_single_note(p, m)), pitch, 1.5, None)
  return specs


# ---------------------------------------------------------------------------------------------------
# Rendering and post-processing.
# ---------------------------------------------------------------------------------------------------
def render_midi(midi_bytes, workdir, stem):
  """Renders SMF bytes with FluidSynth, dry. Returns stereo float audio [n_samples, 2]."""
  mid_path = os.path.join(workdir, stem + '.mid')
  wav_path = os.path.join(workdir, stem + '.wav')
  with open(mid_path, 'wb') as f:
    f.write(midi_bytes)
  cmd = [FLAGS.fluidsynth, '-n', '-i', '-q', '-R', '0', '-C', '0', '-g', '0.5',
         '-r', str(FLAGS.render_rate), '-O', 'float', '-T', 'wav', '-F', wav_path,
         FLAGS.soundfont, mid_path]
  result = subprocess.run(cmd, capture_output=True, text=True, check=False)
  if result.returncode != 0 or not os.path.exists(wav_path):
    raise RuntimeError('fluidsynth failed (%d): %s\n%s' % (result.returncode, ' '.join(cmd),
                                                          result.stderr))
  audio, rate = sf.read(wav_path, dtype='float64', always_2d=True)
  if rate != FLAGS.render_rate:
    raise RuntimeError('fluidsynth wrote %d Hz, expected %d Hz.' % (rate, FLAGS.render_rate))
  if FLAGS.keep_midi_dir:
    os.makedirs(FLAGS.keep_midi_dir, exist_ok=True)
    shutil.copy(mid_path, os.path.join(FLAGS.keep_midi_dir, stem + '.mid'))
  return audio


def finish(stereo, exact_seconds, sr):
  """Stereo render -> mono at `sr` (16 kHz by default), trimmed, faded, peak-normalised (float64 [n])."""
  mono = stereo.mean(axis=1)
  audio = soxr.resample(mono, FLAGS.render_rate, sr, quality='VHQ')
  if exact_seconds is not None:
    audio = audio[:int(round(exact_seconds * sr))]
  else:
    # Trim the tail once the release has decayed below -60 dB of the peak (50 ms RMS windows).
    peak = np.max(np.abs(audio))
    win = sr // 20
    n_win = len(audio) // win
    rms = np.sqrt(np.mean(audio[:n_win * win].reshape(n_win, win) ** 2, axis=1))
    loud = np.nonzero(rms > peak * 10 ** (-60 / 20))[0]
    audio = audio[:(loud[-1] + 2) * win]
  fade = int(0.02 * sr)
  audio[-fade:] *= np.cos(np.linspace(0, np.pi / 2, fade)) ** 2
  audio *= 10 ** (FLAGS.peak_db / 20) / np.max(np.abs(audio))
  return audio


def write_flac(path, audio, sr):
  """Writes 16-bit FLAC via a temporary file in the same folder, then renames it into place."""
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix='.flac.tmp')
  os.close(fd)
  try:
    sf.write(tmp, audio.astype(np.float32), sr, format='FLAC', subtype='PCM_16')
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


# ---------------------------------------------------------------------------------------------------
# Verification.
# ---------------------------------------------------------------------------------------------------
def estimate_f0(audio, sr, fmin=50.0, fmax=2000.0):
  """Fundamental of a steady tone (Hz): YIN-style difference function, then harmonic-peak refinement.

  The coarse period is the first dip of the cumulative-mean-normalised difference function below 0.15
  (YIN), which avoids octave errors; the estimate is then refined from the interpolated spectral peaks
  of the first harmonics (magnitude-weighted mean of f_k / k) in a Hann-windowed, zero-padded FFT.
  """
  x = np.asarray(audio, np.float64)
  x = x - x.mean()
  max_lag = int(sr / fmin)
  min_lag = int(sr / fmax)
  w = len(x) - max_lag
  if w < 2 * max_lag:
    raise ValueError('Audio too short (%d samples) for f0 estimation.' % len(x))
  ref = x[:w]
  d = np.array([np.sum((ref - x[tau:tau + w]) ** 2) for tau in range(max_lag + 1)])
  cmndf = np.ones_like(d)
  cmndf[1:] = d[1:] * np.arange(1, max_lag + 1) / np.maximum(np.cumsum(d[1:]), 1e-12)
  below = np.nonzero(cmndf[min_lag:max_lag] < 0.15)[0]
  if below.size:
    tau = min_lag + below[0]
    while tau + 1 < max_lag and cmndf[tau + 1] < cmndf[tau]:
      tau += 1
  else:
    tau = min_lag + int(np.argmin(cmndf[min_lag:max_lag]))
  a, b, c = cmndf[tau - 1], cmndf[tau], cmndf[tau + 1]
  tau_f = tau + 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) > 0 else float(tau)
  f0 = sr / tau_f
  n_fft = 1 << int(np.ceil(np.log2(len(x) * 8)))
  mag = np.abs(np.fft.rfft(x * np.hanning(len(x)), n_fft))
  logmag = np.log(mag + 1e-12)
  hz_per_bin = sr / n_fft
  estimates, weights = [], []
  top = None
  for k in range(1, 13):
    target = k * f0
    if target > min(0.45 * sr, 7000):
      break
    lo = int((target - 0.3 * f0) / hz_per_bin)
    hi = int((target + 0.3 * f0) / hz_per_bin)
    j = lo + int(np.argmax(mag[lo:hi]))
    top = mag[j] if top is None else max(top, mag[j])
    if mag[j] < 0.01 * top:
      continue
    a, b, c = logmag[j - 1], logmag[j], logmag[j + 1]
    delta = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) < 0 else 0.0
    fk = (j + delta) * hz_per_bin
    estimates.append(fk / k)
    weights.append(mag[j] ** 2)
    f0 = np.average(estimates, weights=weights)  # Sharpen the search for higher harmonics.
  return float(f0)


def verify(name, audio, sr, nominal_midi, expected_rate):
  """Reads the written file back and checks it; returns a printable summary line."""
  problems = []
  if sr != expected_rate:
    problems.append('sample rate %d' % sr)
  if audio.ndim != 1:
    problems.append('not mono: shape %s' % (audio.shape,))
  peak = float(np.max(np.abs(audio)))
  rms_db = 20 * np.log10(np.sqrt(np.mean(audio ** 2)) + 1e-12)
  if peak >= 0.999:
    problems.append('clipped (peak %.4f)' % peak)
  if rms_db < -45:
    problems.append('near silent (RMS %.1f dBFS)' % rms_db)
  line = '%-28s %6.2f s  %7.1f kB  peak %.2f dBFS  RMS %.1f dBFS' % (
      name, len(audio) / sr, os.path.getsize(os.path.join(FLAGS.output_dir, name)) / 1024,
      20 * np.log10(peak), rms_db)
  if nominal_midi is not None:
    f0 = estimate_f0(audio[int(0.3 * sr):int(1.15 * sr)], sr)
    cents = 1200 * np.log2(f0 / midi_to_hz(nominal_midi))
    line += '  f0 %.2f Hz (nominal %.2f Hz, %+.1f cents)' % (f0, midi_to_hz(nominal_midi), cents)
    if abs(cents) > 15:
      problems.append('pitch %+.1f cents off MIDI %d' % (cents, nominal_midi))
  if problems:
    raise RuntimeError('%s failed verification: %s' % (name, '; '.join(problems)))
  return line


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('Unexpected arguments: %s' % (argv[1:],))
  if shutil.which(FLAGS.fluidsynth) is None:
    sys.exit('fluidsynth not found (%s): apt-get install -y fluidsynth' % FLAGS.fluidsynth)
  if not os.path.isfile(FLAGS.soundfont):
    sys.exit('SoundFont not found: %s (apt-get install -y fluid-soundfont-gm)' % FLAGS.soundfont)
  specs = asset_specs()
  unknown = sorted(set(FLAGS.only) - set(specs))
  if unknown:
    sys.exit('Unknown asset(s) %s; known: %s' % (unknown, sorted(specs)))
  os.makedirs(FLAGS.output_dir, exist_ok=True)
  with tempfile.TemporaryDirectory() as workdir:
    for name, (compose, nominal, exact_seconds, rate) in specs.items():
      if FLAGS.only and name not in FLAGS.only:
        continue
      rate = rate or FLAGS.sample_rate
      track, notes = compose()
      stem = name[:-len('.flac')]
      audio = finish(render_midi(track.to_bytes(), workdir, stem), exact_seconds, rate)
      path = os.path.join(FLAGS.output_dir, name)
      write_flac(path, audio, rate)
      back, sr = sf.read(path, dtype='float64')
      pitches = [n[2] for n in notes]
      print(verify(name, back, sr, nominal, rate) + '  (%d notes, MIDI %d-%d)' % (
          len(notes), min(pitches), max(pitches)))


if __name__ == '__main__':
  app.run(main)
