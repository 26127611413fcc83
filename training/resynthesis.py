"""Applications of a loaded model: resynthesis and timbre transfer of a recording, room acoustics, and the
files they write.

  `transfer`: the whole pipeline on one recording: `features.read_input` -> `features.extract_features` ->
    `features.adjust_features` -> `InferenceModel.resynthesize` (the whole file in one pass, at its own
    length) -> a `TransferResult`.
  `write_result`: output WAV(s) plus a PNG with the input and output spectrograms and the curves used
    (`results_figure`).
  Room acoustics: `dry` audio bypasses the model's reverb node (the signal feeding it, found in the
    ProcessorGroup DAG, not by a hard-coded name); `apply_ir` convolves any recording with the learned
    impulse response exactly as the model's reverb does; `export_ir` writes that IR as a float WAV.

The functions receive a `ddsp.training.inference.InferenceModel` (from `load_model` or `wrap_model`).
Shapes: audio `[n_samples]` (NumPy); frame curves `[n_frames]`.
"""
import dataclasses
import os

from absl import logging
import numpy as np
import soundfile as sf
import tensorflow as tf

from ddsp import file_utils
from ddsp import spectral_ops
from ddsp import validation
from ddsp.training import features as features_lib
from ddsp.training import summaries

# The accepted values of the user's controls of `transfer` (defined with the other user-value checks).
CONTROL_RANGES = validation.TRANSFER_CONTROL_RANGES


# ------------------------------------------------------------------------------------------------------------
# Room acoustics.
# ------------------------------------------------------------------------------------------------------------
def _require_ir(model):
  """The model's learned IR `[reverb_length]` (`InferenceModel.ir`); ValueError if it has none."""
  ir = model.ir
  if ir is None:
    raise ValueError(f'The model of {model.save_dir!r} has no learned reverb impulse response.')
  return ir


def apply_ir(model, audio):
  """Acoustic transfer: `audio` `[n_samples]` through the model's learned room (its reverb layer: the IR
  convolution, plus the dry signal when the reverb adds it). Returns `[n_samples]`."""
  ir = _require_ir(model)
  audio = np.asarray(audio, np.float32).reshape(1, -1)
  wet = model.reverb.get_signal(tf.constant(audio), tf.constant(ir[np.newaxis]))
  return np.asarray(wet)[0]


