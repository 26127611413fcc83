r"""Benchmark of the DSP core: ms per batch, real-time factor and peak RSS of each synthesizer and the loss.

Batch 16 x 4 s at 16 kHz (1000 frames), forward after warm-up, in graph mode (tf.function) and under XLA.
Each component runs in its own subprocess so that its peak RSS is its own. The peer for the harmonic synth is
the straightforward implementation (per-sample envelopes for every harmonic, one float64 cumsum per
harmonic, one sine per harmonic-sample), timed side by side in the same run.

  python bench/synths.py [--repeats 5] [--only harmonic,noise,...]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

BATCH, SECONDS, SR, FRAMES = 16, 4, 16000, 1000
N = SECONDS * SR
COMPONENTS = ('harmonic', 'harmonic_naive', 'noise', 'reverb', 'spectral_loss', 'spectral_loss_grad',
              'harmonic_grad')


def _run_component(name, repeats, jit):
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  import numpy as np
  import tensorflow as tf
  from ddsp import core, effects, losses, synths

  rng = np.random.default_rng(0)
  f0 = tf.constant(rng.uniform(100, 800, [BATCH, FRAMES, 1]).astype(np.float32))
  amps = tf.constant(rng.uniform(-3, 0, [BATCH, FRAMES, 1]).astype(np.float32))
  dist = tf.constant(rng.normal(size=[BATCH, FRAMES, 100]).astype(np.float32))
  mags = tf.constant(rng.normal(size=[BATCH, FRAMES, 65]).astype(np.float32))
  audio = tf.constant(rng.uniform(-0.5, 0.5, [BATCH, N]).astype(np.float32))
  target = tf.constant(rng.uniform(-0.5, 0.5, [BATCH, N]).astype(np.float32))
  harmonic = synths.Harmonic(n_samples=N)
  noise = synths.FilteredNoise(n_samples=N)
  reverb = effects.Reverb(trainable=True, reverb_length=48000)
  loss = losses.SpectralLoss()

  def naive_harmonic(f0, amps, dist):
    amps, dist = core.exp_sigmoid(amps), core.exp_sigmoid(dist)
    k = tf.range(1, 101, dtype=tf.float32)
    freqs = f0 * k
    dist = tf.where(freqs < SR / 2, dist, 0.0)
    dist /= tf.reduce_sum(dist, -1, keepdims=True)
    amp_env = core.resample(amps * dist, N, method='window')
    freq_env = core.resample(freqs, N, method='linear')
    phase = tf.cumsum(tf.cast(freq_env, tf.float64) * (2 * np.pi / SR), axis=1)
    phase = tf.cast(tf.math.floormod(phase, 2 * np.pi), tf.float32)
    return tf.reduce_sum(amp_env * tf.sin(phase), -1)

  def grad_of(fn, *inputs):
    def wrapped(*args):
      with tf.GradientTape() as tape:
        tape.watch(args)
        value = tf.reduce_mean(fn(*args) ** 2) if fn is not loss else fn(target, *args)
      return value, tape.gradient(value, args)
    return wrapped, inputs

  fns = {
      'harmonic': (harmonic, (amps, dist, f0)),
      'harmonic_naive': (naive_harmonic, (f0, amps, dist)),
      'noise': (noise, (mags,)),
      'reverb': (reverb, (audio,)),
      'spectral_loss': (lambda a: loss(target, a), (audio,)),
      'spectral_loss_grad': grad_of(loss, audio),
      'harmonic_grad': grad_of(harmonic, amps, dist, f0),
  }
  fn, inputs = fns[name]
  compiled = tf.function(fn, jit_compile=jit)
  tf.nest.map_structure(lambda x: x.numpy(), compiled(*inputs))  # trace + warm-up
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    tf.nest.map_structure(lambda x: x.numpy(), compiled(*inputs))
    times.append(time.perf_counter() - start)
  peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
  return {'component': name, 'xla': jit, 'ms_per_batch': 1000 * min(times),
          'median_ms': 1000 * sorted(times)[len(times) // 2], 'peak_rss_mb': peak_mb}


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--only', default=','.join(COMPONENTS))
  parser.add_argument('--component', help=argparse.SUPPRESS)
  parser.add_argument('--xla', action='store_true', help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.component:
    print(json.dumps(_run_component(args.component, args.repeats, args.xla)))
    return

  print(f'DSP core benchmark: batch {BATCH} x {SECONDS} s at {SR} Hz ({BATCH * SECONDS} s of audio per batch), '
        f'{os.cpu_count()} CPUs, forward unless *_grad (forward + backward).')
  header = f'{"component":<20}{"mode":<7}{"ms/batch":>10}{"median":>9}{"x real time":>13}{"peak RSS MB":>13}'
  print(header)
  print('-' * len(header))
  results = {}
  for name in args.only.split(','):
    for jit in (False, True):
      cmd = [sys.executable, __file__, '--component', name, '--repeats', str(args.repeats)] + (['--xla'] if jit else [])
      proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
      if proc.returncode != 0:
        print(f'{name:<20}{"xla" if jit else "graph":<7} failed: {proc.stderr.strip().splitlines()[-1:]}')
        continue
      r = json.loads(proc.stdout.strip().splitlines()[-1])
      results[(name, jit)] = r
      rtf = BATCH * SECONDS / (r['ms_per_batch'] / 1000.0)
      print(f'{name:<20}{"xla" if jit else "graph":<7}{r["ms_per_batch"]:>10.1f}{r["median_ms"]:>9.1f}{rtf:>13.0f}'
            f'{r["peak_rss_mb"]:>13.0f}')
  for jit in (False, True):
    fast, naive = results.get(('harmonic', jit)), results.get(('harmonic_naive', jit))
    if fast and naive:
      print(f'Harmonic ({"xla" if jit else "graph"}): {naive["ms_per_batch"] / fast["ms_per_batch"]:.1f}x faster than '
            'the straightforward implementation (same run).')


if __name__ == '__main__':
  main()
