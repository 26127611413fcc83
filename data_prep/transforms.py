"""The Beam transforms of data preparation: reading NSynth records, computing features and examples per
source, and combining the per-source results and statistics.

Beam is imported lazily (inside the factories that build the DoFn and CombineFn classes) so that importing
this module does not need it.

Outputs of `ProcessSourcesFn` (see `make_process_fn`): 'train' and 'eval' (serialized Examples),
'results' (one dict per source: ok / skipped with its reason / warnings), 'stats' (one StatsAccumulator
per source of the training split). `ReadNSynthFn` applies the paper's filter (acoustic instruments, MIDI
pitch 24..84) and emits one decoded note per record.
"""
import logging
import math
import os
import time

import numpy as np

from ddsp.data_prep import audio_io
from ddsp.data_prep import examples
from ddsp.data_prep import features
from ddsp.data_prep import statistics

METRICS_NAMESPACE = 'ddsp_prepare'
_MAX_LISTED_OK = 10000


def _beam():
  import apache_beam as beam
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


def make_process_fn():
  """The `ProcessSourcesFn` DoFn class (built on first use, so that Beam is imported only when needed)."""
  beam = _beam()
  from apache_beam import pvalue
  from apache_beam.transforms import window as beam_window

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
        return features.hash_split(source_id, self._config.eval_split_fraction)
      return 'eval' if source_id in self._eval_ids else 'train'

    def _decode(self, element):
      """Returns (_Source or None, result-or-None)."""
      config = self._config
      if isinstance(element, dict):  # An NSynth note, already decoded.
        source_id, audio, labels = element['id'], element['audio'], element['labels']
        warnings = []
        if element['sample_rate'] != config.sample_rate:
          import soxr
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
        except Exception as e:
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
        f0s = features.compute_f0_many([s.audio for s in sources], config)
      except Exception:
        if len(sources) == 1:
          raise
        f0s = None
      out = []
      for i, s in enumerate(sources):
        try:
          f0, conf = f0s[i] if f0s is not None else features.compute_f0_many([s.audio], config)[0]
          ld = features.compute_loudness(s.audio, config)
          n_frames = int(math.ceil(s.audio.shape[0] / config.hop))
          for name, arr in (('loudness_db', ld), ('f0_hz', f0), ('f0_confidence', conf)):
            if arr.shape != (n_frames,):
              raise ValueError(f'{name} has shape {arr.shape}, expected ({n_frames},)')
            if not np.all(np.isfinite(arr)):
              raise ValueError(f'{name} contains non-finite values')
          out.append((ld, f0, conf))
        except Exception as e:
          out.append(e)
      return out

    def _flush(self, windowed):
      sources, self._buffer, self._buffered_secs = self._buffer, [], 0.0
      if not sources:
        return
      config = self._config
      try:
        per_source = self._features(sources)
      except Exception as e:
        per_source = [e] * len(sources)
      for s, feats in zip(sources, per_source):
        if isinstance(feats, Exception):
          yield from self._emit_result(_result(
              s.source_id, 'skipped', f'feature computation failed ({type(feats).__name__}: {feats})',
              s.warnings, s.seconds), windowed)
          continue
        ld, f0, conf = feats
        n_examples = 0
        hop = config.hop
        for start in features.window_starts(s.audio.shape[0], config):
          i0 = start // hop
          sl = slice(i0, i0 + config.n_frames)
          ex = examples.make_example(s.audio[start:start + config.n_samples], f0[sl], conf[sl], ld[sl],
                                     config, s.source_id, start, s.labels)
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
  import tensorflow as tf
  try:
    tf.config.threading.set_intra_op_parallelism_threads(n)
    tf.config.threading.set_inter_op_parallelism_threads(n)
  except RuntimeError:
    pass


def make_nsynth_read_fn():
  """The `ReadNSynthFn` DoFn class (built on first use)."""
  beam = _beam()
  from apache_beam import pvalue

  class ReadNSynthFn(beam.DoFn):
    """An original NSynth TFRecord file -> decoded notes passing the filter (dicts), plus 'results'
    records for filtered-out notes, unparseable records and corrupt files."""

    def __init__(self, config):
      self._config = config

    def _filter_reason(self, labels):
      c = self._config
      if c.nsynth_acoustic_only and labels['instrument_source'][0] != examples.NSYNTH_ACOUSTIC:
        return 'filtered: instrument_source is not acoustic'
      if not c.nsynth_min_pitch <= labels['pitch'][0] <= c.nsynth_max_pitch:
        return f'filtered: pitch outside {c.nsynth_min_pitch}..{c.nsynth_max_pitch}'
      return None

    def process(self, path):
      import tensorflow as tf
      n = 0
      try:
        for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
          n += 1
          try:
            note = examples.parse_nsynth_example(raw)
          except ValueError as e:
            yield pvalue.TaggedOutput('results', _result(f'{path}#{n - 1}', 'skipped', str(e)))
            continue
          reason = self._filter_reason(note['labels'])
          if reason:
            yield pvalue.TaggedOutput('results', _result(note['id'], 'filtered', reason))
            continue
          yield note
      except Exception as e:
        what = 'empty or unreadable' if n == 0 else f'corrupt after {n} records'
        yield pvalue.TaggedOutput('results', _result(
            path, 'skipped', f'NSynth TFRecord file {what} ({type(e).__name__}: '
                             f'{str(e).splitlines()[0] if str(e) else ""})'))

  return ReadNSynthFn


def make_combine_fns():
  """The `(CombineStatsFn, CombineResultsFn)` CombineFn classes (built on first use)."""
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
