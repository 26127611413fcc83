"""The studio: a local web page where a musician plays a recording through a trained model (`ddsp_studio`).

One HTTP server (standard library `http.server.ThreadingHTTPServer`, bound to 127.0.0.1 unless told
otherwise) serves one page (`studio_static/`: plain HTML, JavaScript and CSS, nothing from outside) and a
small JSON API. The work is the one `ddsp_transfer` does, through the same library calls:
`inference.load_model` -> `resynthesis.transfer` (`features.read_input`, `extract_features`,
`adjust_features`, `InferenceModel.resynthesize`) -> `resynthesis.write_result` (WAV + PNG), with the
controls checked against `resynthesis.CONTROL_RANGES`. The page's pictures come from the training
summaries' figure code (`summaries.spectrogram_figure`, `summaries.curves_figure`).

API (every error is JSON `{"error": message}` with a 4xx status for what the user gave, never a traceback):

  GET  /                                   the page (and /static/<file>)
  GET  /api/models                         the models served, their rates, whether auto-adjust works; limits
  POST /api/jobs?model=NAME&pitch_shift=SEMITONES&loudness_shift=DB&auto_adjust=0|1&reverb=0|1&filename=F
                                           body: the audio file's bytes -> 202 {"id", "url"}
  GET  /api/jobs/<id>                      {"status": queued|running|done|error, "stage", "progress",
                                           "elapsed_s", "stage_elapsed_s", "left_s" (once estimable), ...}
  GET  /api/jobs/<id>/files/<name>         input.wav, output.wav, output.png, input_spectrogram.png,
                                           output_spectrogram.png, curves.png (`?download=1`: as attachment)

Each job has its own temporary folder; each model is loaded once and used by one job at a time (a lock per
model: `InferenceModel` sets its length per call); jobs run on a small thread pool, so requests stay
independent and a long transfer does not block the page.
"""
import concurrent.futures
import dataclasses
import errno
import http
import http.server
import json
import math
import os
import re
import shutil
import signal
import tempfile
import threading
import time
import traceback
import urllib.parse
import uuid

from absl import logging
import numpy as np

from ddsp import cli
from ddsp import file_utils
from ddsp import validation
from ddsp.training import features as features_lib
from ddsp.training import inference
from ddsp.training import resynthesis
from ddsp.training import summaries

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'studio_static')
STATIC_FILES = {'index.html': 'text/html; charset=utf-8', 'app.js': 'text/javascript; charset=utf-8',
                'style.css': 'text/css; charset=utf-8'}
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MIN_SECONDS = 0.5  # CREPE and the loudness need a few frames; shorter clips are refused.
MAX_SECONDS = 600.0
MAX_JOBS = 32  # finished jobs beyond this are removed, oldest first (with their folders)
# Bodies up to this size are read and dropped when refused, so the client sees the answer, not a reset.
_DRAIN_LIMIT = 512 * 1024 * 1024
# The controls the page offers (a subset of `ddsp_transfer`'s, with its ranges).
CONTROLS = ('pitch_shift', 'loudness_shift')
JOB_FILES = {'input.wav': 'audio/wav', 'output.wav': 'audio/wav', 'output.png': 'image/png',
             'input_spectrogram.png': 'image/png', 'output_spectrogram.png': 'image/png',
             'curves.png': 'image/png'}
# Progress shown for each stage of `resynthesis.transfer` and the files after it.
_STAGES = {'queued': (0.0, 'waiting for a worker'), 'model': (0.05, 'waiting for the model'),
           'read': (0.1, 'reading the recording'), 'features': (0.15, 'pitch (CREPE) and loudness'),
           'controls': (0.55, 'applying the controls'), 'synthesis': (0.6, 'synthesis'),
           'files': (0.85, 'writing the WAV and pictures'), 'done': (1.0, 'done')}
