"""Synthesizers: processors that generate audio from frame-rate controls.

All take controls at the frame rate (`[batch, n_frames, channels]`) and return audio `[batch, n_samples]`.
"""
import contextlib
import math
import threading
import zlib

import gin
import keras
import numpy as np
import tensorflow as tf

from ddsp import blocks
from ddsp import core
from ddsp import oscillators
from ddsp import processors

# Phase unit of a streaming Harmonic: 2**-23 Hz-samples, so that a float32 frequency of 1 Hz or more is a whole
# number of units.
PHASE_UNITS_PER_HZ = 2.0 ** 23


def _check_controls(**controls):
  """Eager-mode NaN checks with the argument's name in the message."""
  for name, value in controls.items():
    if value is not None:
      core.check_finite(value, name)


@gin.register
class Harmonic(processors.Processor):
  """Additive synthesizer of harmonics of a fundamental (the paper's harmonic oscillator).

  `Harmonic(...)(amplitudes [B,T,1], harmonic_distribution [B,T,K], f0_hz [B,T,1]) -> [B, n_samples]`.
  Harmonic k sounds at k * f0 with amplitude `amplitudes * harmonic_distribution[k]`; harmonics at or above
  Nyquist are muted and the distribution renormalised; frames with f0 <= 0 are silent.
  """

  def __init__(self, n_samples=64000, sample_rate=16000, scale_fn=core.exp_sigmoid, normalize_below_nyquist=True,
               amp_resample_method='window', phase_precision='float64', causal_nyquist=False, name='harmonic',
               **kwargs):
    """Constructor.

    Args:
      n_samples: output length.
      sample_rate: samples per second.
      scale_fn: applied to `amplitudes` and `harmonic_distribution` (network outputs); None uses them as given
        (linear amplitudes).
      normalize_below_nyquist: renormalise the distribution after muting harmonics above Nyquist.
      amp_resample_method: 'window' (overlapping Hann windows) or 'linear' upsampling of the amplitudes.
      phase_precision: 'float64' or 'chunked' (float32, for TPUs); see `oscillators.angular_cumsum`.
      causal_nyquist: the Nyquist mask of frame t from f0 of frames t - 1 and t only
        (`oscillators.nyquist_peak`), offline and streaming alike: a stream's look-ahead of 1 frame instead of 2
        (the low-latency live recipe, `gin/models/realtime/realtime_48k_lowlatency.gin`). Default False (frames
        t - 1 .. t + 1), so existing models and checkpoints sound as trained.
      name: layer name (the key prefix in a ProcessorGroup).
      **kwargs: for keras.layers.Layer.
    """
    super().__init__(name=name, **kwargs)
    self.n_samples = int(n_samples)
    self.sample_rate = int(sample_rate)
    self.scale_fn = scale_fn
    self.normalize_below_nyquist = normalize_below_nyquist
    self.amp_resample_method = amp_resample_method
    self.phase_precision = phase_precision
    self.causal_nyquist = bool(causal_nyquist)

  def get_controls(self, amplitudes, harmonic_distribution, f0_hz):
    """Network outputs -> synthesizer controls.

    Args:
      amplitudes: `[batch, n_frames, 1]`.
      harmonic_distribution: `[batch, n_frames, n_harmonics]`.
      f0_hz: `[batch, n_frames, 1]` in Hz (>= 0).

    Returns:
      dict of 'amplitudes', 'harmonic_distribution' (normalised, Nyquist-masked), 'f0_hz'.
    """
    amplitudes = core.ensure_3d(amplitudes, 'amplitudes')
    harmonic_distribution = core.ensure_3d(harmonic_distribution, 'harmonic_distribution')
    f0_hz = core.ensure_3d(f0_hz, 'f0_hz')
    oscillators.check_shapes_match(f0_hz, amplitudes, harmonic_distribution)
    _check_controls(amplitudes=amplitudes, harmonic_distribution=harmonic_distribution, f0_hz=f0_hz)
    core.check_non_negative(f0_hz, 'f0_hz')
    if self.scale_fn is not None:
      amplitudes = self.scale_fn(amplitudes)
      harmonic_distribution = self.scale_fn(harmonic_distribution)
    f0_hz = tf.maximum(f0_hz, 0.0)
    harmonic_distribution = oscillators.normalize_harmonics(
        harmonic_distribution, oscillators.nyquist_peak(f0_hz, self.causal_nyquist), self.sample_rate,
        normalize=self.normalize_below_nyquist)
    return {'amplitudes': amplitudes, 'harmonic_distribution': harmonic_distribution, 'f0_hz': f0_hz}

  def get_signal(self, amplitudes, harmonic_distribution, f0_hz, initial_phase=None):
    """Controls -> audio `[batch, n_samples]` (see `oscillators.harmonic_synthesis`)."""
    return oscillators.harmonic_synthesis(
        frequencies=f0_hz, amplitudes=amplitudes, harmonic_distribution=harmonic_distribution,
        n_samples=self.n_samples, sample_rate=self.sample_rate, amp_resample_method=self.amp_resample_method,
        initial_phase=initial_phase, phase_precision=self.phase_precision, normalize_below_nyquist=False,
        causal_nyquist=self.causal_nyquist)

  def block_step(self, config, input_channels):
    return HarmonicStep(self)


