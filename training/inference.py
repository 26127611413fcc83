"""Inference with a trained model: resynthesis, independent controls, timbre transfer, room acoustics.

Everything the paper demonstrates with a trained DDSP autoencoder (SPEC §8) is one call away:

  from ddsp.training import inference
  model = inference.load_model('/tmp/violin')             # operative gin config + newest checkpoint
  result = inference.transfer(model, 'voice.wav', auto_adjust=True)   # a voice played by the violin model
  inference.write_result(result, '/tmp/voice_as_violin.wav')           # WAV + PNG beside it

Pipeline of `transfer` (each step is also a public function):
  1. `read_input`: any audio file (or array) -> mono float32 at the model's sample rate (notes on conversion).
  2. `extract_features`: CREPE f0 + confidence and A-weighted loudness, `n_frames = ceil(n_samples / hop)`
     frames at the model's frame rate (the same analysis as dataset preparation).
  3. `adjust_features`: user curves replace f0 / loudness, `auto_adjust` (whole-octave pitch shift and a
     loudness offset towards the training set's `dataset_statistics.json`), pitch shift (semitones, octaves),
     range scaling, loudness shift, voiced/unvoiced masking from the CREPE confidence.
  4. `InferenceModel.resynthesize`: the model on the whole file in one pass, at the file's own length.
  5. `write_result`: output WAV(s) plus a PNG with the input and output spectrograms and the curves used.

Any length: the models are trained on fixed windows (`n_samples`, `time_steps`), but no weight depends on
the window: the synthesizers' `n_samples`, the preprocessor's `time_steps` and the encoder's frame count are
plain attributes. `InferenceModel` sets them to the input's length before each call (`set_length`), so the
decoder's GRU runs over the whole file in one pass with its state carried from the first frame to the last,
as offline synthesis should (cutting the file into windows would restart the GRU state at every window and
click at the seams). Real-time block-by-block synthesis is the streaming model's job, not this module's.

Room acoustics: `dry` audio bypasses the model's reverb node (the signal feeding it, found in the
ProcessorGroup DAG, not by a hard-coded name); `apply_ir` convolves any recording with the learned impulse
response exactly as the model's reverb does; `export_ir` writes that IR as a float WAV.

Shapes: audio `[n_samples]` (NumPy) in this API, `[batch, n_samples]` inside the model; frame curves
`[n_frames]`; the model's frame features `[batch, n_frames, channels]`.
"""
import dataclasses
import json
import math
import os

from absl import logging
import numpy as np

os.environ.setdefault('KERAS_BACKEND', 'tensorflow')

from ddsp.training import checkpoints  # pylint: disable=g-import-not-at-top,wrong-import-position

LOUDNESS_FLOOR_DB = -120.0
DEFAULT_CONFIDENCE_THRESHOLD = 0.5  # CREPE 'tiny' reads sung vowels at ~0.6-0.95.
STATS_NAME = 'dataset_statistics.json'
MAX_GAP_FRAMES = 8  # 32 ms at 250 frames/s.
SILENCE_PEAK = 1e-4  # An input whose peak is below -80 dBFS is treated as silent.


class InputError(ValueError):
  """The input recording cannot be used (unreadable, silent, no voiced frames, bad curve)."""


IncompatibleCheckpointError = checkpoints.IncompatibleCheckpointError


# ------------------------------------------------------------------------------------------------------------
# Loading a model.
# ------------------------------------------------------------------------------------------------------------
def _is_reverb(layer):
  from ddsp import effects  # pylint: disable=g-import-not-at-top
  return isinstance(layer, effects._ReverbBase)  # pylint: disable=protected-access


def _length_layers(model):
  """The layers whose output length is a plain attribute: (synths with `n_samples`, frame-count holders)."""
  from ddsp import processors  # pylint: disable=g-import-not-at-top
  synths, framers = [], []
  group = model.processor_group
  if isinstance(group, processors.ProcessorGroup):
    for proc in group.processors:
      # Reverbs have a fixed IR length; parametric reverbs hold their own IR synth: never resized.
      if hasattr(proc, 'n_samples') and not _is_reverb(proc):
        synths.append(proc)
  pending = [model.preprocessor, model.encoder]
  while pending:
    layer = pending.pop()
    if layer is None:
      continue
    for attr in ('time_steps', 'z_time_steps'):
      if isinstance(getattr(layer, attr, None), int):
        framers.append((layer, attr))
    pending.extend(getattr(layer, 'encoders', None) or [])
  return synths, framers


def _reverb_node(model):
  """(reverb layer, key of its input signal) of the last reverb node of the model's DAG, or (None, None)."""
  from ddsp import processors  # pylint: disable=g-import-not-at-top
  group = model.processor_group
  if not isinstance(group, processors.ProcessorGroup):
    return None, None
  found = (None, None)
  for proc, keys in group.dag:
    if _is_reverb(proc):
      found = (proc, keys[0])
  return found


