"""Losses on audio: the paper's multi-scale spectral loss (and a perceptual CREPE embedding loss)."""
import gin
import keras
import tensorflow as tf

from ddsp import core
from ddsp import spectral_ops


def mean_difference(target, value, loss_type='L1', weights=None):
  """Mean L1 or L2 difference of two tensors (optionally weighted)."""
  diff = target - value
  if loss_type == 'L1':
    diff = tf.abs(diff)
  elif loss_type == 'L2':
    diff = diff ** 2
  else:
    raise ValueError(f"`loss_type` must be 'L1' or 'L2', got {loss_type!r}.")
  if weights is not None:
    diff *= weights
  return tf.reduce_mean(diff)


@gin.register
class SpectralLoss(keras.layers.Layer):
  """Multi-scale spectral loss (paper): `sum_i mag_w |S_i - S'_i| + logmag_w |log S_i - log S'_i|`.

  S_i are STFT magnitudes at each FFT size with 75% overlap; each term is a mean over its elements. Optional
  terms: differences along time (`delta_time_weight`) and frequency (`delta_freq_weight`), cumulative sums over
  frequency (`cumsum_freq_weight`, an earth-mover-like term), and the A-weighted loudness curve
  (`loudness_weight`). `center=True` pads half a frame on both sides of the signal before framing (frame t
  centred on sample t * hop); False frames from the first sample.

  The target is a constant (no gradient flows into it). Without delta or cumsum terms each scale is one
  `spectral_ops.spectral_distance` (one STFT of both signals and a hand-written gradient: the value and gradient
  of the definition above; measured 1.6x faster in graph mode, about even under XLA); audio of any float dtype
  (e.g. bfloat16) is cast to float32.

  `SpectralLoss(...)(target_audio [B,N], audio [B,N]) -> scalar`.
  """

  def __init__(self, fft_sizes=(2048, 1024, 512, 256, 128, 64), loss_type='L1', mag_weight=1.0,
               logmag_weight=1.0, delta_time_weight=0.0, delta_freq_weight=0.0, cumsum_freq_weight=0.0,
               loudness_weight=0.0, overlap=0.75, log_eps=1e-5, sample_rate=16000, frame_rate=250, center=True,
               name='spectral_loss', **kwargs):
    super().__init__(name=name, **kwargs)
    if loss_type not in ('L1', 'L2'):
      raise ValueError(f"SpectralLoss `loss_type` must be 'L1' or 'L2', got {loss_type!r}.")
    self.fft_sizes = tuple(int(s) for s in fft_sizes)
    self.loss_type = loss_type
    self.mag_weight = float(mag_weight)
    self.logmag_weight = float(logmag_weight)
    self.delta_time_weight = float(delta_time_weight)
    self.delta_freq_weight = float(delta_freq_weight)
    self.cumsum_freq_weight = float(cumsum_freq_weight)
    self.loudness_weight = float(loudness_weight)
    self.overlap = float(overlap)
    self.log_eps = float(log_eps)
    self.sample_rate, self.frame_rate = int(sample_rate), int(frame_rate)
    self.center = bool(center)

  def _fused(self, target_audio, audio):
    """Whether the mag/logmag terms take `spectral_ops.spectral_distance` (same value and gradient, faster).

    It needs a known n_samples and the same [batch, n_samples] for both signals (the batch may be unknown);
    with a delta or cumsum term every term of the scale takes the shared-STFT path below instead.
    """
    if self.delta_time_weight > 0 or self.delta_freq_weight > 0 or self.cumsum_freq_weight > 0:
      return False
    shape, target_shape = audio.shape, target_audio.shape
    if shape.rank != 2 or target_shape.rank != 2 or shape[-1] is None or target_shape[-1] != shape[-1]:
      return False
    return shape[0] is None or target_shape[0] is None or shape[0] == target_shape[0]

  def call(self, target_audio, audio):
    target_audio = tf.stop_gradient(core.tf_float32(target_audio, 'target_audio'))
    audio = core.tf_float32(audio, 'audio')
    if (target_audio.shape.is_fully_defined() and audio.shape.is_fully_defined()
        and target_audio.shape != audio.shape):
      raise ValueError(f'SpectralLoss: `target_audio` {target_audio.shape} and `audio` {audio.shape} must have '
                       'the same shape [batch, n_samples].')
    if audio.shape.rank == 1:
      target_audio, audio = target_audio[tf.newaxis], audio[tf.newaxis]
    loss = 0.0
    diff = lambda a, b: mean_difference(a, b, self.loss_type)
    for size in self.fft_sizes:
      if self._fused(target_audio, audio):
        if self.mag_weight > 0 or self.logmag_weight > 0:
          loss += spectral_ops.spectral_distance(target_audio, audio, size, self.overlap, self.center,
                                                 self.mag_weight, self.logmag_weight, self.loss_type, self.log_eps)
        continue
      target_mag = spectral_ops.compute_mag(target_audio, size, self.overlap, self.center)
      value_mag = spectral_ops.compute_mag(audio, size, self.overlap, self.center)
      if self.mag_weight > 0:
        loss += self.mag_weight * diff(target_mag, value_mag)
      if self.logmag_weight > 0 or self.delta_time_weight > 0 or self.delta_freq_weight > 0:
        target_log = core.safe_log(target_mag, self.log_eps)
        value_log = core.safe_log(value_mag, self.log_eps)
      if self.logmag_weight > 0:
        loss += self.logmag_weight * diff(target_log, value_log)
      if self.delta_time_weight > 0:
        loss += self.delta_time_weight * diff(target_log[:, 1:] - target_log[:, :-1],
                                              value_log[:, 1:] - value_log[:, :-1])
      if self.delta_freq_weight > 0:
        loss += self.delta_freq_weight * diff(target_log[..., 1:] - target_log[..., :-1],
                                              value_log[..., 1:] - value_log[..., :-1])
      if self.cumsum_freq_weight > 0:
        target_c = tf.cumsum(target_mag / (tf.reduce_sum(target_mag, -1, keepdims=True) + 1e-7), axis=-1)
        value_c = tf.cumsum(value_mag / (tf.reduce_sum(value_mag, -1, keepdims=True) + 1e-7), axis=-1)
        loss += self.cumsum_freq_weight * diff(target_c, value_c)
    if self.loudness_weight > 0:
      target_ld = spectral_ops.compute_loudness(target_audio, self.sample_rate, self.frame_rate, use_tf=True)
      value_ld = spectral_ops.compute_loudness(audio, self.sample_rate, self.frame_rate, use_tf=True)
      loss += self.loudness_weight * diff(target_ld, value_ld)
    return tf.convert_to_tensor(loss, tf.float32)


def __getattr__(name):
  """Lazily re-exports `PretrainedCREPEEmbeddingLoss` from `ddsp.pitch` (loads CREPE only when asked)."""
  if name == 'PretrainedCREPEEmbeddingLoss':
    from ddsp import pitch
    return pitch.PretrainedCREPEEmbeddingLoss
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
