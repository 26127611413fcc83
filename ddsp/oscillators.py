"""Oscillators: the running phase of a frequency track and additive synthesis from frame-rate controls.

Pure TensorFlow functions under the synthesizers of `ddsp.synths`. Frequencies are in Hz, phases in radians;
frame-rate controls are `[batch, n_frames, channels]`, audio `[batch, n_samples]`.
"""
import math

import gin
import tensorflow as tf

from ddsp import core


# ------------------------------------------------------------------------------------------------------------
# Phase accumulation.
# ------------------------------------------------------------------------------------------------------------
def _wrap(phase):
  return tf.math.floormod(phase, core.TWO_PI)


@gin.register
def angular_cumsum(angular_frequency, initial_phase=None, exclusive=True, precision='float64', chunk_size=64):
  """Running phase of an oscillator, wrapped to [0, 2 pi), accurate over minutes of audio.

  A float32 `cumsum` loses about 0.05 rad per minute at 2 kHz: the running sum grows to ~1e6 rad, where float32
  has 0.06 rad resolution. Two remedies, both differentiable:
    * 'float64' (default): accumulate in float64 and wrap once (error ~1e-9 rad after an hour). Runs on CPU
      and GPU, also under XLA.
    * 'chunked': float32 only (TPUs): sum within chunks of `chunk_size` samples, wrap the chunk totals, and
      accumulate those recursively, so no partial sum ever exceeds `chunk_size * pi`.

  Args:
    angular_frequency: radians per sample, `[batch, n_samples]` or `[batch, n_samples, channels]`.
    initial_phase: optional phase at sample 0, `[batch]`, `[batch, 1]` or `[batch, 1, channels]`.
    exclusive: if True phase[n] = initial + sum_{m<n} w[m] (so phase[0] = initial_phase and the next block
      of a stream starts from `initial + sum(w)`); if False the sum includes w[n].
    precision: 'float64' or 'chunked'.
    chunk_size: chunk length for 'chunked'.

  Returns:
    Wrapped phase in [0, 2 pi), float32, same shape as `angular_frequency`.
  """
  if isinstance(angular_frequency, tf.Tensor) and angular_frequency.dtype == tf.float64:
    w = angular_frequency
  else:
    w = core.tf_float32(angular_frequency, 'angular_frequency')
  if precision == 'float64':
    phase = tf.cumsum(tf.cast(w, tf.float64), axis=1, exclusive=exclusive)
    if initial_phase is not None:
      p0 = tf.cast(core.tf_float32(initial_phase, 'initial_phase'), tf.float64)
      phase += tf.reshape(p0, [-1] + [1] * (w.shape.rank - 1)) if p0.shape.rank == 1 else p0
    return tf.cast(tf.math.floormod(phase, core.TWO_PI), tf.float32)
  if precision != 'chunked':
    raise ValueError(f"`precision` must be 'float64' or 'chunked', got {precision!r}.")
  phase = _chunked_cumsum(w, chunk_size, exclusive)
  if initial_phase is not None:
    p0 = core.tf_float32(initial_phase, 'initial_phase')
    phase += tf.reshape(p0, [-1] + [1] * (w.shape.rank - 1)) if p0.shape.rank == 1 else p0
  return _wrap(phase)


def hz_to_angular_frequency(frequencies, sample_rate, precision='float64'):
  """Hz -> radians per sample; in float64 for precision 'float64' (float32 `2 pi f / sr` is off by up to
  3e-8 relative, 0.02 rad per minute at 2 kHz, before any summing)."""
  if precision == 'float64':
    return tf.cast(frequencies, tf.float64) * (core.TWO_PI / float(sample_rate))
  return frequencies * (core.TWO_PI / float(sample_rate))


