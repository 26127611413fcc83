"""Encoders: audio (and features) -> latent controls for the decoder.

An encoder is a Keras layer whose `call(features: dict) -> dict` returns new entries that the model merges into
its outputs dict:
  * `MfccTimeDistributedRnnEncoder`: MFCCs -> normalisation -> RNN -> Dense: the timbre latent `z`
    `[batch, z_time_steps, z_dims]`.
  * `ResnetF0Encoder`: the unsupervised f0 encoder; a ResNet on a log-mel spectrogram predicts a softmax over
    log-spaced pitch bins and f0 is its (differentiable) expectation: `f0_hz`, `f0_scaled` `[batch, time, 1]`,
    `f0_distribution` `[batch, time, n_bins]`.
  * `CompositeEncoder`: runs several encoders in order and merges their outputs.

The encoders themselves compute in float32; only their neural networks follow the network dtype policy
(`nn.set_network_dtype`), and every output is float32.
"""
import gin
import keras
import numpy as np
import tensorflow as tf

from ddsp import core
from ddsp import spectral_ops
from ddsp import tracking
from ddsp.training import nn
from ddsp.training import preprocessing


def _audio_from(features, owner):
  audio = core.tf_float32(preprocessing.get_feature(features, 'audio', owner), 'audio')
  if audio.shape.rank == 1:
    audio = audio[tf.newaxis]
  if audio.shape.rank != 2:
    raise ValueError(f'{owner}: `audio` must be [batch, n_samples], got shape {audio.shape}.')
  if audio.shape[1] is None:
    raise ValueError(f'{owner}: the number of audio samples must be known statically, got shape {audio.shape}.')
  return audio


