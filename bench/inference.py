r"""Benchmark of inference: real-time factor of offline and streaming synthesis, Keras / XLA / TFLite.

For `solo_instrument` and `tiny` (random weights), batch 1, 4 s of controls (1000 frames at 250 Hz):
  * offline: the whole 4 s in one call. Keras = the Autoencoder in a tf.function (graph mode); XLA = the same
    with jit_compile; TFLite = the exported offline model (`ddsp_export --format=tflite`: the streaming maths
    over the whole window, built-in ops only).
  * streaming: 256-sample blocks (4 frames, 16 ms) through `StreamingModel.step` (Keras graph mode, XLA) and
    through the exported streaming TFLite model (state in and out at every call); the latency per block is
    the wall time of one call (median and 95th percentile). The algorithmic latency (2 frames = 8 ms) comes
    on top.
Each configuration runs in its own subprocess so that `tf.config.threading` (intra- and inter-op threads,
and the TFLite interpreter's threads) is set before TensorFlow initialises. Real-time factor = seconds of
audio per second of compute.

Beside each figure, the FLOP bound: the decoder's multiply-adds per frame (2 FLOP per weight of its dense and
GRU kernels: about 9.6 MFLOP for solo_instrument, 0.5 MFLOP for tiny) at the machine's measured float32
matmul rate on as many threads (a 512 x 512 x 512 matmul in a loop; a batch-1 decoder runs matrix-vector
products, so the real ceiling is lower). Synthesis (about 40 sines per sample, the noise filters and the reverb)
is not in the bound.

  python bench/inference.py [--configs solo_instrument,tiny] [--threads 1,2] [--only offline_keras,...]
"""
import argparse
import json
import os
import subprocess
import sys
import time

SECONDS, SR, FRAMES, BLOCK = 4, 16000, 1000, 256
N = SECONDS * SR
MODES = ('offline_keras', 'offline_xla', 'offline_tflite', 'stream_keras', 'stream_xla', 'stream_tflite')


def _model(config):
  import numpy as np
  from ddsp.training import experiment, models, streaming
  experiment.parse_gin([f'models/{config}.gin'], ['FilteredNoise.seed = 0'])
  model = models.get_model()
  f0 = 220.0 * 2.0 ** np.cumsum(np.random.default_rng(0).normal(0, 0.01, (1, FRAMES)), axis=1)
  ld = -30.0 + 10.0 * np.sin(np.arange(FRAMES)[np.newaxis] / 30.0)
  f0, ld = f0.astype(np.float32), ld.astype(np.float32)
  model({'f0_hz': f0, 'loudness_db': ld})
  streaming.set_noise_seed(model, 0)
  return model, f0, ld


def _decoder_flops(model):
  """2 FLOP per weight of the decoder's matrices (dense and GRU kernels), per frame."""
  return 2 * sum(int(v.shape[0]) * int(v.shape[1]) for v in model.decoder.trainable_variables if len(v.shape) == 2)


def _matmul_gflops(tf):
  a = tf.random.normal([512, 512])
  f = tf.function(lambda x: tf.matmul(x, x))
  f(a)
  reps = 50
  start = time.perf_counter()
  for _ in range(reps):
    f(a).numpy()
  return 2 * 512 ** 3 * reps / (time.perf_counter() - start) / 1e9


