"""Models: the DDSP autoencoder (Engel et al. 2020, section 3) and the gin entry point `get_model`.

`Autoencoder` = preprocessor -> encoder -> decoder -> ProcessorGroup -> audio; losses compare the synthesized
audio with the input audio. The model knows its own geometry (`sample_rate`, `frame_rate`, `hop_size`,
`n_samples`, `time_steps`), sets its length for inference (`set_length`) and restores its weights
(`restore`): every consumer (training, evaluation, inference, export, streaming) asks the model.
"""
import gin
import keras
import tensorflow as tf

from ddsp import effects
from ddsp import losses as ddsp_losses
from ddsp import processors
from ddsp import tracking
from ddsp.training import checkpoints


def _features_dict(features):
  if not isinstance(features, dict):
    raise TypeError(f'The model expects a dict of features (audio, f0_hz, loudness_db, ...), got '
                    f'{type(features).__name__}.')
  return dict(features)


def _force_float32(layer):
  """Sets the float32 dtype policy on `layer` and every layer nested in it (no-op for non-layers)."""
  if not isinstance(layer, keras.layers.Layer):
    return
  for sub in [layer] + list(layer._flatten_layers(include_self=False, recursive=True)):
    if sub.dtype_policy.name != 'float32':
      sub.dtype_policy = 'float32'