def acoustic_transfer(model, input_path, output_path, log=None):
  """Writes the recording `input_path` through the model's learned room to the WAV `output_path`, and a PNG
  beside it (same name, `.png`) with both spectrograms and loudness curves.

  Args:
    model: a loaded model with a learned reverb (`inference.load_model`).
    input_path: any audio file `features.read_input` reads (resampled and mixed to mono with a note).
    output_path: output WAV path.
    log: called with each note about the input (e.g. its conversion); default: logging.info.

  Returns:
    The list of paths written.

  Raises:
    features.InputError: unreadable or silent input. ValueError: the model has no learned reverb.
  """
  log = log or logging.info
  audio, notes = features_lib.read_input(input_path, model.sample_rate)
  for note in notes:
    log(f'input {note}')
  if float(np.max(np.abs(audio))) < features_lib.SILENCE_PEAK:
    raise features_lib.InputError('The input is silent: nothing to transfer.')
  wet = apply_ir(model, audio)
  file_utils.write_wav(output_path, wet, model.sample_rate)
  frame_rate = int(model.frame_rate) if float(model.frame_rate).is_integer() else model.frame_rate
  curves = {'input loudness': spectral_ops.compute_loudness(audio, model.sample_rate, frame_rate),
            'output loudness': spectral_ops.compute_loudness(wet, model.sample_rate, frame_rate)}
  fig = results_figure(audio, wet, model.sample_rate, model.frame_rate, {}, curves,
                       titles=('input', 'input in the learned room'))
  png = os.path.splitext(output_path)[0] + '.png'
  file_utils.save_figure(fig, png)
  return [os.fspath(output_path), png]


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
             interpolate_with=None, interpolation=0.5, progress=None, **controls):
  """Resynthesises (or timbre-transfers) a recording with the model, applying controls.

  Args:
    model: an `InferenceModel` (or a save_dir, loaded with `inference.load_model`).
    source: a path or an audio array (see `features.read_input`).
    source_sample_rate: the rate of an array `source`.
    crepe_model, crepe_frame_rate: for `features.extract_features`.
    interpolate_with: optional second recording (path or array at the model's rate): the timbre latent
      moves `interpolation` of the way towards its average z (`features.interpolate_z`). Needs a model with
      z.
    interpolation: the interpolation amount (0: the input's own z, 1: the other recording's).
    progress: optional `progress(stage)` called as each step starts: 'read', 'features' (CREPE and
      loudness), 'controls', 'synthesis' (for a front end's progress display).
    **controls: `features.adjust_features` arguments (pitch_shift, loudness_shift, auto_adjust, dataset_stats (a dict
      or a path; found in the model folder when auto_adjust is set and it is None), f0_curve, ...).

  Returns:
    A `TransferResult`.
  """
  if isinstance(model, (str, os.PathLike)):
    from ddsp.training import inference  # inference imports this module
    model = inference.load_model(model)
  progress = progress or (lambda stage: None)
  progress('read')
  audio, notes = features_lib.read_input(source, model.sample_rate, source_sample_rate)
  for note in notes:
    logging.info('Input: %s.', note)
  progress('features')
  features_in = features_lib.extract_features(audio, model.sample_rate, model.frame_rate, crepe_model,
                                              crepe_frame_rate)
  progress('controls')
  stats = controls.get('dataset_stats')
  if controls.get('auto_adjust'):
    if stats is None:
      stats = features_lib.find_dataset_statistics(model.save_dir, model.gin_config)
      if stats is None:
        raise FileNotFoundError(f'auto_adjust needs the training set\'s {features_lib.STATS_NAME}: none in '
                                f'{model.save_dir!r} nor beside its TFRecords; give its path '
                                '(--dataset_stats).')
    if not isinstance(stats, dict):
      stats = features_lib.load_dataset_statistics(stats)
  controls['dataset_stats'] = stats
  controls.setdefault('sample_rate', model.sample_rate)  # refuses an inaudible pitch (all above Nyquist)
  features, info = features_lib.adjust_features(features_in, **controls)
  info['notes'] = notes
  info['checkpoint'] = model.checkpoint
  z = None
  if interpolate_with is not None:
    validation.Range().check('interpolation', interpolation)
    other, other_notes = features_lib.read_input(interpolate_with, model.sample_rate)
    for note in other_notes:
      logging.warning('Interpolation input: %s.', note)
    other_features = features_lib.extract_features(other, model.sample_rate, model.frame_rate, crepe_model,
                                                   crepe_frame_rate)
    z_b = model.encode_z(other_features, other)
    z_a = model.encode_z(features, audio)
    z = features_lib.interpolate_z(z_a, z_b, interpolation)
    info['interpolation'] = float(interpolation)
  progress('synthesis')
  out, dry, outputs = model.resynthesize(features['f0_hz'], features['loudness_db'], audio, z=z)
  n = audio.size
  return TransferResult(audio=out[:n], audio_dry=None if dry is None else dry[:n], audio_input=audio,
                        features_input=features_in, features=features, info=info,
                        sample_rate=model.sample_rate, frame_rate=model.frame_rate, outputs=outputs)


def results_figure(audio_in, audio_out, sample_rate, frame_rate, f0_curves, loudness_curves,
                   titles=('input', 'output')):
  """One figure: input and output spectrograms, then the f0 and loudness curves (dicts label -> `[n]`)."""
  fig = summaries._new_figure(9, 10)
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


def result_curves(result):
  """The curves of a `TransferResult` that its figures draw: ({label: f0 Hz `[n_frames]`}, {label: dB}).

  f0: the input's (CREPE) and the one fed to the model, both on the voiced frames only (NaN elsewhere: CREPE's
  guesses on silence, often near 2 kHz, would squash the axis); loudness: the input's and the one fed to the
  model.
  """
  voiced = np.asarray(result.features['voiced'], bool)
  f0_in = np.asarray(result.features_input['f0_hz'], np.float64)
  f0_used = np.asarray(result.features['f0_hz'], np.float64)
  f0_curves = {'input f0 (CREPE, voiced)': np.where(voiced & (f0_in > 0), f0_in, np.nan),
               'f0 used (voiced)': np.where(voiced & (f0_used > 0), f0_used, np.nan)}
  ld_curves = {'input loudness': result.features_input['loudness_db'],
               'loudness used': result.features['loudness_db']}
  return f0_curves, ld_curves


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
    f0_curves, ld_curves = result_curves(result)
    fig = results_figure(result.audio_input, audio, result.sample_rate, result.frame_rate, f0_curves,
                         ld_curves, titles=('input', 'output (dry)' if write_dry else 'output'))
    file_utils.save_figure(fig, png)
    paths.append(png)
  return paths
