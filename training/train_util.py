"""The training loop: strategies, data, checkpoints, summaries, signals and a progress bar.

`train(data_provider, trainer, ...)` is the one function that `ddsp_run --mode=train` and the demo call:

  * the global batch (`batch_size`, the gin macro `%batch_size`) is split over the replicas of the trainer's
    strategy (`get_strategy`: default, mirrored, multi_worker via TF_CONFIG, tpu);
  * it resumes from the newest checkpoint in `save_dir` (else in `restore_dir`), continuing the step count,
    the optimiser state and the data order;
  * it saves every `steps_per_save` steps, at the end, on SIGTERM / SIGINT (the signal sets a flag that the
    loop checks after the running step), and when the total loss falls below `early_stop_loss_value`;
  * under MultiWorkerMirroredStrategy (`TF_CONFIG`) only the chief (worker 0, or the `chief` task) writes the
    checkpoints, summaries and gin config into `save_dir`, which every worker must see (a shared folder);
    a signal to any worker stops all of them after saving at one agreed step (`ddsp.training.signals`);
  * a NaN or Inf loss stops the run with `NonFiniteLossError`; nothing is saved after the last good
    checkpoint;
  * every `steps_per_summary` steps it writes TensorBoard summaries (every loss term, learning rate, gradient
    norm, steps/s, examples/s, target and resynthesised audio, spectrograms, f0 and loudness curves);
  * it writes the operative gin config as `operative_config-<step>.gin` into `save_dir`.
"""
import contextlib
import functools
import json
import logging as std_logging
import math
import os
import time

from absl import logging
import gin
import numpy as np
import tensorflow as tf

from ddsp import file_utils
from ddsp.training import checkpoints
from ddsp.training import signals
from ddsp.training import summaries
from ddsp.training import trainers

STRATEGIES = ('default', 'mirrored', 'multi_worker', 'tpu')


# ------------------------------------------------------------------------------------------------------------
# Strategies.
# ------------------------------------------------------------------------------------------------------------
class StrategyError(ValueError):
  """The distribution strategy cannot be set up as asked (e.g. a missing or malformed TF_CONFIG)."""


_TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", '
                      '"index": 0}}')


def check_tf_config(tf_config):
  """Refuses a TF_CONFIG (JSON text) that MultiWorkerMirroredStrategy cannot use, with a StrategyError.

  It must name the cluster (job name -> list of "host:port") and this process's task in it (`type` one of
  the cluster's jobs, `index` within its list). Returns the parsed dict.
  """
  hint = f'; e.g. TF_CONFIG=\'{_TF_CONFIG_EXAMPLE}\''
  if not tf_config:
    raise StrategyError('--strategy=multi_worker needs the TF_CONFIG environment variable' + hint)
  try:
    config = json.loads(tf_config)
  except ValueError as e:
    raise StrategyError(f'TF_CONFIG is not valid JSON ({e}): {tf_config!r}') from e
  cluster = config.get('cluster') if isinstance(config, dict) else None
  if not (isinstance(cluster, dict) and cluster and all(
      isinstance(v, list) and v and all(isinstance(a, str) for a in v) for v in cluster.values())):
    raise StrategyError(f'TF_CONFIG needs "cluster": a job name -> list of "host:port" addresses, got '
                        f'{tf_config!r}' + hint)
  task = config.get('task')
  if not (isinstance(task, dict) and task.get('type') in cluster):
    raise StrategyError(f'TF_CONFIG needs "task": {{"type": one of {sorted(cluster)}, "index": ...}}, got '
                        f'{task!r}' + hint)
  index, size = task.get('index'), len(cluster[task['type']])
  if not (isinstance(index, int) and not isinstance(index, bool) and 0 <= index < size):
    raise StrategyError(f'TF_CONFIG task index {index!r} is not in [0, {size - 1}] (the cluster lists {size} '
                        f'{task["type"]!r} address(es)).')
  return config


