"""Neural-network building blocks for the DDSP encoders and decoders (Keras 3 layers).

Shapes follow the library convention: frame-rate features are `[batch, time, channels]`; spectrograms fed to
the ResNet are `[batch, time, frequency]` (a channel axis is added internally).

Mixed precision: every layer here takes a Keras `dtype` (a dtype policy such as `'mixed_bfloat16'`). When it is
`None`, the module default set by `set_network_dtype` is used, and when that is `None` too, the Keras global
policy applies. With a mixed policy the weights stay float32 and the maths runs in the compute dtype; callers
that feed synthesizers cast the results back to float32 (the decoder does).
"""
import math

import gin
import keras
import tensorflow as tf

from ddsp import tracking
from ddsp.training import gru

_NETWORK_DTYPE = None


# ------------------------------------------------------------------------------------------------------------
# Network dtype policy.
# ------------------------------------------------------------------------------------------------------------
@gin.configurable
def set_network_dtype(dtype=None):
  """Sets the default dtype policy of the layers built by this module, the encoders and the decoders.

  Only the neural networks are affected: synthesizers, effects, losses and preprocessing stay float32.
  Call it before building a model (e.g. `set_network_dtype('mixed_bfloat16')`); layers already built keep
  their policy.

  Args:
    dtype: a Keras dtype policy name ('float32', 'mixed_bfloat16', 'mixed_float16', 'bfloat16') or None to
      fall back to the Keras global policy. The aliases 'bfloat16' / 'bf16' and 'float16' / 'fp16' mean the
      mixed policies (float32 variables).

  Returns:
    The policy name now in effect (or None).
  """
  global _NETWORK_DTYPE
  _NETWORK_DTYPE = canonical_dtype(dtype)
  return _NETWORK_DTYPE


def get_network_dtype():
  """The module default set by `set_network_dtype` (a policy name or None)."""
  return _NETWORK_DTYPE


def canonical_dtype(dtype):
  """Maps user spellings of a precision to a Keras dtype policy name; None stays None."""
  if dtype is None:
    return None
  if isinstance(dtype, keras.DTypePolicy):
    return dtype.name
  aliases = {
      'float32': 'float32', 'fp32': 'float32', 'none': None, '': None,
      'bfloat16': 'mixed_bfloat16', 'bf16': 'mixed_bfloat16', 'mixed_bfloat16': 'mixed_bfloat16',
      'float16': 'mixed_float16', 'fp16': 'mixed_float16', 'mixed_float16': 'mixed_float16',
  }
  key = str(dtype).lower()
  if key not in aliases:
    raise ValueError(f'Unknown network dtype {dtype!r}; expected one of float32, mixed_bfloat16, '
                     'mixed_float16 (or the aliases bfloat16/bf16, float16/fp16).')
  return aliases[key]


def resolve_dtype(dtype=None):
  """The dtype policy a network layer should use: `dtype` if given, else the module default (may be None)."""
  return canonical_dtype(dtype) if dtype is not None else _NETWORK_DTYPE


# ------------------------------------------------------------------------------------------------------------
# Helpers.
# ------------------------------------------------------------------------------------------------------------
def leaky_relu(x, negative_slope=0.2):
  """Leaky ReLU with slope 0.2 for negative inputs (any shape)."""
  return tf.nn.leaky_relu(x, alpha=negative_slope)


def get_nonlinearity(name):
  """Looks up an activation by name: 'leaky_relu', 'relu', 'tanh', 'sigmoid', 'gelu', 'linear'/None."""
  table = {
      'leaky_relu': leaky_relu,
      'relu': tf.nn.relu,
      'tanh': tf.tanh,
      'sigmoid': tf.sigmoid,
      'gelu': tf.nn.gelu,
      'linear': lambda x: x,
      None: lambda x: x,
  }
  if callable(name):
    return name
  if name not in table:
    raise ValueError(f'Unknown nonlinearity {name!r}; choose from {sorted(k for k in table if k)}.')
  return table[name]


def split_to_dict(tensor, splits):
  """Splits the last axis of `tensor` into named parts.

  Args:
    tensor: `[..., sum(sizes)]`.
    splits: sequence of `(name, size)` pairs.

  Returns:
    dict name -> `[..., size]`, in the order of `splits`.
  """
  sizes = [int(s) for _, s in splits]
  if tensor.shape[-1] is not None and tensor.shape[-1] != sum(sizes):
    raise ValueError(f'Cannot split {tensor.shape[-1]} channels into {list(splits)} (sum {sum(sizes)}).')
  parts = tf.split(tensor, sizes, axis=-1)
  return {name: part for (name, _), part in zip(splits, parts)}


