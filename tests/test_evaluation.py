"""Tests of ddsp.training.evaluation (the paper's Table 1 metrics), ddsp.training.summaries, and --mode=eval|sample.

Metric values are checked against closed forms on known signals: a 6.02 dB gain change reads 6.02 dB of
loudness L1; CREPE on a sine and the same sine shifted by 0.5 / 2 semitones reads an f0 L1 of 0.5 / 2
semitones with no / all frames outlying; silence as output makes every frame an outlier. Summary files are
read back with TensorFlow's event reader and decoded (WAV, PNG) independently of the writer.
"""
import glob
import json
import os

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf
from tensorflow.python.summary.summary_iterator import summary_iterator

from ddsp import spectral_ops
from ddsp.training import ddsp_run
from ddsp.training import evaluation
from ddsp.training import summaries

import helpers

SR, FR = 16000, 250
TINY_FILES = helpers.TINY_FILES
TINY_PARAMS = helpers.tiny_params(n_examples=16, batch_size=4)


def _sine(hz, amplitude=0.5, secs=1.0):
  t = np.arange(int(SR * secs)) / SR
  return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _events(directory):
  out = []
  for path in sorted(glob.glob(os.path.join(directory, 'events.out.tfevents*'))):
    for event in summary_iterator(path):
      for value in event.summary.value:
        out.append((event.step, value))
  return out


# --------------------------------------------------------------------------------------------------------------
# Metric functions.
# --------------------------------------------------------------------------------------------------------------
def test_f0_metrics_against_semitone_arithmetic():
  rng = np.random.RandomState(0)
  f0_in = rng.uniform(100.0, 800.0, size=(3, 50))
  shift = rng.uniform(-3.0, 3.0, size=(3, 50))  # semitones
  f0_out = f0_in * 2.0 ** (shift / 12.0)
  conf_in = rng.uniform(0.0, 1.0, size=(3, 50))
  conf_out = rng.uniform(0.0, 1.0, size=(3, 50))
  m = evaluation.f0_metrics(f0_in, conf_in, f0_out, conf_out)
  voiced = conf_in >= 0.85
  assert m['f0_frames'] == voiced.sum() > 0
  assert m['f0_l1'] == pytest.approx(np.abs(shift[voiced]).mean(), rel=1e-9)
  outlier = (conf_out < 0.85) | (np.abs(shift) > 1.0)
  assert m['f0_outlier_ratio'] == pytest.approx(outlier[voiced].mean(), rel=1e-12)
  # No confident input frame: undefined, reported as NaN rather than 0.
  empty = evaluation.f0_metrics(f0_in, np.zeros_like(conf_in), f0_out, conf_out)
  assert empty['f0_frames'] == 0 and np.isnan(empty['f0_l1']) and np.isnan(empty['f0_outlier_ratio'])
  with pytest.raises(ValueError, match='shape'):
    evaluation.f0_metrics(f0_in, conf_in, f0_out[:, :10], conf_out)


def test_loudness_l1_of_a_6db_gain_change():
  audio = np.stack([_sine(1000.0, 0.25), _sine(300.0, 0.1)])
  metrics = evaluation.ResynthesisMetrics(SR, FR, crepe_model=None)
  metrics.update(audio, 2.0 * audio)
  result = metrics.result()
  assert result['loudness_l1'] == pytest.approx(20.0 * np.log10(2.0), abs=1e-3)  # 6.0206 dB
  assert result['num_examples'] == 2 and 'f0_l1' not in result
  # Identical audio: zero loudness difference and zero spectral loss.
  same = evaluation.ResynthesisMetrics(SR, FR, crepe_model=None)
  same.update(audio, audio)
  assert same.result()['loudness_l1'] == 0.0 and same.result()['spectral_loss'] == pytest.approx(0.0, abs=1e-6)
  # Pooling over batches weights every frame equally.
  pooled = evaluation.ResynthesisMetrics(SR, FR, crepe_model=None)
  pooled.update(audio[:1], 2.0 * audio[:1])
  pooled.update(audio[1:], audio[1:])
  assert pooled.result()['loudness_l1'] == pytest.approx(20.0 * np.log10(2.0) / 2.0, abs=1e-3)


