"""Experiments at 48 kHz / 50 frames/s and 32 kHz, end to end: `ddsp_prepare_tfrecord`'s pipeline writes
matching records (CREPE runs at 16 kHz inside, loudness at the target rate), the real-time recipes train on them
for a few steps and restore, and data at other rates than the model's is refused with both rates named.

References are closed forms: the source is a 1 kHz sine (A-weighting 0 dB there) whose amplitude steps from 0.5
to 0.125, so its loudness reads 20 log10(a) dB and its f0 1000 Hz; the 48 kHz bundled phrase must carry energy
above 8 kHz (what a 16 kHz file cannot).
"""
import glob
import os

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from ddsp import bundled
from ddsp.data_prep import pipeline
from ddsp.training import experiment

IN_MEMORY = ['--runner=DirectRunner', '--direct_running_mode=in_memory', '--direct_num_workers=1']
SOURCE_RATE = 44100
SECONDS = 4.0
# A small real-time model: the recipe's structure and rates, tiny sizes, 2 s windows.
SMALL = ['example_secs = 2', 'RnnFcDecoder.rnn_channels = 16', 'batch_size = 2',
         'TFRecordProvider.shuffle_buffer_size = 4']


def _source(path):
  t = np.arange(int(SECONDS * SOURCE_RATE)) / SOURCE_RATE
  amp = np.where(t < SECONDS / 2, 0.5, 0.125)
  sf.write(path, (amp * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32), SOURCE_RATE, subtype='FLOAT')


def _prepare(root, sample_rate, frame_rate):
  _source(str(root / 'tone.wav'))
  config = pipeline.PrepareConfig(sample_rate=sample_rate, frame_rate=frame_rate, example_secs=2.0,
                                  hop_secs=1.0)
  prefix = str(root / f'data_{sample_rate}' / 'train.tfrecord')
  report = pipeline.prepare([str(root / 'tone.wav')], prefix, config, num_shards=1, pipeline_args=IN_MEMORY)
  assert report['examples_written']['train'] == 3
  return prefix


def _records(prefix):
  out = []
  for path in sorted(glob.glob(prefix + '-*')):
    for raw in tf.data.TFRecordDataset(path):
      f = tf.train.Example.FromString(raw.numpy()).features.feature
      out.append({k: np.asarray(v.float_list.value or v.int64_list.value) for k, v in f.items()
                  if k != 'source_id'})
  return sorted(out, key=lambda r: int(r['start_sample'][0]))


@pytest.fixture(scope='module')
def data_48k(tmp_path_factory):
  return _prepare(tmp_path_factory.mktemp('rates48'), 48000, 50)


def test_prepare_at_48k_50_frames(data_48k):
  records = _records(data_48k)
  for i, r in enumerate(records):
    assert int(r['sample_rate'][0]) == 48000 and int(r['frame_rate'][0]) == 50
    assert r['audio'].shape == (96000,) and r['f0_hz'].shape == (100,) and r['loudness_db'].shape == (100,)
    assert int(r['start_sample'][0]) == i * 48000
  # The audio is the source resampled to 48 kHz: a 1 kHz sine of amplitude 0.5 in the first window.
  first = records[0]['audio']
  t = np.arange(96000) / 48000.0
  phase = np.angle(np.sum(first[4800:91200] * np.exp(-2j * np.pi * 1000.0 * t[4800:91200])))
  np.testing.assert_allclose(first[4800:91200], 0.5 * np.cos(2 * np.pi * 1000.0 * t[4800:91200] + phase),
                             atol=2e-3)
  # Loudness at 48 kHz, 50 frames/s (frame t centred on sample 960 t): 20 log10(a) dB away from the step.
  ld = np.concatenate([records[0]['loudness_db'], records[2]['loudness_db']])  # seconds 0-2 and 2-4
  np.testing.assert_allclose(ld[5:95], 20 * np.log10(0.5), atol=0.05)
  np.testing.assert_allclose(ld[105:195], 20 * np.log10(0.125), atol=0.05)
  # f0 from CREPE (at 16 kHz inside), interpolated to 50 frames/s: 1000 Hz within 15 cents, confident.
  f0, conf = records[0]['f0_hz'][5:95], records[0]['f0_confidence'][5:95]
  assert np.all(conf > 0.8)
  assert np.max(np.abs(1200 * np.log2(f0 / 1000.0))) < 15


def test_prepare_at_32k(tmp_path):
  records = _records(_prepare(tmp_path, 32000, 50))
  assert {(int(r['sample_rate'][0]), int(r['frame_rate'][0])) for r in records} == {(32000, 50)}
  assert records[0]['audio'].shape == (64000,) and records[0]['f0_hz'].shape == (100,)
  np.testing.assert_allclose(records[0]['loudness_db'][5:95], 20 * np.log10(0.5), atol=0.05)


