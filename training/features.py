"""The input of inference: a recording read at the model's rate, its features, and the user's controls on them.

Steps 1 to 3 of `ddsp.training.resynthesis.transfer` (each is also a public function):
  1. `read_input`: any audio file (or array) -> mono float32 at the model's sample rate (notes on conversion).
  2. `extract_features`: CREPE f0 + confidence and A-weighted loudness, `n_frames = ceil(n_samples / hop)`
     frames at the model's frame rate (the same analysis as dataset preparation).
  3. `adjust_features`: user curves (`ddsp.training.curves.load_curve`) replace f0 / loudness, `auto_adjust`
     (whole-octave pitch shift and a loudness offset towards the training set's `dataset_statistics.json`), pitch shift
     (semitones, `octaves`), range scaling, loudness shift, voiced/unvoiced masking from the CREPE confidence
     (with short gaps filled, `fill_short_gaps`).
Plus `interpolate_z`, the timbre interpolation of two encoder latents.

Nothing here needs a model: the functions take arrays, rates and dicts. Shapes: audio `[n_samples]`, frame
curves `[n_frames]`, latents `[n_frames, z_dims]` (NumPy).
"""
import json
import math
import os
import re

import numpy as np
import soxr

from ddsp import core
from ddsp import spectral_ops
from ddsp import validation
from ddsp.data_prep import audio_io
from ddsp.training import curves

LOUDNESS_FLOOR_DB = -120.0
DEFAULT_CONFIDENCE_THRESHOLD = 0.5  # CREPE 'tiny' reads sung vowels at ~0.6-0.95.
STATS_NAME = 'dataset_statistics.json'
MAX_GAP_FRAMES = 8  # 32 ms at 250 frames/s.
SILENCE_PEAK = 1e-4  # An input whose peak is below -80 dBFS is treated as silent.
MAX_F0_HZ = 1e6  # f0 after the controls is capped here (far above any Nyquist frequency: silent either way).


InputError = validation.InputError


# ------------------------------------------------------------------------------------------------------------
# Input audio and features.
# ------------------------------------------------------------------------------------------------------------
def read_input(source, sample_rate, source_sample_rate=None):
  """Reads a recording as mono float32 at `sample_rate`.

  Args:
    source: a path (any format, rate and channel count that `ddsp.data_prep.audio_io` reads) or an array
      `[n_samples]` or `[n_samples, channels]`.
    sample_rate: the model's rate.
    source_sample_rate: the rate of an array `source` (default `sample_rate`).

  Returns:
    (audio `[n_samples]` float32, notes: list of strings describing conversions done).

  Raises:
    InputError: unreadable file, empty or non-finite audio.
  """
  notes = []
  if isinstance(source, (str, os.PathLike)):
    try:
      audio, info = audio_io.read_audio(source, sample_rate=sample_rate)
    except audio_io.AudioReadError as e:
      raise InputError(f'Cannot read input {e}') from e
    if info.original_channels != 1:
      notes.append(f'{info.original_channels} channels downmixed to mono')
    if info.original_sample_rate != sample_rate:
      notes.append(f'resampled from {info.original_sample_rate} Hz to {sample_rate} Hz')
    notes.extend(info.warnings)
    return audio, notes
  audio = np.asarray(source, np.float32)
  if audio.ndim == 2:
    if audio.shape[1] > 1:
      notes.append(f'{audio.shape[1]} channels downmixed to mono')
    audio = audio.mean(axis=1)
  if audio.ndim != 1:
    raise InputError(f'Input audio must be [n_samples] or [n_samples, channels], got shape {audio.shape}.')
  if audio.size == 0:
    raise InputError('Input audio is empty (0 samples).')
  if not np.all(np.isfinite(audio)):
    raise InputError('Input audio contains NaN or Inf samples.')
  source_sample_rate = int(source_sample_rate or sample_rate)
  if source_sample_rate != sample_rate:
    audio = soxr.resample(audio, source_sample_rate, sample_rate, quality='HQ').astype(np.float32)
    notes.append(f'resampled from {source_sample_rate} Hz to {sample_rate} Hz')
  return np.ascontiguousarray(audio, np.float32), notes


