"""Spectral features against librosa and closed forms; loudness calibration."""
import librosa
import numpy as np
import pytest
import tensorflow as tf

from ddsp import spectral_ops

SR = 16000


def _sine(freq, amp=1.0, seconds=1.0):
  t = np.arange(int(SR * seconds)) / SR
  return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _noise(n=8000, seed=0):
  return np.random.default_rng(seed).normal(scale=0.3, size=n).astype(np.float32)


def test_stft_magnitudes_match_librosa():
  x = _noise()
  mag = spectral_ops.compute_mag(x[None], size=1024, overlap=0.75).numpy()[0]
  ref = np.abs(librosa.stft(x, n_fft=1024, hop_length=256, center=True, pad_mode='constant')).T
  assert mag.shape == ref.shape
  np.testing.assert_allclose(mag, ref, atol=1e-4 * np.abs(ref).max())


def test_mel_and_mfcc_match_librosa():
  x = _noise(seed=1)
  mel = spectral_ops.compute_mel(x[None], SR, n_fft=1024, overlap=0.75, n_mels=128, fmin=20, fmax=8000).numpy()[0]
  ref_mel = librosa.feature.melspectrogram(y=x, sr=SR, n_fft=1024, hop_length=256, n_mels=128, fmin=20,
                                           fmax=8000, center=True, pad_mode='constant', power=2.0).T
  np.testing.assert_allclose(mel, ref_mel, rtol=1e-4, atol=1e-4 * ref_mel.max())
  mfcc = spectral_ops.compute_mfcc(x[None], SR, n_fft=1024, overlap=0.75, n_mels=128, n_mfcc=30).numpy()[0]
  ref_mfcc = librosa.feature.mfcc(S=librosa.power_to_db(ref_mel.T, top_db=None), n_mfcc=30).T
  np.testing.assert_allclose(mfcc, ref_mfcc, atol=1e-4 * np.abs(ref_mfcc).max() + 1e-3)
  logmel = spectral_ops.compute_logmel(x[None], SR, n_fft=1024, n_mels=128, fmin=20, fmax=8000).numpy()[0]
  np.testing.assert_allclose(logmel, np.log(np.maximum(ref_mel, 1e-5)), atol=1e-3)


def test_loudness_calibration_and_a_weighting():
  full_scale_1k = np.median(spectral_ops.compute_loudness(_sine(1000.0)))
  assert abs(full_scale_1k) < 1.0  # A-weighting is 0 dB at 1 kHz
  half = np.median(spectral_ops.compute_loudness(_sine(1000.0, 0.5)))
  np.testing.assert_allclose(full_scale_1k - half, 20 * np.log10(2), atol=0.05)
  low = np.median(spectral_ops.compute_loudness(_sine(100.0)))
  # IEC 61672 A-weighting at 100 Hz, computed here independently: -19.1 dB.
  f2 = 100.0 ** 2
  ra = 12194 ** 2 * f2 ** 2 / ((f2 + 20.6 ** 2) * np.sqrt((f2 + 107.7 ** 2) * (f2 + 737.9 ** 2)) * (f2 + 12194 ** 2))
  a100 = 20 * np.log10(ra) + 2.0
  np.testing.assert_allclose(low - full_scale_1k, a100, atol=0.5)
  silence = spectral_ops.compute_loudness(np.zeros(SR, np.float32))
  np.testing.assert_array_equal(silence, -120.0)


def test_loudness_tf_and_numpy_agree_and_frame_count():
  rng = np.random.default_rng(3)
  x = (rng.normal(size=[2, 16100]) * np.linspace(0, 0.5, 16100)).astype(np.float32)
  ld_np = spectral_ops.compute_loudness(x)
  ld_tf = spectral_ops.compute_loudness(tf.constant(x)).numpy()
  assert ld_np.shape == (2, int(np.ceil(16100 / 64)))
  np.testing.assert_allclose(ld_np, ld_tf, atol=0.01)
  # Other frame rates and ranges.
  assert spectral_ops.compute_loudness(x[0], frame_rate=100).shape == (int(np.ceil(16100 / 160)),)
  assert spectral_ops.compute_loudness(np.zeros(800), range_db=80.0).min() == -80.0
  with pytest.raises(ValueError, match='hop'):
    spectral_ops.compute_loudness(x[0], frame_rate=333)
