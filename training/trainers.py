"""The distributed training step: optimiser, gradient all-reduce, checkpoints.

`Trainer` owns everything that lives on the accelerators during training:

  * the model's and the optimiser's variables, created under `strategy.scope()` (mirrored over replicas);
  * the step: every replica runs the model on its share of the global batch (`strategy.run`), computes the
    loss terms of `model.compute_losses` (scaled by 1 / num_replicas so that the gradients summed over
    replicas are the gradients of the global-batch mean), the gradients are all-reduced once, clipped by their
    global norm, and applied by Adam with an exponentially decaying learning rate. With one replica and with
    N replicas the update is the same for the same global batch (up to float summation order);
  * checkpoints (`tf.train.Checkpoint` + `tf.train.CheckpointManager`): model, optimiser (moments, step
    counter), the count of batches consumed and optionally the tf.data iterator; `restore` continues the
    step count;
  * the noise: every FilteredNoise node draws stateless noise seeded by (`noise_seed`, batch index *
    replicas + replica id) (`ddsp.synths.training_noise`), so each step and replica gets new noise and a run
    killed and resumed from a checkpoint ends with the same weights, bit for bit, as an uninterrupted run
    (given the same data order, which `train_util.train` restores).

The loop around it (data, summaries, signals, progress bar) is `ddsp.training.train_util.train`.

Batch layout: a batch is the provider's feature dict, `audio` [batch, n_samples], frame features
(`f0_hz`, `f0_confidence`, `loudness_db`) [batch, n_frames]; the global batch is split over replicas along
axis 0, so the global batch size must be divisible by the number of replicas.
"""
import math
import os
import shutil

from absl import logging
import gin
import keras
import numpy as np
import tensorflow as tf

from ddsp import processors
from ddsp import synths
from ddsp.training import checkpoints

MIXED_PRECISION_MODES = (None, 'none', 'bfloat16', 'float16')


class NonFiniteLossError(RuntimeError):
  """Raised when a training step produces a NaN or Inf loss."""


class _PreReducedAdam(keras.optimizers.Adam):
  """Adam for gradients that the trainer has already summed over replicas.

  Keras' TensorFlow optimiser all-reduces gradients inside `apply` and clips them before that reduction, i.e.
  per replica. The trainer instead all-reduces once itself, so that the global-norm clipping (Keras'
  `global_clipnorm`, applied in `apply`) sees the same gradient as a single-device run.
  """

  def _all_reduce_sum_gradients(self, grads_and_vars):
    return list(grads_and_vars)


_POLICIES = {None: 'float32', 'none': 'float32', 'bfloat16': 'mixed_bfloat16', 'float16': 'mixed_float16'}


def set_mixed_precision(mode):
  """Makes the networks of models built from now on compute in `mode` (None/'none', 'bfloat16', 'float16').

  Only the encoder and decoder networks change precision (`ddsp.training.nn.set_network_dtype`; the Keras
  global policy is left alone), so variables, preprocessing, synthesis, effects and losses stay float32. Must
  run before the model is constructed: layers read their policy when they are created.

  Returns:
    The Keras dtype policy name of the networks.
  """
  if mode not in MIXED_PRECISION_MODES:
    raise ValueError(f'mixed_precision must be one of {MIXED_PRECISION_MODES}, got {mode!r}.')
  policy = _POLICIES[mode]
  from ddsp.training import nn
  nn.set_network_dtype(None if policy == 'float32' else policy)
  return policy


def _network_policy():
  """The dtype policy that newly built networks get (nn's default, else the Keras global policy)."""
  try:
    from ddsp.training import nn
    network = nn.get_network_dtype()
  except ImportError:
    network = None
  return network or keras.mixed_precision.global_policy().name


def is_chief(strategy):
  """True on the task that writes summaries and the real checkpoints (always true outside multi-worker)."""
  resolver = getattr(strategy, 'cluster_resolver', None)
  if resolver is None or not getattr(resolver, 'task_type', None):
    return True
  task_type, task_id = resolver.task_type, resolver.task_id
  if task_type == 'chief':
    return True
  has_chief = 'chief' in resolver.cluster_spec().as_dict()
  return task_type == 'worker' and task_id == 0 and not has_chief


