r"""Spectral-loss benchmark: milliseconds per loss value + gradient (w.r.t. the audio), per method.

  python bench/losses.py                                   # batch 16 x 64000 samples, the paper's 6 scales
  python bench/losses.py --jit_compile                     # inside an XLA-compiled function (jit training)
  python bench/losses.py --loss_type L2 --mag_weight 0     # other loss settings

Times, side by side in one process on the same batch, `reference` (tests/spectral_loss_reference.py: the
multi-scale loss written the straightforward way, one `tf.signal.stft` per signal and scale, autodiff) and
`SpectralLoss` (ddsp.losses, the fused per-scale distance with its hand-written gradient), each wrapped in one
`tf.function` that returns the loss and its gradient. Prints per method the median ms over the timed calls
(after warm-up; the methods take turns call by call), the CPU ms of the process per call (a load-independent
measure of the work on a shared machine), the loss value, and the reference / SpectralLoss ratio of the medians.
"""
import os
import statistics
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('KERAS_BACKEND', 'tensorflow')

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

FLAGS = flags.FLAGS
flags.DEFINE_integer('batch', 16, 'Batch size.')
flags.DEFINE_integer('n_samples', 64000, 'Samples per example (4 s at 16 kHz).')
flags.DEFINE_list('fft_sizes', ['2048', '1024', '512', '256', '128', '64'], 'FFT sizes of the scales.')
flags.DEFINE_enum('loss_type', 'L1', ['L1', 'L2'], 'Distance.')
flags.DEFINE_float('mag_weight', 1.0, 'Weight of the magnitude term.')
flags.DEFINE_float('logmag_weight', 1.0, 'Weight of the log-magnitude term.')
flags.DEFINE_integer('steps', 10, 'Timed calls per method.')
flags.DEFINE_integer('warmup', 2, 'Untimed calls first (tracing, compilation).')
flags.DEFINE_boolean('jit_compile', False, 'XLA-compile the function that wraps each loss + gradient (as a '
                     'jit_compile training step does).')
flags.DEFINE_integer('threads', 0, 'intra/inter-op threads (0: TensorFlow default).')
flags.DEFINE_integer('seed', 0, 'Random seed.')


def test_signals(batch, n_samples, seed=0):
  """(target, audio) float32 `[batch, n_samples]`: harmonic tones with noise, and a detuned, noisier copy."""
  rng = np.random.default_rng(seed)
  t = np.arange(n_samples) / 16000.0
  f0 = rng.uniform(110.0, 440.0, [batch, 1])
  target = sum((0.5 / k) * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 9))
  audio = sum((0.5 / k) * np.sin(2 * np.pi * k * 1.01 * f0 * t) for k in range(1, 9))
  target = target + 0.003 * rng.standard_normal(target.shape)
  audio = audio + 0.01 * rng.standard_normal(audio.shape)
  return target.astype(np.float32), audio.astype(np.float32)


def time_calls(fns, *args):
  """{name: (median wall ms, median process CPU ms, last loss)} of each `fn(*args)` -> (loss, grad).

  The methods take turns call by call, so that a load that comes and goes on a shared machine weighs on all.
  """
  times = {name: ([], [], None) for name in fns}
  for i in range(FLAGS.warmup + FLAGS.steps):
    for name, fn in fns.items():
      start, cpu_start = time.perf_counter(), time.process_time()
      loss, grad = fn(*args)
      loss, _ = float(loss), grad.numpy()
      wall, cpu, _ = times[name]
      if i >= FLAGS.warmup:
        wall.append(1e3 * (time.perf_counter() - start))
        cpu.append(1e3 * (time.process_time() - cpu_start))
      times[name] = (wall, cpu, loss)
  return {name: (statistics.median(wall), statistics.median(cpu), loss) for name, (wall, cpu, loss) in times.items()}


def main(argv):
  del argv
  if FLAGS.threads:
    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
  sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests'))
  from spectral_loss_reference import reference_spectral_loss
  from ddsp import losses

  fft_sizes = tuple(int(s) for s in FLAGS.fft_sizes)
  settings = dict(fft_sizes=fft_sizes, loss_type=FLAGS.loss_type, mag_weight=FLAGS.mag_weight,
                  logmag_weight=FLAGS.logmag_weight)
  spectral_loss = losses.SpectralLoss(**settings)
  methods = {'reference': lambda t, x: reference_spectral_loss(t, x, **settings), 'SpectralLoss': spectral_loss}

  def value_and_grad(loss_fn):
    @tf.function(jit_compile=FLAGS.jit_compile)
    def fn(target, audio):
      with tf.GradientTape() as tape:
        tape.watch(audio)
        loss = loss_fn(target, audio)
      return loss, tape.gradient(loss, audio)
    return fn

  target, audio = (tf.constant(a) for a in test_signals(FLAGS.batch, FLAGS.n_samples, FLAGS.seed))
  print(f'batch={FLAGS.batch} n_samples={FLAGS.n_samples} fft_sizes={fft_sizes} loss_type={FLAGS.loss_type} '
        f'mag_weight={FLAGS.mag_weight} logmag_weight={FLAGS.logmag_weight} jit_compile={FLAGS.jit_compile} '
        f'steps={FLAGS.steps}')
  results = time_calls({name: value_and_grad(loss_fn) for name, loss_fn in methods.items()}, target, audio)
  for name, (ms, cpu_ms, loss) in results.items():
    print(f'{name:>12}: {ms:8.1f} ms/loss+grad  {cpu_ms:8.1f} cpu_ms  loss {loss:.6f}')
  print(f'reference / SpectralLoss: {results["reference"][0] / results["SpectralLoss"][0]:.2f}x '
        f'(cpu {results["reference"][1] / results["SpectralLoss"][1]:.2f}x) on {os.cpu_count()} cores '
        f'(load average {os.getloadavg()[0]:.1f})')
  sys.stdout.flush()


if __name__ == '__main__':
  app.run(main)
