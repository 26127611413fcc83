r"""`ddsp_prepare_tfrecord`: audio files (or NSynth TFRecords) -> sharded training TFRecords.

Examples:

  # A folder of recordings on this machine (DirectRunner; one worker process per 4 cores, multi-processing
  # from 8 cores, in-memory below):
  ddsp_prepare_tfrecord \
    --input_audio_filepatterns='/data/violin/*.mp3' \
    --input_audio_filepatterns='/data/violin/*.wav' \
    --output_tfrecord_path=/data/violin_prepared/train.tfrecord \
    --eval_split_fraction=0.1

  # The original NSynth TFRecords, the paper's subset (acoustic, MIDI pitch 24..84):
  ddsp_prepare_tfrecord --nsynth \
    --input_audio_filepatterns='/data/nsynth/nsynth-train.tfrecord' \
    --output_tfrecord_path=/data/nsynth_prepared/train.tfrecord

  # Any other Beam runner: its options pass straight through. Its workers need this package (and the CREPE
  # weights package) installed: e.g. --setup_file=<ddsp checkout>/setup.py or a custom SDK container.
  ddsp_prepare_tfrecord ... --runner=DataflowRunner --project=P --region=R \
    --temp_location=gs://bucket/tmp --output_tfrecord_path=gs://bucket/data/train.tfrecord \
    --setup_file=./setup.py

Outputs: `<output_tfrecord_path>-SSSSS-of-NNNNN` (train), with --eval_split_fraction > 0 the eval shards
`<dir>/<stem>-eval<ext>-SSSSS-of-NNNNN` (train.tfrecord -> train-eval.tfrecord-00000-of-00001, so that a
glob `train.tfrecord*` never picks them up), and `prepare_report.json`, `dataset_statistics.json` in the
same folder.
Each record holds one window: `audio` [example_secs * sample_rate], `f0_hz`, `f0_confidence`,
`loudness_db` [example_secs * frame_rate], `sample_rate`, `frame_rate`, `source_id`, `start_sample`
(+ NSynth labels). Bad files are skipped and listed in the report with their reason; the exit status is
1 when no file could be used.
"""
import logging
import os
import sys

from absl import app
from absl import flags

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # before TensorFlow loads (through ddsp)

from ddsp import cli  # pylint: disable=wrong-import-position

FLAGS = flags.FLAGS


@cli.define_once
def define_flags():
  """Defines the command-line flags (Beam pipeline options pass through unparsed)."""
  flags.DEFINE_multi_string('input_audio_filepatterns', [], 'Glob pattern(s) of input audio files (repeatable), '
                            'or of NSynth TFRecord files with --nsynth.')
  flags.DEFINE_string('output_tfrecord_path', None, 'Output prefix of the TFRecord shards.')
  flags.DEFINE_integer('num_shards', 0, 'Shards per split; 0 lets the runner choose (streaming writes, bounded '
                       'memory). A fixed number adds a shuffle stage.')
  flags.DEFINE_integer('sample_rate', 16000, 'Output audio sample rate (Hz).')
  flags.DEFINE_integer('frame_rate', 250, 'Feature frame rate (Hz); sample_rate must be a multiple of it.')
  flags.DEFINE_float('example_secs', 4.0, 'Seconds per example window.')
  flags.DEFINE_float('hop_secs', 1.0, 'Seconds between window starts.')
  flags.DEFINE_float('eval_split_fraction', 0.0, 'Fraction of source files (never windows) written to the '
                     '-eval shards.')
  flags.DEFINE_enum('crepe_model', 'tiny', ['tiny', 'small', 'medium', 'large', 'full'], 'CREPE capacity.')
  flags.DEFINE_string('crepe_frame_rate', '100', "CREPE frames per second ('none': run at --frame_rate); f0 "
                      'and confidence are interpolated to --frame_rate.')
  flags.DEFINE_string('loudness_floor_db', '-80', "Frames below this loudness skip CREPE and read as unvoiced "
                      "(f0 0 Hz, confidence 0); 'none' runs CREPE on every frame.")
  flags.DEFINE_boolean('viterbi', False, 'Viterbi-smoothed f0.')
  flags.DEFINE_boolean('overwrite', False, 'Replace an existing preparation at --output_tfrecord_path.')
  flags.DEFINE_enum('short_files', 'pad', ['pad', 'skip'], 'Files shorter than --example_secs: zero-pad to one '
                    'window, or skip (reported either way).')
  flags.DEFINE_float('silence_peak_db', -80.0, 'Files whose peak is below this level (dBFS) are skipped as '
                     'silent.')
  flags.DEFINE_float('batch_seconds', 120.0, 'Seconds of audio (from many files) per CREPE call.')
  flags.DEFINE_integer('crepe_batch_size', 512, 'CREPE frames per network batch.')
  flags.DEFINE_boolean('nsynth', False, 'Inputs are original NSynth TFRecords (one example per note, NSynth '
                       'labels kept).')
  flags.DEFINE_boolean('nsynth_acoustic_only', True, 'NSynth: keep acoustic instruments only (the paper).')
  flags.DEFINE_integer('nsynth_min_pitch', 24, 'NSynth: lowest MIDI pitch kept (the paper: 24).')
  flags.DEFINE_integer('nsynth_max_pitch', 84, 'NSynth: highest MIDI pitch kept (the paper: 84).')
  flags.DEFINE_list('pipeline_options', [], 'Extra Beam pipeline options, comma-separated (e.g. '
                    '"--runner=FlinkRunner,--flink_master=host:8081"). Unknown --flags are passed to Beam too.')


