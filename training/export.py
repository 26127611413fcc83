r"""`ddsp_export`: a trained model as a TensorFlow SavedModel or a TFLite model, offline or streaming.

Examples:
  ddsp_export --save_dir=/tmp/violin --format=saved_model --output=/tmp/violin_export
  ddsp_export --save_dir=/tmp/violin --format=tflite --output=/tmp/violin.tflite --streaming --block_size=256

The signatures, the streaming state and the JSON written beside the export are described in
`ddsp.training.export_lib`, which does the work.

Errors end with one line `ddsp_export: error: ...` before anything is written: exit code 1 for a missing,
truncated or incompatible checkpoint or an --output that would replace the training folder (a SavedModel
folder is replaced as a whole), exit code 2 for a flag value out of its range (stated in `--help`).
"""
import os
import sys

from absl import app
from absl import flags
from absl import logging

from ddsp import cli
from ddsp import file_utils
from ddsp import validation
from ddsp.training import export_lib

os.environ.setdefault('KERAS_BACKEND', 'tensorflow')

FLAGS = flags.FLAGS

FORMATS = ('saved_model', 'tflite')
# The accepted values of the numeric flags (stated in each flag's help; checked before the model loads).
RANGES = {
    'block_size': validation.Range(1, 1 << 20, 'samples'),
    'batch_size': validation.Range(1, 1 << 16),
    'crepe_frame_rate': cli.CREPE_FRAME_RATE,
}


@cli.define_once
def define_flags():
  """Defines the command-line flags."""
  flags.DEFINE_string('save_dir', None, 'Training folder: operative_config-<step>.gin and checkpoints.')
  flags.DEFINE_string('checkpoint', None, 'A checkpoint prefix or folder (default: the newest in save_dir).')
  flags.DEFINE_enum('format', 'saved_model', list(FORMATS), 'Export format.')
  flags.DEFINE_string('output', None, 'Output folder (saved_model) or file (tflite).')
  flags.DEFINE_boolean('streaming', False, 'Export the block-by-block streaming model (state in and out).')
  flags.DEFINE_integer('block_size', 256, RANGES['block_size'].help('Streaming block size in samples (a '
                       'multiple of the hop).'))
  flags.DEFINE_integer('batch_size', None, RANGES['batch_size'].help('Fixed batch size of the signature '
                       '(default: any for saved_model, 1 for tflite).'))
  flags.DEFINE_integer('noise_seed', 0, 'Seed of the filtered-noise source in the exported graph.')
  flags.DEFINE_boolean('with_features', False, 'With --streaming: export the whole live step, audio block -> '
                       'audio block, with the causal loudness and CREPE f0 of the input inside.')
  flags.DEFINE_enum('crepe_model', 'tiny', ['tiny', 'small', 'medium', 'large', 'full'],
                    'CREPE capacity of the live f0 (--with_features).')
  flags.DEFINE_integer('crepe_frame_rate', None, cli.CREPE_FRAME_RATE.help(
      'With --with_features: frames per second of the live CREPE, its f0 interpolated in cents to the frames '
      '(data preparation runs it at 100; default: the model frame rate).'))


def check_flags(flag_values=FLAGS):
  """Refuses numeric flags out of range and an unknown format, before the model loads.

  Raises:
    ddsp.validation.ValidationError: naming the flag, its value and what is accepted.
  """
  validation.check_flags(flag_values, RANGES, {'format': FORMATS})
  if flag_values['with_features'].value and not flag_values['streaming'].value:
    raise validation.ValidationError('--with_features needs --streaming (it exports the live audio -> audio '
                                     'step).')


def check_output(save_dir, output, fmt, checkpoint=None):
  """Refuses an export that would replace what it reads: a SavedModel folder (replaced as a whole) that is
  or holds the training folder or the checkpoint; a TFLite file (or its JSON) that is a file of the training
  folder or the checkpoint.

  Raises:
    ValueError: naming the output and the input.
  """
  reads = {'--save_dir (the training folder)': save_dir, '--checkpoint': checkpoint}
  if fmt == 'saved_model':
    file_utils.check_folder_holds_no_inputs('--output', output, reads)
    return
  inputs = dict(reads)
  if save_dir and not file_utils.is_url(save_dir) and os.path.isdir(save_dir):
    for name in sorted(os.listdir(save_dir)):
      inputs[f'the training file {name!r} of --save_dir'] = os.path.join(save_dir, name)
  if checkpoint and not file_utils.is_url(checkpoint):
    for suffix in ('.index', '.data-00000-of-00001'):
      inputs[f'the checkpoint file {checkpoint + suffix!r}'] = checkpoint + suffix
  file_utils.check_outputs_are_not_inputs({'--output': output, 'the metadata beside --output': output + '.json'},
                                          inputs)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if not FLAGS.save_dir:
    raise app.UsageError('--save_dir is required.')
  if not FLAGS.output:
    raise app.UsageError('--output is required.')
  check_flags(FLAGS)
  try:
    check_output(FLAGS.save_dir, FLAGS.output, FLAGS.format, FLAGS.checkpoint)
  except ValueError as e:
    print(f'ddsp_export: error: {e}', file=sys.stderr)
    sys.exit(1)
  try:
    meta = export_lib.export(FLAGS.save_dir, FLAGS.output, FLAGS.format, FLAGS.streaming, FLAGS.block_size,
                  FLAGS.batch_size, FLAGS.checkpoint, FLAGS.noise_seed, FLAGS.with_features,
                  FLAGS.crepe_model, FLAGS.crepe_frame_rate)
  except export_lib.ExportError as e:
    print(f'ddsp_export: error: {e}', file=sys.stderr)
    sys.exit(1)
  if meta.get('with_features'):
    kind = (f"live audio -> audio, {meta['block_size']}-sample blocks, latency {meta['latency']} samples, "
            f"total with the block {meta['total_latency']}")
  elif meta['streaming']:
    kind = f"streaming, {meta['block_size']}-sample blocks, latency {meta['latency']} samples"
  else:
    kind = f"offline, {meta['frames']} frames -> {meta['n_samples']} samples"
  print(f'ddsp_export: wrote {FLAGS.format} ({kind}) to {FLAGS.output}')


def console_entry_point():
  cli.run(main, define_flags, verbosity=logging.WARNING)


if __name__ == '__main__':
  console_entry_point()
