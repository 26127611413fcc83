"""Tests of `ddsp.training.streaming`: block-by-block inference equals offline synthesis.

The reference is the Autoencoder itself, called on the whole input. Both paths use the same noise: the
offline `FilteredNoise` is seeded (stateless draw of `[batch, n_samples]`) and the stream is fed the slices of
that very draw, block by block. Models have random weights, with the output biases raised so that the
harmonic and noise parts are both clearly audible, and a decaying random reverb IR.
"""
import numpy as np
import pytest

from ddsp.training import ddsp_run
from ddsp.training import models
from ddsp.training import streaming

N_FRAMES = 1024  # 4.1 s: a multiple of every block size tested
HOP = 64


def _build(config, extra=()):
  ddsp_run.parse_gin([config], [f'n_samples = {N_FRAMES * HOP}', f'time_steps = {N_FRAMES}',
                                'FilteredNoise.seed = 7'] + list(extra))
  model = models.get_model()
  f0, ld = _controls(1)
  model({'f0_hz': f0, 'loudness_db': ld})
  dense = model.decoder.dense_out
  bias = dense.bias.numpy()
  bias[0] += 3.0  # amps
  bias[-65:] += 4.0  # noise magnitudes
  dense.bias.assign(bias)
  reverb = [p for p in model.processor_group.processors if p.name == 'reverb'][0]
  n = reverb.ir.shape[0]
  ir = np.random.default_rng(1).normal(0.0, 0.05, n) * np.exp(-np.arange(n) / 2000.0)
  reverb.ir.assign(ir.astype(np.float32))
  return model


def _controls(batch):
  """f0 glides with an unvoiced gap and a stretch high enough for the Nyquist mask; loudness swells."""
  rng = np.random.default_rng(0)
  f0 = 220.0 * 2.0 ** np.cumsum(rng.normal(0.0, 0.01, (batch, N_FRAMES)), axis=1)
  f0[:, 300:340] = 0.0
  f0[:, 600:650] = 3000.0
  ld = -35.0 + 15.0 * np.sin(np.arange(N_FRAMES) / 40.0) + np.zeros((batch, 1))
  return f0.astype(np.float32), ld.astype(np.float32)


@pytest.fixture(scope='module')
def tiny():
  return _build('models/tiny.gin', ['RnnFcDecoder.rnn_channels = 64', 'Reverb.reverb_length = 8000'])


def _offline(model, f0, ld):
  outputs = model({'f0_hz': f0, 'loudness_db': ld})
  return {k: outputs[k].numpy() for k in ('audio_synth', 'harmonic/signal', 'filtered_noise/signal')}


@pytest.mark.parametrize('block_size', [256, 1024, 4096])
def test_stream_equals_offline_for_several_block_sizes(tiny, block_size):
  f0, ld = _controls(2)
  ref = _offline(tiny, f0, ld)
  # Both parts are clearly present: the comparison is not dominated by one of them.
  assert np.sqrt(np.mean(ref['harmonic/signal'] ** 2)) > 0.01
  assert np.sqrt(np.mean(ref['filtered_noise/signal'] ** 2)) > 0.01
  noise = streaming.offline_noise(tiny, 2)
  streamer = streaming.StreamingModel(tiny, block_size)
  assert streamer.block_frames == block_size // HOP
  audio = streamer.process(f0, ld, noise).numpy()
  assert audio.shape == ref['audio_synth'].shape
  np.testing.assert_allclose(audio, ref['audio_synth'], atol=1e-4, rtol=0)


