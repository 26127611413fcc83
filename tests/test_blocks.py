"""Tests of `ddsp.blocks`: every processor that streams, run block by block, equals its offline output.

The reference is the `ProcessorGroup` itself on the whole input (FFT convolution, float64 phase); the stream
runs each node's `block_step` (Toeplitz FIRs, partitioned DFT-matrix convolution, integer phase). Both use the
same noise: the offline `FilteredNoise` is seeded and the stream gets the slices of that very draw.
"""
import inspect

import numpy as np
import pytest

from ddsp import blocks
from ddsp import effects
from ddsp import processors
from ddsp import synths

HOP = 64
N_FRAMES = 256  # a multiple of every block tested
N_SAMPLES = N_FRAMES * HOP
SAMPLE_RATE = 16000


def _controls(batch=2, n_harmonics=20, n_bands=65):
  """Random network outputs: f0 glides (with an unvoiced gap and a stretch near Nyquist), loud enough parts."""
  rng = np.random.default_rng(0)
  f0 = 220.0 * 2.0 ** np.cumsum(rng.normal(0.0, 0.02, (batch, N_FRAMES)), axis=1)
  f0[:, 60:80] = 0.0
  f0[:, 150:170] = 1500.0
  return {'f0_hz': f0[..., np.newaxis].astype(np.float32),
          'amps': rng.normal(2.0, 1.0, (batch, N_FRAMES, 1)).astype(np.float32),
          'harmonic_distribution': rng.normal(0.0, 2.0, (batch, N_FRAMES, n_harmonics)).astype(np.float32),
          'noise_magnitudes': rng.normal(3.0, 2.0, (batch, N_FRAMES, n_bands)).astype(np.float32)}


def _decaying(reverb, length, seed):
  ir = np.random.default_rng(seed).normal(0.0, 0.05, length) * np.exp(-np.arange(length) / 600.0)
  reverb.ir.assign(ir.astype(np.float32))
  return reverb


def _harmonic():
  return synths.Harmonic(n_samples=N_SAMPLES, sample_rate=SAMPLE_RATE)


def _noise(window_size=257):
  return synths.FilteredNoise(n_samples=N_SAMPLES, window_size=window_size, seed=5)


HARMONIC_KEYS = ['amps', 'harmonic_distribution', 'f0_hz']

# name -> DAG builder; together they cover every processor with a block step (checked below).
DAGS = {
    'harmonic': lambda: [(_harmonic(), HARMONIC_KEYS)],
    'harmonic_linear': lambda: [(synths.Harmonic(n_samples=N_SAMPLES, sample_rate=SAMPLE_RATE,
                                                 amp_resample_method='linear', normalize_below_nyquist=False),
                                 HARMONIC_KEYS)],
    'noise': lambda: [(_noise(), ['noise_magnitudes'])],
    'noise_full_window': lambda: [(_noise(window_size=0), ['noise_magnitudes'])],
    'harmonic_noise_reverb': lambda: [
        (_harmonic(), HARMONIC_KEYS), (_noise(), ['noise_magnitudes']),
        (processors.Add(), ['harmonic/signal', 'filtered_noise/signal']),
        (_decaying(effects.Reverb(trainable=True, reverb_length=3000, decay_db=30.0, ir_scale=0.5), 3000, 1),
         ['add/signal'])],
    'exp_decay_reverb': lambda: [
        (_harmonic(), HARMONIC_KEYS),
        (effects.ExpDecayReverb(trainable=True, reverb_length=2000, sample_rate=SAMPLE_RATE), ['harmonic/signal'])],
    'filtered_noise_reverb': lambda: [
        (_noise(), ['noise_magnitudes']),
        (effects.FilteredNoiseReverb(trainable=True, reverb_length=2000, n_frames=20, add_dry=False),
         ['filtered_noise/signal'])],
}


def _offline(dag, controls):
  group = processors.ProcessorGroup(dag=dag)
  out = group(controls, return_outputs_dict=True)
  return group, out['signal'].numpy()


def _noise_draw(group, batch):
  for proc in group.processors:
    if isinstance(proc, synths.FilteredNoise):
      return proc.noise(batch).numpy()
  return np.zeros([batch, N_SAMPLES], np.float32)


def _channels(controls):
  return {k: v.shape[-1] for k, v in controls.items()}


def _stream(group, controls, block_frames, noise):
  stream = blocks.GroupStream(group, _channels(controls), processors.StreamConfig(HOP, block_frames))
  state = {k: np.zeros([2 if d is None else d for d in s.shape], s.dtype.as_numpy_dtype)
           for k, s in stream.state_spec(None).items()}
  outs = []
  for start in range(0, N_FRAMES, block_frames):
    frames = {k: v[:, start:start + block_frames] for k, v in controls.items()}
    audio, state = stream.step(frames, state, noise[:, start * HOP:(start + block_frames) * HOP])
    assert audio.shape == (2, block_frames * HOP)
    outs.append(audio.numpy())
  tail, _ = stream.flush(state)
  outs.append(tail.numpy())
  return stream, np.concatenate(outs, axis=1)


