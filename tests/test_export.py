"""Tests of `ddsp_export` (`ddsp.training.export`): SavedModel and TFLite, offline and streaming.

A tiny model (1 s examples, a 16-unit GRU, an 800-tap reverb) is trained for 2 steps by `ddsp_run` once per
module. References: the restored Keras model (offline, its noise seeded like the export's) and the Keras
`StreamingModel` (streaming; the same seeded noise table as the export).
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from ddsp.training import ddsp_run
from ddsp.training import export_lib
from ddsp.training import streaming

TINY_FILES = ['models/tiny.gin', 'datasets/synthetic.gin', 'optimization/base.gin']
TINY_PARAMS = [
    'n_samples = 16000', 'time_steps = 250', 'SyntheticProvider.example_secs = 1',
    'SyntheticProvider.n_examples = 8', 'RnnFcDecoder.rnn_channels = 16', 'Reverb.reverb_length = 800',
    'SpectralLoss.fft_sizes = (512, 128)', 'batch_size = 2',
]
N_FRAMES = 250


@pytest.fixture(scope='module')
def save_dir(tmp_path_factory):
  directory = str(tmp_path_factory.mktemp('export') / 'run')
  ddsp_run.run('train', directory, gin_files=TINY_FILES, gin_params=TINY_PARAMS, num_steps=2, progress_bar=False)
  return directory


@pytest.fixture(scope='module')
def model(save_dir):
  restored = export_lib.load_model(save_dir)
  streaming.set_noise_seed(restored, 0)
  return restored


def _controls():
  rng = np.random.default_rng(0)
  f0 = 300.0 * 2.0 ** np.cumsum(rng.normal(0.0, 0.01, (1, N_FRAMES)), axis=1)
  f0[:, 100:120] = 0.0
  ld = -30.0 + 10.0 * np.sin(np.arange(N_FRAMES)[np.newaxis] / 20.0)
  return f0.astype(np.float32), ld.astype(np.float32)


def _keras_offline(model, f0, ld):
  return model({'f0_hz': f0, 'loudness_db': ld})['audio_synth'].numpy()


def _keras_stream(model, f0, ld, block_size=256):
  streamer = streaming.StreamingModel(model, block_size, noise_seed=0)
  state = streamer.initial_state(1)
  outs = []
  frames = streamer.block_frames
  for start in range(0, N_FRAMES - frames + 1, frames):
    audio, state = streamer.step(f0[:, start:start + frames], ld[:, start:start + frames], state)
    outs.append(audio.numpy())
  return np.concatenate(outs, axis=1), streamer


def _run_stream(call, f0, ld, state, frames):
  outs = []
  for start in range(0, N_FRAMES - frames + 1, frames):
    result = dict(call(f0[:, start:start + frames], ld[:, start:start + frames], state))
    outs.append(np.asarray(result.pop('audio')))
    state = result
  return np.concatenate(outs, axis=1)


def test_saved_model_offline_and_streaming_match_keras(model, save_dir, tmp_path):
  f0, ld = _controls()
  ref = _keras_offline(model, f0, ld)
  assert np.sqrt(np.mean(ref ** 2)) > 1e-3
  out = str(tmp_path / 'offline')
  meta = export_lib.export(save_dir, out, 'saved_model')
  assert meta['frames'] == N_FRAMES and os.path.exists(os.path.join(out, 'ddsp_export.json'))
  serve = tf.saved_model.load(out).signatures['serving_default']
  audio = serve(f0_hz=tf.constant(f0), loudness_db=tf.constant(ld))['audio'].numpy()
  np.testing.assert_allclose(audio, ref, atol=1e-4, rtol=0)

  ref_stream, streamer = _keras_stream(model, f0, ld)
  out = str(tmp_path / 'stream')
  meta = export_lib.export(save_dir, out, 'saved_model', streaming=True, block_size=256)
  assert meta['latency'] == streamer.latency and meta['block_frames'] == 4
  serve = tf.saved_model.load(out).signatures['serving_default']
  state = {k: tf.zeros([1 if d is None else d for d in v['shape']], v['dtype']) for k, v in meta['state'].items()}
  audio = _run_stream(lambda a, b, s: serve(f0_hz=tf.constant(a), loudness_db=tf.constant(b), **s), f0, ld,
                      state, 4)
  np.testing.assert_allclose(audio, ref_stream, atol=1e-4, rtol=0)
  # ... and the stream is the offline audio, delayed by the latency.
  np.testing.assert_allclose(audio[:, :streamer.latency], 0.0, atol=1e-6)


@pytest.mark.filterwarnings('ignore:.*tf.lite.Interpreter is deprecated')
def test_tflite_offline_and_streaming_match_keras(model, save_dir, tmp_path):
  f0, ld = _controls()
  ref = _keras_offline(model, f0, ld)
  out = str(tmp_path / 'offline.tflite')
  export_lib.export(save_dir, out, 'tflite')
  assert os.path.exists(out + '.json')
  runner = tf.lite.Interpreter(out).get_signature_runner()
  audio = runner(f0_hz=f0, loudness_db=ld)['audio']
  np.testing.assert_allclose(audio, ref, atol=1e-3, rtol=0)

  ref_stream, _ = _keras_stream(model, f0, ld, block_size=640)
  out = str(tmp_path / 'stream.tflite')
  meta = export_lib.export(save_dir, out, 'tflite', streaming=True, block_size=640)
  runner = tf.lite.Interpreter(out).get_signature_runner()
  state = {k: np.zeros(v['shape'], v['dtype']) for k, v in meta['state'].items()}
  audio = _run_stream(lambda a, b, s: runner(f0_hz=a, loudness_db=b, **s), f0, ld, state, 10)
  np.testing.assert_allclose(audio, ref_stream, atol=1e-3, rtol=0)


def test_clear_errors_and_nothing_written(save_dir, tmp_path):
  out = str(tmp_path / 'never')
  empty = tmp_path / 'empty'
  empty.mkdir()
  with pytest.raises(export_lib.ExportError, match='(?i)no operative_config'):
    export_lib.export(str(empty), out)
  with pytest.raises(export_lib.ExportError, match='not a folder'):
    export_lib.export(str(tmp_path / 'missing'), out)
  no_ckpt = tmp_path / 'no_ckpt'
  no_ckpt.mkdir()
  for name in os.listdir(save_dir):
    if name.startswith('operative_config-'):
      shutil.copy(os.path.join(save_dir, name), no_ckpt / name)
  with pytest.raises(export_lib.ExportError, match='No checkpoint'):
    export_lib.export(str(no_ckpt), out)
  with pytest.raises(export_lib.ExportError, match='not a multiple of the hop'):
    export_lib.export(save_dir, out, 'saved_model', streaming=True, block_size=100)
  with pytest.raises(export_lib.ExportError, match='format'):
    export_lib.export(save_dir, out, 'onnx')
  assert not os.path.exists(out)
  assert not [n for n in os.listdir(tmp_path) if n.startswith('.never')]  # no temporary left behind


def test_cli_reports_errors(tmp_path):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  result = subprocess.run([sys.executable, '-m', 'ddsp.training.export', f'--save_dir={tmp_path}',
                           f'--output={tmp_path / "out"}'], capture_output=True, text=True, env=env, timeout=120,
                          check=False)
  assert result.returncode == 1
  assert 'ddsp_export: error:' in result.stderr and 'operative_config' in result.stderr


@pytest.mark.filterwarnings('ignore:.*tf.lite.Interpreter is deprecated')
def test_tflite_live_audio_to_audio_matches_keras(model, save_dir, tmp_path):
  """`--streaming --with_features`: the TFLite step over a bundled clip, block by block, equals the Keras
  LiveModel (audio and the features it computed)."""
  import soundfile as sf
  from ddsp import bundled
  from ddsp.training import live
  clip, rate = sf.read(bundled.asset_path('voice_like_phrase.flac'), dtype='float32')
  assert rate == 16000
  clip = clip[:256 * 62]
  out = str(tmp_path / 'live.tflite')
  meta = export_lib.export(save_dir, out, 'tflite', streaming=True, block_size=256, with_features=True)
  player = live.LiveModel(model, 256, noise_seed=0)
  assert meta['with_features'] and meta['latency'] == player.latency == 18 * 64
  assert meta['total_latency'] == 256 + 18 * 64 and meta['lookahead_samples'] == {'loudness': 1024, 'f0': 512}
  assert (meta['f0_delay_frames'], meta['synth_latency_frames'], meta['adapter_latency']) == (0, 2, 0)
  with open(out + '.json', encoding='utf-8') as f:
    assert json.load(f)['state'] == meta['state']
  runner = tf.lite.Interpreter(out).get_signature_runner()
  state_tfl = {k: np.zeros(v['shape'], v['dtype']) for k, v in meta['state'].items()}
  state_keras = player.initial_state(1)
  outs_tfl, outs_keras, f0_tfl, f0_keras = [], [], [], []
  for block in clip.reshape(-1, 256):
    result = dict(runner(audio=block[np.newaxis], **state_tfl))
    outs_tfl.append(result.pop('audio'))
    f0_tfl.append(result.pop('f0_hz'))
    for key in ('f0_confidence', 'loudness_db'):
      result.pop(key)
    state_tfl = result
    y, state_keras, feats = player.step_with_features(block[np.newaxis], state_keras)
    outs_keras.append(y.numpy())
    f0_keras.append(feats['f0_hz'].numpy())
  ref = np.concatenate(outs_keras, axis=1)
  assert np.sqrt(np.mean(ref[:, player.latency:] ** 2)) > 1e-4
  np.testing.assert_allclose(np.concatenate(f0_tfl, axis=1), np.concatenate(f0_keras, axis=1), rtol=1e-4)
  np.testing.assert_allclose(np.concatenate(outs_tfl, axis=1), ref, atol=1e-3, rtol=0)

  # ddsp_stream --tflite's player: the same file through the exported step, aligned with the input (the stated
  # latency removed), equals the Keras path shifted by the same latency.
  from ddsp.training import live_tflite
  aligned = live_tflite.TfliteLivePlayer(out).process(clip)
  assert aligned.shape == clip.shape
  np.testing.assert_allclose(aligned[:ref.shape[1] - player.latency], ref[0, player.latency:], atol=1e-3, rtol=0)
  with pytest.raises(ValueError, match='not a live audio -> audio export'):
    offline = str(tmp_path / 'offline_only.tflite')
    export_lib.export(save_dir, offline, 'tflite')
    live_tflite.TfliteLivePlayer(offline)


@pytest.mark.filterwarnings('ignore:.*tf.lite.Interpreter is deprecated')
def test_tflite_live_with_crepe_at_100_frames_per_second(model, save_dir, tmp_path):
  """The live step with CREPE at 100 frames/s (f0 interpolated to 250 frames/s) through 256-sample host blocks
  (the adapter over 320-sample units, a TFLite WHILE): the exported step equals the Keras LiveModel."""
  import soundfile as sf
  from ddsp import bundled
  from ddsp.training import live
  from ddsp.training import live_tflite
  clip, _ = sf.read(bundled.asset_path('voice_like_phrase.flac'), dtype='float32')
  clip = clip[:256 * 50]
  out = str(tmp_path / 'live100.tflite')
  meta = export_lib.export(save_dir, out, 'tflite', streaming=True, block_size=256, with_features=True,
                           crepe_frame_rate=100)
  assert (meta['crepe_frame_rate'], meta['unit'], meta['adapter_latency']) == (100, 320, 256)
  player = live.LiveModel(model, 256, noise_seed=0, crepe_frame_rate=100)
  assert meta['latency'] == player.latency == 17 * 64 + 256
  ref, _ = player.process(clip)
  assert np.sqrt(np.mean(ref ** 2)) > 1e-4
  np.testing.assert_allclose(live_tflite.TfliteLivePlayer(out).process(clip), ref[0], atol=1e-3, rtol=0)