_ORDER = tuple(_STAGES)
# The stages whose length grows with the recording's. Their durations on the model's last finished jobs,
# fitted as a + b * seconds of audio, move the bar inside a stage (an estimate, held below the next stage's
# start) and give the time left; until a model has finished a job, the page shows the stage and the time
# elapsed only.
_TIMED_STAGES = ('read', 'features', 'controls', 'synthesis', 'files')
_TIMING_HISTORY = 8
_LOAD_LOCK = threading.Lock()  # load_model replaces the global gin config: one load at a time.


class RequestError(Exception):
  """What a request gave cannot be used: answered with `status` and `{"error": message}`."""

  def __init__(self, status, message):
    super().__init__(message)
    self.status = int(status)
    self.message = message


@dataclasses.dataclass
class ModelEntry:
  """A model the studio serves: loaded once, used by one job at a time."""
  name: str
  model_dir: str
  model: object
  stats: object  # the training set's statistics dict (for auto-adjust), or None
  lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
  timings: dict = dataclasses.field(default_factory=dict)  # timed stage -> [(audio seconds, seconds)]
  _timings_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

  def learn_timings(self, durations, audio_seconds):
    """Keeps a finished job's stage durations (seconds) for `expected_seconds`."""
    with self._timings_lock:
      for stage, seconds in durations.items():
        if stage in _TIMED_STAGES and audio_seconds > 0:
          history = self.timings.setdefault(stage, [])
          history.append((float(audio_seconds), float(seconds)))
          del history[:-_TIMING_HISTORY]

  def expected_seconds(self, stage, audio_seconds):
    """How long `stage` takes on `audio_seconds` of audio: a least-squares line a + b * seconds through the
    last jobs' durations (a, b >= 0; through the origin when the jobs had one length or the line's intercept
    would be negative); None before any job finished."""
    with self._timings_lock:
      history = np.array(self.timings.get(stage, ()), np.float64).reshape(-1, 2)
    if not history.size:
      return None
    x, y = history[:, 0], history[:, 1]
    if np.ptp(x) > 0.1 * x.mean():
      slope, intercept = np.polyfit(x, y, 1)
      if slope >= 0 and intercept >= 0:
        return float(intercept + slope * audio_seconds)
    return float(np.dot(x, y) / np.dot(x, x) * audio_seconds)

  def describe(self):
    m = self.model
    return {'name': self.name, 'sample_rate': int(m.sample_rate), 'frame_rate': float(m.frame_rate),
            'step': None if m.step is None else int(m.step), 'has_reverb': m.reverb is not None,
            'auto_adjust': self.stats is not None}


class Job:
  """One transfer: its folder, state and result; updated by the worker, read by the polling requests."""

  def __init__(self, folder, model_name, controls, entry=None):
    self.id = uuid.uuid4().hex
    self.folder = folder
    self.model_name = model_name
    self.controls = controls
    self.created = time.time()
    self.audio_seconds = 0.0  # the recording's length (set once it is read)
    self.entry = entry  # the `ModelEntry`: its timings give the estimates
    self.durations = {}  # stage -> seconds it took
    self._stage_started = time.monotonic()
    self._submitted = self._stage_started
    self._ended = None
    self.status = 'queued'
    self.stage = 'queued'
    self.error = None
    self.http_status = 200
    self.info = {}
    self.input_path = None
    self.filename = 'the upload'
    self._lock = threading.Lock()

  def set_stage(self, stage):
    with self._lock:
      now = time.monotonic()
      self.durations[self.stage] = now - self._stage_started
      self._stage_started = now
      self.status, self.stage = ('done' if stage == 'done' else 'running'), stage
      if stage == 'done':
        self._ended = now

  def fail(self, status, message):
    with self._lock:
      self.status, self.error, self.http_status = 'error', message, status
      self._ended = time.monotonic()

  @property
  def finished(self):
    return self.status in ('done', 'error')

  def _estimate(self, progress, stage_seconds):
    """(progress inside the current stage, seconds left or None) from the model's earlier jobs."""
    if (self.status != 'running' or self.stage not in _TIMED_STAGES or not self.audio_seconds
        or self.entry is None):
      return progress, None
    expected = self.entry.expected_seconds(self.stage, self.audio_seconds)
    if expected is None:
      return progress, None
    following = _ORDER[_ORDER.index(self.stage) + 1]
    progress += (_STAGES[following][0] - progress) * min(0.95, stage_seconds / max(expected, 1e-6))
    later = [self.entry.expected_seconds(s, self.audio_seconds)
             for s in _TIMED_STAGES[_TIMED_STAGES.index(self.stage) + 1:]]
    if any(t is None for t in later):
      return progress, None
    return progress, max(0.0, expected - stage_seconds) + sum(later)

  def to_json(self):
    with self._lock:
      now = time.monotonic()
      progress, text = _STAGES.get(self.stage, (0.0, self.stage))
      stage_seconds = now - self._stage_started
      progress, left = self._estimate(progress, stage_seconds)
      out = {'id': self.id, 'model': self.model_name, 'status': self.status, 'stage': text,
             'progress': round(progress, 4), 'controls': self.controls,
             'elapsed_s': round((self._ended or now) - self._submitted, 1),
             'stage_elapsed_s': 0.0 if self._ended else round(stage_seconds, 1)}
      if left is not None:
        out['left_s'] = round(left, 1)
      if self.error:
        out['error'] = self.error
      if self.status == 'done':
        base = f'/api/jobs/{self.id}/files/'
        out['files'] = {name: base + name for name in JOB_FILES}
        out['info'] = self.info
      return out