@dataclasses.dataclass
class InferenceModel:
  """A restored model with what inference needs to know about it.

  Attributes:
    model: the `ddsp.training.models.Autoencoder` (weights restored).
    save_dir: the training folder.
    checkpoint: the checkpoint prefix restored.
    step: its training step (None if unknown).
    operative_config: path of the gin config the model was built from (None if only `gin_params`).
    gin_config: the parsed gin config as text.
    sample_rate: audio rate (Hz).
    frame_rate: control rate (frames per second); `hop = sample_rate / frame_rate` samples per frame.
    train_n_samples, train_time_steps: the training window.
    reverb: the reverb layer (None if the model has none); `reverb_input_key` names the signal feeding it.
  """
  model: object
  save_dir: str
  checkpoint: str
  step: object
  operative_config: object
  gin_config: str
  sample_rate: int
  frame_rate: float
  train_n_samples: int
  train_time_steps: int
  reverb: object = None
  reverb_input_key: object = None
  _encode_fns: dict = dataclasses.field(default_factory=dict, repr=False)
  _decoder_fn: object = dataclasses.field(default=None, repr=False)

  @property
  def hop(self):
    return int(round(self.sample_rate / self.frame_rate))

  @property
  def has_z(self):
    """Whether the encoder produces a timbre latent `z` that the decoder reads."""
    keys = getattr(self.model.decoder, 'input_keys', ())
    return self.model.encoder is not None and 'z' in tuple(keys)

  @property
  def ir(self):
    """The learned impulse response as applied (direct-path tap zeroed when the reverb adds the dry signal),
    NumPy `[reverb_length]`; None without a reverb or when the IR is an input predicted per example."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    if self.reverb is None:
      return None
    try:
      controls = self.reverb.get_controls(tf.zeros([1, self.hop]))
    except (TypeError, ValueError):  # A reverb whose IR (or its parameters) is an input.
      return None
    return np.asarray(controls['ir'])[0]

  def n_frames(self, n_samples):
    """Frames covering `n_samples` samples: `ceil(n_samples / hop)`."""
    return -(-int(n_samples) // self.hop)

  def set_length(self, n_frames):
    """Makes the model synthesise `n_frames` frames (`n_frames * hop` samples) per call."""
    synths, framers = _length_layers(self.model)
    for synth in synths:
      synth.n_samples = int(n_frames) * self.hop
    for layer, attr in framers:
      setattr(layer, attr, int(n_frames))

  def features_batch(self, f0_hz, loudness_db, audio=None):
    """The model's input dict (batch of one) from frame curves `[n_frames]` and optional audio `[n_samples]`.

    The audio (needed by encoders that read it) is zero-padded or cut to `n_frames * hop` samples.
    """
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    f0_hz = np.asarray(f0_hz, np.float32).reshape(-1)
    loudness_db = np.asarray(loudness_db, np.float32).reshape(-1)
    if f0_hz.shape != loudness_db.shape:
      raise ValueError(f'f0_hz {f0_hz.shape} and loudness_db {loudness_db.shape} must have the same frames.')
    n = f0_hz.size * self.hop
    if audio is None:
      audio = np.zeros(n, np.float32)
    audio = np.asarray(audio, np.float32).reshape(-1)[:n]
    audio = np.pad(audio, (0, n - audio.size))
    return {'audio': tf.constant(audio[np.newaxis]), 'f0_hz': tf.constant(f0_hz[np.newaxis]),
            'loudness_db': tf.constant(loudness_db[np.newaxis])}

  def encode(self, features):
    """Preprocessor + encoder on a `features_batch` dict, at its length. Returns the outputs dict.

    An encoder (e.g. the MFCC GRU) runs as a graph traced once per length: it reads the frame count from
    its attributes, so one trace cannot serve two lengths.
    """
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    n_frames = int(features['f0_hz'].shape[1])
    self.set_length(n_frames)
    if self.model.encoder is None:
      return self.model.encode(features, training=False)
    if n_frames not in self._encode_fns:
      if len(self._encode_fns) >= 4:
        self._encode_fns.pop(next(iter(self._encode_fns)))
      self._encode_fns[n_frames] = tf.function(lambda f: self.model.encode(f, training=False))
    return self._encode_fns[n_frames](features)

  def _run_decoder(self, features):
    """The decoder network as a graph (a GRU run op by op in eager mode is ~50x slower). The decoder holds
    no length attribute, so one trace with relaxed shapes serves every length."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    if self._decoder_fn is None:
      decoder = self.model.decoder
      self._decoder_fn = tf.function(lambda f: decoder(f, training=False), reduce_retracing=True)
    features = {k: v for k, v in features.items() if not isinstance(v, dict)}
    return self._decoder_fn(features)

  def decode(self, encoded):
    """Decoder + synthesis on an `encode` dict.

    Returns:
      The outputs dict (every `<node>/signal`, controls, `audio_synth` `[1, n_samples]`), plus
      `audio_dry` `[1, n_samples]` when the model has a reverb: the output with the reverb node bypassed.
    """
    from ddsp import processors  # pylint: disable=g-import-not-at-top
    n_frames = int(encoded['f0_hz'].shape[1])
    self.set_length(n_frames)
    # As `Autoencoder.decode`, with the decoder network compiled; the synthesizers run eagerly (their lengths
    # are attributes set per call).
    outputs = dict(encoded)
    outputs.update(self._run_decoder(outputs))
    group = self.model.processor_group
    if isinstance(group, processors.ProcessorGroup):
      nodes = group.get_controls(outputs)
      audio = nodes.pop('signal')
      for key, value in nodes.items():
        if key not in outputs or '/' in key:
          outputs[key] = value
    else:
      audio = group(outputs)
    outputs['audio_synth'] = audio
    if self.reverb is not None:
      outputs['audio_dry'] = self._dry_audio(outputs)
    return outputs

  def _dry_audio(self, outputs):
    """The output with the reverb node bypassed (its output replaced by its input signal)."""
    group = self.model.processor_group
    dag = group.dag
    names = [p.name for p, _ in dag]
    index = names.index(self.reverb.name)
    if index == len(dag) - 1:
      # The reverb is the last node: the dry output is exactly the signal that feeds it.
      return outputs[self.reverb_input_key]
    # Nodes after the reverb: run again those that depend on its output (directly or through other nodes),
    # on the bypassed signal; the others (e.g. a noise synth) keep the outputs of this very pass.
    from ddsp import processors  # pylint: disable=g-import-not-at-top
    env = dict(outputs)
    env[f'{self.reverb.name}/signal'] = outputs[self.reverb_input_key]
    changed = {self.reverb.name}
    for proc, keys in dag[index + 1:]:
      if any(k.split('/')[0] in changed for k in keys):
        args = [processors._lookup(env, k) for k in keys]  # pylint: disable=protected-access
        node = proc(*args, return_outputs_dict=True)
        env[f'{proc.name}/signal'] = node['signal']
        env[f'{proc.name}/controls'] = node['controls']
        changed.add(proc.name)
    return env[f'{dag[-1][0].name}/signal']

  def resynthesize(self, f0_hz, loudness_db, audio=None, z=None):
    """Runs the model on frame curves (the whole file in one pass).

    Args:
      f0_hz: `[n_frames]` f0 in Hz.
      loudness_db: `[n_frames]` loudness in dB.
      audio: `[n_samples]` the input recording (only read by encoders, e.g. for z); None: silence.
      z: optional `[n_frames, z_dims]` replacing the encoder's z (timbre interpolation).

    Returns:
      (audio `[n_frames * hop]`, dry audio `[n_frames * hop]` or None, outputs dict of NumPy arrays).
    """
    encoded = self.encode(self.features_batch(f0_hz, loudness_db, audio))
    if z is not None:
      if 'z' not in encoded:
        raise ValueError('This model has no timbre latent z (its encoder does not produce one).')
      z = np.asarray(z, np.float32)
      if z.ndim == 2:
        z = z[np.newaxis]
      want = tuple(encoded['z'].shape)
      if z.shape != want:
        raise ValueError(f'z must have shape {want[1:]} (frames, z_dims), got {z.shape[1:]}.')
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      encoded = dict(encoded, z=tf.constant(z))
    outputs = self.decode(encoded)
    numpy_outputs = {k: _to_numpy(v) for k, v in outputs.items()}
    audio_out = numpy_outputs['audio_synth'][0]
    dry = numpy_outputs['audio_dry'][0] if 'audio_dry' in numpy_outputs else None
    return audio_out, dry, numpy_outputs

  def encode_z(self, features, audio):
    """The encoder's z `[n_frames, z_dims]` for features `{f0_hz, loudness_db}` and audio `[n_samples]`."""
    if not self.has_z:
      raise ValueError('This model has no timbre latent z (no encoder producing z, or a decoder that does '
                       'not read it), so timbre cannot be interpolated. Use a model with an MFCC encoder, '
                       'e.g. models/nsynth_ae.gin.')
    encoded = self.encode(self.features_batch(features['f0_hz'], features['loudness_db'], audio))
    return np.asarray(encoded['z'])[0]


