"""Resume is bit-exact, noise included.

A training run killed with SIGKILL after a checkpoint and resumed from it must end with exactly the weights
(np.array_equal, every variable of the checkpoint: model, Adam moments, counters) of a run that was never
interrupted, with the model's FilteredNoise node kept. That needs the same batches in the same order (the
data pipeline is rebuilt and the consumed batches skipped, or the tf.data iterator state is restored) and the
same noise at every step: the trainer seeds each step's noise from (Trainer.noise_seed, batch index *
replicas + replica id) through `ddsp.synths.training_noise`, instead of a random generator that restarts with
the process. The other tests here check that noise directly against `tf.random.stateless_uniform`: new noise
every step and every replica, a seeded synthesis node varies too, a reverb's fixed IR noise does not.
"""
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import zlib

import numpy as np
import pytest
import tensorflow as tf

from ddsp import effects
from ddsp import processors
from ddsp import synths
from ddsp.training import ddsp_run
from ddsp.training import trainers

import helpers

# The tiny recipe (harmonic + filtered noise + reverb) on 0.5 s examples with an 8-unit GRU: ~0.1 s a step.
PARAMS = helpers.tiny_params(n_examples=12, batch_size=4) + [
    'n_samples = 8000', 'time_steps = 125', 'SyntheticProvider.example_secs = 0.5',
    'RnnFcDecoder.rnn_channels = 8', 'RnnFcDecoder.ch = 16',
    # Loud noise from the first step, so that a wrong noise draw moves the weights visibly.
    'FilteredNoise.initial_bias = 0.0']
SAVE_EVERY = 3
TOTAL_STEPS = 9


def _checkpoint_steps(directory):
  if not os.path.isdir(directory):
    return []
  return sorted(int(n[len('ckpt-'):-len('.index')]) for n in os.listdir(directory)
                if n.startswith('ckpt-') and n.endswith('.index'))


def _variables(save_dir, step):
  """Every variable of `save_dir/ckpt-<step>` by checkpoint name (save_counter aside: it counts saves)."""
  path = os.path.join(save_dir, f'ckpt-{step}')
  # The tf.data iterator state (data_checkpoint='iterator') is a variant tensor NumPy cannot hold; the
  # batches it yields after the restore are what the weights see.
  return {name: tf.train.load_variable(path, name) for name, _ in tf.train.list_variables(path)
          if name != '_CHECKPOINTABLE_OBJECT_GRAPH' and not name.startswith(('save_counter', 'iterator/'))}


class _KilledRun:
  """`ddsp_run --mode=train` in a subprocess, SIGKILLed by a watcher thread as soon as a checkpoint exists.

  The watcher lets the test train its uninterrupted reference meanwhile (the subprocess spends most of its
  time importing TensorFlow).
  """

  def __init__(self, save_dir, gin_params):
    cmd = [sys.executable, '-m', 'ddsp.training.ddsp_run', '--mode=train', f'--save_dir={save_dir}',
           '--noprogress_bar', '--num_steps=100000', f'--steps_per_save={SAVE_EVERY}', '--steps_per_summary=0']
    cmd += [f'--gin_file={f}' for f in helpers.TINY_FILES] + [f'--gin_param={p}' for p in gin_params]
    self.save_dir = save_dir
    self.proc = subprocess.Popen(cmd, env=helpers.subprocess_env(), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)
    self.watcher = threading.Thread(target=self._kill_after_first_checkpoint, daemon=True)
    self.watcher.start()

  def _kill_after_first_checkpoint(self):
    deadline = time.time() + 300
    while not _checkpoint_steps(self.save_dir) and self.proc.poll() is None and time.time() < deadline:
      time.sleep(0.01)
    self.proc.kill()  # SIGKILL: no handler runs, nothing more is saved

  def wait(self):
    """The step of the newest checkpoint the killed run left."""
    self.watcher.join(330)
    _, err = self.proc.communicate()
    assert self.proc.returncode == -signal.SIGKILL, err[-3000:]
    steps = _checkpoint_steps(self.save_dir)
    assert steps and 0 < steps[-1] < TOTAL_STEPS and steps[-1] % SAVE_EVERY == 0, (steps, err[-3000:])
    return steps[-1]