@gin.configurable
def get_strategy(strategy='default', tpu=None, devices=None):
  """Returns a `tf.distribute.Strategy`.

  Args:
    strategy: 'default' (no distribution: one device, the GPU if there is one), 'mirrored' (synchronous
      data parallelism over the local GPUs, or over the local logical CPU devices when there is no GPU and
      more than one logical CPU is configured), 'multi_worker' (MultiWorkerMirroredStrategy; the cluster and
      this task's role come from the TF_CONFIG environment variable) or 'tpu'.
    tpu: for 'tpu': the TPU name or grpc:// address ('' or None for a local TPU VM).
    devices: for 'mirrored': an explicit device list, e.g. ['/gpu:0', '/gpu:1'].

  Returns:
    The strategy.
  """
  if strategy not in STRATEGIES:
    raise ValueError(f'Unknown strategy {strategy!r}; choose one of {STRATEGIES}.')
  if strategy == 'default':
    return tf.distribute.get_strategy()
  if strategy == 'mirrored':
    if devices is None and not tf.config.list_logical_devices('GPU'):
      cpus = tf.config.list_logical_devices('CPU')
      if len(cpus) > 1:
        devices = [d.name for d in cpus]
    return tf.distribute.MirroredStrategy(devices=devices)
  if strategy == 'multi_worker':
    check_tf_config(os.environ.get('TF_CONFIG'))
    return tf.distribute.MultiWorkerMirroredStrategy()
  resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or '')
  tf.config.experimental_connect_to_cluster(resolver)
  tf.tpu.experimental.initialize_tpu_system(resolver)
  return tf.distribute.TPUStrategy(resolver)


# ------------------------------------------------------------------------------------------------------------
# Files.
# ------------------------------------------------------------------------------------------------------------
def write_operative_config(save_dir, step):
  """Saves gin's operative config as `save_dir/operative_config-<step>.gin`; returns the path."""
  path = os.path.join(save_dir, f'operative_config-{int(step)}.gin')
  return file_utils.write_text(path, gin.operative_config_str())


def latest_operative_config(directory):
  """The path of the operative_config-<step>.gin with the largest step in `directory`, or None."""
  if not directory or not tf.io.gfile.isdir(directory):
    return None
  best, best_step = None, -1
  for name in tf.io.gfile.listdir(directory):
    if name.startswith('operative_config-') and name.endswith('.gin'):
      try:
        step = int(name[len('operative_config-'):-len('.gin')])
      except ValueError:
        continue
      if step > best_step:
        best, best_step = os.path.join(directory, name), step
  return best


# ------------------------------------------------------------------------------------------------------------
# Data.
# ------------------------------------------------------------------------------------------------------------
class DataError(ValueError):
  """The data provider is misconfigured (e.g. no file pattern)."""


def data_patterns(data_provider):
  """The file pattern(s) a provider reads, as a list (empty for providers that read no files)."""
  for attr in ('file_pattern', 'file_patterns', 'data_pattern'):
    value = getattr(data_provider, attr, None)
    if value:
      if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
      return [p for p in str(value).split(',') if p]
  return []


def check_data_patterns(data_provider):
  """Raises FileNotFoundError naming the pattern if a provider's file pattern matches no file."""
  for pattern in data_patterns(data_provider):
    if not tf.io.gfile.glob(pattern):
      raise FileNotFoundError(f'No files match the data pattern {pattern!r} of '
                              f'{type(data_provider).__name__}; check the file_pattern binding.')


