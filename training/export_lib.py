r"""Exporting a trained model as a TensorFlow SavedModel or a TFLite model, offline or streaming (the library
under the `ddsp_export` command).

Examples:
  ddsp_export --save_dir=/tmp/violin --format=saved_model --output=/tmp/violin_export
  ddsp_export --save_dir=/tmp/violin --format=tflite --output=/tmp/violin.tflite --streaming --block_size=256

The model is rebuilt from the newest `operative_config-<step>.gin` in `--save_dir` and restored from its newest
checkpoint (or `--checkpoint`).

Offline export (the default): one serving signature `serving_default(f0_hz [B, T], loudness_db [B, T]) ->
{'audio': [B, n_samples]}` with T = the model's `time_steps` (1000 frames = 4 s for the bundled configs).

Streaming export (`--streaming`): `serving_default(f0_hz [B, F], loudness_db [B, F], <state>...) ->
{'audio': [B, block_size], <state>...}` with F = block_size / hop frames. The state (the GRU state, the
oscillator phase, the noise filter's and the reverb's overlap, see `ddsp.training.streaming`) goes in and
comes out explicitly, under the same names, so the exported function is stateless: start with every state
tensor at zero and feed each output state back into the next call. The audio lags the input by
`latency` samples (2 frames); the first `latency` samples are silence.

Live export (`--streaming --with_features`): `serving_default(audio [B, block_size], <state>...) -> {'audio',
'f0_hz', 'f0_confidence', 'loudness_db', <state>...}`: the whole audio -> audio step of
`ddsp.training.live.LiveModel` (causal loudness and CREPE f0 of the input, then the model), state as above;
the JSON also records the feature look-ahead and the total latency.

Noise: the exported graphs draw seeded, stateless noise (`--noise_seed`), so they are deterministic. A JSON
file next to the export (`<output>/ddsp_export.json` for a SavedModel, `<output>.json` for TFLite) records the
geometry (sample rate, hop, block size, latency) and the state's names, shapes and dtypes.

Both formats are written atomically: into a temporary path beside `--output`, renamed when complete.
"""
import json
import os
import tempfile

from ddsp import file_utils
from ddsp import startup

os.environ.setdefault('KERAS_BACKEND', 'tensorflow')


class ExportError(ValueError):
  """A save_dir, checkpoint or option that cannot be exported."""


# ------------------------------------------------------------------------------------------------------------
# Loading.
# ------------------------------------------------------------------------------------------------------------
def load_model(save_dir, checkpoint=None):
  """Rebuilds the model of a `ddsp_run` training folder from its operative gin config and restores it.

  Args:
    save_dir: the training folder.
    checkpoint: optional checkpoint prefix or folder; default the newest checkpoint in `save_dir`.

  Returns:
    The restored `models.Autoencoder`, built for the config's `time_steps` frames.

  Raises:
    ExportError: no such folder, no operative config, no checkpoint, or a checkpoint that does not match.
  """
  from ddsp.training import inference
  if not save_dir or not os.path.isdir(save_dir):
    raise ExportError(f'--save_dir {save_dir!r} is not a folder.')
  try:
    model = inference.load_model(save_dir, checkpoint).model
  except FileNotFoundError as e:
    raise ExportError(f'{e} (train first: ddsp_run --mode=train).') from e
  except (ValueError, TypeError) as e:
    raise ExportError(f'Cannot rebuild or restore the model of {save_dir}: {e}') from e
  if getattr(model.preprocessor, 'time_steps', None) is None or model.train_time_steps is None:
    raise ExportError(f'The model of {save_dir} has no F0LoudnessPreprocessor with time_steps; only f0/loudness '
                      'models can be exported.')
  model.set_length(model.train_time_steps)  # The exported window is the training window.
  return model


