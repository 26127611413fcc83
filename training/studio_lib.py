"""The studio's web server (`ddsp_studio`): a local page where a musician plays a recording through a model.

One HTTP server (standard library `http.server.ThreadingHTTPServer`, bound to 127.0.0.1 unless told
otherwise) serves one page (`studio_static/`: plain HTML, JavaScript and CSS, nothing from outside) and a
small JSON API; it routes and checks the requests here and hands the work to `studio_jobs.Studio` (the
models, the jobs and the transfer, the one `ddsp_transfer` does), with the controls checked against
`resynthesis.CONTROL_RANGES`.

API (every error is JSON `{"error": message}` with a 4xx status for what the user gave, never a traceback):

  GET  /                                   the page (and /static/<file>)
  GET  /api/models                         the models served, their rates, whether auto-adjust works; limits
  POST /api/jobs?model=NAME&pitch_shift=SEMITONES&loudness_shift=DB&auto_adjust=0|1&reverb=0|1&filename=F
                                           body: the audio file's bytes -> 202 {"id", "url"}
  GET  /api/jobs/<id>                      {"status": queued|running|done|error, "stage", "progress",
                                           "elapsed_s", "stage_elapsed_s", "left_s" (once estimable), ...}
  GET  /api/jobs/<id>/files/<name>         input.wav, output.wav, output.png, input_spectrogram.png,
                                           output_spectrogram.png, curves.png (`?download=1`: as attachment)

Jobs run on a small thread pool, so requests stay independent and a long transfer does not block the page.
"""
import errno
import http
import http.server
import json
import os
import re
import signal
import threading
import traceback
import urllib.parse

from absl import logging

from ddsp import cli
from ddsp import file_utils
from ddsp import validation
from ddsp.training import resynthesis
from ddsp.training import studio_jobs

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'studio_static')
STATIC_FILES = {'index.html': 'text/html; charset=utf-8', 'app.js': 'text/javascript; charset=utf-8',
                'style.css': 'text/css; charset=utf-8'}
# Bodies up to this size are read and dropped when refused, so the client sees the answer, not a reset.
_DRAIN_LIMIT = 512 * 1024 * 1024


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
  for name in studio_jobs.CONTROLS:
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
    except studio_jobs.RequestError as e:
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
    raise studio_jobs.RequestError(404, f'Nothing at {url.path!r}.')

  def _static(self, name):
    if name not in STATIC_FILES:
      raise studio_jobs.RequestError(404, f'No static file {name!r}.')
    with open(os.path.join(STATIC_DIR, name), 'rb') as f:
      body = f.read()
    self._send(200, body, STATIC_FILES[name])

  def _job_file(self, job, name, query):
    if name not in studio_jobs.JOB_FILES:
      raise studio_jobs.RequestError(404, f"No file {name!r}; a job has {', '.join(studio_jobs.JOB_FILES)}.")
    if job.status != 'done':
      raise studio_jobs.RequestError(409, f'Job {job.id} is {job.status}: its files are not ready.')
    with open(os.path.join(job.folder, name), 'rb') as f:
      body = f.read()
    headers = []
    if query.get('download', ['0'])[-1] not in ('0', ''):
      stem = os.path.splitext(job.filename)[0] if job.filename != 'the upload' else 'studio'
      stem = re.sub(r'[^A-Za-z0-9._-]+', '_', stem)[:80] or 'studio'
      headers.append(('Content-Disposition', f'attachment; filename="{stem}_{job.model_name.replace("/", "_")}'
                                             f'_{name}"'))
    self._send(200, body, studio_jobs.JOB_FILES[name], headers)

  def _read_body(self):
    length = self.headers.get('Content-Length')
    if length is None or not length.strip().isdigit():
      self.close_connection = True
      raise studio_jobs.RequestError(411, 'The upload needs a Content-Length header.')
    length = int(length)
    if length > studio_jobs.MAX_UPLOAD_BYTES:
      self.close_connection = True
      if length <= _DRAIN_LIMIT:
        remaining = length
        while remaining > 0:
          chunk = self.rfile.read(min(remaining, 1 << 20))
          if not chunk:
            break
          remaining -= len(chunk)
      raise studio_jobs.RequestError(413, f'The upload is {length / 2**20:.1f} MB: the studio takes files up '
                                          f'to {studio_jobs.MAX_UPLOAD_BYTES // 2**20} MB.')
    return self.rfile.read(length)

  def _post(self):
    url = urllib.parse.urlsplit(self.path)
    if [p for p in url.path.split('/') if p] != ['api', 'jobs']:
      self._read_body()
      raise studio_jobs.RequestError(404, f'Nothing to post at {url.path!r} (POST /api/jobs).')
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
    studio = studio_jobs.Studio(model_dirs, crepe_model=crepe_model, crepe_frame_rate=crepe_frame_rate, workers=workers)
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
