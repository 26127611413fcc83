r"""`ddsp_studio`: a local web page to play recordings through trained models, for musicians.

Examples:
  # The model trained by `make demo`; open the printed address (http://127.0.0.1:8000/) in a browser.
  ddsp_studio --model_dir=demo_out/model
  # Two models to choose from, on another port.
  ddsp_studio --model_dir=/tmp/violin --model_dir=/tmp/flute --port=8080

The page: choose a model, upload a file or record from the microphone, set the pitch and loudness shifts,
auto-adjust and the learned reverb, then hear the input and the output side by side with their spectrograms
and the f0 / loudness curves, and download the WAV. The work is `ddsp_transfer`'s, through the same library
calls (`ddsp.training.studio_jobs` does them, `studio_lib` serves them). The server listens on 127.0.0.1
(this machine only) unless --host says otherwise; nothing is fetched from outside.

Errors: a flag out of its range ends with one line `ddsp_studio: error: ...` and exit code 2; a missing or
unusable model folder, or a port in use, with one line and exit code 1, before the server starts (a port in use
before TensorFlow loads).
"""
import errno
import os
import socket
import sys

from absl import app
from absl import flags
from absl import logging

from ddsp import cli
from ddsp import validation

os.environ.setdefault('KERAS_BACKEND', 'tensorflow')

FLAGS = flags.FLAGS

CREPE_MODELS = cli.CREPE_MODELS
# The accepted values of the numeric flags (stated in each flag's help; checked before any model loads).
RANGES = {
    'port': validation.Range(0, 65535),
    'workers': validation.Range(1, 64),
    'crepe_frame_rate': cli.CREPE_FRAME_RATE,
}


@cli.define_once
def define_flags():
  """Defines the command-line flags."""
  flags.DEFINE_multi_string('model_dir', [], 'Training folder of a model (ddsp_run --save_dir); repeat the flag '
                            'for several models.')
  flags.DEFINE_integer('port', 8000, RANGES['port'].help('Port to listen on (0: any free port).'))
  flags.DEFINE_string('host', '127.0.0.1', 'Address to listen on (127.0.0.1: this machine only; 0.0.0.0: '
                      'every network interface).')
  flags.DEFINE_integer('workers', 2, RANGES['workers'].help('Transfers run at the same time (each model runs '
                       'one at a time).'))
  cli.define_crepe_flags('the inputs')


def check_flags(flag_values=FLAGS):
  """Refuses flag values out of range or a CREPE capacity that is not installed, before any model loads.

  Raises:
    ddsp.validation.ValidationError: naming the flag, its value and what is accepted.
  """
  validation.check_flags(flag_values, RANGES, {'crepe_model': CREPE_MODELS})
  validation.check_crepe_installed('--crepe_model', flag_values.crepe_model)


def _error(message):
  print(f'ddsp_studio: error: {message}', file=sys.stderr)
  sys.exit(1)


def _check_port(host, port):
  """Ends at once, before TensorFlow and the models load, when the port cannot be taken (`studio_lib.serve`
  takes it for real afterwards)."""
  try:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
      s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as http.server does
      s.bind((host, port))
  except OSError as e:
    if e.errno == errno.EADDRINUSE:
      _error(f'port {port} on {host} is in use (another ddsp_studio?): choose another with --port '
             '(0: any free port).')
    _error(f'cannot listen on {host}:{port}: {e.strerror or e}.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if not FLAGS.model_dir:
    raise app.UsageError('--model_dir is required (repeat it for several models).')
  check_flags(FLAGS)
  for model_dir in FLAGS.model_dir:
    if not os.path.isdir(os.path.expanduser(model_dir)):
      _error(f'--model_dir {model_dir!r} is not a folder.')
  _check_port(FLAGS.host, FLAGS.port)
  from ddsp.training import studio_lib
  try:
    studio_lib.serve(FLAGS.model_dir, host=FLAGS.host, port=FLAGS.port, crepe_model=FLAGS.crepe_model,
                     crepe_frame_rate=FLAGS.crepe_frame_rate, workers=FLAGS.workers)
  except validation.ValidationError:
    raise  # one line and exit status 2 (ddsp.cli.run)
  except (FileNotFoundError, ValueError, OSError) as e:
    _error(cli.first_line(e))


def console_entry_point():
  cli.run(main, define_flags, verbosity=logging.WARNING)


if __name__ == '__main__':
  console_entry_point()