def extract_features(audio, sample_rate=16000, frame_rate=250, crepe_model='tiny', crepe_frame_rate=None):
  """CREPE f0 and confidence, and A-weighted loudness, of mono audio.

  Args:
    audio: `[n_samples]` float32.
    sample_rate: its rate (Hz).
    frame_rate: frames per second (`sample_rate / frame_rate` must be an integer hop).
    crepe_model: CREPE capacity ('tiny' ... 'full', whichever is installed).
    crepe_frame_rate: the rate CREPE runs at before interpolation (None: `frame_rate`).

  Returns:
    {'f0_hz', 'f0_confidence', 'loudness_db'}: NumPy float32 `[n_frames]`, `n_frames = ceil(n / hop)`.

  Raises:
    InputError: silent input (peak below -80 dBFS).
  """
  audio = np.asarray(audio, np.float32).reshape(-1)
  peak = float(np.max(np.abs(audio))) if audio.size else 0.0
  if peak < SILENCE_PEAK:
    raise InputError(f'The input is silent (peak {20 * math.log10(max(peak, 1e-12)):.1f} dBFS): nothing to '
                     'resynthesise.')
  fr = int(frame_rate) if float(frame_rate).is_integer() else frame_rate
  f0_hz, confidence = spectral_ops.compute_f0(audio, sample_rate=sample_rate, frame_rate=fr,
                                              model=crepe_model, crepe_frame_rate=crepe_frame_rate)
  loudness = spectral_ops.compute_loudness(audio, sample_rate=sample_rate, frame_rate=fr)
  n = min(len(f0_hz), len(loudness))
  return {'f0_hz': np.asarray(f0_hz, np.float32)[:n], 'f0_confidence': np.asarray(confidence, np.float32)[:n],
          'loudness_db': np.asarray(loudness, np.float32).reshape(-1)[:n]}


# ------------------------------------------------------------------------------------------------------------
# Controls.
# ------------------------------------------------------------------------------------------------------------
def octaves(n):
  """Semitones in `n` octaves (for `pitch_shift`): `octaves(-1) == -12`."""
  return 12.0 * n


