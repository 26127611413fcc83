"""Tests of ddsp.training.trainers and ddsp.training.train_util.

The optimiser step is checked against a NumPy Adam with global-norm clipping and exponential decay; training
the tiny autoencoder on synthetic notes must lower its loss on a fixed batch; a NaN loss must stop the run and
leave the last good checkpoint; MirroredStrategy over two logical CPUs must match one device on the same
global batch; a two-process MultiWorkerMirroredStrategy run must complete. Models are tiny (1 s examples, a
16-unit GRU) so that the file runs in well under a minute on two cores.
"""
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from ddsp.training import ddsp_run
from ddsp.training import train_util
from ddsp.training import trainers

import helpers

# A tiny solo-instrument model on 1 s synthetic notes (shared with tests/test_ddsp_run.py).
TINY_FILES = helpers.TINY_FILES
TINY_PARAMS = helpers.tiny_params(n_examples=16, batch_size=4)


_env = helpers.subprocess_env


def _weights(model):
  return [v.numpy().copy() for v in model.trainable_variables]


# --------------------------------------------------------------------------------------------------------------
# A linear model with an MSE loss, following the model contract, for exact optimiser checks.
# --------------------------------------------------------------------------------------------------------------
class LinearModel(keras.Model):
  """audio [B, 3] -> y = audio @ w + b; loss = mean((y - target)^2)."""

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.w = self.add_weight(shape=(3, 1), initializer=keras.initializers.Constant(0.5), name='w')
    self.b = self.add_weight(shape=(1,), initializer='zeros', name='b')

  def call(self, features, training=False):
    out = dict(features)
    out['audio_synth'] = tf.matmul(features['audio'], self.w)[:, 0] + self.b[0]
    return out

  def compute_losses(self, outputs):
    return {'mse': tf.reduce_mean(tf.square(outputs['audio_synth'] - outputs['target']))}


class _ArrayProvider:
  """Fixed batches in a fixed order (ignores shuffle); batch i of `audio` [B, 3] and `target` [B]."""

  sample_rate, frame_rate = 16000, 250

  def __init__(self, audio, target):
    self.audio, self.target = audio.astype(np.float32), target.astype(np.float32)

  def get_dataset(self, batch_size, shuffle=True, repeats=-1):
    del shuffle
    ds = tf.data.Dataset.from_tensor_slices({'audio': self.audio, 'target': self.target})
    return ds.repeat(repeats).batch(batch_size, drop_remainder=True)


def _numpy_adam_run(x_batches, t_batches, lr0, decay_steps, decay_rate, clip, steps):
  """Reference: Adam (beta 0.9/0.999, eps 1e-7) on the linear MSE model, clipped gradients, decayed lr."""
  w, b = np.full((3,), 0.5), 0.0
  m, v = np.zeros(4), np.zeros(4)
  b1, b2, eps = 0.9, 0.999, 1e-7
  losses = []
  for k in range(steps):
    x, t = x_batches[k], t_batches[k]
    err = x @ w + b - t
    losses.append(np.mean(err ** 2))
    g = np.concatenate([2.0 * x.T @ err / len(t), [2.0 * err.mean()]])
    norm = np.linalg.norm(g)
    if norm > clip:
      g = g * clip / norm
    lr = lr0 * decay_rate ** (k / decay_steps)
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    alpha = lr * np.sqrt(1 - b2 ** (k + 1)) / (1 - b1 ** (k + 1))
    step = alpha * m / (np.sqrt(v) + eps)
    w, b = w - step[:3], b - step[3]
  return w, b, losses


