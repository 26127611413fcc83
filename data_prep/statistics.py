"""Dataset statistics (`dataset_statistics.json`) from mergeable fixed-bin histograms.

Used after preparation to auto-adjust timbre transfer (octave shift to the training pitch range, loudness
shift and quantile matching to the training loudness). Statistics are computed once per source file (never
per window: windows overlap) on the frame-rate features, and merged across files and workers, so the
result does not depend on how the work was split.

Quantiles come from histograms with fine bins (0.05 dB for loudness, 0.02 semitone for f0) with linear
interpolation inside a bin, so they are exact to within one bin width on any dataset size, in O(bins)
memory.

Fields of `to_dict()`:
  n_files, n_frames, n_voiced_frames, voiced_fraction, voiced_confidence_threshold, frame_rate;
  loudness_db: {mean, std, min, max, quantiles{q: dB}} over all frames;
  loudness_db_voiced: the same over voiced frames (confidence >= threshold);
  mean_loudness_db_voiced (= loudness_db_voiced.mean);
  f0_hz: {mean_midi, std_midi, min, max, quantiles{q: Hz}} over voiced frames;
  mean_pitch_midi (= f0_hz.mean_midi);
  pitch_histogram: {midi: [0..127], counts: [...]} of voiced frames by nearest MIDI note.
"""
import math

import numpy as np

QUANTILES = (0.0, 0.01, 0.05, 0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9, 0.95, 0.99, 1.0)

LD_MIN, LD_MAX, LD_BIN = -130.0, 30.0, 0.05
MIDI_MIN, MIDI_MAX, MIDI_BIN = 0.0, 128.0, 0.02
_N_LD = int(round((LD_MAX - LD_MIN) / LD_BIN))
_N_MIDI = int(round((MIDI_MAX - MIDI_MIN) / MIDI_BIN))


def hz_to_midi(f0_hz):
  """MIDI note number of a frequency in Hz (NumPy; 0 Hz and below map to 0)."""
  f0_hz = np.asarray(f0_hz, np.float64)
  with np.errstate(divide='ignore', invalid='ignore'):
    midi = 69.0 + 12.0 * np.log2(np.maximum(f0_hz, 1e-12) / 440.0)
  return np.where(f0_hz > 0, midi, 0.0)


def midi_to_hz(midi):
  return 440.0 * 2.0 ** ((np.asarray(midi, np.float64) - 69.0) / 12.0)


def _histogram(values, lo, width, n):
  idx = np.floor((np.asarray(values, np.float64) - lo) / width).astype(np.int64)
  return np.bincount(np.clip(idx, 0, n - 1), minlength=n).astype(np.int64)


def quantiles_from_histogram(counts, lo, width, qs=QUANTILES):
  """Quantiles of the values binned in `counts` (bins [lo + i*width, lo + (i+1)*width)).

  Linear interpolation of the empirical CDF inside each bin; exact to within one bin width.

  Args:
    counts: int array [n_bins].
    lo: lower edge of bin 0.
    width: bin width.
    qs: quantile levels in [0, 1].

  Returns:
    A list of floats, one per level, or None where the histogram is empty.
  """
  counts = np.asarray(counts, np.float64)
  total = counts.sum()
  if total <= 0:
    return [None for _ in qs]
  cdf = np.concatenate([[0.0], np.cumsum(counts)]) / total
  edges = lo + width * np.arange(len(counts) + 1)
  out = []
  for q in qs:
    # The first edge where the CDF reaches q, interpolated inside its bin.
    i = int(np.searchsorted(cdf, q, side='left'))
    if i <= 0:
      nz = int(np.argmax(counts > 0))
      out.append(float(edges[nz]))
      continue
    i = min(i, len(cdf) - 1)
    c0, c1 = cdf[i - 1], cdf[i]
    frac = 0.0 if c1 <= c0 else (q - c0) / (c1 - c0)
    out.append(float(edges[i - 1] + frac * width))
  return out


