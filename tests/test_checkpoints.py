"""Save -> restore -> the same model, on every restore path.

The reference for "the trained model" is independent of the model's own checkpoint tracking: the optimiser's
list of the variables it updated, read back from the checkpoint file as raw tensors (`tf.train.load_variable`)
and assigned by position. Every consumer (resumed training, evaluation/sampling, inference/transfer, export)
must restore exactly those values and therefore compute exactly the same loss on the same batch.
"""
import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from ddsp.training import checkpoints
from ddsp.training import ddsp_run
from ddsp.training import evaluation
from ddsp.training import export_lib
from ddsp.training import inference
from ddsp.training import models
from ddsp.training import trainers

TRAIN_FILES = ['models/tiny.gin', 'datasets/synthetic.gin', 'optimization/base.gin']
TRAIN_PARAMS = [
    'n_samples = 16000', 'time_steps = 250', 'SyntheticProvider.example_secs = 1',
    'SyntheticProvider.n_examples = 4', 'RnnFcDecoder.rnn_channels = 16', 'Reverb.reverb_length = 800',
    'SpectralLoss.fft_sizes = (512, 128)', 'batch_size = 2', 'FilteredNoise.seed = 0',
    # A large step moves every variable, the learned impulse response included, far from its initial value.
    'Trainer.learning_rate = 0.01',
]
GIN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'gin')
SMALL_GEOMETRY = ['n_samples = 4000', 'time_steps = 250', 'Reverb.reverb_length = 400',
                  'RnnFcDecoder.rnn_channels = 8', 'RnnFcDecoder.ch = 8', 'RnnFcDecoder.layers_per_stack = 2']


def _batch(n_samples=16000, n_frames=250):
  t = np.arange(n_samples) / 16000.0
  f0 = np.linspace(200.0, 400.0, n_frames).astype(np.float32)
  phase = 2 * np.pi * np.cumsum(np.interp(np.arange(n_samples), np.linspace(0, n_samples, n_frames), f0)) / 16000
  audio = (0.3 * np.sin(phase) * np.minimum(1.0, 10 * t)).astype(np.float32)
  return {'audio': tf.constant(audio[None]), 'f0_hz': tf.constant(f0[None]),
          'f0_confidence': tf.ones([1, n_frames]), 'loudness_db': tf.fill([1, n_frames], -25.0)}


def _loss(model, batch):
  return float(model.total_loss(model(batch, training=False)))


def _assert_same_variables(restored, reference):
  assert len(restored) == len(reference)
  for v, ref in zip(restored, reference):
    np.testing.assert_array_equal(v.numpy(), ref, err_msg=v.path)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  save_dir = str(tmp_path_factory.mktemp('ckpt') / 'run')
  ddsp_run.run('train', save_dir, gin_files=TRAIN_FILES, gin_params=TRAIN_PARAMS, num_steps=3,
               steps_per_summary=0, progress_bar=False)
  path = checkpoints.latest_checkpoint(save_dir)
  saved = sorted((int(name.split('/')[2]), name) for name, _ in tf.train.list_variables(path)
                 if name.startswith('optimizer/_trainable_variables/'))
  raw = [tf.train.load_variable(path, name) for _, name in saved]
  return save_dir, path, raw


def _fresh_model(save_dir):
  ddsp_run.parse_gin(restore_dirs=[save_dir])
  model = models.get_model()
  batch = _batch()
  model(batch, training=False)
  return model, batch


def _reference_loss(save_dir, raw):
  model, batch = _fresh_model(save_dir)
  for v, value in zip(model.trainable_variables, raw):
    v.assign(value)
  return _loss(model, batch)


def test_training_moved_the_impulse_response(trained):
  _, _, raw = trained
  ir = [r for r in raw if r.shape == (800,)]
  assert len(ir) == 1
  # Initial IR: normal with stddev 1e-6. After three steps of lr 0.01 it is a real room response.
  assert np.max(np.abs(ir[0])) > 1e-3


