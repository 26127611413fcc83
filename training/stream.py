r"""`ddsp_stream`: a recording through a trained model's live path, block by block, as a plugin host runs it.

  ddsp_stream --model_dir=/tmp/violin --input=voice.wav --output=out/voice_violin_live.wav --block_size=512

Each block of `--block_size` input samples goes through `ddsp.training.live.LiveModel.step` (causal loudness
and CREPE f0 of the input, then the model), one call per block. Any block size works: one that is not a whole
number of hops goes through the host-block adapter, which adds hop - gcd(block_size, hop) samples; the default
is the model's hop, the least latency. The output WAV is aligned with the input.
Prints the real-time factor, the per-block wall time (p50 / p99) and the algorithmic latency. An input of
another rate or channel count is converted to the model's mono rate first, with a note. The work is
`live.stream_file`.

The same file through the exported TFLite step (what a plugin would embed; its block size fixed at export):

  ddsp_export --save_dir=/tmp/violin --format=tflite --streaming --with_features --block_size=512 \
      --output=/tmp/violin_live.tflite
  ddsp_stream --tflite=/tmp/violin_live.tflite --input=voice.wav --output=out/voice_violin_tflite.wav

(`live_tflite.stream_tflite_file`: one `tf.lite.Interpreter` call per block, state fed back by name).
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
CREPE_MODELS = ('tiny', 'small', 'medium', 'large', 'full')
RANGES = {
    'block_size': validation.Range(0, 1 << 20, 'samples'),
    'threads': validation.Range(0, 1024),
    'crepe_frame_rate': cli.CREPE_FRAME_RATE,
}


@cli.define_once
def define_flags():
  """Defines the command-line flags."""
  flags.DEFINE_string('model_dir', None, 'Training folder: operative_config-<step>.gin and checkpoints.')
  flags.DEFINE_string('checkpoint', None, 'A checkpoint prefix or folder (default: the newest in model_dir).')
  flags.DEFINE_string('input', None, 'Input recording (wav, flac, ogg, mp3; any rate and channel count).')
  flags.DEFINE_string('output', None, 'Output WAV.')
  flags.DEFINE_integer('block_size', 0, RANGES['block_size'].help("Samples per block, any number (0: the "
                       "model's hop, the least latency; a plugin host's block, e.g. 512, adds hop - "
                       'gcd(block, hop) samples).'))
  flags.DEFINE_enum('crepe_model', 'tiny', list(CREPE_MODELS), 'CREPE capacity of the live f0.')
  flags.DEFINE_integer('crepe_frame_rate', None, cli.CREPE_FRAME_RATE.help(
      'Frames per second of the live CREPE, its f0 interpolated in cents to the frames as data preparation '
      'does (it runs CREPE at 100); fewer CREPE frames make the step faster at high frame rates (default: the '
      'model frame rate). Blocks then hold whole CREPE frames (other blocks go through the adapter).'))
  flags.DEFINE_integer('threads', 0, RANGES['threads'].help('TensorFlow intra-op threads (0: the default; '
                       'with --tflite, 0 means 1, a plugin audio thread).'))
  flags.DEFINE_boolean('jit_compile', False, 'XLA-compile the features and synthesis of the live step (CREPE '
                       'stays a oneDNN graph); see bench/streaming.py for the gain per recipe (the first block '
                       'then compiles for a few seconds).')
  flags.DEFINE_string('tflite', None, 'Instead of --model_dir: an exported live step (ddsp_export '
                      '--format=tflite --streaming --with_features; its .json beside it), run with the TFLite '
                      'interpreter at its exported block size.')


def check_flags(flag_values=FLAGS):
  """Refuses flag values out of range or a CREPE capacity that is not installed, before the model loads."""
  validation.check_flags(flag_values, RANGES, {'crepe_model': CREPE_MODELS})
  validation.check_crepe_installed('--crepe_model', flag_values.crepe_model)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  for name in ('input', 'output'):
    if not FLAGS[name].value:
      raise app.UsageError(f'--{name} is required.')
  if bool(FLAGS.model_dir) == bool(FLAGS.tflite):
    raise app.UsageError('Give exactly one of --model_dir (a training folder) and --tflite (an exported live step).')
  if FLAGS.tflite and (FLAGS.block_size or FLAGS.checkpoint or FLAGS.jit_compile or FLAGS.crepe_frame_rate):
    raise app.UsageError('--block_size, --checkpoint, --jit_compile and --crepe_frame_rate are fixed at export '
                         'time; with --tflite leave them out.')
  check_flags(FLAGS)
  import tensorflow as tf
  if FLAGS.threads:
    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
  from ddsp import file_utils
  from ddsp.training import live
  from ddsp.training import live_tflite
  try:
    file_utils.check_outputs_are_not_inputs({'--output': FLAGS.output}, {'--input': FLAGS.input})
    if FLAGS.tflite:
      report = live_tflite.stream_tflite_file(FLAGS.tflite, FLAGS.input, FLAGS.output, FLAGS.threads or 1)
    else:
      report = live.stream_file(FLAGS.model_dir, FLAGS.input, FLAGS.output, FLAGS.block_size, FLAGS.crepe_model,
                                FLAGS.checkpoint, jit_compile=FLAGS.jit_compile,
                                crepe_frame_rate=FLAGS.crepe_frame_rate)
  except ValueError as e:
    print(f'ddsp_stream: error: {e}', file=sys.stderr)
    sys.exit(1)
  for note in report['notes']:
    print(f'ddsp_stream: note: {note}')
  look = ', '.join(f'{k} {v} samples' for k, v in report['lookahead_samples'].items())
  print(f"ddsp_stream: wrote {FLAGS.output} ({report['seconds']:.2f} s at {report['sample_rate']} Hz, "
        f"{report['blocks']} blocks of {report['block_size']} samples = {report['block_ms']:.2f} ms)")
  print(f"ddsp_stream: real-time factor {report['rtf']:.1f}x; block time p50 {report['p50_ms']:.2f} ms, "
        f"p99 {report['p99_ms']:.2f} ms (first 2 blocks, {report['warmup_ms']:.0f} ms with tracing, left out)")
  if FLAGS.tflite:
    print(f"ddsp_stream: latency {report['latency']} samples = {report['latency_ms']:.2f} ms (look-ahead of "
          f"{look}, as exported); with the block {report['total_latency']} samples = "
          f"{report['total_latency_ms']:.2f} ms")
    return
  print(f"ddsp_stream: latency {report['latency']} samples = {report['latency_ms']:.2f} ms (features "
        f"{report['feature_latency_frames']} frames for the look-ahead of {look}; synthesis "
        f"{report['synth_latency_frames']} frames for the next frame's controls and Nyquist mask; "
        f"{report['hop']} samples per frame; host-block adapter {report['adapter_latency']} samples); with the "
        f"block {report['total_latency']} samples = {report['total_latency_ms']:.2f} ms")
  if report['crepe_frame_rate'] != report['sample_rate'] / report['hop']:
    print(f"ddsp_stream: CREPE ran at {report['crepe_frame_rate']:g} frames/s, f0 interpolated to the frames "
          f"(inner steps of {report['unit']} samples)")


def console_entry_point():
  cli.run(main, define_flags, verbosity=logging.WARNING)


if __name__ == '__main__':
  console_entry_point()
