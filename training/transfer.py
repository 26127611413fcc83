r"""`ddsp_transfer`: resynthesis, timbre transfer and room acoustics with a trained model, from the shell.

Examples:
  # Resynthesis of a recording by the model trained in /tmp/violin (WAV + PNG beside it).
  ddsp_transfer --model_dir=/tmp/violin --input=phrase.wav --output=/tmp/out/resynth.wav
  # Timbre transfer: a voice played by the violin model, octave and loudness matched to the training set.
  ddsp_transfer --model_dir=/tmp/violin --input=voice.wav --output=/tmp/out/voice_violin.wav --auto_adjust
  # Independent controls: an octave down, 6 dB louder, a flattened melody, without the learned room.
  ddsp_transfer --model_dir=/tmp/violin --input=phrase.wav --output=/tmp/out/low.wav --pitch_shift=-12 \
    --loudness_shift=6 --f0_range_scale=0 --no_reverb
  # Room acoustics: export the learned impulse response; play any recording in the learned room.
  ddsp_transfer --model_dir=/tmp/violin --export_ir=/tmp/out/room_ir.wav
  ddsp_transfer --model_dir=/tmp/violin --input=dry_speech.wav --output=/tmp/out/speech_room.wav \
    --acoustic_transfer
  # Timbre interpolation (models with a timbre latent z, e.g. models/nsynth_ae.gin).
  ddsp_transfer --model_dir=/tmp/nsynth --input=a.wav --interpolate_with=b.wav --interpolation=0.5 \
    --output=/tmp/out/ab.wav

Inputs of any format, sample rate and channel count are converted to the model's mono rate (a note says
so). Problems (missing, truncated or incompatible checkpoint, unreadable, silent or unpitched input, malformed
curve or statistics file, an output path that is one of the inputs) end with one line
`ddsp_transfer: error: ...` and exit code 1, before anything is written; a flag value out of its range (stated
in `--help`), or pitch controls that put the whole output above the model's Nyquist frequency or below 20 Hz,
with exit code 2. See `ddsp.training.inference` for the API.
"""
import os
import sys

from absl import app
from absl import flags
from absl import logging

from ddsp import cli
from ddsp import validation

os.environ.setdefault('KERAS_BACKEND', 'tensorflow')

FLAGS = flags.FLAGS

CREPE_MODELS = cli.CREPE_MODELS
# The accepted values of the numeric flags (stated in each flag's help; checked before any model loads).
RANGES = {
    **validation.TRANSFER_CONTROL_RANGES,
    'octave_shift': validation.Range(-8, 8, 'octaves'),
    'crepe_frame_rate': cli.CREPE_FRAME_RATE,
}