def load_dataset_statistics(path):
  """Reads a `dataset_statistics.json` (as written by `ddsp.data_prep.statistics`), strictly.

  Raises:
    FileNotFoundError: no such file.
    ValueError: not UTF-8 JSON, not an object, or no usable median f0 / voiced loudness (naming the file and
      the key).
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'Dataset statistics {path!r} do not exist.')
  try:
    with open(path, 'rb') as f:
      stats = json.loads(f.read().decode('utf-8'))
  except UnicodeDecodeError as e:
    raise ValueError(f'Dataset statistics {path!r} are not UTF-8 JSON text (byte {e.start}).') from None
  except ValueError as e:
    raise ValueError(f'Dataset statistics {path!r} are not valid JSON: {e}') from None
  if not isinstance(stats, dict):
    raise ValueError(f'Dataset statistics {path!r} hold a JSON {type(stats).__name__}, not an object of '
                     'statistics.')
  try:
    median, loudness = dataset_median_midi(stats), dataset_voiced_loudness(stats)
  except ValueError as e:
    raise ValueError(f'Dataset statistics {path!r}: {e}') from None
  if median is None or loudness is None:
    raise ValueError(f'Dataset statistics {path!r} hold no voiced frames (no f0 median or voiced loudness).')
  return stats


def _stats_value(stats, keys, positive=False):
  """The number at `stats[k0][k1]...`, None when a key is missing; ValueError when it is not a finite number."""
  value, where = stats, ''
  for key in keys:
    if value is None:
      return None
    if not isinstance(value, dict):
      raise ValueError(f'{where or "the statistics"} is a {type(value).__name__}, not an object.')
    value = value.get(key)
    where += f'[{key!r}]'
  if value is None:
    return None
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or (
      positive and value <= 0):
    raise ValueError(f'{where} is {value!r}, not a {"positive" if positive else "finite"} number.')
  return float(value)


def find_dataset_statistics(save_dir, gin_config=''):
  """The `dataset_statistics.json` of a training run: in `save_dir`, else beside the training TFRecords.

  Returns:
    The path, or None.
  """
  candidates = [os.path.join(save_dir, STATS_NAME)]
  # Gin writes long bindings as `name = \` and the value on the next line.
  for pattern in re.findall(r"file_pattern\s*=\s*(?:\\\s*)?['\"]([^'\"]+)['\"]", gin_config or ''):
    candidates.append(os.path.join(os.path.dirname(pattern), STATS_NAME))
  for path in candidates:
    if os.path.isfile(path):
      return path
  return None


def dataset_median_midi(stats):
  """Median pitch of the training set's voiced frames (MIDI), from the f0 quantiles (else the mean); None when
  the statistics hold neither. ValueError when a value there is not a number."""
  median_hz = _stats_value(stats, ('f0_hz', 'quantiles', '0.5'), positive=True)
  if median_hz:
    return float(core.hz_to_midi(median_hz))
  return _stats_value(stats, ('mean_pitch_midi',))


def dataset_voiced_loudness(stats):
  """Mean loudness (dB) of the training set's voiced frames; None when absent."""
  value = _stats_value(stats, ('mean_loudness_db_voiced',))
  if value is None:
    value = _stats_value(stats, ('loudness_db_voiced', 'mean'))
  return value


def auto_adjust_shifts(f0_hz, loudness_db, voiced, stats):
  """The whole-octave pitch shift and the loudness offset that match the input to the training statistics.

  The octave shift `k` minimises `|median_midi(input voiced frames) + 12 k - median_midi(dataset)|`; the
  loudness offset makes the mean loudness of the input's voiced frames equal the dataset's.

  Args:
    f0_hz, loudness_db: input curves `[n_frames]`.
    voiced: bool `[n_frames]`.
    stats: the `dataset_statistics.json` dict.

  Returns:
    (octave shift (int), loudness shift (dB)).
  """
  voiced = np.asarray(voiced, bool) & (np.asarray(f0_hz) > 0)
  if not voiced.any():
    raise InputError('auto_adjust needs voiced frames, but the input has none.')
  median_in = float(np.median(core.hz_to_midi(np.asarray(f0_hz, np.float64)[voiced])))
  target = dataset_median_midi(stats)
  octave_shift = int(np.round((target - median_in) / 12.0)) if target is not None else 0
  target_ld = dataset_voiced_loudness(stats)
  ld_shift = 0.0 if target_ld is None else target_ld - float(np.mean(np.asarray(loudness_db)[voiced]))
  return octave_shift, ld_shift


def fill_short_gaps(voiced, max_gap_frames):
  """Marks as voiced every unvoiced run of at most `max_gap_frames` frames that has voiced frames on both
  sides (CREPE's confidence dips for a frame or two at note changes; silencing those would click).

  Args:
    voiced: bool `[n_frames]`.
    max_gap_frames: the longest gap filled (0: none).

  Returns:
    bool `[n_frames]`.
  """
  voiced = np.asarray(voiced, bool).copy()
  if max_gap_frames <= 0 or not voiced.any():
    return voiced
  idx = np.flatnonzero(voiced)
  for start, stop in zip(idx[:-1], idx[1:]):
    if 1 < stop - start <= max_gap_frames + 1:
      voiced[start + 1:stop] = True
  return voiced