def get_dataset(data_provider, batch_size):
  """The provider's shuffled, infinitely repeated dataset of global batches, in a deterministic order.

  Raises:
    FileNotFoundError: naming the pattern when the provider's data pattern matches no file.
  """
  check_data_patterns(data_provider)
  try:
    dataset = data_provider.get_dataset(batch_size, shuffle=True, repeats=-1)
  except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError) as e:
    patterns = ', '.join(repr(p) for p in data_patterns(data_provider)) or 'its input'
    raise FileNotFoundError(f'{type(data_provider).__name__} could not read {patterns}: {e.message}') from e
  except ValueError as e:
    name = type(data_provider).__name__
    raise DataError(str(e) if str(e).startswith(name) else f'{name}: {e}') from e
  if not isinstance(dataset, tf.data.Dataset):
    raise TypeError(f'{type(data_provider).__name__}.get_dataset must return a tf.data.Dataset, got '
                    f'{type(dataset).__name__}.')
  if not isinstance(dataset.element_spec, dict) or 'audio' not in dataset.element_spec:
    raise ValueError(f'The dataset of {type(data_provider).__name__} must yield feature dicts with an '
                     f"'audio' entry, got {dataset.element_spec}.")
  # A resumed run re-creates this pipeline and skips the consumed batches: its order must be reproducible.
  options = tf.data.Options()
  options.deterministic = True
  return dataset.with_options(options)


class _DropOptionChange(std_logging.Filter):

  def filter(self, record):
    return not record.getMessage().startswith('Changing the value of option deterministic')


@contextlib.contextmanager
def _quiet_option_change():
  """Hides tf.data's warning, logged whenever the options are merged, that the deterministic option a provider
  chose for speed is overridden by `get_dataset`."""
  loggers = [std_logging.getLogger('absl'), std_logging.getLogger('tensorflow')]
  flt = _DropOptionChange()
  for logger in loggers:
    logger.addFilter(flt)
  try:
    yield
  finally:
    for logger in loggers:
      logger.removeFilter(flt)


def example_batch(dataset):
  """A one-example feature dict matching the dataset's element spec (zeros; from the data if shapes vary)."""
  specs = dataset.element_spec
  if all(s.shape[1:].is_fully_defined() for s in tf.nest.flatten(specs)):
    def zeros(spec):
      shape = [1] + spec.shape[1:].as_list()
      if spec.dtype == tf.string:
        return tf.fill(shape, '')
      return tf.zeros(shape, spec.dtype)
    return tf.nest.map_structure(zeros, specs)
  return tf.nest.map_structure(lambda x: x[:1], next(iter(dataset.take(1))))


# ------------------------------------------------------------------------------------------------------------
# The loop.
# ------------------------------------------------------------------------------------------------------------
SILENCE_DB = -70.0  # Audio whose every sample is below this (dBFS) counts as silence.
VOICED_CONFIDENCE = 0.5  # A frame with f0 confidence at or above this counts as voiced.


def check_training_signal(data_provider, batch_size, max_batches=64):
  """Reads the data in order until it finds a voiced frame that sounds; a DataError if none is found.

  A model trained on digital silence learns to play silence, and one trained where f0 is never voiced learns
  nothing its harmonic synthesizer can follow; both are refused before training starts. The data is read
  unshuffled, `batch_size` examples at a time, up to `max_batches` batches (the whole set when it is smaller).
  Providers without `f0_confidence` are checked for silence only. Intentionally unvoiced material (e.g.
  percussion for a noise-only model) trains with `train.check_data = False`.

  Returns:
    (peak dBFS of the audio read, fraction of voiced frames read, examples read).
  """
  try:
    dataset = data_provider.get_dataset(batch_size, shuffle=False, repeats=1)
  except TypeError:  # A provider without the (shuffle, repeats) arguments: nothing to check cheaply.
    return None
  peak, voiced, frames, examples = 0.0, 0, 0, 0
  floor = 10.0 ** (SILENCE_DB / 20.0)
  for batch in dataset.take(max_batches):
    audio = np.asarray(batch['audio'], np.float64)
    finite = np.isfinite(audio)
    peak = max(peak, float(np.max(np.abs(np.where(finite, audio, 0.0)), initial=0.0)))
    examples += int(audio.shape[0])
    if 'f0_confidence' in batch:
      confidence = np.asarray(batch['f0_confidence'])
      voiced += int(np.sum(confidence >= VOICED_CONFIDENCE))
      frames += int(confidence.size)
    else:
      frames = None
    if peak >= floor and (frames is None or voiced):
      break
  patterns = ', '.join(repr(p) for p in data_patterns(data_provider)) or type(data_provider).__name__
  if not examples:
    return None  # Fewer examples than one batch: training repeats them; nothing to judge here.
  peak_db = 20.0 * math.log10(max(peak, 1e-12))
  hint = 'Set train.check_data = False to train on it anyway.'
  if peak < floor:
    raise DataError(f'The training data is silent: the {examples} examples read from {patterns} peak at '
                    f'{peak_db:.1f} dBFS (below {SILENCE_DB:g} dBFS); a model trained on it learns to play '
                    f'silence. Check the files and their gain. {hint}')
  if frames is not None and not voiced:
    raise DataError(f'The training data is unvoiced: in the {examples} examples read from {patterns}, no frame '
                    f'has f0 confidence >= {VOICED_CONFIDENCE:g}, so the harmonic synthesizer has no pitch to '
                    f'follow (noise, percussion, or silence with a noise floor?). {hint}')
  return peak_db, (voiced / frames if frames else None), examples