@pytest.mark.parametrize('name', sorted(DAGS))
@pytest.mark.parametrize('block_frames', [1, 4, 16])
def test_stream_equals_offline(name, block_frames):
  controls = _controls()
  group, ref = _offline(DAGS[name](), controls)
  assert np.sqrt(np.mean(ref ** 2)) > 1e-3  # audible: the comparison means something
  stream, audio = _stream(group, controls, block_frames, _noise_draw(group, 2))
  d = stream.latency
  np.testing.assert_allclose(audio[:, :d], 0.0, atol=1e-6)  # the pre-roll is silent
  np.testing.assert_allclose(audio[:, d:], ref, atol=1e-4 * max(1.0, np.max(np.abs(ref))), rtol=0)


def test_latency_is_the_largest_lookahead():
  """Harmonic needs 2 frames; a 257-tap noise FIR 2 frames at hop 64 (128 samples back), a 513-tap one 4."""
  controls = _controls(n_bands=257)
  group = processors.ProcessorGroup(dag=[(_harmonic(), HARMONIC_KEYS)])
  assert blocks.GroupStream(group, _channels(controls), processors.StreamConfig(HOP, 4)).latency_frames == 2
  group = processors.ProcessorGroup(dag=[(_noise(window_size=513), ['noise_magnitudes'])])
  stream = blocks.GroupStream(group, _channels(controls), processors.StreamConfig(HOP, 4))
  assert stream.latency_frames == 4  # ceil(256 / 64)


def _streaming_classes():
  """Every processor class of the DSP library that overrides `Processor.block_step`."""
  found = set()
  for module in (synths, effects, processors):
    for _, cls in inspect.getmembers(module, inspect.isclass):
      if issubclass(cls, processors.Processor) and cls.block_step is not processors.Processor.block_step:
        found.add(cls)
  return found


def test_every_streaming_processor_is_tested():
  tested = {type(proc) for build in DAGS.values() for proc, _ in build()}
  classes = _streaming_classes()
  # ReverbBase's step serves its three trainable subclasses; the base itself is abstract.
  classes.discard(effects.ReverbBase)
  assert classes - tested == set(), f'streaming processors without a block == offline test: {classes - tested}'


@pytest.mark.parametrize('proc, keys, match', [
    (synths.Sinusoidal(n_samples=N_SAMPLES), ['amps', 'amps'], r"'sinusoidal' \(Sinusoidal\) cannot stream"),
    (effects.Reverb(trainable=False), ['harmonic/signal', 'amps'], 'only a trainable reverb streams'),
    (effects.ModDelay(), ['harmonic/signal', 'amps', 'amps'], r"'mod_delay' \(ModDelay\)"),
])
def test_a_node_without_a_step_is_named(proc, keys, match):
  controls = _controls()
  group = processors.ProcessorGroup(dag=[(_harmonic(), HARMONIC_KEYS), (proc, keys)])
  with pytest.raises(ValueError, match=match):
    blocks.GroupStream(group, _channels(controls), processors.StreamConfig(HOP, 4))


def test_wrong_inputs_are_named():
  controls = _controls()
  group = processors.ProcessorGroup(dag=[(_harmonic(), ['amps', 'harmonic_distribution', 'pitch'])])
  with pytest.raises(ValueError, match="reads 'pitch'"):
    blocks.GroupStream(group, _channels(controls), processors.StreamConfig(HOP, 4))
  group = processors.ProcessorGroup(dag=[(effects.Reverb(trainable=True, reverb_length=100), ['amps'])])
  with pytest.raises(ValueError, match='takes earlier audio signals'):
    blocks.GroupStream(group, _channels(controls), processors.StreamConfig(HOP, 4))


def test_fir_design_matrix_is_the_offline_filter():
  """The matrix form equals irfft + Hann window + centring (`core.frequency_impulse_response`), and numpy's."""
  from ddsp import core
  rng = np.random.default_rng(3)
  mags = rng.uniform(0.0, 1.0, (3, 65)).astype(np.float32)
  window = blocks.fir_window_size(257, 65)
  assert window == 127  # capped at the irfft size 128, made odd
  ours = mags @ blocks.fir_design_matrix(65, window).numpy()
  ref = core.frequency_impulse_response(mags[np.newaxis], window)[0].numpy()
  np.testing.assert_allclose(ours, ref, atol=1e-6)
  ir = np.fft.irfft(mags.astype(np.float64), axis=-1)
  centred = np.roll(ir, window // 2, axis=-1)[:, :window] * np.hanning(window)
  np.testing.assert_allclose(ours, centred, atol=1e-6)


def test_partitioned_convolution_is_a_causal_convolution():
  """Blocks through the overlap-save state equal numpy's full convolution, for IRs longer than a block."""
  rng = np.random.default_rng(4)
  ir = rng.normal(0.0, 1.0, 1000)
  x = rng.normal(0.0, 1.0, (1, 2048)).astype(np.float32)
  conv = blocks.PartitionedConvolution(ir, block_size=256, partition=64)
  assert conv.part == 64 and conv.n_parts == 16
  state = {k: np.zeros([1 if d is None else d for d in s.shape], np.float32)
           for k, s in conv.state_spec(None).items()}
  outs = []
  for start in range(0, 2048, 256):
    out, state = conv.step(x[:, start:start + 256], state)
    outs.append(out.numpy())
  np.testing.assert_allclose(np.concatenate(outs, axis=1)[0], np.convolve(x[0], ir)[:2048], atol=2e-4)