def _to_numpy(x):
  if isinstance(x, dict):
    return {k: _to_numpy(v) for k, v in x.items()}
  try:
    return np.asarray(x)
  except (TypeError, ValueError):
    return x


def load_model(save_dir, checkpoint=None, n_samples=None, gin_params=()):
  """Restores a trained model with the gin config saved by its training run.

  Args:
    save_dir: the training folder (holds `operative_config-<step>.gin` and `ckpt-<n>` files).
    checkpoint: a checkpoint prefix (e.g. `save_dir/ckpt-3000`) or folder; None: the newest in save_dir.
    n_samples: optional initial length in samples (any length works later: every call sets its own).
    gin_params: extra gin bindings applied after the operative config (e.g. to seed the noise:
      'FilteredNoise.seed = 0').

  The global gin config is cleared and replaced by the model's (as `ddsp_run` does); the networks are built
  in float32 whatever precision they were trained in (the checkpoint's variables are float32 anyway).

  Returns:
    An `InferenceModel`.

  Raises:
    FileNotFoundError: no folder, no operative config or no checkpoint (the message names the folder).
    IncompatibleCheckpointError (a ValueError): the checkpoint does not fit the model of the config.
  """
  import gin  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from ddsp.training import ddsp_run  # pylint: disable=g-import-not-at-top
  from ddsp.training import models  # pylint: disable=g-import-not-at-top
  from ddsp.training import train_util  # pylint: disable=g-import-not-at-top
  from ddsp.training import trainers  # pylint: disable=g-import-not-at-top

  save_dir = os.path.expanduser(os.fspath(save_dir))
  if not os.path.isdir(save_dir):
    raise FileNotFoundError(f'Model folder {save_dir!r} does not exist.')
  if train_util.latest_operative_config(save_dir) is None:
    raise FileNotFoundError(f'No operative_config-<step>.gin in {save_dir!r}: is it a ddsp_run training '
                            'folder?')
  ckpt_source = os.path.expanduser(os.fspath(checkpoint)) if checkpoint else save_dir
  ckpt_path = checkpoints.latest_checkpoint(ckpt_source)
  if ckpt_path is None:
    raise FileNotFoundError(f'No checkpoint found in {ckpt_source!r} (expected ckpt-<n>.index files or a '
                            'checkpoint prefix).')
  operative = ddsp_run.parse_gin(gin_params=gin_params, restore_dirs=[save_dir])
  gin_text = gin.config_str()
  trainers.set_mixed_precision(None)
  model = ddsp_run._build_model(models)  # pylint: disable=protected-access  (gin errors as GinConfigError)
  result = wrap_model(model, save_dir=save_dir, gin_config=gin_text, operative_config=operative)
  result.step = checkpoints.restore_weights(model, ckpt_path)
  result.checkpoint = ckpt_path
  if n_samples:
    result.set_length(result.n_frames(n_samples))
  logging.info('Loaded %s (step %s): %d Hz, %.6g frames/s.', ckpt_path, result.step, result.sample_rate,
               result.frame_rate)
  return result