class HarmonicStep(processors.BlockStep):
  """`Harmonic` block by block (`processors.Block`): the same controls and segment maths as offline.

  The audio between frames t and t+1 crossfades the harmonic amplitudes of both frames, whose Nyquist masks look
  at f0 of frames t-1..t+2: a look-ahead of 2 frames (with `Harmonic.causal_nyquist`, frames t-1..t+1: 1 frame).
  State: `phase` `[B]` int64, the fundamental's running phase in units of 2**-23 Hz-samples, wrapped exactly
  (integer arithmetic: no drift, float32-exact to ~3e-7 rad after any duration).
  """

  def __init__(self, harmonic):
    self.harmonic = harmonic
    self.lookahead_frames = 1 if harmonic.causal_nyquist else 2

  def state_spec(self, batch_size, latency_frames):
    return {'phase': tf.TensorSpec([batch_size], tf.int64)}

  def step(self, inputs, state, block):
    proc, hop, n = self.harmonic, block.hop, block.n_frames
    amps, dist, f0 = inputs  # [B, D + 1 + n, C]: frames [s - D - 1, s + n)
    f0 = tf.maximum(f0, 0.0)
    # Frames [s - D, s - D + n + 1), every neighbour the mask reads present (D >= lookahead_frames).
    peak = oscillators.nyquist_peak(f0, proc.causal_nyquist)[:, 1:n + 2]
    amps, dist, f0 = amps[:, 1:n + 2], dist[:, 1:n + 2], f0[:, 1:n + 2]
    if proc.scale_fn is not None:
      amps, dist = proc.scale_fn(amps), proc.scale_fn(dist)
    dist = oscillators.normalize_harmonics(dist, peak, proc.sample_rate, normalize=proc.normalize_below_nyquist)
    harm = amps * dist * tf.cast(f0 > 0.0, tf.float32)  # [B, n + 1, K]
    if block.final:
      harm = tf.concat([harm[:, :-1], harm[:, -2:-1]], axis=1)  # offline holds the last frame past the end
    # f0 linearly interpolated within each segment.
    frac = tf.range(hop, dtype=tf.float32) / hop
    lo, hi = f0[:, :-1, tf.newaxis, :], f0[:, 1:, tf.newaxis, :]
    f0_audio = tf.reshape(lo + frac[tf.newaxis, tf.newaxis, :, tf.newaxis] * (hi - lo), [tf.shape(f0)[0], n * hop])
    # Frequencies in integer units (exact for float32 values >= 1 Hz), summed and wrapped in int64; one turn is
    # sample_rate * 2**23 units.
    units = tf.cast(tf.round(f0_audio * PHASE_UNITS_PER_HZ), tf.int64)
    units *= tf.cast(block.valid_samples, tf.int64)
    turn = tf.constant(int(proc.sample_rate) * int(PHASE_UNITS_PER_HZ), tf.int64)
    phase0 = state['phase']
    phase = tf.math.floormod(tf.cumsum(units, axis=1, exclusive=True) + phase0[:, tf.newaxis], turn)
    phase = tf.cast(phase, tf.float32) * (2.0 * math.pi / (proc.sample_rate * PHASE_UNITS_PER_HZ))
    audio = oscillators.harmonic_segments(phase, harm, hop, proc.amp_resample_method) * block.valid_samples
    return audio, {'phase': tf.math.floormod(phase0 + tf.reduce_sum(units, axis=1), turn)}


