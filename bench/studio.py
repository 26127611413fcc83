r"""Benchmark of the studio (`ddsp_studio`): how long a transfer takes through the HTTP API, where the time
goes, and whether the page stays responsive while a job runs.

The studio (`ddsp.training.studio_jobs`, served by `studio_lib`) serves one model in this process on a free
port. For each length, the first seconds of the bundled 60 s violin phrase are uploaded as a 16-bit WAV
(POST /api/jobs) and the job is polled every 50 ms until done:
  * total: upload to done (wall seconds) and the real-time factor (seconds of audio per second);
  * per stage: read, features (CREPE and loudness), controls, synthesis, files (WAV and the three PNGs);
  * poll: the latency of GET /api/jobs/<id> while the job runs (p50 / p99, ms): the page's progress requests
    compete with the worker for the interpreter.
Each length runs twice: the first includes one-off costs (CREPE's and the model's graphs for a new length).
Then two jobs of the same length at once: one model runs one job at a time, so they take about twice as long.

  python bench/studio.py [--model_dir demo_out/model] [--seconds 10,60]

Without --model_dir (and no demo_out/model), a tiny model is trained for 2 steps first (same sound path,
smaller decoder than the demo's).
"""
import argparse
import concurrent.futures
import http.client
import io
import json
import os
import sys
import tempfile
import threading
import time

import numpy as np

STAGES = ('read', 'features', 'controls', 'synthesis', 'files')


def _tiny_model(folder):
  sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests'))
  import helpers
  return helpers.train_tiny(os.path.join(folder, 'tiny'), helpers.tiny_params(n_examples=8, batch_size=2))


def _request(port, method, path, body=None):
  conn = http.client.HTTPConnection('127.0.0.1', port, timeout=600)
  try:
    conn.request(method, path, body=body)
    response = conn.getresponse()
    return response.status, response.read()
  finally:
    conn.close()


def _run_job(port, studio, name, wav):
  t0 = time.perf_counter()
  status, body = _request(port, 'POST', f'/api/jobs?model={name}&filename=bench.wav', wav)
  assert status == 202, body
  url = json.loads(body)['url']
  polls = []
  while True:
    p0 = time.perf_counter()
    status, body = _request(port, 'GET', url)
    polls.append(time.perf_counter() - p0)
    job = json.loads(body)
    if job['status'] in ('done', 'error'):
      break
    time.sleep(0.05)
  total = time.perf_counter() - t0
  assert job['status'] == 'done', job
  return total, dict(studio.job(job['id']).durations), polls


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--model_dir', default=None, help='a trained model (default: demo_out/model if it '
                      'exists, else a tiny model trained now)')
  parser.add_argument('--seconds', default='10,60', help='clip lengths (s), comma-separated, at most 60')
  args = parser.parse_args()
  os.environ.setdefault('KERAS_BACKEND', 'tensorflow')
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  import soundfile as sf
  from ddsp import bundled
  from ddsp.training import studio_jobs
  from ddsp.training import studio_lib

  with tempfile.TemporaryDirectory() as tmp:
    model_dir = args.model_dir or ('demo_out/model' if os.path.isdir('demo_out/model') else _tiny_model(tmp))
    t0 = time.perf_counter()
    studio = studio_jobs.Studio([model_dir])
    load_s = time.perf_counter() - t0
    name = next(iter(studio.models))
    rate = studio.models[name].model.sample_rate
    server = studio_lib.StudioServer(studio, '127.0.0.1', 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    phrase, phrase_rate = sf.read(bundled.asset_path('violin_phrase'), dtype='float32')
    print(f'studio on {model_dir} (model {name!r}, {rate} Hz), loaded in {load_s:.1f} s; {os.cpu_count()} CPUs')
    try:
      for seconds in [float(s) for s in args.seconds.split(',')]:
        buf = io.BytesIO()
        sf.write(buf, phrase[:int(seconds * phrase_rate)], phrase_rate, format='WAV', subtype='PCM_16')
        wav = buf.getvalue()
        for run in ('first', 'again'):
          total, durations, polls = _run_job(port, studio, name, wav)
          stages = ', '.join(f'{s} {durations.get(s, 0.0):.2f}' for s in STAGES)
          p50, p99 = (1000 * np.percentile(polls, q) for q in (50, 99))
          print(f'{seconds:5.0f} s clip ({run:5s}): {total:6.2f} s total, real-time x{seconds / total:5.1f}; '
                f'stages (s): {stages}; poll p50 {p50:.1f} ms, p99 {p99:.1f} ms ({len(polls)} polls)')
        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
          list(pool.map(lambda _: _run_job(port, studio, name, wav), range(2)))
        print(f'{seconds:5.0f} s clip, two jobs at once: {time.perf_counter() - t0:6.2f} s for both '
              '(one model runs one job at a time)')
    finally:
      server.shutdown()
      server.server_close()
      studio.close()


if __name__ == '__main__':
  main()
