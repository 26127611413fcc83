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
import contextlib
import logging as std_logging
import os
import sys

from absl import app
from absl import flags
from absl import logging
import gin

os.environ.setdefault('KERAS_BACKEND', 'tensorflow')

FLAGS = flags.FLAGS
_FLAGS_DEFINED = False

def define_flags():
  """Defines the command-line flags (once). Called by `console_entry_point`, so that importing this module
  (e.g. for `run`) never clashes with flags of the importing program."""
  global _FLAGS_DEFINED
  if _FLAGS_DEFINED:
    return
  _FLAGS_DEFINED = True
  flags.DEFINE_enum('mode', 'train', ['train', 'eval', 'sample'], 'What to do.')
  flags.DEFINE_string('save_dir', None, 'Folder for checkpoints, summaries, operative configs and results.')
  flags.DEFINE_string('restore_dir', None, 'Start from (train) or read (eval/sample) the checkpoints and the '
                      'operative config of this folder instead of save_dir.')
  flags.DEFINE_multi_string('gin_file', [], 'Gin file: a path or a name in the bundled gin folder (repeatable).')
  flags.DEFINE_multi_string('gin_param', [], 'Gin binding, e.g. "batch_size=16" (repeatable).')
  flags.DEFINE_multi_string('gin_search_path', [], 'Extra folder searched by gin `include` (repeatable).')
  flags.DEFINE_enum('strategy', 'default', ['default', 'mirrored', 'multi_worker', 'tpu'],
                    'Distribution strategy: multi_worker reads the cluster from TF_CONFIG.')
  flags.DEFINE_string('tpu', None, 'TPU name or grpc:// address for --strategy=tpu.')
  flags.DEFINE_integer('num_steps', None, 'Train until this step (gin train.num_steps).')
  flags.DEFINE_integer('steps_per_summary', None, 'Summary interval in steps (gin train.steps_per_summary).')
  flags.DEFINE_integer('steps_per_save', None, 'Checkpoint interval in steps (gin train.steps_per_save).')
  flags.DEFINE_float('early_stop_loss', None, 'Stop once the total loss is below this (gin '
                     'train.early_stop_loss_value).')
  flags.DEFINE_boolean('jit_compile', None, 'Compile the training step with XLA (gin Trainer.jit_compile).')
  flags.DEFINE_enum('mixed_precision', None, ['none', 'bfloat16', 'float16'],
                    'Networks in this dtype; variables, synthesis and losses stay float32 (gin '
                    'Trainer.mixed_precision).')
  flags.DEFINE_integer('seed', None, 'Random seed for initialisation and data order (gin train.seed; default 0).')
  flags.DEFINE_boolean('eval_once', False, '--mode=eval: evaluate the newest checkpoint once instead of '
                       'following new checkpoints until the training run reaches train.num_steps.')
  flags.DEFINE_boolean('progress_bar', None, 'Show a progress bar while training (gin train.progress_bar).')


class GinConfigError(ValueError):
  """A gin file or binding that cannot be parsed or applied."""


# ------------------------------------------------------------------------------------------------------------
# Gin.
# ------------------------------------------------------------------------------------------------------------
def _gin_value(name, default=None):
  """The value bound to `name` ('configurable.param' or a macro), or `default` if unbound."""
  try:
    return gin.query_parameter(name)
  except (ValueError, KeyError):
    return default


def _is_bound(name):
  sentinel = object()
  return _gin_value(name, sentinel) is not sentinel


def flag_bindings(num_steps=None, steps_per_summary=None, steps_per_save=None, early_stop_loss=None,
                  jit_compile=None, mixed_precision=None, seed=None, progress_bar=None):
  """Gin bindings (strings) for the flags that were given."""
  bindings = []
  for key, value in (('train.num_steps', num_steps), ('train.steps_per_summary', steps_per_summary),
                     ('train.steps_per_save', steps_per_save),
                     ('train.early_stop_loss_value', early_stop_loss), ('Trainer.jit_compile', jit_compile),
                     ('train.seed', seed), ('train.progress_bar', progress_bar)):
    if value is not None:
      bindings.append(f'{key} = {value!r}')
  if mixed_precision is not None:
    mode = None if mixed_precision == 'none' else mixed_precision
    bindings.append(f'Trainer.mixed_precision = {mode!r}')
  return bindings


class _DropGinPathNotFound(std_logging.Filter):
  """Hides gin's 'Path not found' errors, logged for every search prefix tried before the one that matches."""

  def filter(self, record):
    return not str(record.msg).startswith('Path not found')


