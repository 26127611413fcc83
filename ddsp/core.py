"""Pure TensorFlow functions: the differentiable DSP building blocks.

Conventions:
  * audio is float32 `[batch, n_samples]`;
  * frame-rate controls are `[batch, n_frames, channels]`;
  * frame `t` is centred on sample `t * hop`, with `hop = n_samples / n_frames`.

Every function here is stateless, works eagerly, inside `tf.function` and under XLA (`jit_compile=True`), and
accepts a dynamic batch size.
"""
import math

import gin
import numpy as np
import tensorflow as tf

TWO_PI = 2.0 * math.pi


# ------------------------------------------------------------------------------------------------------------
# Input checking.
# ------------------------------------------------------------------------------------------------------------
def tf_float32(x, name='input'):
  """Converts `x` to a float32 tensor, with a clear error for non-numeric input.

  Args:
    x: array-like or tensor of any real dtype.
    name: the argument's name, used in error messages.

  Returns:
    A float32 tf.Tensor.

  Raises:
    ValueError: for complex, string or boolean input.
  """
  if not isinstance(x, (tf.Tensor, tf.Variable, np.ndarray)) and hasattr(x, 'value') and hasattr(x, 'dtype'):
    x = tf.convert_to_tensor(x)  # a keras.Variable
  if isinstance(x, (tf.Tensor, tf.Variable)):
    dtype = x.dtype
  else:
    arr = np.asarray(x)
    dtype = tf.as_dtype(arr.dtype) if arr.dtype.kind in 'biuf' else None
    if dtype is None:
      raise ValueError(f'`{name}` must be a real-valued array, got dtype {arr.dtype} with shape {arr.shape}.')
    x = arr
  if dtype.is_complex or dtype == tf.string or dtype == tf.bool:
    raise ValueError(f'`{name}` must be real-valued floats, got dtype {dtype.name} with shape {x.shape}.')
  if dtype == tf.float32:
    return tf.convert_to_tensor(x)
  return tf.cast(x, tf.float32)


def _check_rank(x, ranks, name):
  """Raises a ValueError naming `name` unless `x.shape.rank` is one of `ranks`."""
  if x.shape.rank is not None and x.shape.rank not in ranks:
    want = ' or '.join(str(r) for r in ranks)
    raise ValueError(f'`{name}` must have rank {want}, got shape {x.shape}.')


def check_finite(x, name):
  """In eager mode, raises ValueError if `x` holds NaN or Inf. No-op while tracing (XLA-safe)."""
  if tf.executing_eagerly() and not bool(tf.reduce_all(tf.math.is_finite(x))):
    raise ValueError(f'`{name}` contains NaN or Inf values (shape {x.shape}).')


def check_non_negative(x, name):
  """In eager mode, raises ValueError if `x` has negative entries. No-op while tracing."""
  if tf.executing_eagerly() and bool(tf.reduce_any(x < 0.0)):
    raise ValueError(f'`{name}` must be >= 0 everywhere, got a minimum of {float(tf.reduce_min(x)):.4g} '
                     f'(shape {x.shape}).')


def ensure_3d(x, name='input'):
  """Adds a channel axis to `[batch, time]` inputs, so the result is `[batch, time, channels]`."""
  x = tf_float32(x, name)
  _check_rank(x, (2, 3), name)
  return x[..., tf.newaxis] if x.shape.rank == 2 else x


# ------------------------------------------------------------------------------------------------------------
# Units.
# ------------------------------------------------------------------------------------------------------------
@gin.register
def safe_log(x, eps=1e-5):
  """Natural log of `max(x, eps)`: finite values and gradients at 0."""
  return tf.math.log(tf.maximum(x, eps))


def safe_divide(numerator, denominator, eps=1e-7):
  """Division that is finite (and has finite gradients) when the denominator is 0."""
  safe_denominator = tf.where(denominator == 0.0, eps, denominator)
  return numerator / safe_denominator


