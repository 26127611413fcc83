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
1 when no file could be used. A flag value out of its range (stated in `--help`), an input pattern that matches
nothing, an existing output without --overwrite, or an output that would write over one of the inputs ends
the command with one line `ddsp_prepare_tfrecord: error: ...` and exit status 2 before any file is written.
"""
import logging
import os
import sys

from absl import app
from absl import flags

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # before TensorFlow loads (through ddsp)

from ddsp import cli
from ddsp import file_utils
from ddsp import validation

FLAGS = flags.FLAGS

CREPE_MODELS = ('tiny', 'small', 'medium', 'large', 'full')
SHORT_FILES = ('pad', 'skip')
# The accepted values of the numeric flags (stated in each flag's help; checked before any file is read).
RANGES = {
    'num_shards': validation.Range(0, 100000),
    'sample_rate': validation.Range(1000, 384000, 'Hz'),
    'frame_rate': validation.Range(1, 16000, 'Hz'),
    'example_secs': validation.Range(0, 3600, 's', low_open=True),
    'hop_secs': validation.Range(0, 3600, 's', low_open=True),
    'eval_split_fraction': validation.Range(0, 1, high_open=True),
    'silence_peak_db': validation.Range(-200, 0, 'dBFS'),
    'batch_seconds': validation.Range(0, 86400, 's', low_open=True),
    'crepe_batch_size': validation.Range(1, 1 << 20, 'frames'),
    'nsynth_min_pitch': validation.Range(0, 127, 'MIDI'),
    'nsynth_max_pitch': validation.Range(0, 127, 'MIDI'),
}
# The flags taking a number or 'none'.
CREPE_FRAME_RATE = validation.Range(0, 16000, 'frames per second', low_open=True)
LOUDNESS_FLOOR_DB = validation.Range(-200, 0, 'dB')


@cli.define_once
def define_flags():
  """Defines the command-line flags (Beam pipeline options pass through unparsed)."""
  flags.DEFINE_multi_string('input_audio_filepatterns', [], 'Glob pattern(s) of input audio files (repeatable), '
                            'or of NSynth TFRecord files with --nsynth.')
  flags.DEFINE_string('output_tfrecord_path', None, 'Output prefix of the TFRecord shards.')
  flags.DEFINE_integer('num_shards', 0, RANGES['num_shards'].help(
      'Shards per split; 0 lets the runner choose (streaming writes, bounded memory). A fixed number adds a '
      'shuffle stage.'))
  flags.DEFINE_integer('sample_rate', 16000, RANGES['sample_rate'].help('Output audio sample rate (Hz).'))
  flags.DEFINE_integer('frame_rate', 250, RANGES['frame_rate'].help('Feature frame rate (Hz); sample_rate must '
                       'be a multiple of it.'))
  flags.DEFINE_float('example_secs', 4.0, RANGES['example_secs'].help('Seconds per example window.'))
  flags.DEFINE_float('hop_secs', 1.0, RANGES['hop_secs'].help('Seconds between window starts.'))
  flags.DEFINE_float('eval_split_fraction', 0.0, RANGES['eval_split_fraction'].help(
      'Fraction of source files (never windows) written to the -eval shards.'))
  flags.DEFINE_enum('crepe_model', 'tiny', list(CREPE_MODELS), 'CREPE capacity.')
  flags.DEFINE_string('crepe_frame_rate', '100', CREPE_FRAME_RATE.help(
      "CREPE frames per second ('none': run at --frame_rate); f0 and confidence are interpolated to "
      '--frame_rate.'))
  flags.DEFINE_string('loudness_floor_db', '-80', LOUDNESS_FLOOR_DB.help(
      "Frames below this loudness skip CREPE and read as unvoiced (f0 0 Hz, confidence 0); 'none' runs CREPE "
      'on every frame.'))
  flags.DEFINE_boolean('viterbi', False, 'Viterbi-smoothed f0.')
  flags.DEFINE_boolean('overwrite', False, 'Replace an existing preparation at --output_tfrecord_path.')
  flags.DEFINE_enum('short_files', 'pad', list(SHORT_FILES), 'Files shorter than --example_secs: zero-pad to one '
                    'window, or skip (reported either way).')
  flags.DEFINE_float('silence_peak_db', -80.0, RANGES['silence_peak_db'].help(
      'Files whose peak is below this level (dBFS) are skipped as silent.'))
  flags.DEFINE_float('batch_seconds', 120.0, RANGES['batch_seconds'].help('Seconds of audio (from many files) '
                     'per CREPE call.'))
  flags.DEFINE_integer('crepe_batch_size', 512, RANGES['crepe_batch_size'].help('CREPE frames per network '
                       'batch.'))
  flags.DEFINE_boolean('nsynth', False, 'Inputs are original NSynth TFRecords (one example per note, NSynth '
                       'labels kept).')
  flags.DEFINE_boolean('nsynth_acoustic_only', True, 'NSynth: keep acoustic instruments only (the paper).')
  flags.DEFINE_integer('nsynth_min_pitch', 24, RANGES['nsynth_min_pitch'].help('NSynth: lowest MIDI pitch kept '
                       '(the paper: 24).'))
  flags.DEFINE_integer('nsynth_max_pitch', 84, RANGES['nsynth_max_pitch'].help('NSynth: highest MIDI pitch '
                       'kept (the paper: 84).'))
  flags.DEFINE_list('pipeline_options', [], 'Extra Beam pipeline options, comma-separated (e.g. '
                    '"--runner=FlinkRunner,--flink_master=host:8081"). Unknown --flags are passed to Beam too.')


def _optional_float(name, text, accepted=None):
  """A flag's number, or None for 'none' / 'off' / ''; ValidationError naming the flag otherwise."""
  return validation.parse_optional_number(f'--{name}', text, accepted)


