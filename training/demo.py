r"""`make demo`: the whole DDSP workflow on a bundled violin recording, on a CPU in a few minutes.

  1. prepare  `ddsp.data_prep.pipeline.prepare` (Apache Beam, DirectRunner) turns the bundled 60 s violin phrase
              into 4 s TFRecord windows with CREPE f0, confidence and A-weighted loudness, and the bundled 12 s
              held-out phrase into evaluation windows;
  2. train    `ddsp_run --mode=train` with `recipes/tiny_instrument_fast.gin` (harmonic + filtered noise +
              learned reverb, 0.28M parameters) for `--num_steps` steps, writing checkpoints and TensorBoard
              summaries;
  3. eval     `ddsp_run --mode=eval` on the held-out windows: the paper's Table 1 metrics (loudness L1, f0 L1,
              f0 outlier ratio) and the spectral loss -> `eval_results.json`;
  4. sample   `ddsp_run --mode=sample`: target and resynthesis WAVs, spectrogram and f0/loudness PNGs;
  5. transfer `ddsp.training.inference`: the whole held-out phrase resynthesized in one pass, and a bundled
              voice-like phrase turned into violin (timbre transfer, octave and loudness auto-adjusted to the
              training set's statistics), each a WAV plus a PNG of spectrograms and f0/loudness curves.

Everything goes under --output_dir (default `demo_out/`); `demo_report.json` lists the figures and files.
Running it again resumes: prepared data is reused and training continues from the last checkpoint (a demo
killed mid-run loses at most `--steps_per_save` steps).

  python -m ddsp.training.demo --output_dir=demo_out [--num_steps=600 --batch_size=8]
  tensorboard --logdir demo_out/model
"""
import glob
import json
import os
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('KERAS_BACKEND', 'tensorflow')

from absl import app
from absl import flags

from ddsp import cli
from ddsp import validation

FLAGS = flags.FLAGS

TRAIN_ASSET = 'violin_phrase.flac'
EVAL_ASSET = 'violin_phrase_eval.flac'
TRANSFER_ASSET = 'voice_like_phrase.flac'
DEFAULT_GIN_FILE = 'recipes/tiny_instrument_fast.gin'
DEFAULT_LEARNING_RATE = 1e-3
# The accepted values of the numeric flags (stated in each flag's help; checked before any work).
RANGES = {
    'num_steps': validation.Range(1, 10**9, 'steps'),
    'batch_size': validation.Range(1, 4096),
    'learning_rate': validation.Range(0, 1, low_open=True),
    'steps_per_save': validation.Range(1, 10**9, 'steps'),
}


@cli.define_once
def define_flags():
  """Defines the command-line flags."""
  flags.DEFINE_string('output_dir', 'demo_out', 'Where the data, model, samples and report go.')
  flags.DEFINE_integer('num_steps', 600, RANGES['num_steps'].help('Training steps (the paper trains for tens '
                       'of thousands).'))
  flags.DEFINE_integer('batch_size', 8, RANGES['batch_size'].help('Global batch size (4 s examples).'))
  flags.DEFINE_float('learning_rate', DEFAULT_LEARNING_RATE, RANGES['learning_rate'].help(
      'Adam learning rate (the paper uses 3e-4 for long runs).'))
  flags.DEFINE_integer('steps_per_save', 100, RANGES['steps_per_save'].help('Checkpoint interval (a re-run '
                       'resumes from the last one).'))
  flags.DEFINE_string('gin_file', DEFAULT_GIN_FILE, 'Model recipe.')
  flags.DEFINE_multi_string('gin_param', [], 'Extra gin bindings for training.')
  flags.DEFINE_string('train_audio', None, 'Audio file(s) (glob) to train on instead of the bundled phrase.')
  flags.DEFINE_string('eval_audio', None, 'Audio file(s) (glob) to evaluate on instead of the bundled one.')


def _n_examples(report):
  written = report.get('examples_written', 0)
  return sum(written.values()) if isinstance(written, dict) else int(written)