def hz_to_midi(frequencies):
  """Hz -> MIDI note number (A4 = 440 Hz = 69). Frequencies <= 0 map to MIDI 0, never NaN.

  Args:
    frequencies: float tensor or array of any shape, in Hz.

  Returns:
    MIDI note numbers, same shape; NumPy in, NumPy out.
  """
  if isinstance(frequencies, (np.ndarray, float, int)):
    f = np.asarray(frequencies, dtype=np.float64)
    notes = 12.0 * (np.log2(np.maximum(f, 1e-10)) - np.log2(440.0)) + 69.0
    return np.where(f <= 0.0, 0.0, np.maximum(notes, 0.0)).astype(np.float32)
  f = tf_float32(frequencies, 'frequencies')
  notes = 12.0 * (tf.math.log(tf.maximum(f, 1e-10)) / math.log(2.0) - math.log2(440.0)) + 69.0
  return tf.where(f <= 0.0, 0.0, tf.maximum(notes, 0.0))


def midi_to_hz(notes, midi_zero_silence=False):
  """MIDI note number -> Hz. With `midi_zero_silence`, MIDI 0 maps to 0 Hz (the inverse of `hz_to_midi`)."""
  if isinstance(notes, (np.ndarray, float, int)):
    n = np.asarray(notes, dtype=np.float64)
    hz = 440.0 * 2.0 ** ((n - 69.0) / 12.0)
    return np.where((n <= 0.0) & midi_zero_silence, 0.0, hz).astype(np.float32)
  n = tf_float32(notes, 'notes')
  hz = 440.0 * tf.pow(2.0, (n - 69.0) / 12.0)
  return tf.where(n <= 0.0, 0.0, hz) if midi_zero_silence else hz


def unit_to_midi(unit, midi_min=20.0, midi_max=90.0, clip=False):
  """Maps [0, 1] to [midi_min, midi_max]."""
  unit = tf.clip_by_value(unit, 0.0, 1.0) if clip else unit
  return midi_min + (midi_max - midi_min) * unit


def midi_to_unit(midi, midi_min=20.0, midi_max=90.0, clip=False):
  """Maps [midi_min, midi_max] to [0, 1]."""
  unit = (midi - midi_min) / (midi_max - midi_min)
  return tf.clip_by_value(unit, 0.0, 1.0) if clip else unit


def unit_to_hz(unit, hz_min, hz_max, clip=False):
  """Maps [0, 1] to [hz_min, hz_max] on a MIDI (log-frequency) scale."""
  midi = unit_to_midi(unit, hz_to_midi(float(hz_min)), hz_to_midi(float(hz_max)), clip=clip)
  return midi_to_hz(midi)


def hz_to_unit(hz, hz_min, hz_max, clip=False):
  """Maps [hz_min, hz_max] to [0, 1] on a MIDI (log-frequency) scale."""
  return midi_to_unit(hz_to_midi(hz), hz_to_midi(float(hz_min)), hz_to_midi(float(hz_max)), clip=clip)


def _to_db(x, factor, ref_db, range_db, use_tf):
  """`factor * log10(max(x, 1e-20)) - ref_db`, floored at `-range_db` (TensorFlow or NumPy)."""
  if use_tf:
    db = factor * tf.math.log(tf.maximum(x, 1e-20)) / math.log(10.0) - ref_db
    return tf.maximum(db, -range_db)
  db = factor * np.log10(np.maximum(x, 1e-20)) - ref_db
  return np.maximum(db, -range_db)


def amplitude_to_db(amplitude, ref_db=0.0, range_db=120.0, use_tf=True):
  """Linear amplitude -> dB (20 log10), relative to `ref_db`, floored at `-range_db`."""
  return _to_db(amplitude, 20.0, ref_db, range_db, use_tf)


def power_to_db(power, ref_db=0.0, range_db=120.0, use_tf=True):
  """Power -> dB (10 log10), relative to `ref_db`, floored at `-range_db`."""
  return _to_db(power, 10.0, ref_db, range_db, use_tf)


