"""Effects against SciPy convolution and closed forms."""
import numpy as np
import pytest
import scipy.signal
import tensorflow as tf

from ddsp import effects

SR = 16000


def test_reverb_equals_scipy_fftconvolve():
  rng = np.random.default_rng(0)
  audio = rng.uniform(-1, 1, [2, 64000]).astype(np.float32)
  ir = (rng.normal(size=[2, 48000]) * np.exp(-np.arange(48000) / 4000.0) * 0.05).astype(np.float32)
  out = effects.Reverb(add_dry=False)(audio, ir).numpy()
  ref = np.stack([scipy.signal.fftconvolve(audio[i].astype(np.float64), ir[i])[:64000] for i in range(2)])
  assert np.abs(out - ref).max() < 1e-4
  # With the dry path: the IR's first sample is replaced by the dry signal.
  wet_dry = effects.Reverb(add_dry=True)(audio, ir).numpy()
  ir0 = ir.copy()
  ir0[:, 0] = 0.0
  ref2 = np.stack([scipy.signal.fftconvolve(audio[i].astype(np.float64), ir0[i])[:64000] for i in range(2)]) + audio
  assert np.abs(wet_dry - ref2).max() < 1e-4


def test_trainable_reverb_learns_an_impulse_response():
  reverb = effects.Reverb(trainable=True, reverb_length=400)
  assert [v.name for v in reverb.trainable_variables] == ['ir']
  rng = np.random.default_rng(1)
  audio = tf.constant(rng.uniform(-1, 1, [2, 3200]).astype(np.float32))
  target_ir = np.zeros(400, np.float32)
  target_ir[[50, 120, 300]] = [0.5, -0.3, 0.2]
  target = effects.Reverb(add_dry=True)(audio, np.broadcast_to(target_ir, [2, 400]))
  opt = tf.keras.optimizers.Adam(0.01) if hasattr(tf, 'keras') else None
  import keras
  opt = keras.optimizers.Adam(0.01)
  for _ in range(150):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean((reverb(audio) - target) ** 2)
    opt.apply_gradients(zip(tape.gradient(loss, reverb.trainable_variables), reverb.trainable_variables))
  learned = reverb.get_ir().numpy()[0]
  assert learned[0] == 0.0  # direct path masked
  np.testing.assert_allclose(learned[[50, 120, 300]], [0.5, -0.3, 0.2], atol=0.05)


def test_reverb_ir_scale_and_decay_envelope_weight_the_learned_taps():
  length, scale, decay_db = 1000, 0.1, 60.0
  reverb = effects.Reverb(trainable=True, reverb_length=length, ir_scale=scale, decay_db=decay_db)
  taps = np.random.default_rng(0).normal(size=length).astype(np.float32)
  reverb.ir.assign(taps)
  n = np.arange(length)
  expected = scale * taps * 10.0 ** (-decay_db / 20.0 * n / length)
  expected[0] = 0.0  # the direct path is the dry signal's.
  ir = reverb.get_ir().numpy()[0]
  np.testing.assert_allclose(ir, expected, rtol=1e-5, atol=1e-7)
  # The last tap is decay_db below the first one's weight.
  assert 20 * np.log10(expected[-1] / (scale * taps[-1])) == pytest.approx(-decay_db * (length - 1) / length)
  audio = np.random.default_rng(1).normal(size=(1, 3000)).astype(np.float32)
  wet = reverb(audio).numpy()[0]
  np.testing.assert_allclose(wet, audio[0] + scipy.signal.fftconvolve(audio[0], expected)[:3000], atol=1e-4)
  # The initial IR is the same for every ir_scale (only the step size of the taps changes).
  a = effects.Reverb(trainable=True, reverb_length=length).get_ir().numpy()
  b = effects.Reverb(trainable=True, reverb_length=length, ir_scale=0.1).get_ir().numpy()
  np.testing.assert_allclose(a, b, rtol=1e-5)
  with pytest.raises(ValueError, match='decay_db must be >= 0'):
    effects.Reverb(trainable=True, decay_db=-1.0)


def test_exp_decay_reverb_envelope():
  reverb = effects.ExpDecayReverb(reverb_length=16000, add_dry=False)
  gain, decay = np.array([[2.0]], np.float32), np.array([[0.0]], np.float32)
  ir = reverb.get_controls(np.zeros([1, 100], np.float32), gain, decay)['ir'].numpy()[0]
  rate = 2.0 + np.log(2.0)  # 2 + softplus(0)
  first, last = np.abs(ir[1000:2000]).mean(), np.abs(ir[9000:10000]).mean()
  np.testing.assert_allclose(np.log(first / last), rate * 8000 / SR, rtol=0.15)


def test_filtered_noise_reverb_and_fir_filter_shapes():
  audio = np.random.default_rng(2).uniform(-1, 1, [2, 8000]).astype(np.float32)
  out = effects.FilteredNoiseReverb(trainable=True, reverb_length=4000, n_frames=100)(audio)
  assert out.shape == (2, 8000) and np.all(np.isfinite(out.numpy()))
  # An FIR low-pass removes the top of the spectrum.
  mags = np.where(np.linspace(0, 8000, 65) < 2000, 1.0, 0.0).astype(np.float32)
  low = effects.FIRFilter(scale_fn=None)(audio, np.broadcast_to(mags, [2, 50, 65])).numpy()
  f, psd_in = scipy.signal.welch(audio, SR, nperseg=512)
  _, psd_out = scipy.signal.welch(low, SR, nperseg=512)
  hi_band = f > 3500
  assert psd_out[:, hi_band].mean() < 1e-3 * psd_in[:, hi_band].mean()
  lo_band = (f > 200) & (f < 1500)
  np.testing.assert_allclose(psd_out[:, lo_band].mean() / psd_in[:, lo_band].mean(), 1.0, rtol=0.1)


def test_mod_delay_constant_delay_is_a_shift():
  audio = np.random.default_rng(3).normal(size=[1, 4000]).astype(np.float32)
  # phase = 0 -> delay = center_ms = 2 ms = 32 samples; gain 1; no dry.
  delay = effects.ModDelay(center_ms=2.0, depth_ms=1.0, gain_scale_fn=None, phase_scale_fn=None, add_dry=False)
  out = delay(audio, np.ones([1, 40, 1], np.float32), np.zeros([1, 40, 1], np.float32)).numpy()[0]
  np.testing.assert_allclose(out[32:], audio[0, :-32], atol=1e-6)
  # Half-way phase: 2.5 ms = 40 samples.
  out = delay(audio, np.ones([1, 40, 1], np.float32), np.full([1, 40, 1], 0.5, np.float32)).numpy()[0]
  np.testing.assert_allclose(out[40:], audio[0, :-40], atol=1e-6)


def test_reverb_bad_inputs():
  with pytest.raises(ValueError, match='needs an `ir`'):
    effects.Reverb()(np.zeros([1, 100], np.float32))
  with pytest.raises(ValueError, match='audio'):
    effects.Reverb()(np.zeros([1, 100, 2], np.float32), np.zeros([1, 10], np.float32))
  with pytest.raises(ValueError, match='NaN'):
    effects.Reverb()(np.full([1, 100], np.nan, np.float32), np.zeros([1, 10], np.float32))
