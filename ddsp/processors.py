"""Processors: Keras 3 layers that turn network outputs into controls and controls into audio.

A `Processor` splits its work in two, so a user can call either half:
  * `get_controls(*inputs)`: network outputs -> physical controls (e.g. exp_sigmoid, normalisation), a dict;
  * `get_signal(**controls)`: controls -> audio `[batch, n_samples]`.
Calling the layer runs both.

`ProcessorGroup` wires processors into a DAG written as a list of `(processor, [input keys])`; each node's
outputs are stored under `<processor name>/signal` and `<processor name>/controls`, and the last node's signal is
the group's output.

Streaming. A processor that can run block by block returns its `BlockStep` from `block_step` (written next to
its offline code, sharing its maths); `ddsp.blocks.GroupStream` drives a whole DAG of them. A step gets one
`Block` at a time and carries its own state (a dict of tensors) from block to block.
"""
import dataclasses
import os

os.environ.setdefault('KERAS_BACKEND', 'tensorflow')

import gin
import keras
import tensorflow as tf

from ddsp import core
from ddsp import tracking


class Processor(keras.layers.Layer):
  """Base class: `__call__` = `get_signal(**get_controls(...))`."""

  def __init__(self, name=None, trainable=True, **kwargs):
    super().__init__(name=name, trainable=trainable, **kwargs)
    # Processors create their variables in __init__ (if any), so they need no shape-dependent build step; this
    # also stops Keras from tracing `call` symbolically to build them.
    self.built = True

  def call(self, *args, return_outputs_dict=False, **kwargs):
    """Runs `get_controls` then `get_signal`.

    Args:
      *args: the processor's inputs (see `get_controls` of the subclass).
      return_outputs_dict: if True return `{'signal': ..., 'controls': {...}}` instead of the signal.
      **kwargs: keyword inputs for `get_controls`.

    Returns:
      The signal `[batch, n_samples]`, or the outputs dict.
    """
    controls = self.get_controls(*args, **kwargs)
    signal = self.get_signal(**controls)
    if return_outputs_dict:
      return {'signal': signal, 'controls': controls}
    return signal

  def get_controls(self, *args, **kwargs):
    """Converts inputs (network outputs) to a dict of controls. Implemented by subclasses."""
    raise NotImplementedError

  def get_signal(self, *args, **kwargs):
    """Converts controls to a signal. Implemented by subclasses."""
    raise NotImplementedError

  def block_step(self, config, input_channels):
    """This processor's block-by-block form (a `BlockStep`), for streaming.

    Args:
      config: the stream's `StreamConfig` (hop, frames per block).
      input_channels: per input key, the channel count of a frame-rate input, or None for an audio signal.

    Raises:
      NotImplementedError: the processor has no block step (the default).
    """
    raise NotImplementedError(f'{type(self).__name__} has no block step.')


@dataclasses.dataclass(frozen=True)
class StreamConfig:
  """The geometry of a stream: `hop` samples per frame, `block_frames` frames per block.

  Attributes:
    hop: samples per frame.
    block_frames: frames per block (`block_size = hop * block_frames` samples).
    reverb_partition: a reverb's partition length is gcd(block_size, reverb_partition) samples.
  """
  hop: int
  block_frames: int
  reverb_partition: int = 256

  @property
  def block_size(self):
    return self.hop * self.block_frames


@dataclasses.dataclass(frozen=True)
class Block:
  """What one step of a stream sees besides its inputs and state.

  A stream lags its input by `latency_frames` D frames: the block that brings input frames [s, s + F) makes the
  audio of output frames [s - D, s - D + n_frames). Frame-rate inputs arrive as `[B, D + 1 + n_frames, C]`,
  frames [s - D - 1, s + n_frames) (the output frames, one before them and the D after them); audio inputs
  (signals of earlier nodes) as `[B, n_frames * hop]`, the output frames' samples.

  Attributes:
    n_frames: output frames of this block (the block's frames, or D at the flush).
    hop: samples per frame.
    latency_frames: D.
    valid: `[n_frames]` float, 0 for the stream's first D frames (the silent pre-roll), else 1.
    final: the flush (input ended: the last frame is held, as offline synthesis holds it).
    noise: `[B, n_frames * hop]` uniform noise of the block's input frames [s, s + F) (None at the flush).
  """
  n_frames: int
  hop: int
  latency_frames: int
  valid: object
  final: bool = False
  noise: object = None

  @property
  def n_samples(self):
    return self.n_frames * self.hop

  @property
  def valid_samples(self):
    """`[n_frames * hop]`: `valid` per sample."""
    return tf.repeat(self.valid, self.hop)


class BlockStep:
  """The block-by-block form of one processor (see `Block` for the alignment of inputs and output).

  Attributes:
    reads_frames: its inputs are frame-rate controls (True) or earlier audio signals (False).
    lookahead_frames: how many frames after an output frame its audio depends on (the stream's latency is the
      largest over the DAG).
  """
  reads_frames = True
  lookahead_frames = 0

  def state_spec(self, batch_size, latency_frames):
    """Name -> `tf.TensorSpec` of the state this step carries (batch axis first); {} when stateless."""
    del batch_size, latency_frames
    return {}

  def step(self, inputs, state, block):
    """One block: (list of input tensors, state dict, `Block`) -> (audio `[B, block.n_samples]`, new state)."""
    raise NotImplementedError


class _AddStep(BlockStep):
  """`Add` on blocks: the sum of two aligned signals (no state)."""
  reads_frames = False

  def step(self, inputs, state, block):
    return inputs[0] + inputs[1], {}