def prepare_once(patterns, output_prefix, log=print):
  """Prepares TFRecords unless a complete preparation already exists at `output_prefix`."""
  from ddsp.data_prep import pipeline
  report_path = os.path.join(os.path.dirname(output_prefix), 'prepare_report.json')
  if glob.glob(output_prefix + '-*') and os.path.exists(report_path):
    log(f'  reusing {output_prefix}-* (delete the folder to prepare again)')
    with open(report_path) as f:
      return json.load(f)
  report = pipeline.prepare(patterns, output_prefix, num_shards=1, overwrite=True)
  log(pipeline.summary(report))
  if not _n_examples(report):
    raise RuntimeError(f'Preparation of {patterns} wrote no examples; see {report_path}.')
  return report


def train_params(train_prefix, batch_size, learning_rate):
  """The gin bindings that point a recipe at prepared TFRecords, with the demo's batch and learning rate."""
  return [
      f"TFRecordProvider.file_pattern = '{train_prefix}-*'",
      f'batch_size = {int(batch_size)}',
      f'Trainer.learning_rate = {float(learning_rate)!r}',
  ]


def run_demo(output_dir, num_steps=600, batch_size=8, learning_rate=DEFAULT_LEARNING_RATE, steps_per_save=100,
             gin_file=DEFAULT_GIN_FILE, gin_params=(), train_audio=None, eval_audio=None, log=print):
  """Runs prepare -> train -> eval -> sample; returns the report dict (also written to demo_report.json)."""
  from ddsp import bundled
  from ddsp import file_utils
  from ddsp.training import experiment

  t_start = time.time()
  output_dir = os.path.abspath(os.path.expanduser(output_dir))
  os.makedirs(output_dir, exist_ok=True)
  train_audio = train_audio or bundled.asset_path(TRAIN_ASSET)
  eval_audio = eval_audio or bundled.asset_path(EVAL_ASSET)
  train_prefix = os.path.join(output_dir, 'data', 'train', 'train.tfrecord')
  eval_prefix = os.path.join(output_dir, 'data', 'eval', 'eval.tfrecord')
  save_dir = os.path.join(output_dir, 'model')
  timings = {}

  log(f'[1/5] prepare: {train_audio} and {eval_audio} -> {os.path.join(output_dir, "data")}')
  t0 = time.time()
  train_report = prepare_once(train_audio, train_prefix, log)
  eval_report = prepare_once(eval_audio, eval_prefix, log)
  timings['prepare_s'] = time.time() - t0

  params = train_params(train_prefix, batch_size, learning_rate) + list(gin_params)
  log(f'[2/5] train: {gin_file}, {num_steps} steps of batch {batch_size} -> {save_dir} '
      f'(tensorboard --logdir {save_dir})')
  t0 = time.time()
  train_result = experiment.run('train', save_dir, gin_files=[gin_file], gin_params=params,
                              num_steps=num_steps, steps_per_save=steps_per_save,
                              steps_per_summary=max(1, min(100, num_steps // 4)), progress_bar=True)
  timings['train_s'] = time.time() - t0

  eval_params = [
      'evaluate.data_provider = @eval/data.TFRecordProvider()',
      'sample.data_provider = @eval/data.TFRecordProvider()',
      f"eval/TFRecordProvider.file_pattern = '{eval_prefix}-*'",
      'evaluate.num_batches = 0',
      'sample.num_examples = 3',
  ]
  log(f'[3/5] eval: paper metrics on the held-out phrase ({eval_audio})')
  t0 = time.time()
  eval_result = experiment.run('eval', save_dir, gin_files=['eval/basic.gin'], gin_params=eval_params,
                             eval_once=True)[-1]
  timings['eval_s'] = time.time() - t0

  log('[4/5] sample: resynthesis WAVs and PNGs of held-out windows')
  t0 = time.time()
  sample_result = experiment.run('sample', save_dir, gin_files=['eval/basic.gin'], gin_params=eval_params)
  timings['sample_s'] = time.time() - t0

  log('[5/5] transfer: resynthesis of the whole held-out phrase; voice -> violin timbre transfer')
  t0 = time.time()
  from ddsp.training import inference
  from ddsp.training import resynthesis
  model = inference.load_model(save_dir)
  transfer_dir = os.path.join(output_dir, 'transfer')
  transfer_files, transfer_info = [], {}
  for name, source, controls in (('eval_phrase_resynthesis', eval_audio, {}),
                                 ('voice_to_violin', bundled.asset_path(TRANSFER_ASSET),
                                  {'auto_adjust': True, 'dataset_stats': os.path.join(
                                      os.path.dirname(train_prefix), 'dataset_statistics.json')})):
    result = resynthesis.transfer(model, source, **controls)
    transfer_files += resynthesis.write_result(result, os.path.join(transfer_dir, name + '.wav'))
    transfer_info[name] = {k: v for k, v in result.info.items() if isinstance(v, (int, float, str, bool))}
    if name == 'eval_phrase_resynthesis':
      from ddsp.training import evaluation
      phrase = evaluation.resynthesis_quality(result.audio_input, result.audio, model.sample_rate,
                                              model.frame_rate)
  timings['transfer_s'] = time.time() - t0
  timings['total_s'] = time.time() - t_start

  metrics = {k: eval_result.get(k) for k in ('loudness_l1', 'f0_l1', 'f0_outlier_ratio', 'spectral_loss')
             if k in eval_result}
  report = {
      'train_audio': train_audio,
      'eval_audio': eval_audio,
      'gin_file': gin_file,
      'train_examples': _n_examples(train_report),
      'eval_examples': _n_examples(eval_report),
      'steps': train_result['step'],
      'batch_size': batch_size,
      'final_train_losses': train_result.get('losses'),
      'steps_per_sec': train_result.get('steps_per_sec'),
      'eval_metrics': metrics,
      'heldout_phrase': phrase,
      'checkpoint': train_result.get('checkpoint'),
      'samples': sorted(os.path.relpath(p, output_dir) for p in sample_result['files']),
      'transfer': sorted(os.path.relpath(p, output_dir) for p in transfer_files),
      'transfer_info': transfer_info,
      'seconds': timings,
  }
  file_utils.write_json(os.path.join(output_dir, 'demo_report.json'), report)
  log('')
  log(f'Done in {timings["total_s"]:.0f} s. Held-out metrics: ' +
      ', '.join(f'{k} {v:.3f}' for k, v in metrics.items() if v is not None))
  log(f'Held-out phrase, whole: output level {phrase["rms_out_db"]:.1f} dBFS vs input {phrase["rms_in_db"]:.1f} '
      f'dBFS ({phrase["level_db"]:+.1f} dB); loudness L1 {phrase["loudness_l1"]:.2f} dB, f0 L1 '
      f'{phrase["f0_l1"]:.3f} semitones, outliers {phrase["f0_outlier_ratio"]:.3f}; noise floor between '
      f'partials {phrase["floor_db"]:+.1f} dB vs the input')
  log(f'Listen: {transfer_dir}/eval_phrase_resynthesis.wav (held-out phrase), {transfer_dir}/voice_to_violin.wav '
      f'(timbre transfer), {sample_result["output_dir"]}/ (4 s windows); report: '
      f'{os.path.join(output_dir, "demo_report.json")}')
  log('Open the studio on this model (then http://127.0.0.1:8000/ in a browser):')
  log(f'  {studio_command()} --model_dir={save_dir}')
  return report


def studio_command():
  """`ddsp_studio` as this interpreter's environment installs it (`.venv/bin/ddsp_studio` under `make demo`)."""
  path = os.path.join(os.path.dirname(sys.executable), 'ddsp_studio')
  if not os.path.exists(path):
    return 'ddsp_studio'
  relative = os.path.relpath(path)
  return relative if not relative.startswith('..') else path


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  validation.check_flags(FLAGS, RANGES)
  from ddsp.training import experiment
  from ddsp.training import train_util
  from ddsp.training import trainers
  try:
    run_demo(FLAGS.output_dir, FLAGS.num_steps, FLAGS.batch_size, FLAGS.learning_rate, FLAGS.steps_per_save,
             FLAGS.gin_file, FLAGS.gin_param, FLAGS.train_audio, FLAGS.eval_audio)
  except (experiment.GinConfigError, FileNotFoundError, FileExistsError, ValueError, RuntimeError,
          train_util.DataError, trainers.NonFiniteLossError) as e:
    print(f'ddsp demo: error: {e}', file=sys.stderr)
    sys.exit(1)


def console_entry_point():
  cli.run(main, define_flags)


if __name__ == '__main__':
  console_entry_point()