def _local_task_id(strategy):
  resolver = getattr(strategy, 'cluster_resolver', None)
  if resolver is None:
    return 0
  return int(getattr(resolver, 'task_id', 0) or 0)


def _noise_nodes(model):
  """The FilteredNoise nodes of a model's ProcessorGroup (nested groups included): they get training noise."""
  nodes, groups = [], [getattr(model, 'processor_group', None)]
  while groups:
    group = groups.pop()
    for proc in getattr(group, 'processors', None) or []:
      if isinstance(proc, synths.FilteredNoise):
        nodes.append(proc)
      elif isinstance(proc, processors.ProcessorGroup):
        groups.append(proc)
  return tuple(nodes)


def _first_examples(batch, n):
  """The first `n` examples of every tensor of a feature dict (`[batch, ...]` -> `[n, ...]`)."""
  return tf.nest.map_structure(lambda x: x[:n], batch)


class WarmupExponentialDecay(keras.optimizers.schedules.LearningRateSchedule):
  """`lr(step) = learning_rate * decay_rate ** (step / decay_steps) * min(1, (step + 1) / warmup_steps)`.

  A linear warm-up over the first `warmup_steps` updates (none when 0), then the paper's exponential decay.
  """

  def __init__(self, learning_rate, decay_steps, decay_rate, warmup_steps=0):
    self.learning_rate = float(learning_rate)
    self.decay_steps = int(decay_steps)
    self.decay_rate = float(decay_rate)
    self.warmup_steps = int(warmup_steps)

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    lr = self.learning_rate * tf.pow(self.decay_rate, step / float(self.decay_steps))
    if self.warmup_steps > 0:
      lr *= tf.minimum(1.0, (step + 1.0) / float(self.warmup_steps))
    return lr

  def get_config(self):
    return {'learning_rate': self.learning_rate, 'decay_steps': self.decay_steps, 'decay_rate': self.decay_rate,
            'warmup_steps': self.warmup_steps}


