"""What every command line of the package shares: flags defined once, quiet library logging, the absl app,
and one-line errors.

A command's module is its flags and a `main` calling into a library function. Importing it defines no
flags (so a program can import a command's module without clashing flags); `run` defines them and starts.

Errors: a flag that does not parse (`--pitch_shift=abc`) or a value refused by `ddsp.validation`
(`ValidationError`, raised by `main` before any model loads) ends the command with one line
`<command>: error: <message>` on stderr and exit status 2; a missing or misused flag (`app.UsageError`) with
one line and status 1. Any other exception keeps its traceback (it is a bug, not a user error).

Quiet by default: TensorFlow's native start-up logs are held back while `import ddsp` loads TensorFlow
(`ddsp.startup`), and TensorFlow's, gin's and Beam's INFO logs are dropped; `DDSP_VERBOSE=1` (or
`--verbosity=1`) shows all of it.
"""
import functools
import logging as std_logging
import os
import sys

from absl import app
from absl import flags
from absl import logging

from ddsp import startup
from ddsp import validation


# The CREPE flags of the commands that track the pitch of a recording (ddsp_transfer, ddsp_studio).
CREPE_MODELS = ('tiny', 'small', 'medium', 'large', 'full')
CREPE_FRAME_RATE = validation.Range(1, 1000, 'frames per second')


def define_crepe_flags(of='the input'):
  """Defines `--crepe_model` (a capacity of CREPE_MODELS) and `--crepe_frame_rate` (CREPE_FRAME_RATE)."""
  flags.DEFINE_enum('crepe_model', 'tiny', list(CREPE_MODELS),
                    f'CREPE capacity for the f0 of {of} (that package must be installed).')
  flags.DEFINE_integer('crepe_frame_rate', None, CREPE_FRAME_RATE.help(
      'Rate CREPE runs at before interpolation (default: the model frame rate).'))


def define_once(define_flags):
  """Decorator for a command's `define_flags()`: the flags are defined by the first call only."""
  done = []

  @functools.wraps(define_flags)
  def wrapper():
    if not done:
      done.append(True)
      define_flags()
  return wrapper


class _DropLibraryInfo(std_logging.Filter):
  """Drops INFO (and lower) records of TensorFlow's, gin's and Beam's own modules, and Beam's import-time
  warning that its BigQuery client libraries are missing (no command uses BigQuery)."""

  def filter(self, record):
    path = record.pathname.replace(os.sep, '/')
    if '/apache_beam/io/gcp/internal/clients/' in path and record.levelno < std_logging.ERROR:
      return False
    return record.levelno >= std_logging.WARNING or not any(
        part in path for part in ('/tensorflow/', '/gin/', '/apache_beam/'))


def quiet_library_logging(level=std_logging.WARNING):
  """Hides TensorFlow's, gin's and Beam's own INFO messages (checkpoint sharding, SavedModel fingerprints,
  converter passes, ...), which would bury a command's progress bar and result lines."""
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  std_logging.getLogger('tensorflow').setLevel(level)
  # A logger's filters see only the records logged on it; Beam logs on its own module loggers, whose records
  # reach the root logger's handler (absl's) without passing the root logger's filters.
  for target in (std_logging.getLogger(), std_logging.getLogger('absl'), logging.get_absl_handler()):
    if not any(isinstance(f, _DropLibraryInfo) for f in target.filters):
      target.addFilter(_DropLibraryInfo())


def first_line(error):
  """The first non-empty line of an exception's message (its type name when the message is empty)."""
  for line in str(error).splitlines():
    if line.strip():
      return line.strip()
  return type(error).__name__


def fail(prog, message, status=1):
  """Prints `<prog>: error: <message>` (one line) on stderr and exits with `status`."""
  text = message if isinstance(message, str) else first_line(message)
  text = ' '.join(text.split()) or 'failed'
  print(f'{prog}: error: {text}', file=sys.stderr)
  sys.exit(status)


def _one_line_parse_errors(flags_parser, prog):
  """Wraps an absl flags parser: a flag that does not parse ends the command with one line and status 2."""

  def parse(argv):
    try:
      return flags_parser(argv)
    except flags.Error as e:
      fail(prog, e, 2)
  return parse


def _one_line_errors(main, prog):
  """Wraps `main`: refused values (`ValidationError`) and usage errors end the command with one line."""

  @functools.wraps(main)
  def wrapper(argv):
    try:
      return main(argv)
    except validation.ValidationError as e:
      fail(prog, e, 2)
    except app.UsageError as e:
      fail(prog, f'{first_line(e)} (--helpshort lists the flags)', e.exitcode)
  return wrapper


def run(main, define_flags=None, flags_parser=None, verbosity=None, prog=None):
  """Quiets library logging, defines the command's flags and runs `main` under absl with one-line errors.

  Args:
    main: `main(argv)`.
    define_flags: the command's flag definitions (called once), or None.
    flags_parser: optional absl flags parser (e.g. one that keeps Beam's pipeline options).
    verbosity: optional absl logging level for the command's own log lines (e.g. `logging.WARNING`); not
      applied in verbose mode (`ddsp.startup.verbose`).
    prog: the command's name in error lines (default: the running command, else the program's file name).
  """
  prog = prog or startup.command_name() or os.path.basename(sys.argv[0] or 'ddsp')
  if not startup.verbose():
    quiet_library_logging()
    if verbosity is not None:
      logging.set_verbosity(verbosity)
  if define_flags is not None:
    define_flags()
  parser = _one_line_parse_errors(flags_parser or (lambda argv: flags.FLAGS(argv)), prog)
  app.run(_one_line_errors(main, prog), flags_parser=parser)