def check_geometry(model, data_provider):
  """The data's (sample_rate, frame_rate); a DataError naming both rates when the model synthesizes audio at
  another sample rate than the data's (the spectral loss would compare two different time axes)."""
  sample_rate, frame_rate = int(data_provider.sample_rate), int(data_provider.frame_rate)
  model_rate = getattr(model, 'sample_rate', None) if getattr(model, 'train_n_samples', None) else None
  if model_rate is not None and int(model_rate) != sample_rate:
    raise DataError(f'The model synthesizes {int(model_rate)} Hz audio but the data '
                    f'({type(data_provider).__name__}) is at {sample_rate} Hz: prepare the data at the model\'s '
                    'rate or set the gin macro `sample_rate` to the data\'s.')
  model_frames = getattr(model, 'frame_rate', None) if model_rate is not None else None
  if model_frames is not None and abs(float(model_frames) - frame_rate) > 1e-6 * frame_rate:
    raise DataError(f'The model runs at {float(model_frames):g} frames/s but the data '
                    f'({type(data_provider).__name__}) is at {frame_rate} frames/s: prepare the data at the '
                    'model\'s frame rate or set the gin macro `frame_rate` to the data\'s.')
  return sample_rate, frame_rate


@gin.configurable
def train(data_provider=gin.REQUIRED,
          trainer=None,
          batch_size=32,
          num_steps=1000000,
          steps_per_summary=300,
          steps_per_save=300,
          save_dir='/tmp/ddsp',
          restore_dir=None,
          early_stop_loss_value=None,
          data_checkpoint='skip',
          seed=0,
          progress_bar=True,
          summary_examples=2,
          write_summaries=True,
          check_data=True):
  """Trains `trainer.model` on `data_provider`; see the module docstring.

  Args:
    data_provider: an object with `get_dataset(batch_size, shuffle, repeats)` returning feature dicts
      (`audio` [batch, n_samples], `f0_hz`, `f0_confidence`, `loudness_db` [batch, n_frames]); its
      `sample_rate` and `frame_rate` attributes are used for summaries (and checked against the model's).
    trainer: a `ddsp.training.trainers.Trainer`.
    batch_size: the global batch size (split over the replicas; must be divisible by their number).
    num_steps: train until the step counter reaches this value (a resumed run counts from its checkpoint).
    steps_per_summary: write summaries every this many steps (0 disables them).
    steps_per_save: save a checkpoint every this many steps (it also saves at the end and on signals).
    save_dir: checkpoints, summaries and the operative gin config go here.
    restore_dir: start from the newest checkpoint here when `save_dir` has none yet.
    early_stop_loss_value: stop (and save) once the total loss falls below this value.
    data_checkpoint: how a resumed run continues the data order: 'skip' (default: the data pipeline is
      rebuilt with the same seed and the batches that the restored step already consumed are skipped) or
      'iterator' (the tf.data iterator state is saved in every checkpoint; exact, but a checkpoint then holds
      the shuffle buffer; falls back to 'skip' if the pipeline cannot be serialized).
    seed: seeds Python, NumPy, TensorFlow and Keras (model initialisation, shuffling, synthetic noise).
    progress_bar: show a tqdm progress bar.
    summary_examples: how many examples to write as audio and figures.
    write_summaries: write TensorBoard summaries (False: only checkpoints).
    check_data: refuse silent or unvoiced-only data before training (`check_training_signal`).

  Returns:
    A dict: `step` (final step), `losses` (last step's loss terms), `stopped` ('num_steps', 'early_stop',
    'signal'), `checkpoint` (the newest checkpoint path), `steps_per_sec` and `examples_per_sec` (of the
    last interval), `save_dir`.

  Raises:
    NonFiniteLossError: when a loss term becomes NaN or Inf.
    FileNotFoundError: when the provider's data pattern matches no file.
    DataError: when the provider rejects its configuration, or the data is silent or unvoiced throughout.
  """
  with _quiet_option_change():
    return _train(data_provider, trainer, batch_size, num_steps, steps_per_summary, steps_per_save, save_dir,
                  restore_dir, early_stop_loss_value, data_checkpoint, seed, progress_bar, summary_examples,
                  write_summaries, check_data)


