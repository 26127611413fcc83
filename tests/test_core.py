"""Core DSP functions against independent NumPy / SciPy references."""
import math

import numpy as np
import pytest
import scipy.signal
import tensorflow as tf

from ddsp import core
from ddsp import oscillators

SR = 16000


def test_unit_conversions_match_closed_forms():
  f = np.array([27.5, 110.0, 440.0, 1000.0, 4186.01])
  expected = 69 + 12 * np.log2(f / 440.0)
  np.testing.assert_allclose(core.hz_to_midi(f), expected, atol=1e-4)
  np.testing.assert_allclose(core.hz_to_midi(tf.constant(f, tf.float32)).numpy(), expected, atol=1e-3)
  np.testing.assert_allclose(core.midi_to_hz(tf.constant(expected, tf.float32)).numpy(), f, rtol=1e-5)
  # At or below 0 Hz: MIDI 0, never NaN (also the gradient).
  x = tf.constant([0.0, -5.0, 440.0])
  with tf.GradientTape() as tape:
    tape.watch(x)
    m = core.hz_to_midi(x)
  g = tape.gradient(m, x)
  assert np.all(np.isfinite(m.numpy())) and np.all(np.isfinite(g.numpy()))
  np.testing.assert_allclose(m.numpy()[:2], [0.0, 0.0])
  np.testing.assert_allclose(core.midi_to_hz(tf.constant([0.0]), midi_zero_silence=True).numpy(), [0.0])
  np.testing.assert_allclose(core.unit_to_midi(core.midi_to_unit(tf.constant(60.0))).numpy(), 60.0, atol=1e-4)
  np.testing.assert_allclose(core.amplitude_to_db(tf.constant([1.0, 0.5, 0.0])).numpy(),
                             [0.0, 20 * np.log10(0.5), -120.0], atol=1e-4)
  np.testing.assert_allclose(core.db_to_amplitude(tf.constant(-6.0206)).numpy(), 0.5, atol=1e-4)