def _flatten_time(x):
  """`[batch, time, ch]` -> (`[batch * time, ch]`, restore_fn). 2-D input passes through."""
  if x.shape.rank == 2:
    return x, lambda y: y
  shape = tf.shape(x)
  lead = [shape[i] for i in range(x.shape.rank - 1)]
  flat = tf.reshape(x, [-1, x.shape[-1]])

  def restore(y):
    return tf.reshape(y, lead + [y.shape[-1]])

  return flat, restore


# ------------------------------------------------------------------------------------------------------------
# Layer normalisation with a lean gradient.
# ------------------------------------------------------------------------------------------------------------
@tf.custom_gradient
def _normalize_last_axis(x, epsilon):
  """`(x - mean) / sqrt(var + eps)` over the last axis, float32, with a closed-form gradient.

  The gradient `inv_std * (dy - mean(dy) - x_hat * mean(dy * x_hat))` takes three passes over the data instead
  of the dozen ops of the automatic one.
  """
  mean = tf.reduce_mean(x, axis=-1, keepdims=True)
  centred = x - mean
  inv_std = tf.math.rsqrt(tf.reduce_mean(centred * centred, axis=-1, keepdims=True) + epsilon)
  x_hat = centred * inv_std

  def grad(dy):
    dx = inv_std * (dy - tf.reduce_mean(dy, axis=-1, keepdims=True)
                    - x_hat * tf.reduce_mean(dy * x_hat, axis=-1, keepdims=True))
    return dx, tf.zeros_like(epsilon)

  return x_hat, grad


@gin.register
class LayerNorm(keras.layers.Layer):
  """Layer normalisation over the last axis with a learned per-channel scale and offset.

  `y = (x - mean(x)) / sqrt(var(x) + epsilon) * gamma + beta`, statistics over channels per position. The maths
  is float32 whatever the compute dtype; the output is in the compute dtype. Same parameters as
  `keras.layers.LayerNormalization` (gamma, beta), faster gradient.

  Input / output `[..., channels]`.
  """

  def __init__(self, epsilon=1e-5, dtype=None, name='layer_norm', **kwargs):
    super().__init__(name=name, dtype=dtype, **kwargs)
    self.epsilon = float(epsilon)

  def build(self, input_shape):
    ch = input_shape[-1]
    self.gamma = self.add_weight(shape=(ch,), initializer='ones', name='gamma')
    self.beta = self.add_weight(shape=(ch,), initializer='zeros', name='beta')
    self.built = True

  def call(self, x):
    x_hat = _normalize_last_axis(tf.cast(x, tf.float32), tf.constant(self.epsilon, tf.float32))
    gamma = tf.cast(tf.convert_to_tensor(self.gamma), tf.float32)
    beta = tf.cast(tf.convert_to_tensor(self.beta), tf.float32)
    return tf.cast(x_hat * gamma + beta, self.compute_dtype)


# ------------------------------------------------------------------------------------------------------------
# Dense stacks.
# ------------------------------------------------------------------------------------------------------------
@gin.register
class DenseStack(keras.layers.Layer):
  """`layers` x [Dense(ch), LayerNorm, nonlinearity], applied per frame.

  All frames of all examples go through one matrix multiply per layer (the time axis is folded into the
  batch axis), which is the fast path on CPUs and GPUs. With `layers=0` the stack is the identity.

  Input `[batch, time, channels_in]` (or `[batch, channels_in]`); output `[batch, time, ch]` (identity:
  unchanged).
  """

  def __init__(self, ch=512, layers=3, nonlinearity='leaky_relu', dtype=None, name='dense_stack', **kwargs):
    super().__init__(name=name, dtype=resolve_dtype(dtype), **kwargs)
    if int(layers) < 0:
      raise ValueError(f'`layers` must be >= 0, got {layers}.')
    if int(ch) <= 0 and int(layers) > 0:
      raise ValueError(f'`ch` must be > 0, got {ch}.')
    self.ch = int(ch)
    self.n_layers = int(layers)
    self.nonlinearity = get_nonlinearity(nonlinearity)
    self.dense_layers = [
        keras.layers.Dense(self.ch, dtype=self.dtype_policy, name=f'dense_{i}') for i in range(self.n_layers)
    ]
    self.norm_layers = [
        LayerNorm(dtype=self.dtype_policy, name=f'layer_norm_{i}')
        for i in range(self.n_layers)
    ]
    tracking.track_layers(self, self.dense_layers, 'dense')
    tracking.track_layers(self, self.norm_layers, 'norm')

  def build(self, input_shape):
    in_ch = input_shape[-1]
    for dense, norm in zip(self.dense_layers, self.norm_layers):
      dense.build((None, in_ch))
      norm.build((None, self.ch))
      in_ch = self.ch
    self.built = True

  def call(self, x):
    if self.n_layers == 0:
      return x
    flat, restore = _flatten_time(x)
    for dense, norm in zip(self.dense_layers, self.norm_layers):
      flat = self.nonlinearity(norm(dense(flat)))
    return restore(flat)

  def compute_output_shape(self, input_shape):
    if self.n_layers == 0:
      return input_shape
    return tuple(input_shape[:-1]) + (self.ch,)


