"""Pure TensorFlow functions: the differentiable DSP building blocks (input checks, units, resampling, filters).

Oscillators (phase accumulation, additive and harmonic synthesis) live beside it in `ddsp.oscillators`,
spectral features and losses' maths in `ddsp.spectral_ops`, block-by-block maths in `ddsp.blocks`.

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


def check_rank(x, ranks, name):
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
  check_rank(x, (2, 3), name)
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
  check_rank(x, (2, 3), 'inputs')
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
  check_rank(audio, (2,), 'audio')
  check_rank(ir, (2, 3), 'impulse_response')
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
