"""Multi-worker training on loopback: two `ddsp_run --strategy=multi_worker` processes on 127.0.0.1.

Every worker dumps its variables (model weights and optimiser state) to an .npz file each time it saves and
after it restores (a small wrapper around `Trainer.save` / `Trainer.restore`, in the subprocess only), so the
two processes' numbers can be compared directly: after each step they must be bit-identical (one all-reduced
gradient, applied on both), equal to the chief's checkpoint, and a resumed run must start from exactly the
saved numbers. SIGTERM to one worker must end both, with the same checkpoint step and a message on stderr.
Ports are picked free by the test, every wait has a timeout and the processes are killed in `finally`.
"""
import glob
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

from ddsp.training import train_util

import helpers

TIMEOUT = 240  # seconds for one two-process run (about 30 s on two busy cores)

# Runs ddsp_run with Trainer.save / Trainer.restore wrapped to dump the variables of this worker.
DRIVER = textwrap.dedent('''
    import json, os
    import numpy as np
    from ddsp.training import ddsp_run, trainers

    OUT = os.environ['DUMP_DIR']
    TASK = json.loads(os.environ['TF_CONFIG'])['task']['index']

    def dump(trainer, what):
      arrays = {f'model_{i}': v.numpy() for i, v in enumerate(trainer.model.weights)}
      arrays.update({f'opt_{i}': np.asarray(v.numpy()) for i, v in enumerate(trainer.optimizer.variables)})
      np.savez(os.path.join(OUT, f'{what}{trainer.step}_worker{TASK}.npz'), **arrays)

    save, restore = trainers.Trainer.save, trainers.Trainer.restore

    def dumping_save(self):
      path = save(self)
      dump(self, 'saved')
      return path

    def dumping_restore(self, *args, **kwargs):
      step = restore(self, *args, **kwargs)
      dump(self, 'restored')
      return step

    trainers.Trainer.save, trainers.Trainer.restore = dumping_save, dumping_restore
    ddsp_run.console_entry_point()
''')


def _free_ports(n):
  socks = [socket.socket() for _ in range(n)]
  for s in socks:
    s.bind(('127.0.0.1', 0))
  ports = [s.getsockname()[1] for s in socks]
  for s in socks:
    s.close()
  return ports


def _start(tmp_path, save_dir, dump_dir, num_steps):
  """Starts the two workers; returns their Popen objects."""
  driver = tmp_path / 'driver.py'
  driver.write_text(DRIVER)
  os.makedirs(dump_dir, exist_ok=True)
  cluster = {'worker': [f'127.0.0.1:{p}' for p in _free_ports(2)]}
  args = [sys.executable, str(driver), '--mode=train', f'--save_dir={save_dir}', '--strategy=multi_worker',
          f'--num_steps={num_steps}', '--steps_per_save=1', '--steps_per_summary=0', '--noprogress_bar']
  args += [f'--gin_file={f}' for f in helpers.TINY_FILES]
  args += [f'--gin_param={p}' for p in helpers.tiny_params(n_examples=16, batch_size=4)]
  procs = []
  for index in range(2):
    env = helpers.subprocess_env()
    env['TF_CONFIG'] = json.dumps({'cluster': cluster, 'task': {'type': 'worker', 'index': index}})
    env['DUMP_DIR'] = str(dump_dir)
    procs.append(subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  cwd=str(tmp_path)))
  return procs


def _finish(procs, timeout=TIMEOUT):
  """Waits for both workers (one deadline); returns [(returncode, stdout, stderr)]; kills on a timeout."""
  deadline = time.monotonic() + timeout
  results = []
  try:
    for p in procs:
      out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
      results.append((p.returncode, out, err))
  finally:
    _kill(procs)
  return results


def _kill(procs):
  for p in procs:
    if p.poll() is None:
      p.kill()
      p.communicate()


def _load(path):
  with np.load(path) as f:
    return {k: f[k] for k in f.files}


def _assert_same(a, b, what):
  assert sorted(a) == sorted(b), what
  unequal = [k for k in a if not np.array_equal(a[k], b[k])]
  assert not unequal, f'{what}: {len(unequal)} of {len(a)} arrays differ ({unequal[:5]})'


def _dump(dump_dir, what, step, worker):
  return _load(os.path.join(dump_dir, f'{what}{step}_worker{worker}.npz'))


def _check_ok(results, expect):
  for index, (code, out, err) in enumerate(results):
    assert code == 0, f'worker {index} exited with {code}:\n{err[-3000:]}'
    assert expect in out, f'worker {index}: {out!r}\n{err[-3000:]}'


_GOOD = {'cluster': {'worker': ['127.0.0.1:1', '127.0.0.1:2']}, 'task': {'type': 'worker', 'index': 1}}