def adjust_features(features, pitch_shift=0.0, loudness_shift=0.0, f0_range_scale=1.0,
                    loudness_range_scale=1.0, f0_curve=None, loudness_curve=None,
                    confidence_threshold=DEFAULT_CONFIDENCE_THRESHOLD, unvoiced_loudness_db=LOUDNESS_FLOOR_DB,
                    max_gap_frames=MAX_GAP_FRAMES, auto_adjust=False, dataset_stats=None, sample_rate=None):
  """Applies the user's controls to extracted features.

  Order: replace curves -> voiced mask -> auto_adjust -> pitch shift and f0 range scaling -> loudness shift
  and range scaling -> unvoiced frames set to `unvoiced_loudness_db`.

  Args:
    features: {'f0_hz', 'f0_confidence', 'loudness_db'} `[n_frames]` each (from `extract_features`).
    pitch_shift: semitones (may be fractional); `octaves(n)` gives whole octaves.
    loudness_shift: dB added to the loudness.
    f0_range_scale: scales the pitch curve's deviations (in semitones) around its voiced median: 0 flattens
      the melody to one note, 2 doubles intervals and vibrato.
    loudness_range_scale: scales the loudness deviations (dB) around the voiced mean (dynamics).
    f0_curve: optional curve replacing f0 (Hz; a path or array, resampled to the frames). Frames where it
      is <= 0 count as unvoiced.
    loudness_curve: optional curve replacing the loudness (dB; a path or array).
    confidence_threshold: frames with CREPE confidence below it are unvoiced (None or 0: all voiced).
    max_gap_frames: unvoiced runs this short between voiced frames count as voiced (`fill_short_gaps`).
    unvoiced_loudness_db: loudness given to unvoiced frames, so the harmonic part is silent there; None
      leaves them unchanged.
    auto_adjust: add the octave shift and loudness offset of `auto_adjust_shifts`.
    dataset_stats: the statistics dict for `auto_adjust`.
    sample_rate: the model's sample rate; given, pitch controls that put every voiced frame at or above its
      Nyquist frequency or below 20 Hz are refused (`ddsp.validation.check_audible_pitch`).

  Returns:
    (features dict with adjusted 'f0_hz', 'loudness_db', plus 'voiced' bool `[n_frames]`,
     info dict with the shifts applied).

  Raises:
    InputError: no voiced frames, a bad curve.
    ValidationError (a ValueError): a control that is not a finite number in its range, or an inaudible pitch.
  """
  for name, value in (('pitch_shift', pitch_shift), ('loudness_shift', loudness_shift),
                      ('f0_range_scale', f0_range_scale), ('loudness_range_scale', loudness_range_scale),
                      ('unvoiced_loudness_db', unvoiced_loudness_db)):
    validation.Range().check(name, value)
  validation.Range(0, 1).check('confidence_threshold', confidence_threshold)
  validation.Range(0).check('max_gap_frames', max_gap_frames)
  f0 = np.asarray(features['f0_hz'], np.float64).reshape(-1).copy()
  ld = np.asarray(features['loudness_db'], np.float64).reshape(-1).copy()
  n_frames = f0.size
  confidence = np.asarray(features.get('f0_confidence', np.ones(n_frames)), np.float64).reshape(-1)
  if f0_curve is not None:
    f0 = curves.load_curve(f0_curve, n_frames, 'f0 curve').astype(np.float64)
    voiced = f0 > 0
  elif confidence_threshold:
    voiced = fill_short_gaps(confidence >= float(confidence_threshold), max_gap_frames)
  else:
    voiced = np.ones(n_frames, bool)
  if loudness_curve is not None:
    ld = curves.load_curve(loudness_curve, n_frames, 'loudness curve').astype(np.float64)
  if not voiced.any() and f0_curve is not None:
    raise InputError('The f0 curve has no frame above 0 Hz (0 Hz marks an unvoiced frame): nothing to play.')
  if not voiced.any():
    best = float(confidence.max()) if confidence.size else 0.0
    raise InputError(f'No voiced frames in the input: CREPE confidence never reaches the threshold '
                     f'{confidence_threshold} (highest {best:.2f}); lower --confidence_threshold or use a '
                     'pitched recording.')
  info = {'voiced_frames': int(voiced.sum()), 'n_frames': int(n_frames)}
  auto_octaves, auto_ld = 0, 0.0
  if auto_adjust:
    if dataset_stats is None:
      raise ValueError('auto_adjust needs the dataset statistics (dataset_statistics.json).')
    auto_octaves, auto_ld = auto_adjust_shifts(f0, ld, voiced, dataset_stats)
    info.update(auto_octave_shift=auto_octaves, auto_loudness_shift_db=auto_ld)
  semitones = float(pitch_shift) + 12.0 * auto_octaves
  positive = f0 > 0
  midi = core.hz_to_midi(np.asarray(f0, np.float64)).astype(np.float64)
  if f0_range_scale != 1.0:
    centre = float(np.median(midi[voiced & positive])) if (voiced & positive).any() else 0.0
    midi = centre + float(f0_range_scale) * (midi - centre)
  # A shifted f0 stays a (voiced) positive frequency: a downward shift that would underflow to 0 Hz keeps the
  # smallest positive float32 instead, so that the audibility check below judges it (0 Hz means unvoiced).
  f0 = np.where(positive, np.clip(core.midi_to_hz(midi + semitones), np.finfo(np.float32).tiny, MAX_F0_HZ), 0.0)
  if sample_rate is not None:
    validation.check_audible_pitch(f0, voiced, sample_rate, _pitch_controls(
        pitch_shift, auto_octaves, f0_range_scale, f0_curve is not None))
  if loudness_range_scale != 1.0:
    centre = float(np.mean(ld[voiced]))
    ld = centre + float(loudness_range_scale) * (ld - centre)
  ld = ld + float(loudness_shift) + auto_ld
  if not np.all(np.isfinite(ld.astype(np.float32))):  # the model reads float32
    raise validation.ValidationError(
        f'loudness_shift={validation.format_number(loudness_shift)} with loudness_range_scale='
        f'{validation.format_number(loudness_range_scale)} puts the loudness beyond any finite number of dB.')
  if unvoiced_loudness_db is not None:
    ld = np.where(voiced, ld, np.minimum(ld, float(unvoiced_loudness_db)))
  ld = np.maximum(ld, LOUDNESS_FLOOR_DB)
  info.update(pitch_shift_semitones=semitones, loudness_shift_db=float(loudness_shift) + auto_ld)
  out = dict(features)
  out.update(f0_hz=f0.astype(np.float32), loudness_db=ld.astype(np.float32), voiced=voiced)
  return out, info


def _pitch_controls(pitch_shift, auto_octaves, f0_range_scale, with_curve):
  """The pitch controls in effect, for messages: 'pitch_shift +60 semitones and the f0 curve'."""
  parts = []
  if with_curve:
    parts.append('the f0 curve')
  if pitch_shift:
    parts.append(f'pitch_shift {float(pitch_shift):+g} semitones')
  if auto_octaves:
    parts.append(f'auto_adjust {auto_octaves:+d} octaves')
  if f0_range_scale != 1.0:
    parts.append(f'f0_range_scale {float(f0_range_scale):g}')
  return ' and '.join(parts) if parts else "The input's pitch"


def interpolate_z(z_a, z_b, amount):
  """Timbre interpolation: moves the time-varying `z_a` `[n_frames, z_dims]` towards the average timbre of
  `z_b` `[m_frames, z_dims]`: `z_a + amount * (mean_t(z_b) - z_a)` (0: timbre of A, 1: B's average timbre,
  beyond: extrapolation)."""
  z_a = np.asarray(z_a, np.float32)
  target = np.asarray(z_b, np.float32).reshape(-1, z_a.shape[-1]).mean(axis=0, keepdims=True)
  return z_a + float(amount) * (target - z_a)

