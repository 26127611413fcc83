"""Experiments from gin: parse the config, build the data provider and the model, and train / evaluate /
sample (the library under the `ddsp_run` command).

Gin files are given by path or by name relative to the bundled gin folder
(`ddsp.training.configs.resolve_gin_file`: 'papers/iclr2020/solo_instrument.gin', 'models/tiny', ...);
`include` statements inside gin files are resolved through the bundled folder and the extra search paths.
Params add bindings after the files. When `save_dir` (or `restore_dir`) holds an `operative_config-<step>.gin`
from an earlier run, it is parsed first, so a resumed run or an evaluation uses the training run's config;
files, params and flag bindings given now override it. A bad binding fails before anything is built, naming
the binding. The global batch size is the gin macro `batch_size`.
"""
import contextlib
import logging as std_logging
import os

from absl import logging
import gin

os.environ.setdefault('KERAS_BACKEND', 'tensorflow')


class GinConfigError(ValueError):
  """A gin file or binding that cannot be parsed or applied."""


# ------------------------------------------------------------------------------------------------------------
# Gin.
# ------------------------------------------------------------------------------------------------------------
def gin_value(name, default=None):
  """The value bound to `name` ('configurable.param' or a macro), or `default` if unbound."""
  try:
    return gin.query_parameter(name)
  except (ValueError, KeyError):
    return default


def build_trainer(model, strategy, seed):
  """`trainers.Trainer(model, strategy)` from the gin bindings; the training noise is keyed by the run's
  `seed` (`train.seed`, `--seed`) unless `Trainer.noise_seed` is bound, so runs with other seeds draw other
  noise and runs with one seed draw the same."""
  from ddsp.training import trainers
  if is_bound('Trainer.noise_seed'):
    return trainers.Trainer(model, strategy)
  return trainers.Trainer(model, strategy, noise_seed=int(seed) % 2 ** 31)


def is_bound(name):
  sentinel = object()
  return gin_value(name, sentinel) is not sentinel


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
  import ddsp.training  # noqa: F401 (registers the configurables)
  from ddsp.training import configs
  from ddsp.training import train_util
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
    except Exception as e:
      raise GinConfigError(f'Bad gin config in file {path}: {type(e).__name__}: {e}') from e
  for binding in list(gin_params) + list(extra_bindings):
    try:
      gin.parse_config(binding)
    except Exception as e:
      raise GinConfigError(f'Bad gin binding {binding!r}: {type(e).__name__}: {e}') from e
  return operative


def data_provider_from_gin(for_function='train'):
  """The data provider bound to `<for_function>.data_provider`, else to `train.data_provider`."""
  for name in (f'{for_function}.data_provider', 'train.data_provider'):
    ref = gin_value(name)
    if ref is not None:
      return ref.scoped_configurable_fn() if isinstance(ref, gin.config.ConfigurableReference) else ref
  raise GinConfigError(
      f'No data: bind {for_function}.data_provider or train.data_provider, e.g. '
      "--gin_file=datasets/tfrecord.gin --gin_param=\"TFRecordProvider.file_pattern='/data/train.tfrecord*'\".")


def build_model():
  """`models.get_model()` from the parsed gin config; construction errors (bad values, unknown keyword
  arguments) are reported as gin configuration errors."""
  from ddsp.training import models  # registers the gin configurables
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
  """Trains, evaluates or samples a gin-configured model (what the `ddsp_run` command does; same arguments
  as its flags).

  Returns:
    train: the dict returned by `train_util.train`; eval: the list of result dicts of
    `evaluation.evaluate`; sample: the dict returned by `evaluation.sample`.
  """
  if not save_dir:
    raise ValueError('run needs a save_dir.')
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

  import keras
  from ddsp.training import evaluation
  from ddsp.training import train_util
  from ddsp.training import trainers

  if not is_bound('get_model.model'):
    raise GinConfigError('No model: bind get_model.model, e.g. --gin_file=papers/iclr2020/solo_instrument.gin '
                         '(or a models/*.gin file).')
  seed_value = gin_value('train.seed', 0)
  if mode == 'train':
    if not (is_bound('train.data_provider')):
      data_provider_from_gin('train')  # raises the "No data" error
    precision = gin_value('Trainer.mixed_precision', None)
    trainers.set_mixed_precision(precision)
    dist = train_util.get_strategy(strategy, tpu=tpu)
    keras.utils.set_random_seed(seed_value)
    with dist.scope():
      model = build_model()
      trainer = build_trainer(model, dist, seed_value)
    return train_util.train(trainer=trainer, save_dir=save_dir, restore_dir=restore_dir)

  trainers.set_mixed_precision(gin_value('Trainer.mixed_precision', None))
  keras.utils.set_random_seed(seed_value)
  model = build_model()
  if mode == 'eval':
    provider = data_provider_from_gin('evaluate')
    max_step = gin_value('train.num_steps', None)
    return evaluation.evaluate(data_provider=provider, model=model, save_dir=save_dir, restore_dir=restore_dir,
                               mode='once' if eval_once else 'continuous', max_step=max_step)
  provider = data_provider_from_gin('sample')
  return evaluation.sample(data_provider=provider, model=model, save_dir=save_dir, restore_dir=restore_dir)