def test_crepe_f0_metrics_on_shifted_sines():
  base = _sine(440.0)  # CREPE tiny reads a 440 Hz sine with confidence ~0.93 (> 0.85) away from the edges.
  signals = [base, _sine(440.0 * 2 ** (0.5 / 12)), _sine(440.0 * 2 ** (2.0 / 12)), np.zeros_like(base)]
  f0, conf = evaluation.compute_f0(np.stack(signals), SR, FR, 'tiny', crepe_frame_rate=100)
  assert f0.shape == conf.shape == (4, FR)
  half = evaluation.f0_metrics(f0[:1], conf[:1], f0[1:2], conf[1:2])
  two = evaluation.f0_metrics(f0[:1], conf[:1], f0[2:3], conf[2:3])
  silent = evaluation.f0_metrics(f0[:1], conf[:1], f0[3:4], conf[3:4])
  assert half['f0_frames'] > 0.8 * FR  # a steady sine is confidently pitched nearly everywhere
  assert half['f0_l1'] == pytest.approx(0.5, abs=0.1)
  assert half['f0_outlier_ratio'] < 0.05
  assert two['f0_l1'] == pytest.approx(2.0, abs=0.1)
  assert two['f0_outlier_ratio'] > 0.95
  assert silent['f0_outlier_ratio'] == 1.0


# --------------------------------------------------------------------------------------------------------------
# Summaries.
# --------------------------------------------------------------------------------------------------------------
def test_summaries_read_back(tmp_path):
  audio = np.stack([_sine(440.0, 0.5, 0.25), _sine(220.0, 0.25, 0.25)])
  writer = tf.summary.create_file_writer(str(tmp_path))
  with writer.as_default():
    summaries.scalars({'a': 1.5, 'b': -2.0}, step=7, prefix='x/')
    summaries.audio('clip', audio, SR, step=7)
    fig = summaries.spectrogram_figure([audio[0], audio[1]], SR, ['one', 'two'])
    summaries.figure('spec', fig, step=7)
  writer.flush()
  by_tag = {v.tag: (step, v) for step, v in _events(str(tmp_path))}
  assert by_tag['x/a'][0] == 7 and tf.make_ndarray(by_tag['x/a'][1].tensor) == pytest.approx(1.5)
  assert by_tag['x/b'][1].metadata.plugin_data.plugin_name == 'scalars'
  clips = tf.make_ndarray(by_tag['clip'][1].tensor)
  assert clips.shape == (2, 2) and by_tag['clip'][1].metadata.plugin_data.plugin_name == 'audio'
  for encoded, want in zip(clips[:, 0], audio):
    decoded, rate = tf.audio.decode_wav(encoded)
    assert int(rate) == SR
    np.testing.assert_allclose(decoded.numpy()[:, 0], want, atol=1.0 / 32767 + 1e-6)
  image = tf.make_ndarray(by_tag['spec'][1].tensor)
  width, height = int(image[0]), int(image[1])
  png = tf.io.decode_png(image[2]).numpy()
  assert png.shape[:2] == (height, width) and png.std() > 10  # a real picture, not a blank canvas


# --------------------------------------------------------------------------------------------------------------
# evaluate / sample through ddsp_run on a briefly trained tiny model.
# --------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def trained_dir(tmp_path_factory):
  return helpers.train_tiny(str(tmp_path_factory.mktemp('eval') / 'run'), TINY_PARAMS)


def test_eval_mode_writes_results_matching_an_independent_computation(trained_dir):
  params = ['evaluate.batch_size = 2', 'evaluate.num_batches = 1', 'evaluate.crepe_frame_rate = 100']
  results = ddsp_run.run('eval', trained_dir, gin_files=['eval/basic.gin'], gin_params=params, eval_once=True)
  assert len(results) == 1 and results[0]['step'] == 2
  with open(os.path.join(trained_dir, 'eval_results.json')) as f:
    saved = json.load(f)
  latest = saved['latest']
  assert latest['step'] == 2 and latest['num_examples'] == 2 and latest['crepe_model'] == 'tiny'
  for key in ('loudness_l1', 'f0_l1', 'f0_outlier_ratio', 'spectral_loss', 'model_spectral_loss'):
    assert np.isfinite(latest[key]), key
  assert 0.0 <= latest['f0_outlier_ratio'] <= 1.0

  # Independent recomputation of the loudness L1 on the same two examples (first batch, data order).
  from ddsp.training import models
  ddsp_run.parse_gin(restore_dirs=[trained_dir])
  model = models.get_model()
  batch = next(iter(ddsp_run.data_provider_from_gin().get_dataset(2, shuffle=False, repeats=1)))
  model(batch)
  tf.train.Checkpoint(model=model).read(tf.train.latest_checkpoint(trained_dir)).expect_partial()
  audio_gen = model(batch, training=False)['audio_synth'].numpy()
  ld_in = spectral_ops.compute_loudness(batch['audio'].numpy())
  ld_out = spectral_ops.compute_loudness(audio_gen)
  assert latest['loudness_l1'] == pytest.approx(np.mean(np.abs(ld_in - ld_out)), rel=1e-4)

  scalars = {v.tag: tf.make_ndarray(v.tensor) for _, v in _events(os.path.join(trained_dir, 'eval'))}
  assert scalars['eval/loudness_l1'] == pytest.approx(latest['loudness_l1'], rel=1e-6)
  assert 'eval/f0_l1' in scalars and 'eval/spectral_loss' in scalars

  # Continuous mode stops once a checkpoint reaches max_step instead of waiting for more.
  more = evaluation.evaluate(data_provider=ddsp_run.data_provider_from_gin(), model=model, save_dir=trained_dir,
                             batch_size=2, num_batches=1, mode='continuous', crepe_model=None, max_step=2,
                             timeout_secs=5)
  assert [r['step'] for r in more] == [2]
  with open(os.path.join(trained_dir, 'eval_results.json')) as f:
    assert [h['step'] for h in json.load(f)['history']] == [2]  # the same step is replaced, not duplicated

  # A batch larger than the data still evaluates every example once (the last, partial batch is kept).
  whole = evaluation.evaluate_checkpoint(ddsp_run.data_provider_from_gin(), model, trained_dir, batch_size=32,
                                         num_batches=None, crepe_model=None)
  assert whole['num_examples'] == 16