@contextlib.contextmanager
def _quiet_gin_search():
  root = std_logging.getLogger()
  flt = _DropGinPathNotFound()
  root.addFilter(flt)
  try:
    yield
  finally:
    root.removeFilter(flt)


def parse_gin(gin_files=(), gin_params=(), gin_search_paths=(), restore_dirs=(), extra_bindings=()):
  """Clears gin and parses: the newest operative config of the first restore dir that has one, the files,
  the params, then `extra_bindings` (from flags).

  Returns:
    The path of the operative config reused, or None.

  Raises:
    GinConfigError: naming the file or binding that failed.
    FileNotFoundError: for a gin file that does not exist.
  """
  import ddsp  # pylint: disable=g-import-not-at-top,unused-import
  import ddsp.training  # pylint: disable=g-import-not-at-top,unused-import
  from ddsp.training import configs  # pylint: disable=g-import-not-at-top
  from ddsp.training import train_util  # pylint: disable=g-import-not-at-top
  gin.clear_config()
  try:
    configs.add_search_path()
  except FileNotFoundError as e:
    logging.warning('%s', e)
  for path in gin_search_paths:
    if not os.path.isdir(path):
      raise FileNotFoundError(f'--gin_search_path {path!r} is not a folder.')
    gin.add_config_file_search_path(path)

  operative = None
  for directory in restore_dirs:
    operative = train_util.latest_operative_config(directory)
    if operative:
      break
  files = [configs.resolve_gin_file(f) for f in gin_files]
  if operative:
    logging.info('Reusing the operative gin config %s.', operative)
    files = [operative] + files
  for path in files:
    try:
      with _quiet_gin_search():
        gin.parse_config_file(path)
    except Exception as e:  # pylint: disable=broad-except
      raise GinConfigError(f'Bad gin config in file {path}: {type(e).__name__}: {e}') from e
  for binding in list(gin_params) + list(extra_bindings):
    try:
      gin.parse_config(binding)
    except Exception as e:  # pylint: disable=broad-except
      raise GinConfigError(f'Bad gin binding {binding!r}: {type(e).__name__}: {e}') from e
  return operative


def data_provider_from_gin(for_function='train'):
  """The data provider bound to `<for_function>.data_provider`, else to `train.data_provider`."""
  for name in (f'{for_function}.data_provider', 'train.data_provider'):
    ref = _gin_value(name)
    if ref is not None:
      return ref.scoped_configurable_fn() if isinstance(ref, gin.config.ConfigurableReference) else ref
  raise GinConfigError(
      f'No data: bind {for_function}.data_provider or train.data_provider, e.g. '
      "--gin_file=datasets/tfrecord.gin --gin_param=\"TFRecordProvider.file_pattern='/data/train.tfrecord*'\".")


def _build_model(models):
  """`models.get_model()`, with construction errors (bad values, unknown keyword arguments) reported as
  gin configuration errors."""
  try:
    return models.get_model()
  except (ValueError, TypeError) as e:
    raise GinConfigError(f'Building the model from the gin config failed: {type(e).__name__}: {e}') from e