@gin.register
class Autoencoder(keras.Model):
  """Preprocessor -> encoder -> decoder -> processor group; returns every intermediate.

  `outputs = model(features, training=False)`:
    features: dict of batched tensors, e.g. `audio` `[B, N]`, `f0_hz` `[B, T]`, `f0_confidence` `[B, T]`,
      `loudness_db` `[B, T]`, optional labels.
    outputs: a dict holding every input feature, then (overriding inputs of the same name) the preprocessor
      outputs (`f0_scaled`, `ld_scaled`, and `f0_hz`, `loudness_db` `[B, T', 1]` at the decoder's frame
      count), the encoder outputs (`z` `[B, T', z_dims]`, or a learned `f0_hz`), the decoder outputs (`amps`,
      `harmonic_distribution`, `noise_magnitudes`, ...), every processor's `<name>/signal` `[B, N]` and
      `<name>/controls` (a dict), and `audio_synth` `[B, N]`. When the encoder replaces an input feature (the
      unsupervised f0 encoder writes `f0_hz`), the dataset's value stays available as `<key>_input`.

  Args:
    preprocessor: layer `features -> dict` (e.g. `preprocessing.F0LoudnessPreprocessor`), or None.
    encoder: layer `features -> dict` (e.g. `encoders.MfccTimeDistributedRnnEncoder`), or None.
    decoder: layer `features -> dict` of synthesizer inputs (e.g. `decoders.RnnFcDecoder`). Required.
    processor_group: `ddsp.processors.ProcessorGroup` turning the decoder outputs into audio. Required.
    losses: list of loss layers called as `loss(target_audio, audio) -> scalar`; default
      `[ddsp.losses.SpectralLoss()]`.
    name: model name.
  """

  def __init__(self, preprocessor=None, encoder=None, decoder=None, processor_group=None, losses=None,
               name='autoencoder', **kwargs):
    # The model itself computes in float32 whatever the Keras global policy: Keras would otherwise cast the
    # features (audio) to the compute dtype on entry.
    kwargs.setdefault('dtype', 'float32')
    super().__init__(name=name, **kwargs)
    if decoder is None:
      raise ValueError('Autoencoder needs a `decoder` (e.g. `Autoencoder.decoder = @decoders.RnnFcDecoder()`).')
    if processor_group is None:
      raise ValueError('Autoencoder needs a `processor_group` (e.g. `Autoencoder.processor_group = '
                       '@processors.ProcessorGroup()`).')
    if not isinstance(processor_group, processors.ProcessorGroup) and not callable(processor_group):
      raise ValueError(f'`processor_group` must be a ProcessorGroup, got {type(processor_group).__name__}.')
    if losses is None:
      losses = [ddsp_losses.SpectralLoss()]
    elif not isinstance(losses, (list, tuple)):
      losses = [losses]
    loss_names = [getattr(loss, 'name', type(loss).__name__) for loss in losses]
    if len(set(loss_names)) != len(loss_names):
      raise ValueError(f'Loss names must be unique (they key the loss dict), got {loss_names}.')
    self.preprocessor = preprocessor
    self.encoder = encoder
    self.decoder = decoder
    self.processor_group = processor_group
    # Synthesis and losses stay float32 under a mixed-precision global policy (only the networks go bf16).
    _force_float32(processor_group)
    for loss in losses:
      _force_float32(loss)
    # `losses` is a reserved Keras attribute; keep the loss layers under another name.
    self.loss_objs = tracking.track_layers(self, losses, 'loss')

    geometry = self._geometry(strict=False)
    # The training window (the lengths the gin config gave), kept when `set_length` changes the length.
    self.train_n_samples, self.train_time_steps = geometry[1:] if geometry else (None, None)

  def build(self, input_shape=None):
    # Sub-layers build themselves on the first call; nothing to create here.
    del input_shape
    self.built = True

  # ----------------------------------------------------------------------------------------------------------
  # Geometry.
  # ----------------------------------------------------------------------------------------------------------
  def length_layers(self):
    """(synthesizers with an `n_samples` attribute, [(layer, attribute)] of the frame counts).

    Reverbs have a fixed IR length (a parametric reverb holds its own IR synthesizer): never resized.
    """
    synths, framers = [], []
    if isinstance(self.processor_group, processors.ProcessorGroup):
      for proc in self.processor_group.processors:
        if hasattr(proc, 'n_samples') and not isinstance(proc, effects.ReverbBase):
          synths.append(proc)
    pending = [self.preprocessor, self.encoder]
    while pending:
      layer = pending.pop()
      if layer is None:
        continue
      for attr in ('time_steps', 'z_time_steps'):
        if isinstance(getattr(layer, attr, None), int):
          framers.append((layer, attr))
      pending.extend(getattr(layer, 'encoders', None) or [])
    return synths, framers

  def _geometry(self, strict=True):
    """(sample_rate, n_samples, time_steps) from the layers, or None (strict=False) when they do not say."""
    synths, framers = self.length_layers()
    lengths = sorted({int(p.n_samples) for p in synths})
    rates = sorted({int(p.sample_rate) for p in synths if hasattr(p, 'sample_rate')})
    steps = sorted({int(getattr(layer, attr)) for layer, attr in framers if attr == 'time_steps'})
    problem = None
    if len(lengths) != 1:
      problem = f'its synthesizers must share one n_samples, got {lengths or "no synthesizer"}'
    elif len(rates) != 1:
      problem = f'its synthesizers must share one sample_rate, got {rates or "none"}'
    elif len(steps) != 1:
      problem = (f'its preprocessor/encoder must give one time_steps, got {steps or "none"} (a model without '
                 'an F0LoudnessPreprocessor has no frame rate of its own)')
    elif lengths[0] % steps[0]:
      problem = f'n_samples {lengths[0]} is not a multiple of time_steps {steps[0]} (no integer hop)'
    if problem:
      if strict:
        raise ValueError(f'The geometry of model {self.name!r} is unknown: {problem}.')
      return None
    return rates[0], lengths[0], steps[0]

  @property
  def sample_rate(self):
    """Audio samples per second."""
    return self._geometry()[0]

  @property
  def n_samples(self):
    """Samples synthesized per call (the training window until `set_length` changes it)."""
    return self._geometry()[1]

  @property
  def time_steps(self):
    """Frames per call (`n_samples / hop_size`)."""
    return self._geometry()[2]

  @property
  def hop_size(self):
    """Samples per frame."""
    _, n_samples, time_steps = self._geometry()
    return n_samples // time_steps

  @property
  def frame_rate(self):
    """Frames per second (`sample_rate / hop_size`; 250 for the paper's models)."""
    return self.sample_rate / self.hop_size

  def n_frames(self, n_samples):
    """Frames covering `n_samples` samples: `ceil(n_samples / hop_size)`."""
    return -(-int(n_samples) // self.hop_size)

  def set_length(self, n_frames):
    """Makes the model synthesize `n_frames` frames (`n_frames * hop_size` samples) per call."""
    hop = self.hop_size
    synths, framers = self.length_layers()
    for synth in synths:
      synth.n_samples = int(n_frames) * hop
    for layer, attr in framers:
      setattr(layer, attr, int(n_frames))

  def example_features(self, n_frames=None, batch_size=1):
    """A features dict of silence-free constants (440 Hz, -40 dB) `n_frames` long (default: the training
    window), e.g. to build the variables before a checkpoint is read into them."""
    n_frames = int(n_frames or self.train_time_steps or self.time_steps)
    return {'audio': tf.zeros([batch_size, n_frames * self.hop_size]),
            'f0_hz': tf.fill([batch_size, n_frames], 440.0),
            'loudness_db': tf.fill([batch_size, n_frames], -40.0)}

  def ensure_built(self):
    """Creates the variables (one call on `example_features()` at the current length) if not done yet."""
    if not (self.built and getattr(self.decoder, 'built', True) and self.variables):
      self(self.example_features(self.time_steps), training=False)

  def restore(self, checkpoint):
    """Reads the weights of `checkpoint` (a `ckpt-<n>` prefix or a folder: its newest) into the model.

    Builds the variables first if needed. Returns the checkpoint's training step (None if it has none).

    Raises:
      FileNotFoundError: no checkpoint there.
      ddsp.training.checkpoints.IncompatibleCheckpointError: the checkpoint does not hold this model.
    """
    path = checkpoints.latest_checkpoint(checkpoint)
    if path is None:
      raise FileNotFoundError(f'No checkpoint found in {checkpoint!r} (expected ckpt-<n>.index files or a '
                              'checkpoint prefix).')
    self.ensure_built()
    return checkpoints.restore_weights(self, path)

  def reverb_node(self):
    """(reverb layer, key of its input signal) of the last reverb node of the DAG, or (None, None)."""
    found = (None, None)
    if isinstance(self.processor_group, processors.ProcessorGroup):
      for proc, keys in self.processor_group.dag:
        if isinstance(proc, effects.ReverbBase):
          found = (proc, keys[0])
    return found

  def encode(self, features, training=False):
    """Runs the preprocessor and the encoder; returns the merged features dict."""
    outputs = _features_dict(features)
    if self.preprocessor is not None:
      outputs.update(self.preprocessor(outputs, training=training))
    if self.encoder is not None:
      encoded = self.encoder(outputs, training=training)
      for key in encoded:
        if key in features and key + '_input' not in outputs:
          outputs[key + '_input'] = features[key]
      outputs.update(encoded)
    return outputs

  def decode(self, outputs, training=False):
    """Runs the decoder and the processor group on the features dict; returns it with the results added."""
    outputs = dict(outputs)
    outputs.update(self.decoder(outputs, training=training))
    if isinstance(self.processor_group, processors.ProcessorGroup):
      group = self.processor_group.get_controls(outputs)
      audio = group.pop('signal')
      for key, value in group.items():
        if key not in outputs or '/' in key:
          outputs[key] = value
    else:
      audio = self.processor_group(outputs)
    outputs['audio_synth'] = audio
    return outputs

  def call(self, features, training=False):
    return self.decode(self.encode(features, training=training), training=training)

  def get_audio_from_outputs(self, outputs):
    """The synthesized audio `[batch, n_samples]` from an outputs dict."""
    return outputs['audio_synth']

  def compute_losses(self, outputs):
    """Dict loss name -> scalar float32, each `loss(outputs['audio'], outputs['audio_synth'])`.

    The total loss is their sum.
    """
    if 'audio' not in outputs:
      raise KeyError('compute_losses needs the target `audio` in the outputs dict (pass it in the features).')
    target = outputs['audio']
    audio = self.get_audio_from_outputs(outputs)
    return {loss.name: tf.cast(loss(target, audio), tf.float32) for loss in self.loss_objs}

  def total_loss(self, outputs):
    """Sum of `compute_losses(outputs)` (a scalar)."""
    return tf.add_n(list(self.compute_losses(outputs).values()))


@gin.configurable
def get_model(model=gin.REQUIRED):
  """gin entry point: `get_model.model = @models.Autoencoder()`; returns the configured model."""
  if not isinstance(model, keras.Model) and not isinstance(model, keras.layers.Layer):
    raise TypeError(f'get_model.model must be a Keras model, got {type(model).__name__}.')
  return model