@pytest.mark.parametrize('jit_compile, data_checkpoint, interrupted', [
    (False, 'skip', False),
    (True, 'skip', True),
    (False, 'iterator', True),
])
def test_adam_update_matches_numpy_reference(tmp_path, jit_compile, data_checkpoint, interrupted):
  rng = np.random.RandomState(1)
  audio = rng.normal(size=(12, 3)) * 3.0
  target = audio @ np.array([1.0, -2.0, 0.5]) + 4.0
  provider = _ArrayProvider(audio, target)
  # A large learning rate and a fast decay make both the decay and the clipping (initial |g| >> 1) visible.
  settings = dict(learning_rate=0.1, lr_decay_steps=2, lr_decay_rate=0.5, grad_clip_norm=1.0,
                  jit_compile=jit_compile)
  kwargs = dict(batch_size=4, steps_per_summary=0, steps_per_save=100, save_dir=str(tmp_path),
                progress_bar=False, write_summaries=False, data_checkpoint=data_checkpoint)
  if interrupted:
    # Train 4 steps (one full pass over the 3 batches and one more), then a new process-like start: a fresh
    # model and trainer restore the checkpoint and must continue with step 5 on batch 2 with Adam's moments.
    first = train_util.train(provider, trainers.Trainer(LinearModel(), **settings), num_steps=4, **kwargs)
    assert first['step'] == 4
  model = LinearModel()
  trainer = trainers.Trainer(model, **settings)
  result = train_util.train(provider, trainer, num_steps=6, **kwargs)
  x = audio.astype(np.float32).astype(np.float64).reshape(3, 4, 3)
  t = target.astype(np.float32).astype(np.float64).reshape(3, 4)
  w_ref, b_ref, losses_ref = _numpy_adam_run([x[k % 3] for k in range(6)], [t[k % 3] for k in range(6)],
                                             0.1, 2, 0.5, 1.0, 6)
  assert result['step'] == 6
  np.testing.assert_allclose(model.w.numpy()[:, 0], w_ref, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(model.b.numpy()[0], b_ref, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(result['losses']['mse'], losses_ref[-1], rtol=1e-4)
  assert trainer.current_learning_rate() == pytest.approx(0.1 * 0.5 ** (6 / 2), rel=1e-5)
  assert os.path.exists(os.path.join(str(tmp_path), 'ckpt-6.index'))  # the final save
  has_iterator = any(n.startswith('iterator/') for n, _ in tf.train.list_variables(str(tmp_path / 'ckpt-6')))
  assert has_iterator == (data_checkpoint == 'iterator')


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  rng = np.random.RandomState(2)
  audio = rng.normal(size=(24, 3))
  target = audio.sum(axis=1)
  audio[20:] = np.nan  # batches 0..4 are fine; batch 5 (step 6) is NaN.
  model = LinearModel()
  trainer = trainers.Trainer(model, learning_rate=0.01)
  with pytest.raises(trainers.NonFiniteLossError) as err:
    train_util.train(_ArrayProvider(audio, target), trainer, batch_size=4, num_steps=20, steps_per_summary=0,
                     steps_per_save=2, save_dir=str(tmp_path), progress_bar=False, write_summaries=False)
  message = str(err.value)
  assert 'step 6' in message and 'mse=nan' in message
  assert 'ckpt-4' in message
  latest = tf.train.latest_checkpoint(str(tmp_path))
  assert latest.endswith('ckpt-4')
  names = [n for n, _ in tf.train.list_variables(latest) if n != '_CHECKPOINTABLE_OBJECT_GRAPH']
  assert len(names) > 3
  for name in names:
    assert np.all(np.isfinite(tf.train.load_variable(latest, name))), name
  assert train_util.read_checkpoint_step(latest) == 4


def test_early_stop_saves_and_stops(tmp_path):
  rng = np.random.RandomState(3)
  audio = rng.normal(size=(8, 3))
  target = audio @ np.array([0.5, 0.5, 0.5])  # the initial weights fit exactly: loss 0 < 1e-3 at step 1
  trainer = trainers.Trainer(LinearModel())
  result = train_util.train(_ArrayProvider(audio, target), trainer, batch_size=4, num_steps=50,
                            early_stop_loss_value=1e-3, steps_per_summary=0, steps_per_save=10,
                            save_dir=str(tmp_path), progress_bar=False, write_summaries=False)
  assert result['stopped'] == 'early_stop' and result['step'] == 1
  assert tf.train.latest_checkpoint(str(tmp_path)).endswith('ckpt-1')


def test_bad_arguments_are_reported():
  model = LinearModel()
  with pytest.raises(ValueError, match='learning_rate'):
    trainers.Trainer(model, learning_rate=0.0)
  with pytest.raises(ValueError, match='lr_decay_rate'):
    trainers.Trainer(model, lr_decay_rate=1.5)
  with pytest.raises(ValueError, match='mixed_precision'):
    trainers.Trainer(model, mixed_precision='int8')
  with pytest.raises(ValueError, match='compute_losses'):
    trainers.Trainer(keras.Sequential([keras.layers.Dense(1)]))
  with pytest.raises(ValueError, match='Unknown strategy'):
    train_util.get_strategy('horovod')
  trainer = trainers.Trainer(model)
  provider = _ArrayProvider(np.zeros((8, 3)), np.zeros(8))
  with pytest.raises(ValueError, match='batch_size'):
    train_util.train(provider, trainer, batch_size=0, save_dir='/tmp/unused')


class _VoicingProvider(_ArrayProvider):
  """_ArrayProvider with an `f0_confidence` [B, 2] feature."""

  def __init__(self, audio, target, confidence):
    super().__init__(audio, target)
    self.confidence = confidence.astype(np.float32)

  def get_dataset(self, batch_size, shuffle=True, repeats=-1):
    del shuffle
    ds = tf.data.Dataset.from_tensor_slices({'audio': self.audio, 'target': self.target,
                                             'f0_confidence': self.confidence})
    return ds.repeat(repeats).batch(batch_size, drop_remainder=True)


def test_silent_or_unvoiced_data_is_refused_before_training(tmp_path):
  rng = np.random.RandomState(4)
  loud = rng.normal(size=(16, 3)) * 0.1
  target = loud.sum(axis=1)
  kw = dict(batch_size=4, num_steps=2, steps_per_summary=0, steps_per_save=1, progress_bar=False,
            write_summaries=False)
  # Digital silence, and a -80 dBFS hiss (below the -70 dBFS floor): nothing is written.
  for quiet in (np.zeros((16, 3)), np.full((16, 3), 1e-4)):
    save_dir = str(tmp_path / f'silent{quiet.max()}')
    with pytest.raises(train_util.DataError, match=r'silent: the 16 examples .* peak at -?[0-9.]+ dBFS'):
      train_util.train(_ArrayProvider(quiet, target), trainers.Trainer(LinearModel()), save_dir=save_dir, **kw)
    assert not os.path.exists(save_dir)
  # Sound, but f0 confidence never reaches 0.5 anywhere.
  unvoiced = _VoicingProvider(loud, target, np.full((16, 2), 0.49))
  with pytest.raises(train_util.DataError, match=r'unvoiced: .* no frame has f0 confidence >= 0.5'):
    train_util.train(unvoiced, trainers.Trainer(LinearModel()), save_dir=str(tmp_path / 'u'), **kw)
  assert not os.path.exists(tmp_path / 'u')
  # One voiced frame in the last example is enough; and the check can be turned off.
  confidence = np.zeros((16, 2))
  confidence[15, 1] = 0.9
  peak_db, voiced, examples = train_util.check_training_signal(_VoicingProvider(loud, target, confidence), 4)
  assert examples == 16 and voiced == pytest.approx(1 / 32)
  assert peak_db == pytest.approx(20 * np.log10(np.abs(loud).max()), abs=1e-4)
  result = train_util.train(unvoiced, trainers.Trainer(LinearModel()), save_dir=str(tmp_path / 'off'),
                            check_data=False, **kw)
  assert result['step'] == 2


# --------------------------------------------------------------------------------------------------------------
# The tiny autoencoder.
# --------------------------------------------------------------------------------------------------------------
def test_training_lowers_the_loss_on_a_fixed_batch(tmp_path):
  ddsp_run.parse_gin(TINY_FILES, TINY_PARAMS + ['Trainer.learning_rate = 3e-3'])
  from ddsp.training import models
  keras.utils.set_random_seed(0)
  model = models.get_model()
  provider = ddsp_run.data_provider_from_gin()
  batch = next(iter(provider.get_dataset(8, shuffle=False, repeats=1)))

  def loss_on_fixed_batch():
    return float(tf.add_n(list(model.compute_losses(model(batch, training=False)).values())))

  before = loss_on_fixed_batch()  # builds the model; train() then creates the optimiser and trains it.
  trainer = trainers.Trainer(model)
  result = train_util.train(provider, trainer, batch_size=4, num_steps=40, steps_per_summary=20,
                            steps_per_save=40, save_dir=str(tmp_path), progress_bar=False)
  after = loss_on_fixed_batch()
  assert result['step'] == 40
  assert np.isfinite(after)
  assert after < 0.85 * before, (before, after)
  # Summaries: every loss term, the learning rate, steps/s and examples/s were written at steps 20 and 40.
  from tensorflow.python.summary.summary_iterator import summary_iterator
  tags = {}
  for name in os.listdir(str(tmp_path)):
    if name.startswith('events.out.tfevents'):
      for event in summary_iterator(os.path.join(str(tmp_path), name)):
        for value in event.summary.value:
          tags.setdefault(value.tag, []).append(event.step)
  for tag in ('train/losses/spectral_loss', 'train/losses/total_loss', 'train/learning_rate',
              'train/steps_per_sec', 'train/examples_per_sec', 'train/audio/target', 'train/audio/resynthesis',
              'train/spectrogram/0', 'train/f0_loudness/0'):
    assert tags.get(tag) == [20, 40], (tag, tags.get(tag))


def test_bfloat16_networks_train_with_float32_synthesis(tmp_path):
  ddsp_run.parse_gin(TINY_FILES, TINY_PARAMS)
  from ddsp.training import models
  try:
    assert trainers.set_mixed_precision('bfloat16') == 'mixed_bfloat16'
    model = models.get_model()
  finally:
    trainers.set_mixed_precision(None)
  trainer = trainers.Trainer(model, mixed_precision='bfloat16')
  result = train_util.train(ddsp_run.data_provider_from_gin(), trainer, batch_size=4, num_steps=2,
                            steps_per_summary=0, steps_per_save=10, save_dir=str(tmp_path), progress_bar=False)
  assert model.decoder.rnn.dtype_policy.name == 'mixed_bfloat16'
  assert model.decoder.dense_out.dtype_policy.name == 'mixed_bfloat16'
  assert model.processor_group.dtype_policy.name == 'float32'
  assert all(v.dtype == 'float32' for v in model.trainable_variables)
  assert np.isfinite(result['losses']['total_loss'])
  outputs = trainer.predict(train_util.example_batch(ddsp_run.data_provider_from_gin().get_dataset(4)))
  assert outputs['audio_synth'].dtype == tf.float32
  # float16 adds dynamic loss scaling.
  assert isinstance(trainers.Trainer(model, mixed_precision='float16').optimizer,
                    keras.optimizers.LossScaleOptimizer)


_MIRRORED_SCRIPT = textwrap.dedent('''
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices('CPU')[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import numpy as np
    from ddsp.training import ddsp_run, train_util, trainers
    ddsp_run.parse_gin({files!r}, {params!r})
    from ddsp.training import models

    def run(strategy_name):
      strategy = train_util.get_strategy(strategy_name)
      keras.utils.set_random_seed(0)
      with strategy.scope():
        model = models.get_model()
        trainer = trainers.Trainer(model, strategy, learning_rate=1e-3)
      dataset = ddsp_run.data_provider_from_gin().get_dataset(4, shuffle=False)
      trainer.build(train_util.example_batch(dataset))
      init = np.concatenate([v.numpy().ravel() for v in model.trainable_variables])
      grads = trainer.gradients(iter(trainer.distribute_dataset(dataset)))
      grads = np.concatenate([g.numpy().ravel() for g in grads])
      iterator = iter(trainer.distribute_dataset(dataset))
      losses, norms = [], []
      for _ in range(3):
        step_losses, grad_norm, local = trainer.train_step(iterator)
        losses.append(float(step_losses['total_loss']))
        norms.append(float(grad_norm))
      return dict(replicas=trainer.num_replicas, local_batch=int(local['audio'].shape[0]), losses=losses,
                  norms=norms, grads=grads.tolist(), init=init.tolist())

    print('RESULT ' + json.dumps({{'one': run('default'), 'two': run('mirrored')}}))
''')

# FilteredNoise draws fresh random noise on every replica, which no two runs share; drop it from the graph so
# that one and two replicas compute exactly the same function.
_NO_NOISE = ("ProcessorGroup.dag = [(@synths.Harmonic(), ['amps', 'harmonic_distribution', 'f0_hz']), "
             "(@effects.Reverb(), ['harmonic/signal'])]")
# The log-magnitude term's gradient is 1/|X| in bins just above its 1e-5 floor (the release into silence),
# where float32 rounding of the STFT is ~10 % of |X|: there the reverb IR's gradient differs by ~15 % between
# any two graphs that sum in another order (eager vs tf.function on one device already do). The linear
# magnitude term is well conditioned (one device vs two agree to 1e-6 on every variable), so the check of the
# all-reduce uses it alone.
_LINEAR_MAG_LOSS = 'SpectralLoss.logmag_weight = 0.0'


def test_mirrored_two_cpus_matches_one_device(tmp_path):
  script = tmp_path / 'mirrored.py'
  script.write_text(_MIRRORED_SCRIPT.format(files=TINY_FILES, params=TINY_PARAMS + [_NO_NOISE, _LINEAR_MAG_LOSS]))
  proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=_env())
  lines = [line for line in proc.stdout.splitlines() if line.startswith('RESULT ')]
  assert proc.returncode == 0 and lines, proc.stderr[-3000:]
  result = json.loads(lines[0][len('RESULT '):])
  one, two = result['one'], result['two']
  assert (one['replicas'], one['local_batch']) == (1, 4)
  assert (two['replicas'], two['local_batch']) == (2, 2)  # the global batch of 4 split over two replicas.
  np.testing.assert_array_equal(one['init'], two['init'])
  # The all-reduced gradient is the gradient of the global-batch mean (a missing 1/replicas scaling would
  # double it, a missing all-reduce would give one half-batch's gradient).
  g1, g2 = np.array(one['grads']), np.array(two['grads'])
  assert np.abs(g1).max() > 0
  np.testing.assert_allclose(g2, g1, rtol=0, atol=1e-4 * np.abs(g1).max())
  np.testing.assert_allclose(two['norms'][0], one['norms'][0], rtol=1e-4)
  # Three optimiser steps follow the same loss curve. (Weights are not compared coordinate-wise: Adam
  # normalises every coordinate, so ones whose gradient is ~0 move by up to the learning rate on float noise.)
  np.testing.assert_allclose(two['losses'], one['losses'], rtol=1e-3)