# ------------------------------------------------------------------------------------------------------------
# Serving functions.
# ------------------------------------------------------------------------------------------------------------
def live_serving_function(model, block_size=256, batch_size=1, noise_seed=0, crepe_model='tiny',
                          crepe_frame_rate=None):
  """The whole live step, audio -> audio (`ddsp.training.live.LiveModel`), as a concrete function.

  Signature: `serving_default(audio [B, block_size], <state>...) -> {'audio', 'f0_hz', 'f0_confidence',
  'loudness_db', <state>...}` (features `[B, block_frames]` of input frames [s - feature latency, ...)).
  `crepe_frame_rate`: the rate the live CREPE runs at (None: the model's frame rate; `live.LiveModel`).

  Returns:
    (concrete function, tf.Module holding the weights, metadata dict).
  """
  import tensorflow as tf
  from ddsp.training import live
  player = live.LiveModel(model, block_size, crepe_model=crepe_model, noise_seed=noise_seed,
                          crepe_frame_rate=crepe_frame_rate)
  module = tf.Module()
  module.model = model
  module.player = player
  state_spec = player.state_spec(batch_size)
  names = list(state_spec)
  specs = [tf.TensorSpec([batch_size, player.block_size], tf.float32, name='audio')]
  specs += [tf.TensorSpec(state_spec[k].shape, state_spec[k].dtype, name=k) for k in names]

  def serve(audio, *state_values):
    out, new_state, feats = player._step(audio, dict(zip(names, state_values)))
    outputs = {'audio': out}
    outputs.update(feats)
    outputs.update({k: new_state[k] for k in names})
    return outputs

  meta = {'sample_rate': player.sample_rate, 'hop': player.hop, 'streaming': True, 'with_features': True,
          'noise_seed': int(noise_seed), 'crepe_model': crepe_model, 'block_size': player.block_size,
          'block_frames': player.block_frames, 'latency': player.latency, 'latency_frames': player.latency_frames,
          'feature_latency_frames': player.features.latency_frames, 'total_latency': player.total_latency,
          'lookahead_samples': player.features.lookahead_samples, 'loudness_n_fft': player.features.n_fft,
          'f0_delay_frames': player.f0_delay_frames, 'synth_latency_frames': player.streamer.latency_frames,
          'adapter_latency': player.adapter_latency, 'unit': player.unit,
          'crepe_frame_rate': player.crepe_frame_rate,
          'inputs': {'audio': [batch_size, player.block_size]},
          'state': {k: {'shape': list(state_spec[k].shape), 'dtype': state_spec[k].dtype.name} for k in names}}
  concrete = tf.function(serve, input_signature=specs).get_concrete_function()
  return concrete, module, meta


