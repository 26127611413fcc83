"""Synthesizers against float64 NumPy references and measured spectra."""
import numpy as np
import pytest
import scipy.signal
import tensorflow as tf

from ddsp import synths

SR = 16000


def _harmonic_reference(f0, amp, dist, n_samples):
  """float64 sum of sines with the Nyquist mask and renormalisation done by hand."""
  k = np.arange(1, len(dist) + 1)
  d = np.where(k * f0 < SR / 2, dist, 0.0).astype(np.float64)
  d = d / d.sum()
  t = np.arange(n_samples, dtype=np.float64) / SR
  return sum(amp * d[i] * np.sin(2 * np.pi * f0 * k[i] * t) for i in range(len(dist)))


def test_harmonic_matches_numpy_sum_of_sines_over_4_seconds():
  n_frames, n_samples, k = 1000, 64000, 100
  rng = np.random.default_rng(0)
  f0s = np.array([110.0, 261.63, 987.77], np.float32)
  dists = rng.uniform(0.0, 1.0, [3, k]).astype(np.float32)
  synth = synths.Harmonic(n_samples=n_samples, scale_fn=None)
  out = synth(np.full([3, n_frames, 1], 0.8, np.float32),
              np.repeat(dists[:, None, :], n_frames, axis=1),
              np.broadcast_to(f0s[:, None, None], [3, n_frames, 1])).numpy()
  for i in range(3):
    ref = _harmonic_reference(float(f0s[i]), 0.8, dists[i], n_samples)
    assert np.abs(out[i] - ref).max() <= 1e-3


def test_harmonics_at_or_above_nyquist_are_silent():
  n_frames, n_samples = 250, 16000
  dist = np.ones([1, n_frames, 5], np.float32)  # harmonics of 3 kHz: 3, 6, 9 (-> alias 7), 12, 15 kHz
  out = synths.Harmonic(n_samples=n_samples, scale_fn=None)(
      np.ones([1, n_frames, 1], np.float32), dist, np.full([1, n_frames, 1], 3000.0, np.float32)).numpy()[0]
  spectrum = np.abs(np.fft.rfft(out * np.hanning(n_samples)))
  freqs = np.fft.rfftfreq(n_samples, 1 / SR)
  level = lambda f: spectrum[np.argmin(np.abs(freqs - f))]
  assert level(7000) < 1e-4 * level(3000) and level(4000) < 1e-4 * level(3000)  # no aliases
  # The two surviving harmonics share the unit amplitude equally (renormalised distribution).
  np.testing.assert_allclose(level(6000) / level(3000), 1.0, rtol=1e-3)
  np.testing.assert_allclose(np.sqrt(np.mean(out ** 2)), np.sqrt(2 * 0.5 ** 2 / 2), rtol=1e-3)


def test_zero_and_negative_f0():
  n_frames = 100
  amps = np.ones([1, n_frames, 1], np.float32)
  dist = np.ones([1, n_frames, 10], np.float32)
  out = synths.Harmonic(n_samples=6400)(amps, dist, np.zeros([1, n_frames, 1], np.float32)).numpy()
  assert np.all(np.isfinite(out)) and np.abs(out).max() == 0.0
  with pytest.raises(ValueError, match='f0_hz'):
    synths.Harmonic(n_samples=6400)(amps, dist, -np.ones([1, n_frames, 1], np.float32))
  with pytest.raises(ValueError, match='amplitudes'):
    synths.Harmonic(n_samples=6400)(np.full([1, n_frames, 1], np.nan, np.float32), dist,
                                    np.ones([1, n_frames, 1], np.float32))
  with pytest.raises(ValueError, match='frames'):
    synths.Harmonic(n_samples=6400)(amps[:, :50], dist, np.ones([1, n_frames, 1], np.float32))