def test_stream_step_by_step_latency_and_preroll(tiny):
  """Driving `step` by hand: each block lags by the latency, the pre-roll is silent, the flush ends it."""
  f0, ld = _controls(1)
  ref = _offline(tiny, f0, ld)['audio_synth']
  noise = streaming.offline_noise(tiny, 1).numpy()
  streamer = streaming.StreamingModel(tiny, 512)
  assert streamer.latency_frames == 2 and streamer.latency == 2 * HOP
  state = streamer.initial_state(1)
  assert all(not np.any(v.numpy()) for v in state.values())
  outs = []
  for start in range(0, N_FRAMES, 8):
    audio, state = streamer.step(f0[:, start:start + 8], ld[:, start:start + 8], state,
                                 noise[:, start * HOP:(start + 8) * HOP])
    assert audio.shape == (1, 512)
    outs.append(audio.numpy())
  np.testing.assert_allclose(outs[0][:, :streamer.latency], 0.0, atol=1e-6)  # DFT-matmul rounding only
  streamed = np.concatenate(outs, axis=1)
  np.testing.assert_allclose(streamed[:, streamer.latency:], ref[:, :-streamer.latency], atol=1e-4, rtol=0)
  tail, _ = streamer.flush(state)
  np.testing.assert_allclose(tail.numpy(), ref[:, -streamer.latency:], atol=1e-4, rtol=0)


def test_default_noise_is_deterministic_and_independent_of_the_block_size(tiny):
  """Without given noise, blocks read one seeded table in order: 256- and 1024-sample blocks give one stream."""
  f0, ld = _controls(1)
  a = streaming.StreamingModel(tiny, 256, noise_seed=3).process(f0, ld).numpy()
  b = streaming.StreamingModel(tiny, 1024, noise_seed=3).process(f0, ld).numpy()
  c = streaming.StreamingModel(tiny, 1024, noise_seed=4).process(f0, ld).numpy()
  np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)
  assert np.max(np.abs(b - c)) > 1e-3


def test_solo_instrument_stream_equals_offline():
  """The full decoder (3-layer 512 dense stacks, GRU 512) and a 48000-tap reverb."""
  model = _build('models/solo_instrument.gin')
  f0, ld = _controls(1)
  ref = _offline(model, f0, ld)['audio_synth']
  audio = streaming.StreamingModel(model, 1024).process(f0, ld, streaming.offline_noise(model, 1)).numpy()
  np.testing.assert_allclose(audio, ref, atol=1e-4, rtol=0)


def test_fast_recipe_stream_equals_offline():
  """The demo's model: the streamed reverb applies the same ir_scale and decay envelope as the offline one."""
  model = _build('models/tiny_fast.gin', ['RnnFcDecoder.rnn_channels = 64'])
  reverb, _ = model.reverb_node()
  assert reverb.decay_db == 60.0 and reverb.ir_scale == 0.1
  f0, ld = _controls(1)
  ref = _offline(model, f0, ld)
  wet_minus_dry = ref['audio_synth'] - ref['harmonic/signal'] - ref['filtered_noise/signal']
  assert np.sqrt(np.mean(wet_minus_dry ** 2)) > 1e-4  # the reverb contributes
  audio = streaming.StreamingModel(model, 1024).process(f0, ld, streaming.offline_noise(model, 1)).numpy()
  np.testing.assert_allclose(audio, ref['audio_synth'], atol=1e-4, rtol=0)


def test_clear_errors(tiny):
  with pytest.raises(ValueError, match='multiple of the hop'):
    streaming.StreamingModel(tiny, 100)
  with pytest.raises(ValueError, match='multiple of the hop'):
    streaming.StreamingModel(tiny, 0)
  streamer = streaming.StreamingModel(tiny, 256)
  state = streamer.initial_state(1)
  with pytest.raises(ValueError, match=r'\[batch, 4\] frames'):
    streamer.step(np.zeros([1, 5], np.float32), np.zeros([1, 5], np.float32), state)
  with pytest.raises(ValueError, match='noise'):
    streamer.step(np.zeros([1, 4], np.float32), np.zeros([1, 4], np.float32), state, np.zeros([1, 100]))
  with pytest.raises(ValueError, match='multiple of the block'):
    streamer.process(np.zeros([1, 10], np.float32), np.zeros([1, 10], np.float32))


def test_models_with_z_or_unbuilt_are_refused():
  ddsp_run.parse_gin(['models/nsynth_ae.gin'], [])
  with pytest.raises(ValueError, match='encoder'):
    streaming.StreamingModel(models.get_model(), 256)
  ddsp_run.parse_gin(['models/tiny.gin'], [])
  with pytest.raises(ValueError, match='not built'):
    streaming.StreamingModel(models.get_model(), 256)
