"""Spectral features: STFT, magnitudes, mel, log-mel, MFCC, loudness, and f0 (CREPE).

Framing convention: with `center=True` the signal is padded by `frame_size // 2` zeros on both sides, so frame t
is centred on sample `t * hop` (the same framing as librosa's `center=True, pad_mode='constant'`).
"""
import functools
import math

import gin
import numpy as np
import tensorflow as tf

from ddsp import core

LD_RANGE = 120.0  # dB


# ------------------------------------------------------------------------------------------------------------
# STFT family (TensorFlow, differentiable).
# ------------------------------------------------------------------------------------------------------------
def _hop(frame_size, overlap):
  hop = int(round(frame_size * (1.0 - overlap)))
  if hop < 1:
    raise ValueError(f'`overlap` {overlap} leaves no hop for frame_size {frame_size}.')
  return hop


@gin.register
def stft(audio, frame_size=2048, overlap=0.75, center=True, hop_size=None):
  """Short-time Fourier transform with a periodic Hann window.

  Args:
    audio: `[batch, n_samples]` (or `[n_samples]`).
    frame_size: FFT size and window length.
    overlap: fraction of overlap between frames (0.75 -> hop = frame_size / 4).
    center: pad frame_size // 2 zeros on both sides so frame t is centred on sample t * hop.
    hop_size: overrides the hop derived from `overlap`.

  Returns:
    Complex64 `[batch, n_frames, frame_size // 2 + 1]`, n_frames = 1 + n_samples // hop when centred.
  """
  audio = core.tf_float32(audio, 'audio')
  if audio.shape.rank == 1:
    audio = audio[tf.newaxis]
  hop = int(hop_size) if hop_size else _hop(frame_size, overlap)
  if center:
    audio = tf.pad(audio, [[0, 0], [frame_size // 2, frame_size // 2]])
  return tf.signal.stft(audio, frame_length=int(frame_size), frame_step=hop, fft_length=int(frame_size),
                        window_fn=functools.partial(tf.signal.hann_window, periodic=True), pad_end=False)


def safe_abs(x, eps=1e-20):
  """|x| of a complex tensor whose gradient is finite (zero) at x = 0."""
  power = tf.math.real(x) ** 2 + tf.math.imag(x) ** 2
  return tf.sqrt(tf.maximum(power, eps)) * tf.cast(power > eps, tf.float32)


@gin.register
def compute_mag(audio, size=2048, overlap=0.75, center=True):
  """STFT magnitudes `[batch, n_frames, size // 2 + 1]`, with finite gradients on silence."""
  return safe_abs(stft(audio, frame_size=size, overlap=overlap, center=center))


@gin.register
def compute_power(audio, size=2048, overlap=0.75, center=True):
  """STFT power `|X|^2`, `[batch, n_frames, size // 2 + 1]`."""
  s = stft(audio, frame_size=size, overlap=overlap, center=center)
  return tf.math.real(s) ** 2 + tf.math.imag(s) ** 2


def _hz_to_mel_slaney(f):
  """Slaney's mel scale: linear below 1 kHz (3 mels per 200 Hz), logarithmic above."""
  f = np.asarray(f, dtype=np.float64)
  f_sp = 200.0 / 3
  min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, math.log(6.4) / 27.0
  return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)


def _mel_to_hz_slaney(m):
  m = np.asarray(m, dtype=np.float64)
  f_sp = 200.0 / 3
  min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, math.log(6.4) / 27.0
  return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@functools.lru_cache(maxsize=32)
def mel_weight_matrix(n_fft, sample_rate, n_mels=128, fmin=0.0, fmax=None):
  """Triangular, area-normalised ('Slaney') mel filterbank, `[n_fft // 2 + 1, n_mels]` float32 NumPy.

  Filter m rises from mel point m to m+1 and falls to m+2 (n_mels + 2 points evenly spaced in mel between fmin
  and fmax), scaled by 2 / (f_{m+2} - f_m) so each has unit area.
  """
  fmax = sample_rate / 2.0 if fmax is None else float(fmax)
  bins = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
  points = _mel_to_hz_slaney(np.linspace(_hz_to_mel_slaney(fmin), _hz_to_mel_slaney(fmax), n_mels + 2))
  lower, centre, upper = points[:-2, None], points[1:-1, None], points[2:, None]
  rising = (bins[None, :] - lower) / np.maximum(centre - lower, 1e-10)
  falling = (upper - bins[None, :]) / np.maximum(upper - centre, 1e-10)
  weights = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (upper - lower))
  return weights.T.astype(np.float32)


@gin.register
def compute_mel(audio, sample_rate=16000, n_fft=2048, overlap=0.75, n_mels=128, fmin=0.0, fmax=None, power=2.0,
                center=True):
  """Mel spectrogram `[batch, n_frames, n_mels]` of |STFT|^power (Slaney mel filters, as librosa's default)."""
  mag = compute_mag(audio, size=n_fft, overlap=overlap, center=center)
  spec = mag ** power if power != 1.0 else mag
  weights = tf.constant(mel_weight_matrix(int(n_fft), int(sample_rate), int(n_mels), float(fmin),
                                          None if fmax is None else float(fmax)))
  return tf.tensordot(spec, weights, axes=1)


@gin.register
def compute_logmel(audio, sample_rate=16000, n_fft=2048, overlap=0.75, n_mels=128, fmin=0.0, fmax=None,
                   eps=1e-5, center=True):
  """Natural log of the mel power spectrogram (floored at eps), `[batch, n_frames, n_mels]`."""
  mel = compute_mel(audio, sample_rate, n_fft, overlap, n_mels, fmin, fmax, power=2.0, center=center)
  return core.safe_log(mel, eps)


@gin.register
def compute_mfcc(audio, sample_rate=16000, n_fft=1024, overlap=0.75, n_mels=128, n_mfcc=30, fmin=20.0,
                 fmax=8000.0, center=True):
  """MFCCs `[batch, n_frames, n_mfcc]`: orthonormal DCT-II of the mel power spectrogram in dB.

  Same quantity as `librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=None))` with a Slaney mel filterbank.
  """
  mel = compute_mel(audio, sample_rate, n_fft, overlap, n_mels, fmin, fmax, power=2.0, center=center)
  mel_db = 10.0 * tf.math.log(tf.maximum(mel, 1e-10)) / math.log(10.0)
  return tf.signal.dct(mel_db, type=2, norm='ortho')[..., :n_mfcc]


# ------------------------------------------------------------------------------------------------------------
# Loudness (A-weighted), in TensorFlow and NumPy with the same numbers.
# ------------------------------------------------------------------------------------------------------------
def a_weighting_db(frequencies):
  """IEC 61672 A-weighting in dB (0 dB at 1 kHz), NumPy, for frequencies in Hz (-inf dB at 0 Hz)."""
  f2 = np.asarray(frequencies, dtype=np.float64) ** 2
  ra = (12194.0 ** 2 * f2 ** 2) / ((f2 + 20.6 ** 2) * np.sqrt((f2 + 107.7 ** 2) * (f2 + 737.9 ** 2))
                                   * (f2 + 12194.0 ** 2))
  with np.errstate(divide='ignore'):
    return 20.0 * np.log10(ra) + 2.0


@functools.lru_cache(maxsize=16)
def _loudness_weights(n_fft, sample_rate):
  """Per-bin power weights: A-weighting times the scale that makes a full-scale sine read 0 dB.

  For a sine of amplitude a and a window w, the one-sided sum of |X_k|^2 is a^2 * n_fft * sum(w^2) / 4, so
  `4 / (n_fft * sum(w^2))` calibrates the (A-weighted) power summed over frequency to a^2.
  """
  freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
  weights = 10.0 ** (a_weighting_db(freqs) / 10.0)
  window = np.hanning(n_fft + 1)[:-1]  # periodic Hann
  scale = 4.0 / (n_fft * np.sum(window ** 2))
  return (weights * scale).astype(np.float64), window


def _check_loudness_args(sample_rate, frame_rate):
  hop = sample_rate / frame_rate
  if hop != int(hop):
    raise ValueError(f'sample_rate / frame_rate must be an integer hop, got {sample_rate} / {frame_rate} = {hop}.')
  return int(hop)


@gin.register
def compute_loudness(audio, sample_rate=16000, frame_rate=250, n_fft=2048, range_db=LD_RANGE, ref_db=0.0,
                     use_tf=None):
  """Perceptual loudness in dB: A-weighted power of centred frames, summed over frequency (the paper).

  A full-scale sine at 1 kHz reads 0 dB; +6.02 dB per doubling of amplitude; other frequencies read their
  A-weighting (a 100 Hz sine about -19.1 dB); silence reads -range_db.

  Args:
    audio: `[n_samples]` or `[batch, n_samples]`, NumPy or tensor.
    sample_rate: samples per second.
    frame_rate: frames per second; hop = sample_rate / frame_rate must be an integer.
    n_fft: FFT size (2048 at 16 kHz).
    range_db: dynamic range; the output is floored at -range_db.
    ref_db: reference level subtracted from the result.
    use_tf: force TensorFlow (True) or NumPy (False); default: NumPy for NumPy input.

  Returns:
    Loudness `[n_frames]` or `[batch, n_frames]` with n_frames = ceil(n_samples / hop); NumPy for NumPy input.
  """
  hop = _check_loudness_args(sample_rate, frame_rate)
  if use_tf is None:
    use_tf = isinstance(audio, (tf.Tensor, tf.Variable))
  weights, window = _loudness_weights(int(n_fft), int(sample_rate))
  if use_tf:
    x = core.tf_float32(audio, 'audio')
    is_1d = x.shape.rank == 1
    if is_1d:
      x = x[tf.newaxis]
    n_samples = x.shape[1]
    n_frames = -(-n_samples // hop)
    spec = stft(x, frame_size=n_fft, hop_size=hop, center=True)[:, :n_frames]
    power = tf.math.real(spec) ** 2 + tf.math.imag(spec) ** 2
    total = tf.tensordot(power, tf.constant(weights.astype(np.float32)), axes=1)
    loudness = core.power_to_db(total, ref_db=ref_db, range_db=range_db)
    return loudness[0] if is_1d else loudness

  x = np.asarray(audio, dtype=np.float64)
  if x.ndim not in (1, 2):
    raise ValueError(f'`audio` must be [n_samples] or [batch, n_samples], got shape {x.shape}.')
  is_1d = x.ndim == 1
  x = np.atleast_2d(x)
  n_samples = x.shape[1]
  if n_samples == 0:
    raise ValueError('`audio` is empty.')
  n_frames = -(-n_samples // hop)
  padded = np.pad(x, [(0, 0), (n_fft // 2, n_fft // 2 + hop)])
  frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=1)[:, ::hop][:, :n_frames]
  out = np.empty((x.shape[0], n_frames))
  chunk = 512  # bounded memory for long files
  for start in range(0, n_frames, chunk):
    spec = np.fft.rfft(frames[:, start:start + chunk] * window, axis=-1)
    power = spec.real ** 2 + spec.imag ** 2
    out[:, start:start + chunk] = power @ weights
  loudness = np.maximum(10.0 * np.log10(np.maximum(out, 1e-20)) - ref_db, -range_db).astype(np.float32)
  return loudness[0] if is_1d else loudness


# ------------------------------------------------------------------------------------------------------------
# f0 (CREPE).
# ------------------------------------------------------------------------------------------------------------
def compute_f0(audio, sample_rate=16000, frame_rate=250, model='tiny', viterbi=False, **kwargs):
  """f0 and confidence from the CREPE pitch tracker: see `ddsp.pitch.compute_f0`.

  Returns:
    `(f0_hz, f0_confidence)`, NumPy float32 `[n_frames]`, n_frames = ceil(n_samples / hop).
  """
  from ddsp import pitch  # pylint: disable=g-import-not-at-top  (loads CREPE only when needed)
  return pitch.compute_f0(audio, sample_rate=sample_rate, frame_rate=frame_rate, model=model, viterbi=viterbi,
                          **kwargs)