def dense_stack_param_count(in_ch, ch, layers):
  """Closed-form number of parameters of a `DenseStack` (Dense kernel+bias, LayerNorm gamma+beta)."""
  if layers == 0:
    return 0
  first = in_ch * ch + ch + 2 * ch
  rest = (layers - 1) * (ch * ch + ch + 2 * ch)
  return first + rest


# ------------------------------------------------------------------------------------------------------------
# Recurrent layers.
# ------------------------------------------------------------------------------------------------------------
@gin.register
class Rnn(keras.layers.Layer):
  """A GRU or LSTM that returns the whole sequence.

  Input `[batch, time, channels]`; output `[batch, time, units]` (`2 * units` when bidirectional).
  A GRU is a `gru.FastGru` (Keras' GRU weights; `implementation` 'auto' takes the fast CPU path without a GPU
  and Keras' cuDNN path with one; 'fast' / 'keras' force one). GRUs use the reset-after formulation (two
  bias vectors), so a GRU holds
  `3 * (in * units + units * units + 2 * units)` parameters and an LSTM `4 * (in * units + units * units +
  units)`.
  """

  def __init__(self, units=512, rnn_type='gru', bidirectional=False, implementation='auto', dtype=None,
               name='rnn', **kwargs):
    super().__init__(name=name, dtype=resolve_dtype(dtype), **kwargs)
    rnn_type = str(rnn_type).lower()
    if rnn_type not in ('gru', 'lstm'):
      raise ValueError(f"`rnn_type` must be 'gru' or 'lstm', got {rnn_type!r}.")
    if implementation not in ('auto', 'fast', 'keras'):
      raise ValueError(f"`implementation` must be 'auto', 'fast' or 'keras', got {implementation!r}.")
    if int(units) <= 0:
      raise ValueError(f'`units` must be > 0, got {units}.')
    self.units = int(units)
    self.rnn_type = rnn_type
    self.bidirectional = bool(bidirectional)
    self.implementation = implementation
    self.rnn = self._make_layer(rnn_type)
    # Bidirectional: a second RNN reads the time-reversed input; outputs are concatenated (forward first).
    self.rnn_backward = self._make_layer(rnn_type + '_backward') if self.bidirectional else None

  def _make_layer(self, name):
    if self.rnn_type == 'gru':
      return gru.FastGru(self.units, implementation=self.implementation, dtype=self.dtype_policy, name=name)
    return keras.layers.LSTM(self.units, return_sequences=True, dtype=self.dtype_policy, name=name)

  def build(self, input_shape):
    self.rnn.build(tuple(input_shape))
    if self.rnn_backward is not None:
      self.rnn_backward.build(tuple(input_shape))
    self.built = True

  def call(self, x, training=False):
    if x.shape.rank != 3:
      raise ValueError(f'Rnn expects [batch, time, channels], got shape {x.shape}.')
    y = self.rnn(x, training=training)
    if self.rnn_backward is None:
      return y
    y_back = tf.reverse(self.rnn_backward(tf.reverse(x, axis=[1]), training=training), axis=[1])
    return tf.concat([y, y_back], axis=-1)

  def compute_output_shape(self, input_shape):
    return tuple(input_shape[:-1]) + (self.units * (2 if self.bidirectional else 1),)


def rnn_param_count(in_ch, units, rnn_type='gru', bidirectional=False):
  """Closed-form parameter count of `Rnn` (Keras GRU with reset_after=True, or LSTM)."""
  if rnn_type == 'gru':
    n = 3 * (in_ch * units + units * units + 2 * units)
  else:
    n = 4 * (in_ch * units + units * units + units)
  return 2 * n if bidirectional else n


