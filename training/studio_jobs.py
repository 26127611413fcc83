"""The studio's work (`ddsp_studio`): the models it serves, its jobs, their progress and the transfer itself.

`Studio` loads each model once (`inference.load_model`, and the training set's statistics for auto-adjust),
checks an upload before any work (`submit`: readable audio, long enough, not too long, not silent) and runs
each job on a small thread pool with the calls `ddsp_transfer` makes: `resynthesis.transfer`
(`features.read_input`, `extract_features`, `adjust_features`, `InferenceModel.resynthesize`) ->
`resynthesis.write_result` (WAV + PNG), then the page's pictures from the training summaries' figure code
(`summaries.spectrogram_figure`, `summaries.curves_figure`).

Each job has its own temporary folder; each model is used by one job at a time (a lock per model:
`InferenceModel` sets its length per call). A `Job` reports its stage, and once its model has finished a job,
an estimate of the progress inside the stage and of the time left (`ModelEntry.expected_seconds`). The HTTP
side (routing, request parsing, responses) is `studio_lib`.
"""
import concurrent.futures
import dataclasses
import math
import os
import re
import shutil
import tempfile
import threading
import time
import traceback
import uuid

from absl import logging
import numpy as np

from ddsp import cli
from ddsp import file_utils
from ddsp.training import features as features_lib
from ddsp.training import inference
from ddsp.training import resynthesis
from ddsp.training import summaries

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MIN_SECONDS = 0.5  # CREPE and the loudness need a few frames; shorter clips are refused.
MAX_SECONDS = 600.0
MAX_JOBS = 32  # finished jobs beyond this are removed, oldest first (with their folders)
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
      controls: from `studio_lib.parse_controls`.

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