@cli.define_once
def define_flags():
  """Defines the command-line flags."""
  flags.DEFINE_string('model_dir', None, 'Training folder of the model (ddsp_run --save_dir).')
  flags.DEFINE_string('checkpoint', None, 'A checkpoint prefix to use instead of the newest in --model_dir.')
  flags.DEFINE_multi_string('gin_param', [], 'Extra gin binding applied after the saved config (repeatable).')
  flags.DEFINE_string('input', None, 'Input recording (any format, rate, channels).')
  flags.DEFINE_string('output', None, 'Output WAV path; a PNG with spectrograms and curves is written beside '
                      'it.')
  flags.DEFINE_float('pitch_shift', 0.0, RANGES['pitch_shift'].help('Pitch shift in semitones.'))
  flags.DEFINE_integer('octave_shift', 0, RANGES['octave_shift'].help('Pitch shift in octaves (added to '
                       '--pitch_shift).'))
  flags.DEFINE_float('loudness_shift', 0.0, RANGES['loudness_shift'].help('Loudness shift in dB.'))
  flags.DEFINE_float('f0_range_scale', 1.0, RANGES['f0_range_scale'].help('Scale the melody around its median '
                     'pitch (0: one note).'))
  flags.DEFINE_float('loudness_range_scale', 1.0, RANGES['loudness_range_scale'].help(
      'Scale the dynamics around the mean voiced loudness.'))
  flags.DEFINE_boolean('auto_adjust', False, 'Shift the input pitch by whole octaves and its loudness to '
                       'match the training set statistics (dataset_statistics.json).')
  flags.DEFINE_string('dataset_stats', None, 'dataset_statistics.json for --auto_adjust (default: looked for '
                      'in --model_dir and beside the training TFRecords).')
  flags.DEFINE_boolean('no_reverb', False, 'Bypass the learned reverb (dereverberated output).')
  flags.DEFINE_string('export_ir', None, 'Write the learned impulse response to this WAV (32-bit float).')
  flags.DEFINE_boolean('ir_with_dry', False, 'With --export_ir: include the direct path (unit impulse).')
  flags.DEFINE_boolean('acoustic_transfer', False, 'Apply the learned room (impulse response) to --input '
                       'instead of resynthesising it.')
  flags.DEFINE_string('f0_curve', None, 'Replace f0 by this curve (Hz; .npy or CSV), resampled to the '
                      'frames. Values in [0, 100000] Hz, 0 marks an unvoiced frame.')
  flags.DEFINE_string('loudness_curve', None, 'Replace loudness by this curve (dB; .npy or CSV). Values in '
                      '[-200, 200] dB.')
  flags.DEFINE_float('confidence_threshold', 0.5, RANGES['confidence_threshold'].help(
      'Frames with CREPE confidence below this are unvoiced (their loudness goes to --unvoiced_loudness_db); '
      '0 disables masking.'))
  flags.DEFINE_float('unvoiced_loudness_db', -120.0, RANGES['unvoiced_loudness_db'].help(
      'Loudness of unvoiced frames.'))
  flags.DEFINE_integer('max_gap_frames', 8, RANGES['max_gap_frames'].help(
      'Unvoiced runs of at most this many frames between voiced ones count as voiced (confidence dips at note '
      'changes).'))
  flags.DEFINE_string('interpolate_with', None, 'Second recording for timbre (z) interpolation.')
  flags.DEFINE_float('interpolation', 0.5, RANGES['interpolation'].help(
      'Timbre interpolation amount towards --interpolate_with.'))
  cli.define_crepe_flags('the input')


def check_flags(flag_values=FLAGS):
  """Refuses flag values out of range or a CREPE capacity that is not installed, before any model loads.

  Raises:
    ddsp.validation.ValidationError: naming the flag, its value and what is accepted.
  """
  validation.check_flags(flag_values, RANGES, {'crepe_model': CREPE_MODELS})
  if flag_values.input and not flag_values.acoustic_transfer:
    validation.check_crepe_installed('--crepe_model', flag_values.crepe_model)