@pytest.mark.parametrize('tf_config, message', [
    (None, 'needs the TF_CONFIG environment variable'),
    ('{"cluster": ', 'TF_CONFIG is not valid JSON'),
    ('[]', 'TF_CONFIG needs "cluster"'),
    (json.dumps({'cluster': {'worker': []}, 'task': _GOOD['task']}), 'TF_CONFIG needs "cluster"'),
    (json.dumps({'cluster': _GOOD['cluster']}), 'TF_CONFIG needs "task"'),
    (json.dumps({'cluster': _GOOD['cluster'], 'task': {'type': 'ps', 'index': 0}}), "one of ['worker']"),
    (json.dumps({'cluster': _GOOD['cluster'], 'task': {'type': 'worker', 'index': 2}}),
     "task index 2 is not in [0, 1] (the cluster lists 2 'worker' address(es))"),
    (json.dumps({'cluster': _GOOD['cluster'], 'task': {'type': 'worker', 'index': '0'}}), "task index '0'"),
])
def test_bad_tf_config_is_refused_before_the_strategy_starts(monkeypatch, tf_config, message):
  if tf_config is None:
    monkeypatch.delenv('TF_CONFIG', raising=False)
  else:
    monkeypatch.setenv('TF_CONFIG', tf_config)
  with pytest.raises(train_util.StrategyError) as info:
    train_util.get_strategy('multi_worker')
  assert message in str(info.value).splitlines()[0]  # ddsp_run prints this first line (gin adds context)


def test_good_tf_config_is_accepted():
  assert train_util.check_tf_config(json.dumps(_GOOD)) == _GOOD


def test_two_workers_hold_equal_weights_after_every_step(tmp_path):
  save_dir, dump_dir = str(tmp_path / 'run'), tmp_path / 'dumps'
  results = _finish(_start(tmp_path, save_dir, dump_dir, num_steps=3))
  _check_ok(results, 'trained to step 3 (num_steps)')
  for step in (1, 2, 3):
    _assert_same(_dump(dump_dir, 'saved', step, 0), _dump(dump_dir, 'saved', step, 1), f'step {step}')
  first, last = _dump(dump_dir, 'saved', 1, 1), _dump(dump_dir, 'saved', 3, 1)
  moved = [k for k in first if k.startswith('model_') and not np.array_equal(first[k], last[k])]
  assert len(moved) > len(first) // 4, 'training did not change the weights'
  # Worker 1's weights and optimiser state are the chief's checkpoint, value for value.
  prefix = os.path.join(save_dir, 'ckpt-3')
  reader = tf.train.load_checkpoint(prefix)
  saved = [reader.get_tensor(name) for name, _ in tf.train.list_variables(prefix)
           if name.endswith('.ATTRIBUTES/VARIABLE_VALUE')]
  for key, value in last.items():
    assert any(s.shape == value.shape and np.array_equal(s, value) for s in saved), key
  assert tf.train.latest_checkpoint(save_dir).endswith('ckpt-3')
  hidden = [n for n in os.listdir(save_dir) if n.startswith('.')]
  assert not hidden, f'temporary folders left in save_dir: {hidden}'  # worker 1 writes and deletes its own


def test_sigterm_to_one_worker_stops_both_at_one_checkpoint_and_resume_continues(tmp_path):
  save_dir, dump_dir = str(tmp_path / 'run'), tmp_path / 'dumps'
  procs = _start(tmp_path, save_dir, dump_dir, num_steps=10**6)
  try:
    deadline = time.monotonic() + TIMEOUT
    while not glob.glob(os.path.join(save_dir, 'ckpt-1.index')):  # both are training
      dead = [i for i, p in enumerate(procs) if p.poll() is not None]
      assert not dead, f'worker {dead[0]} exited before training: {procs[dead[0]].communicate()[1][-3000:]}'
      assert time.monotonic() < deadline, 'the workers did not reach step 1 in time'
      time.sleep(0.2)
    procs[1].send_signal(signal.SIGTERM)
    results = _finish(procs, timeout=120)
  finally:
    _kill(procs)
  _check_ok(results, '(signal)')
  steps = []
  for (_, out, err), who in zip(results, ('Another worker received a stop signal', 'Received SIGTERM')):
    match = re.search(re.escape(who) + r': every worker saved step (\d+) \((\S+)\) and stopped\.', err)
    assert match, err[-3000:]
    steps.append(int(match.group(1)))
    assert f'trained to step {steps[-1]} (signal)' in out
  step = steps[0]
  assert steps == [step, step] and step >= 1
  assert tf.train.latest_checkpoint(save_dir) == os.path.join(save_dir, f'ckpt-{step}')
  _assert_same(_dump(dump_dir, 'saved', step, 0), _dump(dump_dir, 'saved', step, 1), f'step {step}')

  # Both workers resume from that checkpoint: their numbers are the saved ones, and training goes on.
  results = _finish(_start(tmp_path, save_dir, dump_dir, num_steps=step + 2))
  _check_ok(results, f'trained to step {step + 2} (num_steps)')
  for worker in (0, 1):
    _assert_same(_dump(dump_dir, 'restored', step, worker), _dump(dump_dir, 'saved', step, 0),
                 f'worker {worker} restored')
    assert f'ckpt-{step} at step {step}' in results[worker][2]
  _assert_same(_dump(dump_dir, 'saved', step + 2, 0), _dump(dump_dir, 'saved', step + 2, 1), 'after resume')