def _optional_float(name, text):
  if text is None or str(text).strip().lower() in ('none', '', 'off'):
    return None
  try:
    return float(text)
  except ValueError as e:
    raise app.UsageError(f"--{name} must be a number or 'none', got {text!r}.") from e


def _config():
  from ddsp.data_prep import pipeline  # pylint: disable=g-import-not-at-top
  return pipeline.PrepareConfig(
      sample_rate=FLAGS.sample_rate, frame_rate=FLAGS.frame_rate, example_secs=FLAGS.example_secs,
      hop_secs=FLAGS.hop_secs, eval_split_fraction=FLAGS.eval_split_fraction, crepe_model=FLAGS.crepe_model,
      crepe_frame_rate=_optional_float('crepe_frame_rate', FLAGS.crepe_frame_rate),
      loudness_floor_db=_optional_float('loudness_floor_db', FLAGS.loudness_floor_db),
      viterbi=FLAGS.viterbi, short_files=FLAGS.short_files, silence_peak_db=FLAGS.silence_peak_db,
      batch_seconds=FLAGS.batch_seconds, crepe_batch_size=FLAGS.crepe_batch_size, nsynth=FLAGS.nsynth,
      nsynth_acoustic_only=FLAGS.nsynth_acoustic_only, nsynth_min_pitch=FLAGS.nsynth_min_pitch,
      nsynth_max_pitch=FLAGS.nsynth_max_pitch)


def run(beam_args):
  """Runs the preparation from the parsed flags; returns the process exit status."""
  from ddsp.data_prep import pipeline  # pylint: disable=g-import-not-at-top
  if not FLAGS.input_audio_filepatterns:
    raise app.UsageError('--input_audio_filepatterns is required (repeat it for several globs).')
  if not FLAGS.output_tfrecord_path:
    raise app.UsageError('--output_tfrecord_path is required.')
  try:
    config = _config().validate()
    report = pipeline.prepare(FLAGS.input_audio_filepatterns, FLAGS.output_tfrecord_path, config=config,
                              num_shards=FLAGS.num_shards, overwrite=FLAGS.overwrite,
                              pipeline_args=list(FLAGS.pipeline_options) + list(beam_args))
  except (FileNotFoundError, FileExistsError, ValueError) as e:
    print(f'ddsp_prepare_tfrecord: error: {e}', file=sys.stderr)
    return 2
  print(pipeline.summary(report))
  if report['sources_ok'] == 0:
    print('ddsp_prepare_tfrecord: error: no input could be used (see the skipped list above).',
          file=sys.stderr)
    return 1
  return 0


def _parse(argv):
  """absl parsing that leaves unknown --flags (Beam pipeline options) in the returned argv."""
  return FLAGS(argv, known_only=True)


def main(argv):
  logging.getLogger().setLevel(logging.INFO)  # progress lines from the workers
  sys.exit(run(list(argv[1:])))


def console_entry_point():
  cli.run(main, define_flags, flags_parser=_parse)


if __name__ == '__main__':
  console_entry_point()