def _model_names(model_dirs):
  """A short unique name per folder: its base name, with parents added where two would clash."""
  parts = [os.path.normpath(os.path.abspath(os.path.expanduser(d))).split(os.sep) for d in model_dirs]
  depth = 1
  while True:
    names = ['/'.join(p[-depth:]) for p in parts]
    if len(set(names)) == len(names) or depth >= max(len(p) for p in parts):
      return names
    depth += 1


def parse_bool(name, text):
  """'1', 'true', 'on', 'yes' / '0', 'false', 'off', 'no', '' -> bool; ValidationError otherwise."""
  word = str(text).strip().lower()
  if word in ('1', 'true', 'on', 'yes'):
    return True
  if word in ('0', 'false', 'off', 'no', ''):
    return False
  raise validation.ValidationError(f'{name}={text!r} is not a yes/no value (1/0, true/false, on/off).')


def parse_controls(query):
  """The controls of a job from a query dict {name: [value]}, checked against `resynthesis.CONTROL_RANGES`.

  Returns:
    {'pitch_shift', 'loudness_shift' (floats), 'auto_adjust', 'reverb' (bools)}.

  Raises:
    ddsp.validation.ValidationError: a value that is not a number in its range, or not a yes/no.
  """
  controls = {}
  for name in CONTROLS:
    text = query.get(name, ['0'])[-1]
    try:
      value = float(text)
    except ValueError:
      raise validation.ValidationError(f'{name}={text!r} is not a number (accepted range '
                                       f'{resynthesis.CONTROL_RANGES[name].text()}).') from None
    resynthesis.CONTROL_RANGES[name].check(name, value)
    controls[name] = value
  controls['auto_adjust'] = parse_bool('auto_adjust', query.get('auto_adjust', ['0'])[-1])
  controls['reverb'] = parse_bool('reverb', query.get('reverb', ['1'])[-1])
  return controls


def _upload_suffix(filename):
  """A safe file extension for the upload (the audio reader uses it as a hint), '' if none."""
  ext = os.path.splitext(os.path.basename(filename or ''))[1].lower()
  return ext if re.fullmatch(r'\.[a-z0-9]{1,5}', ext) else ''


