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

This module holds the configuration (`PrepareConfig`), the runner selection and the driver (`prepare`,
`summary`). The parts live beside it: `features` (loudness and CREPE f0 per source, windows, the eval
split; how the features are computed once per file and what keeps CREPE's cost low), `examples`
(tf.train.Example encoding, NSynth parsing), `transforms` (the Beam DoFns and CombineFns) and `outputs`
(output names, JSON reports).

Writing goes through `beam.io.WriteToTFRecord`: shards are written under a temp folder and renamed into
place only when the pipeline succeeds, so an interrupted run leaves no partial shard under the output
name. With `num_shards=0` (default) the runner picks the number of shards and every worker streams its
examples straight to its shard; a fixed `num_shards` adds a shuffle that (on the DirectRunner) holds the
whole dataset in memory.
"""
import dataclasses
import json
import logging
import os
import time
import uuid

from ddsp import file_utils
from ddsp.data_prep import audio_io
from ddsp.data_prep import features
from ddsp.data_prep import outputs
from ddsp.data_prep import transforms


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
    from apache_beam.runners.portability.fn_api_runner import fn_runner
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
  import apache_beam as beam
  from apache_beam.options.pipeline_options import PipelineOptions
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
  gfile = outputs.gfile()
  existing = outputs.existing_outputs(output_tfrecord_path)
  if existing and not overwrite:
    listed = ', '.join(existing[:5]) + (f' and {len(existing) - 5} more' if len(existing) > 5 else '')
    raise FileExistsError(f'Output already exists for {output_tfrecord_path!r}: {listed}. Pass --overwrite '
                          f'to replace it. Nothing was done.')
  out_paths = outputs.output_paths(output_tfrecord_path)
  out_dir = os.path.dirname(output_tfrecord_path) or '.'
  gfile.makedirs(out_dir)
  tmp_dir = os.path.join(out_dir, f'.ddsp_prepare_tmp-{uuid.uuid4().hex}')
  gfile.makedirs(tmp_dir)
  results_json = os.path.join(tmp_dir, 'results.json')
  stats_json = os.path.join(tmp_dir, 'stats.json')
  written_json = os.path.join(tmp_dir, 'written.json')

  eval_ids = set() if config.nsynth else features.eval_split(paths, config.eval_split_fraction)
  with_eval = config.eval_split_fraction > 0
  args = default_pipeline_args(pipeline_args)
  options = PipelineOptions(args)
  process_fn = transforms.make_process_fn()
  combine_stats, combine_results = transforms.make_combine_fns()
  logging.info('Preparing %d %s into %s (%s)', len(paths), 'NSynth TFRecord files' if config.nsynth else
               'audio files', output_tfrecord_path, ' '.join(args))
  t0 = time.time()
  pipeline = beam.Pipeline(runner=_make_runner(args), options=options)
  sources = pipeline | 'Files' >> beam.Create(paths) | 'SpreadFiles' >> beam.Reshuffle()
  result_colls = []
  if config.nsynth:
    read = sources | 'ReadNSynth' >> beam.ParDo(transforms.make_nsynth_read_fn()(config)).with_outputs(
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
      output_tfrecord_path, num_shards=num_shards, shard_name_template=outputs.SHARD_TEMPLATE)]
  if with_eval:
    written.append(outs.eval | 'WriteEval' >> beam.io.WriteToTFRecord(
        outputs.eval_prefix(output_tfrecord_path), num_shards=num_shards,
        shard_name_template=outputs.SHARD_TEMPLATE))
  _ = (written | 'AllWritten' >> beam.Flatten() | 'ListWritten' >> beam.combiners.ToList()
       | 'WriteWritten' >> beam.Map(outputs.write_json_element, written_json))
  results = (result_colls if len(result_colls) > 1 else result_colls[:1]) | 'AllResults' >> beam.Flatten()
  _ = (results | 'CombineResults' >> beam.CombineGlobally(combine_results())
       | 'WriteResults' >> beam.Map(outputs.write_json_element, results_json))
  _ = (outs.stats | 'CombineStats' >> beam.CombineGlobally(combine_stats(config.voiced_confidence))
       | 'WriteStats' >> beam.Map(outputs.write_json_element, stats_json))
  try:
    run_result = pipeline.run()
    run_result.wait_until_finish()
    wall = time.time() - t0
    with gfile.GFile(results_json, 'r') as f:
      combined = json.load(f)
    with gfile.GFile(stats_json, 'r') as f:
      stats = outputs.stats_from_state(json.load(f))
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
  for prefix in (output_tfrecord_path, outputs.eval_prefix(output_tfrecord_path)):
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
  file_utils.write_json(out_paths['statistics'], stats_dict, sort_keys=False, allow_nan=False)
  file_utils.write_json(out_paths['report'], report, sort_keys=False, allow_nan=False)
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
  lines.append(f"Report: {outputs.output_paths(report['output_tfrecord_path'])['report']}")
  return '\n'.join(lines)