def wrap_model(model, save_dir=None, gin_config='', operative_config=None):
  """An `InferenceModel` around an in-memory Autoencoder (e.g. one just trained); builds its variables.

  The sample rate, training window and frame rate are read from the model's synthesizers and preprocessor
  (falling back to the gin macros `sample_rate` and `time_steps`).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from ddsp.training import ddsp_run  # pylint: disable=g-import-not-at-top
  time_steps = int(getattr(model.preprocessor, 'time_steps', 0) or 0)
  synths, _ = _length_layers(model)
  if not synths:
    raise ValueError('The model has no synthesizer with `n_samples` in its processor group.')
  train_n = synths[0].n_samples
  gin_value = ddsp_run._gin_value  # pylint: disable=protected-access
  sample_rate = int(getattr(synths[0], 'sample_rate', 0) or gin_value('sample_rate', 16000))
  if not time_steps:
    time_steps = int(gin_value('time_steps', 1000))
  if train_n % time_steps:
    raise ValueError(f'n_samples {train_n} is not a multiple of time_steps {time_steps}.')
  frame_rate = sample_rate / (train_n // time_steps)
  if not (model.built and getattr(model.decoder, 'built', True)):
    # Build the variables on one training-sized example (before a checkpoint is read into them).
    example = {'audio': tf.zeros([1, train_n]), 'f0_hz': tf.fill([1, time_steps], 440.0),
               'loudness_db': tf.fill([1, time_steps], -40.0)}
    model(example, training=False)
  reverb, reverb_key = _reverb_node(model)
  return InferenceModel(model=model, save_dir=save_dir, checkpoint=None, step=None,
                        operative_config=operative_config, gin_config=gin_config, sample_rate=sample_rate,
                        frame_rate=frame_rate, train_n_samples=train_n, train_time_steps=time_steps,
                        reverb=reverb, reverb_input_key=reverb_key)


# ------------------------------------------------------------------------------------------------------------
# Input audio and features.
# ------------------------------------------------------------------------------------------------------------
def read_input(source, sample_rate, source_sample_rate=None):
  """Reads a recording as mono float32 at `sample_rate`.

  Args:
    source: a path (any format, rate and channel count that `ddsp.data_prep.audio_io` reads) or an array
      `[n_samples]` or `[n_samples, channels]`.
    sample_rate: the model's rate.
    source_sample_rate: the rate of an array `source` (default `sample_rate`).

  Returns:
    (audio `[n_samples]` float32, notes: list of strings describing conversions done).

  Raises:
    InputError: unreadable file, empty or non-finite audio.
  """
  notes = []
  if isinstance(source, (str, os.PathLike)):
    from ddsp.data_prep import audio_io  # pylint: disable=g-import-not-at-top
    try:
      audio, info = audio_io.read_audio(source, sample_rate=sample_rate)
    except audio_io.AudioReadError as e:
      raise InputError(f'Cannot read input {e}') from e
    if info.original_channels != 1:
      notes.append(f'{info.original_channels} channels downmixed to mono')
    if info.original_sample_rate != sample_rate:
      notes.append(f'resampled from {info.original_sample_rate} Hz to {sample_rate} Hz')
    notes.extend(info.warnings)
    return audio, notes
  audio = np.asarray(source, np.float32)
  if audio.ndim == 2:
    if audio.shape[1] > 1:
      notes.append(f'{audio.shape[1]} channels downmixed to mono')
    audio = audio.mean(axis=1)
  if audio.ndim != 1:
    raise InputError(f'Input audio must be [n_samples] or [n_samples, channels], got shape {audio.shape}.')
  if audio.size == 0:
    raise InputError('Input audio is empty (0 samples).')
  if not np.all(np.isfinite(audio)):
    raise InputError('Input audio contains NaN or Inf samples.')
  source_sample_rate = int(source_sample_rate or sample_rate)
  if source_sample_rate != sample_rate:
    import soxr  # pylint: disable=g-import-not-at-top
    audio = soxr.resample(audio, source_sample_rate, sample_rate, quality='HQ').astype(np.float32)
    notes.append(f'resampled from {source_sample_rate} Hz to {sample_rate} Hz')
  return np.ascontiguousarray(audio, np.float32), notes


def extract_features(audio, sample_rate=16000, frame_rate=250, crepe_model='tiny', crepe_frame_rate=None):
  """CREPE f0 and confidence, and A-weighted loudness, of mono audio.

  Args:
    audio: `[n_samples]` float32.
    sample_rate: its rate (Hz).
    frame_rate: frames per second (`sample_rate / frame_rate` must be an integer hop).
    crepe_model: CREPE capacity ('tiny' ... 'full', whichever is installed).
    crepe_frame_rate: the rate CREPE runs at before interpolation (None: `frame_rate`).

  Returns:
    {'f0_hz', 'f0_confidence', 'loudness_db'}: NumPy float32 `[n_frames]`, `n_frames = ceil(n / hop)`.

  Raises:
    InputError: silent input (peak below -80 dBFS).
  """
  from ddsp import spectral_ops  # pylint: disable=g-import-not-at-top
  audio = np.asarray(audio, np.float32).reshape(-1)
  peak = float(np.max(np.abs(audio))) if audio.size else 0.0
  if peak < SILENCE_PEAK:
    raise InputError(f'The input is silent (peak {20 * math.log10(max(peak, 1e-12)):.1f} dBFS): nothing to '
                     'resynthesise.')
  fr = int(frame_rate) if float(frame_rate).is_integer() else frame_rate
  f0_hz, confidence = spectral_ops.compute_f0(audio, sample_rate=sample_rate, frame_rate=fr,
                                              model=crepe_model, crepe_frame_rate=crepe_frame_rate)
  loudness = spectral_ops.compute_loudness(audio, sample_rate=sample_rate, frame_rate=fr)
  n = min(len(f0_hz), len(loudness))
  return {'f0_hz': np.asarray(f0_hz, np.float32)[:n], 'f0_confidence': np.asarray(confidence, np.float32)[:n],
          'loudness_db': np.asarray(loudness, np.float32).reshape(-1)[:n]}


def _read_csv_column(path):
  """The last column of a CSV or text file (comma, semicolon or space separated); skips a header line."""
  values = []
  with open(path, encoding='utf-8') as f:
    for i, line in enumerate(f):
      fields = line.replace(';', ',').replace(',', ' ').split()
      if not fields or fields[0].startswith('#'):
        continue
      try:
        values.append(float(fields[-1]))
      except ValueError:
        if i == 0:
          continue  # header
        raise ValueError(f'line {i + 1} is not a number: {line.strip()!r}') from None
  return np.asarray(values, np.float64)


def load_curve(source, n_frames, name='curve'):
  """A user curve resampled (linearly, end points aligned) to `n_frames` frames.

  Args:
    source: a `.npy` file, a CSV/text file (one value per line, or `time,value` rows whose last column is
      used; a non-numeric header line is skipped), or an array `[n]`.
    n_frames: the frame count wanted.
    name: for error messages.

  Returns:
    NumPy float32 `[n_frames]`.
  """
  if isinstance(source, (str, os.PathLike)):
    path = os.fspath(source)
    if not os.path.isfile(path):
      raise InputError(f'{name} file {path!r} does not exist.')
    try:
      if path.endswith('.npy'):
        values = np.load(path)
      else:
        values = _read_csv_column(path)
    except (ValueError, OSError) as e:
      raise InputError(f'Cannot read {name} file {path!r}: {e}') from e
  else:
    values = source
  values = np.asarray(values, np.float64).reshape(-1)
  if values.size == 0:
    raise InputError(f'The {name} is empty.')
  if not np.all(np.isfinite(values)):
    raise InputError(f'The {name} contains NaN or Inf values.')
  if values.size == 1:
    return np.full(n_frames, values[0], np.float32)
  if values.size == n_frames:
    return values.astype(np.float32)
  src = np.linspace(0.0, 1.0, values.size)
  dst = np.linspace(0.0, 1.0, n_frames)
  return np.interp(dst, src, values).astype(np.float32)


# ------------------------------------------------------------------------------------------------------------
# Controls.
# ------------------------------------------------------------------------------------------------------------
def hz_to_midi(f0_hz):
  f0_hz = np.asarray(f0_hz, np.float64)
  return 69.0 + 12.0 * np.log2(np.maximum(f0_hz, 1e-6) / 440.0)


def midi_to_hz(midi):
  return 440.0 * 2.0 ** ((np.asarray(midi, np.float64) - 69.0) / 12.0)


def octaves(n):
  """Semitones in `n` octaves (for `pitch_shift`): `octaves(-1) == -12`."""
  return 12.0 * n


def load_dataset_statistics(path):
  """Reads a `dataset_statistics.json` (as written by `ddsp.data_prep.statistics`)."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'Dataset statistics {path!r} do not exist.')
  try:
    with open(path, encoding='utf-8') as f:
      stats = json.load(f)
  except ValueError as e:
    raise ValueError(f'Dataset statistics {path!r} are not valid JSON: {e}') from e
  if dataset_median_midi(stats) is None or dataset_voiced_loudness(stats) is None:
    raise ValueError(f'Dataset statistics {path!r} hold no voiced frames (no f0 median or voiced loudness).')
  return stats