@gin.register
class Sinusoidal(processors.Processor):
  """A bank of K free sinusoids with per-frame amplitudes and frequencies.

  `Sinusoidal(...)(amplitudes [B,T,K], frequencies [B,T,K]) -> [B, n_samples]`. Frequencies are in Hz unless
  `freq_scale_fn` maps network outputs to Hz (e.g. `frequencies_sigmoid`).
  """

  def __init__(self, n_samples=64000, sample_rate=16000, amp_scale_fn=core.exp_sigmoid, freq_scale_fn=None,
               name='sinusoidal', **kwargs):
    super().__init__(name=name, **kwargs)
    self.n_samples = int(n_samples)
    self.sample_rate = int(sample_rate)
    self.amp_scale_fn = amp_scale_fn
    self.freq_scale_fn = freq_scale_fn

  def get_controls(self, amplitudes, frequencies):
    """Args: amplitudes `[B,T,K]`, frequencies `[B,T,K]`. Returns the scaled controls (Nyquist-masked)."""
    amplitudes = core.ensure_3d(amplitudes, 'amplitudes')
    frequencies = core.ensure_3d(frequencies, 'frequencies')
    if (amplitudes.shape.is_fully_defined() and frequencies.shape.is_fully_defined()
        and amplitudes.shape != frequencies.shape):
      raise ValueError(f'Sinusoidal: `amplitudes` {amplitudes.shape} and `frequencies` {frequencies.shape} must '
                       'have the same shape [batch, n_frames, n_sinusoids].')
    _check_controls(amplitudes=amplitudes, frequencies=frequencies)
    if self.amp_scale_fn is not None:
      amplitudes = self.amp_scale_fn(amplitudes)
    if self.freq_scale_fn is not None:
      frequencies = self.freq_scale_fn(frequencies)
    core.check_non_negative(frequencies, 'frequencies')
    amplitudes = oscillators.remove_above_nyquist(frequencies, amplitudes, self.sample_rate)
    return {'amplitudes': amplitudes, 'frequencies': frequencies}

  def get_signal(self, amplitudes, frequencies):
    amp_env = core.resample(amplitudes, self.n_samples, method='window')
    freq_env = core.resample(frequencies, self.n_samples, method='linear')
    return oscillators.oscillator_bank(freq_env, amp_env, sample_rate=self.sample_rate)


@gin.register
def frequencies_sigmoid(freqs, hz_min=8.2, hz_max=8000.0):
  """Network outputs -> Hz on a log-frequency scale, via a sigmoid."""
  return core.unit_to_hz(tf.nn.sigmoid(freqs), hz_min=hz_min, hz_max=hz_max)


@gin.register
class Wavetable(processors.Processor):
  """Wavetable synthesizer: K single-cycle wavetables read at f0 with linear interpolation and mixed.

  `Wavetable(...)(amplitudes [B,T,K], f0_hz [B,T,1], wavetables [B,K,L] or [K,L])`; with `trainable=True` the
  K wavetables (length `wavetable_size`) are learned variables and `wavetables` is omitted. Tables are read
  without band-limiting: keep their content well below Nyquist / f0 harmonics.
  """

  def __init__(self, n_samples=64000, sample_rate=16000, scale_fn=core.exp_sigmoid, trainable=False,
               n_wavetables=4, wavetable_size=2048, name='wavetable', **kwargs):
    super().__init__(name=name, trainable=trainable, **kwargs)
    self.n_samples = int(n_samples)
    self.sample_rate = int(sample_rate)
    self.scale_fn = scale_fn
    self.n_wavetables = int(n_wavetables)
    self.wavetable_size = int(wavetable_size)
    if trainable:
      # Initialise with the first harmonics so the initial sound is band-limited.
      phase = np.arange(self.wavetable_size) * 2 * np.pi / self.wavetable_size
      init = np.stack([np.sin((i + 1) * phase) for i in range(self.n_wavetables)]).astype(np.float32)
      self.wavetables = self.add_weight(shape=init.shape, initializer=keras.initializers.Constant(init),
                                        trainable=True, name='wavetables')
    else:
      self.wavetables = None

  def get_controls(self, amplitudes, f0_hz, wavetables=None):
    amplitudes = core.ensure_3d(amplitudes, 'amplitudes')
    f0_hz = core.ensure_3d(f0_hz, 'f0_hz')
    if wavetables is None:
      if self.wavetables is None:
        raise ValueError('Wavetable(trainable=False) needs a `wavetables` input [batch, K, L] or [K, L].')
      wavetables = self.wavetables
    wavetables = core.tf_float32(wavetables, 'wavetables')
    if wavetables.shape.rank == 2:
      wavetables = wavetables[tf.newaxis]
    if wavetables.shape.rank != 3 or wavetables.shape[1] != amplitudes.shape[-1]:
      raise ValueError(f'`wavetables` must be [batch, K, L] with K = amplitudes.shape[-1] = {amplitudes.shape[-1]}, '
                       f'got {wavetables.shape}.')
    _check_controls(amplitudes=amplitudes, f0_hz=f0_hz, wavetables=wavetables)
    core.check_non_negative(f0_hz, 'f0_hz')
    if self.scale_fn is not None:
      amplitudes = self.scale_fn(amplitudes)
    return {'amplitudes': amplitudes, 'f0_hz': tf.maximum(f0_hz, 0.0), 'wavetables': wavetables}

  def get_signal(self, amplitudes, f0_hz, wavetables):
    amp_env = core.resample(amplitudes, self.n_samples, method='window')  # [B, N, K]
    f0_env = core.resample(f0_hz, self.n_samples, method='linear')[..., 0]  # [B, N]
    amp_env *= tf.cast(f0_env > 0.0, tf.float32)[..., tf.newaxis]
    omega = oscillators.hz_to_angular_frequency(f0_env, self.sample_rate)
    phase = oscillators.angular_cumsum(omega)  # [B, N] in [0, 2pi)
    size = wavetables.shape[-1]
    position = phase * (size / (2.0 * math.pi))
    lower = tf.floor(position)
    frac = position - lower
    lower = tf.cast(lower, tf.int32) % size
    upper = (lower + 1) % size
    tables = tf.broadcast_to(wavetables, [tf.shape(amp_env)[0], wavetables.shape[1], size])
    tables = tf.transpose(tables, [0, 2, 1])  # [B, L, K]
    lo = tf.gather(tables, lower, axis=1, batch_dims=1)  # [B, N, K]
    hi = tf.gather(tables, upper, axis=1, batch_dims=1)
    values = lo + frac[..., tf.newaxis] * (hi - lo)
    return tf.reduce_sum(amp_env * values, axis=-1)


