"""The Apache Beam pipeline that turns audio files (or NSynth TFRecords) into training TFRecords.

Flow (audio mode):
  glob (in the driver: an error before any work if a pattern matches nothing)
  -> Create(paths) -> Reshuffle (spreads files over workers)
  -> ParDo(ProcessSourcesFn): read + downmix + resample (audio_io), loudness, CREPE f0, windows
       main output: serialized tf.train.Example per window, tagged 'train' or 'eval'
       'results': one record per source (ok / skipped with its reason / warnings)
       'stats': one StatsAccumulator per source of the training split
  -> WriteToTFRecord(<output>-SSSSS-of-NNNNN) and, with an eval split, WriteToTFRecord(<dir>/<stem>-eval<ext>
     -SSSSS-of-NNNNN) (e.g. train.tfrecord -> train-eval.tfrecord-00000-of-00001)
  -> results and stats combined globally and written as JSON to a temp folder; the driver then writes
     `prepare_report.json` and `dataset_statistics.json` atomically next to the output.
NSynth mode replaces the first steps with ParDo(ReadNSynthFn) over the original NSynth TFRecord files,
applying the paper's filter (acoustic instruments, MIDI pitch 24..84); one source per note.

Features are computed once per source file, on the whole file, and then sliced per window: frame i of a
window that starts at sample s is frame s/hop + i of the file, centred on file sample s + i*hop. This is
both correct (a frame near a window edge sees the real neighbouring audio, not zero padding) and fast
(with 4 s windows every 1 s, per-window computation would run CREPE 4 times on every frame). Window starts
are multiples of the hop, which the configuration checks.

Cost is dominated by CREPE. To keep it low: CREPE runs at `crepe_frame_rate` (default 100/s, f0 and
confidence interpolated to the feature frame rate); frames whose level is below `loudness_floor_db`
skip the network (f0 0 Hz, confidence 0); and decoded sources are buffered per bundle until
`batch_seconds` of audio is collected, then go through one `ddsp.pitch.compute_f0_batch` call whose
fixed-size network batches mix frames of many files (each file's result equals a call on it alone), so
short files such as NSynth notes keep the batches full. Long files run in chunks and loudness streams
over the file, so memory stays bounded (measured by bench/prepare.py for a 1-hour file).

Writing goes through `beam.io.WriteToTFRecord`: shards are written under a temp folder and renamed into
place only when the pipeline succeeds, so an interrupted run leaves no partial shard under the output
name. With `num_shards=0` (default) the runner picks the number of shards and every worker streams its
examples straight to its shard; a fixed `num_shards` adds a shuffle that (on the DirectRunner) holds the
whole dataset in memory.
"""
import dataclasses
import hashlib
import json
import logging
import math
import os
import time
import uuid

import numpy as np

from ddsp.data_prep import audio_io
from ddsp.data_prep import statistics

METRICS_NAMESPACE = 'ddsp_prepare'
REPORT_NAME = 'prepare_report.json'
STATS_NAME = 'dataset_statistics.json'
SHARD_TEMPLATE = '-SSSSS-of-NNNNN'
SHARD_GLOB = '-?????-of-?????'
NSYNTH_LABELS = ('pitch', 'velocity', 'instrument', 'instrument_family', 'instrument_source', 'qualities')
NSYNTH_STRING_LABELS = ('note_str', 'instrument_str', 'instrument_family_str', 'instrument_source_str')
NSYNTH_ACOUSTIC = 0  # instrument_source: 0 acoustic, 1 electronic, 2 synthetic.
_MAX_LISTED_OK = 10000


# ------------------------------------------------------------------------------------------------------------
# Configuration.
# ------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class PrepareConfig:
  """Everything that determines the content of the prepared dataset.

  Attributes:
    sample_rate: output audio rate (Hz); every input is resampled to it.
    frame_rate: feature frame rate (Hz); `sample_rate` must be a multiple of it.
    example_secs: window length in seconds (n_samples = example_secs * sample_rate,
      n_frames = example_secs * frame_rate; both must be integers).
    hop_secs: seconds between window starts (hop_secs * frame_rate must be an integer).
    eval_split_fraction: share of source files (never windows) written to the `-eval` shards.
    crepe_model: CREPE capacity ('tiny', 'small', 'medium', 'large', 'full').
    crepe_frame_rate: frames per second at which CREPE runs (None: at `frame_rate`).
    loudness_floor_db: frames quieter than this skip CREPE (f0 0 Hz, confidence 0); None runs every frame.
    viterbi: Viterbi-smoothed f0 (processed per file, not batched across files).
    short_files: 'pad' (zero-pad files shorter than example_secs to one window) or 'skip'.
    silence_peak_db: files whose peak is below this (dBFS) are skipped as silent.
    batch_seconds: seconds of audio (from many files) per CREPE call.
    crepe_batch_size: CREPE frames per network batch.
    f0_chunk_secs: longer sources run through CREPE in chunks of this length (bounded memory).
    voiced_confidence: f0 confidence threshold for the voiced-frame statistics.
    nsynth: inputs are original NSynth TFRecords (one source per note).
    nsynth_acoustic_only: keep instrument_source == acoustic (0) only (the paper's subset).
    nsynth_min_pitch, nsynth_max_pitch: MIDI pitch range kept (inclusive; the paper's 24..84).
  """
  sample_rate: int = 16000
  frame_rate: int = 250
  example_secs: float = 4.0
  hop_secs: float = 1.0
  eval_split_fraction: float = 0.0
  crepe_model: str = 'tiny'
  crepe_frame_rate: float = 100.0
  loudness_floor_db: float = -80.0
  viterbi: bool = False
  short_files: str = 'pad'
  silence_peak_db: float = -80.0
  batch_seconds: float = 120.0
  crepe_batch_size: int = 512
  f0_chunk_secs: float = 300.0
  voiced_confidence: float = 0.85
  nsynth: bool = False
  nsynth_acoustic_only: bool = True
  nsynth_min_pitch: int = 24
  nsynth_max_pitch: int = 84

  @property
  def hop(self):
    """Samples per feature frame."""
    return self.sample_rate // self.frame_rate

  @property
  def n_samples(self):
    return int(round(self.example_secs * self.sample_rate))

  @property
  def n_frames(self):
    return int(round(self.example_secs * self.frame_rate))

  @property
  def window_hop_samples(self):
    return int(round(self.hop_secs * self.sample_rate))

  def validate(self):
    """Raises ValueError naming the first inconsistent setting."""
    def _is_int(x):
      return abs(x - round(x)) < 1e-6
    if self.sample_rate <= 0 or self.frame_rate <= 0:
      raise ValueError(f'sample_rate and frame_rate must be positive, got {self.sample_rate}, '
                       f'{self.frame_rate}.')
    if self.sample_rate % self.frame_rate:
      raise ValueError(f'sample_rate ({self.sample_rate}) must be a multiple of frame_rate '
                       f'({self.frame_rate}) so that frames fall on whole samples.')
    if self.example_secs <= 0 or self.hop_secs <= 0:
      raise ValueError(f'example_secs and hop_secs must be positive, got {self.example_secs}, '
                       f'{self.hop_secs}.')
    if not _is_int(self.example_secs * self.frame_rate):
      raise ValueError(f'example_secs * frame_rate must be a whole number of frames, got '
                       f'{self.example_secs} * {self.frame_rate}.')
    if not _is_int(self.hop_secs * self.frame_rate):
      raise ValueError(f'hop_secs * frame_rate must be a whole number of frames (windows start on frame '
                       f'boundaries), got {self.hop_secs} * {self.frame_rate}.')
    if not 0.0 <= self.eval_split_fraction < 1.0:
      raise ValueError(f'eval_split_fraction must be in [0, 1), got {self.eval_split_fraction}.')
    if self.short_files not in ('pad', 'skip'):
      raise ValueError(f"short_files must be 'pad' or 'skip', got {self.short_files!r}.")
    if self.crepe_frame_rate is not None and self.crepe_frame_rate <= 0:
      raise ValueError(f'crepe_frame_rate must be positive or None, got {self.crepe_frame_rate}.')
    if self.crepe_model not in ('tiny', 'small', 'medium', 'large', 'full'):
      raise ValueError(f"crepe_model must be one of tiny, small, medium, large, full; got "
                       f"{self.crepe_model!r}.")
    if self.batch_seconds <= 0 or self.crepe_batch_size <= 0 or self.f0_chunk_secs < 1:
      raise ValueError('batch_seconds and crepe_batch_size must be positive, f0_chunk_secs >= 1.')
    if not 0 <= self.nsynth_min_pitch <= self.nsynth_max_pitch <= 127:
      raise ValueError(f'NSynth pitch range must satisfy 0 <= min <= max <= 127, got '
                       f'{self.nsynth_min_pitch}..{self.nsynth_max_pitch}.')
    return self