def db_to_amplitude(db):
  """dB -> linear amplitude (10 ** (db / 20))."""
  return tf.pow(10.0, db / 20.0)


def db_to_power(db):
  """dB -> power (10 ** (db / 10))."""
  return tf.pow(10.0, db / 10.0)


@gin.register
def exp_sigmoid(x, exponent=10.0, max_value=2.0, threshold=1e-7):
  """The paper's scaled sigmoid for amplitude-like outputs: `max_value * sigmoid(x) ** log(exponent) + threshold`.

  Args:
    x: network output of any shape.
    exponent: sets the slope in log space (10 -> the output spans about 1e-7..2 like a dB scale).
    max_value: the limit for large `x`.
    threshold: the floor for very negative `x`, which keeps gradients and logs finite.

  Returns:
    Positive tensor, same shape as `x`.
  """
  x = tf_float32(x, 'x')
  return max_value * tf.nn.sigmoid(x) ** math.log(exponent) + threshold


# ------------------------------------------------------------------------------------------------------------
# Resampling between frame rate and audio rate.
# ------------------------------------------------------------------------------------------------------------
def _positions(n_in, n_out):
  """Frame positions (in input-frame units) of each output step; frame t sits at t * n_out / n_in."""
  return tf.range(n_out, dtype=tf.float32) * (tf.cast(n_in, tf.float32) / tf.cast(n_out, tf.float32))


def _crossfade_weights(n_in, n_out, method):
  """Lower frame index and the weight of the upper frame for each output step."""
  pos = _positions(n_in, n_out)
  lower = tf.floor(pos)
  frac = pos - lower
  lower = tf.cast(lower, tf.int32)
  upper = tf.minimum(lower + 1, n_in - 1)
  if method == 'window':
    # Rising half of a Hann window of length 2 * hop: adjacent windows overlap by 50% and sum to one.
    frac = tf.sin(0.5 * math.pi * frac) ** 2
  elif method == 'nearest':
    frac = tf.cast(frac >= 0.5, tf.float32)
  return lower, upper, frac


@gin.register
def resample(inputs, n_timesteps, method='linear'):
  """Resamples frame-rate controls along time.

  Frame `t` of the input sits at output step `t * n_timesteps / n_frames`; between frames the output is a
  linear ('linear'), raised-cosine ('window': overlapping Hann windows with 50% overlap, smooth), or nearest
  ('nearest') interpolation; past the last frame the last value is held.

  Args:
    inputs: `[batch, n_frames, channels]` or `[batch, n_frames]`.
    n_timesteps: output length (an int).
    method: 'linear', 'window' or 'nearest'.

  Returns:
    `[batch, n_timesteps, channels]` (or `[batch, n_timesteps]` for 2-D input).
  """
  if method not in ('linear', 'window', 'nearest'):
    raise ValueError(f"`method` must be 'linear', 'window' or 'nearest', got {method!r}.")
  x = tf_float32(inputs, 'inputs')
  _check_rank(x, (2, 3), 'inputs')
  is_2d = x.shape.rank == 2
  if is_2d:
    x = x[..., tf.newaxis]
  n_in = x.shape[1] if x.shape[1] is not None else tf.shape(x)[1]
  n_timesteps = int(n_timesteps)
  if isinstance(n_in, int) and n_in == n_timesteps:
    out = x
  elif isinstance(n_in, int) and n_timesteps % n_in == 0:
    # Integer hop: reshape-based interpolation, no gather.
    hop = n_timesteps // n_in
    frac = tf.range(hop, dtype=tf.float32) / hop
    if method == 'window':
      frac = tf.sin(0.5 * math.pi * frac) ** 2
    elif method == 'nearest':
      frac = tf.cast(frac >= 0.5, tf.float32)
    nxt = tf.concat([x[:, 1:], x[:, -1:]], axis=1)
    lo = x[:, :, tf.newaxis, :]
    hi = nxt[:, :, tf.newaxis, :]
    w = frac[tf.newaxis, tf.newaxis, :, tf.newaxis]
    out = lo + w * (hi - lo)
    out = tf.reshape(out, [tf.shape(x)[0], n_timesteps, tf.shape(x)[2]])
  else:
    lower, upper, frac = _crossfade_weights(n_in, n_timesteps, method)
    lo = tf.gather(x, lower, axis=1)
    hi = tf.gather(x, upper, axis=1)
    out = lo + frac[tf.newaxis, :, tf.newaxis] * (hi - lo)
  return out[..., 0] if is_2d else out


