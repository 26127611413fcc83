"""Tests of the low-latency live recipe (`gin/models/realtime/realtime_48k_lowlatency.gin`).

References: NumPy maths (the causal Nyquist mask, the one-frame f0 delay by `np.interp`, MIDI scaling), the
offline feature functions on the whole file (`spectral_ops.compute_loudness` NumPy path, `pitch.compute_f0`
on `stream_features.resample_to_crepe`), and the offline model called on the whole bundled 48 kHz violin
phrase with its own feature computation (loudness from the audio inside the model, the data's centred f0
delayed by the model).
"""
import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from ddsp import bundled
from ddsp import oscillators
from ddsp import pitch
from ddsp import spectral_ops
from ddsp import stream_features
from ddsp import synths
from ddsp.training import ddsp_run
from ddsp.training import live
from ddsp.training import models
from ddsp.training import preprocessing

import helpers

SECS = 1.5
RATE, HOP = 48000, 960


@pytest.fixture(scope='module')
def violin():
  audio, rate = sf.read(bundled.asset_path('violin_phrase_eval_48k.flac'), dtype='float32')
  assert rate == RATE
  return audio[:int(SECS * rate)]


@pytest.fixture(scope='module')
def model():
  """The low-latency recipe, small: a 32-unit GRU, a 0.05 s reverb, random weights."""
  ddsp_run.parse_gin(['models/realtime/realtime_48k_lowlatency.gin'], [
      f'example_secs = {SECS}', 'RnnFcDecoder.rnn_channels = 32', 'reverb/secs_to_samples.secs = 0.05'])
  m = models.get_model()
  n_frames = int(SECS * 50)
  m({'audio': np.zeros([1, int(SECS * RATE)], np.float32), 'f0_hz': np.full([1, n_frames], 220.0, np.float32)})
  assert isinstance(m.preprocessor, preprocessing.OnlineLoudnessPreprocessor)
  assert (m.preprocessor.n_fft, m.preprocessor.f0_delay_frames) == (1024, 1)
  assert all(p.causal_nyquist for p in m.processor_group.processors if isinstance(p, synths.Harmonic))
  return helpers.make_audible_without_noise(m)


def _midi(f0):
  f0 = np.asarray(f0, np.float64)
  return np.where(f0 > 0, 69.0 + 12.0 * np.log2(np.maximum(f0, 1e-30) / 440.0), 0.0)


def test_causal_nyquist_mask_against_numpy():
  """Frame t's harmonics are muted by f0 of frames t - 1 and t only (default: t - 1 .. t + 1)."""
  f0 = np.array([1000.0, 1000.0, 3000.0, 5000.0, 2000.0, 1000.0], np.float32)
  k = np.arange(1, 9)
  for causal in (False, True):
    synth = synths.Harmonic(n_samples=6 * 64, sample_rate=16000, scale_fn=None, causal_nyquist=causal,
                            normalize_below_nyquist=False)
    controls = synth.get_controls(np.ones([1, 6, 1], np.float32), np.ones([1, 6, 8], np.float32),
                                  f0[np.newaxis, :, np.newaxis])
    prev = np.concatenate([f0[:1], f0[:-1]])
    nxt = np.concatenate([f0[1:], f0[-1:]])
    peak = np.maximum(prev, f0) if causal else np.maximum(np.maximum(prev, f0), nxt)
    want = (k[np.newaxis] * peak[:, np.newaxis] < 8000.0).astype(np.float32)
    np.testing.assert_array_equal(controls['harmonic_distribution'].numpy()[0], want)
    assert synth.block_step(None, [1, 8, 1]).lookahead_frames == (1 if causal else 2)
  np.testing.assert_array_equal(oscillators.causal_max(tf.constant(f0[np.newaxis, :, np.newaxis])).numpy()[0, :, 0],
                                np.maximum(np.concatenate([f0[:1], f0[:-1]]), f0))


def test_offline_features_equal_an_independent_computation(model, violin):
  """The model's features: the data's f0 delayed by the stated 0.02 s (np.interp, 0 Hz before the start),
  its MIDI scaling, and loudness of 1024-sample frames (NumPy compute_loudness)."""
  pre = model.preprocessor
  n_frames = int(SECS * 50)
  f0, _ = pitch.compute_f0(stream_features.resample_to_crepe(violin, RATE), 16000, 50)
  assert f0.shape == (n_frames,)
  out = pre({'audio': violin[np.newaxis], 'f0_hz': f0[np.newaxis].astype(np.float32)}, training=True)
  t = np.arange(n_frames) / 50.0
  delay_secs = pre.f0_delay_frames / pre.frame_rate
  assert delay_secs == 0.02  # 320 samples at 16 kHz
  want = np.interp(t - delay_secs, t, f0, left=0.0)
  np.testing.assert_allclose(out['f0_hz'].numpy()[0, :, 0], want, rtol=1e-6, atol=0)
  np.testing.assert_allclose(out['f0_scaled'].numpy()[0, :, 0], _midi(want) / 127.0, atol=1e-5, rtol=0)
  ld = spectral_ops.compute_loudness(violin, RATE, 50, n_fft=1024)
  np.testing.assert_allclose(out['loudness_db'].numpy()[0, :, 0], ld, atol=1e-3, rtol=0)
  with pytest.raises(ValueError, match='f0_delay_frames'):
    preprocessing.OnlineLoudnessPreprocessor(48000, 50, f0_delay_frames=0.5)