def test_inference_and_export_restore_the_trained_model(trained):
  save_dir, path, raw = trained
  reference = _reference_loss(save_dir, raw)
  loaded = inference.load_model(save_dir)
  assert loaded.checkpoint == path and loaded.step == 3
  _assert_same_variables(loaded.model.trainable_variables, raw)
  assert _loss(loaded.model, _batch()) == pytest.approx(reference, rel=1e-6)
  exported = export_lib.load_model(save_dir)
  _assert_same_variables(exported.trainable_variables, raw)
  assert _loss(exported, _batch()) == pytest.approx(reference, rel=1e-6)


def test_evaluation_restores_the_trained_model(trained):
  save_dir, path, raw = trained
  reference = _reference_loss(save_dir, raw)
  model, batch = _fresh_model(save_dir)
  restored_path, step = evaluation.restore_model(model, save_dir)
  assert (restored_path, step) == (path, 3)
  _assert_same_variables(model.trainable_variables, raw)
  assert _loss(model, batch) == pytest.approx(reference, rel=1e-6)


def test_resumed_trainer_restores_model_and_optimizer(trained):
  save_dir, _, raw = trained
  reference = _reference_loss(save_dir, raw)
  model, batch = _fresh_model(save_dir)
  trainer = trainers.Trainer(model)
  trainer.build(batch)
  trainer.make_checkpoint(save_dir)
  assert trainer.restore(save_dir) == 3
  _assert_same_variables(model.trainable_variables, raw)
  assert _loss(model, batch) == pytest.approx(reference, rel=1e-6)


def test_checkpoint_without_model_graph_restores_through_the_optimizer_list(trained, tmp_path):
  """Checkpoints from before every layer list was tracked reach variables only through the optimiser."""
  save_dir, _, raw = trained
  model, batch = _fresh_model(save_dir)
  trainer = trainers.Trainer(model)
  trainer.build(batch)
  for v, value in zip(model.trainable_variables, raw):
    v.assign(value)
  legacy = tf.train.Checkpoint(optimizer=trainer.optimizer).write(str(tmp_path / 'ckpt-7'))
  assert not any(name.startswith('model/') for name, _ in tf.train.list_variables(legacy))
  fresh, batch = _fresh_model(save_dir)
  checkpoints.restore_weights(fresh, legacy)
  _assert_same_variables(fresh.trainable_variables, raw)


def test_checkpoint_of_another_model_is_refused(trained):
  save_dir, path, _ = trained
  ddsp_run.parse_gin(restore_dirs=[save_dir], gin_params=['RnnFcDecoder.rnn_channels = 12'])
  model = models.get_model()
  model(_batch(), training=False)
  with pytest.raises(checkpoints.IncompatibleCheckpointError, match='ckpt-3'):
    checkpoints.restore_weights(model, path)


def _model_gin_files():
  return sorted(os.path.relpath(p, GIN_DIR) for p in glob.glob(os.path.join(GIN_DIR, 'models', '**', '*.gin'),
                                                               recursive=True))


@pytest.mark.parametrize('gin_file', _model_gin_files())
def test_every_model_variable_is_reachable_from_the_model_in_a_checkpoint(gin_file, tmp_path):
  """A checkpoint of the model alone holds all of its variables (none only reachable via the optimiser)."""
  ddsp_run.parse_gin(gin_files=[gin_file], gin_params=SMALL_GEOMETRY)
  model = models.get_model()
  model(_batch(4000, 250), training=False)
  path = tf.train.Checkpoint(model=model).write(str(tmp_path / 'model'))
  saved = [name for name, _ in tf.train.list_variables(path) if name.endswith('.ATTRIBUTES/VARIABLE_VALUE')]
  # Random-number generator states (keras.random.SeedGenerator, e.g. of a GRU's dropout) need no restore.
  unique = {id(v): v for v in model.variables if 'seed_generator' not in v.path}
  assert len(saved) == len(unique), sorted(v.path for v in unique.values())