def find_dataset_statistics(save_dir, gin_config=''):
  """The `dataset_statistics.json` of a training run: in `save_dir`, else beside the training TFRecords.

  Returns:
    The path, or None.
  """
  candidates = [os.path.join(save_dir, STATS_NAME)]
  # Gin writes long bindings as `name = \` and the value on the next line.
  import re  # pylint: disable=g-import-not-at-top
  for pattern in re.findall(r"file_pattern\s*=\s*(?:\\\s*)?['\"]([^'\"]+)['\"]", gin_config or ''):
    candidates.append(os.path.join(os.path.dirname(pattern), STATS_NAME))
  for path in candidates:
    if os.path.isfile(path):
      return path
  return None


def dataset_median_midi(stats):
  """Median pitch of the training set's voiced frames (MIDI), from the f0 quantiles (else the mean)."""
  quantiles = (stats.get('f0_hz') or {}).get('quantiles') or {}
  median_hz = quantiles.get('0.5')
  if median_hz:
    return float(hz_to_midi(median_hz))
  mean = stats.get('mean_pitch_midi')
  return None if mean is None else float(mean)


def dataset_voiced_loudness(stats):
  """Mean loudness (dB) of the training set's voiced frames."""
  value = stats.get('mean_loudness_db_voiced')
  if value is None:
    value = (stats.get('loudness_db_voiced') or {}).get('mean')
  return None if value is None else float(value)


