r"""Quality benchmark: how good a short training run sounds, and how fast it gets there.

Trains a model (default `recipes/tiny_instrument_fast.gin`, the demo's, through `ddsp_run`, the user's path) on the
bundled 60 s violin phrase, and every `--eval_every` steps restores the newest checkpoint (the inference path
every consumer uses) and resynthesizes the whole bundled 12 s held-out phrase, which training never sees.
Printed per evaluation, and written to `quality.json`:

  loudness L1 (dB), f0 L1 (semitones) and f0 outlier ratio (CREPE tiny, input confidence >= 0.85), the
  multi-scale spectral loss, output/input RMS (dB), the noise floor between partials of output vs input (dB),
  training steps and wall seconds;

plus `learning_curve.png` (the metrics vs step and vs wall seconds) and the WAVs of the last evaluation.

  python bench/quality.py                           # the demo's recipe: 600 steps of batch 8
  python bench/quality.py --steps=3000 --eval_every=500
  python bench/quality.py --gin_file=papers/iclr2020/tiny_instrument.gin --learning_rate=3e-4 \
      --gin_param="Trainer.lr_warmup_steps=0"       # one factor changed, for docs/quality.md
"""
import os
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('KERAS_BACKEND', 'tensorflow')

from absl import app
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string('output_dir', '/tmp/ddsp_bench_quality', 'Data, model, WAVs, PNG and JSON go here.')
flags.DEFINE_integer('steps', 600, 'Training steps.')
flags.DEFINE_integer('eval_every', 100, 'Evaluate the held-out phrase every this many steps.')
flags.DEFINE_integer('batch_size', 8, 'Global batch size.')
flags.DEFINE_float('learning_rate', None, 'Adam learning rate (default: the recipe\'s).')
flags.DEFINE_string('gin_file', None, 'Model recipe (default: the demo\'s).')
flags.DEFINE_multi_string('gin_param', [], 'Extra gin bindings (one factor at a time for experiments).')
flags.DEFINE_boolean('fresh', True, 'Delete an earlier model in output_dir first (data is reused).')
flags.DEFINE_string('label', '', 'A name for this run in the JSON (e.g. the factor changed).')

METRICS = (('loudness_l1', 'loudness L1 dB'), ('f0_l1', 'f0 L1 semitones'), ('f0_outlier_ratio', 'f0 outliers'),
           ('spectral_loss', 'spectral loss'), ('level_db', 'out/in RMS dB'), ('floor_db', 'out/in floor dB'))


def _curve_png(rows, path):
  import matplotlib
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt
  from ddsp import file_utils
  fig, axes = plt.subplots(2, len(METRICS), figsize=(3.2 * len(METRICS), 5.5), squeeze=False)
  for col, (key, title) in enumerate(METRICS):
    for row, x_key, x_label in ((0, 'step', 'step'), (1, 'train_s', 'training wall seconds')):
      ax = axes[row][col]
      ax.plot([r[x_key] for r in rows], [r[key] for r in rows], 'o-')
      if key in ('level_db', 'floor_db'):
        ax.axhline(0.0, color='gray', lw=0.8)
      ax.set_xlabel(x_label)
      ax.set_title(title, fontsize=9)
      ax.grid(alpha=0.3)
  fig.tight_layout()
  file_utils.save_figure(fig, path)


def run(output_dir, steps, eval_every, batch_size, learning_rate=None, gin_file=None, gin_params=(), fresh=True,
        label='', log=print):
  """Trains in chunks of `eval_every` steps and measures the held-out phrase after each; returns the rows."""
  import shutil
  import numpy as np
  import soundfile as sf
  from ddsp import bundled
  from ddsp import file_utils
  from ddsp.training import experiment
  from ddsp.training import demo
  from ddsp.training import evaluation
  from ddsp.training import inference
  from ddsp.training import resynthesis

  gin_file = gin_file or demo.DEFAULT_GIN_FILE
  learning_rate = demo.DEFAULT_LEARNING_RATE if learning_rate is None else learning_rate
  train_prefix = os.path.join(output_dir, 'data', 'train', 'train.tfrecord')
  demo.prepare_once(bundled.asset_path(demo.TRAIN_ASSET), train_prefix, log)
  save_dir = os.path.join(output_dir, 'model')
  if fresh and os.path.isdir(save_dir):
    shutil.rmtree(save_dir)
  eval_audio, rate = sf.read(bundled.asset_path(demo.EVAL_ASSET), dtype='float32')
  params = demo.train_params(train_prefix, batch_size, learning_rate) + list(gin_params)
  rows, train_s = [], 0.0
  log(f'{label or "run"}: {gin_file}, batch {batch_size}, lr {learning_rate:g}, {steps} steps; extra: '
      f'{list(gin_params)}')
  header = f'{"step":>6} {"train_s":>8} ' + ' '.join(f'{k:>16}' for k, _ in METRICS)
  log(header)
  step = 0
  while step < steps:
    step = min(steps, step + eval_every)
    t0 = time.time()
    experiment.run('train', save_dir, gin_files=[gin_file], gin_params=params, num_steps=step,
                 steps_per_save=eval_every, steps_per_summary=0, progress_bar=False)
    train_s += time.time() - t0
    model = inference.load_model(save_dir)
    result = resynthesis.transfer(model, eval_audio, source_sample_rate=rate, crepe_frame_rate=100)
    out = np.asarray(result.audio, np.float32).reshape(-1)[:len(eval_audio)]
    quality = evaluation.resynthesis_quality(eval_audio, out, model.sample_rate, model.frame_rate)
    row = dict(step=step, train_s=train_s, **quality)
    rows.append(row)
    log(f'{step:>6} {train_s:>8.0f} ' + ' '.join(f'{row[k]:>16.3f}' for k, _ in METRICS))
  file_utils.write_wav(os.path.join(output_dir, 'heldout_input.wav'), eval_audio, rate)
  file_utils.write_wav(os.path.join(output_dir, 'heldout_resynthesis.wav'), out, model.sample_rate)
  _curve_png(rows, os.path.join(output_dir, 'learning_curve.png'))
  reach = [r['train_s'] for r in rows if r['loudness_l1'] <= 6.0]
  summary = {'label': label, 'gin_file': gin_file, 'batch_size': batch_size, 'learning_rate': learning_rate,
             'gin_params': list(gin_params), 'rows': rows,
             'seconds_to_loudness_l1_6db': reach[0] if reach else None}
  file_utils.write_json(os.path.join(output_dir, 'quality.json'), summary)
  log(f'seconds of training to reach loudness L1 <= 6 dB: {summary["seconds_to_loudness_l1_6db"]}')
  log(f'wrote {output_dir}/quality.json, learning_curve.png, heldout_*.wav')
  return summary


def main(argv):
  del argv
  from ddsp import cli
  cli.quiet_library_logging()
  run(FLAGS.output_dir, FLAGS.steps, FLAGS.eval_every, FLAGS.batch_size, FLAGS.learning_rate, FLAGS.gin_file,
      FLAGS.gin_param, FLAGS.fresh, FLAGS.label)
  return 0


if __name__ == '__main__':
  sys.exit(app.run(main))
