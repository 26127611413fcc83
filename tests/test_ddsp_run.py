"""Tests of the `ddsp_run` CLI: gin handling, errors before training, kill and resume.

The kill/resume test drives the real command line in subprocesses: a run is killed with SIGKILL after a
checkpoint, resumed (reusing the operative gin config saved in its save_dir), stopped with SIGTERM (which
must save a checkpoint and exit cleanly), then resumed again in-process; the result must equal an
uninterrupted run of the same number of steps, which proves that the step count, the optimiser state and the
data order all continue. Models are tiny (1 s examples, a 16-unit GRU).
"""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from ddsp.training import ddsp_run
from ddsp.training import train_util
from ddsp.training import trainers

import helpers

TINY_FILES = helpers.TINY_FILES
TINY_PARAMS = helpers.tiny_params(n_examples=16, batch_size=4)
# The model without its FilteredNoise node. Training noise is seeded by the step, so resume is bit-exact with it
# too (tests/test_resume.py); the CLI kill / SIGTERM test below leaves it out to keep to the CLI's own path.
NO_NOISE = ("ProcessorGroup.dag = [(@synths.Harmonic(), ['amps', 'harmonic_distribution', 'f0_hz']), "
            "(@effects.Reverb(), ['harmonic/signal'])]")


_env = helpers.subprocess_env


def _cli(save_dir, *extra):
  return [sys.executable, '-m', 'ddsp.training.ddsp_run', '--mode=train', f'--save_dir={save_dir}',
          '--noprogress_bar'] + list(extra)


def _checkpoint_steps(directory):
  return sorted(int(n[len('ckpt-'):-len('.index')]) for n in os.listdir(directory)
                if n.startswith('ckpt-') and n.endswith('.index'))


def _wait_for(predicate, proc, timeout=240.0):
  deadline = time.time() + timeout
  while time.time() < deadline:
    if predicate():
      return True
    if proc.poll() is not None:
      return predicate()
    time.sleep(0.05)
  return False


# --------------------------------------------------------------------------------------------------------------
# Errors before training.
# --------------------------------------------------------------------------------------------------------------
def test_bad_gin_binding_fails_before_training_naming_it(tmp_path):
  save_dir = str(tmp_path / 'run')
  with pytest.raises(ddsp_run.GinConfigError) as err:
    ddsp_run.run('train', save_dir, gin_files=TINY_FILES,
                 gin_params=TINY_PARAMS + ['train.num_stepz = 8'], num_steps=2)
  assert "Bad gin binding 'train.num_stepz = 8'" in str(err.value)
  # A layer that takes **kwargs accepts any name at parse time; building the model rejects it, still before
  # anything is written.
  with pytest.raises(ddsp_run.GinConfigError) as err:
    ddsp_run.run('train', save_dir, gin_files=TINY_FILES,
                 gin_params=TINY_PARAMS + ['RnnFcDecoder.rnn_chanels = 8'], num_steps=2)
  assert 'rnn_chanels' in str(err.value) and 'RnnFcDecoder' in str(err.value)
  assert not os.path.exists(save_dir)
  with pytest.raises(ddsp_run.GinConfigError, match='NoSuchSynth'):
    ddsp_run.run('train', save_dir, gin_files=TINY_FILES, gin_params=['NoSuchSynth.n_samples = 3'])
  with pytest.raises(FileNotFoundError, match='no_such_config'):
    ddsp_run.run('train', save_dir, gin_files=['models/no_such_config.gin'])
  with pytest.raises(ddsp_run.GinConfigError, match='No model'):
    ddsp_run.run('train', save_dir, gin_files=['datasets/synthetic.gin'])
  assert not os.path.exists(save_dir)


def test_bad_gin_binding_from_the_command_line(tmp_path):
  save_dir = str(tmp_path / 'run')
  proc = subprocess.run(_cli(save_dir, *[f'--gin_file={f}' for f in TINY_FILES],
                             '--gin_param=Trainer.lerning_rate = 0.1'),
                        capture_output=True, text=True, timeout=240, env=_env())
  assert proc.returncode == 1
  # One line: gin's own context lines ("In bindings string line 1", the binding again) are not repeated.
  assert proc.stderr.startswith("ddsp_run: error: Bad gin binding 'Trainer.lerning_rate = 0.1'")
  assert proc.stderr.count('\n') == 1, proc.stderr
  assert not os.path.exists(save_dir)


def test_missing_data_pattern_fails_naming_the_pattern(tmp_path):
  save_dir = str(tmp_path / 'run')
  pattern = str(tmp_path / 'no_such_folder' / 'train.tfrecord-*')
  with pytest.raises(FileNotFoundError) as err:
    ddsp_run.run('train', save_dir, gin_files=['models/tiny.gin', 'datasets/tfrecord.gin', 'optimization/base.gin'],
                 gin_params=[f'TFRecordProvider.file_pattern = {pattern!r}'], num_steps=2)
  assert pattern in str(err.value)
  assert not os.path.exists(save_dir)  # nothing written
  with pytest.raises(train_util.DataError, match='file_pattern'):  # no pattern bound at all
    ddsp_run.run('train', save_dir, gin_files=['papers/iclr2020/tiny_instrument.gin'], num_steps=2)
  assert not os.path.exists(save_dir)