def _train(save_dir, model_file, prefix, extra=(), steps=3):
  params = SMALL + [f"TFRecordProvider.file_pattern = '{prefix}-*'"] + list(extra)
  return experiment.run('train', save_dir, gin_files=[model_file, 'datasets/tfrecord.gin', 'optimization/base.gin'],
                        gin_params=params, num_steps=steps, steps_per_summary=0, progress_bar=False)


def test_realtime_48k_trains_on_48k_data_and_restores(data_48k, tmp_path):
  save_dir = str(tmp_path / 'model48')
  result = _train(save_dir, 'models/realtime/realtime_48k.gin', data_48k,
                  ['SpectralLoss.fft_sizes = (1536, 384)'])
  assert result['step'] == 3 and result['checkpoint']
  assert result['losses'] and all(np.isfinite(float(v)) for v in result['losses'].values())
  from ddsp.training import inference
  model = inference.load_model(save_dir)
  assert (model.sample_rate, model.frame_rate, model.hop) == (48000, 50, 960)
  audio = model.model(model.model.example_features(), training=False)['audio_synth']
  assert audio.shape == (1, 96000) and np.all(np.isfinite(audio.numpy()))


def test_realtime_32k_trains(tmp_path):
  prefix = _prepare(tmp_path, 32000, 50)
  result = _train(str(tmp_path / 'model32'), 'models/realtime/realtime_32k.gin', prefix,
                  ['SpectralLoss.fft_sizes = (1024, 256)'], steps=2)
  assert result['step'] == 2


def test_data_at_other_rates_than_the_model_is_refused_naming_both(data_48k, tmp_path):
  save_dir = str(tmp_path / 'refused')
  with pytest.raises(ValueError, match='sample_rate=48000.*sample_rate=16000'):
    _train(save_dir, 'models/realtime/realtime_16k.gin', data_48k, steps=1)
  with pytest.raises(ValueError, match='frame_rate=50.*frame_rate=250'):  # 48 kHz but the paper's 250 frames/s
    _train(save_dir, 'models/tiny.gin', data_48k, ['sample_rate = 48000'], steps=1)
  assert not os.path.exists(os.path.join(save_dir, 'checkpoint'))


def test_bundled_48k_phrases_are_full_band():
  for name, (low, high) in (('violin_phrase_48k.flac', (25.0, 35.0)), ('violin_phrase_eval_48k.flac', (7.0, 12.0))):
    info = sf.info(bundled.asset_path(name))
    assert (info.samplerate, info.channels, info.subtype) == (48000, 1, 'PCM_16')
    assert low <= info.duration <= high, name
    audio, _ = sf.read(bundled.asset_path(name), dtype='float64')
    power = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(audio.size, 1.0 / 48000)
    above_8k = power[freqs > 8000].sum() / power.sum()
    assert above_8k > 10 ** (-40 / 10), (name, above_8k)  # more than -40 dB of the energy above 8 kHz


def test_realtime_model_streams_block_by_block_as_offline():
  """StreamingModel runs the 48 kHz real-time model from f0 and loudness frames; fed the loudness the model's
  own preprocessor computes from the audio, it equals the offline model run on that audio (same noise)."""
  from ddsp.training import ddsp_run
  from ddsp.training import models
  from ddsp.training import streaming
  ddsp_run.parse_gin(['models/realtime/realtime_48k.gin'], ['example_secs = 2', 'FilteredNoise.seed = 7',
                                                            'RnnFcDecoder.rnn_channels = 16'])
  model = models.get_model()
  t = np.arange(96000) / 48000.0
  f0 = 220.0 * 2.0 ** (0.5 * np.sin(2 * np.pi * 0.5 * t))
  audio = (0.4 * np.sin(2 * np.pi * np.cumsum(f0) / 48000.0) * np.minimum(1.0, 4 * t)).astype(np.float32)[None]
  f0_frames = f0[::960][None].astype(np.float32)
  features = {'audio': tf.constant(audio), 'f0_hz': tf.constant(f0_frames)}
  model(features)
  bias = model.decoder.dense_out.bias.numpy()
  bias[0] += 3.0  # audible harmonic and noise parts
  bias[-65:] += 4.0
  model.decoder.dense_out.bias.assign(bias)
  offline = model(features, training=False)  # loudness computed from the audio inside the model
  loudness = model.preprocessor.compute_loudness(audio).numpy()
  np.testing.assert_allclose(offline['loudness_db'].numpy()[..., 0], loudness, atol=1e-5)
  streamer = streaming.StreamingModel(model, block_size=4 * 960)
  assert (streamer.hop, streamer.latency) == (960, 2 * 960)  # 20 ms frames, 40 ms of synthesis latency
  out = streamer.process(f0_frames, loudness, noise=streaming.offline_noise(model, 1)).numpy()
  ref = offline['audio_synth'].numpy()
  assert np.max(np.abs(ref)) > 0.1
  np.testing.assert_allclose(out, ref, atol=1e-3 * np.max(np.abs(ref)))