def _error(message):
  print(f'ddsp_transfer: error: {message}', file=sys.stderr)
  sys.exit(1)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if not FLAGS.model_dir:
    raise app.UsageError('--model_dir is required.')
  if not FLAGS.export_ir and not FLAGS.input:
    raise app.UsageError('Give --input (with --output) and/or --export_ir.')
  if FLAGS.input and not FLAGS.output:
    raise app.UsageError('--input needs --output (a WAV path).')
  check_flags(FLAGS)
  from ddsp.training import curves
  from ddsp.training import features as features_lib
  from ddsp.training import inference
  from ddsp.training import resynthesis
  from ddsp import file_utils
  outputs = {'--export_ir': FLAGS.export_ir}
  if FLAGS.input and FLAGS.output:
    outputs['--output'] = FLAGS.output
    outputs['the figure beside --output'] = os.path.splitext(FLAGS.output)[0] + '.png'
    if FLAGS.export_ir and file_utils.same_file(FLAGS.export_ir, FLAGS.output):
      _error(f'--export_ir {FLAGS.export_ir!r} is --output {FLAGS.output!r}: one would overwrite the other. '
             'Choose two paths.')
  inputs = {'--input': FLAGS.input, '--interpolate_with': FLAGS.interpolate_with, '--f0_curve': FLAGS.f0_curve,
            '--loudness_curve': FLAGS.loudness_curve, '--dataset_stats': FLAGS.dataset_stats}
  try:
    file_utils.check_outputs_are_not_inputs(outputs, inputs)
    # The files given beside the audio are parsed strictly now, before the model loads.
    if FLAGS.input and not FLAGS.acoustic_transfer:
      for name, path in (('f0 curve', FLAGS.f0_curve), ('loudness curve', FLAGS.loudness_curve)):
        if path:
          curves.read_curve(path, name)
      if FLAGS.dataset_stats:
        features_lib.load_dataset_statistics(FLAGS.dataset_stats)
  except (FileNotFoundError, ValueError) as e:
    _error(cli.first_line(e))
  try:
    model = inference.load_model(FLAGS.model_dir, checkpoint=FLAGS.checkpoint, gin_params=FLAGS.gin_param)
    written = []
    if FLAGS.export_ir:
      ir = resynthesis.export_ir(model, FLAGS.export_ir, include_dry=FLAGS.ir_with_dry)
      written.append(FLAGS.export_ir)
      print(f'ddsp_transfer: impulse response ({ir.size} taps, {ir.size / model.sample_rate:.3f} s) -> '
            f'{FLAGS.export_ir}')
    if FLAGS.input and FLAGS.acoustic_transfer:
      written += resynthesis.acoustic_transfer(
          model, FLAGS.input, FLAGS.output,
          log=lambda note: print(f'ddsp_transfer: note: {note}.', file=sys.stderr))
    elif FLAGS.input:
      result = resynthesis.transfer(
          model, FLAGS.input, crepe_model=FLAGS.crepe_model, crepe_frame_rate=FLAGS.crepe_frame_rate,
          interpolate_with=FLAGS.interpolate_with, interpolation=FLAGS.interpolation,
          pitch_shift=FLAGS.pitch_shift + features_lib.octaves(FLAGS.octave_shift),
          loudness_shift=FLAGS.loudness_shift, f0_range_scale=FLAGS.f0_range_scale,
          loudness_range_scale=FLAGS.loudness_range_scale, f0_curve=FLAGS.f0_curve,
          loudness_curve=FLAGS.loudness_curve, confidence_threshold=FLAGS.confidence_threshold,
          unvoiced_loudness_db=FLAGS.unvoiced_loudness_db, max_gap_frames=FLAGS.max_gap_frames,
          auto_adjust=FLAGS.auto_adjust,
          dataset_stats=FLAGS.dataset_stats)
      for note in result.info['notes']:
        print(f'ddsp_transfer: note: input {note}.', file=sys.stderr)
      if FLAGS.no_reverb and result.audio_dry is None:
        print('ddsp_transfer: note: the model has no reverb; --no_reverb changes nothing.', file=sys.stderr)
      written += resynthesis.write_result(result, FLAGS.output,
                                          write_dry=FLAGS.no_reverb and result.audio_dry is not None)
      info = result.info
      summary = (f"pitch shift {info['pitch_shift_semitones']:+g} semitones, loudness shift "
                 f"{info['loudness_shift_db']:+.1f} dB, {info['voiced_frames']}/{info['n_frames']} voiced "
                 'frames')
      if 'auto_octave_shift' in info:
        summary += (f" (auto_adjust: {info['auto_octave_shift']:+d} octaves, "
                    f"{info['auto_loudness_shift_db']:+.1f} dB)")
      print(f'ddsp_transfer: {summary}')
  except validation.ValidationError:
    raise  # one line and exit status 2 (ddsp.cli.run)
  except (FileNotFoundError, ValueError, features_lib.InputError) as e:
    _error(str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
  print('ddsp_transfer: wrote ' + ', '.join(written))


def console_entry_point():
  cli.run(main, define_flags, verbosity=logging.WARNING)


if __name__ == '__main__':
  console_entry_point()