def upsample_with_windows(inputs, n_timesteps):
  """Smooth upsampling of envelopes with overlapping Hann windows (50% overlap). See `resample`."""
  return resample(inputs, n_timesteps, method='window')


# ------------------------------------------------------------------------------------------------------------
# Phase accumulation.
# ------------------------------------------------------------------------------------------------------------
def _wrap(phase):
  return tf.math.floormod(phase, TWO_PI)


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
    w = tf_float32(angular_frequency, 'angular_frequency')
  if precision == 'float64':
    phase = tf.cumsum(tf.cast(w, tf.float64), axis=1, exclusive=exclusive)
    if initial_phase is not None:
      p0 = tf.cast(tf_float32(initial_phase, 'initial_phase'), tf.float64)
      phase += tf.reshape(p0, [-1] + [1] * (w.shape.rank - 1)) if p0.shape.rank == 1 else p0
    return tf.cast(tf.math.floormod(phase, TWO_PI), tf.float32)
  if precision != 'chunked':
    raise ValueError(f"`precision` must be 'float64' or 'chunked', got {precision!r}.")
  phase = _chunked_cumsum(w, chunk_size, exclusive)
  if initial_phase is not None:
    p0 = tf_float32(initial_phase, 'initial_phase')
    phase += tf.reshape(p0, [-1] + [1] * (w.shape.rank - 1)) if p0.shape.rank == 1 else p0
  return _wrap(phase)


def hz_to_angular_frequency(frequencies, sample_rate, precision='float64'):
  """Hz -> radians per sample; in float64 for precision 'float64' (float32 `2 pi f / sr` is off by up to
  3e-8 relative, 0.02 rad per minute at 2 kHz, before any summing)."""
  if precision == 'float64':
    return tf.cast(frequencies, tf.float64) * (TWO_PI / float(sample_rate))
  return frequencies * (TWO_PI / float(sample_rate))


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
  f = tf_float32(frequency_envelopes, 'frequency_envelopes')
  a = tf_float32(amplitude_envelopes, 'amplitude_envelopes')
  _check_rank(f, (3,), 'frequency_envelopes')
  _check_rank(a, (3,), 'amplitude_envelopes')
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
    harmonic_distribution = safe_divide(harmonic_distribution, total)
  return harmonic_distribution


def neighbour_max(x):
  """max(x[t-1], x[t], x[t+1]) along axis 1 (edges replicated)."""
  prev = tf.concat([x[:, :1], x[:, :-1]], axis=1)
  nxt = tf.concat([x[:, 1:], x[:, -1:]], axis=1)
  return tf.maximum(tf.maximum(prev, x), nxt)


def _factor(n):
  """Splits n into (n_outer, n_inner) with n_outer * n_inner >= n and both near sqrt(n)."""
  inner = max(1, int(math.ceil(math.sqrt(n))))
  outer = int(math.ceil(n / inner))
  return outer, inner