@gin.configurable
class Trainer:
  """Distributed optimisation of a DDSP model (see the module docstring).

  Args:
    model: a keras.Model following the `ddsp.training.models` contract: `model(features, training)` returns
      an outputs dict and `model.compute_losses(outputs)` a dict of scalar loss terms (their sum is the
      total loss that is minimised). Construct it inside `strategy.scope()` (the variables are created on the
      first call, which `build` makes under the scope anyway).
    strategy: a `tf.distribute.Strategy`; None uses the current (default) strategy.
    learning_rate: initial Adam learning rate.
    lr_decay_steps: the learning rate is multiplied by `lr_decay_rate` every `lr_decay_steps` steps
      (continuously: lr(step) = learning_rate * lr_decay_rate ** (step / lr_decay_steps)).
    lr_decay_rate: see above; 1.0 disables the decay.
    lr_warmup_steps: the learning rate rises linearly from learning_rate / lr_warmup_steps to learning_rate
      over the first lr_warmup_steps updates (0: no warm-up).
    grad_clip_norm: clip the all-reduced gradients to this global norm; None or 0 disables clipping.
    checkpoints_to_keep: how many of the newest checkpoints `CheckpointManager` keeps.
    jit_compile: compile the per-replica forward + backward pass with XLA.
    mixed_precision: None/'none', 'bfloat16' or 'float16': the precision the model's networks were built
      with (`set_mixed_precision` before building the model; `ddsp_run --mixed_precision` does it). Losses
      are cast to float32; 'float16' also wraps the optimiser in a dynamic `LossScaleOptimizer`.
    noise_seed: int; the key of the training noise (see the module docstring): runs with the same seed and
      data draw the same noise at the same step (`ddsp_run` passes the run's `train.seed` unless this is
      bound: `experiment.build_trainer`).
  """

  def __init__(self,
               model,
               strategy=None,
               learning_rate=3e-4,
               lr_decay_steps=10000,
               lr_decay_rate=0.98,
               lr_warmup_steps=0,
               grad_clip_norm=3.0,
               checkpoints_to_keep=3,
               jit_compile=False,
               mixed_precision=None,
               noise_seed=0):
    if model is None:
      raise ValueError('Trainer needs a model (got None).')
    if not callable(getattr(model, 'compute_losses', None)):
      raise ValueError(f'The model {type(model).__name__} has no `compute_losses(outputs)` method; the '
                       'trainer minimises the sum of the loss terms it returns.')
    if not learning_rate > 0:
      raise ValueError(f'learning_rate must be > 0, got {learning_rate}.')
    if not (isinstance(lr_decay_steps, (int, np.integer)) and lr_decay_steps > 0):
      raise ValueError(f'lr_decay_steps must be a positive integer, got {lr_decay_steps!r}.')
    if not 0.0 < lr_decay_rate <= 1.0:
      raise ValueError(f'lr_decay_rate must be in (0, 1], got {lr_decay_rate}.')
    if not (isinstance(lr_warmup_steps, (int, np.integer)) and lr_warmup_steps >= 0):
      raise ValueError(f'lr_warmup_steps must be an integer >= 0, got {lr_warmup_steps!r}.')
    if grad_clip_norm is not None and grad_clip_norm < 0:
      raise ValueError(f'grad_clip_norm must be >= 0 or None, got {grad_clip_norm}.')
    if not (isinstance(checkpoints_to_keep, (int, np.integer)) and checkpoints_to_keep >= 1):
      raise ValueError(f'checkpoints_to_keep must be an integer >= 1, got {checkpoints_to_keep!r}.')
    if mixed_precision not in MIXED_PRECISION_MODES:
      raise ValueError(f'mixed_precision must be one of {MIXED_PRECISION_MODES}, got {mixed_precision!r}.')
    if not (isinstance(noise_seed, (int, np.integer)) and 0 <= noise_seed < 2 ** 31):
      raise ValueError(f'noise_seed must be an integer in [0, 2**31), got {noise_seed!r}.')

    self.model = model
    self.strategy = strategy or tf.distribute.get_strategy()
    self.learning_rate = float(learning_rate)
    self.lr_decay_steps = int(lr_decay_steps)
    self.lr_decay_rate = float(lr_decay_rate)
    self.lr_warmup_steps = int(lr_warmup_steps)
    self.grad_clip_norm = float(grad_clip_norm) if grad_clip_norm else None
    self.checkpoints_to_keep = int(checkpoints_to_keep)
    self.jit_compile = bool(jit_compile)
    self.mixed_precision = None if mixed_precision == 'none' else mixed_precision
    self.noise_seed = int(noise_seed)
    self._noise_nodes = _noise_nodes(model)
    self._check_policy()

    with self.strategy.scope():
      self.learning_rate_schedule = WarmupExponentialDecay(self.learning_rate, self.lr_decay_steps,
                                                           self.lr_decay_rate, self.lr_warmup_steps)
      optimizer = _PreReducedAdam(learning_rate=self.learning_rate_schedule,
                                  global_clipnorm=self.grad_clip_norm, name='adam')
      if self.mixed_precision == 'float16':
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
      self.optimizer = optimizer
      # Global batches drawn from the data so far (differs from the step when float16 loss scaling skips an
      # update); a resumed run skips this many batches to continue the data order.
      self.batches_consumed = tf.Variable(0, dtype=tf.int64, trainable=False, name='batches_consumed',
                                          aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

    self.built = False
    self.checkpoint = None
    self.manager = None
    self._iterator = None
    self._save_dir = None
    self._write_dir = None
    self._train_step_fn = None
    self._predict_fn = None
    if self.jit_compile:
      self._compute_grads = tf.function(self._compute_grads_impl, jit_compile=True)
    else:
      self._compute_grads = self._compute_grads_impl

  # ----------------------------------------------------------------------------------------------------------
  # Properties.
  # ----------------------------------------------------------------------------------------------------------
  @property
  def num_replicas(self):
    return self.strategy.num_replicas_in_sync

  @property
  def step(self):
    """The number of optimiser updates applied so far (restored with the checkpoint)."""
    return int(self.optimizer.iterations.numpy())

  def current_learning_rate(self):
    """The learning rate that the next update uses (float)."""
    return float(self.learning_rate_schedule(self.optimizer.iterations))

  @property
  def is_chief(self):
    return is_chief(self.strategy)

  def _check_policy(self):
    policy = _network_policy()
    want = _POLICIES[self.mixed_precision]
    if policy != want:
      logging.warning('Trainer(mixed_precision=%r) expects networks built with the dtype policy %r, but new '
                      'networks get %r; call ddsp.training.trainers.set_mixed_precision(%r) before building '
                      'the model.', self.mixed_precision, want, policy, self.mixed_precision)

  # ----------------------------------------------------------------------------------------------------------
  # Building and data.
  # ----------------------------------------------------------------------------------------------------------
  def distribute_dataset(self, dataset):
    """Splits a dataset of global batches into per-replica batches (auto-sharded across workers)."""
    return self.strategy.experimental_distribute_dataset(dataset)

  def build(self, batch):
    """Creates the model's and the optimiser's variables under the strategy scope.

    Args:
      batch: a feature dict with a leading batch axis (any batch size; only its first example is run), e.g.
        `audio` [batch, n_samples] and frame features [batch, n_frames]. Zeros of the right shapes suffice.
    """
    if self.built:
      return
    example = _first_examples(batch, 1)
    with self.strategy.scope():
      self.model(example, training=False)
      self.optimizer.build(self.model.trainable_variables)
    if not self.model.trainable_variables:
      raise ValueError(f'The model {self.model.name!r} has no trainable variables after building it.')
    self.built = True
    logging.info('Built %s: %d trainable parameters, %d replica(s).', self.model.name,
                 self.count_params(), self.num_replicas)

  def count_params(self):
    return int(sum(np.prod(v.shape) for v in self.model.trainable_variables))

  # ----------------------------------------------------------------------------------------------------------
  # Checkpoints.
  # ----------------------------------------------------------------------------------------------------------
  def make_checkpoint(self, save_dir, iterator=None):
    """Creates the `tf.train.Checkpoint` (model, optimiser[, data iterator]) and its manager in `save_dir`.

    On a non-chief worker of a multi-worker run the checkpoints go to a temporary folder under `save_dir`
    that is deleted after each save (every worker must take part in saving; only the chief's copy is kept).
    """
    if not self.built:
      raise RuntimeError('Call Trainer.build(batch) before make_checkpoint().')
    objects = {'model': self.model, 'optimizer': self.optimizer, 'batches_consumed': self.batches_consumed}
    if iterator is not None:
      objects['iterator'] = iterator
    self._iterator = iterator
    self.checkpoint = tf.train.Checkpoint(**objects)
    self._save_dir = save_dir
    if self.is_chief:
      self._write_dir = save_dir
    else:
      self._write_dir = os.path.join(save_dir, f'.worker_{_local_task_id(self.strategy)}_tmp')
    self.manager = tf.train.CheckpointManager(self.checkpoint, directory=self._write_dir,
                                              max_to_keep=self.checkpoints_to_keep, checkpoint_name='ckpt',
                                              step_counter=self.optimizer.iterations)
    return self.checkpoint

  def save(self):
    """Writes a checkpoint numbered by the current step; returns its path (the chief's path on workers)."""
    if self.manager is None:
      raise RuntimeError('Call Trainer.make_checkpoint(save_dir) before save().')
    step = self.step
    path = self.manager.save(checkpoint_number=step)
    if not self.is_chief:
      shutil.rmtree(self._write_dir, ignore_errors=True)
      return os.path.join(self._save_dir, os.path.basename(path))
    logging.debug('Saved checkpoint %s (step %d).', path, step)
    return path

  @staticmethod
  def latest_checkpoint(checkpoint_dir_or_path):
    """The newest checkpoint prefix in a directory (or the prefix itself); see `checkpoints.latest_checkpoint`."""
    return checkpoints.latest_checkpoint(checkpoint_dir_or_path)

  def restore(self, checkpoint_dir_or_path, expect_iterator=False):
    """Restores model, optimiser (and iterator, if the checkpoint has one) from a directory or a prefix.

    Args:
      checkpoint_dir_or_path: a folder (its newest checkpoint is used) or a checkpoint prefix.
      expect_iterator: if True, a checkpoint without a saved data iterator is reported in the log.

    Returns:
      The restored step, or None if there is no checkpoint there.

    Raises:
      ValueError: if the checkpoint does not match the model (e.g. a different gin config).
    """
    if self.checkpoint is None:
      raise RuntimeError('Call Trainer.make_checkpoint(save_dir) before restore().')
    path = self.latest_checkpoint(checkpoint_dir_or_path)
    if path is None:
      return None
    checkpoints.check_readable(path)  # a truncated or foreign file: named, nothing restored
    saved = {name for name, _ in tf.train.list_variables(path)}
    has_iterator = any(name.startswith('iterator/') for name in saved)
    has_batches = any(name.startswith('batches_consumed/') for name in saved)
    objects = {'model': self.model, 'optimizer': self.optimizer}
    if has_batches:
      objects['batches_consumed'] = self.batches_consumed
    if has_iterator and self._iterator is not None:
      objects['iterator'] = self._iterator
    elif expect_iterator:
      logging.warning('Checkpoint %s has no data iterator state; the data order restarts.', path)
    status = tf.train.Checkpoint(**objects).read(path)
    try:
      status.assert_existing_objects_matched()
    except AssertionError as e:
      raise checkpoints.IncompatibleCheckpointError(
          f'Checkpoint {path} does not match the model being trained (was it written with a different gin '
          f'config?): {e}') from e
    status.expect_partial()
    step = self.step
    if not has_batches:  # A checkpoint from before the counter existed: one batch per step.
      self.batches_consumed.assign(step)
    logging.info('Restored %s at step %d.', path, step)
    return step

  # ----------------------------------------------------------------------------------------------------------
  # The step.
  # ----------------------------------------------------------------------------------------------------------
  def _compute_losses(self, batch, training):
    """Runs the model; returns (outputs, {name: float32 scalar})."""
    outputs = self.model(batch, training=training)
    losses = self.model.compute_losses(outputs)
    if not isinstance(losses, dict) or not losses:
      raise ValueError(f'model.compute_losses must return a non-empty dict of scalar losses, got {losses!r}.')
    losses = {name: tf.cast(value, tf.float32) for name, value in losses.items()}
    regularization = list(self.model.losses)
    if regularization:
      losses['regularization_loss'] = tf.add_n([tf.cast(r, tf.float32) for r in regularization])
    return outputs, losses

  def _compute_grads_impl(self, batch, noise_seed):
    """Per-replica forward + backward pass: (loss dict incl. total_loss, gradients of the scaled total).

    `noise_seed` int64 [2]: the seed of this replica's training noise (`_replica_noise_seed`).
    """
    variables = self.model.trainable_variables
    with tf.GradientTape() as tape, synths.training_noise(noise_seed, self._noise_nodes):
      _, losses = self._compute_losses(batch, training=True)
      total = tf.add_n(list(losses.values()))
      # Every replica's loss is the mean over its share of the batch; dividing by the number of replicas
      # makes the sum over replicas the mean over the global batch.
      scaled = total / tf.cast(self.num_replicas, tf.float32)
      if self.mixed_precision == 'float16':
        scaled = self.optimizer.scale_loss(scaled)
    grads = tape.gradient(scaled, variables)
    losses['total_loss'] = total
    return losses, grads

  def _replica_noise_seed(self, batch_index):
    """(noise_seed, batch_index * replicas + this replica's id): the seed of this replica's noise."""
    ctx = tf.distribute.get_replica_context()
    replica = 0 if ctx is None else ctx.replica_id_in_sync_group
    counter = (tf.cast(batch_index, tf.int64) * self.num_replicas + tf.cast(replica, tf.int64))
    return tf.stack([tf.constant(self.noise_seed, tf.int64), counter])

  def _replica_grads(self, batch, batch_index):
    """Per-replica losses and the gradients all-reduced over replicas (the global-batch mean's gradient).

    `batch_index`: the index of this global batch in the run (`batches_consumed` before it); seeds the noise.
    """
    losses, grads = self._compute_grads(batch, self._replica_noise_seed(batch_index))
    ctx = tf.distribute.get_replica_context()
    present = [i for i, g in enumerate(grads) if g is not None]
    if ctx is not None and self.num_replicas > 1 and present:
      reduced = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [grads[i] for i in present])
      grads = list(grads)
      for i, g in zip(present, reduced):
        grads[i] = g
    return losses, list(grads)

  def _replica_step(self, batch, batch_index):
    losses, grads = self._replica_grads(batch, batch_index)
    grad_norm = tf.linalg.global_norm([g for g in grads if g is not None])
    if self.mixed_precision == 'float16':
      grad_norm = grad_norm / tf.cast(self.optimizer.dynamic_scale, grad_norm.dtype)
    self.optimizer.apply(grads, self.model.trainable_variables)
    return losses, grad_norm

  def gradients(self, iterator):
    """The all-reduced gradients (unclipped, unscaled) of the total loss on the next global batch.

    Runs exactly the gradient computation of `train_step` without applying it (for checks and debugging).

    Returns:
      A list of tensors aligned with `model.trainable_variables` (None where a variable gets no gradient).
    """
    if not self.built:
      raise RuntimeError('Call Trainer.build(batch) before gradients().')

    @tf.function
    def fn(iterator):
      # The noise of the next train_step (the same batch index; nothing is incremented here).
      index = self.batches_consumed.read_value()
      _, grads = self.strategy.run(self._replica_grads, args=(next(iterator), index))
      return [None if g is None else self.strategy.experimental_local_results(g)[0] for g in grads]

    grads = fn(iterator)
    if self.mixed_precision == 'float16':
      scale = tf.cast(self.optimizer.dynamic_scale, tf.float32)
      grads = [None if g is None else g / scale for g in grads]
    return grads

  def _train_step(self, iterator):
    batch = next(iterator)
    index = self.batches_consumed.read_value()  # this batch's index: seeds the noise of the step
    losses, grad_norm = self.strategy.run(self._replica_step, args=(batch, index))
    self.batches_consumed.assign_add(1)
    mean = tf.distribute.ReduceOp.MEAN
    losses = {k: self.strategy.reduce(mean, v, axis=None) for k, v in losses.items()}
    grad_norm = self.strategy.reduce(mean, grad_norm, axis=None)
    local_batch = self.strategy.experimental_local_results(batch)[0]
    return losses, grad_norm, local_batch

  def train_step(self, iterator):
    """One optimiser update on the next global batch of a distributed iterator.

    Args:
      iterator: an iterator over `distribute_dataset(...)`.

    Returns:
      (losses, grad_norm, local_batch): losses is a dict of float32 scalars (each term averaged over the
      global batch, plus `total_loss`), grad_norm the global norm of the all-reduced gradient before clipping,
      local_batch the first replica's share of the batch (a feature dict, for summaries).
    """
    if not self.built:
      raise RuntimeError('Call Trainer.build(batch) before train_step().')
    if self._train_step_fn is None:
      self._train_step_fn = tf.function(self._train_step)
    return self._train_step_fn(iterator)

  @staticmethod
  def check_finite_losses(losses, step):
    """Raises NonFiniteLossError naming the loss terms that are NaN or Inf (numpy/float dict)."""
    bad = {k: float(v) for k, v in losses.items() if not math.isfinite(float(v))}
    if bad:
      terms = ', '.join(f'{k}={v}' for k, v in sorted(bad.items()))
      raise NonFiniteLossError(f'Non-finite loss at step {step}: {terms}.')

  def predict(self, batch):
    """Runs the model (training=False) on a feature dict in the cross-replica context; returns its outputs."""
    if self._predict_fn is None:
      self._predict_fn = tf.function(lambda b: self.model(b, training=False), reduce_retracing=True)
    return self._predict_fn(batch)
