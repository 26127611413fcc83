"""Decoders: latent controls -> synthesizer parameters.

`RnnFcDecoder` (paper): each input (`ld_scaled`, `f0_scaled`, `z`) through its own dense stack, concatenated ->
RNN -> concatenated with the stacks' outputs -> dense stack -> Dense to the sum of the output splits, split into
named outputs (`amps`, `harmonic_distribution`, `noise_magnitudes`).
"""
import gin
import keras
import tensorflow as tf

from ddsp import core
from ddsp import tracking
from ddsp.training import nn
from ddsp.training import preprocessing

DEFAULT_OUTPUT_SPLITS = (('amps', 1), ('harmonic_distribution', 60), ('noise_magnitudes', 65))


def _normalise_splits(output_splits):
  splits = []
  for item in output_splits:
    if not isinstance(item, (tuple, list)) or len(item) != 2:
      raise ValueError(f'`output_splits` must be (name, size) pairs, got {item!r}.')
    name, size = str(item[0]), int(item[1])
    if size <= 0:
      raise ValueError(f'Output split {name!r} must have a positive size, got {size}.')
    splits.append((name, size))
  if not splits:
    raise ValueError('`output_splits` is empty.')
  names = [n for n, _ in splits]
  if len(set(names)) != len(names):
    raise ValueError(f'`output_splits` names must be unique, got {names}.')
  return tuple(splits)


@gin.register
class RnnFcDecoder(keras.layers.Layer):
  """The paper's decoder: per-input dense stacks -> RNN -> dense stack -> Dense -> named splits.

  Architecture (per frame except for the RNN):
    s_i = DenseStack_i(x_i) for each input key (3 x [Dense ch, LayerNorm, leaky ReLU]; identity when
    `layers_per_stack=0`), h = RNN(concat(s_i)), y = DenseStack_out(concat(h, s_1, ..., s_n)),
    out = Dense(sum of split sizes)(y), split along channels.

  Inputs: `features[k]` for k in `input_keys`, each `[batch, time, channels]` (`[batch, time]` gets a channel
  axis) with the same `time`. Outputs: dict name -> `[batch, time, size]` float32 for each `output_splits`
  entry. The network follows `network_dtype` (default `nn.set_network_dtype`; e.g. 'mixed_bfloat16'); the
  outputs are always cast to float32 for the synthesizers.
  """

  def __init__(self, rnn_channels=512, rnn_type='gru', ch=512, layers_per_stack=3,
               input_keys=('ld_scaled', 'f0_scaled', 'z'), output_splits=DEFAULT_OUTPUT_SPLITS,
               network_dtype=None, name='rnn_fc_decoder', **kwargs):
    super().__init__(name=name, dtype='float32', **kwargs)
    if isinstance(input_keys, str):
      input_keys = (input_keys,)
    self.input_keys = tuple(str(k) for k in input_keys)
    if not self.input_keys:
      raise ValueError('RnnFcDecoder needs at least one input key.')
    self.output_splits = _normalise_splits(output_splits)
    self.n_out = sum(size for _, size in self.output_splits)
    self.rnn_channels = int(rnn_channels)
    self.ch = int(ch)
    self.layers_per_stack = int(layers_per_stack)
    dtype = nn.resolve_dtype(network_dtype)
    self.network_dtype = dtype
    self.input_stacks = [nn.DenseStack(self.ch, self.layers_per_stack, dtype=dtype, name=f'input_stack_{i}')
                         for i in range(len(self.input_keys))]
    tracking.track_layers(self, self.input_stacks, 'input_stack')
    self.rnn = nn.Rnn(self.rnn_channels, rnn_type, dtype=dtype, name='rnn')
    self.out_stack = nn.DenseStack(self.ch, self.layers_per_stack, dtype=dtype, name='out_stack')
    self.dense_out = keras.layers.Dense(self.n_out, dtype=dtype, name='dense_out')

  def build(self, input_shape=None):
    # The sub-layers build on the first call, from the shapes of the selected features.
    del input_shape
    self.built = True

  def _gather_inputs(self, features):
    inputs = []
    for key in self.input_keys:
      x = preprocessing.get_feature(features, key, f'RnnFcDecoder (input_keys={list(self.input_keys)})')
      inputs.append(core.ensure_3d(x, key))
    steps = {k: x.shape[1] for k, x in zip(self.input_keys, inputs)}
    if len({s for s in steps.values() if s is not None}) > 1:
      raise ValueError(f'RnnFcDecoder inputs must share the time axis, got time steps {steps}.')
    return inputs

  def call(self, features, training=False):
    inputs = self._gather_inputs(features)
    stacks = [stack(x) for stack, x in zip(self.input_stacks, inputs)]
    x = stacks[0] if len(stacks) == 1 else tf.concat(stacks, axis=-1)
    h = self.rnn(x, training=training)
    # Mixed precision: the stacks may be float32 when they are identities; match the RNN's dtype.
    y = tf.concat([h] + [tf.cast(s, h.dtype) for s in stacks], axis=-1)
    y = self.out_stack(y)
    out = tf.cast(self.dense_out(y), tf.float32)
    return nn.split_to_dict(out, self.output_splits)

  def param_count_formula(self, input_channels):
    """Closed-form parameter count for inputs with `input_channels` channels each (a list, in key order)."""
    lps, ch = self.layers_per_stack, self.ch
    total = sum(nn.dense_stack_param_count(c, ch, lps) for c in input_channels)
    stack_out = [ch if lps else c for c in input_channels]
    total += nn.rnn_param_count(sum(stack_out), self.rnn_channels, self.rnn.rnn_type)
    out_in = self.rnn_channels + sum(stack_out)
    total += nn.dense_stack_param_count(out_in, ch, lps)
    total += (ch if lps else out_in) * self.n_out + self.n_out
    return total
