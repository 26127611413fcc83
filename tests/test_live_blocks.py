"""Tests of the live path at any host block size (`training/live.py`'s host-block adapter).

References: the whole-hop path (960-sample blocks, no adapter) and the offline Autoencoder on the stream's
features, on the bundled 48 kHz violin phrase; the adapter's latency against a brute-force search for the least
delay at which a FIFO of whole hops never runs dry.
"""
import math

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from ddsp import bundled
from ddsp.training import live

import helpers
from test_live import _build

SECS = 1.5


def least_delay(block, hop, ready):
  """Brute force: the least L such that every call k (input (k + 1) block samples) can return output samples
  up to (k + 1) block - 1 - L, when segment t (samples [t hop, (t + 1) hop)) is ready once `ready(t)` input
  samples have arrived."""
  for delay in range(0, 8 * hop):
    if all(ready(((k + 1) * block - 1 - delay) // hop) <= (k + 1) * block
           for k in range(4 * hop) if (k + 1) * block - 1 - delay >= 0):
      return delay
  raise AssertionError('no delay found')


@pytest.mark.parametrize('block,hop', [(512, 960), (1000, 960), (2048, 960), (64, 960), (100, 64), (960, 960)])
def test_adapter_latency_is_the_least_that_never_runs_dry(block, hop):
  frames = 3  # the inner steps: segment t is made by the step ending at input sample (t + 1 + 3) hop
  want = least_delay(block, hop, lambda t: (t + 1 + frames) * hop)
  assert frames * hop + live.adapter_latency(block, hop) == want
  assert live.adapter_latency(block, hop) == (0 if block % hop == 0 else hop - math.gcd(block, hop))


@pytest.fixture(scope='module')
def model48():
  return _build(48000, 50, secs=SECS)


@pytest.fixture(scope='module')
def violin():
  audio, rate = sf.read(bundled.asset_path('violin_phrase_eval_48k.flac'), dtype='float32')
  assert rate == 48000
  return audio[:int(SECS * rate)]


def test_512_sample_blocks_equal_960_and_offline_shifted_by_the_stated_latency(model48, violin):
  n = violin.shape[0]
  whole = live.LiveModel(model48, block_size=960)
  host = live.LiveModel(model48, block_size=512)
  assert not whole.adapter and host.adapter
  assert whole.latency == 2880 and whole.total_latency == 3840  # (Dl 1 + D 2) frames of 960; 80 ms
  assert host.adapter_latency == 896 and host.latency == 3776 and host.total_latency == 4288  # 89.33 ms
  out960 = helpers.stream_raw(whole, violin, n + whole.latency, check_finite=True)[whole.latency:]
  out512 = helpers.stream_raw(host, violin, n + host.latency, check_finite=True)[host.latency:]
  assert np.sqrt(np.mean(out960 ** 2)) > 0.05
  np.testing.assert_allclose(out512, out960, atol=1e-4, rtol=0)
  # A wrong shift by one gcd step does not pass: the comparison can fail.
  assert np.abs(out512[64:] - out960[:-64]).max() > 1e-2
  # The offline model on the features the stream computed (the synthesis is exact); the last hop differs
  # (offline holds the last frame, the stream goes on into the frames after the end).
  _, feats = whole.process(violin)
  ref = model48({'f0_hz': feats['f0_hz'], 'loudness_db': feats['loudness_db']})['audio_synth'].numpy()[0]
  np.testing.assert_allclose(out512[:-960], ref[:n - 960], atol=1e-4, rtol=0)
  # process() lines the adapter's output up with the input, features included.
  got, got_feats = host.process(violin)
  np.testing.assert_allclose(got[0], out512, atol=1e-6, rtol=0)
  for k, v in feats.items():
    np.testing.assert_allclose(got_feats[k], v, atol=1e-6, rtol=0)


def test_adapter_refuses_bad_blocks_and_survives_nan(model48, violin):
  host = live.LiveModel(model48, block_size=700)
  helpers.check_live_step_refuses_bad_blocks(host, 44100)
  with pytest.raises(ValueError, match='positive'):
    live.LiveModel(model48, block_size=0)
  blocks = violin[:700 * 12].reshape(12, 700).copy()
  blocks[6, 5] = np.nan
  state = host.initial_state(1)
  for block in blocks:
    out, state = host.step(tf.constant(block[np.newaxis]), state)
    assert np.all(np.isfinite(out.numpy()))
  assert all(np.all(np.isfinite(v.numpy())) for v in state.values())
  assert int(state['host_fill']) == (12 * 700) % 960