class Studio:
  """The models, the jobs and the workers behind the server.

  Args:
    model_dirs: training folders (`ddsp_run --save_dir`), each loaded now with `inference.load_model`.
    crepe_model, crepe_frame_rate: the f0 analysis of the inputs (as `ddsp_transfer`'s flags).
    workers: jobs run at the same time (each model runs one job at a time).
    work_dir: where the job folders go (default: a new temporary folder, removed by `close`).
  """

  def __init__(self, model_dirs, crepe_model='tiny', crepe_frame_rate=None, workers=2, work_dir=None):
    if not model_dirs:
      raise ValueError('The studio needs at least one model folder.')
    self.crepe_model = crepe_model
    self.crepe_frame_rate = crepe_frame_rate
    self.models = {}
    for name, model_dir in zip(_model_names(model_dirs), model_dirs):
      with _LOAD_LOCK:
        model = inference.load_model(model_dir)
      stats_path = features_lib.find_dataset_statistics(model.save_dir, model.gin_config)
      stats = features_lib.load_dataset_statistics(stats_path) if stats_path else None
      self.models[name] = ModelEntry(name=name, model_dir=model_dir, model=model, stats=stats)
    self._own_work_dir = work_dir is None
    self.work_dir = work_dir or tempfile.mkdtemp(prefix='ddsp_studio_')
    os.makedirs(self.work_dir, exist_ok=True)
    self.jobs = {}
    self._jobs_lock = threading.Lock()
    self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix='ddsp_studio')

  def describe(self):
    """What GET /api/models answers."""
    ranges = {name: {'low': resynthesis.CONTROL_RANGES[name].low, 'high': resynthesis.CONTROL_RANGES[name].high,
                     'text': resynthesis.CONTROL_RANGES[name].text()} for name in CONTROLS}
    return {'models': [entry.describe() for entry in self.models.values()], 'controls': ranges,
            'limits': {'max_upload_bytes': MAX_UPLOAD_BYTES, 'min_seconds': MIN_SECONDS,
                       'max_seconds': MAX_SECONDS}}

  def model(self, name):
    entry = self.models.get(name)
    if entry is None:
      raise RequestError(404, f"Unknown model {name!r}; this studio serves: {', '.join(self.models)}.")
    return entry

  def job(self, job_id):
    with self._jobs_lock:
      job = self.jobs.get(job_id)
    if job is None:
      raise RequestError(404, f'No job {job_id!r} (finished jobs are kept for a while, then removed).')
    return job

  def _new_job(self, model_name, controls):
    with self._jobs_lock:
      finished = sorted((j for j in self.jobs.values() if j.finished), key=lambda j: j.created)
      while len(self.jobs) >= MAX_JOBS and finished:
        old = finished.pop(0)
        del self.jobs[old.id]
        shutil.rmtree(old.folder, ignore_errors=True)
      if len(self.jobs) >= MAX_JOBS:
        raise RequestError(503, f'{MAX_JOBS} jobs are running or waiting; try again when one finishes.')
      job = Job(tempfile.mkdtemp(prefix='job_', dir=self.work_dir), model_name, controls,
                self.models[model_name])
      self.jobs[job.id] = job
      return job

  def _drop(self, job):
    with self._jobs_lock:
      self.jobs.pop(job.id, None)
    shutil.rmtree(job.folder, ignore_errors=True)

  def submit(self, model_name, data, filename, controls):
    """Checks a request and queues its job; what the user gave is refused here, before any work.

    Args:
      model_name: one of `self.models`.
      data: the uploaded file's bytes.
      filename: its name (for the extension and messages).
      controls: from `parse_controls`.

    Returns:
      The queued `Job`.

    Raises:
      RequestError: unknown model (404), not audio (415), too short, too long, silent, or auto-adjust
        without the training set's statistics (400).
    """
    entry = self.model(model_name)
    if controls['auto_adjust'] and entry.stats is None:
      raise RequestError(400, f"Auto-adjust needs the training set's {features_lib.STATS_NAME}, and model "
                              f'{model_name!r} has none (in its folder or beside its TFRecords).')
    if not data:
      raise RequestError(400, 'The upload is empty: choose or record a recording first.')
    shown = os.path.basename(filename or '') or 'the upload'
    job = self._new_job(model_name, controls)
    try:
      path = os.path.join(job.folder, 'upload' + _upload_suffix(filename))
      file_utils.write_bytes(path, data)
      try:
        audio, _ = features_lib.read_input(path, entry.model.sample_rate)
      except features_lib.InputError as e:
        reason = cli.first_line(e).replace(path + ': ', '').replace(path, shown)
        raise RequestError(415, f'{shown} is not a recording the studio can read ({reason}). Upload a WAV, '
                                'FLAC, OGG or MP3 file.') from None
      seconds = audio.size / float(entry.model.sample_rate)
      if seconds < MIN_SECONDS:
        raise RequestError(400, f'{shown} is {seconds:.2f} s long: the studio needs at least '
                                f'{MIN_SECONDS:g} s.')
      if seconds > MAX_SECONDS:
        raise RequestError(400, f'{shown} is {seconds:.0f} s long: the studio takes at most {MAX_SECONDS:g} s.')
      peak = float(np.max(np.abs(audio)))
      if peak < features_lib.SILENCE_PEAK:
        raise RequestError(400, f'{shown} is silent (peak {20 * math.log10(max(peak, 1e-12)):.0f} dBFS): '
                                'nothing to play.')
    except BaseException:
      self._drop(job)
      raise
    job.input_path, job.filename, job.audio_seconds = path, shown, seconds
    self._pool.submit(self._run, job, entry)
    return job

  def _run(self, job, entry):
    """The worker: the same calls as `ddsp_transfer`, then the page's pictures."""
    try:
      controls = job.controls
      job.set_stage('model')
      with entry.lock:
        result = resynthesis.transfer(
            entry.model, job.input_path, crepe_model=self.crepe_model, crepe_frame_rate=self.crepe_frame_rate,
            pitch_shift=controls['pitch_shift'], loudness_shift=controls['loudness_shift'],
            auto_adjust=controls['auto_adjust'], dataset_stats=entry.stats if controls['auto_adjust'] else None,
            progress=job.set_stage)
      job.set_stage('files')
      dry = not controls['reverb'] and result.audio_dry is not None
      folder = job.folder
      resynthesis.write_result(result, os.path.join(folder, 'output.wav'), write_dry=dry)
      file_utils.write_wav(os.path.join(folder, 'input.wav'), result.audio_input, result.sample_rate)
      audio_out = result.audio_dry if dry else result.audio
      for name, audio, title in (('input', result.audio_input, f'input: {job.filename}'),
                                 ('output', audio_out, f'output: {job.model_name}' + (' (dry)' if dry else ''))):
        fig = summaries.spectrogram_figure([audio], result.sample_rate, titles=[title])
        file_utils.save_figure(fig, os.path.join(folder, f'{name}_spectrogram.png'))
      fig = summaries.curves_figure(*resynthesis.result_curves(result), result.frame_rate)
      file_utils.save_figure(fig, os.path.join(folder, 'curves.png'))
      info = result.info
      job.info = {'seconds': round(result.audio.size / float(result.sample_rate), 3),
                  'sample_rate': int(result.sample_rate), 'notes': list(info.get('notes', [])),
                  'pitch_shift_semitones': float(info['pitch_shift_semitones']),
                  'loudness_shift_db': float(info['loudness_shift_db']),
                  'voiced_frames': int(info['voiced_frames']), 'n_frames': int(info['n_frames']),
                  'reverb': not dry, 'model_has_reverb': result.audio_dry is not None}
      if 'auto_octave_shift' in info:
        job.info.update(auto_octave_shift=int(info['auto_octave_shift']),
                        auto_loudness_shift_db=float(info['auto_loudness_shift_db']))
      job.set_stage('done')
      entry.learn_timings(job.durations, job.audio_seconds)
    except (ValueError, FileNotFoundError) as e:  # ValidationError, InputError: what the input or controls did
      job.fail(422, cli.first_line(e))
    except Exception as e:  # the server keeps serving; the log has the trace
      logging.error('ddsp_studio: job %s failed:\n%s', job.id, traceback.format_exc())
      job.fail(500, f'Internal error ({type(e).__name__}); the server log has the details.')

  def close(self):
    """Stops the workers and removes the job folders (the work folder too, if the studio made it)."""
    self._pool.shutdown(wait=True, cancel_futures=True)
    if self._own_work_dir:
      shutil.rmtree(self.work_dir, ignore_errors=True)