def auto_adjust_shifts(f0_hz, loudness_db, voiced, stats):
  """The whole-octave pitch shift and the loudness offset that match the input to the training statistics.

  The octave shift `k` minimises `|median_midi(input voiced frames) + 12 k - median_midi(dataset)|`; the
  loudness offset makes the mean loudness of the input's voiced frames equal the dataset's.

  Args:
    f0_hz, loudness_db: input curves `[n_frames]`.
    voiced: bool `[n_frames]`.
    stats: the `dataset_statistics.json` dict.

  Returns:
    (octave shift (int), loudness shift (dB)).
  """
  voiced = np.asarray(voiced, bool) & (np.asarray(f0_hz) > 0)
  if not voiced.any():
    raise InputError('auto_adjust needs voiced frames, but the input has none.')
  median_in = float(np.median(hz_to_midi(np.asarray(f0_hz)[voiced])))
  target = dataset_median_midi(stats)
  octave_shift = int(np.round((target - median_in) / 12.0)) if target is not None else 0
  target_ld = dataset_voiced_loudness(stats)
  ld_shift = 0.0 if target_ld is None else target_ld - float(np.mean(np.asarray(loudness_db)[voiced]))
  return octave_shift, ld_shift


def fill_short_gaps(voiced, max_gap_frames):
  """Marks as voiced every unvoiced run of at most `max_gap_frames` frames that has voiced frames on both
  sides (CREPE's confidence dips for a frame or two at note changes; silencing those would click).

  Args:
    voiced: bool `[n_frames]`.
    max_gap_frames: the longest gap filled (0: none).

  Returns:
    bool `[n_frames]`.
  """
  voiced = np.asarray(voiced, bool).copy()
  if max_gap_frames <= 0 or not voiced.any():
    return voiced
  idx = np.flatnonzero(voiced)
  for start, stop in zip(idx[:-1], idx[1:]):
    if 1 < stop - start <= max_gap_frames + 1:
      voiced[start + 1:stop] = True
  return voiced


def adjust_features(features, pitch_shift=0.0, loudness_shift=0.0, f0_range_scale=1.0,
                    loudness_range_scale=1.0, f0_curve=None, loudness_curve=None,
                    confidence_threshold=DEFAULT_CONFIDENCE_THRESHOLD, unvoiced_loudness_db=LOUDNESS_FLOOR_DB,
                    max_gap_frames=MAX_GAP_FRAMES, auto_adjust=False, dataset_stats=None):
  """Applies the user's controls to extracted features.

  Order: replace curves -> voiced mask -> auto_adjust -> pitch shift and f0 range scaling -> loudness shift
  and range scaling -> unvoiced frames set to `unvoiced_loudness_db`.

  Args:
    features: {'f0_hz', 'f0_confidence', 'loudness_db'} `[n_frames]` each (from `extract_features`).
    pitch_shift: semitones (may be fractional); `octaves(n)` gives whole octaves.
    loudness_shift: dB added to the loudness.
    f0_range_scale: scales the pitch curve's deviations (in semitones) around its voiced median: 0 flattens
      the melody to one note, 2 doubles intervals and vibrato.
    loudness_range_scale: scales the loudness deviations (dB) around the voiced mean (dynamics).
    f0_curve: optional curve replacing f0 (Hz; a path or array, resampled to the frames). Frames where it
      is <= 0 count as unvoiced.
    loudness_curve: optional curve replacing the loudness (dB; a path or array).
    confidence_threshold: frames with CREPE confidence below it are unvoiced (None or 0: all voiced).
    max_gap_frames: unvoiced runs this short between voiced frames count as voiced (`fill_short_gaps`).
    unvoiced_loudness_db: loudness given to unvoiced frames, so the harmonic part is silent there; None
      leaves them unchanged.
    auto_adjust: add the octave shift and loudness offset of `auto_adjust_shifts`.
    dataset_stats: the statistics dict for `auto_adjust`.

  Returns:
    (features dict with adjusted 'f0_hz', 'loudness_db', plus 'voiced' bool `[n_frames]`,
     info dict with the shifts applied).

  Raises:
    InputError: no voiced frames.
  """
  f0 = np.asarray(features['f0_hz'], np.float64).reshape(-1).copy()
  ld = np.asarray(features['loudness_db'], np.float64).reshape(-1).copy()
  n_frames = f0.size
  confidence = np.asarray(features.get('f0_confidence', np.ones(n_frames)), np.float64).reshape(-1)
  if f0_curve is not None:
    f0 = load_curve(f0_curve, n_frames, 'f0 curve').astype(np.float64)
    voiced = f0 > 0
  elif confidence_threshold:
    voiced = fill_short_gaps(confidence >= float(confidence_threshold), max_gap_frames)
  else:
    voiced = np.ones(n_frames, bool)
  if loudness_curve is not None:
    ld = load_curve(loudness_curve, n_frames, 'loudness curve').astype(np.float64)
  if not voiced.any():
    best = float(confidence.max()) if confidence.size else 0.0
    raise InputError(f'No voiced frames in the input: CREPE confidence never reaches the threshold '
                     f'{confidence_threshold} (highest {best:.2f}); lower --confidence_threshold or use a '
                     'pitched recording.')
  info = {'voiced_frames': int(voiced.sum()), 'n_frames': int(n_frames)}
  auto_octaves, auto_ld = 0, 0.0
  if auto_adjust:
    if dataset_stats is None:
      raise ValueError('auto_adjust needs the dataset statistics (dataset_statistics.json).')
    auto_octaves, auto_ld = auto_adjust_shifts(f0, ld, voiced, dataset_stats)
    info.update(auto_octave_shift=auto_octaves, auto_loudness_shift_db=auto_ld)
  semitones = float(pitch_shift) + 12.0 * auto_octaves
  positive = f0 > 0
  midi = hz_to_midi(f0)
  if f0_range_scale != 1.0:
    centre = float(np.median(midi[voiced & positive])) if (voiced & positive).any() else 0.0
    midi = centre + float(f0_range_scale) * (midi - centre)
  f0 = np.where(positive, midi_to_hz(midi + semitones), 0.0)
  if loudness_range_scale != 1.0:
    centre = float(np.mean(ld[voiced]))
    ld = centre + float(loudness_range_scale) * (ld - centre)
  ld = ld + float(loudness_shift) + auto_ld
  if unvoiced_loudness_db is not None:
    ld = np.where(voiced, ld, np.minimum(ld, float(unvoiced_loudness_db)))
  ld = np.maximum(ld, LOUDNESS_FLOOR_DB)
  info.update(pitch_shift_semitones=semitones, loudness_shift_db=float(loudness_shift) + auto_ld)
  out = dict(features)
  out.update(f0_hz=f0.astype(np.float32), loudness_db=ld.astype(np.float32), voiced=voiced)
  return out, info


