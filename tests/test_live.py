"""Tests of live timbre transfer: `ddsp.stream_features` (features block by block) and `training/live.py`.

References are the offline functions on the whole file: `spectral_ops.compute_loudness` (NumPy, float64) for
loudness and `ddsp.pitch.compute_f0` (its own framing, batching and NumPy decoding) for f0 and confidence, on
the bundled voice-like phrase at 16 kHz and resampled to 48 kHz. The audio path is checked against the offline
Autoencoder driven by those offline features.
"""
import numpy as np
import pytest
import soxr
import tensorflow as tf

from ddsp import bundled
from ddsp import pitch
from ddsp import spectral_ops
from ddsp import stream_features
from ddsp.training import ddsp_run
from ddsp.training import live
from ddsp.training import models

import helpers

CLIP_SECS = 2.0


def _clip(sample_rate):
  import soundfile as sf
  audio, rate = sf.read(bundled.asset_path('voice_like_phrase.flac'), dtype='float32')
  audio = audio[:int(CLIP_SECS * rate)]
  if rate != sample_rate:
    audio = soxr.resample(audio, rate, sample_rate).astype(np.float32)
  return audio


def _stream_features(stream, audio):
  """Feeds `audio` (zero-padded to cover the latency) block by block; returns the frames aligned to offline."""
  n_frames = -(-audio.shape[0] // stream.hop)
  n_blocks = -(-(audio.shape[0] + stream.latency) // stream.block_size)
  padded = np.zeros(n_blocks * stream.block_size, np.float32)
  padded[:audio.shape[0]] = audio
  state = stream.initial_state(1)
  step = tf.function(stream.step)
  outs = {k: [] for k in stream.keys}
  for i in range(n_blocks):
    feats, state = step(tf.constant(padded[np.newaxis, i * stream.block_size:(i + 1) * stream.block_size]), state)
    for k in outs:
      outs[k].append(feats[k].numpy()[0])
  d = stream.latency_frames
  return {k: np.concatenate(v)[d:d + n_frames] for k, v in outs.items()}


@pytest.mark.parametrize('sample_rate,frame_rate,block_frames,crepe_frame_rate', [
    (16000, 250, 4, None), (48000, 50, 1, None), (16000, 250, 5, 100), (48000, 50, 2, 25)])
def test_stream_features_equal_offline(sample_rate, frame_rate, block_frames, crepe_frame_rate):
  audio = _clip(sample_rate)
  stream = stream_features.FeatureStream(sample_rate, frame_rate, block_frames, crepe_frame_rate=crepe_frame_rate)
  hop = sample_rate // frame_rate
  # The stated look-ahead: half the loudness FFT, and 512 + 32 samples at 16 kHz for CREPE (resampler delay),
  # plus, with CREPE slower than the frames, the widest gap from a frame to the next CREPE frame's centre.
  factor = sample_rate // 16000
  rate = crepe_frame_rate or frame_rate

  def f0_lookahead(t):  # input samples after frame t's centre that its f0 needs (next CREPE frame's window)
    gap = np.ceil(t * rate / frame_rate) * 16000 / rate - t * 16000 / frame_rate
    return (512 + (32 if factor > 1 else 0) + gap) * factor

  def lookahead(t):
    return max(1024, f0_lookahead(t))
  assert stream.lookahead_samples == {'loudness': 1024, 'f0': max(f0_lookahead(t) for t in range(frame_rate))}
  # The block bringing input frames [s, s + F) returns frames [s - Dl, s - Dl + F): Dl is the least delay
  # at which every returned frame's look-ahead has arrived.
  def arrived(delay):
    return all((s - delay + r) * hop + lookahead(s - delay + r) <= (s + block_frames) * hop
               for s in range(0, 10 * block_frames, block_frames) for r in range(block_frames))
  assert arrived(stream.latency_frames) and not arrived(stream.latency_frames - 1)
  got = _stream_features(stream, audio)
  ld = spectral_ops.compute_loudness(audio, sample_rate, frame_rate)
  assert ld.max() > -30.0 and ld.min() < -100.0  # the clip has notes and silence
  np.testing.assert_allclose(got['loudness_db'], ld, atol=1e-3, rtol=0)
  f0, conf = pitch.compute_f0(stream_features.resample_to_crepe(audio, sample_rate), 16000, frame_rate,
                              crepe_frame_rate=crepe_frame_rate)
  voiced = conf > 0.5
  assert voiced.mean() > 0.3
  if crepe_frame_rate:  # the interpolated f0 is not CREPE run on every frame
    f0_every, _ = pitch.compute_f0(stream_features.resample_to_crepe(audio, sample_rate), 16000, frame_rate)
    assert np.abs(f0_every - f0)[voiced].max() > 0.1
  # The end edge (module doc): at 48 kHz the last frames whose CREPE window reaches past the end differ.
  edge = 0 if factor == 1 else -(-(512 + 32) // (16000 // frame_rate))
  interior = slice(0, f0.shape[0] - edge)
  np.testing.assert_allclose(got['f0_hz'][interior], f0[interior], atol=1e-3, rtol=0)
  np.testing.assert_allclose(got['f0_confidence'][interior], conf[interior], atol=1e-3, rtol=0)
  if factor > 1:
    # The causal FIR instead of soxr: how far the stream's f0 is from compute_f0's own resampling.
    f0_soxr, conf_soxr = pitch.compute_f0(audio, sample_rate, frame_rate, crepe_frame_rate=crepe_frame_rate)
    both = voiced & (conf_soxr > 0.5)
    cents = np.abs(1200.0 * np.log2(got['f0_hz'][both] / f0_soxr[both]))
    assert np.median(cents) < 1.0 and np.abs(got['f0_confidence'] - conf_soxr)[interior].max() < 0.05


def test_slower_crepe_refuses_bad_geometry():
  with pytest.raises(ValueError, match='multiple of 5 frames'):
    stream_features.FeatureStream(16000, 250, 4, crepe_frame_rate=100)
  with pytest.raises(ValueError, match='at most once per frame'):
    stream_features.FeatureStream(16000, 250, 4, crepe_frame_rate=400)
  # Data preparation's 100 for a 50 frames/s model (or 500 for 250): a CREPE frame on every frame.
  for rate, frames, crepe_rate in ((48000, 50, 100), (16000, 250, 500)):
    every = stream_features.FeatureStream(rate, frames, 1, crepe_frame_rate=crepe_rate)
    plain = stream_features.FeatureStream(rate, frames, 1)
    assert every.crepe_frame_rate == frames and every.state_spec() == plain.state_spec()
    assert every.latency == plain.latency and every.lookahead_samples == plain.lookahead_samples
  with pytest.raises(ValueError, match='whole number of samples'):
    stream_features.FeatureStream(16000, 250, 25, crepe_frame_rate=30)


def test_resampler_is_a_lowpass():
  """The decimator passes 1 kHz at unit gain and removes 12 kHz (which would alias to 4 kHz)."""
  t = np.arange(48000) / 48000.0
  for freq, lo, hi in [(1000.0, 0.99, 1.01), (12000.0, 0.0, 1e-3)]:
    y = stream_features.resample_to_crepe(np.sin(2 * np.pi * freq * t), 48000)
    assert y.shape == (16000,)
    gain = np.sqrt(2.0 * np.mean(y[1000:-1000] ** 2))
    assert lo <= gain <= hi, (freq, gain)


def test_stream_features_refuse_bad_geometry():
  with pytest.raises(ValueError, match='multiple of 16000'):
    stream_features.FeatureStream(44100, 50, 1)
  with pytest.raises(ValueError, match='whole hop'):
    stream_features.FeatureStream(16000, 300, 1)


def test_crepe_network_equals_keras_model_and_reads_a_sine():
  """The live CREPE (plain ops, first convolution over groups of 4 samples) against the Keras model, and the
  pitch of a 440 Hz sine read from it (within CREPE tiny's 25 cents)."""
  from ddsp import crepe
  rng = np.random.default_rng(3)
  t = np.arange(1024) / 16000.0
  audio = _clip(16000)
  frames = np.stack([audio[8000:9024], audio[20000:21024], 0.5 * np.sin(2 * np.pi * 440.0 * t),
                     1e-3 * rng.standard_normal(1024), np.zeros(1024)]).astype(np.float32)
  net = stream_features.CrepeNetwork('tiny')
  want = crepe.get_crepe_model('tiny')(frames, training=False).numpy()
  np.testing.assert_allclose(net(tf.constant(frames)).numpy(), want, atol=1e-5, rtol=0)
  for i in range(frames.shape[0]):  # one frame at a time, as a live block runs it
    np.testing.assert_allclose(net(tf.constant(frames[i:i + 1])).numpy()[0], want[i], atol=1e-5, rtol=0)
  f0, conf = stream_features.decode_activations(net(tf.constant(frames[2:3])))
  assert abs(1200 * np.log2(f0.numpy()[0] / 440.0)) < 25.0 and conf.numpy()[0] > 0.5


def test_stream_loudness_without_a_power_of_two_fft():
  """n_fft 1000 (no RFFT in TFLite: the real-DFT matrix) still equals compute_loudness."""
  audio = _clip(16000)
  stream = stream_features.FeatureStream(16000, 250, 4, loudness_n_fft=1000, crepe_model=None)
  got = _stream_features(stream, audio)
  np.testing.assert_allclose(got['loudness_db'], spectral_ops.compute_loudness(audio, 16000, 250, n_fft=1000),
                             atol=1e-3, rtol=0)


# ------------------------------------------------------------------------------------------------------------
# Audio -> audio.
# ------------------------------------------------------------------------------------------------------------
def _build(sample_rate, frame_rate, secs=CLIP_SECS):
  n_frames = int(secs * frame_rate)
  ddsp_run.parse_gin(['models/tiny.gin'], [
      f'sample_rate = {sample_rate}', f'n_samples = {int(secs * sample_rate)}', f'time_steps = {n_frames}',
      'RnnFcDecoder.rnn_channels = 32', f'Reverb.reverb_length = {sample_rate // 10}'])
  model = models.get_model()
  model({'f0_hz': np.full([1, n_frames], 220.0, np.float32), 'loudness_db': np.full([1, n_frames], -30.0,
                                                                                         np.float32)})
  assert model.sample_rate == sample_rate and model.hop_size == sample_rate // frame_rate
  return helpers.make_audible_without_noise(model)


@pytest.fixture(scope='module')
def model16():
  return _build(16000, 250)


def test_live_audio_equals_offline_model_on_offline_features(model16):
  audio = _clip(16000)
  player = live.LiveModel(model16, block_size=256)
  assert player.features.latency_frames == 16 and player.streamer.latency_frames == 2  # 15, whole blocks
  assert player.latency == 18 * 64 and player.total_latency == 256 + 18 * 64
  out, feats = player.process(audio)
  ld = spectral_ops.compute_loudness(audio, 16000, 250)
  f0, _ = pitch.compute_f0(audio, 16000, 250)
  np.testing.assert_allclose(feats['loudness_db'][0], ld, atol=1e-3, rtol=0)
  np.testing.assert_allclose(feats['f0_hz'][0], f0, atol=1e-3, rtol=0)
  # The audio: the offline model on the live features, sample for sample (the synthesis is exact) ...
  ref = model16({'f0_hz': feats['f0_hz'], 'loudness_db': feats['loudness_db']})['audio_synth'].numpy()[0]
  assert out.shape == (1, audio.shape[0])
  assert np.sqrt(np.mean(ref ** 2)) > 0.01
  # (offline holds the last frame over the last hop; the live stream goes on into the frames after the end)
  np.testing.assert_allclose(out[0, :-64], ref[:-64], atol=1e-3, rtol=0)
  # ... and on the offline features: f0 differences of ~1e-4 Hz move the phase of high harmonics over 2 s by a
  # few hundredths of a radian, so the frame energies are compared (within 1 %).
  offline = model16({'f0_hz': f0[np.newaxis], 'loudness_db': ld[np.newaxis]})['audio_synth'].numpy()[0]
  energy = lambda x: np.sum(x.reshape(-1, 256) ** 2, axis=1)
  loud = energy(offline) > 1e-2 * energy(offline).max()
  np.testing.assert_allclose(energy(out[0])[loud], energy(offline)[loud], rtol=0.01)


def test_live_with_crepe_at_100_frames_per_second(model16):
  """The paper's tiny model at 250 frames/s with CREPE at data preparation's 100 frames/s (2 CREPE frames per
  5 frames, f0 interpolated in cents): features equal `compute_f0(crepe_frame_rate=100)`, the audio the
  offline model's on them; a 256-sample host block (the adapter, over 320-sample units) gives the same audio."""
  audio = _clip(16000)
  player = live.LiveModel(model16, block_size=320, crepe_frame_rate=100)
  assert (player.unit, player.adapter, player.features.crepe_frames_per_block) == (320, False, 2)
  assert player.features.latency_frames == 15 and player.latency == 17 * 64  # the loudness window binds
  out, feats = player.process(audio)
  f0, conf = pitch.compute_f0(audio, 16000, 250, crepe_frame_rate=100)
  np.testing.assert_allclose(feats['f0_hz'][0], f0, atol=1e-3, rtol=0)
  np.testing.assert_allclose(feats['f0_confidence'][0], conf, atol=1e-3, rtol=0)
  ref = model16({'f0_hz': feats['f0_hz'], 'loudness_db': feats['loudness_db']})['audio_synth'].numpy()[0]
  assert np.sqrt(np.mean(ref ** 2)) > 0.01
  np.testing.assert_allclose(out[0, :-64], ref[:-64], atol=1e-3, rtol=0)
  host = live.LiveModel(model16, block_size=256, crepe_frame_rate=100)
  assert (host.unit, host.adapter, host.adapter_latency) == (320, True, 320 - 64)
  assert host.latency == player.latency + 256
  np.testing.assert_allclose(host.process(audio)[0], out, atol=1e-5, rtol=0)
  # XLA for the features and synthesis (the network left to oneDNN), inside the adapter's loop: the same audio.
  jit = live.LiveModel(model16, block_size=256, crepe_frame_rate=100, jit_compile=True)
  np.testing.assert_allclose(jit.process(audio)[0], out, atol=1e-4, rtol=0)


def test_live_step_refuses_bad_blocks(model16):
  with pytest.raises(ValueError, match='positive'):
    live.LiveModel(model16, block_size=-1)
  helpers.check_live_step_refuses_bad_blocks(live.LiveModel(model16, block_size=256), 48000)


@pytest.mark.parametrize('crepe_frame_rate', [None, 100])
def test_nan_block_is_silence_and_state_stays_finite(model16, crepe_frame_rate):
  audio = _clip(16000)[:256 * 40].reshape(40, 256)
  player = live.LiveModel(model16, block_size=256, crepe_frame_rate=crepe_frame_rate)
  outs = {}
  for name, bad in (('clean', None), ('nan', np.nan), ('inf', np.inf)):
    state = player.initial_state(1)
    out = []
    for i, block in enumerate(audio):
      block = block.copy()
      if bad is not None and i == 20:
        block[17] = bad
      y, state = player.step(block[np.newaxis], state)
      out.append(y.numpy()[0])
      assert all(np.all(np.isfinite(v.numpy())) for v in state.values())
    outs[name] = np.concatenate(out)
  silent = audio.copy()
  silent[20] = 0.0
  state, ref = player.initial_state(1), []
  for block in silent:
    y, state = player.step(block[np.newaxis], state)
    ref.append(y.numpy()[0])
  ref = np.concatenate(ref)
  assert np.abs(ref - outs['clean']).max() > 1e-4  # the silenced block changes the output
  np.testing.assert_allclose(outs['nan'], ref, atol=1e-6)
  np.testing.assert_allclose(outs['inf'], ref, atol=1e-6)


def test_live_48k_50_frames_per_second():
  """The real-time geometry: 48 kHz, 50 frames/s, 960-sample blocks; latency stated in frames and samples."""
  model = _build(48000, 50, secs=1.0)
  audio = _clip(48000)[:48000]
  player = live.LiveModel(model, block_size=960)
  assert player.features.latency_frames == 1 and player.latency == 3 * 960
  out, feats = player.process(audio)
  ld = spectral_ops.compute_loudness(audio, 48000, 50)
  np.testing.assert_allclose(feats['loudness_db'][0], ld, atol=1e-3, rtol=0)
  assert out.shape == (1, 48000) and np.all(np.isfinite(out))
  ref = model({'f0_hz': feats['f0_hz'], 'loudness_db': feats['loudness_db']})['audio_synth'].numpy()[0]
  np.testing.assert_allclose(out[0, :-960], ref[:-960], atol=1e-3, rtol=0)


# ------------------------------------------------------------------------------------------------------------
# ddsp_stream.
# ------------------------------------------------------------------------------------------------------------
def test_ddsp_stream_cli(tmp_path):
  import os
  import subprocess
  import sys

  import soundfile as sf
  save_dir = str(tmp_path / 'run')
  ddsp_run.run('train', save_dir, gin_files=['models/tiny.gin', 'datasets/synthetic.gin', 'optimization/base.gin'],
               gin_params=['n_samples = 16000', 'time_steps = 250', 'SyntheticProvider.example_secs = 1',
                           'SyntheticProvider.n_examples = 4', 'RnnFcDecoder.rnn_channels = 16',
                           'Reverb.reverb_length = 800', 'SpectralLoss.fft_sizes = (512, 128)', 'batch_size = 2'],
               num_steps=1, progress_bar=False)
  clip = _clip(48000)[:24000]
  stereo = str(tmp_path / 'in.wav')
  sf.write(stereo, np.stack([clip, clip], axis=1), 48000)
  out = str(tmp_path / 'out.wav')
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  cmd = [sys.executable, '-m', 'ddsp.training.stream', f'--model_dir={save_dir}', f'--input={stereo}',
         f'--output={out}', '--threads=1']
  result = subprocess.run(cmd + ['--block_size=512'], capture_output=True, text=True, env=env, timeout=300,
                          check=False)
  assert result.returncode == 0, result.stderr
  assert 'downmixed to mono' in result.stdout and 'resampled from 48000 Hz to 16000 Hz' in result.stdout
  assert 'real-time factor' in result.stdout and 'p99' in result.stdout
  assert 'latency 1152 samples = 72.00 ms' in result.stdout  # (16 + 2) frames of 64 samples
  assert 'cuInit' not in result.stderr and 'oneDNN' not in result.stderr  # TensorFlow's start-up lines held back
  audio, rate = sf.read(out, dtype='float32')
  assert rate == 16000 and audio.shape == (8000,) and np.all(np.isfinite(audio))
  with pytest.raises(ValueError, match='positive'):
    live.stream_file(save_dir, stereo, str(tmp_path / 'never.wav'), -1)
  assert not os.path.exists(str(tmp_path / 'never.wav'))
  # Exactly one model source: both, or --tflite with a flag fixed at export time, are usage errors.
  tflite = f'--tflite={tmp_path / "x.tflite"}'
  io_flags = [f'--input={stereo}', f'--output={out}']
  for bad_cmd, message in ((cmd + [tflite], 'exactly one of --model_dir'),
                           (cmd[:3] + io_flags + [tflite, '--block_size=512'], 'fixed at export time'),
                           (cmd[:3] + io_flags + [tflite, '--crepe_frame_rate=100'], 'fixed at export time')):
    bad = subprocess.run(bad_cmd, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert bad.returncode != 0 and message in bad.stderr, bad.stderr[-2000:]
