"""Stopping a training run on SIGTERM / SIGINT with a checkpoint, on one worker or on all of them together.

One process (`StopSignal`): the signal only sets a flag; the training loop reads it after the running step,
saves a checkpoint and stops. A second SIGINT interrupts at once (`KeyboardInterrupt`).

Several workers (`ClusterStop`, under `tf.distribute.MultiWorkerMirroredStrategy`): a worker that simply
left the loop would leave the others blocked in the next gradient all-reduce. TensorFlow's own engine,
`tf.distribute.experimental.PreemptionCheckpointHandler`, solves this through the cluster's coordination
service: the worker that got the signal publishes "stop after step k+1" (k: the steps it has run), waits until
every worker has acknowledged it, and every worker then saves at that same step and leaves. Here the handler
is told about the signal by polling `StopSignal`'s flag (`TerminationConfig.termination_watcher_fn`, once a
second, so SIGINT works too and nothing replaces the loop's signal handlers), saves through the trainer
(`save_fn`, which writes the chief's checkpoint and every other worker's temporary one) and, instead of
exiting the process, raises `ClusterStopped` (`exit_fn`) so that the loop closes its summaries and returns
like a single-worker run stopped by a signal.
"""
import logging as std_logging
import os
import signal
import threading

from absl import logging
import tensorflow as tf


class StopSignal:
  """SIGTERM / SIGINT set `signum`, which the training loop checks between steps; a second SIGINT interrupts.

  Use as a context manager in the main thread (the previous handlers come back on exit); elsewhere the
  signals keep their handlers and a warning says so.
  """

  def __init__(self):
    self.signum = None
    self._previous = {}

  @property
  def name(self):
    """The received signal's name ('SIGTERM'), or None."""
    return None if self.signum is None else signal.Signals(self.signum).name

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for sig in (signal.SIGTERM, signal.SIGINT):
        self._previous[sig] = signal.signal(sig, self._handle)
    else:
      logging.warning('train() runs outside the main thread: SIGTERM/SIGINT will not trigger a checkpoint.')
    return self

  def _handle(self, signum, frame):
    del frame
    if self.signum is not None and signum == signal.SIGINT:
      raise KeyboardInterrupt
    self.signum = signum
    logging.warning('Received %s: saving a checkpoint after the current step, then stopping.', self.name)

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    return False


class WorkerLostError(RuntimeError):
  """A worker of a multi-worker run disappeared without a signal; the step's all-reduce was aborted."""


class ClusterStopped(Exception):
  """Every worker saved a checkpoint at the same step and stops, because one of them received a signal."""


def is_multi_worker(strategy):
  """True for a MultiWorkerMirroredStrategy whose cluster (from TF_CONFIG) has more than one task."""
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return False
  resolver = getattr(strategy, 'cluster_resolver', None)
  if resolver is None:
    return False
  spec = resolver.cluster_spec().as_dict()
  return sum(len(tasks) for tasks in spec.values()) > 1


class _DropRunCallsDeprecation(std_logging.Filter):
  """The handler's own save reads its deprecated `total_run_calls` and logs a warning meant for its callers."""

  def filter(self, record):
    return 'total_run_calls' not in record.getMessage()


_DROP_RUN_CALLS = _DropRunCallsDeprecation()


class ClusterStop:
  """All workers of a multi-worker run stop together, with a checkpoint, when any of them gets a signal.

  Args:
    strategy: the MultiWorkerMirroredStrategy (`is_multi_worker(strategy)`).
    stop: the loop's `StopSignal` (polled once a second).
    save_fn: called with no argument on every worker at the agreed step; saves the checkpoint.
    save_dir: the run's folder (the handler's own, never written, bookkeeping folder goes under it).

  Use `run(step_fn, *args)` for every training step; it raises `ClusterStopped` after the agreed save.
  """

  def __init__(self, strategy, stop, save_fn, save_dir):
    self._stop = stop
    std_logging.getLogger('tensorflow').addFilter(_DROP_RUN_CALLS)  # a second add is a no-op
    # The handler counts its `run` calls from what its checkpoint holds; the trainer's checkpoint (written by
    # `save_fn`) carries the real step, so the handler gets an empty checkpoint that is never written and
    # every worker counts from 0 in this process: the counts agree, which the step agreement relies on.
    counter = tf.train.CheckpointManager(tf.train.Checkpoint(), os.path.join(save_dir, '.cluster_stop'),
                                         max_to_keep=1)
    config = tf.distribute.experimental.TerminationConfig(
        termination_watcher_fn=lambda: stop.signum is not None, exit_fn=self._exit, grace_period=0,
        save_fn=save_fn)
    self._handler = tf.distribute.experimental.PreemptionCheckpointHandler(
        strategy.cluster_resolver, counter, termination_config=config)
    # On Google Compute Engine CPU and TPU VMs the handler only logs that it is not supported and never
    # acts; there the worker that gets the signal stops alone, as in a single-worker run.
    platform = getattr(getattr(self._handler, '_platform_device', None), 'name', '')
    self.active = platform not in ('GCE_CPU', 'GCE_TPU')
    if not self.active:
      logging.warning('TensorFlow\'s PreemptionCheckpointHandler does not act on %s: a SIGTERM will stop only '
                      'the worker that receives it; the others then wait in the next all-reduce.', platform)

  def _exit(self):
    raise ClusterStopped(self._stop.name)

  def run(self, step_fn, *args):
    """`step_fn(*args)`, after saving and raising `ClusterStopped` if the cluster agreed to stop here."""
    return self._handler.run(step_fn, *args)

  def close(self):
    """Stops the handler's watcher threads (after the last step of a run that was not stopped)."""
    handler, self._handler = self._handler, None
    if handler is not None:
      # The handler releases its threads in __del__, which its own threads' references keep from running.
      handler.__del__()
