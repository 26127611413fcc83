"""Inference with a trained model: loading it (`load_model`, `wrap_model`) as an `InferenceModel`.

The user-facing API is one module away:

  from ddsp.training import inference
  model = inference.load_model('/tmp/violin')             # operative gin config + newest checkpoint
  result = inference.transfer(model, 'voice.wav', auto_adjust=True)   # a voice played by the violin model
  inference.write_result(result, '/tmp/voice_as_violin.wav')           # WAV + PNG beside it

This module owns the model side: restoring a training run (`load_model`), wrapping an in-memory model
(`wrap_model`), and running it on frame curves at any length (`InferenceModel.resynthesize`). The input side
(reading audio, CREPE / loudness features, the user's controls) lives in `ddsp.training.features`; the
applications (`transfer`, room acoustics, writing the results) in `ddsp.training.resynthesis`. Their
user-facing functions are re-exported here: `read_input`, `extract_features`, `adjust_features`, `octaves`,
`InputError` from `features`; `transfer`, `TransferResult`, `write_result`, `apply_ir`, `export_ir` from
`resynthesis`.

Any length: the models are trained on fixed windows (`n_samples`, `time_steps`), but no weight depends on
the window: the synthesizers' `n_samples`, the preprocessor's `time_steps` and the encoder's frame count are
plain attributes. `InferenceModel` sets them to the input's length before each call (`Autoencoder.set_length`),
so the decoder's GRU runs over the whole file in one pass with its state carried from the first frame to the
last, as offline synthesis should (cutting the file into windows would restart the GRU state at every window
and click at the seams). Real-time block-by-block synthesis is the streaming model's job, not this module's.

Dry audio: `InferenceModel.decode` also returns the output with the model's reverb node bypassed (the signal
feeding it, found in the ProcessorGroup DAG by `Autoencoder.reverb_node`, not by a hard-coded name).

Shapes: audio `[n_samples]` (NumPy) in this API, `[batch, n_samples]` inside the model; frame curves
`[n_frames]`; the model's frame features `[batch, n_frames, channels]`.
"""
import dataclasses
import os

from absl import logging
import gin
import numpy as np

os.environ.setdefault('KERAS_BACKEND', 'tensorflow')

import tensorflow as tf

from ddsp import processors
from ddsp.training import checkpoints
from ddsp.training import experiment
from ddsp.training import features as features_lib
from ddsp.training import resynthesis
from ddsp.training import train_util
from ddsp.training import trainers

IncompatibleCheckpointError = checkpoints.IncompatibleCheckpointError

# The user-facing API of the input side and of the applications, re-exported.
InputError = features_lib.InputError
read_input = features_lib.read_input
extract_features = features_lib.extract_features
adjust_features = features_lib.adjust_features
octaves = features_lib.octaves
TransferResult = resynthesis.TransferResult
transfer = resynthesis.transfer
write_result = resynthesis.write_result
apply_ir = resynthesis.apply_ir
export_ir = resynthesis.export_ir


# ------------------------------------------------------------------------------------------------------------
# Loading a model.
# ------------------------------------------------------------------------------------------------------------
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
    """Samples per frame (`Autoencoder.hop_size`)."""
    return self.model.hop_size

  @property
  def has_z(self):
    """Whether the encoder produces a timbre latent `z` that the decoder reads."""
    keys = getattr(self.model.decoder, 'input_keys', ())
    return self.model.encoder is not None and 'z' in tuple(keys)

  @property
  def ir(self):
    """The learned impulse response as applied (direct-path tap zeroed when the reverb adds the dry signal),
    NumPy `[reverb_length]`; None without a reverb or when the IR is an input predicted per example."""
    if self.reverb is None:
      return None
    try:
      controls = self.reverb.get_controls(tf.zeros([1, self.hop]))
    except (TypeError, ValueError):  # A reverb whose IR (or its parameters) is an input.
      return None
    return np.asarray(controls['ir'])[0]

  def n_frames(self, n_samples):
    """Frames covering `n_samples` samples: `ceil(n_samples / hop)` (`Autoencoder.n_frames`)."""
    return self.model.n_frames(n_samples)

  def set_length(self, n_frames):
    """Makes the model synthesise `n_frames` frames (`n_frames * hop` samples) per call
    (`Autoencoder.set_length`)."""
    self.model.set_length(n_frames)

  def features_batch(self, f0_hz, loudness_db, audio=None):
    """The model's input dict (batch of one) from frame curves `[n_frames]` and optional audio `[n_samples]`.

    The audio (needed by encoders that read it) is zero-padded or cut to `n_frames * hop` samples.
    """
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
    env = dict(outputs)
    env[f'{self.reverb.name}/signal'] = outputs[self.reverb_input_key]
    changed = {self.reverb.name}
    for proc, keys in dag[index + 1:]:
      if any(k.split('/')[0] in changed for k in keys):
        args = [processors._lookup(env, k) for k in keys]
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
  operative = experiment.parse_gin(gin_params=gin_params, restore_dirs=[save_dir])
  gin_text = gin.config_str()
  trainers.set_mixed_precision(None)
  model = experiment.build_model()  # gin errors as GinConfigError
  result = wrap_model(model, save_dir=save_dir, gin_config=gin_text, operative_config=operative)
  result.step = model.restore(ckpt_path)
  result.checkpoint = ckpt_path
  if n_samples:
    result.set_length(result.n_frames(n_samples))
  logging.info('Loaded %s (step %s): %d Hz, %.6g frames/s.', ckpt_path, result.step, result.sample_rate,
               result.frame_rate)
  return result


def wrap_model(model, save_dir=None, gin_config='', operative_config=None):
  """An `InferenceModel` around an in-memory Autoencoder (e.g. one just trained); builds its variables.

  The sample rate, training window and frame rate are the model's own (`Autoencoder.sample_rate`, ...).
  """
  sample_rate, frame_rate = model.sample_rate, model.frame_rate
  train_n, time_steps = model.train_n_samples or model.n_samples, model.train_time_steps or model.time_steps
  model.ensure_built()
  reverb, reverb_key = model.reverb_node()
  return InferenceModel(model=model, save_dir=save_dir, checkpoint=None, step=None,
                        operative_config=operative_config, gin_config=gin_config, sample_rate=sample_rate,
                        frame_rate=frame_rate, train_n_samples=train_n, train_time_steps=time_steps,
                        reverb=reverb, reverb_input_key=reverb_key)
