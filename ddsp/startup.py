"""Quiet start-up for the package's command lines: TensorFlow's native start-up logs are held back.

Importing TensorFlow and finding its devices prints lines from C++ straight to file descriptor 2 ("Could not
find cuda drivers", "failed call to cuInit: UNKNOWN ERROR", CPU instruction notes, oneDNN notes); some come
before TensorFlow reads `TF_CPP_MIN_LOG_LEVEL`, so that variable alone cannot hide them. On a machine without
a GPU they read as failures. When the running program is one of the package's commands (`COMMANDS`, as a
console script or `python -m`), `quiet_native_startup` points fd 2 at a temporary file while TensorFlow loads
and probes its devices, then drops those log lines and passes every other captured line on.

Verbose mode shows everything, captured lines included, and keeps the libraries' own INFO logging: set the
environment variable `DDSP_VERBOSE=1`, or give a command `--verbosity=1` (absl's debug level) or higher.
A Python error during the import is never hidden: the captured text is replayed before the traceback.

This module imports nothing outside the standard library (it runs before TensorFlow is imported).
"""
import contextlib
import os
import re
import sys
import tempfile

# The command lines of the package: console script name -> module run by `python -m`.
COMMANDS = {
    'ddsp_run': 'ddsp.training.ddsp_run',
    'ddsp_transfer': 'ddsp.training.transfer',
    'ddsp_export': 'ddsp.training.export',
    'ddsp_stream': 'ddsp.training.stream',
    'ddsp_studio': 'ddsp.training.studio',
    'ddsp_prepare_tfrecord': 'ddsp.data_prep.prepare_tfrecord',
    'ddsp_demo': 'ddsp.training.demo',
    'ddsp_fit_demo': 'ddsp.demo',
}
VERBOSE_ENV = 'DDSP_VERBOSE'

# Native log lines: glog style ("I0000 00:00:1796382128.49 14114 cudart_stub.cc:31] ..."), TensorFlow's own
# ("2024-01-01 10:00:00.000000: I tensorflow/..."), absl's notice before its log initialisation, the
# continuation line of the CPU instruction note, and the TFLite interpreter's delegate note.
_NATIVE_LOG = re.compile(
    r'^([IWE]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [^\]]+\] '
    r'|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] '
    r'|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR'
    r'|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags'
    r'|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.$)')


def command_name(argv=None, orig_argv=None):
  """The package command this process runs (a key of `COMMANDS`), or None (a library user, a test run)."""
  argv = sys.argv if argv is None else argv
  orig_argv = getattr(sys, 'orig_argv', []) if orig_argv is None else orig_argv
  if argv:
    name = os.path.basename(argv[0])
    name = name[:-len('.exe')] if name.endswith('.exe') else name
    if name in COMMANDS:
      return name
  modules = {module: name for name, module in COMMANDS.items()}
  for i, arg in enumerate(orig_argv[:-1]):
    if arg == '-m':
      return modules.get(orig_argv[i + 1])
  return None


def _verbosity_argument(argv):
  """The value of absl's `--verbosity` / `-v` in `argv`, or None when not given."""
  value = None
  for i, arg in enumerate(argv):
    for prefix in ('--verbosity', '-v'):
      if arg.startswith(prefix + '='):
        value = arg[len(prefix) + 1:]
      elif arg == prefix and i + 1 < len(argv):
        value = argv[i + 1]
  if value is None:
    return None
  try:
    return int(value)
  except ValueError:
    return None


def verbose(argv=None, environ=None):
  """Whether the user asked for every log line: `DDSP_VERBOSE` set (not 0/false/no), or `--verbosity >= 1`."""
  environ = os.environ if environ is None else environ
  if environ.get(VERBOSE_ENV, '').strip().lower() not in ('', '0', 'false', 'no', 'off'):
    return True
  level = _verbosity_argument(list(sys.argv[1:] if argv is None else argv))
  return level is not None and level >= 1


def filter_native_logs(text):
  """The lines of `text` that are not native start-up log lines (kept in order, with their newlines)."""
  return ''.join(line for line in text.splitlines(keepends=True) if not _NATIVE_LOG.match(line))


def _probe_devices():
  """Lets TensorFlow look for its devices now (the CUDA driver probe logs 'failed call to cuInit' without a GPU).

  Only lists the physical devices: logical device configuration stays possible afterwards.
  """
  tf = sys.modules.get('tensorflow')
  if tf is not None:
    try:
      tf.config.list_physical_devices('GPU')
    except Exception:  # a device error shows again where devices are used
      pass


@contextlib.contextmanager
def quiet_native_startup(active=None, probe_devices=True):
  """Holds back TensorFlow's native start-up logs while the block (the first TensorFlow import) runs.

  Args:
    active: capture or not; default: when this process is a package command (`command_name`) that is not
      `verbose()`. Inactive, the block runs untouched (library users and tests see everything).
    probe_devices: probe TensorFlow's devices at the end of the block (False: a later block of native work
      with the same capture, e.g. the TFLite converter's log lines).

  On leaving the block normally, TensorFlow's devices are probed inside the capture, fd 2 is restored and the
  captured text is written back to it without the native log lines; if the block raises, all of it is.
  """
  if active is None:
    active = command_name() is not None and not verbose()
  if not active:
    yield
    return
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # later native INFO / WARNING lines too
  try:
    sys.stderr.flush()
    saved = os.dup(2)
  except (OSError, ValueError, AttributeError):  # no usable fd 2 (e.g. an embedded interpreter)
    yield
    return
  capture = tempfile.TemporaryFile(mode='w+b')
  failed = False
  try:
    os.dup2(capture.fileno(), 2)
    yield
    if probe_devices:
      _probe_devices()
  except BaseException:
    failed = True
    raise
  finally:
    try:
      sys.stderr.flush()
    except (OSError, ValueError):
      pass
    os.dup2(saved, 2)
    os.close(saved)
    capture.seek(0)
    text = capture.read().decode('utf-8', 'replace')
    capture.close()
    shown = text if failed else filter_native_logs(text)
    if shown:
      sys.stderr.write(shown)
      sys.stderr.flush()
