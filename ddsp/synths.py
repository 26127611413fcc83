"""Synthesizers: processors that generate audio from frame-rate controls.

All take controls at the frame rate (`[batch, n_frames, channels]`) and return audio `[batch, n_samples]`.
"""
import math

import gin
import keras
import numpy as np
import tensorflow as tf

from ddsp import core
from ddsp import processors


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
               amp_resample_method='window', phase_precision='float64', name='harmonic', **kwargs):
    """Constructor.

    Args:
      n_samples: output length.
      sample_rate: samples per second.
      scale_fn: applied to `amplitudes` and `harmonic_distribution` (network outputs); None uses them as given
        (linear amplitudes).
      normalize_below_nyquist: renormalise the distribution after muting harmonics above Nyquist.
      amp_resample_method: 'window' (overlapping Hann windows) or 'linear' upsampling of the amplitudes.
      phase_precision: 'float64' or 'chunked' (float32, for TPUs); see `core.angular_cumsum`.
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
    core._check_shapes_match(f0_hz, amplitudes, harmonic_distribution)  # pylint: disable=protected-access
    _check_controls(amplitudes=amplitudes, harmonic_distribution=harmonic_distribution, f0_hz=f0_hz)
    core.check_non_negative(f0_hz, 'f0_hz')
    if self.scale_fn is not None:
      amplitudes = self.scale_fn(amplitudes)
      harmonic_distribution = self.scale_fn(harmonic_distribution)
    f0_hz = tf.maximum(f0_hz, 0.0)
    harmonic_distribution = core.normalize_harmonics(
        harmonic_distribution, core._neighbour_max(f0_hz), self.sample_rate,  # pylint: disable=protected-access
        normalize=self.normalize_below_nyquist)
    return {'amplitudes': amplitudes, 'harmonic_distribution': harmonic_distribution, 'f0_hz': f0_hz}

  def get_signal(self, amplitudes, harmonic_distribution, f0_hz, initial_phase=None):
    """Controls -> audio `[batch, n_samples]` (see `core.harmonic_synthesis`)."""
    return core.harmonic_synthesis(
        frequencies=f0_hz, amplitudes=amplitudes, harmonic_distribution=harmonic_distribution,
        n_samples=self.n_samples, sample_rate=self.sample_rate, amp_resample_method=self.amp_resample_method,
        initial_phase=initial_phase, phase_precision=self.phase_precision, normalize_below_nyquist=False)


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
    amplitudes = core.remove_above_nyquist(frequencies, amplitudes, self.sample_rate)
    return {'amplitudes': amplitudes, 'frequencies': frequencies}

  def get_signal(self, amplitudes, frequencies):
    amp_env = core.resample(amplitudes, self.n_samples, method='window')
    freq_env = core.resample(frequencies, self.n_samples, method='linear')
    return core.oscillator_bank(freq_env, amp_env, sample_rate=self.sample_rate)


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
    phase = core.angular_cumsum(core.hz_to_angular_frequency(f0_env, self.sample_rate))  # [B, N] in [0, 2pi)
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
      seed: optional int; the same seed gives the same noise on every call (deterministic synthesis).
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
    """Uniform white noise in [-1, 1], `[batch, n_samples]`."""
    shape = [batch_size, self.n_samples]
    if self.seed is None:
      return tf.random.uniform(shape, -1.0, 1.0)
    return tf.random.stateless_uniform(shape, seed=[int(self.seed), 0], minval=-1.0, maxval=1.0)

  def get_signal(self, magnitudes):
    noise = self.noise(tf.shape(magnitudes)[0])
    return core.frequency_filter(noise, magnitudes, window_size=self.window_size)