def test_exp_sigmoid_closed_form():
  x = np.linspace(-10, 10, 21).astype(np.float32)
  expected = 2.0 * (1 / (1 + np.exp(-x.astype(np.float64)))) ** np.log(10.0) + 1e-7
  np.testing.assert_allclose(core.exp_sigmoid(x).numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize('method', ['linear', 'window'])
def test_resample_hits_frames_and_interpolates(method):
  frames = np.array([[0.0, 1.0, 3.0, 2.0]], np.float32)[..., None]
  out = core.resample(frames, 16, method=method).numpy()[0, :, 0]
  np.testing.assert_allclose(out[::4], [0.0, 1.0, 3.0, 2.0], atol=1e-6)  # frame t sits on sample t * hop
  mid = out[2]  # halfway between frames 0 and 1
  np.testing.assert_allclose(mid, 0.5, atol=1e-6)
  if method == 'window':  # raised cosine: sin^2(pi/2 * 1/4) at a quarter of the way
    np.testing.assert_allclose(out[1], math.sin(math.pi / 8) ** 2, atol=1e-6)
  else:
    np.testing.assert_allclose(out[1], 0.25, atol=1e-6)
  # Non-integer ratio uses the gather path with the same definition.
  out2 = core.resample(frames, 10, method='linear').numpy()[0, :, 0]
  pos = np.arange(10) * 4 / 10
  np.testing.assert_allclose(out2, np.interp(pos, np.arange(4), frames[0, :, 0]), atol=1e-6)


def test_angular_cumsum_accurate_over_a_minute():
  n = 60 * SR
  f = np.full([1, n], 2000.0, np.float32)
  exact = np.mod(2 * np.pi * 2000.0 * np.arange(n, dtype=np.float64) / SR, 2 * np.pi)
  for precision in ('float64',):
    w = oscillators.hz_to_angular_frequency(tf.constant(f), SR, precision)
    phase = oscillators.angular_cumsum(w, precision=precision).numpy()[0]
    err = np.abs(np.angle(np.exp(1j * (phase - exact))))
    assert err.max() < 1e-3, (precision, err.max())
  # A plain float32 cumsum would be far off: the test can fail.
  naive = np.cumsum(np.full(n, np.float32(2 * np.pi * 2000 / SR)), dtype=np.float32)
  assert np.abs(np.angle(np.exp(1j * (naive[:-1] - exact[1:])))).max() > 1e-2


def test_angular_cumsum_chunked_float32():
  rng = np.random.default_rng(0)
  w = rng.uniform(0, 0.5, [2, 50000]).astype(np.float32)
  exact = np.mod(np.cumsum(w.astype(np.float64), axis=1) - w, 2 * np.pi)
  phase = oscillators.angular_cumsum(w, precision='chunked').numpy()
  err = np.abs(np.angle(np.exp(1j * (phase - exact))))
  assert err.max() < 2e-3


def test_oscillator_bank_matches_numpy():
  n = 4000
  t = np.arange(n) / SR
  freqs = np.stack([np.full(n, 220.0), np.linspace(300, 600, n), np.full(n, 9000.0)], -1)[None].astype(np.float32)
  amps = np.stack([np.full(n, 0.5), np.linspace(0, 1, n), np.ones(n)], -1)[None].astype(np.float32)
  out = oscillators.oscillator_bank(freqs, amps, SR).numpy()[0]
  phase1 = 2 * np.pi * np.concatenate([[0], np.cumsum(freqs[0, :-1, 1].astype(np.float64))]) / SR
  ref = 0.5 * np.sin(2 * np.pi * 220 * t) + amps[0, :, 1] * np.sin(phase1)  # 9 kHz is above Nyquist: silent
  np.testing.assert_allclose(out, ref, atol=2e-4)


def test_fft_convolve_matches_scipy():
  rng = np.random.default_rng(1)
  audio = rng.normal(size=[2, 8000]).astype(np.float32)
  ir = (rng.normal(size=[2, 3001]) * np.exp(-np.arange(3001) / 500)).astype(np.float32)
  out = core.fft_convolve(audio, ir, padding='same', delay_compensation=0).numpy()
  ref = np.stack([scipy.signal.fftconvolve(audio[i], ir[i])[:8000] for i in range(2)])
  np.testing.assert_allclose(out, ref, atol=1e-4)
  full = core.fft_convolve(audio, ir, padding='valid').numpy()
  np.testing.assert_allclose(full, np.stack([scipy.signal.fftconvolve(audio[i], ir[i]) for i in range(2)]),
                             atol=1e-4)


def test_time_varying_fft_convolve_is_overlap_add():
  rng = np.random.default_rng(2)
  audio = rng.normal(size=[1, 400]).astype(np.float32)
  irs = rng.normal(size=[1, 4, 31]).astype(np.float32)
  out = core.fft_convolve(audio, irs, padding='valid').numpy()[0]
  ref = np.zeros(400 + 30)
  for k in range(4):
    ref[k * 100:k * 100 + 130] += np.convolve(audio[0, k * 100:(k + 1) * 100], irs[0, k])
  np.testing.assert_allclose(out, ref, atol=1e-4)


def test_frequency_impulse_response_is_linear_phase_and_follows_magnitudes():
  n_bands = 65
  freqs = np.linspace(0, 1, n_bands)
  mags = (0.2 + np.exp(-((freqs - 0.3) / 0.15) ** 2)).astype(np.float32)  # smooth band-pass
  ir = core.frequency_impulse_response(mags[None, None], window_size=0).numpy()[0, 0]
  assert len(ir) == 127  # odd: symmetric about its centre
  np.testing.assert_allclose(ir, ir[::-1], atol=1e-7)
  response = np.abs(np.fft.rfft(ir, 2 * (n_bands - 1)))
  np.testing.assert_allclose(20 * np.log10(response), 20 * np.log10(mags), atol=0.5)


def test_bad_inputs_raise_clear_errors():
  with pytest.raises(ValueError, match='frequency_envelopes'):
    oscillators.oscillator_bank(np.zeros([2, 10, 3]), np.zeros([2, 10, 4]))
  with pytest.raises(ValueError, match='real-valued'):
    core.tf_float32(np.array(['a']), 'x')
  with pytest.raises(ValueError, match='multiple'):
    core.fft_convolve(np.zeros([1, 100], np.float32), np.zeros([1, 3, 5], np.float32))
  with pytest.raises(ValueError, match='frames'):
    oscillators.harmonic_synthesis(np.zeros([1, 10, 1]), np.zeros([1, 11, 1]), n_samples=640)
