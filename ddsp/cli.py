"""What every command line of the package shares: flags defined once, quiet library logging, the absl app.

A command's module is its flags and a `main` calling into a library function. Importing it defines no
flags (so a program can import a command's module without clashing flags); `run` defines them and starts.
"""
import functools
import logging as std_logging
import os

from absl import app
from absl import logging


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
  """Drops INFO (and lower) records that TensorFlow's, gin's and Beam's own modules send through absl logging."""

  def filter(self, record):
    path = record.pathname.replace(os.sep, '/')
    return record.levelno >= std_logging.WARNING or not any(
        part in path for part in ('/tensorflow/', '/gin/', '/apache_beam/'))


def quiet_library_logging(level=std_logging.WARNING):
  """Hides TensorFlow's, gin's and Beam's own INFO messages (checkpoint sharding, SavedModel fingerprints,
  converter passes, ...), which would bury a command's progress bar and result lines."""
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  std_logging.getLogger('tensorflow').setLevel(level)
  for logger in (std_logging.getLogger(), std_logging.getLogger('absl')):
    if not any(isinstance(f, _DropLibraryInfo) for f in logger.filters):
      logger.addFilter(_DropLibraryInfo())


def run(main, define_flags=None, flags_parser=None, verbosity=None):
  """Quiets library logging, defines the command's flags and runs `main` under absl.

  Args:
    main: `main(argv)`.
    define_flags: the command's flag definitions (called once), or None.
    flags_parser: optional absl flags parser (e.g. one that keeps Beam's pipeline options).
    verbosity: optional absl logging level for the command's own log lines (e.g. `logging.WARNING`).
  """
  quiet_library_logging()
  if verbosity is not None:
    logging.set_verbosity(verbosity)
  if define_flags is not None:
    define_flags()
  if flags_parser is not None:
    app.run(main, flags_parser=flags_parser)
  else:
    app.run(main)
