r"""CREPE f0 throughput: seconds of audio processed per wall-clock second (real-time factor).

  TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python bench/crepe.py
  .venv/bin/python bench/crepe.py --seconds=5 --cases=tiny@250,tiny@100 --jit=both

The test signal is `--seconds` of 16 kHz audio: harmonic notes with vibrato separated by silences (about
30% of the time is silent), so the loudness gate has something to skip. Each case runs `ddsp.pitch.
compute_f0` once to warm up (tracing / XLA compilation, timed separately) and then `--repeats` times; the
best wall time is reported.

For each case it prints the real-time factor (audio seconds per wall second), the CREPE frames that ran
through the network, the GFLOP/s achieved (frames x FLOP per frame / wall time; FLOP per frame counted
from the layer shapes: ~74 MFLOP for tiny, ~2.8 GFLOP for full) and the FLOP-based bound on the real-time
factor: the float32 matmul throughput of this machine (measured with a large `tf.matmul`) divided by the
FLOP that one second of audio needs at that CREPE frame rate.

Measured on the development machine (2 CPU cores shared with other jobs, so figures vary by up to 2x
between runs; best of 2-3 runs, 20 s signal, batch 512, -60 dB gate, which skips ~25% of frames):

  case                 RTF (XLA off)   GFLOP/s    RTF with jit_compile=True
  tiny@250              2.4 - 5.9      44 - 108    0.4-0.5x of that
  tiny@250 gated        7.8            107         0.4x
  tiny@100              6.5 - 14.9     48 - 110    0.35-0.64x
  tiny@100 gated        7.7 - 36       42 - 200    0.15-0.38x
  full@100              0.17           47          0.29x (0.05)

XLA on CPU lost in every case, so `ddsp.pitch` leaves it off by default (DDSP_CREPE_JIT=1 turns it on).
The non-XLA runs reach roughly the measured matmul throughput (the FLOP bound).
"""
import os
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('KERAS_BACKEND', 'tensorflow')

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from ddsp import crepe

from ddsp import pitch

FLAGS = flags.FLAGS
flags.DEFINE_float('seconds', 20.0, 'Length of the test signal in seconds.')
flags.DEFINE_list('cases', ['tiny@250', 'tiny@100', 'full@100'],
                  'Cases as model@crepe_frame_rate (frame_rate is always 250).')
flags.DEFINE_enum('jit', 'both', ['both', 'true', 'false'], 'XLA compilation of the inference function.')
flags.DEFINE_enum('gate', 'both', ['both', 'on', 'off'], 'Loudness gate (-60 dBFS floor) on, off or both.')
flags.DEFINE_float('loudness_floor_db', -60.0, 'Gate threshold used for the gated runs.')
flags.DEFINE_integer('batch_size', 512, 'CREPE frames per network call.')
flags.DEFINE_integer('repeats', 2, 'Timed runs per case (the best is reported).')
flags.DEFINE_integer('full_repeats', 1, 'Timed runs per case for the full model (slow on CPUs).')
flags.DEFINE_list('full_cases_gate', ['off'], 'Gate settings for full (it is slow): subset of on,off.')

SR = 16000
FRAME_RATE = 250


def test_signal(seconds, seed=0):
  """Notes (harmonics 1/k, 5 Hz vibrato, 40 ms fades) of 0.5-1.2 s separated by 0.2-0.6 s silences."""
  rng = np.random.default_rng(seed)
  n = int(seconds * SR)
  out = np.zeros((n,), np.float32)
  pos = int(0.1 * SR)
  while pos < n:
    dur = int(rng.uniform(0.5, 1.2) * SR)
    dur = min(dur, n - pos)
    t = np.arange(dur) / SR
    f0 = 110.0 * 2 ** rng.uniform(0, 3) * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    note = np.zeros((dur,))
    for k in range(1, 30):
      note += np.where(k * f0 < 7500, np.sin(k * phase) / k, 0.0)
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.04)
    out[pos:pos + dur] = (0.3 * fade * note).astype(np.float32)
    pos += dur + int(rng.uniform(0.2, 0.6) * SR)
  return out