def _lookup(outputs, key):
  """Finds `key` in a (nested) dict, also following 'a/b/c' paths."""
  if key in outputs:
    return outputs[key]
  node = outputs
  for part in key.split('/'):
    if isinstance(node, dict) and part in node:
      node = node[part]
    else:
      available = sorted(k for k in outputs if not isinstance(outputs[k], dict)) + sorted(
          k for k in outputs if isinstance(outputs[k], dict))
      raise KeyError(f'ProcessorGroup input key {key!r} not found. Available keys: {available}')
  return node


@gin.register
class ProcessorGroup(Processor):
  """A directed acyclic graph of processors.

  Written in gin as, e.g.:
    ProcessorGroup.dag = [
        (@synths.Harmonic(), ['amps', 'harmonic_distribution', 'f0_hz']),
        (@synths.FilteredNoise(), ['noise_magnitudes']),
        (@processors.Add(), ['harmonic/signal', 'filtered_noise/signal']),
        (@effects.Reverb(), ['add/signal']),
    ]
  Input keys name entries of the input dict or outputs of earlier nodes ('<name>/signal',
  '<name>/controls/<control>').
  """

  def __init__(self, dag=(), name='processor_group', **kwargs):
    super().__init__(name=name, **kwargs)
    dag = list(dag)
    if not dag:
      raise ValueError('ProcessorGroup needs a non-empty `dag` of (processor, [input keys]) pairs.')
    processors, keys = [], []
    for i, node in enumerate(dag):
      if isinstance(node, dict):
        node = (node['processor'], node['inputs'])
      if (not isinstance(node, (tuple, list)) or len(node) != 2 or not isinstance(node[0], keras.layers.Layer)
          or isinstance(node[1], str)):
        raise ValueError(f'ProcessorGroup.dag[{i}] must be (processor, [input keys]), got {node!r}.')
      processors.append(node[0])
      keys.append([str(k) for k in node[1]])
    names = [p.name for p in processors]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
      raise ValueError(f'ProcessorGroup processor names must be unique, got duplicates {duplicates}; give each '
                       'processor a `name=`.')
    self.processors = processors
    # Checkpoints reach each node through `dag_<i>` (a list alone is invisible to tf.train.Checkpoint).
    tracking.track_layers(self, processors, 'dag')
    self._input_keys = keys

  @property
  def dag(self):
    return list(zip(self.processors, self._input_keys))

  def call(self, inputs, return_outputs_dict=False):
    """Runs the DAG.

    Args:
      inputs: dict of tensors (e.g. 'amps' [B,T,1], 'harmonic_distribution' [B,T,K], 'f0_hz' [B,T,1], ...).
      return_outputs_dict: return every node's controls and signal (plus 'signal') instead of the audio.

    Returns:
      The last node's signal `[batch, n_samples]`, or the dict of all outputs.
    """
    outputs = self.get_controls(inputs)
    if return_outputs_dict:
      return outputs
    return outputs['signal']

  def get_controls(self, inputs):
    """Runs every node; returns `{'<name>/signal', '<name>/controls', ..., 'signal'}` plus the inputs."""
    if not isinstance(inputs, dict):
      raise ValueError(f'ProcessorGroup expects a dict of named inputs, got {type(inputs).__name__}.')
    outputs = dict(inputs)
    signal = None
    for processor, keys in zip(self.processors, self._input_keys):
      args = [_lookup(outputs, k) for k in keys]
      node = processor(*args, return_outputs_dict=True)
      outputs[f'{processor.name}/signal'] = node['signal']
      outputs[f'{processor.name}/controls'] = node['controls']
      signal = node['signal']
    outputs['signal'] = signal
    return outputs

  def get_signal(self, outputs):
    return outputs['signal']


@gin.register
class Add(Processor):
  """Sum of two signals: `call(signal_one [B,N], signal_two [B,N]) -> [B,N]`."""

  def __init__(self, name='add', **kwargs):
    super().__init__(name=name, **kwargs)

  def get_controls(self, signal_one, signal_two):
    one = core.tf_float32(signal_one, 'signal_one')
    two = core.tf_float32(signal_two, 'signal_two')
    if one.shape.is_fully_defined() and two.shape.is_fully_defined() and one.shape != two.shape:
      raise ValueError(f'Add: `signal_one` {one.shape} and `signal_two` {two.shape} must have the same shape.')
    return {'signal_one': one, 'signal_two': two}

  def get_signal(self, signal_one, signal_two):
    return signal_one + signal_two

  def block_step(self, config, input_channels):
    return _AddStep()


@gin.register
class Mix(Processor):
  """Time-varying crossfade: `(1 - m) * signal_one + m * signal_two`, m = sigmoid(mix_level) upsampled.

  `call(signal_one [B,N], signal_two [B,N], mix_level [B,T,1]) -> [B,N]`.
  """

  def __init__(self, scale_fn=tf.nn.sigmoid, name='mix', **kwargs):
    super().__init__(name=name, **kwargs)
    self.scale_fn = scale_fn

  def get_controls(self, signal_one, signal_two, mix_level):
    one = core.tf_float32(signal_one, 'signal_one')
    two = core.tf_float32(signal_two, 'signal_two')
    mix = core.ensure_3d(mix_level, 'mix_level')
    if self.scale_fn is not None:
      mix = self.scale_fn(mix)
    return {'signal_one': one, 'signal_two': two, 'mix_level': mix}

  def get_signal(self, signal_one, signal_two, mix_level):
    n_samples = signal_one.shape[1]
    mix = core.resample(mix_level, n_samples, method='window')[..., 0]
    return (1.0 - mix) * signal_one + mix * signal_two
