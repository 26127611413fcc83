r"""`ddsp_run`: train, evaluate or sample a gin-configured DDSP model.

Examples:
  ddsp_run --mode=train --save_dir=/tmp/violin \
    --gin_file=papers/iclr2020/solo_instrument.gin --gin_file=datasets/tfrecord.gin \
    --gin_param="TFRecordProvider.file_pattern='/data/violin/train.tfrecord*'" --gin_param=batch_size=16
  ddsp_run --mode=eval --save_dir=/tmp/violin --gin_file=eval/basic.gin --eval_once
  ddsp_run --mode=sample --save_dir=/tmp/violin

Gin: `--gin_file` (repeatable) takes a path or a name relative to the bundled gin folder
(`ddsp.training.configs.resolve_gin_file`: 'papers/iclr2020/solo_instrument.gin', 'models/tiny', ...);
`include` statements inside gin files are resolved through the bundled folder and `--gin_search_path`.
`--gin_param` (repeatable) adds bindings after the files. When `save_dir` (or `--restore_dir`) holds an
`operative_config-<step>.gin` from an earlier run, it is parsed first, so a resumed run or an evaluation uses
the training run's config; files, params and flags given now override it. A bad binding fails before anything
is built, naming the binding. The global batch size is the gin macro `batch_size`.

Flags that have gin counterparts (`--num_steps` -> `train.num_steps`, ...) are written into the gin config
when given, so the operative config saved into `save_dir` records them.
"""
import os
import sys

from absl import app
from absl import flags

from ddsp import cli
from ddsp import validation
from ddsp.training import experiment

os.environ.setdefault('KERAS_BACKEND', 'tensorflow')

FLAGS = flags.FLAGS

MODES = ('train', 'eval', 'sample')
STRATEGIES = ('default', 'mirrored', 'multi_worker', 'tpu')
# The accepted values of the numeric flags (stated in each flag's help; checked before gin is parsed).
RANGES = {
    'num_steps': validation.Range(0, 10**12, 'steps'),
    'steps_per_summary': validation.Range(0, 10**12, 'steps'),
    'steps_per_save': validation.Range(0, 10**12, 'steps'),
    'early_stop_loss': validation.Range(),
    'seed': validation.Range(0, 2**32 - 1),
}


@cli.define_once
def define_flags():
  """Defines the command-line flags."""
  flags.DEFINE_enum('mode', 'train', list(MODES), 'What to do.')
  flags.DEFINE_string('save_dir', None, 'Folder for checkpoints, summaries, operative configs and results.')
  flags.DEFINE_string('restore_dir', None, 'Start from (train) or read (eval/sample) the checkpoints and the '
                      'operative config of this folder instead of save_dir.')
  flags.DEFINE_multi_string('gin_file', [], 'Gin file: a path or a name in the bundled gin folder (repeatable).')
  flags.DEFINE_multi_string('gin_param', [], 'Gin binding, e.g. "batch_size=16" (repeatable).')
  flags.DEFINE_multi_string('gin_search_path', [], 'Extra folder searched by gin `include` (repeatable).')
  flags.DEFINE_enum('strategy', 'default', list(STRATEGIES),
                    'Distribution strategy: multi_worker reads the cluster from TF_CONFIG.')
  flags.DEFINE_string('tpu', None, 'TPU name or grpc:// address for --strategy=tpu.')
  flags.DEFINE_integer('num_steps', None, RANGES['num_steps'].help('Train until this step (gin '
                       'train.num_steps).'))
  flags.DEFINE_integer('steps_per_summary', None, RANGES['steps_per_summary'].help(
      'Summary interval in steps (gin train.steps_per_summary).'))
  flags.DEFINE_integer('steps_per_save', None, RANGES['steps_per_save'].help(
      'Checkpoint interval in steps (gin train.steps_per_save).'))
  flags.DEFINE_float('early_stop_loss', None, RANGES['early_stop_loss'].help(
      'Stop once the total loss is below this (gin train.early_stop_loss_value).'))
  flags.DEFINE_boolean('jit_compile', None, 'Compile the training step with XLA (gin Trainer.jit_compile).')
  flags.DEFINE_enum('mixed_precision', None, ['none', 'bfloat16', 'float16'],
                    'Networks in this dtype; variables, synthesis and losses stay float32 (gin '
                    'Trainer.mixed_precision).')
  flags.DEFINE_integer('seed', None, RANGES['seed'].help('Random seed for initialisation and data order (gin '
                       'train.seed; default 0).'))
  flags.DEFINE_boolean('eval_once', False, '--mode=eval: evaluate the newest checkpoint once instead of '
                       'following new checkpoints until the training run reaches train.num_steps.')
  flags.DEFINE_boolean('progress_bar', None, 'Show a progress bar while training (gin train.progress_bar).')


# The library's names, for callers of the command's module.
GinConfigError = experiment.GinConfigError
parse_gin = experiment.parse_gin
run = experiment.run
data_provider_from_gin = experiment.data_provider_from_gin
flag_bindings = experiment.flag_bindings


def check_flags(flag_values=FLAGS):
  """Refuses numeric flags out of range and unknown choices, before gin is parsed or a model is built.

  Raises:
    ddsp.validation.ValidationError: naming the flag, its value and what is accepted.
  """
  validation.check_flags(flag_values, RANGES, {'mode': MODES, 'strategy': STRATEGIES})


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if not FLAGS.save_dir:
    raise app.UsageError('--save_dir is required.')
  check_flags(FLAGS)
  from ddsp.training import checkpoints
  from ddsp.training import signals
  from ddsp.training import train_util
  from ddsp.training import trainers
  try:
    result = experiment.run(mode=FLAGS.mode, save_dir=FLAGS.save_dir, restore_dir=FLAGS.restore_dir,
                 gin_files=FLAGS.gin_file, gin_params=FLAGS.gin_param, gin_search_paths=FLAGS.gin_search_path,
                 strategy=FLAGS.strategy, tpu=FLAGS.tpu, num_steps=FLAGS.num_steps,
                 steps_per_summary=FLAGS.steps_per_summary, steps_per_save=FLAGS.steps_per_save,
                 early_stop_loss=FLAGS.early_stop_loss, jit_compile=FLAGS.jit_compile,
                 mixed_precision=FLAGS.mixed_precision, seed=FLAGS.seed, eval_once=FLAGS.eval_once,
                 progress_bar=FLAGS.progress_bar)
  except (experiment.GinConfigError, FileNotFoundError, train_util.DataError, train_util.StrategyError,
          trainers.NonFiniteLossError, checkpoints.IncompatibleCheckpointError, signals.WorkerLostError) as e:
    print(f'ddsp_run: error: {cli.first_line(e)}', file=sys.stderr)
    sys.exit(1)
  if FLAGS.mode == 'train':
    print(f"ddsp_run: trained to step {result['step']} ({result['stopped']}); checkpoint {result['checkpoint']}")
  elif FLAGS.mode == 'eval':
    print(f"ddsp_run: evaluated {len(result)} checkpoint(s); results in "
          f"{os.path.join(FLAGS.save_dir, 'eval_results.json')}")
  else:
    print(f"ddsp_run: wrote {len(result['files'])} files to {result['output_dir']}")


def console_entry_point():
  cli.run(main, define_flags)


if __name__ == '__main__':
  console_entry_point()
