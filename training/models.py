"""Models: the DDSP autoencoder (SPEC §5) and the gin entry point `get_model`.

`Autoencoder` = preprocessor -> encoder -> decoder -> ProcessorGroup -> audio; losses compare the synthesized
audio with the input audio.
"""
import gin
import keras
import tensorflow as tf

from ddsp import losses as ddsp_losses
from ddsp import processors
from ddsp import tracking


def _features_dict(features):
  if not isinstance(features, dict):
    raise TypeError(f'The model expects a dict of features (audio, f0_hz, loudness_db, ...), got '
                    f'{type(features).__name__}.')
  return dict(features)


def _force_float32(layer):
  """Sets the float32 dtype policy on `layer` and every layer nested in it (no-op for non-layers)."""
  if not isinstance(layer, keras.layers.Layer):
    return
  for sub in [layer] + list(layer._flatten_layers(include_self=False, recursive=True)):  # pylint: disable=protected-access
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
    loss_names = [getattr(l, 'name', type(l).__name__) for l in losses]
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

  def build(self, input_shape=None):
    # Sub-layers build themselves on the first call; nothing to create here.
    del input_shape
    self.built = True

  def encode(self, features, training=False):
    """Runs the preprocessor and the encoder; returns the merged features dict."""
    outputs = _features_dict(features)
    if self.preprocessor is not None:
      outputs.update(self.preprocessor(outputs))
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