# ------------------------------------------------------------------------------------------------------------
# HTTP.
# ------------------------------------------------------------------------------------------------------------
class Handler(http.server.BaseHTTPRequestHandler):
  """The page, its files and the JSON API of `self.server.studio`."""

  server_version = 'ddsp_studio'
  protocol_version = 'HTTP/1.1'

  def log_message(self, format, *args):
    logging.info('ddsp_studio: %s %s', self.address_string(), format % args)

  def _send(self, status, body, content_type, headers=()):
    self.send_response(status)
    self.send_header('Content-Type', content_type)
    self.send_header('Content-Length', str(len(body)))
    self.send_header('Cache-Control', 'no-store')
    self.send_header('X-Content-Type-Options', 'nosniff')
    for key, value in headers:
      self.send_header(key, value)
    self.end_headers()
    if self.command != 'HEAD':
      self.wfile.write(body)

  def _json(self, status, obj):
    self._send(status, json.dumps(obj, default=file_utils.json_default).encode('utf-8'), 'application/json')

  def send_error(self, code, message=None, explain=None):
    """Protocol errors (a malformed request line, an unknown method) as JSON too."""
    try:
      self.close_connection = True
      phrase = http.HTTPStatus(code).phrase if code in http.HTTPStatus._value2member_map_ else 'error'
      self._json(code, {'error': message or phrase})
    except OSError:
      pass

  def _handle(self, method):
    try:
      method()
    except RequestError as e:
      self._json(e.status, {'error': e.message})
    except validation.ValidationError as e:
      self._json(400, {'error': cli.first_line(e)})
    except (BrokenPipeError, ConnectionResetError):
      self.close_connection = True
    except Exception as e:  # never a traceback to the client; keep serving
      logging.error('ddsp_studio: %s %s failed:\n%s', self.command, self.path, traceback.format_exc())
      self._json(500, {'error': f'Internal error ({type(e).__name__}); the server log has the details.'})

  def do_GET(self):
    self._handle(self._get)

  def do_HEAD(self):
    self._handle(self._get)

  def do_POST(self):
    self._handle(self._post)

  def _get(self):
    url = urllib.parse.urlsplit(self.path)
    parts = [p for p in url.path.split('/') if p]
    studio = self.server.studio
    if not parts or parts == ['index.html']:
      return self._static('index.html')
    if len(parts) == 2 and parts[0] == 'static':
      return self._static(parts[1])
    if parts == ['api', 'models']:
      return self._json(200, studio.describe())
    if len(parts) == 3 and parts[:2] == ['api', 'jobs']:
      job = studio.job(parts[2])
      return self._json(job.http_status, job.to_json())
    if len(parts) == 5 and parts[:2] == ['api', 'jobs'] and parts[3] == 'files':
      return self._job_file(studio.job(parts[2]), parts[4], urllib.parse.parse_qs(url.query))
    raise RequestError(404, f'Nothing at {url.path!r}.')

  def _static(self, name):
    if name not in STATIC_FILES:
      raise RequestError(404, f'No static file {name!r}.')
    with open(os.path.join(STATIC_DIR, name), 'rb') as f:
      body = f.read()
    self._send(200, body, STATIC_FILES[name])

  def _job_file(self, job, name, query):
    if name not in JOB_FILES:
      raise RequestError(404, f"No file {name!r}; a job has {', '.join(JOB_FILES)}.")
    if job.status != 'done':
      raise RequestError(409, f'Job {job.id} is {job.status}: its files are not ready.')
    with open(os.path.join(job.folder, name), 'rb') as f:
      body = f.read()
    headers = []
    if query.get('download', ['0'])[-1] not in ('0', ''):
      stem = os.path.splitext(job.filename)[0] if job.filename != 'the upload' else 'studio'
      stem = re.sub(r'[^A-Za-z0-9._-]+', '_', stem)[:80] or 'studio'
      headers.append(('Content-Disposition', f'attachment; filename="{stem}_{job.model_name.replace("/", "_")}'
                                             f'_{name}"'))
    self._send(200, body, JOB_FILES[name], headers)

  def _read_body(self):
    length = self.headers.get('Content-Length')
    if length is None or not length.strip().isdigit():
      self.close_connection = True
      raise RequestError(411, 'The upload needs a Content-Length header.')
    length = int(length)
    if length > MAX_UPLOAD_BYTES:
      self.close_connection = True
      if length <= _DRAIN_LIMIT:
        remaining = length
        while remaining > 0:
          chunk = self.rfile.read(min(remaining, 1 << 20))
          if not chunk:
            break
          remaining -= len(chunk)
      raise RequestError(413, f'The upload is {length / 2**20:.1f} MB: the studio takes files up to '
                              f'{MAX_UPLOAD_BYTES // 2**20} MB.')
    return self.rfile.read(length)

  def _post(self):
    url = urllib.parse.urlsplit(self.path)
    if [p for p in url.path.split('/') if p] != ['api', 'jobs']:
      self._read_body()
      raise RequestError(404, f'Nothing to post at {url.path!r} (POST /api/jobs).')
    data = self._read_body()
    query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
    studio = self.server.studio
    studio.model(query.get('model', [''])[-1])  # an unknown model is refused before the controls
    controls = parse_controls(query)
    job = studio.submit(query['model'][-1], data, query.get('filename', [''])[-1], controls)
    self._json(202, {'id': job.id, 'url': f'/api/jobs/{job.id}'})