# ------------------------------------------------------------------------------------------------------------
# Feature backends (module-level so that tests can substitute them).
# ------------------------------------------------------------------------------------------------------------
def loudness_backend(audio, sample_rate, frame_rate, n_fft=2048, range_db=120.0, ref_db=0.0):
  """A-weighted loudness in dB of one mono signal: [n_samples] -> [ceil(n_samples / hop)].

  The same quantity as `ddsp.spectral_ops.compute_loudness` (its A-weighting and calibration weights,
  centred frames with zero padding, floor at -range_db; equal to within 1e-3 dB, which the tests
  check), computed about 10x faster for data preparation: float32 FFTs (scipy) over blocks of 128
  frames that stay in the CPU cache, with the power spectrum weighted in place. Memory: the output plus
  one block (no copy of the signal).
  """
  import scipy.fft  # pylint: disable=g-import-not-at-top
  from ddsp import spectral_ops  # pylint: disable=g-import-not-at-top
  hop = sample_rate // frame_rate
  if hop * frame_rate != sample_rate:
    raise ValueError(f'sample_rate / frame_rate must be an integer hop, got {sample_rate} / {frame_rate}.')
  audio = np.asarray(audio, np.float32).reshape(-1)
  n_frames = -(-audio.shape[0] // hop)
  # The same A-weighting and calibration as spectral_ops.compute_loudness.
  weights, window = spectral_ops._loudness_weights(  # pylint: disable=protected-access
      int(n_fft), int(sample_rate))
  w2 = np.repeat(np.asarray(weights, np.float32), 2)  # Interleaved (re, im) weights.
  win = np.asarray(window, np.float32)
  half = n_fft // 2
  power = np.empty((n_frames,), np.float64)
  block = 128
  buf = np.empty((block, n_fft), np.float32)
  seg = np.zeros(((block - 1) * hop + n_fft,), np.float32)
  for start in range(0, n_frames, block):
    m = min(block, n_frames - start)
    # Samples [start*hop - half, (start+m-1)*hop + half) with zeros beyond the signal (centred frames).
    lo, hi = start * hop - half, (start + m - 1) * hop + half
    seg.fill(0.0)
    a, b = max(lo, 0), min(hi, audio.shape[0])
    if b > a:
      seg[a - lo:b - lo] = audio[a:b]
    frames = np.lib.stride_tricks.sliding_window_view(seg[:hi - lo], n_fft)[::hop][:m]
    b_ = buf[:m]
    np.multiply(frames, win, out=b_)
    spec = scipy.fft.rfft(b_, axis=-1, workers=1, overwrite_x=True)
    v = spec.view(np.float32)
    np.square(v, out=v)
    power[start:start + m] = v @ w2
  return np.maximum(10.0 * np.log10(np.maximum(power, 1e-20)) - ref_db, -range_db).astype(np.float32)


def f0_backend(audios, sample_rate, frame_rate, model, viterbi, crepe_frame_rate, loudness_floor_db,
               batch_size):
  """CREPE f0 and confidence of several signals whose frames share network batches (ddsp.pitch).

  Args:
    audios: list of float32 [n_samples_i] at `sample_rate`.
    sample_rate, frame_rate, model, viterbi, crepe_frame_rate, loudness_floor_db, batch_size: see
      `ddsp.pitch.compute_f0`.

  Returns:
    List of (f0_hz [n_frames_i], f0_confidence [n_frames_i]), n_frames_i = ceil(n_samples_i / hop).
  """
  from ddsp import pitch  # pylint: disable=g-import-not-at-top
  return pitch.compute_f0_batch(audios, sample_rate=sample_rate, frame_rate=frame_rate, model=model,
                                viterbi=viterbi, crepe_frame_rate=crepe_frame_rate,
                                loudness_floor_db=loudness_floor_db, batch_size=batch_size)


def compute_loudness(audio, config):
  """Loudness [ceil(n / hop)] of one source (streams over the file: bounded memory)."""
  return loudness_backend(audio, config.sample_rate, config.frame_rate)


# One-sided audio context (samples at 16 kHz) that a CREPE output frame depends on: half a 1024-sample
# window, plus the neighbouring CREPE frame used by the interpolation; doubled for safety.
_F0_CONTEXT = 2048


def chunked_frames(fn, audio, hop, chunk_frames, context_samples, align_samples=None):
  """Applies a frame-wise feature function to long audio chunk by chunk, with bounded memory.

  `fn(segment)` must return arrays (or a tuple of arrays) of ceil(len(segment) / hop) frames, frame j
  centred on segment sample j*hop and depending only on samples within `context_samples` of its centre
  (zero padding beyond the segment). Each chunk is computed with at least `context_samples` of real
  audio on both sides and only its inner frames are kept, so the result equals `fn(audio)`.

  Args:
    fn: the feature function.
    audio: float32 [n_samples].
    hop: samples per frame.
    chunk_frames: frames kept per chunk.
    context_samples: one-sided context a frame depends on.
    align_samples: chunk starts are multiples of this many samples (e.g. the lcm of the frame hop and an
      internal hop of `fn`, so that internal frame grids coincide); None: `hop`.

  Returns:
    Arrays [ceil(n_samples / hop)] (a tuple if `fn` returns one).
  """
  n = audio.shape[0]
  n_frames = -(-n // hop)
  margin = -(-context_samples // hop) + 1
  align = max(1, (align_samples or hop) // hop)
  if n_frames <= chunk_frames + 2 * margin:
    return fn(audio)
  outs, is_tuple = None, False
  for start in range(0, n_frames, chunk_frames):
    stop = min(start + chunk_frames, n_frames)
    a = max(0, start - margin)
    a -= a % align
    b = min(n_frames, stop + margin)
    res = fn(audio[a * hop:min(n, b * hop)])
    is_tuple = isinstance(res, tuple)
    res = res if is_tuple else (res,)
    if outs is None:
      outs = tuple(np.empty((n_frames,), np.asarray(r).dtype) for r in res)
    for o, r in zip(outs, res):
      r = np.asarray(r)
      if r.shape[0] != b - a:
        raise ValueError(f'The feature function returned {r.shape[0]} frames for {b - a} samples / hop.')
      o[start:stop] = r[start - a:stop - a]
  return outs if is_tuple else outs[0]


def compute_f0_many(audios, config):
  """f0 and confidence for several sources, with few CREPE calls and bounded memory.

  Sources up to `f0_chunk_secs` long go through one call whose fixed-size network batches mix frames of
  many files (`ddsp.pitch.compute_f0_batch`: each result equals a call on that source alone), so short
  files such as NSynth notes keep the batches full. Longer sources (at 16 kHz, without Viterbi) run in
  chunks of `f0_chunk_secs` with 2048 samples of real context on each side, aligned so that CREPE's frame
  grid is the same as for the whole file: the frames equal a whole-file call and memory does not grow
  with the file's length.

  Args:
    audios: list of float32 [n_samples_i].
    config: PrepareConfig.

  Returns:
    List of (f0_hz [ceil(n_i / hop)], f0_confidence [ceil(n_i / hop)]), float32.
  """
  def call(signals):
    results = f0_backend(list(signals), config.sample_rate, config.frame_rate, config.crepe_model,
                         config.viterbi, config.crepe_frame_rate, config.loudness_floor_db,
                         config.crepe_batch_size)
    if len(results) != len(signals):
      raise ValueError(f'The f0 backend returned {len(results)} results for {len(signals)} sources.')
    return [(np.asarray(f, np.float32), np.asarray(c, np.float32)) for f, c in results]

  crepe_rate = config.crepe_frame_rate or config.frame_rate
  crepe_hop = config.sample_rate / float(crepe_rate)
  chunkable = (not config.viterbi and config.sample_rate == 16000 and
               abs(crepe_hop - round(crepe_hop)) < 1e-9)
  chunk_samples = int(config.f0_chunk_secs * config.sample_rate)
  out = [None] * len(audios)
  short = [i for i, a in enumerate(audios) if not chunkable or a.shape[0] <= chunk_samples]
  if short:
    for i, r in zip(short, call([audios[i] for i in short])):
      out[i] = r
  for i, a in enumerate(audios):
    if out[i] is None:
      align = config.hop * int(round(crepe_hop)) // math.gcd(config.hop, int(round(crepe_hop)))
      total, done, t0 = a.shape[0] / config.sample_rate, [0.0], time.time()

      def chunk_call(seg, total=total, done=done, t0=t0):
        res = call([seg])[0]
        done[0] += seg.shape[0] / config.sample_rate
        logging.info('[ddsp_prepare] CREPE on a %.0f s source: %.0f s done (%.1fx real time)', total,
                     min(done[0], total), done[0] / max(time.time() - t0, 1e-9))
        return res

      out[i] = chunked_frames(chunk_call, a, config.hop, chunk_samples // config.hop, _F0_CONTEXT, align)
  return out


def window_starts(n_samples_source, config):
  """Start samples of the windows of a source of `n_samples_source` samples (after any padding)."""
  if n_samples_source < config.n_samples:
    return []
  return list(range(0, n_samples_source - config.n_samples + 1, config.window_hop_samples))


def eval_split(source_ids, fraction):
  """The sources assigned to eval: the round(fraction * n) (at least 1 when fraction > 0 and n > 1) with
  the smallest MD5 hashes of their id. Deterministic, by source, independent of input order."""
  if fraction <= 0 or len(source_ids) < 2:
    return set()
  n_eval = min(len(source_ids) - 1, max(1, int(round(fraction * len(source_ids)))))
  ranked = sorted(source_ids, key=lambda s: (_hash_unit(s), s))
  return set(ranked[:n_eval])


def _hash_unit(source_id):
  """A deterministic number in [0, 1) from a source id."""
  digest = hashlib.md5(source_id.encode('utf-8')).digest()
  return int.from_bytes(digest[:8], 'big') / float(1 << 64)


def hash_split(source_id, fraction):
  """'eval' for a deterministic `fraction` of ids (by hash), else 'train' (NSynth mode)."""
  return 'eval' if fraction > 0 and _hash_unit(source_id) < fraction else 'train'


# ------------------------------------------------------------------------------------------------------------
# Examples.
# ------------------------------------------------------------------------------------------------------------
def _varint(n):
  n &= (1 << 64) - 1  # int64 two's complement, as protobuf encodes negative int64 values
  out = bytearray()
  while True:
    byte = n & 0x7F
    n >>= 7
    if n:
      out.append(byte | 0x80)
    else:
      out.append(byte)
      return bytes(out)


def _field(number, payload):
  """A length-delimited protobuf field (wire type 2)."""
  return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def _float_feature(values):
  data = np.ascontiguousarray(np.asarray(values, '<f4').reshape(-1)).tobytes()
  return _field(2, _field(1, data) if data else b'')  # Feature.float_list = FloatList{packed value}


def _int64_feature(values):
  data = b''.join(_varint(int(v)) for v in np.asarray(values).reshape(-1))
  return _field(3, _field(1, data) if data else b'')  # Feature.int64_list = Int64List{packed value}


def _bytes_feature(value):
  value = value if isinstance(value, bytes) else str(value).encode('utf-8')
  return _field(1, _field(1, value))  # Feature.bytes_list = BytesList{value}


def make_example(audio, f0_hz, f0_confidence, loudness_db, config, source_id, start_sample, labels=None):
  """A serialized tf.train.Example for one window.

  The bytes are encoded directly in the protobuf wire format (float lists packed, as TensorFlow writes
  them): ~50x faster than filling a `tf.train.Example` from NumPy, which cost ~4x the loudness time per
  second of audio. `tf.train.Example.FromString` parses them (the tests check equality).

  Args:
    audio: float32 [n_samples].
    f0_hz, f0_confidence, loudness_db: float32 [n_frames].
    config: PrepareConfig.
    source_id: the source file path or NSynth note_str.
    start_sample: window start in the (resampled) source.
    labels: optional dict of NSynth labels (ints, int lists, or bytes/str).

  Returns:
    bytes.
  """
  feature = [
      ('audio', _float_feature(audio)),
      ('f0_hz', _float_feature(f0_hz)),
      ('f0_confidence', _float_feature(f0_confidence)),
      ('loudness_db', _float_feature(loudness_db)),
      ('sample_rate', _int64_feature([config.sample_rate])),
      ('frame_rate', _int64_feature([config.frame_rate])),
      ('source_id', _bytes_feature(source_id)),
      ('start_sample', _int64_feature([start_sample])),
  ]
  for key, value in (labels or {}).items():
    feature.append((key, _bytes_feature(value) if isinstance(value, (bytes, str)) else _int64_feature(value)))
  # Example{features: Features{feature: map<string, Feature>}}; a map entry is {key: 1, value: 2}.
  entries = b''.join(_field(1, _field(1, k.encode('utf-8')) + _field(2, v)) for k, v in feature)
  return _field(1, entries)


# ------------------------------------------------------------------------------------------------------------
# Beam DoFns. Beam is imported lazily so that the helpers above work without it.
# ------------------------------------------------------------------------------------------------------------
def _beam():
  import apache_beam as beam  # pylint: disable=g-import-not-at-top
  return beam


def _result(source_id, status, reason=None, warnings=None, seconds=0.0, n_examples=0, split=None,
            padded=False):
  return {'source': source_id, 'status': status, 'reason': reason, 'warnings': list(warnings or []),
          'seconds': float(seconds), 'examples': int(n_examples), 'split': split, 'padded': bool(padded)}


class _Source:
  """A decoded source waiting for its features."""
  __slots__ = ('source_id', 'audio', 'labels', 'warnings', 'split', 'padded', 'seconds')

  def __init__(self, source_id, audio, labels, warnings, split, padded, seconds):
    self.source_id, self.audio, self.labels = source_id, audio, labels
    self.warnings, self.split, self.padded, self.seconds = warnings, split, padded, seconds


def _make_process_fn():
  beam = _beam()
  from apache_beam import pvalue  # pylint: disable=g-import-not-at-top
  from apache_beam.transforms import window as beam_window  # pylint: disable=g-import-not-at-top

  class ProcessSourcesFn(beam.DoFn):
    """Sources (paths, or decoded NSynth notes) -> tagged examples, results and statistics.

    Outputs: main 'train' and 'eval' (serialized Examples), 'results' (dicts), 'stats'
    (StatsAccumulator of training sources). Sources are buffered until `batch_seconds` of audio is
    collected, then features are computed for the whole buffer in one CREPE call.
    """

    def __init__(self, config, eval_ids, tf_threads=0):
      self._config = config
      self._eval_ids = frozenset(eval_ids or ())
      self._tf_threads = tf_threads
      self._ok = beam.metrics.Metrics.counter(METRICS_NAMESPACE, 'sources_ok')
      self._skipped = beam.metrics.Metrics.counter(METRICS_NAMESPACE, 'sources_skipped')
      self._examples = beam.metrics.Metrics.counter(METRICS_NAMESPACE, 'examples')
      self._audio_ms = beam.metrics.Metrics.counter(METRICS_NAMESPACE, 'audio_milliseconds')

    def setup(self):
      if self._tf_threads:
        _limit_tf_threads(self._tf_threads)
      self._buffer = []
      self._buffered_secs = 0.0
      self._t0 = time.time()
      self._last_log = self._t0
      self._done_sources = 0
      self._done_secs = 0.0

    def start_bundle(self):
      self._buffer = []
      self._buffered_secs = 0.0

    # -- reading ------------------------------------------------------------------------------------------
    def _split_of(self, source_id):
      if self._config.nsynth:
        return hash_split(source_id, self._config.eval_split_fraction)
      return 'eval' if source_id in self._eval_ids else 'train'

    def _decode(self, element):
      """Returns (_Source or None, result-or-None)."""
      config = self._config
      if isinstance(element, dict):  # An NSynth note, already decoded.
        source_id, audio, labels = element['id'], element['audio'], element['labels']
        warnings = []
        if element['sample_rate'] != config.sample_rate:
          import soxr  # pylint: disable=g-import-not-at-top
          audio = soxr.resample(audio, element['sample_rate'], config.sample_rate, quality='HQ')
        if not np.all(np.isfinite(audio)):
          bad = int(np.size(audio) - np.count_nonzero(np.isfinite(audio)))
          return None, _result(source_id, 'skipped', f'contains {bad} non-finite (NaN or Inf) samples')
      else:
        source_id, labels = element, None
        try:
          audio, info = audio_io.read_audio(element, config.sample_rate)
        except audio_io.AudioReadError as e:
          return None, _result(source_id, 'skipped', e.reason)
        except Exception as e:  # pylint: disable=broad-except
          return None, _result(source_id, 'skipped', f'unexpected read error ({type(e).__name__}: {e})')
        warnings = info.warnings
      seconds = audio.shape[0] / float(config.sample_rate)
      peak = float(np.max(np.abs(audio))) if audio.size else 0.0
      peak_db = 20.0 * math.log10(peak) if peak > 0 else -math.inf
      if peak_db < config.silence_peak_db:
        return None, _result(source_id, 'skipped', f'silent (peak {peak_db:.1f} dBFS below the '
                                                   f'{config.silence_peak_db:g} dBFS threshold)',
                             warnings, seconds)
      padded = False
      if audio.shape[0] < config.n_samples:
        if config.short_files == 'skip':
          return None, _result(source_id, 'skipped', f'shorter than example_secs ({seconds:.3f} s < '
                                                     f'{config.example_secs:g} s; short_files=skip)',
                               warnings, seconds)
        warnings = list(warnings) + [f'shorter than example_secs ({seconds:.3f} s); zero-padded to '
                                     f'{config.example_secs:g} s']
        audio = np.pad(audio, (0, config.n_samples - audio.shape[0]))
        padded = True
      return _Source(source_id, audio, labels, warnings, self._split_of(source_id), padded, seconds), None

    def process(self, element):
      source, result = self._decode(element)
      if result is not None:
        yield from self._emit_result(result)
        return
      self._buffer.append(source)
      self._buffered_secs += source.audio.shape[0] / float(self._config.sample_rate)
      if self._buffered_secs >= self._config.batch_seconds:
        yield from self._flush(windowed=False)

    def finish_bundle(self):
      yield from self._flush(windowed=True)

    # -- features and outputs -----------------------------------------------------------------------------
    def _emit_result(self, result, windowed=False):
      if result['status'] == 'ok':
        self._ok.inc()
        self._audio_ms.inc(int(round(result['seconds'] * 1000)))
        self._done_secs += result['seconds']
      else:
        self._skipped.inc()
        if result['status'] == 'skipped':
          logging.warning('Skipped %s: %s', result['source'], result['reason'])
      self._done_sources += 1
      now = time.time()
      if now - self._last_log > 10.0:
        self._last_log = now
        rate = self._done_secs / max(now - self._t0, 1e-9)
        logging.info('[ddsp_prepare] worker pid %d: %d sources, %.1f s of audio, %.1fx real time',
                     os.getpid(), self._done_sources, self._done_secs, rate)
      yield self._out('results', result, windowed)

    @staticmethod
    def _out(tag, value, windowed):
      if windowed:
        value = beam_window.GlobalWindows.windowed_value(value)
      return pvalue.TaggedOutput(tag, value)

    def _features(self, sources):
      """[(loudness, f0, conf) or Exception] for each source; one failing source does not fail others."""
      config = self._config
      try:
        f0s = compute_f0_many([s.audio for s in sources], config)
      except Exception:  # pylint: disable=broad-except
        if len(sources) == 1:
          raise
        f0s = None
      out = []
      for i, s in enumerate(sources):
        try:
          f0, conf = f0s[i] if f0s is not None else compute_f0_many([s.audio], config)[0]
          ld = compute_loudness(s.audio, config)
          n_frames = int(math.ceil(s.audio.shape[0] / config.hop))
          for name, arr in (('loudness_db', ld), ('f0_hz', f0), ('f0_confidence', conf)):
            if arr.shape != (n_frames,):
              raise ValueError(f'{name} has shape {arr.shape}, expected ({n_frames},)')
            if not np.all(np.isfinite(arr)):
              raise ValueError(f'{name} contains non-finite values')
          out.append((ld, f0, conf))
        except Exception as e:  # pylint: disable=broad-except
          out.append(e)
      return out

    def _flush(self, windowed):
      sources, self._buffer, self._buffered_secs = self._buffer, [], 0.0
      if not sources:
        return
      config = self._config
      try:
        features = self._features(sources)
      except Exception as e:  # pylint: disable=broad-except
        features = [e] * len(sources)
      for s, feats in zip(sources, features):
        if isinstance(feats, Exception):
          yield from self._emit_result(_result(
              s.source_id, 'skipped', f'feature computation failed ({type(feats).__name__}: {feats})',
              s.warnings, s.seconds), windowed)
          continue
        ld, f0, conf = feats
        n_examples = 0
        hop = config.hop
        for start in window_starts(s.audio.shape[0], config):
          i0 = start // hop
          sl = slice(i0, i0 + config.n_frames)
          ex = make_example(s.audio[start:start + config.n_samples], f0[sl], conf[sl], ld[sl], config,
                            s.source_id, start, s.labels)
          n_examples += 1
          yield self._out(s.split, ex, windowed)
        self._examples.inc(n_examples)
        if s.split == 'train':
          acc = statistics.StatsAccumulator(config.voiced_confidence)
          acc.add(ld, f0, conf)
          yield self._out('stats', acc, windowed)
        yield from self._emit_result(_result(s.source_id, 'ok', None, s.warnings, s.seconds, n_examples,
                                             s.split, s.padded), windowed)

  return ProcessSourcesFn


def _limit_tf_threads(n):
  """Caps TensorFlow's CPU threads in this process (a DirectRunner worker sharing the cores with others).
  Only possible before TensorFlow's runtime starts; later calls are ignored."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    tf.config.threading.set_intra_op_parallelism_threads(n)
    tf.config.threading.set_inter_op_parallelism_threads(n)
  except RuntimeError:
    pass


def _make_nsynth_read_fn():
  beam = _beam()
  from apache_beam import pvalue  # pylint: disable=g-import-not-at-top

  class ReadNSynthFn(beam.DoFn):
    """An original NSynth TFRecord file -> decoded notes passing the filter (dicts), plus 'results'
    records for filtered-out notes, unparseable records and corrupt files."""

    def __init__(self, config):
      self._config = config

    def _filter_reason(self, labels):
      c = self._config
      if c.nsynth_acoustic_only and labels['instrument_source'][0] != NSYNTH_ACOUSTIC:
        return 'filtered: instrument_source is not acoustic'
      if not c.nsynth_min_pitch <= labels['pitch'][0] <= c.nsynth_max_pitch:
        return f'filtered: pitch outside {c.nsynth_min_pitch}..{c.nsynth_max_pitch}'
      return None

    def process(self, path):
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      n = 0
      try:
        for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
          n += 1
          try:
            note = parse_nsynth_example(raw)
          except ValueError as e:
            yield pvalue.TaggedOutput('results', _result(f'{path}#{n - 1}', 'skipped', str(e)))
            continue
          reason = self._filter_reason(note['labels'])
          if reason:
            yield pvalue.TaggedOutput('results', _result(note['id'], 'filtered', reason))
            continue
          yield note
      except Exception as e:  # pylint: disable=broad-except
        what = 'empty or unreadable' if n == 0 else f'corrupt after {n} records'
        yield pvalue.TaggedOutput('results', _result(
            path, 'skipped', f'NSynth TFRecord file {what} ({type(e).__name__}: '
                             f'{str(e).splitlines()[0] if str(e) else ""})'))

  return ReadNSynthFn


def parse_nsynth_example(raw):
  """Parses one original NSynth tf.train.Example (bytes) into {'id', 'audio', 'sample_rate', 'labels'}.

  Raises:
    ValueError: naming the missing or malformed feature.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    ex = tf.train.Example.FromString(raw)
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f'not a tf.train.Example ({type(e).__name__})') from e
  f = ex.features.feature

  def need(key, kind):
    if key not in f or not getattr(f[key], kind).value:
      raise ValueError(f'NSynth record lacks the {kind.replace("_list", "")} feature {key!r}')
    return getattr(f[key], kind).value

  note_id = need('note_str', 'bytes_list')[0].decode('utf-8', 'replace')
  audio = np.asarray(need('audio', 'float_list'), np.float32)
  sample_rate = int(need('sample_rate', 'int64_list')[0]) if 'sample_rate' in f else 16000
  labels = {k: list(need(k, 'int64_list')) for k in NSYNTH_LABELS}
  labels['note_str'] = note_id.encode('utf-8')
  for k in NSYNTH_STRING_LABELS[1:]:
    if k in f and f[k].bytes_list.value:
      labels[k] = f[k].bytes_list.value[0]
  return {'id': note_id, 'audio': audio, 'sample_rate': sample_rate, 'labels': labels}


def _make_combine_fns():
  beam = _beam()

  class CombineStatsFn(beam.CombineFn):
    """Merges StatsAccumulators."""

    def __init__(self, voiced_confidence):
      self._conf = voiced_confidence

    def create_accumulator(self):
      return statistics.StatsAccumulator(self._conf)

    def add_input(self, acc, element):
      return acc.merge(element)

    def merge_accumulators(self, accs):
      accs = list(accs)
      out = accs[0]
      for a in accs[1:]:
        out.merge(a)
      return out

    def extract_output(self, acc):
      return acc

  class CombineResultsFn(beam.CombineFn):
    """Counts results; keeps skipped sources and warnings in full, ok sources up to a limit."""

    def create_accumulator(self):
      return {'counts': {}, 'seconds_ok': 0.0, 'seconds_skipped': 0.0, 'examples': {}, 'skipped': [],
              'warnings': [], 'ok': [], 'n_ok_listed_dropped': 0, 'filtered': {}}

    def add_input(self, acc, r):
      acc['counts'][r['status']] = acc['counts'].get(r['status'], 0) + 1
      if r['status'] == 'ok':
        acc['seconds_ok'] += r['seconds']
        acc['examples'][r['split']] = acc['examples'].get(r['split'], 0) + r['examples']
        if len(acc['ok']) < _MAX_LISTED_OK:
          acc['ok'].append({k: r[k] for k in ('source', 'seconds', 'examples', 'split', 'padded')})
        else:
          acc['n_ok_listed_dropped'] += 1
      elif r['status'] == 'filtered':
        acc['filtered'][r['reason']] = acc['filtered'].get(r['reason'], 0) + 1
      else:
        acc['seconds_skipped'] += r['seconds']
        acc['skipped'].append({'source': r['source'], 'reason': r['reason']})
      for w in r['warnings']:
        acc['warnings'].append({'source': r['source'], 'warning': w})
      return acc

    def merge_accumulators(self, accs):
      accs = list(accs)
      out = accs[0]
      for a in accs[1:]:
        for key in ('counts', 'examples', 'filtered'):
          for k, v in a[key].items():
            out[key][k] = out[key].get(k, 0) + v
        out['seconds_ok'] += a['seconds_ok']
        out['seconds_skipped'] += a['seconds_skipped']
        out['skipped'] += a['skipped']
        out['warnings'] += a['warnings']
        room = _MAX_LISTED_OK - len(out['ok'])
        out['ok'] += a['ok'][:room]
        out['n_ok_listed_dropped'] += a['n_ok_listed_dropped'] + max(0, len(a['ok']) - room)
      return out

    def extract_output(self, acc):
      for key in ('skipped', 'warnings', 'ok'):
        acc[key].sort(key=lambda d: d['source'])
      return acc

  return CombineStatsFn, CombineResultsFn


# ------------------------------------------------------------------------------------------------------------
# Files.
# ------------------------------------------------------------------------------------------------------------
def _gfile():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.io.gfile


def write_json_atomically(path, obj):
  """Writes `obj` as JSON to `path` via a temp file and a rename (local paths or tf.io.gfile URLs)."""
  data = json.dumps(obj, indent=2, sort_keys=False, default=_json_default, allow_nan=False)
  if '://' in path:
    gfile = _gfile()
    tmp = f'{path}.tmp-{uuid.uuid4().hex}'
    with gfile.GFile(tmp, 'w') as f:
      f.write(data)
    gfile.rename(tmp, path, overwrite=True)
    return
  directory = os.path.dirname(os.path.abspath(path))
  tmp = os.path.join(directory, f'.{os.path.basename(path)}.tmp-{uuid.uuid4().hex}')
  try:
    with open(tmp, 'w', encoding='utf-8') as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def _json_default(x):
  if isinstance(x, (np.integer,)):
    return int(x)
  if isinstance(x, (np.floating,)):
    return float(x)
  if isinstance(x, np.ndarray):
    return x.tolist()
  if isinstance(x, bytes):
    return x.decode('utf-8', 'replace')
  raise TypeError(f'not JSON serializable: {type(x).__name__}')


def _write_json_element(obj, path):
  if isinstance(obj, statistics.StatsAccumulator):
    obj = {'__stats__': True, 'voiced_confidence': obj.voiced_confidence, 'state': _stats_state(obj)}
  write_json_atomically(path, obj)


def _stats_state(acc):
  return {k: (v.tolist() if isinstance(v, np.ndarray) else (None if isinstance(v, float) and
                                                              not math.isfinite(v) else v))
          for k, v in vars(acc).items()}


def _stats_from_state(d):
  acc = statistics.StatsAccumulator(d['voiced_confidence'])
  for k, v in d['state'].items():
    cur = getattr(acc, k)
    if isinstance(cur, np.ndarray):
      setattr(acc, k, np.asarray(v, np.int64))
    elif v is None:
      setattr(acc, k, math.inf if k.endswith('_min') else -math.inf)
    else:
      setattr(acc, k, v)
  return acc


def eval_prefix(output_tfrecord_path):
  """Prefix of the eval shards: `<dir>/<stem>-eval<ext>` (`/d/train.tfrecord` -> `/d/train-eval.tfrecord`),
  or `<path>.eval` without an extension. Never `<output>-...`: Beam's writer deletes existing files matching
  `<prefix>-*-of-NNNNN` and a glob `<output>*` must not pick up eval shards."""
  directory, base = os.path.split(output_tfrecord_path)
  stem, ext = os.path.splitext(base)
  name = f'{stem}-eval{ext}' if ext and stem else f'{base}.eval'
  return os.path.join(directory, name) if directory else name


def output_paths(output_tfrecord_path):
  """Names of everything a preparation writes for `output_tfrecord_path`."""
  directory = os.path.dirname(output_tfrecord_path) or '.'
  return {
      'train_glob': output_tfrecord_path + SHARD_GLOB,
      'eval_glob': eval_prefix(output_tfrecord_path) + SHARD_GLOB,
      'report': os.path.join(directory, REPORT_NAME),
      'statistics': os.path.join(directory, STATS_NAME),
  }


def existing_outputs(output_tfrecord_path):
  """Files a new preparation to `output_tfrecord_path` would replace."""
  gfile = _gfile()
  paths = output_paths(output_tfrecord_path)
  found = []
  for key in ('train_glob', 'eval_glob'):
    found += gfile.glob(paths[key])
  for key in ('report', 'statistics'):
    if gfile.exists(paths[key]):
      found.append(paths[key])
  return sorted(found)


# ------------------------------------------------------------------------------------------------------------
# Driver.
# ------------------------------------------------------------------------------------------------------------
def default_direct_workers(cores=None):
  """DirectRunner worker processes by default: one per 4 cores (each TF process then uses 4 threads).

  CREPE's convolutions already use every core of one process; extra worker processes add their own
  start-up and XLA compilation and compete for the same cores. bench/prepare.py measured on 2 cores
  (150 s of mixed-format audio): in-memory (1 process) 12.9x real time, multi-processing with 2 workers
  10.2x; so machines with fewer than 8 cores run one in-memory worker.
  """
  cores = cores or os.cpu_count() or 1
  return max(1, cores // 4)


def default_pipeline_args(pipeline_args):
  """Adds DirectRunner defaults unless the caller chose another runner or set the direct options:
  `--direct_running_mode=multi_processing --direct_num_workers=<cores / 4>` (in_memory below 8 cores)."""
  args = list(pipeline_args or [])
  joined = ' '.join(args)
  if '--runner' not in joined:
    args.append('--runner=DirectRunner')
  if _is_direct(args):
    workers = default_direct_workers()
    if '--direct_num_workers' in joined:
      for a in args:
        if a.startswith('--direct_num_workers='):
          workers = int(a.split('=', 1)[1])
    else:
      args.append(f'--direct_num_workers={workers}')
    if '--direct_running_mode' not in joined:
      args.append('--direct_running_mode=' + ('multi_processing' if workers > 1 else 'in_memory'))
  return args


def _runner_name(args):
  name = None
  for i, a in enumerate(args):
    if a.startswith('--runner='):
      name = a.split('=', 1)[1]
    elif a == '--runner' and i + 1 < len(args):
      name = args[i + 1]
  return name


def _is_direct(args):
  return (_runner_name(args) or 'DirectRunner').lower() in ('directrunner', 'direct', 'fnapirunner')


def _worker_tf_threads(args):
  """TF threads per DirectRunner worker process: the cores divided among the workers (0: TF's default)."""
  if not _is_direct(args) or 'multi_processing' not in ' '.join(args):
    return 0
  workers = 0
  for a in args:
    if a.startswith('--direct_num_workers='):
      workers = int(a.split('=', 1)[1])
  cores = os.cpu_count() or 1
  return max(1, cores // workers) if workers > 1 else 0


def _make_runner(args):
  """The FnApiRunner for the DirectRunner (Beam's DirectRunner would first try to download the Prism
  runner binary: no network is used here); None lets Beam build any other runner from the options."""
  if _is_direct(args):
    from apache_beam.runners.portability.fn_api_runner import fn_runner  # pylint: disable=g-import-not-at-top
    return fn_runner.FnApiRunner()
  return None


def prepare(input_filepatterns, output_tfrecord_path, config=None, num_shards=0, overwrite=False,
            pipeline_args=None):
  """Runs the preparation pipeline and writes the shards plus both JSON files.

  Args:
    input_filepatterns: glob pattern(s) of audio files (or of NSynth TFRecords when `config.nsynth`).
    output_tfrecord_path: output prefix; shards are `<prefix>-SSSSS-of-NNNNN` and, with an eval split,
      `eval_prefix(<prefix>)-SSSSS-of-NNNNN` (`/d/train.tfrecord` -> `/d/train-eval.tfrecord-...`); the
      JSON files go into its folder.
    config: PrepareConfig (defaults if None).
    num_shards: shards per split; 0 lets the runner choose (streaming, bounded memory).
    overwrite: replace an existing preparation at the same path.
    pipeline_args: Beam pipeline options as command-line strings (e.g. ['--runner=DataflowRunner', ...]);
      without `--runner`, the DirectRunner (see `default_pipeline_args`).

  Returns:
    The report dict (also written to `prepare_report.json`).

  Raises:
    FileNotFoundError: a pattern matches nothing (before any work).
    FileExistsError: the output exists and `overwrite` is False.
    ValueError: inconsistent configuration.
  """
  beam = _beam()
  from apache_beam.options.pipeline_options import PipelineOptions  # pylint: disable=g-import-not-at-top
  config = (config or PrepareConfig()).validate()
  if isinstance(input_filepatterns, str):
    input_filepatterns = [input_filepatterns]
  if not input_filepatterns:
    raise ValueError('No input file pattern given.')
  if not output_tfrecord_path:
    raise ValueError('No output_tfrecord_path given.')
  if num_shards < 0:
    raise ValueError(f'num_shards must be >= 0, got {num_shards}.')
  paths, unmatched = audio_io.expand_filepatterns(input_filepatterns)
  if unmatched:
    raise FileNotFoundError('No file matches the input pattern(s): ' + ', '.join(repr(p) for p in unmatched)
                            + '. Nothing was done.')
  gfile = _gfile()
  existing = existing_outputs(output_tfrecord_path)
  if existing and not overwrite:
    listed = ', '.join(existing[:5]) + (f' and {len(existing) - 5} more' if len(existing) > 5 else '')
    raise FileExistsError(f'Output already exists for {output_tfrecord_path!r}: {listed}. Pass --overwrite '
                          f'to replace it. Nothing was done.')
  out_paths = output_paths(output_tfrecord_path)
  out_dir = os.path.dirname(output_tfrecord_path) or '.'
  gfile.makedirs(out_dir)
  tmp_dir = os.path.join(out_dir, f'.ddsp_prepare_tmp-{uuid.uuid4().hex}')
  gfile.makedirs(tmp_dir)
  results_json = os.path.join(tmp_dir, 'results.json')
  stats_json = os.path.join(tmp_dir, 'stats.json')
  written_json = os.path.join(tmp_dir, 'written.json')

  eval_ids = set() if config.nsynth else eval_split(paths, config.eval_split_fraction)
  with_eval = config.eval_split_fraction > 0
  args = default_pipeline_args(pipeline_args)
  options = PipelineOptions(args)
  process_fn = _make_process_fn()
  combine_stats, combine_results = _make_combine_fns()
  logging.info('Preparing %d %s into %s (%s)', len(paths), 'NSynth TFRecord files' if config.nsynth else
               'audio files', output_tfrecord_path, ' '.join(args))
  t0 = time.time()
  pipeline = beam.Pipeline(runner=_make_runner(args), options=options)
  sources = pipeline | 'Files' >> beam.Create(paths) | 'SpreadFiles' >> beam.Reshuffle()
  result_colls = []
  if config.nsynth:
    read = sources | 'ReadNSynth' >> beam.ParDo(_make_nsynth_read_fn()(config)).with_outputs(
        'results', main='notes')
    result_colls.append(read.results)
    sources = read.notes
    if not _is_direct(args):
      sources = sources | 'SpreadNotes' >> beam.Reshuffle()
  process = process_fn(config, eval_ids, _worker_tf_threads(args))
  outs = sources | 'Process' >> beam.ParDo(process).with_outputs(
      'train', 'eval', 'results', 'stats')
  result_colls.append(outs.results)
  written = [outs.train | 'WriteTrain' >> beam.io.WriteToTFRecord(
      output_tfrecord_path, num_shards=num_shards, shard_name_template=SHARD_TEMPLATE)]
  if with_eval:
    written.append(outs.eval | 'WriteEval' >> beam.io.WriteToTFRecord(
        eval_prefix(output_tfrecord_path), num_shards=num_shards, shard_name_template=SHARD_TEMPLATE))
  _ = (written | 'AllWritten' >> beam.Flatten() | 'ListWritten' >> beam.combiners.ToList()
       | 'WriteWritten' >> beam.Map(_write_json_element, written_json))
  results = (result_colls if len(result_colls) > 1 else result_colls[:1]) | 'AllResults' >> beam.Flatten()
  _ = (results | 'CombineResults' >> beam.CombineGlobally(combine_results())
       | 'WriteResults' >> beam.Map(_write_json_element, results_json))
  _ = (outs.stats | 'CombineStats' >> beam.CombineGlobally(combine_stats(config.voiced_confidence))
       | 'WriteStats' >> beam.Map(_write_json_element, stats_json))
  try:
    run_result = pipeline.run()
    run_result.wait_until_finish()
    wall = time.time() - t0
    with gfile.GFile(results_json, 'r') as f:
      combined = json.load(f)
    with gfile.GFile(stats_json, 'r') as f:
      stats = _stats_from_state(json.load(f))
    with gfile.GFile(written_json, 'r') as f:
      written_files = set(json.load(f))
  finally:
    if gfile.exists(tmp_dir):
      gfile.rmtree(tmp_dir)

  # Remove shards of an earlier preparation (only reachable with overwrite) that this run did not rewrite,
  # and temp folders that interrupted runs to the same prefixes left behind.
  for f in existing:
    if f not in written_files and f not in (out_paths['report'], out_paths['statistics']):
      gfile.remove(f)
  for prefix in (output_tfrecord_path, eval_prefix(output_tfrecord_path)):
    d, base = os.path.split(prefix)
    for stale in gfile.glob(os.path.join(d or '.', f'beam-temp-{base}-' + '[0-9a-f]' * 8 + '*')):
      logging.info('Removing the temp folder of an interrupted run: %s', stale)
      gfile.rmtree(stale)
  train_files = sorted(gfile.glob(out_paths['train_glob']))
  eval_files = sorted(gfile.glob(out_paths['eval_glob'])) if with_eval else []

  counts = combined['counts']
  seconds = combined['seconds_ok']
  report = {
      'output_tfrecord_path': output_tfrecord_path,
      'mode': 'nsynth' if config.nsynth else 'audio',
      'input_filepatterns': list(input_filepatterns),
      'n_input_files': len(paths),
      'sources_ok': counts.get('ok', 0),
      'sources_skipped': counts.get('skipped', 0),
      'sources_filtered': counts.get('filtered', 0),
      'filtered_reasons': combined['filtered'],
      'seconds_of_audio': seconds,
      'seconds_of_audio_skipped': combined['seconds_skipped'],
      'examples_written': {'train': combined['examples'].get('train', 0),
                           'eval': combined['examples'].get('eval', 0)},
      'wall_seconds': wall,
      'realtime_factor': seconds / wall if wall > 0 else None,
      'sources_per_second': counts.get('ok', 0) / wall if wall > 0 else None,
      'outputs': {'train': train_files, 'eval': eval_files, 'train_pattern': out_paths['train_glob'],
                  'eval_pattern': out_paths['eval_glob'] if with_eval else None,
                  'statistics': out_paths['statistics']},
      'skipped': combined['skipped'],
      'warnings': combined['warnings'],
      'ok': combined['ok'],
      'ok_not_listed': combined['n_ok_listed_dropped'],
      'config': dataclasses.asdict(config),
      'num_shards': num_shards,
      'pipeline_args': args,
  }
  stats_dict = stats.to_dict(frame_rate=config.frame_rate)
  stats_dict.update({'sample_rate': config.sample_rate, 'split': 'train',
                     'crepe_model': config.crepe_model, 'crepe_frame_rate': config.crepe_frame_rate,
                     'loudness_floor_db': config.loudness_floor_db})
  write_json_atomically(out_paths['statistics'], stats_dict)
  write_json_atomically(out_paths['report'], report)
  return report


def summary(report):
  """A few human-readable lines about a finished preparation."""
  ex = report['examples_written']
  lines = [
      f"Prepared {report['sources_ok']} of {report['n_input_files']} input "
      f"{'NSynth files' if report['mode'] == 'nsynth' else 'files'}: "
      f"{report['seconds_of_audio']:.1f} s of audio in {report['wall_seconds']:.1f} s "
      f"({report['realtime_factor'] or 0:.1f}x real time).",
      f"Examples written: {ex['train']} train, {ex['eval']} eval; "
      f"{len(report['outputs']['train'])} train shard(s), {len(report['outputs']['eval'])} eval shard(s).",
  ]
  if report['sources_filtered']:
    lines.append(f"Filtered out (NSynth filter): {report['sources_filtered']} notes.")
  if report['sources_skipped']:
    lines.append(f"Skipped {report['sources_skipped']} source(s):")
    for s in report['skipped'][:20]:
      lines.append(f"  {s['source']}: {s['reason']}")
    if len(report['skipped']) > 20:
      lines.append(f"  ... and {len(report['skipped']) - 20} more (see the report).")
  if report['warnings']:
    lines.append(f"{len(report['warnings'])} warning(s), e.g. {report['warnings'][0]['source']}: "
                 f"{report['warnings'][0]['warning']}")
  lines.append(f"Report: {output_paths(report['output_tfrecord_path'])['report']}")
  return '\n'.join(lines)