def matmul_gflops(n=2048, repeats=10):
  """float32 matmul throughput of this machine (GFLOP/s), the FLOP bound's reference."""
  a = tf.random.normal([n, n])
  b = tf.random.normal([n, n])
  f = tf.function(lambda x, y: tf.matmul(x, y))
  f(a, b).numpy()
  best = float('inf')
  for _ in range(repeats):
    t0 = time.perf_counter()
    f(a, b).numpy()
    best = min(best, time.perf_counter() - t0)
  return 2.0 * n ** 3 / best / 1e9


def run_case(audio, model, crepe_rate, floor, jit):
  kwargs = dict(sample_rate=SR, frame_rate=FRAME_RATE, model=model, crepe_frame_rate=crepe_rate,
                loudness_floor_db=floor, batch_size=FLAGS.batch_size, jit_compile=jit)
  t0 = time.perf_counter()
  pitch.compute_f0(audio[:SR // 4 if model == 'full' else SR], **kwargs)
  warm = time.perf_counter() - t0
  best = float('inf')
  for _ in range(FLAGS.full_repeats if model == 'full' else FLAGS.repeats):
    t0 = time.perf_counter()
    f0, conf = pitch.compute_f0(audio, **kwargs)
    best = min(best, time.perf_counter() - t0)
  # Frames that ran: the gate's decision, recomputed here the same way compute_f0 makes it.
  n_crepe = int(np.floor((len(f0) - 1) / FRAME_RATE * crepe_rate + 1e-9)) + (2 if crepe_rate != FRAME_RATE else 1)
  if floor is None:
    ran = n_crepe
  else:
    centres = np.rint(np.arange(n_crepe) * SR / crepe_rate).astype(np.int64)
    padded = np.concatenate([np.zeros(512), audio.astype(np.float64), np.zeros(2048)])
    cs = np.concatenate([[0.0], np.cumsum(padded ** 2)])
    level = 10 * np.log10(np.maximum((cs[centres + 1024] - cs[centres]) / 1024, 1e-20))
    ran = int(np.sum(level >= floor))
  return best, warm, ran, conf


def main(_):
  audio = test_signal(FLAGS.seconds)
  secs = len(audio) / SR
  peak = matmul_gflops()
  jits = {'both': [False, True], 'true': [True], 'false': [False]}[FLAGS.jit]
  gates = {'both': [None, FLAGS.loudness_floor_db], 'on': [FLAGS.loudness_floor_db], 'off': [None]}[FLAGS.gate]
  print(f'test signal: {secs:.1f} s at {SR} Hz; output frame rate {FRAME_RATE}/s; batch {FLAGS.batch_size}; '
        f'{os.cpu_count()} CPUs visible; matmul peak {peak:.1f} GFLOP/s')
  print(f'{"case":<24}{"jit":>6}{"RTF":>9}{"wall s":>9}{"warm s":>9}{"frames":>8}{"GFLOP/s":>9}'
        f'{"bound RTF":>11}')
  results = {}
  for case in FLAGS.cases:
    model, rate = case.split('@')
    rate = float(rate)
    fpf = crepe.flops_per_frame(model)
    case_gates = gates
    if model == 'full':
      case_gates = [g for g in gates if ('on' if g is not None else 'off') in FLAGS.full_cases_gate] or gates[:1]
    for floor in case_gates:
      for jit in jits:
        wall, warm, ran, _ = run_case(audio, model, rate, floor, jit)
        gflops = ran * fpf / wall / 1e9
        bound = peak * 1e9 / (fpf * rate * (ran / (rate * secs)))
        label = f'{model}@{rate:g}' + (f' gate {floor:g}dB' if floor is not None else '')
        results[(label, jit)] = secs / wall
        print(f'{label:<24}{str(jit):>6}{secs / wall:>9.2f}{wall:>9.2f}{warm:>9.2f}{ran:>8d}{gflops:>9.1f}'
              f'{bound:>11.2f}')
  if len(jits) == 2:
    print('XLA (jit_compile=True) speed-up per case:')
    for (label, jit), rtf in results.items():
      if jit:
        print(f'  {label:<24} x{rtf / results[(label, False)]:.2f}')
  print(f'(FLOP per frame: tiny {crepe.flops_per_frame("tiny") / 1e6:.1f} M; per-frame bound uses the frames '
        'that ran; the default jit_compile is ' f'{crepe.resolve_jit(None)})')


if __name__ == '__main__':
  app.run(main)
