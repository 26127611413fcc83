"""Preprocessors: turn dataset features into network-ready inputs.

A preprocessor is a Keras layer whose `call(features: dict) -> dict` returns new entries that the model merges
into its outputs dict. It holds no weights and always computes in float32.
"""
import gin
import keras
import tensorflow as tf

from ddsp import core

F0_SCALE_MIDI = 127.0
LOUDNESS_RANGE_DB = 120.0


def scale_f0_hz(f0_hz):
  """f0 in Hz -> `hz_to_midi(f0) / 127` (0 Hz and below map to 0). Any shape, float32."""
  return core.hz_to_midi(f0_hz) / F0_SCALE_MIDI


def unscale_f0(f0_scaled):
  """Inverse of `scale_f0_hz`: `midi_to_hz(127 * f0_scaled)`. Any shape, float32."""
  return core.midi_to_hz(f0_scaled * F0_SCALE_MIDI)


def scale_loudness_db(loudness_db, range_db=LOUDNESS_RANGE_DB):
  """Loudness in dB (0 dBFS at full scale) -> `max(loudness_db, -range_db) / range_db + 1` (0..1). Any shape."""
  return tf.maximum(loudness_db, -float(range_db)) / float(range_db) + 1.0


def get_feature(features, key, owner):
  """`features[key]`, with an error that names the owner and lists the available keys when it is missing."""
  if not isinstance(features, dict):
    raise TypeError(f'{owner} expects a dict of features, got {type(features).__name__}.')
  if key not in features:
    raise KeyError(f'{owner} needs the feature {key!r}, but the features only hold {sorted(features)}.')
  return features[key]


def at_time_steps(x, time_steps, name):
  """Makes `x` `[batch, time_steps, channels]` float32: adds a channel axis to `[batch, time]`, resamples.

  Linear interpolation (`ddsp.core.resample`), frame `t` of the input landing on step
  `t * time_steps / n_frames`.
  """
  x = core.ensure_3d(x, name)
  n_frames = x.shape[1]
  if n_frames is not None and n_frames == time_steps:
    return x
  if n_frames is not None and n_frames < 1:
    raise ValueError(f'`{name}` has no frames (shape {x.shape}).')
  return core.resample(x, time_steps, method='linear')


@gin.register
class F0LoudnessPreprocessor(keras.layers.Layer):
  """Scales f0 and loudness for the decoder and resamples them to its frame count.

  Input features: `f0_hz` and `loudness_db`, each `[batch, n_frames]` or `[batch, n_frames, 1]`.
  Outputs, each `[batch, time_steps, 1]` float32:
    `f0_scaled = hz_to_midi(f0_hz) / 127`, `ld_scaled = loudness_db / 120 + 1`, and `f0_hz`, `loudness_db`
    resampled to `time_steps` (the synthesizers read `f0_hz` from here).
  Scaling happens before resampling (linear interpolation).

  Args:
    time_steps: frame count of the outputs (the decoder's time steps; 1000 for 4 s at 250 Hz).
    loudness_range_db: `ld_scaled = max(loudness_db, -range) / range + 1`; 120 spans the whole
      loudness scale, a smaller range spreads the levels an instrument plays at over more of 0..1.
    require_f0: when False, a missing `f0_hz` is allowed (e.g. an encoder learns f0) and only the loudness
      outputs are produced.
  """

  def __init__(self, time_steps=1000, loudness_range_db=LOUDNESS_RANGE_DB, require_f0=True,
               name='f0_loudness_preprocessor', **kwargs):
    super().__init__(name=name, dtype='float32', **kwargs)
    if int(time_steps) <= 0:
      raise ValueError(f'`time_steps` must be > 0, got {time_steps}.')
    if not float(loudness_range_db) > 0:
      raise ValueError(f'`loudness_range_db` must be > 0, got {loudness_range_db}.')
    self.time_steps = int(time_steps)
    self.loudness_range_db = float(loudness_range_db)
    self.require_f0 = bool(require_f0)

  def call(self, features):
    owner = 'F0LoudnessPreprocessor'
    outputs = {}
    loudness_db = at_time_steps(get_feature(features, 'loudness_db', owner), self.time_steps, 'loudness_db')
    outputs['loudness_db'] = loudness_db
    outputs['ld_scaled'] = scale_loudness_db(loudness_db, self.loudness_range_db)
    if 'f0_hz' in features or self.require_f0:
      f0_raw = core.ensure_3d(get_feature(features, 'f0_hz', owner), 'f0_hz')
      outputs['f0_scaled'] = at_time_steps(scale_f0_hz(f0_raw), self.time_steps, 'f0_scaled')
      outputs['f0_hz'] = at_time_steps(f0_raw, self.time_steps, 'f0_hz')
    return outputs
