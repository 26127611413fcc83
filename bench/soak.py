r"""Stamina benchmark: does a long training run slow down or grow in memory?

Trains a gin recipe (default `tiny_instrument`, the paper's tiny model, as `bench/train.py` does) through
`ddsp_run`'s own loop (`experiment.run('train', ...)`: tf.data pipeline of TFRecordProvider, checkpoints
every `--steps_per_save`, summaries every `--steps_per_summary`) for `--num_steps` steps, on TFRecord shards
of synthetic tones written first (offline; `bench/train_setup.synthetic_batch`). Per block of `--block` steps
it prints the wall time of a loop iteration (mean, p50, p90: one `Trainer.train_step` call to the next, so
summaries and checkpoints count), the process CPU seconds per step, the resident memory at the block's end
(psutil, else /proc/self/status VmRSS) and how many times the trainer's functions have been traced. At the end:
the growth of the p50 step time and of the RSS from the first full block after step 500 (`--warmup_steps`:
the first block holds tracing and warm-up) to the last block; more than `--max_growth` (10 %), or a retrace,
is reported as a DEFECT and the exit status is 1.

  python bench/soak.py                                   # 2000 steps of batch 4 x 4 s, blocks of 500
  nohup python bench/soak.py --batch_size=16 --num_steps=8000 > soak.log &
  python bench/soak.py --jit_compile --gin_param="Trainer.lr_warmup_steps=0"

On a shared machine compare p50s (the mean and p90 carry the other processes' bursts and the save/summary
steps); the CPU seconds per step are a load-independent measure of the work.
"""
import os
import shutil
import statistics
import sys
import tempfile
import time
import types

from train_setup import load_config  # bench/train_setup.py (this folder is on sys.path)
from train_setup import rss_mib
from train_setup import set_threads
from train_setup import synthetic_batch

from absl import app
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string('config', 'tiny_instrument', 'gin recipe: a name (tiny_instrument, solo_instrument, ...), '
                    'a path relative to the gin folder, or a file. It must read TFRecordProvider data.')
flags.DEFINE_integer('batch_size', 4, 'Global batch size (the recipes train with 16).')
flags.DEFINE_integer('num_steps', 2000, 'Training steps.')
flags.DEFINE_integer('block', 500, 'Steps per reported block.')
flags.DEFINE_integer('n_examples', 64, 'Synthetic training examples written as TFRecords (4 shards).')
flags.DEFINE_integer('steps_per_summary', 300, 'Summaries every this many steps (0: none), as ddsp_run.')
flags.DEFINE_integer('steps_per_save', 300, 'Checkpoints every this many steps, as ddsp_run.')
flags.DEFINE_boolean('jit_compile', False, 'XLA-compile the training step.')
flags.DEFINE_multi_string('gin_param', [], 'Extra gin bindings.')
flags.DEFINE_integer('threads', 0, 'intra/inter-op threads (0: TensorFlow default).')
flags.DEFINE_integer('seed', 0, 'Random seed (data and training).')
flags.DEFINE_integer('warmup_steps', 500, 'Growth is measured from the first full block that starts after this '
                     'step (tracing, allocator and tf.data warm-up come first).')
flags.DEFINE_float('max_growth', 0.10, 'Growth of p50 step time or RSS above this fraction is a defect.')
flags.DEFINE_string('work_dir', None, 'Data and checkpoints go here (default: a temporary folder, deleted).')


def write_tfrecords(directory, n_examples, n_samples, seed, n_shards=4):
  """Synthetic windows in ddsp_prepare_tfrecord's record format; returns the file pattern."""
  import tensorflow as tf
  from ddsp.data_prep import examples
  batch = synthetic_batch(n_examples, n_samples, seed=seed)
  config = types.SimpleNamespace(sample_rate=16000, frame_rate=250)
  os.makedirs(directory, exist_ok=True)
  for shard in range(n_shards):
    path = os.path.join(directory, f'train.tfrecord-{shard:05d}-of-{n_shards:05d}')
    with tf.io.TFRecordWriter(path) as writer:
      for i in range(shard, n_examples, n_shards):
        writer.write(examples.make_example(batch['audio'][i], batch['f0_hz'][i], batch['f0_confidence'][i],
                                           batch['loudness_db'][i], config, f'synthetic_{i}', 0))
  return os.path.join(directory, 'train.tfrecord-*')