def test_killed_and_resumed_runs_end_bit_identical_with_noise(tmp_path):
  # Both ways of continuing the data order: rebuild the pipeline and skip the consumed batches (the default),
  # or restore the tf.data iterator from the checkpoint. Both killed runs start first (their subprocesses
  # import TensorFlow while the reference trains).
  modes = ('skip', 'iterator')
  mode_params = {mode: PARAMS + [f"train.data_checkpoint = '{mode}'"] for mode in modes}
  killed = {mode: _KilledRun(str(tmp_path / mode), mode_params[mode]) for mode in modes}

  # One uninterrupted reference: a fresh run draws the same batches whichever way it would checkpoint them.
  reference_dir = str(tmp_path / 'uninterrupted')
  reference = ddsp_run.run('train', reference_dir, gin_files=helpers.TINY_FILES, gin_params=PARAMS,
                           num_steps=TOTAL_STEPS, steps_per_save=SAVE_EVERY, steps_per_summary=0,
                           progress_bar=False)
  assert reference['step'] == TOTAL_STEPS
  with open(os.path.join(reference_dir, 'operative_config-0.gin')) as f:
    config = f.read()
  assert 'synths.FilteredNoise()' in config and "'filtered_noise/signal'" in config  # the noise node is there

  for mode in modes:
    save_dir = killed[mode].save_dir
    killed_at = killed[mode].wait()
    # Resume with the operative config the killed run saved (no gin files given).
    resumed = ddsp_run.run('train', save_dir, num_steps=TOTAL_STEPS, progress_bar=False)
    assert resumed['step'] == TOTAL_STEPS
    if mode == 'iterator':
      assert any(name.startswith('iterator/') for name, _ in tf.train.list_variables(
          os.path.join(save_dir, f'ckpt-{killed_at}')))
    # The checkpoint the kill left equals the uninterrupted run's at that step, and so does the end.
    for step in (killed_at, TOTAL_STEPS):
      got, want = _variables(save_dir, step), _variables(reference_dir, step)
      assert got.keys() == want.keys(), mode
      # Model weights are stored once, under the optimiser that tracks them.
      assert any('_trainable_variables/' in name for name in got)
      differ = [name for name in want if not np.array_equal(got[name], want[name])]
      assert not differ, f'{mode}, step {step}: {len(differ)} of {len(want)} variables differ, e.g. {differ[:3]}'
    assert resumed['losses']['total_loss'] == reference['losses']['total_loss'], mode


def test_noise_depends_on_the_step_only():
  node = synths.FilteredNoise(n_samples=800, name='noise_a')
  seeded = synths.FilteredNoise(n_samples=800, seed=7, name='noise_b')
  fixed = synths.FilteredNoise(n_samples=800, seed=7, name='ir_noise')

  def reference(layer, key, counter):  # the documented seed: (key * 2**31 + salt of the layer, counter)
    salt = zlib.crc32(f'{layer.name}:{layer.seed}'.encode()) & 0x7FFFFFFF
    return tf.random.stateless_uniform([2, 800], seed=tf.constant([key * 2 ** 31 + salt, counter], tf.int64),
                                       minval=-1.0, maxval=1.0).numpy()

  @tf.function
  def draw(counter):
    with synths.training_noise(tf.stack([tf.constant(5, tf.int64), counter]), nodes=[seeded]):
      return node.noise(2), seeded.noise(2), fixed.noise(2)

  outside = fixed.noise(2).numpy()
  draws = {}
  for counter in (3, 4, 3):
    a, b, c = (x.numpy() for x in draw(tf.constant(counter, tf.int64)))
    np.testing.assert_array_equal(a, reference(node, 5, counter))
    np.testing.assert_array_equal(b, reference(seeded, 5, counter))
    np.testing.assert_array_equal(c, outside)  # a seeded layer that is not a node keeps its fixed noise
    draws.setdefault(counter, []).append((a, b))
  np.testing.assert_array_equal(draws[3][0][0], draws[3][1][0])
  assert not np.array_equal(draws[3][0][0], draws[4][0][0])
  assert not np.array_equal(draws[3][0][0], draws[3][0][1])
  # Uniform in [-1, 1]: mean 0, variance 1/3.
  a = reference(node, 5, 3)
  assert abs(a.mean()) < 0.05 and abs(a.var() - 1.0 / 3.0) < 0.03 and np.abs(a).max() <= 1.0
  # Outside the block nothing changed: a seed gives its fixed noise, no seed a fresh draw every call.
  np.testing.assert_array_equal(seeded.noise(2).numpy(), tf.random.stateless_uniform(
      [2, 800], seed=[7, 0], minval=-1.0, maxval=1.0).numpy())
  assert not np.array_equal(node.noise(2).numpy(), node.noise(2).numpy())