class StatsAccumulator:
  """Mergeable frame statistics. `add` takes one file's features, `merge` combines accumulators."""

  def __init__(self, voiced_confidence=0.85):
    self.voiced_confidence = float(voiced_confidence)
    self.n_files = 0
    self.n_frames = 0
    self.n_voiced = 0
    self.ld_hist = np.zeros(_N_LD, np.int64)
    self.ld_voiced_hist = np.zeros(_N_LD, np.int64)
    self.midi_hist = np.zeros(_N_MIDI, np.int64)
    self.ld_sum = self.ld_sq = 0.0
    self.ld_voiced_sum = self.ld_voiced_sq = 0.0
    self.midi_sum = self.midi_sq = 0.0
    self.ld_min, self.ld_max = math.inf, -math.inf
    self.ld_voiced_min, self.ld_voiced_max = math.inf, -math.inf
    self.f0_min, self.f0_max = math.inf, -math.inf

  def add(self, loudness_db, f0_hz, f0_confidence):
    """Adds one file's frames.

    Args:
      loudness_db: [n_frames] loudness in dB.
      f0_hz: [n_frames] f0 in Hz.
      f0_confidence: [n_frames] confidence in [0, 1].
    """
    ld = np.asarray(loudness_db, np.float64).reshape(-1)
    f0 = np.asarray(f0_hz, np.float64).reshape(-1)
    conf = np.asarray(f0_confidence, np.float64).reshape(-1)
    if not ld.shape == f0.shape == conf.shape:
      raise ValueError(f'loudness_db, f0_hz and f0_confidence must have the same number of frames, got '
                       f'{ld.shape}, {f0.shape}, {conf.shape}.')
    self.n_files += 1
    if ld.size == 0:
      return
    voiced = (conf >= self.voiced_confidence) & (f0 > 0)
    self.n_frames += ld.size
    self.n_voiced += int(voiced.sum())
    self.ld_hist += _histogram(ld, LD_MIN, LD_BIN, _N_LD)
    self.ld_sum += float(ld.sum())
    self.ld_sq += float(np.square(ld).sum())
    self.ld_min, self.ld_max = min(self.ld_min, float(ld.min())), max(self.ld_max, float(ld.max()))
    if voiced.any():
      ldv, f0v = ld[voiced], f0[voiced]
      midi = hz_to_midi(f0v)
      self.ld_voiced_hist += _histogram(ldv, LD_MIN, LD_BIN, _N_LD)
      self.midi_hist += _histogram(midi, MIDI_MIN, MIDI_BIN, _N_MIDI)
      self.ld_voiced_sum += float(ldv.sum())
      self.ld_voiced_sq += float(np.square(ldv).sum())
      self.midi_sum += float(midi.sum())
      self.midi_sq += float(np.square(midi).sum())
      self.ld_voiced_min = min(self.ld_voiced_min, float(ldv.min()))
      self.ld_voiced_max = max(self.ld_voiced_max, float(ldv.max()))
      self.f0_min, self.f0_max = min(self.f0_min, float(f0v.min())), max(self.f0_max, float(f0v.max()))

  def merge(self, other):
    """Adds `other`'s counts into this accumulator and returns self."""
    if other.voiced_confidence != self.voiced_confidence:
      raise ValueError('Cannot merge statistics computed with different voiced confidence thresholds.')
    self.n_files += other.n_files
    self.n_frames += other.n_frames
    self.n_voiced += other.n_voiced
    self.ld_hist += other.ld_hist
    self.ld_voiced_hist += other.ld_voiced_hist
    self.midi_hist += other.midi_hist
    self.ld_sum += other.ld_sum
    self.ld_sq += other.ld_sq
    self.ld_voiced_sum += other.ld_voiced_sum
    self.ld_voiced_sq += other.ld_voiced_sq
    self.midi_sum += other.midi_sum
    self.midi_sq += other.midi_sq
    self.ld_min, self.ld_max = min(self.ld_min, other.ld_min), max(self.ld_max, other.ld_max)
    self.ld_voiced_min = min(self.ld_voiced_min, other.ld_voiced_min)
    self.ld_voiced_max = max(self.ld_voiced_max, other.ld_voiced_max)
    self.f0_min, self.f0_max = min(self.f0_min, other.f0_min), max(self.f0_max, other.f0_max)
    return self

  @staticmethod
  def _moments(n, s, sq):
    if n <= 0:
      return None, None
    mean = s / n
    return mean, math.sqrt(max(sq / n - mean * mean, 0.0))

  @staticmethod
  def _finite(x):
    return None if x is None or not math.isfinite(x) else float(x)

  def to_dict(self, frame_rate=None):
    """The JSON-ready statistics (see the module docstring for the fields)."""
    qkeys = [f'{q:g}' for q in QUANTILES]
    ld_mean, ld_std = self._moments(self.n_frames, self.ld_sum, self.ld_sq)
    ldv_mean, ldv_std = self._moments(self.n_voiced, self.ld_voiced_sum, self.ld_voiced_sq)
    midi_mean, midi_std = self._moments(self.n_voiced, self.midi_sum, self.midi_sq)
    ld_q = quantiles_from_histogram(self.ld_hist, LD_MIN, LD_BIN)
    ldv_q = quantiles_from_histogram(self.ld_voiced_hist, LD_MIN, LD_BIN)
    midi_q = quantiles_from_histogram(self.midi_hist, MIDI_MIN, MIDI_BIN)
    f0_q = [None if m is None else float(midi_to_hz(m)) for m in midi_q]
    # Nearest-note histogram: fine bins whose centre rounds to note k.
    centres = MIDI_MIN + MIDI_BIN * (np.arange(_N_MIDI) + 0.5)
    notes = np.clip(np.round(centres).astype(np.int64), 0, 127)
    pitch_counts = np.bincount(notes, weights=self.midi_hist, minlength=128).astype(np.int64)
    return {
        'n_files': int(self.n_files),
        'n_frames': int(self.n_frames),
        'n_voiced_frames': int(self.n_voiced),
        'voiced_fraction': (self.n_voiced / self.n_frames) if self.n_frames else None,
        'voiced_confidence_threshold': self.voiced_confidence,
        'frame_rate': frame_rate,
        'loudness_db': {
            'mean': ld_mean, 'std': ld_std,
            'min': self._finite(self.ld_min), 'max': self._finite(self.ld_max),
            'quantiles': dict(zip(qkeys, ld_q)),
        },
        'loudness_db_voiced': {
            'mean': ldv_mean, 'std': ldv_std,
            'min': self._finite(self.ld_voiced_min), 'max': self._finite(self.ld_voiced_max),
            'quantiles': dict(zip(qkeys, ldv_q)),
        },
        'mean_loudness_db_voiced': ldv_mean,
        'f0_hz': {
            'mean_midi': midi_mean, 'std_midi': midi_std,
            'min': self._finite(self.f0_min), 'max': self._finite(self.f0_max),
            'quantiles': dict(zip(qkeys, f0_q)),
        },
        'mean_pitch_midi': midi_mean,
        'pitch_histogram': {'midi': list(range(128)), 'counts': [int(c) for c in pitch_counts]},
        'histogram_resolution': {'loudness_db': LD_BIN, 'f0_semitones': MIDI_BIN},
    }