def _frames_at_hop(spectrogram, n_samples, hop):
  """Keeps the frames centred on samples 0, hop, 2 hop, ... below n_samples: `ceil(n_samples / hop)` frames."""
  return spectrogram[:, :-(-n_samples // hop)]


class Encoder(keras.layers.Layer):
  """Base class: `call(features: dict) -> dict` of new features (float32)."""

  def __init__(self, name='encoder', **kwargs):
    super().__init__(name=name, dtype='float32', **kwargs)

  def build(self, input_shape=None):
    # The sub-layers build on the first call, from the shapes of the features they read.
    del input_shape
    self.built = True


# ------------------------------------------------------------------------------------------------------------
# Normalisation.
# ------------------------------------------------------------------------------------------------------------
class InstanceNorm(nn.LayerNorm):
  """Normalises each channel over time, per example, with a learned scale and offset per channel.

  `y[b, t, c] = (x[b, t, c] - mean_t x[b, :, c]) / sqrt(var_t x[b, :, c] + eps) * gamma[c] + beta[c]`.
  Input / output `[batch, time, channels]`.
  """

  def __init__(self, epsilon=1e-5, name='instance_norm', **kwargs):
    super().__init__(epsilon=epsilon, name=name, **kwargs)

  def call(self, x):
    x = tf.cast(x, tf.float32)
    mean, var = tf.nn.moments(x, axes=[1], keepdims=True)
    y = (x - mean) * tf.math.rsqrt(var + self.epsilon)
    return y * tf.cast(self.gamma, tf.float32) + tf.cast(self.beta, tf.float32)


def _make_norm(norm, name):
  if norm in (None, 'none'):
    return None
  if norm == 'instance':
    return InstanceNorm(dtype='float32', name=name)
  if norm == 'layer':
    return nn.LayerNorm(dtype='float32', name=name)
  raise ValueError(f"`norm` must be 'instance', 'layer' or None, got {norm!r}.")


# ------------------------------------------------------------------------------------------------------------
# z encoder.
# ------------------------------------------------------------------------------------------------------------
@gin.register
class MfccTimeDistributedRnnEncoder(Encoder):
  """Timbre latent z from MFCCs (paper): MFCC -> normalisation -> RNN -> Dense(z_dims) -> resample.

  MFCCs: `n_mfcc` (30) coefficients of a `n_mels` (128) bin log-mel spectrogram, FFT `n_fft` (1024), `overlap`
  (75%: hop 256 at 16 kHz, 62.5 frames/s), frames centred on samples 0, hop, 2 hop, ... (`ddsp.spectral_ops
  .compute_mfcc`). `norm='instance'` normalises each coefficient over time per example (robust to recording
  gain), 'layer' normalises each frame over coefficients.

  Input features: `audio` `[batch, n_samples]`. Output: `{'z': [batch, z_time_steps, z_dims]}` (float32),
  linearly interpolated from the MFCC frame rate.
  """

  def __init__(self, rnn_channels=512, rnn_type='gru', z_dims=16, z_time_steps=1000, sample_rate=16000,
               n_fft=1024, overlap=0.75, n_mels=128, n_mfcc=30, norm='instance', network_dtype=None,
               name='mfcc_rnn_encoder', **kwargs):
    super().__init__(name=name, **kwargs)
    if int(z_dims) <= 0 or int(z_time_steps) <= 0:
      raise ValueError(f'`z_dims` and `z_time_steps` must be > 0, got {z_dims} and {z_time_steps}.')
    if int(n_mfcc) > int(n_mels):
      raise ValueError(f'`n_mfcc` ({n_mfcc}) cannot exceed `n_mels` ({n_mels}).')
    self.z_dims = int(z_dims)
    self.z_time_steps = int(z_time_steps)
    self.sample_rate = int(sample_rate)
    self.n_fft = int(n_fft)
    self.overlap = float(overlap)
    self.hop = int(round(self.n_fft * (1.0 - self.overlap)))
    self.n_mels = int(n_mels)
    self.n_mfcc = int(n_mfcc)
    dtype = nn.resolve_dtype(network_dtype)
    self.norm = _make_norm(norm, 'norm')
    self.rnn = nn.Rnn(rnn_channels, rnn_type, dtype=dtype, name='rnn')
    self.dense_z = keras.layers.Dense(self.z_dims, dtype=dtype, name='dense_z')

  def compute_mfcc(self, audio):
    """`[batch, n_samples]` -> MFCCs `[batch, ceil(n_samples / hop), n_mfcc]`."""
    mfcc = spectral_ops.compute_mfcc(audio, sample_rate=self.sample_rate, n_fft=self.n_fft, overlap=self.overlap,
                                     n_mels=self.n_mels, n_mfcc=self.n_mfcc)
    return _frames_at_hop(mfcc, audio.shape[1], self.hop)

  def call(self, features, training=False):
    audio = _audio_from(features, 'MfccTimeDistributedRnnEncoder')
    x = self.compute_mfcc(audio)
    if self.norm is not None:
      x = self.norm(x)
    x = self.rnn(x, training=training)
    z = tf.cast(self.dense_z(x), tf.float32)
    return {'z': preprocessing.at_time_steps(z, self.z_time_steps, 'z')}


# ------------------------------------------------------------------------------------------------------------
# Unsupervised f0 encoder.
# ------------------------------------------------------------------------------------------------------------
def pitch_bin_frequencies(n_bins=128, f0_min_hz=20.0, f0_max_hz=2000.0):
  """Centre frequencies (Hz) of `n_bins` pitch bins evenly spaced in log frequency, NumPy float32 `[n_bins]`."""
  if n_bins < 2 or not 0 < f0_min_hz < f0_max_hz:
    raise ValueError(f'Need n_bins >= 2 and 0 < f0_min_hz < f0_max_hz, got {n_bins}, {f0_min_hz}, {f0_max_hz}.')
  return np.geomspace(f0_min_hz, f0_max_hz, n_bins).astype(np.float32)


@gin.register
class ResnetF0Encoder(Encoder):
  """Unsupervised f0 (paper): a ResNet on a log-mel spectrogram predicts a distribution over pitch bins.

  Log-mel: `n_mels` bins, FFT `n_fft`, hop `sample_rate / frame_rate` (frames centred on samples 0, hop, ...),
  so the prediction is at the frame rate. A `nn.SpectrogramResNet` and a Dense layer give logits over
  `n_bins` pitch bins log-spaced from `f0_min_hz` to `f0_max_hz`; `f0_hz` is the expectation of the bin
  frequencies under the softmax (in Hz, or in MIDI with `expectation='midi'`), which is differentiable, so the
  encoder trains jointly from the audio losses.

  Input features: `audio` `[batch, n_samples]`. Outputs (float32): `f0_hz` and `f0_scaled`
  (`hz_to_midi(f0_hz) / 127`, as the preprocessor) `[batch, time_steps, 1]`, `f0_distribution`
  `[batch, time_steps, n_bins]`. Set `output_key` to write f0 under another name (e.g. to keep a dataset's
  `f0_hz`).
  """

  def __init__(self, n_bins=128, f0_min_hz=20.0, f0_max_hz=2000.0, sample_rate=16000, frame_rate=250,
               n_fft=1024, n_mels=128, time_steps=1000, stem_ch=32, block_ch=(32, 64, 128), expectation='hz',
               output_key='f0_hz', network_dtype=None, name='resnet_f0_encoder', **kwargs):
    super().__init__(name=name, **kwargs)
    hop = sample_rate / frame_rate
    if hop != int(hop) or int(hop) > int(n_fft):
      raise ValueError(f'sample_rate / frame_rate must be an integer hop <= n_fft, got {sample_rate} / '
                       f'{frame_rate} with n_fft {n_fft}.')
    if expectation not in ('hz', 'midi'):
      raise ValueError(f"`expectation` must be 'hz' or 'midi', got {expectation!r}.")
    self.n_bins = int(n_bins)
    self.bin_hz = pitch_bin_frequencies(self.n_bins, float(f0_min_hz), float(f0_max_hz))
    self.sample_rate = int(sample_rate)
    self.hop = int(hop)
    self.n_fft = int(n_fft)
    self.n_mels = int(n_mels)
    self.time_steps = int(time_steps)
    self.expectation = expectation
    self.output_key = str(output_key)
    dtype = nn.resolve_dtype(network_dtype)
    self.resnet = nn.SpectrogramResNet(stem_ch=stem_ch, block_ch=block_ch, dtype=dtype, name='resnet')
    self.dense_logits = keras.layers.Dense(self.n_bins, dtype=dtype, name='dense_logits')

  def compute_logmel(self, audio):
    """`[batch, n_samples]` -> log-mel `[batch, ceil(n_samples / hop), n_mels]`."""
    logmel = spectral_ops.compute_logmel(audio, sample_rate=self.sample_rate, n_fft=self.n_fft,
                                         overlap=1.0 - self.hop / self.n_fft, n_mels=self.n_mels)
    return _frames_at_hop(logmel, audio.shape[1], self.hop)

  def f0_from_logits(self, logits):
    """Logits `[batch, time, n_bins]` -> (f0_hz `[batch, time, 1]`, probabilities `[batch, time, n_bins]`)."""
    probs = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
    if self.expectation == 'hz':
      f0_hz = tf.reduce_sum(probs * tf.constant(self.bin_hz), axis=-1, keepdims=True)
    else:
      midi = tf.constant(core.hz_to_midi(self.bin_hz.astype(np.float64)))
      f0_hz = core.midi_to_hz(tf.reduce_sum(probs * midi, axis=-1, keepdims=True))
    return f0_hz, probs

  def call(self, features, training=False):
    audio = _audio_from(features, 'ResnetF0Encoder')
    logmel = self.compute_logmel(audio)
    x = self.resnet(logmel)
    f0_hz, probs = self.f0_from_logits(self.dense_logits(x))
    f0_hz = preprocessing.at_time_steps(f0_hz, self.time_steps, 'f0_hz')
    probs = preprocessing.at_time_steps(probs, self.time_steps, 'f0_distribution')
    return {
        self.output_key: f0_hz,
        'f0_scaled': preprocessing.scale_f0_hz(f0_hz),
        'f0_distribution': probs,
    }


@gin.register
class CompositeEncoder(Encoder):
  """Runs `encoders` in order, each seeing the features plus the earlier encoders' outputs; merges outputs.

  E.g. `[ResnetF0Encoder(), MfccTimeDistributedRnnEncoder()]` for the unsupervised autoencoder.
  """

  def __init__(self, encoders=(), name='composite_encoder', **kwargs):
    super().__init__(name=name, **kwargs)
    encoders = list(encoders)
    if not encoders:
      raise ValueError('CompositeEncoder needs at least one encoder.')
    self.encoders = tracking.track_layers(self, encoders, 'encoder')

  def call(self, features, training=False):
    merged = dict(features)
    outputs = {}
    for encoder in self.encoders:
      new = encoder(merged, training=training)
      merged.update(new)
      outputs.update(new)
    return outputs