def check_flags(flag_values=FLAGS):
  """Refuses numeric flags out of range and unknown choices, before any file is read.

  Raises:
    ddsp.validation.ValidationError: naming the flag, its value and what is accepted.
  """
  validation.check_flags(flag_values, RANGES, {'crepe_model': CREPE_MODELS, 'short_files': SHORT_FILES})
  _optional_float('crepe_frame_rate', flag_values.crepe_frame_rate, CREPE_FRAME_RATE)
  _optional_float('loudness_floor_db', flag_values.loudness_floor_db, LOUDNESS_FLOOR_DB)
  if flag_values.nsynth_min_pitch > flag_values.nsynth_max_pitch:
    raise validation.ValidationError(
        f'--nsynth_min_pitch={flag_values.nsynth_min_pitch} is above --nsynth_max_pitch='
        f'{flag_values.nsynth_max_pitch}: no note would be kept.')
  validation.check_crepe_installed('--crepe_model', flag_values.crepe_model)


def check_outputs(input_paths, output_tfrecord_path):
  """Refuses a preparation that would write or (with --overwrite) remove a file it reads.

  A preparation writes `<prefix>-SSSSS-of-NNNNN`, `<stem>-eval<ext>-SSSSS-of-NNNNN`, `prepare_report.json` and
  `dataset_statistics.json` in the prefix's folder; an input there with one of those names (through `./`, a
  symlink or a hard link too) would be replaced.

  Raises:
    ValueError: naming the output and the input.
  """
  if file_utils.is_url(output_tfrecord_path):
    return
  folder = os.path.dirname(os.path.abspath(os.path.expanduser(output_tfrecord_path)))
  base = os.path.basename(output_tfrecord_path)
  stem, ext = os.path.splitext(base)
  for path in input_paths:
    if file_utils.is_url(path):
      continue
    real = os.path.realpath(os.path.expanduser(path))
    for candidate in {os.path.abspath(path), real}:
      name = os.path.basename(candidate)
      if not file_utils.same_file(os.path.dirname(candidate), folder):
        continue
      if (name.startswith(base + '-') or name.startswith(f'{stem}-eval{ext}-') or
          name in ('prepare_report.json', 'dataset_statistics.json')):
        raise ValueError(f'--output_tfrecord_path {output_tfrecord_path!r} would write over the input '
                         f'{path!r}. Choose another output path.')


def _config():
  from ddsp.data_prep import pipeline
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
  from ddsp.data_prep import pipeline
  if not FLAGS.input_audio_filepatterns:
    raise app.UsageError('--input_audio_filepatterns is required (repeat it for several globs).')
  if not FLAGS.output_tfrecord_path:
    raise app.UsageError('--output_tfrecord_path is required.')
  check_flags(FLAGS)
  try:
    from ddsp.data_prep import audio_io
    inputs, _ = audio_io.expand_filepatterns(FLAGS.input_audio_filepatterns)
    check_outputs(inputs, FLAGS.output_tfrecord_path)
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