class StepClock:
  """Wraps `Trainer.train_step` to time every loop iteration and sample memory at each block's end."""

  def __init__(self, block):
    self.block = block
    self.wall, self.cpu = [], []  # at the start of each train_step call
    self.rss = []  # [(steps done, MiB, traces of the step function)]
    self.trainer = None

  def install(self):
    from ddsp.training import trainers
    original = trainers.Trainer.train_step
    clock = self

    def train_step(trainer, iterator):
      clock.trainer = trainer
      clock.tick()
      return original(trainer, iterator)

    trainers.Trainer.train_step = train_step

  def traces(self):
    """Traces so far of the trainer's tf.functions: the step, its XLA-compiled core, the summaries' predict."""
    fns = [getattr(self.trainer, name, None) for name in ('_train_step_fn', '_compute_grads', '_predict_fn')]
    return sum(fn.experimental_get_tracing_count() for fn in fns if hasattr(fn, 'experimental_get_tracing_count'))

  def tick(self):
    self.wall.append(time.perf_counter())
    self.cpu.append(time.process_time())
    done = len(self.wall) - 1
    if done and done % self.block == 0:
      self.rss.append((done, rss_mib(), self.traces()))
      self._progress(done)

  def _progress(self, done):
    """One line per finished block while the run goes on (the table comes at the end)."""
    wall = [b - a for a, b in zip(self.wall[-self.block - 1:], self.wall[-self.block:])]
    print(f'steps {done - self.block + 1}-{done}: p50 {_p(wall, 0.5):.3f} s, RSS {self.rss[-1][1]:.0f} MiB, '
          f'load average {os.getloadavg()[0]:.1f}', flush=True)

  def finish(self):
    """Closes the last step (the loop's end, after its final checkpoint)."""
    self._end = (time.perf_counter(), time.process_time())
    done = len(self.wall)
    if done and done % self.block == 0:
      self.rss.append((done, rss_mib(), self.traces()))

  def step_times(self):
    wall = self.wall + [self._end[0]]
    cpu = self.cpu + [self._end[1]]
    return ([b - a for a, b in zip(wall, wall[1:])], [b - a for a, b in zip(cpu, cpu[1:])])


def _p(values, q):
  values = sorted(values)
  return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def report(clock, block, max_growth, warmup_steps=500):
  """Prints the block table and the growth; returns the list of defects."""
  wall, cpu = clock.step_times()
  rss = {done: (mib, traces) for done, mib, traces in clock.rss}
  rows = []
  print(f"{'steps':>11} {'mean s':>8} {'p50 s':>8} {'p90 s':>8} {'cpu s':>7} {'RSS MiB':>8} {'traces':>6}")
  for start in range(0, len(wall), block):
    w, c = wall[start:start + block], cpu[start:start + block]
    end = start + len(w)
    mib, traces = rss.get(end, (rss_mib(), clock.traces()))
    row = dict(first=start + 1, last=end, full=len(w) == block, mean=statistics.fmean(w), p50=_p(w, 0.5),
               p90=_p(w, 0.9), cpu=statistics.fmean(c), rss=mib, traces=traces)
    rows.append(row)
    print(f"{row['first']:>5}-{row['last']:<5} {row['mean']:8.3f} {row['p50']:8.3f} {row['p90']:8.3f} "
          f"{row['cpu']:7.3f} {row['rss']:8.0f} {row['traces']:6d}{'' if row['full'] else '  (partial)'}")
  full = [r for r in rows if r['full'] and r['first'] > warmup_steps]
  if len(full) < 2:
    print(f'growth: needs two full blocks after step {warmup_steps} (got {len(full)}); run more --num_steps.')
    return []
  first, last = full[0], full[-1]
  defects = []
  for name, key, unit in (('p50 step time', 'p50', 's'), ('RSS', 'rss', 'MiB')):
    growth = last[key] / first[key] - 1.0
    flag = growth > max_growth
    if flag:
      defects.append(name)
    print(f"growth of {name} from steps {first['first']}-{first['last']} to {last['first']}-{last['last']}: "
          f"{first[key]:.4g} -> {last[key]:.4g} {unit} ({100 * growth:+.1f} %)"
          f"{'  DEFECT (> %g %%)' % (100 * max_growth) if flag else ''}")
  mean_growth = last['mean'] / first['mean'] - 1.0
  cpu_growth = last['cpu'] / first['cpu'] - 1.0
  print(f'(for reference: mean step time {100 * mean_growth:+.1f} %, cpu s/step {100 * cpu_growth:+.1f} %, '
        f"traces {first['traces']} -> {last['traces']})")
  if last['traces'] > first['traces']:
    defects.append('retracing')
    print('DEFECT: a training function was traced again during the run')
  return defects


