r"""Benchmark of live timbre transfer: audio in -> audio out, block by block, on 1 CPU thread.

For each geometry (model file, sample rate, frame rate, block size) the bundled voice-like phrase (4 s,
resampled to the rate) runs through `ddsp.training.live.LiveModel.step` one block per call:
  * keras: the step as a tf.function (graph mode);
  * xla: the same with `LiveModel(jit_compile=True)` (XLA fuses the many small ops of one block);
  * tflite: the same step exported (`ddsp_export --streaming --with_features`: built-in ops only), run with
    `tf.lite.Interpreter(num_threads=1)`, the state fed back by name.
Figures: real-time factor (seconds of audio per wall second, all blocks after 3 warm-up calls, two passes over
the clip), p50 / p99 block wall time against the block's duration, the same from the process' CPU time
(`time.process_time`: on a shared, busy machine the wall figures include the time other processes held the
core; the CPU figures are what the step costs), and the algorithmic latency (features + synthesis) plus the
block.
Beside each, the FLOP bound: per frame the loudness FFT, the resampler, CREPE (`ddsp.crepe.flops_per_frame`) and
the decoder's matrices, at the machine's measured float32 matmul rate on 1 thread (`bench/inference.py`'s
helpers); synthesis is not in the bound. Models have random weights (the cost does not depend on them). Each
geometry runs in its own subprocess so the thread settings apply before TensorFlow starts.

  python bench/streaming.py [--only rt48_50,tiny16_250_c100] [--modes keras,xla,tflite] [--crepe tiny]
"""
import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# name -> (model gin file, sample rate, frame rate, block size, CREPE frame rate or None for the frame rate):
# the real-time recipes (50 frames/s, one frame per block), the low-latency 48 kHz recipe at 512-sample host
# blocks (the host-block adapter: 0 or 1 frame per call) and the tiny model at 250 frames/s: CREPE on every
# frame (4 frames per block), and at data preparation's 100 CREPE frames/s, f0 interpolated (5-frame blocks,
# and 256-sample host blocks through the adapter).
GEOMETRIES = {
    'rt16_50': ('models/realtime/realtime_16k.gin', 16000, 50, 320, None),
    'rt32_50': ('models/realtime/realtime_32k.gin', 32000, 50, 640, None),
    'rt48_50': ('models/realtime/realtime_48k.gin', 48000, 50, 960, None),
    'rt48ll_512': ('models/realtime/realtime_48k_lowlatency.gin', 48000, 50, 512, None),
    'tiny16_250': ('models/tiny.gin', 16000, 250, 256, None),
    'tiny16_250_c100': ('models/tiny.gin', 16000, 250, 320, 100),
    'tiny16_250_c100_256': ('models/tiny.gin', 16000, 250, 256, 100),
}
SECONDS = 4
REPEATS = 2  # passes over the clip per engine


def _model(gin_file, sample_rate, frame_rate):
  import numpy as np
  from ddsp.training import experiment, models
  frames = SECONDS * frame_rate
  features = {'f0_hz': np.full([1, frames], 220.0, np.float32), 'loudness_db': np.full([1, frames], -30.0,
                                                                                        np.float32)}
  if 'realtime' in gin_file:  # the recipe binds its rates and reverb; the model computes loudness from audio
    experiment.parse_gin([gin_file], [f'example_secs = {SECONDS}'])
    features['audio'] = np.zeros([1, SECONDS * sample_rate], np.float32)
  else:
    experiment.parse_gin([gin_file], [f'sample_rate = {sample_rate}', f'n_samples = {SECONDS * sample_rate}',
                                      f'time_steps = {frames}', f'Reverb.reverb_length = {sample_rate}'])
  model = models.get_model()
  model(features)
  assert model.sample_rate == sample_rate and model.sample_rate // model.hop_size == frame_rate
  return model