def test_live_512_equals_offline_model_within_50_ms(model, violin):
  n = violin.shape[0]
  player = live.LiveModel(model, block_size=512)
  # 512 block + 960 (synthesis: the next frame) + 896 (host-block adapter: 960 - gcd(512, 960)); no feature
  # frame of delay (loudness looks 512 samples ahead, the delayed f0 672: both within the hop).
  assert (player.features.latency_frames, player.streamer.latency_frames) == (0, 1)
  assert player.features.lookahead_samples == {'loudness': 512, 'f0': 672}
  assert player.latency == 1856 and player.total_latency == 2368 <= 2400
  assert player.total_latency * 1000.0 / RATE == pytest.approx(49.333, abs=1e-3)
  lat = player.latency
  raw = helpers.stream_raw(player, violin, n + lat + 2)
  # The live features (process() lines them up with the input): loudness of 1024-sample frames and CREPE's
  # centred f0 of the frame before, as offline (the last frames' windows reach past the end: module doc of
  # ddsp.stream_features).
  _, feats = player.process(violin)
  np.testing.assert_allclose(feats['loudness_db'][0], spectral_ops.compute_loudness(violin, RATE, 50, n_fft=1024),
                             atol=1e-3, rtol=0)
  f0, conf = pitch.compute_f0(stream_features.resample_to_crepe(violin, RATE), 16000, 50)
  assert (conf > 0.5).mean() > 0.5
  np.testing.assert_allclose(feats['f0_hz'][0, :-2], np.concatenate([[0.0], f0[:-3]]), atol=1e-3, rtol=0)
  # The data's f0, as prepared: the centred CREPE frames (the centred live stream's, which equal compute_f0
  # within 1e-3 Hz: tests/test_live.py; the same network on the same windows keeps the synthesis exact).
  centred = stream_features.FeatureStream(RATE, 50, 1, loudness_n_fft=1024)
  f0_data = _centred_f0(centred, violin)
  np.testing.assert_allclose(f0_data[:-2], f0[:-2], atol=1e-3, rtol=0)
  ref = model({'audio': violin[np.newaxis], 'f0_hz': f0_data[np.newaxis]}, training=False)['audio_synth']
  ref = ref.numpy()[0]
  assert np.sqrt(np.mean(ref ** 2)) > 0.05
  # Offline holds the last frame over the last hop; the stream goes on into the frames after the end.
  np.testing.assert_allclose(raw[lat:lat + n - HOP], ref[:n - HOP], atol=1e-4, rtol=0)
  # The stated latency is the true one: one sample more or less does not pass.
  for shift in (lat - 1, lat + 1):
    assert np.abs(raw[shift:shift + n - HOP] - ref[:n - HOP]).max() > 1e-3, shift


def _centred_f0(stream, audio):
  n_frames = -(-audio.shape[0] // stream.hop)
  n_blocks = n_frames + stream.latency_frames
  padded = np.zeros(n_blocks * stream.block_size, np.float32)
  padded[:audio.shape[0]] = audio
  state, out = stream.initial_state(1), []
  step = tf.function(stream.step)
  for block in padded.reshape(n_blocks, stream.block_size):
    feats, state = step(tf.constant(block[np.newaxis]), state)
    out.append(feats['f0_hz'].numpy()[0])
  return np.concatenate(out)[stream.latency_frames:stream.latency_frames + n_frames]


def test_960_sample_blocks_40_ms(model, violin):
  player = live.LiveModel(model, block_size=960)
  assert player.adapter_latency == 0 and player.latency == 960 and player.total_latency == 1920


def test_export_metadata_states_the_low_latency(model):
  """What `ddsp_export --streaming --with_features --block_size=512` writes beside the model."""
  from ddsp.training import export_lib
  _, _, meta = export_lib.live_serving_function(model, block_size=512)
  assert (meta['f0_delay_frames'], meta['synth_latency_frames'], meta['adapter_latency']) == (1, 1, 896)
  assert meta['latency'] == 1856 and meta['total_latency'] == 2368 and meta['loudness_n_fft'] == 1024


@pytest.mark.parametrize('block_frames', [1, 4])
def test_causal_harmonic_streams_with_one_frame_of_lookahead(block_frames):
  """GroupStream of a causal Harmonic equals its offline output, 1 frame late (tests/test_blocks.py's data:
  f0 glides, an unvoiced gap and a jump to 1500 Hz where the masks matter)."""
  from test_blocks import HARMONIC_KEYS, N_SAMPLES, SAMPLE_RATE, _controls, _noise_draw, _offline, _stream
  controls = _controls()
  causal = [(synths.Harmonic(n_samples=N_SAMPLES, sample_rate=SAMPLE_RATE, causal_nyquist=True), HARMONIC_KEYS)]
  group, ref = _offline(causal, controls)
  _, centred = _offline([(synths.Harmonic(n_samples=N_SAMPLES, sample_rate=SAMPLE_RATE), HARMONIC_KEYS)],
                        controls)
  assert np.abs(ref - centred).max() > 1e-2  # the masks differ where f0 jumps
  stream, audio = _stream(group, controls, block_frames, _noise_draw(group, 2))
  assert stream.latency_frames == 1
  d = stream.latency
  np.testing.assert_allclose(audio[:, :d], 0.0, atol=1e-6)
  np.testing.assert_allclose(audio[:, d:], ref, atol=1e-4 * max(1.0, np.max(np.abs(ref))), rtol=0)