# ------------------------------------------------------------------------------------------------------------
# A small 2-D ResNet for spectrograms.
# ------------------------------------------------------------------------------------------------------------
class _ResidualBlock(keras.layers.Layer):
  """Two 3x3 convolutions with LayerNorm and ReLU, plus a (projected) shortcut.

  Input / output `[batch, time, freq, channels]`; the frequency axis is strided by `freq_stride`, time is
  never strided (the encoder's output stays at the frame rate).
  """

  def __init__(self, ch, freq_stride=1, dtype=None, name='residual_block', **kwargs):
    super().__init__(name=name, dtype=dtype, **kwargs)
    self.ch = int(ch)
    self.freq_stride = int(freq_stride)
    policy = self.dtype_policy
    self.conv1 = keras.layers.Conv2D(self.ch, 3, strides=(1, self.freq_stride), padding='same', dtype=policy,
                                     name='conv1')
    self.norm1 = LayerNorm(dtype=policy, name='norm1')
    self.conv2 = keras.layers.Conv2D(self.ch, 3, padding='same', dtype=policy, name='conv2')
    self.norm2 = LayerNorm(dtype=policy, name='norm2')
    self.project = None
    self._in_ch = None

  def build(self, input_shape):
    in_ch = input_shape[-1]
    self._in_ch = in_ch
    if in_ch != self.ch or self.freq_stride != 1:
      # A strided 1x1 convolution, written as subsampling + Dense over channels (same maths and parameters;
      # avoids a crash of TensorFlow's oneDNN filter gradient for strided 1x1 convolutions on narrow inputs).
      self.project = keras.layers.Dense(self.ch, dtype=self.dtype_policy, name='project')
      self.project.build(tuple(input_shape))
    self.conv1.build(tuple(input_shape))
    mid = tuple(input_shape[:-1]) + (self.ch,)
    self.norm1.build(mid)
    self.conv2.build(mid)
    self.norm2.build(mid)
    self.built = True

  def call(self, x):
    shortcut = x
    if self.project is not None:
      shortcut = self.project(x[:, :, ::self.freq_stride, :])
    y = tf.nn.relu(self.norm1(self.conv1(x)))
    y = self.norm2(self.conv2(y))
    return tf.nn.relu(y + shortcut)


@gin.register
class SpectrogramResNet(keras.layers.Layer):
  """A small ResNet over a spectrogram that keeps the time resolution and pools frequency away.

  Stem: Conv 7x7 (`stem_ch`, frequency stride 2), LayerNorm, ReLU, max-pool 1x2 over frequency; then one
  residual block per entry of `block_ch`, each striding frequency by 2. The remaining frequency bins and
  channels are flattened per frame.

  Input `[batch, time, freq]` (or `[batch, time, freq, 1]`); output `[batch, time, freq_out * block_ch[-1]]`
  with `freq_out = ceil(freq / 2**(2 + len(block_ch)))`.
  """

  def __init__(self, stem_ch=32, block_ch=(32, 64, 128), dtype=None, name='spectrogram_resnet', **kwargs):
    super().__init__(name=name, dtype=resolve_dtype(dtype), **kwargs)
    policy = self.dtype_policy
    self.stem_ch = int(stem_ch)
    self.block_ch = tuple(int(c) for c in block_ch)
    self.stem = keras.layers.Conv2D(self.stem_ch, 7, strides=(1, 2), padding='same', dtype=policy, name='stem')
    self.stem_norm = LayerNorm(dtype=policy, name='stem_norm')
    self.blocks = [_ResidualBlock(c, freq_stride=2, dtype=policy, name=f'block_{i}')
                   for i, c in enumerate(self.block_ch)]
    tracking.track_layers(self, self.blocks, 'block')

  def call(self, spectrogram):
    x = spectrogram
    if x.shape.rank == 3:
      x = x[..., tf.newaxis]
    if x.shape.rank != 4:
      raise ValueError(f'SpectrogramResNet expects [batch, time, freq], got shape {spectrogram.shape}.')
    x = tf.nn.relu(self.stem_norm(self.stem(x)))
    x = tf.nn.max_pool2d(x, ksize=(1, 2), strides=(1, 2), padding='SAME')
    for block in self.blocks:
      x = block(x)
    shape = tf.shape(x)
    return tf.reshape(x, [shape[0], shape[1], x.shape[2] * x.shape[3]])

  def output_channels(self, n_freq):
    """Channels per frame of the output for a spectrogram with `n_freq` bins."""
    f = n_freq
    for _ in range(2 + len(self.block_ch)):
      f = math.ceil(f / 2)
    return f * (self.block_ch[-1] if self.block_ch else self.stem_ch)