# ------------------------------------------------------------------------------------------------------------
# Modes.
# ------------------------------------------------------------------------------------------------------------
def run(mode='train', save_dir=None, restore_dir=None, gin_files=(), gin_params=(), gin_search_paths=(),
        strategy='default', tpu=None, num_steps=None, steps_per_summary=None, steps_per_save=None,
        early_stop_loss=None, jit_compile=None, mixed_precision=None, seed=None, eval_once=False,
        progress_bar=None):
  """What `ddsp_run` does, as a Python function (same arguments as the flags).

  Returns:
    train: the dict returned by `train_util.train`; eval: the list of result dicts of
    `evaluation.evaluate`; sample: the dict returned by `evaluation.sample`.
  """
  if not save_dir:
    raise ValueError('ddsp_run needs --save_dir.')
  if mode not in ('train', 'eval', 'sample'):
    raise ValueError(f'Unknown mode {mode!r}.')
  save_dir = os.path.expanduser(save_dir)
  restore_dir = os.path.expanduser(restore_dir) if restore_dir else None
  if mode == 'train':
    restore_dirs = [save_dir] + ([restore_dir] if restore_dir else [])
  else:
    restore_dirs = [restore_dir] if restore_dir else [save_dir]
  extra = flag_bindings(num_steps, steps_per_summary, steps_per_save, early_stop_loss, jit_compile,
                        mixed_precision, seed, progress_bar)
  parse_gin(gin_files, gin_params, gin_search_paths, restore_dirs, extra)

  import keras  # pylint: disable=g-import-not-at-top
  from ddsp.training import evaluation  # pylint: disable=g-import-not-at-top
  from ddsp.training import models  # pylint: disable=g-import-not-at-top
  from ddsp.training import train_util  # pylint: disable=g-import-not-at-top
  from ddsp.training import trainers  # pylint: disable=g-import-not-at-top

  if not _is_bound('get_model.model'):
    raise GinConfigError('No model: bind get_model.model, e.g. --gin_file=papers/iclr2020/solo_instrument.gin '
                         '(or a models/*.gin file).')
  seed_value = _gin_value('train.seed', 0)
  if mode == 'train':
    if not (_is_bound('train.data_provider')):
      data_provider_from_gin('train')  # raises the "No data" error
    precision = _gin_value('Trainer.mixed_precision', None)
    trainers.set_mixed_precision(precision)
    dist = train_util.get_strategy(strategy, tpu=tpu)
    keras.utils.set_random_seed(seed_value)
    with dist.scope():
      model = _build_model(models)
      trainer = trainers.Trainer(model, dist)
    return train_util.train(trainer=trainer, save_dir=save_dir, restore_dir=restore_dir)

  trainers.set_mixed_precision(_gin_value('Trainer.mixed_precision', None))
  keras.utils.set_random_seed(seed_value)
  model = _build_model(models)
  if mode == 'eval':
    provider = data_provider_from_gin('evaluate')
    max_step = _gin_value('train.num_steps', None)
    return evaluation.evaluate(data_provider=provider, model=model, save_dir=save_dir, restore_dir=restore_dir,
                               mode='once' if eval_once else 'continuous', max_step=max_step)
  provider = data_provider_from_gin('sample')
  return evaluation.sample(data_provider=provider, model=model, save_dir=save_dir, restore_dir=restore_dir)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if not FLAGS.save_dir:
    raise app.UsageError('--save_dir is required.')
  from ddsp.training import train_util  # pylint: disable=g-import-not-at-top
  from ddsp.training import trainers  # pylint: disable=g-import-not-at-top
  try:
    result = run(mode=FLAGS.mode, save_dir=FLAGS.save_dir, restore_dir=FLAGS.restore_dir,
                 gin_files=FLAGS.gin_file, gin_params=FLAGS.gin_param, gin_search_paths=FLAGS.gin_search_path,
                 strategy=FLAGS.strategy, tpu=FLAGS.tpu, num_steps=FLAGS.num_steps,
                 steps_per_summary=FLAGS.steps_per_summary, steps_per_save=FLAGS.steps_per_save,
                 early_stop_loss=FLAGS.early_stop_loss, jit_compile=FLAGS.jit_compile,
                 mixed_precision=FLAGS.mixed_precision, seed=FLAGS.seed, eval_once=FLAGS.eval_once,
                 progress_bar=FLAGS.progress_bar)
  except (GinConfigError, FileNotFoundError, train_util.DataError, trainers.NonFiniteLossError) as e:
    print(f'ddsp_run: error: {e}', file=sys.stderr)
    sys.exit(1)
  if FLAGS.mode == 'train':
    print(f"ddsp_run: trained to step {result['step']} ({result['stopped']}); checkpoint {result['checkpoint']}")
  elif FLAGS.mode == 'eval':
    print(f"ddsp_run: evaluated {len(result)} checkpoint(s); results in "
          f"{os.path.join(FLAGS.save_dir, 'eval_results.json')}")
  else:
    print(f"ddsp_run: wrote {len(result['files'])} files to {result['output_dir']}")


class _DropTensorFlowInfo(std_logging.Filter):
  """Drops INFO (and lower) records that TensorFlow's, gin's and Beam's own modules send through absl logging."""

  def filter(self, record):
    path = record.pathname.replace(os.sep, '/')
    return record.levelno >= std_logging.WARNING or not any(
        part in path for part in ('/tensorflow/', '/gin/', '/apache_beam/'))


def quiet_library_logging():
  """TensorFlow's and gin's own INFO messages (checkpoint sharding, ...) would flood the progress bar."""
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  std_logging.getLogger('tensorflow').setLevel(std_logging.WARNING)
  for logger in (std_logging.getLogger(), std_logging.getLogger('absl')):
    logger.addFilter(_DropTensorFlowInfo())


def console_entry_point():
  quiet_library_logging()
  define_flags()
  app.run(main)


if __name__ == '__main__':
  console_entry_point()
