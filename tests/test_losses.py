"""SpectralLoss: identity, symmetry, closed-form value, gradients through every synth, and the fused distance's
value and gradient against the autodiff reference (tests/spectral_loss_reference.py)."""
import numpy as np
import pytest
import tensorflow as tf

from ddsp import effects, losses, processors, spectral_ops, synths
from spectral_loss_reference import reference_spectral_loss


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


# ------------------------------------------------------------------------------------------------------------
# The fused per-scale distance (spectral_ops.spectral_distance) and SpectralLoss against the straightforward
# autodiff definition (tests/spectral_loss_reference.py): same value and gradient within 1e-5 relative.
# ------------------------------------------------------------------------------------------------------------
def _signals(batch, n_samples, silence=False, seed=0):
  """(target, audio) float64: noise and a scaled, noisier copy; `silence` zeroes a third of each signal, a
  whole target example and a whole audio example (exact zeros: |X| = 0 frames, gradients masked)."""
  rng = np.random.default_rng(seed)
  target = rng.standard_normal([batch, n_samples])
  audio = 0.5 * target + 0.3 * rng.standard_normal([batch, n_samples])
  if silence:
    target[:, : n_samples // 3] = 0.0
    audio[:, n_samples // 2: n_samples // 2 + n_samples // 3] = 0.0
    target[0] = 0.0
    audio[-1] = 0.0
  return target, audio


def _value_and_grad(fn, target, audio):
  audio = tf.constant(audio)
  with tf.GradientTape() as tape:
    tape.watch(audio)
    loss = fn(tf.constant(target), audio)
  return float(loss), tape.gradient(loss, audio).numpy()


def _assert_close(value, grad, ref_value, ref_grad, rtol):
  np.testing.assert_allclose(value, ref_value, rtol=rtol)
  # Relative to the gradient's largest element: entries that are ~0 get an absolute tolerance.
  np.testing.assert_allclose(grad, ref_grad, rtol=rtol, atol=rtol * np.abs(ref_grad).max())


@pytest.mark.parametrize('size, overlap, center, weights, loss_type, silence, batch, n_samples', [
    (256, 0.75, True, (1.0, 1.0), 'L1', False, 2, 2000),
    (256, 0.75, False, (1.0, 1.0), 'L2', False, 2, 2001),
    (64, 0.75, True, (0.0, 1.0), 'L1', True, 3, 1000),
    (64, 0.75, True, (1.0, 0.0), 'L2', True, 3, 1000),
    (64, 0.75, False, (1.0, 1.0), 'L1', True, 2, 1003),
    (100, 0.7, True, (1.0, 1.0), 'L1', False, 2, 1500),    # hop 30: size not a multiple of the hop
    (128, 0.6, False, (0.5, 2.0), 'L2', True, 2, 1777),    # hop 51 (odd), frames stop short of the end
    (63, 0.75, True, (1.0, 1.0), 'L2', False, 1, 999),     # odd size (TensorFlow's window is symmetric there)
    (2048, 0.75, True, (1.0, 1.0), 'L1', True, 2, 4000),
])
@pytest.mark.parametrize('jit_compile', [True, False])
def test_spectral_distance_matches_autodiff_reference_float64(size, overlap, center, weights, loss_type, silence,
                                                              batch, n_samples, jit_compile):
  target, audio = _signals(batch, n_samples, silence)
  mag_weight, logmag_weight = weights
  value, grad = _value_and_grad(
      lambda t, x: spectral_ops.spectral_distance(t, x, size, overlap, center, mag_weight, logmag_weight,
                                                  loss_type, 1e-5, jit_compile), target, audio)
  ref_value, ref_grad = _value_and_grad(
      lambda t, x: reference_spectral_loss(t, x, (size,), loss_type, mag_weight, logmag_weight, overlap=overlap,
                                           center=center, dtype=tf.float64), target, audio)
  assert np.abs(ref_grad).max() > 0
  _assert_close(value, grad, ref_value, ref_grad, 1e-5)


def test_spectral_distance_of_identical_or_silent_signals_is_zero_with_finite_gradient():
  target, _ = _signals(2, 1000)
  for t, x in ((target, target), (np.zeros_like(target), np.zeros_like(target))):
    value, grad = _value_and_grad(lambda a, b: spectral_ops.spectral_distance(a, b, 128), t, x)
    assert value == 0.0 and np.all(np.isfinite(grad))
  with pytest.raises(ValueError, match='loss_type'):
    spectral_ops.spectral_distance(target, target, 128, loss_type='L3')
  with pytest.raises(ValueError, match='n_samples'):
    spectral_ops.spectral_distance(target[0], target[0], 128)


def _reference_float64(target, audio, **kwargs):
  """Value and gradient of the reference in float64 on float32 inputs (the exact value of the definition)."""
  return _value_and_grad(lambda t, x: reference_spectral_loss(t, x, dtype=tf.float64, **kwargs),
                         np.float64(target), np.float64(audio))


@pytest.mark.parametrize('kwargs', [
    {},
    {'loss_type': 'L2', 'mag_weight': 0.5, 'logmag_weight': 0.0, 'center': False},
    {'delta_time_weight': 1.0, 'delta_freq_weight': 0.5, 'cumsum_freq_weight': 2.0},  # the shared-STFT path
])
def test_spectral_loss_float32_matches_reference(kwargs):
  target, audio = (a.astype(np.float32) for a in _signals(3, 8000, silence=True))
  kwargs = dict(fft_sizes=(2048, 512, 128, 64), **kwargs)
  value, grad = _value_and_grad(losses.SpectralLoss(**kwargs), target, audio)
  ref_value, ref_grad = _reference_float64(target, audio, **kwargs)
  # float32 STFTs against the exact (float64) definition: the log term's gradient 1/|X| just above its floor
  # amplifies rounding; the float32 reference itself is 9e-4 of the largest gradient off there (this: 3e-4).
  np.testing.assert_allclose(value, ref_value, rtol=1e-6)
  np.testing.assert_allclose(grad, ref_grad, rtol=1e-3, atol=1e-3 * np.abs(ref_grad).max())


def test_spectral_loss_in_graphs_unknown_batch_xla_bfloat16_and_distributed():
  target, audio = (a.astype(np.float32) for a in _signals(2, 4000))
  loss = losses.SpectralLoss(fft_sizes=(512, 128))
  ref_value, ref_grad = _reference_float64(target, audio, fft_sizes=(512, 128))

  def value_and_grad(t, x):
    with tf.GradientTape() as tape:
      tape.watch(x)
      value = loss(t, x)
    return value, tape.gradient(value, x)

  spec = [tf.TensorSpec([None, 4000], tf.float32)] * 2
  for jit_compile in (False, True):
    fn = tf.function(value_and_grad, input_signature=spec, jit_compile=jit_compile)
    for n in (2, 1):  # one trace, two batch sizes
      value, grad = fn(target[:n], audio[:n])
      if n == 2:
        _assert_close(float(value), grad.numpy(), ref_value, ref_grad, 1e-4)
      assert grad.shape == (n, 4000)
  # bfloat16 audio (a mixed_bfloat16 network's output) is cast to float32: the loss of the rounded signal.
  rounded = tf.cast(tf.cast(audio, tf.bfloat16), tf.float32)
  value, grad = tf.function(value_and_grad)(target, tf.cast(audio, tf.bfloat16))
  assert value.dtype == tf.float32 and grad.dtype == tf.bfloat16
  np.testing.assert_allclose(float(value), float(loss(target, rounded)), rtol=1e-6)
  # A replica context (MirroredStrategy on the one CPU).
  strategy = tf.distribute.MirroredStrategy(['/cpu:0'])
  value, grad = strategy.run(tf.function(value_and_grad), args=(tf.constant(target), tf.constant(audio)))
  _assert_close(float(value), grad.numpy(), ref_value, ref_grad, 1e-4)


def test_multiscale_loss_called_eagerly_does_not_warn_of_retracing():
  """Six scales trace their own functions once each (as `ddsp_run --mode=eval` runs them): no 'excessive
  retracing' warning (TensorFlow keys it by code object, which six scales of one inner function share)."""
  import logging as std_logging

  records = []
  handler = std_logging.Handler()
  handler.emit = records.append
  logger = std_logging.getLogger('tensorflow')
  logger.addHandler(handler)
  try:
    rng = np.random.default_rng(0)
    a, b = (tf.constant(rng.standard_normal([2, 4000]).astype(np.float32)) for _ in range(2))
    for size in (2048, 1024, 512, 256, 128, 64, 32):
      spectral_ops.spectral_distance(a, b, size=size, overlap=0.5, mag_weight=0.5)
  finally:
    logger.removeHandler(handler)
  assert not [r for r in records if 'retracing' in r.getMessage()]