def _worker(name, modes, crepe_model):
  import numpy as np
  import tensorflow as tf
  tf.config.threading.set_intra_op_parallelism_threads(1)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  import soundfile as sf
  import soxr

  import inference as bench_inference
  from ddsp import bundled
  from ddsp.training import export_lib, live
  gin_file, sr, fr, block, crepe_rate = GEOMETRIES[name]
  model = _model(gin_file, sr, fr)
  player = live.LiveModel(model, block, crepe_model=crepe_model, crepe_frame_rate=crepe_rate)
  clip, rate = sf.read(bundled.asset_path('voice_like_phrase.flac'), dtype='float32')
  clip = soxr.resample(clip[:SECONDS * rate], rate, sr).astype(np.float32) if sr != rate else clip[:SECONDS * rate]
  blocks = clip[:clip.shape[0] // block * block].reshape(-1, 1, block)
  gflops = bench_inference._matmul_gflops(tf)
  flops_frame = player.features.flops_per_frame() + bench_inference._decoder_flops(model)
  result = {'name': name, 'sample_rate': sr, 'frame_rate': fr, 'block_size': block, 'crepe': crepe_model,
            'crepe_frame_rate': player.crepe_frame_rate,
            'block_ms': 1e3 * block / sr, 'latency_ms': 1e3 * player.latency / sr,
            'total_latency_ms': 1e3 * player.total_latency / sr,
            'feature_latency_frames': player.features.latency_frames, 'gflops_1thread': gflops,
            'mflop_per_frame': flops_frame / 1e6, 'bound_rtf': gflops * 1e9 / (flops_frame * fr)}

  def run(call, state):
    times, cpu = [], []
    for _ in range(REPEATS):
      for i, b in enumerate(blocks):
        start, start_cpu = time.perf_counter(), time.process_time()
        state = call(b, state)
        if i >= 3:
          times.append(time.perf_counter() - start)
          cpu.append(time.process_time() - start_cpu)
    t, c = np.asarray(times), np.asarray(cpu)
    return {'rtf': block / sr * t.size / t.sum(), 'p50_ms': 1e3 * np.percentile(t, 50),
            'p99_ms': 1e3 * np.percentile(t, 99), 'cpu_rtf': block / sr * c.size / c.sum(),
            'cpu_p50_ms': 1e3 * np.percentile(c, 50), 'cpu_p99_ms': 1e3 * np.percentile(c, 99)}

  for mode in ('keras', 'xla'):
    if mode not in modes:
      continue
    engine = player if mode == 'keras' else live.LiveModel(model, block, crepe_model=crepe_model, jit_compile=True,
                                                           crepe_frame_rate=crepe_rate)

    def keras_call(b, state, engine=engine):
      out, state = engine.step(b, state)
      out.numpy()
      return state
    result[mode] = run(keras_call, engine.initial_state(1))
  if 'tflite' in modes:
    concrete, module, meta = export_lib.live_serving_function(model, block, 1, 0, crepe_model, crepe_rate)
    runner = tf.lite.Interpreter(model_content=export_lib.tflite_bytes(concrete, module),
                                 num_threads=1).get_signature_runner()

    def tflite_call(b, state):
      out = runner(audio=b, **state)
      return {k: out[k] for k in meta['state']}  # the state only (not the audio, features, n_frames)
    result['tflite'] = run(tflite_call, {k: np.zeros(v['shape'], v['dtype']) for k, v in meta['state'].items()})
  print('RESULT ' + json.dumps(result))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--only', default=','.join(GEOMETRIES))
  parser.add_argument('--modes', default='keras,xla,tflite')
  parser.add_argument('--crepe', default='tiny')
  parser.add_argument('--worker', default=None)
  args = parser.parse_args()
  modes = args.modes.split(',')
  if args.worker:
    _worker(args.worker, modes, args.crepe)
    return
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  print(f'{"geometry":<19} {"engine":<7} {"rtf":>7} {"p50 ms":>8} {"p99 ms":>8} {"cpu rtf":>8} {"cpu p50":>8} '
        f'{"cpu p99":>8} {"block ms":>9} {"latency ms (+block)":>20} {"bound":>8}')
  for name in args.only.split(','):
    proc = subprocess.run([sys.executable, __file__, '--worker', name, '--modes', args.modes, '--crepe', args.crepe],
                          capture_output=True, text=True, env=env, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('RESULT ')]
    if not lines:
      print(f'{name}: failed: {proc.stderr.strip().splitlines()[-1:]}')
      continue
    r = json.loads(lines[0][7:])
    for mode in modes:
      m = r[mode]
      print(f'{name:<19} {mode:<7} {m["rtf"]:>6.1f}x {m["p50_ms"]:>8.2f} {m["p99_ms"]:>8.2f} {m["cpu_rtf"]:>7.1f}x '
            f'{m["cpu_p50_ms"]:>8.2f} {m["cpu_p99_ms"]:>8.2f} {r["block_ms"]:>9.2f} '
            f'{r["latency_ms"]:>10.2f} ({r["total_latency_ms"]:.2f}) {r["bound_rtf"]:>7.0f}x')
    print(f'  {name}: CREPE {r["crepe"]} at {r["crepe_frame_rate"]:g} frames/s, {r["mflop_per_frame"]:.1f} '
          f'MFLOP/frame, matmul '
          f'{r["gflops_1thread"]:.0f} GFLOP/s on 1 thread, feature latency {r["feature_latency_frames"]} frames')


if __name__ == '__main__':
  main()