def serving_function(model, streaming=False, block_size=256, batch_size=None, noise_seed=0, engine='keras'):
  """The function to export and what describes it.

  Args:
    model: a restored Autoencoder (no z).
    streaming: the block-by-block model instead of the whole window.
    block_size: streaming block in samples.
    batch_size: static batch size of the signature, or None.
    noise_seed: seed of the noise drawn in the graph.
    engine: offline only: 'keras' runs the Autoencoder itself (FFT ops); 'streaming' runs the same maths
      with `StreamingModel.synthesize` over the whole window, built from TFLite built-in ops only.

  Returns:
    (concrete function, trackable tf.Module holding the weights, metadata dict).
  """
  import tensorflow as tf
  from ddsp.training import streaming as streaming_lib
  n_samples, time_steps, hop = streaming_lib.model_geometry(model)
  streaming_lib.set_noise_seed(model, noise_seed)
  module = tf.Module()
  module.model = model
  meta = {'sample_rate': model.sample_rate, 'hop': hop,
          'streaming': bool(streaming), 'noise_seed': int(noise_seed)}
  if not streaming:
    specs = [tf.TensorSpec([batch_size, time_steps], tf.float32, name='f0_hz'),
             tf.TensorSpec([batch_size, time_steps], tf.float32, name='loudness_db')]
    if engine == 'streaming':
      # The model's own seeded noise draw for one example, as a constant, so the output equals the Keras
      # model's (for each example of a batch the same noise).
      whole = streaming_lib.StreamingModel(model, n_samples, noise_seed=noise_seed)
      module.streamer = whole
      noise = streaming_lib.offline_noise(model, 1)
      noise = tf.constant(noise if noise is not None else tf.zeros([1, n_samples]))

      def serve(f0_hz, loudness_db):
        batch_noise = tf.tile(noise, tf.stack([tf.shape(f0_hz)[0], 1]))
        return {'audio': whole.synthesize(f0_hz, loudness_db, batch_noise)}
    else:

      def serve(f0_hz, loudness_db):
        return {'audio': model({'f0_hz': f0_hz, 'loudness_db': loudness_db}, training=False)['audio_synth']}

    meta.update(frames=time_steps, n_samples=n_samples,
                inputs={'f0_hz': [batch_size, time_steps], 'loudness_db': [batch_size, time_steps]})
    return tf.function(serve, input_signature=specs).get_concrete_function(), module, meta

  streamer = streaming_lib.StreamingModel(model, block_size, noise_seed=noise_seed)
  module.streamer = streamer
  state_spec = streamer.state_spec(batch_size)
  names = list(state_spec)
  frames = streamer.block_frames
  specs = [tf.TensorSpec([batch_size, frames], tf.float32, name='f0_hz'),
           tf.TensorSpec([batch_size, frames], tf.float32, name='loudness_db')]
  specs += [tf.TensorSpec(state_spec[k].shape, state_spec[k].dtype, name=k) for k in names]

  def serve_stream(f0_hz, loudness_db, *state_values):
    state = dict(zip(names, state_values))
    audio, new_state = streamer._step(f0_hz, loudness_db, state)
    outputs = {'audio': audio}
    outputs.update({k: new_state[k] for k in names})
    return outputs

  meta.update(block_size=streamer.block_size, block_frames=frames, latency=streamer.latency,
              latency_frames=streamer.latency_frames,
              state={k: {'shape': list(state_spec[k].shape), 'dtype': state_spec[k].dtype.name} for k in names})
  concrete = tf.function(serve_stream, input_signature=specs).get_concrete_function()
  return concrete, module, meta


# ------------------------------------------------------------------------------------------------------------
# Writing.
# ------------------------------------------------------------------------------------------------------------
def export_saved_model(model, output, streaming=False, block_size=256, batch_size=None, noise_seed=0,
                       with_features=False, crepe_model='tiny', crepe_frame_rate=None):
  """Writes a SavedModel with a `serving_default` signature; returns its metadata dict."""
  import tensorflow as tf
  if with_features:
    concrete, module, meta = live_serving_function(model, block_size, batch_size, noise_seed, crepe_model,
                                                     crepe_frame_rate)
  else:
    concrete, module, meta = serving_function(model, streaming, block_size, batch_size, noise_seed)
  meta['format'] = 'saved_model'
  with file_utils.atomic_dir(output) as tmp:
    tf.saved_model.save(module, tmp, signatures={'serving_default': concrete})
    with open(os.path.join(tmp, 'ddsp_export.json'), 'w', encoding='utf-8') as f:
      json.dump(meta, f, indent=2, sort_keys=True)
  return meta