def _chunked_cumsum(w, chunk_size, exclusive):
  """Wrapped cumulative sum along axis 1 whose partial sums never exceed chunk_size * max|w|."""
  n = w.shape[1]
  if n is None:
    raise ValueError('`angular_cumsum(precision="chunked")` needs a static number of samples.')
  if n <= chunk_size:
    return _wrap(tf.cumsum(w, axis=1, exclusive=exclusive))
  n_chunks = -(-n // chunk_size)
  pad = n_chunks * chunk_size - n
  paddings = [[0, 0], [0, pad]] + [[0, 0]] * (w.shape.rank - 2)
  wp = tf.pad(w, paddings)
  shape = tf.concat([tf.shape(wp)[:1], [n_chunks, chunk_size], tf.shape(wp)[2:]], axis=0)
  chunks = tf.reshape(wp, shape)
  local = tf.cumsum(chunks, axis=2, exclusive=exclusive)
  totals = _wrap(tf.reduce_sum(chunks, axis=2))
  offsets = _chunked_cumsum(totals, chunk_size, exclusive=True)
  phase = _wrap(local + offsets[:, :, tf.newaxis])
  phase = tf.reshape(phase, tf.concat([tf.shape(wp)[:1], [n_chunks * chunk_size], tf.shape(wp)[2:]], axis=0))
  return phase[:, :n]


# ------------------------------------------------------------------------------------------------------------
# Oscillators.
# ------------------------------------------------------------------------------------------------------------
def remove_above_nyquist(frequency_envelopes, amplitude_envelopes, sample_rate=16000):
  """Zeroes amplitudes whose frequency is at or above Nyquist (or at or below 0 Hz).

  Args:
    frequency_envelopes: `[batch, time, n_sinusoids]` in Hz.
    amplitude_envelopes: `[batch, time, n_sinusoids]`.
    sample_rate: samples per second.

  Returns:
    Masked amplitude envelopes, same shape.
  """
  valid = tf.logical_and(frequency_envelopes < sample_rate / 2.0, frequency_envelopes > 0.0)
  return tf.where(valid, amplitude_envelopes, tf.zeros_like(amplitude_envelopes))


@gin.register
def oscillator_bank(frequency_envelopes, amplitude_envelopes, sample_rate=16000, sum_sinusoids=True,
                    initial_phase=None, phase_precision='float64'):
  """A bank of sinusoids with sample-rate frequency and amplitude envelopes.

  Args:
    frequency_envelopes: `[batch, n_samples, n_sinusoids]` in Hz.
    amplitude_envelopes: `[batch, n_samples, n_sinusoids]`, linear amplitude.
    sample_rate: samples per second.
    sum_sinusoids: sum over sinusoids (-> `[batch, n_samples]`) or not (-> `[batch, n_samples, n_sinusoids]`).
    initial_phase: optional `[batch, 1, n_sinusoids]` starting phases in radians.
    phase_precision: see `angular_cumsum`.

  Returns:
    Audio `[batch, n_samples]` (or per-sinusoid `[batch, n_samples, n_sinusoids]`).
  """
  f = core.tf_float32(frequency_envelopes, 'frequency_envelopes')
  a = core.tf_float32(amplitude_envelopes, 'amplitude_envelopes')
  core.check_rank(f, (3,), 'frequency_envelopes')
  core.check_rank(a, (3,), 'amplitude_envelopes')
  if f.shape.is_fully_defined() and a.shape.is_fully_defined() and f.shape != a.shape:
    raise ValueError(f'`frequency_envelopes` {f.shape} and `amplitude_envelopes` {a.shape} must have the same '
                     'shape [batch, n_samples, n_sinusoids].')
  a = remove_above_nyquist(f, a, sample_rate)
  omegas = hz_to_angular_frequency(tf.maximum(f, 0.0), sample_rate, phase_precision)
  phases = angular_cumsum(omegas, initial_phase=initial_phase, precision=phase_precision)
  audio = a * tf.sin(phases)
  return tf.reduce_sum(audio, axis=-1) if sum_sinusoids else audio


def get_harmonic_frequencies(f0_hz, n_harmonics):
  """Harmonic frequencies `k * f0` for k = 1..n_harmonics.

  Args:
    f0_hz: `[batch, time, 1]`.
    n_harmonics: number of harmonics K.

  Returns:
    `[batch, time, K]` in Hz.
  """
  k = tf.range(1, n_harmonics + 1, dtype=tf.float32)
  return f0_hz * k


def normalize_harmonics(harmonic_distribution, f0_hz=None, sample_rate=None, normalize=True):
  """Mutes harmonics at or above Nyquist, then renormalises the distribution to sum to one.

  Args:
    harmonic_distribution: `[batch, time, K]`, non-negative.
    f0_hz: optional `[batch, time, 1]`; if given with `sample_rate`, harmonics k * f0 >= Nyquist are muted.
    sample_rate: samples per second.
    normalize: renormalise so each frame sums to one (frames that are all zero stay zero).

  Returns:
    `[batch, time, K]`.
  """
  if f0_hz is not None and sample_rate is not None:
    n_harmonics = harmonic_distribution.shape[-1]
    freqs = get_harmonic_frequencies(f0_hz, n_harmonics)
    harmonic_distribution = remove_above_nyquist(freqs, harmonic_distribution, sample_rate)
  if normalize:
    total = tf.reduce_sum(harmonic_distribution, axis=-1, keepdims=True)
    harmonic_distribution = core.safe_divide(harmonic_distribution, total)
  return harmonic_distribution


def neighbour_max(x):
  """max(x[t-1], x[t], x[t+1]) along axis 1 (edges replicated)."""
  prev = tf.concat([x[:, :1], x[:, :-1]], axis=1)
  nxt = tf.concat([x[:, 1:], x[:, -1:]], axis=1)
  return tf.maximum(tf.maximum(prev, x), nxt)


def causal_max(x):
  """max(x[t-1], x[t]) along axis 1 (the first frame its own predecessor): no frame after t."""
  prev = tf.concat([x[:, :1], x[:, :-1]], axis=1)
  return tf.maximum(prev, x)


def nyquist_peak(f0_hz, causal=False):
  """The f0 that frame t's Nyquist mask is computed from, `[batch, time, 1]`.

  Frame t's harmonic amplitudes sound in segments t - 1 (fading in) and t (fading out), over which f0 moves
  between frames t - 1 and t + 1. Centred (default): max of frames t - 1 .. t + 1, so no harmonic of frame t
  ever reaches Nyquist; segment t then needs f0 of frame t + 2 (a stream's look-ahead of 2 frames). Causal:
  max of frames t - 1 and t, so segment t needs only frames t and t + 1 (look-ahead 1 frame); the price is
  that while f0 rises from frame t to t + 1, a harmonic of frame t that crosses Nyquist inside segment t is not
  muted during its fade-out (frame t + 1's mask, which covers segment t, mutes it in the other half of the
  crossfade).
  """
  return causal_max(f0_hz) if causal else neighbour_max(f0_hz)


def _factor(n):
  """Splits n into (n_outer, n_inner) with n_outer * n_inner >= n and both near sqrt(n)."""
  inner = max(1, int(math.ceil(math.sqrt(n))))
  outer = int(math.ceil(n / inner))
  return outer, inner


@gin.register
def harmonic_synthesis(frequencies, amplitudes, harmonic_shifts=None, harmonic_distribution=None,
                       n_samples=64000, sample_rate=16000, amp_resample_method='window', initial_phase=None,
                       phase_precision='float64', normalize_below_nyquist=True, return_phase=False,
                       causal_nyquist=False):
  """Additive synthesis of a harmonic sound from frame-rate controls, without any per-harmonic-sample sine.

  Output: `sum_k a_k(n) sin(k phi(n))`, where phi is the running phase of f0 (linearly interpolated to the audio
  rate) and a_k(n) = amplitude(n) * distribution_k(n) is upsampled with overlapping Hann windows.

  Cost. The naive form evaluates batch x n_samples x K sines. Here, with K < Ko * Ki (both about sqrt(K)) and
  k = Ki a + b, sin(k phi) = sin(Ki a phi) cos(b phi) + cos(Ki a phi) sin(b phi): only 2 (Ki + Ko) sines per
  sample (40 instead of 100 for K = 100). For each hop-long segment between frames t and t+1 the sum over b is a
  small matrix product of the per-sample `[cos(b phi), sin(b phi)]`, weighted by the Hann crossfade of the two
  frames, with both frames' amplitudes arranged as `[Ki, Ko]` matrices; the sum over a is a short dot product
  per sample. The backward pass costs about as much as the forward.

  Args:
    frequencies: f0 in Hz, `[batch, n_frames, 1]` (or `[batch, n_frames]`). Frames at or below 0 Hz are silent.
    amplitudes: overall amplitude, `[batch, n_frames, 1]`, linear.
    harmonic_shifts: unsupported placeholder for inharmonicity (must be None).
    harmonic_distribution: `[batch, n_frames, K]`, non-negative. If None, a single harmonic.
    n_samples: output length; must be a multiple of n_frames for the fast path (otherwise a generic path
      with an `oscillator_bank` over upsampled envelopes is used).
    sample_rate: samples per second.
    amp_resample_method: 'window' (default) or 'linear' interpolation of the amplitude envelopes.
    initial_phase: optional `[batch]` or `[batch, 1]` phase of the fundamental at sample 0 (streaming).
    phase_precision: see `angular_cumsum`.
    normalize_below_nyquist: renormalise the distribution after muting harmonics at or above Nyquist.
    return_phase: also return the fundamental's phase after the last sample, `[batch]` (for streaming).
    causal_nyquist: mute harmonics by f0 of frames t - 1 and t only (`nyquist_peak`), so segment t needs no
      frame after t + 1 (the low-latency live convention); default False: frames t - 1 .. t + 1.

  Returns:
    Audio `[batch, n_samples]` (and the final phase if `return_phase`).
  """
  if harmonic_shifts is not None:
    raise ValueError('`harmonic_shifts` is not supported; use `oscillator_bank` for inharmonic partials.')
  f0 = core.ensure_3d(frequencies, 'frequencies')
  amps = core.ensure_3d(amplitudes, 'amplitudes')
  if harmonic_distribution is None:
    dist = tf.ones_like(amps)
  else:
    dist = core.ensure_3d(harmonic_distribution, 'harmonic_distribution')
  check_shapes_match(f0, amps, dist)
  f0 = tf.maximum(f0, 0.0)
  n_frames = f0.shape[1]
  n_harmonics = dist.shape[-1]

  # Frame-rate harmonic amplitudes; mute harmonics that reach Nyquist anywhere in the two segments a frame
  # contributes to (causal: in what frames t - 1 and t tell of them).
  f0_peak = nyquist_peak(f0, causal_nyquist)
  dist = normalize_harmonics(dist, f0_peak, sample_rate, normalize=normalize_below_nyquist)
  harm_amps = amps * dist * tf.cast(f0 > 0.0, tf.float32)  # [B, T, K]

  f0_audio = core.resample(f0, n_samples, method='linear')[..., 0]  # [B, N]
  omega = hz_to_angular_frequency(f0_audio, sample_rate, phase_precision)
  phase = angular_cumsum(omega, initial_phase=initial_phase, precision=phase_precision)  # [B, N]

  if n_frames is None or n_samples % n_frames != 0:
    # Generic path: per-sample envelopes.
    amp_env = core.resample(harm_amps, n_samples, method=amp_resample_method)
    k = tf.range(1, n_harmonics + 1, dtype=tf.float32)
    audio = tf.reduce_sum(amp_env * tf.sin(phase[..., tf.newaxis] * k), axis=-1)
  else:
    # The last frame's amplitudes are held over its segment.
    bounds = tf.concat([harm_amps, harm_amps[:, -1:]], axis=1)
    audio = harmonic_segments(phase, bounds, n_samples // n_frames, amp_resample_method)

  if return_phase:
    return audio, _wrap(phase[:, -1] + tf.cast(omega[:, -1], tf.float32))
  return audio


def check_shapes_match(f0, amps, dist):
  for name, x in (('amplitudes', amps), ('harmonic_distribution', dist)):
    if f0.shape[1] is not None and x.shape[1] is not None and f0.shape[1] != x.shape[1]:
      raise ValueError(f'`frequencies` {f0.shape} and `{name}` {x.shape} must have the same number of frames.')
  if amps.shape[-1] not in (None, 1):
    raise ValueError(f'`amplitudes` must be [batch, n_frames, 1], got {amps.shape}.')
  if f0.shape[-1] not in (None, 1):
    raise ValueError(f'`frequencies` (f0) must be [batch, n_frames, 1], got {f0.shape}.')


def harmonic_segments(phase, harm_amps, hop, amp_resample_method='window'):
  """Sum of harmonics over hop-long segments, each crossfading the amplitudes of the two frames around it.

  The fast path of `harmonic_synthesis` (n_samples = n_frames * hop), and the block step of a streaming
  `Harmonic`: segment t spans frames t and t+1.

  Args:
    phase: `[B, S * hop]` fundamental phase of the S segments.
    harm_amps: `[B, S + 1, K]` amplitude of harmonic k+1 at the frames bounding the segments.
    hop: samples per segment.
    amp_resample_method: 'window' (Hann crossfade) or 'linear'.

  Returns:
    `[B, S * hop]` audio.
  """
  batch = tf.shape(phase)[0]
  n_seg = harm_amps.shape[1] - 1
  n_harmonics = harm_amps.shape[-1]
  n_outer, n_inner = _factor(n_harmonics + 1)  # index 0 is the (silent) DC term
  n_total = n_outer * n_inner

  # Coefficients c[k] for k = 0..n_total-1 with c[0] = 0, arranged [.., b, a] for k = n_inner * a + b.
  coeffs = tf.pad(harm_amps, [[0, 0], [0, 0], [1, n_total - n_harmonics - 1]])
  coeffs = tf.transpose(tf.reshape(coeffs, [batch, n_seg + 1, n_outer, n_inner]), [0, 1, 3, 2])
  # The segment's first frame's matrix stacked on its second's along the contracted axis: [B, S, 2 Ki, Ko].
  mats = tf.concat([coeffs[:, :-1], coeffs[:, 1:]], axis=-2)

  phase = tf.reshape(phase, [batch, n_seg, hop, 1])
  # sin((Ki a + b) phi) = sin(Ki a phi) cos(b phi) + cos(Ki a phi) sin(b phi): 2 (Ki + Ko) sines per sample.
  inner = phase * tf.range(n_inner, dtype=tf.float32)
  outer = phase * (float(n_inner) * tf.range(n_outer, dtype=tf.float32))
  frac = tf.range(hop, dtype=tf.float32) / hop
  if amp_resample_method == 'window':
    frac = tf.sin(0.5 * math.pi * frac) ** 2
  frac = frac[:, tf.newaxis]
  # Rows: [(1 - w) cos(b phi), w cos(b phi)] then [(1 - w) sin(b phi), w sin(b phi)] for each sample, so that one
  # matmul per segment gives the cross-faded sums over b directly (no slicing of the products, whose gradients
  # are slow).
  cos_in, sin_in = tf.cos(inner), tf.sin(inner)
  left = tf.concat([tf.concat([(1.0 - frac) * cos_in, frac * cos_in], axis=-1),
                    tf.concat([(1.0 - frac) * sin_in, frac * sin_in], axis=-1)], axis=-2)  # [B, S, 2 hop, 2 Ki]
  prod = tf.matmul(left, mats)  # [B, S, 2 hop, Ko]
  p_c, p_s = tf.split(prod, 2, axis=-2)  # sum_b c_ab cos(b phi), sum_b c_ab sin(b phi), cross-faded
  audio = tf.reduce_sum(tf.sin(outer) * p_c + tf.cos(outer) * p_s, axis=-1)  # [B, S, hop]
  return tf.reshape(audio, [batch, n_seg * hop])