def test_trainer_seeds_the_synthesis_nodes_not_a_reverbs_ir_noise():
  reverb = effects.FilteredNoiseReverb(trainable=True, reverb_length=400, n_frames=10)
  noise = synths.FilteredNoise(n_samples=800, seed=3)
  inner = processors.ProcessorGroup(dag=[(noise, ['noise_magnitudes'])], name='inner')

  class Model:
    processor_group = processors.ProcessorGroup(dag=[(inner, ['noise_magnitudes']),
                                                     (reverb, ['inner/signal'])])

    def compute_losses(self, outputs):
      return {}

  assert trainers._noise_nodes(Model()) == (noise,)
  with pytest.raises(ValueError, match='noise_seed'):
    trainers.Trainer(Model(), noise_seed=-1)


_REPLICAS_SCRIPT = textwrap.dedent('''
    import json
    import tensorflow as tf
    cpu = tf.config.list_physical_devices('CPU')[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from ddsp import processors, synths
    from ddsp.training import train_util, trainers

    strategy = train_util.get_strategy('mirrored')
    noise = synths.FilteredNoise(n_samples=400, seed=1)

    class Model:
      processor_group = processors.ProcessorGroup(dag=[(noise, ['noise_magnitudes'])])

      def compute_losses(self, outputs):
        return {}

    trainer = trainers.Trainer(Model(), strategy, noise_seed=11)

    def replica(index):
      with synths.training_noise(trainer._replica_noise_seed(index), trainer._noise_nodes):
        return noise.noise(1)

    @tf.function
    def run(index):
      return strategy.experimental_local_results(strategy.run(replica, args=(index,)))

    out = {i: [x.numpy().tolist() for x in run(tf.constant(i, tf.int64))] for i in (4, 5)}
    print('RESULT ' + json.dumps({'replicas': trainer.num_replicas, 'noise': out}))
''')


def test_each_replica_draws_its_own_noise(tmp_path):
  script = tmp_path / 'replicas.py'
  script.write_text(_REPLICAS_SCRIPT)
  proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240,
                        env=helpers.subprocess_env())
  lines = [line for line in proc.stdout.splitlines() if line.startswith('RESULT ')]
  assert proc.returncode == 0 and lines, proc.stderr[-3000:]
  result = json.loads(lines[0][len('RESULT '):])
  assert result['replicas'] == 2
  salt = zlib.crc32(b'filtered_noise:1') & 0x7FFFFFFF
  for index, per_replica in result['noise'].items():
    for replica, got in enumerate(per_replica):
      want = tf.random.stateless_uniform([1, 400], seed=tf.constant([11 * 2 ** 31 + salt, int(index) * 2 + replica],
                                                                    tf.int64), minval=-1.0, maxval=1.0)
      np.testing.assert_array_equal(np.float32(got), want.numpy())
  assert not np.array_equal(result['noise']['4'][0], result['noise']['4'][1])


def test_run_seed_keys_the_training_noise_unless_bound():
  """ddsp_run's trainer draws its noise from the run's seed (other seeds, other noise); a bound
  Trainer.noise_seed wins."""
  from ddsp.training import experiment
  from ddsp.training import models
  for params, seed, want in (([], 7, 7), ([], 2 ** 31 + 5, 5), (['Trainer.noise_seed = 3'], 7, 3)):
    experiment.parse_gin(['models/tiny.gin'], ['n_samples = 16000', 'time_steps = 250',
                                               'RnnFcDecoder.rnn_channels = 8'] + params)
    trainer = experiment.build_trainer(models.get_model(), tf.distribute.get_strategy(), seed)
    assert trainer.noise_seed == want