def main(argv):
  del argv
  for name in ('batch_size', 'num_steps', 'block', 'n_examples', 'steps_per_save'):
    if getattr(FLAGS, name) < 1:
      raise app.UsageError(f'--{name} must be >= 1, got {getattr(FLAGS, name)}.')
  if FLAGS.n_examples < FLAGS.batch_size:
    raise app.UsageError(f'--n_examples ({FLAGS.n_examples}) must be at least --batch_size ({FLAGS.batch_size}).')
  set_threads(FLAGS.threads)
  from ddsp.training import experiment

  work_dir = FLAGS.work_dir or tempfile.mkdtemp(prefix='ddsp_soak_')
  try:
    config_path, n_samples = load_config(FLAGS.config, FLAGS.gin_param)
    t0 = time.perf_counter()
    pattern = write_tfrecords(os.path.join(work_dir, 'data'), FLAGS.n_examples, n_samples, FLAGS.seed)
    print(f'config={FLAGS.config} batch_size={FLAGS.batch_size} n_samples={n_samples} num_steps='
          f'{FLAGS.num_steps} block={FLAGS.block} steps_per_summary={FLAGS.steps_per_summary} steps_per_save='
          f'{FLAGS.steps_per_save} jit_compile={FLAGS.jit_compile} examples={FLAGS.n_examples} '
          f'({time.perf_counter() - t0:.1f} s to write) cores={os.cpu_count()}')
    sys.stdout.flush()
    clock = StepClock(FLAGS.block)
    clock.install()
    save_dir = os.path.join(work_dir, 'model')
    shutil.rmtree(save_dir, ignore_errors=True)  # a fresh run, not a resume
    params = [f'TFRecordProvider.file_pattern = {pattern!r}', f'batch_size = {FLAGS.batch_size}'] + FLAGS.gin_param
    t0 = time.perf_counter()
    result = experiment.run('train', save_dir, gin_files=[config_path], gin_params=params,
                            num_steps=FLAGS.num_steps, steps_per_summary=FLAGS.steps_per_summary,
                            steps_per_save=FLAGS.steps_per_save, jit_compile=FLAGS.jit_compile, seed=FLAGS.seed,
                            progress_bar=False)
    clock.finish()
    print(f"trained {result['step']} steps in {time.perf_counter() - t0:.0f} s, final loss "
          f"{result['losses'].get('total_loss', float('nan')):.4f}, load average {os.getloadavg()[0]:.1f}")
    defects = report(clock, FLAGS.block, FLAGS.max_growth, FLAGS.warmup_steps)
    print('defects: ' + (', '.join(defects) if defects else 'none'))
    sys.stdout.flush()
    return 1 if defects else 0
  finally:
    if not FLAGS.work_dir:
      shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == '__main__':
  app.run(main)