def _timed(fn, min_time=2.0, max_reps=2000):
  """Median seconds per call (after a warm-up call), and the 95th percentile."""
  fn()
  times = []
  total = 0.0
  while total < min_time and len(times) < max_reps:
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
    total += times[-1]
  times.sort()
  return times[len(times) // 2], times[min(len(times) - 1, int(0.95 * len(times)))]


def _worker(config, threads, modes):
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  import numpy as np
  import tensorflow as tf
  tf.config.threading.set_intra_op_parallelism_threads(threads)
  tf.config.threading.set_inter_op_parallelism_threads(threads)
  from ddsp.training import export_lib, streaming
  model, f0, ld = _model(config)
  result = {'config': config, 'threads': threads, 'matmul_gflops': _matmul_gflops(tf),
            'decoder_mflop_per_frame': _decoder_flops(model) / 1e6}
  frames_per_block = BLOCK // 64
  for mode in modes:
    kind, engine = mode.split('_')
    if kind == 'offline':
      if engine == 'tflite':
        concrete, module, _ = export_lib.serving_function(model, streaming=False, batch_size=1, engine='streaming')
        runner = tf.lite.Interpreter(model_content=export_lib.tflite_bytes(concrete, module),
                                     num_threads=threads).get_signature_runner()
        call = lambda: runner(f0_hz=f0, loudness_db=ld)
      else:
        fn = streaming.offline_fn(model, jit_compile=engine == 'xla')
        f0_t, ld_t = tf.constant(f0), tf.constant(ld)
        call = lambda: fn(f0_t, ld_t).numpy()
      median, p95 = _timed(call)
      result[mode] = {'rtf': SECONDS / median, 'ms_per_call': median * 1e3}
    else:
      blocks = [(f0[:, i:i + frames_per_block], ld[:, i:i + frames_per_block])
                for i in range(0, FRAMES, frames_per_block)]
      if engine == 'tflite':
        concrete, module, meta = export_lib.serving_function(model, streaming=True, block_size=BLOCK, batch_size=1)
        runner = tf.lite.Interpreter(model_content=export_lib.tflite_bytes(concrete, module),
                                     num_threads=threads).get_signature_runner()
        state = {k: np.zeros(v['shape'], v['dtype']) for k, v in meta['state'].items()}

        def call():
          nonlocal state
          block = blocks[call.i % len(blocks)]
          call.i += 1
          out = dict(runner(f0_hz=block[0], loudness_db=block[1], **state))
          out.pop('audio')
          state = out
      else:
        streamer = streaming.StreamingModel(model, BLOCK, jit_compile=engine == 'xla')
        state = streamer.initial_state(1)
        blocks = [(tf.constant(a), tf.constant(b)) for a, b in blocks]

        def call():
          nonlocal state
          block = blocks[call.i % len(blocks)]
          call.i += 1
          audio, state = streamer.step(block[0], block[1], state)
          audio.numpy()
      call.i = 0
      median, p95 = _timed(call)
      result[mode] = {'rtf': BLOCK / SR / median, 'ms_per_block': median * 1e3, 'p95_ms': p95 * 1e3}
  print('RESULT ' + json.dumps(result))


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--configs', default='solo_instrument,tiny')
  parser.add_argument('--threads', default='1,2')
  parser.add_argument('--only', default=','.join(MODES))
  parser.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
  args = parser.parse_args()
  modes = [m for m in args.only.split(',') if m]
  unknown = sorted(set(modes) - set(MODES))
  if unknown:
    parser.error(f'unknown modes {unknown}; choose from {MODES}')
  if args.worker:
    _worker(args.configs, int(args.threads), modes)
    return
  results = []
  for config in args.configs.split(','):
    for threads in [int(t) for t in args.threads.split(',')]:
      cmd = [sys.executable, os.path.abspath(__file__), '--worker', f'--configs={config}', f'--threads={threads}',
             f'--only={",".join(modes)}']
      proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
      lines = [line for line in proc.stdout.splitlines() if line.startswith('RESULT ')]
      if proc.returncode or not lines:
        print(f'{config} / {threads} thread(s) failed:\n{proc.stderr[-3000:]}')
        continue
      results.append(json.loads(lines[-1][len('RESULT '):]))
      _print(results[-1])
  return results


def _print(r):
  flop_rate = r['matmul_gflops'] * 1e9
  frame_flops = r['decoder_mflop_per_frame'] * 1e6
  bound = flop_rate / (frame_flops * 250.0)
  print(f"\n{r['config']}, {r['threads']} thread(s): matmul {r['matmul_gflops']:.1f} GFLOP/s, decoder "
        f"{r['decoder_mflop_per_frame']:.2f} MFLOP/frame -> FLOP bound {bound:.0f}x real time")
  for mode in MODES:
    if mode not in r:
      continue
    v = r[mode]
    if mode.startswith('offline'):
      print(f'  {mode:15s} {v["rtf"]:8.1f}x real time  ({v["ms_per_call"]:.1f} ms per 4 s)   bound {bound:.0f}x')
    else:
      print(f'  {mode:15s} {v["rtf"]:8.1f}x real time  ({v["ms_per_block"]:.2f} ms per {BLOCK}-sample block, '
            f'p95 {v["p95_ms"]:.2f} ms; block = {1e3 * BLOCK / SR:.0f} ms)   bound {bound:.0f}x')


if __name__ == '__main__':
  main()