class StudioServer(http.server.ThreadingHTTPServer):
  """A threading HTTP server holding the `Studio` its handlers use."""

  daemon_threads = True

  def __init__(self, studio, host='127.0.0.1', port=8000):
    self.studio = studio
    super().__init__((host, port), Handler)

  @property
  def url(self):
    host, port = self.server_address[:2]
    host = f'[{host}]' if ':' in host else host
    return f'http://{host}:{port}/'


def serve(model_dirs, host='127.0.0.1', port=8000, crepe_model='tiny', crepe_frame_rate=None, workers=2,
          ready=None):
  """Listens, loads the models and serves the studio until interrupted (Ctrl-C).

  The port is taken before the models load, so a port in use is reported at once.

  Args:
    model_dirs: training folders.
    host, port: where to listen (127.0.0.1: this machine only).
    crepe_model, crepe_frame_rate: the f0 analysis of the inputs.
    workers: jobs run at the same time.
    ready: called with the page's URL once the server listens (default: print it).

  Raises:
    OSError: cannot listen on host:port (one line: in use, or an address this machine does not have).
    FileNotFoundError, ValueError: a model folder `inference.load_model` cannot use.
  """
  try:
    server = StudioServer(None, host, port)
  except OSError as e:
    if e.errno == errno.EADDRINUSE:
      raise OSError(f'port {port} on {host} is in use (another ddsp_studio?): choose another with --port '
                    '(0: any free port).') from None
    raise OSError(f'cannot listen on {host}:{port}: {e.strerror or e}.') from None
  try:
    studio = Studio(model_dirs, crepe_model=crepe_model, crepe_frame_rate=crepe_frame_rate, workers=workers)
  except BaseException:
    server.server_close()
    raise
  server.studio = studio
  if threading.current_thread() is threading.main_thread():
    def stop(signum, frame):  # SIGTERM ends the server as Ctrl-C does (the job folders are removed)
      del signum, frame
      raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)
  with server:
    (ready or (lambda url: print(f'ddsp_studio: serving {", ".join(studio.models)} at {url} (Ctrl-C stops)',
                                 flush=True)))(server.url)
    try:
      server.serve_forever()
    except KeyboardInterrupt:
      pass
    finally:
      studio.close()
