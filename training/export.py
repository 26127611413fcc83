r"""`ddsp_export`: a trained model as a TensorFlow SavedModel or a TFLite model, offline or streaming.

Examples:
  ddsp_export --save_dir=/tmp/violin --format=saved_model --output=/tmp/violin_export
  ddsp_export --save_dir=/tmp/violin --format=tflite --output=/tmp/violin.tflite --streaming --block_size=256

The signatures, the streaming state and the JSON written beside the export are described in
`ddsp.training.export_lib`, which does the work.
"""
import os
import sys

from absl import app
from absl import flags
from absl import logging

from ddsp import cli
from ddsp.training import export_lib

os.environ.setdefault('KERAS_BACKEND', 'tensorflow')

FLAGS = flags.FLAGS


@cli.define_once
def define_flags():
  """Defines the command-line flags."""
  flags.DEFINE_string('save_dir', None, 'Training folder: operative_config-<step>.gin and checkpoints.')
  flags.DEFINE_string('checkpoint', None, 'A checkpoint prefix or folder (default: the newest in save_dir).')
  flags.DEFINE_enum('format', 'saved_model', ['saved_model', 'tflite'], 'Export format.')
  flags.DEFINE_string('output', None, 'Output folder (saved_model) or file (tflite).')
  flags.DEFINE_boolean('streaming', False, 'Export the block-by-block streaming model (state in and out).')
  flags.DEFINE_integer('block_size', 256, 'Streaming block size in samples (a multiple of the hop).')
  flags.DEFINE_integer('batch_size', None, 'Fixed batch size of the signature (default: any for saved_model, '
                       '1 for tflite).')
  flags.DEFINE_integer('noise_seed', 0, 'Seed of the filtered-noise source in the exported graph.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if not FLAGS.save_dir:
    raise app.UsageError('--save_dir is required.')
  if not FLAGS.output:
    raise app.UsageError('--output is required.')
  try:
    meta = export_lib.export(FLAGS.save_dir, FLAGS.output, FLAGS.format, FLAGS.streaming, FLAGS.block_size,
                  FLAGS.batch_size, FLAGS.checkpoint, FLAGS.noise_seed)
  except export_lib.ExportError as e:
    print(f'ddsp_export: error: {e}', file=sys.stderr)
    sys.exit(1)
  if meta['streaming']:
    kind = f"streaming, {meta['block_size']}-sample blocks, latency {meta['latency']} samples"
  else:
    kind = f"offline, {meta['frames']} frames -> {meta['n_samples']} samples"
  print(f'ddsp_export: wrote {FLAGS.format} ({kind}) to {FLAGS.output}')


def console_entry_point():
  cli.run(main, define_flags, verbosity=logging.WARNING)


if __name__ == '__main__':
  console_entry_point()