@gin.register
def harmonic_synthesis(frequencies, amplitudes, harmonic_shifts=None, harmonic_distribution=None,
                       n_samples=64000, sample_rate=16000, amp_resample_method='window', initial_phase=None,
                       phase_precision='float64', normalize_below_nyquist=True, return_phase=False):
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

  Returns:
    Audio `[batch, n_samples]` (and the final phase if `return_phase`).
  """
  if harmonic_shifts is not None:
    raise ValueError('`harmonic_shifts` is not supported; use `oscillator_bank` for inharmonic partials.')
  f0 = ensure_3d(frequencies, 'frequencies')
  amps = ensure_3d(amplitudes, 'amplitudes')
  if harmonic_distribution is None:
    dist = tf.ones_like(amps)
  else:
    dist = ensure_3d(harmonic_distribution, 'harmonic_distribution')
  check_shapes_match(f0, amps, dist)
  f0 = tf.maximum(f0, 0.0)
  n_frames = f0.shape[1]
  n_harmonics = dist.shape[-1]

  # Frame-rate harmonic amplitudes; mute harmonics that reach Nyquist anywhere in the two segments a frame
  # contributes to.
  f0_peak = neighbour_max(f0)
  dist = normalize_harmonics(dist, f0_peak, sample_rate, normalize=normalize_below_nyquist)
  harm_amps = amps * dist * tf.cast(f0 > 0.0, tf.float32)  # [B, T, K]

  f0_audio = resample(f0, n_samples, method='linear')[..., 0]  # [B, N]
  omega = hz_to_angular_frequency(f0_audio, sample_rate, phase_precision)
  phase = angular_cumsum(omega, initial_phase=initial_phase, precision=phase_precision)  # [B, N]

  if n_frames is None or n_samples % n_frames != 0:
    # Generic path: per-sample envelopes.
    amp_env = resample(harm_amps, n_samples, method=amp_resample_method)
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


# ------------------------------------------------------------------------------------------------------------
# Filters and convolution.
# ------------------------------------------------------------------------------------------------------------
def get_fft_size(frame_size, ir_size, power_of_2=True):
  """Smallest FFT size (a power of two by default) for a linear convolution of the two lengths."""
  size = int(frame_size) + int(ir_size) - 1
  if power_of_2:
    return int(2 ** math.ceil(math.log2(size)))
  return size


def crop_and_compensate_delay(audio, audio_size, ir_size, padding='same', delay_compensation=-1):
  """Crops a full convolution output back to the input length.

  Args:
    audio: `[batch, audio_size + ir_size - 1]` full convolution.
    audio_size: input length.
    ir_size: impulse response length.
    padding: 'same' (output length = input length) or 'valid' (full length).
    delay_compensation: samples to drop at the start; -1 drops the group delay of a centred (zero-phase)
      filter, `(ir_size - 1) // 2`; 0 keeps causal alignment.

  Returns:
    Cropped audio.
  """
  if padding == 'valid':
    return audio
  if padding != 'same':
    raise ValueError(f"`padding` must be 'same' or 'valid', got {padding!r}.")
  start = (ir_size - 1) // 2 if delay_compensation < 0 else int(delay_compensation)
  return audio[:, start:start + audio_size]


@gin.register
def fft_convolve(audio, impulse_response, padding='same', delay_compensation=-1):
  """Convolution by FFT, with one impulse response per example or one per frame (overlap-add).

  Args:
    audio: `[batch, n_samples]`.
    impulse_response: `[batch, ir_size]` (time-invariant) or `[batch, n_frames, ir_size]` (time-varying:
      the audio is cut into n_frames non-overlapping blocks, each convolved with its frame's IR and
      overlap-added). n_samples must be a multiple of n_frames.
    padding: 'same' or 'valid'; see `crop_and_compensate_delay`.
    delay_compensation: see `crop_and_compensate_delay`.

  Returns:
    `[batch, n_samples]` for 'same'; `[batch, n_samples + ir_size - 1]` for 'valid'.
  """
  audio = tf_float32(audio, 'audio')
  ir = tf_float32(impulse_response, 'impulse_response')
  _check_rank(audio, (2,), 'audio')
  _check_rank(ir, (2, 3), 'impulse_response')
  if ir.shape.rank == 2:
    ir = ir[:, tf.newaxis, :]
  n_samples = audio.shape[1]
  n_frames, ir_size = ir.shape[1], ir.shape[2]
  if n_samples is None or n_frames is None or ir_size is None:
    raise ValueError(f'`fft_convolve` needs static lengths; got audio {audio.shape}, IR {ir.shape}.')
  if n_samples % n_frames != 0:
    raise ValueError(f'`audio` length {n_samples} must be a multiple of the number of IR frames {n_frames} '
                     f'(impulse_response shape {ir.shape}).')
  block = n_samples // n_frames
  fft_size = get_fft_size(block, ir_size)
  batch = tf.shape(audio)[0]
  blocks = tf.reshape(audio, [batch, n_frames, block])
  spec = tf.signal.rfft(blocks, fft_length=[fft_size]) * tf.signal.rfft(ir, fft_length=[fft_size])
  out = tf.signal.irfft(spec, fft_length=[fft_size])[..., :block + ir_size - 1]
  out = tf.signal.overlap_and_add(out, block) if n_frames > 1 else out[:, 0]
  return crop_and_compensate_delay(out, n_samples, ir_size, padding, delay_compensation)


def apply_window_to_impulse_response(impulse_response, window_size=0, causal=False):
  """Windows a zero-phase impulse response with a Hann window and makes it causal.

  Args:
    impulse_response: `[..., ir_size]` zero-phase IR (sample 0 is the centre, as irfft returns it), or a causal
      IR if `causal`.
    window_size: Hann window length; 0 or larger than ir_size means ir_size; even sizes are reduced by one so
      the window is symmetric about the zero-lag sample.
    causal: the IR is already causal (centre it first).

  Returns:
    `[..., window_size]` causal IR centred on sample `window_size // 2`.
  """
  if causal:
    impulse_response = tf.signal.fftshift(impulse_response, axes=-1)
  ir_size = int(impulse_response.shape[-1])
  if window_size <= 0 or window_size > ir_size:
    window_size = ir_size
  if window_size % 2 == 0:
    window_size -= 1  # odd, so the window is symmetric about the zero-lag sample
  window = tf.signal.hann_window(window_size, periodic=False)
  # Centre: move the zero-lag sample to the middle, then take window_size samples around it.
  ir = tf.signal.fftshift(impulse_response, axes=-1)
  centre = ir_size // 2
  start = centre - window_size // 2
  ir = ir[..., start:start + window_size]
  return ir * window


@gin.register
def frequency_impulse_response(magnitudes, window_size=0):
  """Designs a linear-phase FIR filter by frequency sampling.

  Magnitudes on a linear frequency grid from 0 Hz to Nyquist -> zero-phase impulse response (irfft) ->
  Hann window of `window_size` -> causal shift (centred on sample window_size // 2).

  Args:
    magnitudes: `[batch, n_frames, n_bands]` (or `[batch, n_bands]`), non-negative linear magnitudes.
    window_size: length of the windowed IR; 0 or more than the irfft length 2 * (n_bands - 1) means that
      length; even sizes are reduced by one so the filter is exactly linear-phase (delay window_size // 2).

  Returns:
    `[batch, n_frames, window_size]` impulse responses.
  """
  mags = tf_float32(magnitudes, 'magnitudes')
  ir = tf.signal.irfft(tf.complex(mags, tf.zeros_like(mags)))
  return apply_window_to_impulse_response(ir, window_size)


@gin.register
def frequency_filter(audio, magnitudes, window_size=0, padding='same'):
  """A time-varying FIR filter designed from per-frame magnitude responses, applied by FFT overlap-add.

  Args:
    audio: `[batch, n_samples]`.
    magnitudes: `[batch, n_frames, n_bands]` (or `[batch, n_bands]` for a fixed filter), linear magnitudes on a
      uniform grid from 0 Hz to Nyquist. n_samples must be a multiple of n_frames.
    window_size: see `frequency_impulse_response`.
    padding: 'same' (aligned, same length) or 'valid'.

  Returns:
    Filtered audio `[batch, n_samples]`.
  """
  ir = frequency_impulse_response(magnitudes, window_size)
  return fft_convolve(audio, ir, padding=padding)