def interpolate_z(z_a, z_b, amount):
  """Timbre interpolation: moves the time-varying `z_a` `[n_frames, z_dims]` towards the average timbre of
  `z_b` `[m_frames, z_dims]`: `z_a + amount * (mean_t(z_b) - z_a)` (0: timbre of A, 1: B's average timbre,
  beyond: extrapolation)."""
  z_a = np.asarray(z_a, np.float32)
  target = np.asarray(z_b, np.float32).reshape(-1, z_a.shape[-1]).mean(axis=0, keepdims=True)
  return z_a + float(amount) * (target - z_a)


# ------------------------------------------------------------------------------------------------------------
# Room acoustics.
# ------------------------------------------------------------------------------------------------------------
def _require_ir(model):
  ir = model.ir
  if ir is None:
    raise ValueError(f'The model of {model.save_dir!r} has no learned reverb impulse response.')
  return ir


def apply_ir(model, audio):
  """Acoustic transfer: `audio` `[n_samples]` through the model's learned room (its reverb layer: the IR
  convolution, plus the dry signal when the reverb adds it). Returns `[n_samples]`."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  ir = _require_ir(model)
  audio = np.asarray(audio, np.float32).reshape(1, -1)
  wet = model.reverb.get_signal(tf.constant(audio), tf.constant(ir[np.newaxis]))
  return np.asarray(wet)[0]


def export_ir(model, path, include_dry=False):
  """Writes the learned impulse response as a mono 32-bit float WAV at the model's rate, atomically.

  Args:
    model: an `InferenceModel`.
    path: the WAV path.
    include_dry: add the direct path (a unit impulse at sample 0) when the model's reverb adds the dry
      signal, so the file is the complete room response for any convolution reverb.

  Returns:
    The IR written, NumPy `[reverb_length]`.
  """
  import soundfile as sf  # pylint: disable=g-import-not-at-top
  from ddsp import file_utils  # pylint: disable=g-import-not-at-top
  ir = _require_ir(model).astype(np.float32).copy()
  if include_dry and getattr(model.reverb, 'add_dry', False):
    ir[0] += 1.0
  with file_utils.atomic_path(path) as tmp:
    sf.write(tmp, ir, int(model.sample_rate), subtype='FLOAT', format='WAV')
  return ir


# ------------------------------------------------------------------------------------------------------------
# The whole pipeline.
# ------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class TransferResult:
  """What `transfer` produced (NumPy arrays; audio at `sample_rate`).

  Attributes:
    audio: the output `[n_samples]` (same length as the input).
    audio_dry: the output with the reverb bypassed, or None (model without reverb).
    audio_input: the input recording as read `[n_samples]`.
    features_input: the extracted curves {'f0_hz', 'f0_confidence', 'loudness_db'} `[n_frames]`.
    features: the curves fed to the model after the controls, plus 'voiced'.
    info: the shifts applied, notes on conversions, the checkpoint.
    sample_rate, frame_rate: of the audio and curves.
    outputs: the model's outputs dict (NumPy).
  """
  audio: np.ndarray
  audio_dry: object
  audio_input: np.ndarray
  features_input: dict
  features: dict
  info: dict
  sample_rate: int
  frame_rate: float
  outputs: dict = dataclasses.field(default_factory=dict, repr=False)


def transfer(model, source, source_sample_rate=None, crepe_model='tiny', crepe_frame_rate=None,
             interpolate_with=None, interpolation=0.5, **controls):
  """Resynthesises (or timbre-transfers) a recording with the model, applying controls.

  Args:
    model: an `InferenceModel` (or a save_dir, loaded with `load_model`).
    source: a path or an audio array (see `read_input`).
    source_sample_rate: the rate of an array `source`.
    crepe_model, crepe_frame_rate: for `extract_features`.
    interpolate_with: optional second recording (path or array at the model's rate): the timbre latent
      moves `interpolation` of the way towards its average z (`interpolate_z`). Needs a model with z.
    interpolation: the interpolation amount (0: the input's own z, 1: the other recording's).
    **controls: `adjust_features` arguments (pitch_shift, loudness_shift, auto_adjust, dataset_stats (a dict
      or a path; found in the model folder when auto_adjust is set and it is None), f0_curve, ...).

  Returns:
    A `TransferResult`.
  """
  if not isinstance(model, InferenceModel):
    model = load_model(model)
  audio, notes = read_input(source, model.sample_rate, source_sample_rate)
  for note in notes:
    logging.info('Input: %s.', note)
  features_in = extract_features(audio, model.sample_rate, model.frame_rate, crepe_model, crepe_frame_rate)
  stats = controls.get('dataset_stats')
  if controls.get('auto_adjust'):
    if stats is None:
      stats = find_dataset_statistics(model.save_dir, model.gin_config)
      if stats is None:
        raise FileNotFoundError(f'auto_adjust needs the training set\'s {STATS_NAME}: none in '
                                f'{model.save_dir!r} nor beside its TFRecords; give its path '
                                '(--dataset_stats).')
    if not isinstance(stats, dict):
      stats = load_dataset_statistics(stats)
  controls['dataset_stats'] = stats
  features, info = adjust_features(features_in, **controls)
  info['notes'] = notes
  info['checkpoint'] = model.checkpoint
  z = None
  if interpolate_with is not None:
    other, other_notes = read_input(interpolate_with, model.sample_rate)
    for note in other_notes:
      logging.warning('Interpolation input: %s.', note)
    other_features = extract_features(other, model.sample_rate, model.frame_rate, crepe_model,
                                      crepe_frame_rate)
    z_b = model.encode_z(other_features, other)
    z_a = model.encode_z(features, audio)
    z = interpolate_z(z_a, z_b, interpolation)
    info['interpolation'] = float(interpolation)
  out, dry, outputs = model.resynthesize(features['f0_hz'], features['loudness_db'], audio, z=z)
  n = audio.size
  return TransferResult(audio=out[:n], audio_dry=None if dry is None else dry[:n], audio_input=audio,
                        features_input=features_in, features=features, info=info,
                        sample_rate=model.sample_rate, frame_rate=model.frame_rate, outputs=outputs)


def results_figure(audio_in, audio_out, sample_rate, frame_rate, f0_curves, loudness_curves,
                   titles=('input', 'output')):
  """One figure: input and output spectrograms, then the f0 and loudness curves (dicts label -> `[n]`)."""
  from ddsp.training import summaries  # pylint: disable=g-import-not-at-top
  fig = summaries._new_figure(9, 10)  # pylint: disable=protected-access
  specs = [summaries.log_spectrogram(a) for a in (audio_in, audio_out)]
  top = max(float(s.max()) for s in specs)
  for i, (spec, audio, title) in enumerate(zip(specs, (audio_in, audio_out), titles)):
    ax = fig.add_subplot(4, 1, i + 1)
    ax.imshow(spec.T, origin='lower', aspect='auto', cmap='magma', vmin=top - 80.0, vmax=top,
              extent=[0.0, len(audio) / sample_rate, 0.0, sample_rate / 2.0])
    ax.set_ylabel('Hz')
    ax.set_title(title)
  for i, (label, curves) in enumerate((('f0 (Hz)', f0_curves), ('loudness (dB)', loudness_curves))):
    ax = fig.add_subplot(4, 1, i + 3)
    for name, curve in curves.items():
      curve = np.asarray(curve, np.float64).reshape(-1)
      ax.plot(np.arange(curve.size) / float(frame_rate), curve, label=name, linewidth=1.0)
    ax.set_ylabel(label)
    ax.set_xlim(0.0, len(audio_in) / sample_rate)
    if curves:
      ax.legend(loc='upper right', fontsize='small')
  fig.axes[-1].set_xlabel('seconds')
  fig.tight_layout()
  return fig


def write_result(result, path, write_dry=False, figure=True):
  """Writes `result.audio` (or the dry audio) to the WAV `path` and a PNG beside it (same name, `.png`).

  Args:
    result: a `TransferResult`.
    path: output WAV path.
    write_dry: write the reverb-bypassed output instead (error if the model has no reverb).
    figure: also write the PNG.

  Returns:
    The list of paths written.
  """
  from ddsp import file_utils  # pylint: disable=g-import-not-at-top
  audio = result.audio
  if write_dry:
    if result.audio_dry is None:
      raise ValueError('The model has no reverb to bypass.')
    audio = result.audio_dry
  peak = float(np.max(np.abs(audio))) if audio.size else 0.0
  if peak > 1.0:
    logging.warning('Output peak %.2f exceeds full scale; the WAV is clipped (use --loudness_shift to lower '
                    'it).', peak)
  file_utils.write_wav(path, audio, result.sample_rate)
  paths = [os.fspath(path)]
  if figure:
    png = os.path.splitext(os.fspath(path))[0] + '.png'
    f0_curves = {'input f0 (CREPE)': result.features_input['f0_hz'],
                 'f0 used (voiced)': np.where(result.features['voiced'] & (result.features['f0_hz'] > 0),
                                              result.features['f0_hz'], np.nan)}
    ld_curves = {'input loudness': result.features_input['loudness_db'],
                 'loudness used': result.features['loudness_db']}
    fig = results_figure(result.audio_input, audio, result.sample_rate, result.frame_rate, f0_curves,
                         ld_curves, titles=('input', 'output (dry)' if write_dry else 'output'))
    file_utils.save_figure(fig, png)
    paths.append(png)
  return paths