def tflite_bytes(concrete, module):
  """Converts a concrete function to a TFLite flatbuffer with TFLite built-in ops only.

  The streaming maths is written for that (no FFT op, no complex or float64 tensors, no random op), so the
  model runs in any TFLite interpreter without the Flex delegate (which the Python `tf.lite.Interpreter` of
  TensorFlow 2.21 does not link).

  Returns:
    The flatbuffer bytes.
  """
  import tensorflow as tf
  from tensorflow.python.framework import convert_to_constants
  del module  # the weights become constants
  # The weights as constants: the converter would otherwise keep the variables read by the GRU's loop as
  # resource variables that nothing initialises. Re-wrapped in a function with the same named signature and
  # converted through a temporary SavedModel, which keeps the input and output names.
  frozen = convert_to_constants.convert_variables_to_constants_v2(concrete)
  specs = list(concrete.structured_input_signature[0])
  structure = concrete.structured_outputs

  def serve(*args):
    return tf.nest.pack_sequence_as(structure, tf.nest.flatten(frozen(*args)))

  serve = tf.function(serve, input_signature=specs)
  with tempfile.TemporaryDirectory(prefix='ddsp_export_') as tmp:
    tf.saved_model.save(tf.Module(), tmp, signatures={'serving_default': serve.get_concrete_function()},
                        options=tf.saved_model.SaveOptions(experimental_custom_gradients=False))
    converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
      with startup.quiet_native_startup(probe_devices=False):  # the converter's native log lines, in a command
        return converter.convert()
    except Exception as e:
      raise ExportError(f'TFLite conversion failed: {type(e).__name__}: {str(e)[:2000]}') from e


def export_tflite(model, output, streaming=False, block_size=256, batch_size=1, noise_seed=0,
                  with_features=False, crepe_model='tiny', crepe_frame_rate=None):
  """Writes a TFLite model (and `<output>.json` metadata); returns the metadata dict."""
  if with_features:
    concrete, module, meta = live_serving_function(model, block_size, batch_size, noise_seed, crepe_model,
                                                     crepe_frame_rate)
  else:
    concrete, module, meta = serving_function(model, streaming, block_size, batch_size, noise_seed,
                                              engine='streaming')
  flatbuffer = tflite_bytes(concrete, module)
  meta.update(format='tflite')
  with file_utils.atomic_path(output) as tmp:
    with open(tmp, 'wb') as f:
      f.write(flatbuffer)
  file_utils.write_json(output + '.json', meta)
  return meta


def export(save_dir, output, fmt='saved_model', streaming=False, block_size=256, batch_size=None,
           checkpoint=None, noise_seed=0, with_features=False, crepe_model='tiny', crepe_frame_rate=None):
  """What `ddsp_export` does, as a Python function. Returns the metadata dict.

  `with_features` (with `streaming`): the whole live step, audio block -> audio block, with the causal loudness
  and CREPE (`crepe_model`, run at `crepe_frame_rate`) f0 inside (`live_serving_function`).

  Raises:
    ExportError: bad folder / checkpoint / format / block size (checked before anything is written).
  """
  if fmt not in ('saved_model', 'tflite'):
    raise ExportError(f"--format must be 'saved_model' or 'tflite', got {fmt!r}.")
  if not output:
    raise ExportError('ddsp_export needs --output.')
  if with_features and not streaming:
    raise ExportError('--with_features needs --streaming (it exports the live audio -> audio step).')
  if streaming and (int(block_size) <= 0):
    raise ExportError(f'--block_size must be a positive number of samples, got {block_size}.')
  model = load_model(save_dir, checkpoint)
  from ddsp.training import streaming as streaming_lib
  try:
    _, _, hop = streaming_lib.model_geometry(model)
  except ValueError as e:
    raise ExportError(str(e)) from e
  if streaming and not with_features and int(block_size) % hop:  # the live step takes any block (its adapter)
    raise ExportError(f'--block_size {block_size} is not a multiple of the hop ({hop} samples per frame; '
                      '--with_features takes any block size).')
  try:
    if fmt == 'saved_model':
      return export_saved_model(model, output, streaming, block_size, batch_size, noise_seed, with_features,
                                crepe_model, crepe_frame_rate)
    return export_tflite(model, output, streaming, block_size, 1 if batch_size is None else batch_size,
                         noise_seed, with_features, crepe_model, crepe_frame_rate)
  except ValueError as e:
    if isinstance(e, ExportError):
      raise
    raise ExportError(str(e)) from e
