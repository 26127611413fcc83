"""The multi-scale spectral loss written the straightforward way (plain TensorFlow, autodiff gradients).

The reference that `ddsp.losses.SpectralLoss` is tested and benchmarked against (tests/test_losses.py,
bench/losses.py): one `tf.signal.stft` per signal and scale, magnitudes `sqrt(re^2 + im^2)` with a zero
gradient at 0, `log(max(mag, eps))`, and a mean L1 or L2 difference per term.
"""
import functools

import tensorflow as tf


def _mag(audio, size, overlap, center):
  """`[batch, n_frames, size // 2 + 1]` STFT magnitudes of `audio` `[batch, n_samples]` (float32 or 64)."""
  hop = int(round(size * (1.0 - overlap)))
  if center:
    audio = tf.pad(audio, [[0, 0], [size // 2, size // 2]])
  spec = tf.signal.stft(audio, frame_length=size, frame_step=hop, fft_length=size,
                        window_fn=functools.partial(tf.signal.hann_window, periodic=True, dtype=audio.dtype),
                        pad_end=False)
  power = tf.math.real(spec) ** 2 + tf.math.imag(spec) ** 2
  return tf.sqrt(tf.maximum(power, 1e-20)) * tf.cast(power > 1e-20, audio.dtype)


def reference_spectral_loss(target_audio, audio, fft_sizes=(2048, 1024, 512, 256, 128, 64), loss_type='L1',
                            mag_weight=1.0, logmag_weight=1.0, delta_time_weight=0.0, delta_freq_weight=0.0,
                            cumsum_freq_weight=0.0, overlap=0.75, log_eps=1e-5, center=True, dtype=tf.float32):
  """Scalar loss of `audio` `[batch, n_samples]` against `target_audio` (same shape), computed in `dtype`."""
  target_audio = tf.cast(target_audio, dtype)
  audio = tf.cast(audio, dtype)

  def diff(a, b):
    d = a - b
    return tf.reduce_mean(tf.abs(d) if loss_type == 'L1' else d ** 2)

  loss = 0.0
  for size in fft_sizes:
    t_mag, v_mag = _mag(target_audio, size, overlap, center), _mag(audio, size, overlap, center)
    t_log, v_log = tf.math.log(tf.maximum(t_mag, log_eps)), tf.math.log(tf.maximum(v_mag, log_eps))
    if mag_weight > 0:
      loss += mag_weight * diff(t_mag, v_mag)
    if logmag_weight > 0:
      loss += logmag_weight * diff(t_log, v_log)
    if delta_time_weight > 0:
      loss += delta_time_weight * diff(t_log[:, 1:] - t_log[:, :-1], v_log[:, 1:] - v_log[:, :-1])
    if delta_freq_weight > 0:
      loss += delta_freq_weight * diff(t_log[..., 1:] - t_log[..., :-1], v_log[..., 1:] - v_log[..., :-1])
    if cumsum_freq_weight > 0:
      t_c = tf.cumsum(t_mag / (tf.reduce_sum(t_mag, -1, keepdims=True) + 1e-7), axis=-1)
      v_c = tf.cumsum(v_mag / (tf.reduce_sum(v_mag, -1, keepdims=True) + 1e-7), axis=-1)
      loss += cumsum_freq_weight * diff(t_c, v_c)
  return tf.convert_to_tensor(loss, dtype)