def test_filtered_noise_spectrum_follows_magnitudes():
  n_frames, n_samples, n_bands = 250, 64000, 65
  band_freqs = np.linspace(0, SR / 2, n_bands)
  mags = (0.05 + np.exp(-((band_freqs - 2500.0) / 1500.0) ** 2)).astype(np.float32)
  synth = synths.FilteredNoise(n_samples=n_samples, scale_fn=None, window_size=257)
  out = synth(np.broadcast_to(mags, [4, n_frames, n_bands])).numpy()
  f, psd = scipy.signal.welch(out, fs=SR, nperseg=256, axis=-1)
  psd = psd.mean(0)
  expected = 2.0 * (1.0 / 3.0) * np.interp(f, band_freqs, mags) ** 2 / SR  # uniform[-1, 1] noise: var 1/3
  inner = (f > 200) & (f < 7800)
  err_db = 10 * np.log10(psd[inner] / expected[inner])
  assert np.abs(err_db).max() < 1.5, err_db
  silent = synth(np.zeros([1, n_frames, n_bands], np.float32)).numpy()
  assert np.abs(silent).max() == 0.0


def test_filtered_noise_seed_is_deterministic_and_quiet_when_fresh():
  a = synths.FilteredNoise(n_samples=6400, seed=3)(np.zeros([1, 100, 65], np.float32)).numpy()
  b = synths.FilteredNoise(n_samples=6400, seed=3)(np.zeros([1, 100, 65], np.float32)).numpy()
  np.testing.assert_array_equal(a, b)
  assert np.sqrt(np.mean(a ** 2)) < 0.01  # initial bias -5: a fresh model is quiet


def test_sinusoidal_matches_numpy():
  n_frames, n_samples = 100, 6400
  freqs = np.broadcast_to(np.array([300.0, 1250.0], np.float32), [1, n_frames, 2])
  amps = np.broadcast_to(np.array([0.3, 0.2], np.float32), [1, n_frames, 2])
  out = synths.Sinusoidal(n_samples=n_samples, amp_scale_fn=None)(amps, freqs).numpy()[0]
  t = np.arange(n_samples) / SR
  ref = 0.3 * np.sin(2 * np.pi * 300 * t) + 0.2 * np.sin(2 * np.pi * 1250 * t)
  np.testing.assert_allclose(out, ref, atol=1e-4)


def test_wavetable_reads_a_sine_table():
  n_frames, n_samples, size = 100, 6400, 2048
  table = np.sin(2 * np.pi * np.arange(size) / size).astype(np.float32)[None, None]  # [1, K=1, L]
  out = synths.Wavetable(n_samples=n_samples, scale_fn=None)(
      np.full([1, n_frames, 1], 0.5, np.float32), np.full([1, n_frames, 1], 440.0, np.float32), table).numpy()[0]
  ref = 0.5 * np.sin(2 * np.pi * 440 * np.arange(n_samples) / SR)
  np.testing.assert_allclose(out, ref, atol=1e-4)  # linear interpolation error ~ (2 pi / L)^2 / 8


@pytest.mark.parametrize('mode', ['eager', 'function', 'xla'])
def test_synths_run_eager_graph_xla_with_dynamic_batch(mode):
  harmonic = synths.Harmonic(n_samples=3200)
  noise = synths.FilteredNoise(n_samples=3200, seed=1)

  def run(amps, dist, f0, mags):
    return harmonic(amps, dist, f0) + noise(mags)

  if mode != 'eager':
    spec = [tf.TensorSpec([None, 50, 1]), tf.TensorSpec([None, 50, 20]), tf.TensorSpec([None, 50, 1]),
            tf.TensorSpec([None, 50, 65])]
    run = tf.function(run, input_signature=spec, jit_compile=(mode == 'xla'))
  for batch in (1, 3):
    out = run(tf.zeros([batch, 50, 1]), tf.zeros([batch, 50, 20]), tf.fill([batch, 50, 1], 330.0),
              tf.zeros([batch, 50, 65]))
    assert out.shape == (batch, 3200) and np.all(np.isfinite(out.numpy()))
    # The harmonic part (equal harmonics of 330 Hz) carries the energy: the peak is a multiple of 330 Hz.
    spectrum = np.abs(np.fft.rfft(out.numpy()[0]))
    ratio = np.argmax(spectrum) * SR / 3200 / 330.0
    assert abs(ratio - round(ratio)) < 0.02