# --------------------------------------------------------------------------------------------------------------
# Kill, resume, signal, resume: identical to an uninterrupted run.
# --------------------------------------------------------------------------------------------------------------
def _final_weights(save_dir):
  """Every variable of the newest checkpoint (model weights, Adam moments, step), by checkpoint name."""
  # The trainer's own lookup: a SIGKILL can land after `ckpt-N.index` is written but before the `checkpoint`
  # state file lists it, and the trainer restores that newest complete checkpoint.
  path = trainers.Trainer.latest_checkpoint(save_dir)
  assert path, f'no checkpoint in {save_dir}'
  return {name: tf.train.load_variable(path, name) for name, _ in tf.train.list_variables(path)
          if name != '_CHECKPOINTABLE_OBJECT_GRAPH' and not name.startswith('save_counter')}


def test_kill_sigterm_and_resume_match_an_uninterrupted_run(tmp_path):
  save_dir = str(tmp_path / 'interrupted')
  gin_args = [f'--gin_file={f}' for f in TINY_FILES] + [f'--gin_param={p}' for p in TINY_PARAMS + [NO_NOISE]]

  # 1. Train "forever", saving every 3 steps; SIGKILL as soon as the first checkpoint exists.
  proc = subprocess.Popen(_cli(save_dir, '--num_steps=100000', '--steps_per_save=3', '--steps_per_summary=0',
                               *gin_args), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  try:
    assert _wait_for(lambda: os.path.isdir(save_dir) and _checkpoint_steps(save_dir), proc), \
        proc.communicate()[1][-3000:]
  finally:
    proc.kill()  # SIGKILL
    proc.communicate()
  assert proc.returncode == -signal.SIGKILL
  killed_at = _checkpoint_steps(save_dir)[-1]
  assert killed_at % 3 == 0

  # 2. The restored model holds exactly the checkpoint's values (read independently with load_variable) and
  #    continues the step count.
  ddsp_run.parse_gin(restore_dirs=[save_dir])
  from ddsp.training import models
  model = models.get_model()
  trainer = trainers.Trainer(model)
  trainer.build(train_util.example_batch(ddsp_run.data_provider_from_gin().get_dataset(4)))
  fresh = [v.numpy().copy() for v in model.trainable_variables]
  trainer.make_checkpoint(str(tmp_path / 'unused'))
  assert trainer.restore(save_dir) == killed_at
  saved = list(_final_weights(save_dir).values())
  for var in model.trainable_variables:
    value = var.numpy()
    assert any(s.shape == value.shape and np.array_equal(s, value) for s in saved), \
        f'{var.path} does not equal any checkpointed tensor'
  assert any(not np.array_equal(b, v.numpy()) for b, v in zip(fresh, model.trainable_variables))

  # 3. Resume from the command line with no gin files at all (the operative config of save_dir is reused), then
  #    SIGTERM after its first new checkpoint: it must save the current step and exit cleanly.
  proc = subprocess.Popen(_cli(save_dir, '--num_steps=100000'), env=_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  try:
    assert _wait_for(lambda: _checkpoint_steps(save_dir)[-1] > killed_at, proc), proc.communicate()[1][-3000:]
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
  finally:
    if proc.poll() is None:
      proc.kill()
  assert proc.returncode == 0, err[-3000:]
  assert '(signal)' in out
  stopped_at = int(out.split('trained to step ')[1].split()[0])
  assert stopped_at > killed_at
  assert _checkpoint_steps(save_dir)[-1] == stopped_at
  assert os.path.exists(os.path.join(save_dir, f'operative_config-{killed_at}.gin'))

  # 4. Resume in-process to a fixed step; compare with an uninterrupted run of as many steps.
  total = stopped_at + 4
  result = ddsp_run.run('train', save_dir, num_steps=total, progress_bar=False)
  assert result['step'] == total and result['stopped'] == 'num_steps'
  with open(os.path.join(save_dir, f'operative_config-{stopped_at}.gin')) as f:
    assert f'train.num_steps = {total}' in f.read()  # the flag overrides the reused config

  reference_dir = str(tmp_path / 'uninterrupted')
  reference = ddsp_run.run('train', reference_dir, gin_files=TINY_FILES, gin_params=TINY_PARAMS + [NO_NOISE],
                           num_steps=total, steps_per_save=1000, steps_per_summary=0, progress_bar=False)
  assert reference['step'] == total
  resumed, uninterrupted = _final_weights(save_dir), _final_weights(reference_dir)
  assert resumed.keys() == uninterrupted.keys() and resumed
  for name in resumed:
    np.testing.assert_allclose(resumed[name], uninterrupted[name], rtol=1e-5, atol=1e-6, err_msg=name)
  assert result['losses']['total_loss'] == pytest.approx(reference['losses']['total_loss'], rel=1e-5)


def test_flag_bindings():
  assert ddsp_run.flag_bindings(num_steps=5, mixed_precision='none', jit_compile=True) == [
      'train.num_steps = 5', 'Trainer.jit_compile = True', 'Trainer.mixed_precision = None']
  assert ddsp_run.flag_bindings() == []
