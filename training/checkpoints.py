"""Restoring a model's weights from a training checkpoint: the one path every consumer takes.

Training writes `tf.train.Checkpoint(model=..., optimizer=..., batches_consumed=...[, iterator=...])` through
`ddsp.training.trainers.Trainer`. Evaluation, sampling, inference, transfer and export need the model alone;
they call `restore_weights`, which reads the model's part of that object graph and refuses a checkpoint that
does not provide every variable of the model (a silent partial restore leaves layers at their initial values,
which is how a learned reverb once vanished after every restore).

Checkpoints written before every layer list was tracked (see `ddsp.tracking`) reach some variables only
through the optimiser's list of trained variables; `restore_weights` reads those by position, after checking
that their number and shapes match the model's trainable variables.
"""
import os
import re

from absl import logging
import tensorflow as tf

_OPTIMIZER_VARIABLE = re.compile(r'^optimizer/_trainable_variables/(\d+)/\.ATTRIBUTES/VARIABLE_VALUE$')


class IncompatibleCheckpointError(ValueError):
  """The checkpoint's variables do not match the model built from the gin config."""


class UnreadableCheckpointError(IncompatibleCheckpointError):
  """The checkpoint's files cannot be read: truncated, empty, or not a TensorFlow checkpoint."""


# What reading a damaged checkpoint raises: a bad or short index (an OpError such as DataLossError), a data file
# shorter than its index says (IndexError, 'Read less bytes than requested'), an unreadable file (OSError).
_READ_ERRORS = (tf.errors.OpError, IndexError, OSError)


def unreadable(path, error):
  """The `UnreadableCheckpointError` for `error` raised while reading the checkpoint prefix `path`."""
  first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
  return UnreadableCheckpointError(
      f'Checkpoint {path} cannot be restored: its files are truncated or not a TensorFlow checkpoint written '
      f'by ddsp_run ({type(error).__name__}: {first_line}).')


def check_readable(path):
  """Reads every tensor of the checkpoint prefix `path` once (without building a model; variants skipped).

  Raises:
    UnreadableCheckpointError: naming the checkpoint, when its index or data file is damaged.
  """
  try:
    reader = tf.train.load_checkpoint(path)
    dtypes = reader.get_variable_to_dtype_map()
    for name in reader.get_variable_to_shape_map():
      # A tf.data iterator's state is a variant tensor, which cannot be read into NumPy; its bytes are
      # checked when the iterator restores.
      if dtypes.get(name) != tf.variant:
        reader.get_tensor(name)
  except _READ_ERRORS as e:
    raise unreadable(path, e) from e


def checkpoint_number(prefix):
  """N for a checkpoint prefix '.../ckpt-N', else None."""
  tail = os.path.basename(prefix).rsplit('-', 1)[-1]
  return int(tail) if tail.isdigit() else None


def latest_checkpoint(checkpoint_dir_or_path):
  """The newest checkpoint prefix in a directory (or the given prefix itself); None if there is none.

  A process killed right after writing `ckpt-N.index` but before updating the `checkpoint` state file
  leaves a complete checkpoint that the state file does not list (TensorFlow writes the index last): the
  highest-numbered `ckpt-N.index` in the folder counts too.
  """
  if not checkpoint_dir_or_path:
    return None
  if tf.io.gfile.isdir(checkpoint_dir_or_path):
    candidates = {}
    listed = tf.train.latest_checkpoint(checkpoint_dir_or_path)
    if listed:
      candidates[listed] = checkpoint_number(listed)
    for name in tf.io.gfile.listdir(checkpoint_dir_or_path):
      if name.startswith('ckpt-') and name.endswith('.index'):
        prefix = os.path.join(checkpoint_dir_or_path, name[:-len('.index')])
        number = checkpoint_number(prefix)
        if number is not None:
          candidates[prefix] = number
    if not candidates:
      return None
    return max(candidates, key=lambda p: (candidates[p] is not None, candidates[p] or 0))
  if tf.io.gfile.exists(checkpoint_dir_or_path + '.index'):
    return checkpoint_dir_or_path
  return None


def read_checkpoint_step(path):
  """The optimiser step stored in a checkpoint (from its variables, without building a model)."""
  for name, _ in tf.train.list_variables(path):
    if name.startswith('optimizer/') and 'iteration' in name:
      return int(tf.train.load_variable(path, name))
  return None


def _optimizer_list(path):
  """{index: (key, shape)} of the optimiser's trained-variable list in a checkpoint."""
  found = {}
  for name, shape in tf.train.list_variables(path):
    match = _OPTIMIZER_VARIABLE.match(name)
    if match:
      found[int(match.group(1))] = (name, tuple(shape))
  return found


def _restore_from_optimizer_list(model, path):
  """Assigns the model's trainable variables from the optimiser's list; True if the list fits the model."""
  variables = model.trainable_variables
  saved = _optimizer_list(path)
  # Random-number generator states (keras.random.SeedGenerator) are not trained and may start afresh; any other
  # non-trainable variable (e.g. normalisation statistics) is not in the optimiser's list.
  others = [v for v in model.non_trainable_variables if 'seed_generator' not in v.path]
  if others or sorted(saved) != list(range(len(variables))):
    return False
  if any(saved[i][1] != tuple(v.shape) for i, v in enumerate(variables)):
    return False
  reader = tf.train.load_checkpoint(path)
  for i, variable in enumerate(variables):
    variable.assign(reader.get_tensor(saved[i][0]))
  return True


def restore_weights(model, path):
  """Loads every variable of a built `model` from the checkpoint prefix `path`.

  Args:
    model: a Keras model whose variables exist (call it once on an example first).
    path: a checkpoint prefix (`.../ckpt-N`) written by `Trainer.save`.

  Returns:
    The optimiser step stored in the checkpoint (None if it has none).

  Raises:
    IncompatibleCheckpointError: some variable of the model is not in the checkpoint (another gin config,
      or a foreign file); the message names the checkpoint. `UnreadableCheckpointError` (a subclass) when
      the checkpoint's files are truncated or not a checkpoint: the model is left untouched.
  """
  if not model.variables:
    raise ValueError('restore_weights needs a built model: call it on an example first.')
  check_readable(path)
  try:
    status = tf.train.Checkpoint(model=model).read(path)
    status.assert_existing_objects_matched()
    status.expect_partial()
  except AssertionError as e:
    if not _restore_from_optimizer_list(model, path):
      first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
      raise IncompatibleCheckpointError(
          f'Checkpoint {path} does not match the model: it lacks some of its variables (another gin config?): '
          f'{first_line}') from e
    logging.warning('Checkpoint %s predates full model tracking: its weights were read from the optimiser\'s '
                    'variable list (number and shapes checked). Re-save it to upgrade.', path)
  except (ValueError, tf.errors.InvalidArgumentError, tf.errors.NotFoundError, tf.errors.DataLossError) as e:
    first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise IncompatibleCheckpointError(f'Checkpoint {path} does not match the model (another gin config?): '
                                      f'{first_line}') from e
  return read_checkpoint_step(path)