def _train(data_provider, trainer, batch_size, num_steps, steps_per_summary, steps_per_save, save_dir,
           restore_dir, early_stop_loss_value, data_checkpoint, seed, progress_bar, summary_examples,
           write_summaries, check_data):
  """The body of `train` (same arguments)."""
  import keras
  if trainer is None:
    raise ValueError('train() needs a trainer (ddsp.training.trainers.Trainer).')
  if data_checkpoint not in ('skip', 'iterator'):
    raise ValueError(f"data_checkpoint must be 'skip' or 'iterator', got {data_checkpoint!r}.")
  if not (isinstance(batch_size, (int, np.integer)) and batch_size > 0):
    raise ValueError(f'batch_size must be a positive integer, got {batch_size!r}.')
  if batch_size % trainer.num_replicas:
    raise ValueError(f'The global batch size {batch_size} is not divisible by the {trainer.num_replicas} '
                     'replicas of the strategy.')
  if not steps_per_save or steps_per_save < 1:
    raise ValueError(f'steps_per_save must be >= 1, got {steps_per_save!r}.')
  if not save_dir:
    raise ValueError('train() needs a save_dir.')
  chief = trainer.is_chief
  sample_rate, frame_rate = check_geometry(trainer.model, data_provider)

  keras.utils.set_random_seed(seed)
  dataset = get_dataset(data_provider, batch_size)  # Data errors surface before anything is written.
  if check_data:
    check_training_signal(data_provider, batch_size)
  tf.io.gfile.makedirs(save_dir)
  trainer.build(example_batch(dataset))

  # Restore, and position the data where the restored run left it.
  iterator = None
  if data_checkpoint == 'iterator':
    iterator = iter(trainer.distribute_dataset(dataset))
  trainer.make_checkpoint(save_dir, iterator=iterator)
  restored = None
  for directory in (save_dir, restore_dir):
    if trainer.latest_checkpoint(directory):
      restored = trainer.restore(directory, expect_iterator=iterator is not None)
      break
  start_step = trainer.step
  if iterator is not None and restored is not None and not _checkpoint_has_iterator(
      trainer.latest_checkpoint(save_dir) or trainer.latest_checkpoint(restore_dir)):
    iterator = None  # The checkpoint has no iterator state: fall back to skipping.
  if iterator is None:
    tf.random.set_seed(seed)
    dataset = get_dataset(data_provider, batch_size)
    consumed = int(trainer.batches_consumed.numpy())
    if consumed:
      logging.info('Skipping the %d batches that steps 1..%d consumed.', consumed, start_step)
      dataset = dataset.skip(consumed)
    iterator = iter(trainer.distribute_dataset(dataset))
    if data_checkpoint == 'iterator':
      trainer.make_checkpoint(save_dir, iterator=iterator)

  if chief:
    write_operative_config(save_dir, start_step)
  writer = (tf.summary.create_file_writer(save_dir) if (chief and write_summaries)
            else tf.summary.create_noop_writer())

  result = {'step': start_step, 'losses': {}, 'stopped': 'num_steps', 'checkpoint': None,
            'steps_per_sec': None, 'examples_per_sec': None, 'save_dir': save_dir}
  if start_step >= num_steps:
    logging.info('Step %d already reaches num_steps=%d; nothing to train.', start_step, num_steps)
    result['checkpoint'] = trainer.latest_checkpoint(save_dir)
    return result

  bar = None
  if progress_bar and chief:
    from tqdm.auto import tqdm
    bar = tqdm(total=num_steps, initial=start_step, unit='step', dynamic_ncols=True, mininterval=0.5)

  def say(message):
    # Above the progress bar when there is one (log lines would break it), else in the log.
    if bar is not None:
      bar.write(message)
    else:
      logging.info('%s', message)

  step = start_step
  interval_steps, interval_time = 0, 0.0
  saved_step = None

  def save():
    # Once per step: the cluster's agreed save may come right after a periodic one.
    nonlocal saved_step
    if saved_step != trainer.step:
      result['checkpoint'] = trainer.save()
      saved_step = trainer.step

  cluster = None
  try:
    with signals.StopSignal() as stop, writer.as_default():
      if signals.is_multi_worker(trainer.strategy):
        # A worker that left alone would block the others in the next all-reduce: all stop at one step.
        cluster = signals.ClusterStop(trainer.strategy, stop, save, save_dir)
        if not cluster.active:
          cluster.close()
          cluster = None
      train_step = trainer.train_step if cluster is None else functools.partial(cluster.run, trainer.train_step)
      while step < num_steps:
        t0 = time.perf_counter()
        try:
          losses, grad_norm, local_batch = train_step(iterator)
        except signals.ClusterStopped:
          result['stopped'] = 'signal'
          who = f'Received {stop.name}' if stop.signum is not None else 'Another worker received a stop signal'
          logging.warning('%s: every worker saved step %d (%s) and stopped.', who, trainer.step,
                          result['checkpoint'])
          break
        except (tf.errors.UnavailableError, tf.errors.AbortedError) as e:
          if not signals.is_multi_worker(trainer.strategy):
            raise
          # A peer died without a signal (killed, crashed, unreachable): the all-reduce was aborted.
          latest = trainer.latest_checkpoint(save_dir)
          cause = next((line.strip() for line in e.message.splitlines() if 'aborted by' in line), '')
          raise signals.WorkerLostError(
              f'Lost contact with another worker during step {step + 1} ({type(e).__name__}'
              f'{": " + cause if cause else ""}). Restart every worker: they resume from '
              f'{latest or "the start (no checkpoint was written)"}.') from None
        losses = {k: float(v) for k, v in losses.items()}
        grad_norm = float(grad_norm)
        dt = time.perf_counter() - t0
        new_step = trainer.step
        trainers.Trainer.check_finite_losses(losses, new_step)
        if new_step == step:  # float16 loss scaling skipped the update.
          continue
        step = new_step
        if step > start_step + 1:  # The first step of a run includes tracing: keep it out of the rates.
          interval_steps += 1
          interval_time += dt
        result['losses'] = losses
        result['step'] = step
        if bar is not None:
          bar.update(1)
          postfix = {'loss': f"{losses['total_loss']:.4g}"}
          if interval_steps and interval_time > 0:
            postfix['examples/s'] = f'{interval_steps * batch_size / interval_time:.3g}'
          bar.set_postfix(postfix, refresh=False)

        if steps_per_summary and step % steps_per_summary == 0:
          steps_per_sec = interval_steps / interval_time if interval_steps and interval_time > 0 else None
          if steps_per_sec is not None:
            result['steps_per_sec'] = steps_per_sec
            result['examples_per_sec'] = steps_per_sec * batch_size
          _write_step_summaries(trainer, losses, grad_norm, local_batch, step, steps_per_sec, batch_size,
                                sample_rate, frame_rate, summary_examples, write_summaries and chief)
          rate = (f' | {steps_per_sec:.3g} steps/s, {steps_per_sec * batch_size:.3g} examples/s'
                  if steps_per_sec is not None else '')
          say(f"step {step}: {', '.join(f'{k}={v:.5g}' for k, v in sorted(losses.items()))}{rate}")
          interval_steps, interval_time = 0, 0.0

        stop_reason = None
        if early_stop_loss_value is not None and losses['total_loss'] < early_stop_loss_value:
          stop_reason = 'early_stop'
          say(f"Total loss {losses['total_loss']:.5g} < early_stop_loss_value {early_stop_loss_value:.5g} at "
              f'step {step}: stopping.')
        if stop.signum is not None and cluster is None:
          stop_reason = 'signal'
        if step % steps_per_save == 0 or stop_reason or step >= num_steps:
          save()
          if stop_reason == 'signal':
            say(f"Saved {result['checkpoint']} after {stop.name}.")
        if stop_reason:
          result['stopped'] = stop_reason
          break
  except trainers.NonFiniteLossError as e:
    latest = trainer.latest_checkpoint(save_dir)
    raise trainers.NonFiniteLossError(
        f'{e} Training stopped; nothing was saved after the last good checkpoint '
        f'({latest or "none was written"}). Lower the learning rate, check the data for NaN/Inf, or '
        'restore from that checkpoint.') from None
  finally:
    if cluster is not None:
      cluster.close()
    if bar is not None:
      bar.close()
    writer.flush()
  if interval_steps and interval_time > 0 and result['steps_per_sec'] is None:
    result['steps_per_sec'] = interval_steps / interval_time
    result['examples_per_sec'] = result['steps_per_sec'] * batch_size
  if result['checkpoint'] is None:
    result['checkpoint'] = trainer.latest_checkpoint(save_dir)
  return result


