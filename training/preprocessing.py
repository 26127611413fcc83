"""Preprocessors: turn dataset features into network-ready inputs.

A preprocessor is a Keras layer whose `call(features: dict) -> dict` returns new entries that the model merges
into its outputs dict. It holds no weights and always computes in float32.

  F0LoudnessPreprocessor: scales the data's f0 and loudness for the decoder.
  OnlineLoudnessPreprocessor: the same, with the loudness computed inside the model from the audio (the
    real-time recipes, `gin/models/realtime/`).
"""
import gin
import keras
import tensorflow as tf

from ddsp import core
from ddsp import spectral_ops

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


@gin.register
class OnlineLoudnessPreprocessor(F0LoudnessPreprocessor):
  """`F0LoudnessPreprocessor` whose loudness is computed inside the model, from the audio.

  Training, evaluation and live inference then share one feature function:
  `ddsp.spectral_ops.compute_loudness(audio, sample_rate, frame_rate, n_fft)` (TensorFlow path), the same
  function (and, with the default `n_fft`, the same numbers, within 1e-3 dB) as `ddsp_prepare_tfrecord` and
  `ddsp_transfer` use. f0 still comes from the features (the data's CREPE f0).

  Framing of the loudness, exactly (what a causal / streaming version must reproduce):
    * hop = sample_rate / frame_rate samples (an integer; 320 at 16 kHz and 50 frames/s, 640 at 32 kHz, 960
      at 48 kHz); frame t is centred on sample t * hop: it covers samples [t * hop - n_fft / 2,
      t * hop + n_fft / 2), with zeros before sample 0 and after the last sample (the signal is padded with
      n_fft / 2 zeros on both sides, `center=True`);
    * n_frames = ceil(n_samples / hop) (the model's `time_steps` for its own window);
    * each frame is multiplied by a periodic Hann window of n_fft samples (`np.hanning(n_fft + 1)[:-1]`),
      its one-sided power spectrum |rfft|^2 (n_fft / 2 + 1 bins) is weighted per bin by the A-weighting
      (IEC 61672, 0 dB at 1 kHz, bins at k * sample_rate / n_fft) times 4 / (n_fft * sum(window^2)), summed over
      the bins, and turned into dB (10 log10, floor -120 dB), so that a full-scale 1 kHz sine reads 0 dB;
    * so frame t needs n_fft / 2 samples after t * hop: a causal stream that has received samples up to
      t * hop + n_fft / 2 can emit frame t exactly (a lookahead of n_fft / 2 samples: 64 ms at 16 kHz, 32 ms at
      32 kHz, 21.3 ms at 48 kHz with n_fft = 2048).

  When the loudness comes from the audio:
    * while training (`training=True`): always; a `loudness_db` feature from the data is ignored;
    * otherwise: a `loudness_db` feature, when given, is used as is (a caller's edited curve, e.g.
      `ddsp_transfer --loudness_shift`, or a stream's causal frames), else it is computed from `audio`.
  Outputs: as `F0LoudnessPreprocessor` (`f0_scaled`, `ld_scaled`, `f0_hz`, `loudness_db`, each
  `[batch, time_steps, 1]`). While training, `f0_hz` must already have `time_steps` frames (data prepared at
  the model's frame rate); another frame count is refused, naming both rates.

  f0 delay (`f0_delay_frames` k, the low-latency live convention; 0 by default). The data's f0 is CREPE on a
  window centred on its frame (1024 samples at 16 kHz: 512 samples of look-ahead, plus the live decimator's 32),
  too late for a live frame. With k > 0 the model reads at frame t the data's f0 (and `f0_scaled`) of frame
  t - k, after resampling to `time_steps`; frames t < k, before the data starts, read 0 Hz (unvoiced). A live
  stream (`ddsp.stream_features.FeatureStream(f0_delay_frames=k)`) emits the centred CREPE frame t - k at
  frame t, which is due k * hop16 16 kHz samples earlier (hop16 = 16000 / frame_rate), so training, offline
  inference and live play see the same f0 at the same frame. A whole number of frames keeps the two equal
  without interpolating CREPE outputs: at 50 frames/s one frame (320 samples at 16 kHz, 20 ms) brings the
  window's end to 224 samples at 16 kHz (672 at 48 kHz) after its frame, within the hop, so f0 no longer sets
  the live latency (`ddsp.training.live`).

  Args:
    sample_rate: audio samples per second (the gin macro `sample_rate`).
    frame_rate: frames per second (the gin macro `frame_rate`); sample_rate / frame_rate must be an integer.
    n_fft: loudness FFT size (2048, as the data preparation; 1024 in the low-latency recipe: its frame t ends
      512 samples after t * hop).
    f0_delay_frames: k above, a whole number of frames >= 0.
    time_steps, loudness_range_db, require_f0: as `F0LoudnessPreprocessor`.
  """

  def __init__(self, sample_rate=16000, frame_rate=50, n_fft=2048, time_steps=200,
               loudness_range_db=LOUDNESS_RANGE_DB, require_f0=True, f0_delay_frames=0,
               name='online_loudness_preprocessor', **kwargs):
    super().__init__(time_steps=time_steps, loudness_range_db=loudness_range_db, require_f0=require_f0,
                     name=name, **kwargs)
    sample_rate, frame_rate, n_fft = int(sample_rate), int(frame_rate), int(n_fft)
    if sample_rate <= 0 or frame_rate <= 0 or sample_rate % frame_rate:
      raise ValueError(f'OnlineLoudnessPreprocessor: sample_rate / frame_rate must be a positive integer hop, '
                       f'got {sample_rate} / {frame_rate}.')
    if n_fft < 2 or n_fft % 2:
      raise ValueError(f'OnlineLoudnessPreprocessor: n_fft must be an even number >= 2, got {n_fft}.')
    if f0_delay_frames != int(f0_delay_frames) or int(f0_delay_frames) < 0:
      raise ValueError(f'OnlineLoudnessPreprocessor: f0_delay_frames must be a whole number of frames >= 0, got '
                       f'{f0_delay_frames}.')
    self.sample_rate, self.frame_rate, self.n_fft = sample_rate, frame_rate, n_fft
    self.f0_delay_frames = int(f0_delay_frames)

  @property
  def hop_size(self):
    """Samples per frame: sample_rate / frame_rate."""
    return self.sample_rate // self.frame_rate

  def compute_loudness(self, audio):
    """Loudness in dB `[batch, ceil(n_samples / hop)]` of audio `[batch, n_samples]` (see the class doc)."""
    return spectral_ops.compute_loudness(tf.stop_gradient(core.tf_float32(audio, 'audio')), self.sample_rate,
                                         self.frame_rate, n_fft=self.n_fft, use_tf=True)

  def call(self, features, training=False):
    owner = 'OnlineLoudnessPreprocessor'
    if not isinstance(features, dict):
      raise TypeError(f'{owner} expects a dict of features, got {type(features).__name__}.')
    features = dict(features)
    if training or 'loudness_db' not in features:
      features['loudness_db'] = self.compute_loudness(get_feature(features, 'audio', owner))
    if training and 'f0_hz' in features:
      n_f0 = core.ensure_3d(features['f0_hz'], 'f0_hz').shape[1]
      if n_f0 is not None and n_f0 != self.time_steps:
        data_rate = n_f0 * self.frame_rate / float(self.time_steps)
        raise ValueError(f'{owner}: f0_hz has {n_f0} frames per example but the model runs at {self.frame_rate} '
                         f'frames/s ({self.time_steps} frames); the data was prepared at {data_rate:g} frames/s. '
                         f'Prepare it with --frame_rate={self.frame_rate} or set the gin macro frame_rate.')
    outputs = super().call(features)
    if self.f0_delay_frames:
      for key in ('f0_hz', 'f0_scaled'):
        if key in outputs:
          outputs[key] = delay_frames(outputs[key], self.f0_delay_frames)
    return outputs


def delay_frames(x, frames):
  """`[batch, time, channels]` -> the same shape, frame t holding frame t - `frames` (zeros before the start)."""
  if frames == 0:
    return x
  n = x.shape[1] if x.shape[1] is not None else tf.shape(x)[1]
  return tf.pad(x, [[0, 0], [frames, 0], [0, 0]])[:, :n]