class _TrainingNoise(threading.local):
  """The seed of `training_noise` (per thread: tf.distribute traces each replica's step on its own thread)."""
  seed = None  # int64 [2] tensor (key, counter) while a training step is traced, else None
  nodes = frozenset()  # ids of the FilteredNoise layers that draw from it despite a seed of their own


_TRAINING_NOISE = _TrainingNoise()


@contextlib.contextmanager
def training_noise(seed, nodes=()):
  """Within this block (on this thread) FilteredNoise draws stateless noise from `seed`.

  The trainer wraps each replica's forward pass in it, so that the noise of a training step is a function of
  the step alone: new noise every step and every replica, and a run resumed from a checkpoint draws exactly
  the noise that an uninterrupted run draws (its weights end bit-identical). Works eagerly, in `tf.function`
  and under XLA (`tf.random.stateless_uniform`).

  Args:
    seed: int `[2]` (a tensor inside a traced step): (key, counter). The trainer passes
      (`Trainer.noise_seed`, batch index * replicas + replica id). Each layer folds its name and its own
      seed into the key, so two noise nodes draw independent noise.
    nodes: FilteredNoise layers that draw from `seed` although they were given a `seed` of their own (the
      model's synthesis nodes: a fixed seed would repeat one noise signal every step). A FilteredNoise
      without a seed always draws from `seed` here; other seeded ones (the fixed noise of a
      `FilteredNoiseReverb` IR) keep their fixed noise.
  """
  previous = (_TRAINING_NOISE.seed, _TRAINING_NOISE.nodes)
  _TRAINING_NOISE.seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
  _TRAINING_NOISE.nodes = frozenset(id(n) for n in nodes)
  try:
    yield
  finally:
    _TRAINING_NOISE.seed, _TRAINING_NOISE.nodes = previous