def _checkpoint_has_iterator(path):
  if not path:
    return False
  return any(name.startswith('iterator/') for name, _ in tf.train.list_variables(path))


def _write_step_summaries(trainer, losses, grad_norm, local_batch, step, steps_per_sec, batch_size,
                          sample_rate, frame_rate, n_examples, write_audio):
  """Scalars every summary interval; audio, spectrograms and curves from the chief's first replica."""
  scalars = {f'losses/{k}': v for k, v in losses.items()}
  scalars.update({'learning_rate': trainer.current_learning_rate(), 'grad_norm': grad_norm})
  if steps_per_sec is not None:
    scalars.update({'steps_per_sec': steps_per_sec, 'examples_per_sec': steps_per_sec * batch_size})
  summaries.scalars(scalars, step, prefix='train/')
  if not write_audio or n_examples <= 0:
    return
  batch = tf.nest.map_structure(lambda x: x[:n_examples], local_batch)
  try:
    outputs = trainer.predict(batch)
    audio_gen = trainer.model.get_audio_from_outputs(outputs)
    summaries.audio_summaries(batch, outputs, audio_gen, step, sample_rate, frame_rate, n_examples)
  except Exception as e:
    # Audio and figure summaries are a diagnostic; never let them kill a long run.
    logging.warning('Could not write audio/figure summaries at step %d: %s', step, e)


read_checkpoint_step = checkpoints.read_checkpoint_step


def nan_to_none(d):
  """Replaces non-finite floats in a flat dict by None (strict JSON)."""
  return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}