def test_sample_mode_writes_wavs_and_pngs(trained_dir):
  out = ddsp_run.run('sample', trained_dir, gin_params=['sample.num_examples = 2', 'sample.batch_size = 2',
                                                        'sample.crepe_model = None'])
  assert out['step'] == 2 and len(out['files']) == 8
  batch = next(iter(ddsp_run.data_provider_from_gin().get_dataset(2, shuffle=False, repeats=1)))
  for i in range(2):
    target, rate = sf.read(os.path.join(out['output_dir'], f'example_{i}_target.wav'), dtype='float32')
    assert rate == SR
    np.testing.assert_allclose(target, batch['audio'][i].numpy(), atol=1.0 / 32767 + 1e-6)
    resynth, _ = sf.read(os.path.join(out['output_dir'], f'example_{i}_resynthesis.wav'), dtype='float32')
    assert resynth.shape == target.shape and np.abs(resynth).max() > 0
    for kind in ('spectrogram', 'f0_loudness'):
      with open(os.path.join(out['output_dir'], f'example_{i}_{kind}.png'), 'rb') as f:
        png = tf.io.decode_png(f.read()).numpy()
      assert png.ndim == 3 and png.shape[0] > 100 and png.shape[1] > 100
  assert not [n for n in os.listdir(out['output_dir']) if '.tmp-' in n]  # atomic writes left no temp files


# ------------------------------------------------------------------------------------------------------------
# Level and inter-partial noise floor (closed forms).
# ------------------------------------------------------------------------------------------------------------
def test_rms_db_of_a_full_scale_sine_and_of_half_amplitude():
  t = np.arange(16000) / 16000.0
  sine = np.sin(2 * np.pi * 1000.0 * t)
  assert evaluation.rms_db(sine) == pytest.approx(-3.0103, abs=1e-3)
  assert evaluation.rms_db(0.5 * sine) == pytest.approx(-3.0103 - 6.0206, abs=1e-3)


@pytest.mark.parametrize('f0', [196.0, 330.0])
def test_interpartial_floor_reads_the_added_noise_variance_not_the_partials(f0):
  rng = np.random.default_rng(0)
  sr, fr, n = 16000, 250, 32000
  t = np.arange(n) / sr
  partials = sum((0.2 / k) * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 30) if k * f0 < sr / 2)
  f0_curve = np.full(n // 64, f0)
  sigma = 1e-3  # white noise at -60 dB per sample
  noisy = partials + sigma * rng.standard_normal(n)
  assert evaluation.interpartial_floor_db(noisy, f0_curve, sr, fr) == pytest.approx(-60.0, abs=0.7)
  # Without the noise, only the window's side lobes remain between the partials: far below.
  assert evaluation.interpartial_floor_db(partials, f0_curve, sr, fr) < -85.0
  # Unvoiced frames (f0 = 0) and a mask that excludes everything give NaN.
  assert np.isnan(evaluation.interpartial_floor_db(noisy, np.zeros_like(f0_curve), sr, fr))
  assert np.isnan(evaluation.interpartial_floor_db(noisy, f0_curve, sr, fr, voiced=np.zeros(len(f0_curve), bool)))