@gin.register
class FilteredNoise(processors.Processor):
  """Uniform noise in [-1, 1] through a linear-time-varying FIR filter (the paper's noise synthesizer).

  `FilteredNoise(...)(magnitudes [B,T,n_bands]) -> [B, n_samples]`. The filter of frame t is designed by
  frequency sampling from its magnitudes (n_bands uniformly spaced from 0 Hz to Nyquist; 65 in the paper).
  """

  def __init__(self, n_samples=64000, window_size=257, scale_fn=core.exp_sigmoid, initial_bias=-5.0, seed=None,
               name='filtered_noise', **kwargs):
    """Constructor.

    Args:
      n_samples: output length (a multiple of the number of frames).
      window_size: length of each frame's impulse response (capped at 2 * (n_bands - 1) - 1).
      scale_fn: applied to `magnitudes + initial_bias`; None uses the magnitudes as given.
      initial_bias: added before `scale_fn`; -5 makes a fresh model quiet.
      seed: optional int; the same seed gives the same noise on every call (deterministic synthesis). In
        training (`training_noise`, entered by the trainer) the noise comes from the step instead.
      name: layer name.
      **kwargs: for keras.layers.Layer.
    """
    super().__init__(name=name, **kwargs)
    self.n_samples = int(n_samples)
    self.window_size = int(window_size)
    self.scale_fn = scale_fn
    self.initial_bias = float(initial_bias)
    self.seed = seed

  def get_controls(self, magnitudes):
    magnitudes = core.ensure_3d(magnitudes, 'magnitudes')
    _check_controls(magnitudes=magnitudes)
    if self.scale_fn is not None:
      magnitudes = self.scale_fn(magnitudes + self.initial_bias)
    else:
      core.check_non_negative(magnitudes, 'magnitudes')
    return {'magnitudes': magnitudes}

  def noise(self, batch_size):
    """Uniform white noise in [-1, 1], `[batch, n_samples]`.

    Inside `training_noise`: stateless noise of the training step's seed (see there). Otherwise: the fixed
    noise of `seed`, or, without a seed, a fresh draw of TensorFlow's stateful generator.
    """
    shape = [batch_size, self.n_samples]
    step_seed = _TRAINING_NOISE.seed
    if step_seed is not None and (self.seed is None or id(self) in _TRAINING_NOISE.nodes):
      # A 31-bit salt of the layer (its name and seed) in the low bits of the key keeps nodes independent.
      salt = zlib.crc32(f'{self.name}:{self.seed}'.encode()) & 0x7FFFFFFF
      key = step_seed[0] * (2 ** 31) + salt
      return tf.random.stateless_uniform(shape, seed=tf.stack([key, step_seed[1]]), minval=-1.0, maxval=1.0)
    if self.seed is None:
      return tf.random.uniform(shape, -1.0, 1.0)
    return tf.random.stateless_uniform(shape, seed=[int(self.seed), 0], minval=-1.0, maxval=1.0)

  def get_signal(self, magnitudes):
    noise = self.noise(tf.shape(magnitudes)[0])
    return core.frequency_filter(noise, magnitudes, window_size=self.window_size)

  def block_step(self, config, input_channels):
    return FilteredNoiseStep(self, input_channels[0], config.hop)


class FilteredNoiseStep(processors.BlockStep):
  """`FilteredNoise` block by block (`processors.Block`), filtering the block's noise (`Block.noise`).

  The same filters as offline (`blocks.fir_design_matrix`: frequency sampling, Hann window, linear phase),
  applied to each frame's hop of noise and overlap-added (`blocks.fir_overlap_add`). Frame t's centred W-tap FIR
  spills W // 2 samples back into earlier frames: a look-ahead of ceil((W // 2) / hop) frames. State: `tail`
  `[B, W - 1]` (the overlap-add tail) and `fifo` `[B, D * hop - W // 2]` (filtered samples final but not yet due).
  """

  def __init__(self, noise, n_bands, hop):
    self.noise = noise
    self.window = blocks.fir_window_size(noise.window_size, n_bands)
    self.design = blocks.fir_design_matrix(int(n_bands), self.window)
    self.hop = int(hop)
    self.lookahead_frames = -(-((self.window - 1) // 2) // self.hop)

  def state_spec(self, batch_size, latency_frames):
    return {'tail': tf.TensorSpec([batch_size, self.window - 1], tf.float32),
            'fifo': tf.TensorSpec([batch_size, latency_frames * self.hop - (self.window - 1) // 2], tf.float32)}

  def step(self, inputs, state, block):
    size, tail = block.n_samples, state['tail']
    if block.final:
      conv = tf.zeros([tf.shape(tail)[0], size + self.window - 1])  # no noise past the end
    else:
      mags = inputs[0][:, -block.n_frames:]  # the block's input frames
      if self.noise.scale_fn is not None:
        mags = self.noise.scale_fn(mags + self.noise.initial_bias)
      irs = tf.reshape(tf.matmul(tf.reshape(mags, [-1, mags.shape[-1]]), self.design),
                       [tf.shape(mags)[0], block.n_frames, self.window])
      conv = blocks.fir_overlap_add(block.noise, irs, self.hop)  # [B, size + W - 1]
    total = conv + tf.pad(tail, [[0, 0], [0, size]])
    pending = tf.concat([state['fifo'], total[:, :size]], axis=1)
    return pending[:, :size] * block.valid_samples, {'tail': total[:, size:], 'fifo': pending[:, size:]}
