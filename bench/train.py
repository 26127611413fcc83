r"""Training-step benchmark: fwd + bwd + Adam of a gin-configured DDSP model on a fixed synthetic batch.

  python bench/train.py --config tiny_instrument --batch 16
  python bench/train.py --config solo_instrument --batch 16 --mixed_precision=bfloat16
  python bench/train.py --config tiny_instrument --replicas 2     # MirroredStrategy over 2 logical CPUs

Prints `<seconds> s/step` (median over the timed steps, after warm-up), examples/s, the parameter count and
the peak resident memory of the process. The batch is a harmonic tone with vibrato and noise (4 s at 16 kHz
by default), with its f0 and A-weighted loudness, so the work is the same as on real data.
"""
import os
import statistics
import sys
import time

from train_setup import load_config  # bench/train_setup.py (this folder is on sys.path)
from train_setup import peak_rss_mib
from train_setup import set_threads
from train_setup import synthetic_batch

from absl import app
from absl import flags
import tensorflow as tf

FLAGS = flags.FLAGS
flags.DEFINE_string('config', 'tiny_instrument', 'gin file: a name (solo_instrument, tiny_instrument, ...), a '
                    'path relative to the gin folder, or a file path.')
flags.DEFINE_integer('batch', 16, 'Global batch size.')
flags.DEFINE_integer('steps', 5, 'Timed steps.')
flags.DEFINE_integer('warmup', 2, 'Untimed steps first (tracing, allocation).')
flags.DEFINE_enum('mixed_precision', 'none', ['none', 'bfloat16', 'float16'],
                  'Network precision: bfloat16 runs the encoder/decoder networks in mixed bfloat16; synthesis, '
                  'losses and variables stay float32.')
flags.DEFINE_integer('replicas', 1, 'Number of logical CPU devices (MirroredStrategy when > 1).')
flags.DEFINE_boolean('jit_compile', False, 'XLA-compile the training step.')
flags.DEFINE_multi_string('gin_param', [], 'Extra gin bindings, e.g. "n_samples=16000".')
flags.DEFINE_float('learning_rate', 3e-4, 'Adam learning rate.')
flags.DEFINE_float('grad_clip_norm', 3.0, 'Global gradient-norm clip.')
flags.DEFINE_integer('threads', 0, 'intra/inter-op threads (0: TensorFlow default).')
flags.DEFINE_integer('seed', 0, 'Random seed.')
flags.DEFINE_boolean('use_trainer', False, 'Time `ddsp.training.trainers.Trainer.train_step` (the ddsp_run '
                     'path: learning-rate decay, all-reduce, clipping) instead of the minimal step here.')


def main(argv):
  del argv
  set_threads(FLAGS.threads)
  if FLAGS.replicas > 1:
    cpu = tf.config.list_physical_devices('CPU')[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(FLAGS.replicas)])

  import keras
  from ddsp.training import configs
  from ddsp.training import models
  from ddsp.training import nn

  keras.utils.set_random_seed(FLAGS.seed)
  nn.set_network_dtype(None if FLAGS.mixed_precision == 'none' else FLAGS.mixed_precision)
  config_path, n_samples = load_config(FLAGS.config, FLAGS.gin_param)

  if FLAGS.replicas > 1:
    strategy = tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices('CPU')])
  else:
    strategy = tf.distribute.get_strategy()
  if FLAGS.batch % strategy.num_replicas_in_sync:
    raise ValueError(f'--batch {FLAGS.batch} must be divisible by --replicas {strategy.num_replicas_in_sync}.')

  batch = synthetic_batch(FLAGS.batch, n_samples, seed=FLAGS.seed)
  # The same global batch every step; MirroredStrategy splits it between the replicas.
  dataset = tf.data.Dataset.from_tensor_slices(batch).repeat().batch(FLAGS.batch, drop_remainder=True)
  if FLAGS.replicas > 1:
    dataset = strategy.experimental_distribute_dataset(dataset)
  iterator = iter(dataset)

  with strategy.scope():
    model = models.get_model()
  if FLAGS.use_trainer:
    from ddsp.training import trainers
    trainer = trainers.Trainer(model, strategy=strategy, learning_rate=FLAGS.learning_rate,
                               grad_clip_norm=FLAGS.grad_clip_norm, jit_compile=FLAGS.jit_compile,
                               mixed_precision=None if FLAGS.mixed_precision == 'none' else FLAGS.mixed_precision)
    trainer.build({k: v[:1] for k, v in batch.items()})
    iterator = iter(trainer.distribute_dataset(
        tf.data.Dataset.from_tensor_slices(batch).repeat().batch(FLAGS.batch, drop_remainder=True)))
  else:
    with strategy.scope():
      optimizer = keras.optimizers.Adam(FLAGS.learning_rate)
      first = next(iterator)
      if FLAGS.replicas > 1:
        strategy.run(lambda b: model(b, training=False), args=(first,))
      else:
        model(first, training=False)
      optimizer.build(model.trainable_variables)

  def replica_step(features):
    with tf.GradientTape() as tape:
      outputs = model(features, training=True)
      losses = model.compute_losses(outputs)
      total = tf.add_n(list(losses.values()))
      scaled = total / strategy.num_replicas_in_sync
    grads = tape.gradient(scaled, model.trainable_variables)
    if FLAGS.replicas > 1:
      grads = tf.distribute.get_replica_context().all_reduce('sum', grads)
    grads, _ = tf.clip_by_global_norm(grads, FLAGS.grad_clip_norm)
    optimizer.apply(grads, model.trainable_variables)
    return total

  @tf.function(jit_compile=FLAGS.jit_compile)
  def train_step(features):
    if FLAGS.replicas > 1:
      per_replica = strategy.run(replica_step, args=(features,))
      return strategy.reduce('mean', per_replica, axis=None)
    return replica_step(features)

  losses, times, cpu_times = [], [], []
  for i in range(FLAGS.warmup + FLAGS.steps):
    start, cpu_start = time.perf_counter(), time.process_time()
    if FLAGS.use_trainer:
      loss = float(trainer.train_step(iterator)[0]['total_loss'])
    else:
      loss = float(train_step(next(iterator)))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    losses.append(loss)
    if i >= FLAGS.warmup:
      times.append(elapsed)
      cpu_times.append(cpu)
  sec = statistics.median(times)
  print(f'config={FLAGS.config} ({os.path.relpath(config_path, configs.gin_dir())}) batch={FLAGS.batch} '
        f'n_samples={n_samples} replicas={strategy.num_replicas_in_sync} '
        f'mixed_precision={FLAGS.mixed_precision} jit_compile={FLAGS.jit_compile} use_trainer={FLAGS.use_trainer} '
        f'params={model.count_params()}')
  print('losses: ' + ' '.join(f'{loss:.4f}' for loss in losses))
  print('step times: ' + ' '.join(f'{t:.3f}' for t in times))
  print(f'{sec:.3f} s/step')
  # CPU seconds of this process per step (all threads): a load-independent measure of the work, useful on
  # shared machines (wall time ~ cpu / cores when the cores are free).
  print(f'{statistics.median(cpu_times):.3f} cpu_s/step on {os.cpu_count()} cores '
        f'(load average {os.getloadavg()[0]:.1f})')
  print(f'{FLAGS.batch / sec:.2f} examples/s')
  print(f'peak RSS {peak_rss_mib():.0f} MiB')
  sys.stdout.flush()


if __name__ == '__main__':
  app.run(main)
