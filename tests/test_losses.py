"""SpectralLoss: identity, symmetry, closed-form value, and gradients through every synth."""
import numpy as np
import pytest
import tensorflow as tf

from ddsp import effects, losses, processors, synths


def test_spectral_loss_zero_symmetric_and_matches_numpy():
  rng = np.random.default_rng(0)
  a = rng.normal(scale=0.3, size=[2, 8000]).astype(np.float32)
  b = rng.normal(scale=0.3, size=[2, 8000]).astype(np.float32)
  loss = losses.SpectralLoss()
  assert float(loss(a, a)) == 0.0
  np.testing.assert_allclose(float(loss(a, b)), float(loss(b, a)), rtol=1e-6)
  # Independent NumPy reference of the same definition at two scales.
  def np_mag(x, n):
    hop = n // 4
    xp = np.pad(x, [(0, 0), (n // 2, n // 2)])
    frames = np.lib.stride_tricks.sliding_window_view(xp, n, axis=1)[:, ::hop]
    return np.abs(np.fft.rfft(frames * np.hanning(n + 1)[:-1], axis=-1))
  expected = 0.0
  for n in (256, 64):
    sa, sb = np_mag(a, n), np_mag(b, n)
    expected += np.mean(np.abs(sa - sb)) + np.mean(np.abs(np.log(np.maximum(sa, 1e-5)) -
                                                          np.log(np.maximum(sb, 1e-5))))
  np.testing.assert_allclose(float(losses.SpectralLoss(fft_sizes=(256, 64))(a, b)), expected, rtol=1e-4)
  with pytest.raises(ValueError, match='same shape'):
    loss(a, b[:, :4000])
  extra = losses.SpectralLoss(fft_sizes=(256,), delta_time_weight=1.0, delta_freq_weight=1.0,
                              cumsum_freq_weight=1.0, loudness_weight=1.0, loss_type='L2')
  assert float(extra(a, b)) > 0 and float(extra(a, a)) == 0.0


def _grads(fn, variables):
  with tf.GradientTape() as tape:
    loss = fn()
  return loss, tape.gradient(loss, variables)


@pytest.mark.parametrize('f0', [220.0, 0.0])
def test_gradients_reach_every_control_and_stay_finite(f0):
  n_frames, n_samples = 50, 3200
  target = tf.constant(np.random.default_rng(1).normal(scale=0.1, size=[1, n_samples]).astype(np.float32))
  controls = {
      'amps': tf.Variable(tf.zeros([1, n_frames, 1])),
      'harmonic_distribution': tf.Variable(tf.zeros([1, n_frames, 20])),
      'f0_hz': tf.Variable(tf.fill([1, n_frames, 1], f0)),
      'noise_magnitudes': tf.Variable(tf.zeros([1, n_frames, 65])),
      'sin_amps': tf.Variable(tf.zeros([1, n_frames, 3])),
      'sin_freqs': tf.Variable(tf.fill([1, n_frames, 3], 500.0)),
      'wt_amps': tf.Variable(tf.zeros([1, n_frames, 2])),
      'mod_gain': tf.Variable(tf.zeros([1, n_frames, 1])),
      'mod_phase': tf.Variable(tf.zeros([1, n_frames, 1])),
  }
  dag = [
      (synths.Harmonic(n_samples=n_samples), ['amps', 'harmonic_distribution', 'f0_hz']),
      (synths.FilteredNoise(n_samples=n_samples), ['noise_magnitudes']),
      (synths.Sinusoidal(n_samples=n_samples), ['sin_amps', 'sin_freqs']),
      (synths.Wavetable(n_samples=n_samples, trainable=True, n_wavetables=2, wavetable_size=256),
       ['wt_amps', 'f0_hz']),
      (processors.Add(name='add1'), ['harmonic/signal', 'filtered_noise/signal']),
      (processors.Add(name='add2'), ['add1/signal', 'sinusoidal/signal']),
      (processors.Add(name='add3'), ['add2/signal', 'wavetable/signal']),
      (effects.ModDelay(), ['add3/signal', 'mod_gain', 'mod_phase']),
      (effects.Reverb(trainable=True, reverb_length=800), ['mod_delay/signal']),
  ]
  group = processors.ProcessorGroup(dag=dag)
  group(controls)  # build
  variables = list(controls.values()) + group.trainable_variables
  loss, grads = _grads(lambda: losses.SpectralLoss()(target, group(controls)), variables)
  assert np.isfinite(float(loss))
  names = list(controls) + [v.path for v in group.trainable_variables]
  for name, grad in zip(names, grads):
    assert grad is not None, name
    g = tf.convert_to_tensor(grad).numpy()
    assert np.all(np.isfinite(g)), name
    silent_harmonics = f0 == 0.0 and any(k in name for k in ('amps', 'harmonic_distribution', 'wavetable', 'wt_'))
    if not silent_harmonics and 'f0_hz' not in name:
      assert np.abs(g).sum() > 0, name
  f0_grad = grads[2].numpy()
  if f0 > 0:
    assert np.abs(f0_grad).sum() > 0


def test_gradients_finite_on_silence():
  silence = tf.zeros([1, 3200])
  x = tf.Variable(tf.zeros([1, 3200]))
  loss, (grad,) = _grads(lambda: losses.SpectralLoss()(silence, x), [x])
  assert float(loss) == 0.0 and np.all(np.isfinite(grad.numpy()))
