"""Locating the bundled gin experiment files.

The repository's `gin/` folder installs as the package data `ddsp.gin_configs`. `gin_dir()` finds it (installed
or in a source checkout) and `resolve_gin_file(name)` turns a user's `--gin_file` value into a path:
  * an existing file path (absolute, or relative to the working directory) is used as is;
  * a path relative to the gin folder, with or without `.gin` ('papers/iclr2020/solo_instrument.gin',
    'models/tiny');
  * a bare name ('solo_instrument', 'tiny_instrument.gin'), searched in the gin folder; when several files
    share the name, experiment files under `papers/` win, then `recipes/`, then `models/`, then the shortest path.

It also holds the two gin helpers that derive every length of an experiment from its rates (gin has no
arithmetic): `secs_to_samples` and `secs_to_frames`. The model files bind three macros, `sample_rate`,
`frame_rate` and `example_secs`, and derive the rest from them (see `gin/models/ae.gin`):

    n_samples = @example/secs_to_samples()       # example_secs * sample_rate
    time_steps = @example/secs_to_frames()       # example_secs * frame_rate
    example/secs_to_samples.secs = %example_secs
    example/secs_to_frames.secs = %example_secs
    secs_to_samples.sample_rate = %sample_rate
    secs_to_frames.frame_rate = %frame_rate

so an experiment at another rate is one or two bindings (`sample_rate = 48000`, `frame_rate = 50`).
"""
import copy
import difflib
import importlib.resources
import logging
import os

import gin

PREFERRED_FOLDERS = ('papers', 'recipes', 'models')


def _whole(secs, rate, what):
  try:
    secs, rate = float(secs), float(rate)
  except (TypeError, ValueError):
    raise ValueError(f'{what}: seconds and rate must be numbers, got {secs!r} and {rate!r}.') from None
  if not (secs > 0 and rate > 0):
    raise ValueError(f'{what}: seconds and rate must be positive, got {secs:g} s at {rate:g} Hz.')
  value = secs * rate
  if abs(value - round(value)) > 1e-6 * max(1.0, value):
    raise ValueError(f'{what}: {secs:g} s at {rate:g} Hz is {value:g}, not a whole number.')
  return int(round(value))


@gin.configurable
def secs_to_samples(secs=gin.REQUIRED, sample_rate=gin.REQUIRED):
  """`secs * sample_rate` as an int (a length in samples); a ValueError when it is not a whole number."""
  return _whole(secs, sample_rate, 'secs_to_samples')


@gin.configurable
def secs_to_frames(secs=gin.REQUIRED, frame_rate=gin.REQUIRED):
  """`secs * frame_rate` as an int (a length in frames); a ValueError when it is not a whole number."""
  return _whole(secs, frame_rate, 'secs_to_frames')


def bound_value(name):
  """The value bound to `name` (a macro such as '%n_samples' or a parameter such as 'Reverb.reverb_length')
  with every configurable reference in it evaluated: `gin.query_parameter('%n_samples')` returns the
  unevaluated `@example/secs_to_samples()`, this returns 64000. Raises gin's ValueError when unbound."""
  return copy.deepcopy(gin.query_parameter(name))  # deepcopy calls the `@...()` references (gin's contract)


def _looks_like_gin_dir(path):
  return bool(path) and os.path.isdir(path) and os.path.isdir(os.path.join(path, 'models'))


def gin_dir():
  """Absolute path of the bundled gin folder (`ddsp.gin_configs`, or `<repo>/gin` in a source checkout).

  Raises:
    FileNotFoundError: when neither exists.
  """
  candidates = []
  try:
    resource = importlib.resources.files('ddsp.gin_configs')
    candidates.append(os.fspath(resource))
  except (ModuleNotFoundError, TypeError, ValueError):
    pass
  here = os.path.dirname(os.path.abspath(__file__))
  candidates.append(os.path.join(os.path.dirname(here), 'gin'))  # source checkout: <repo>/training/..
  candidates.append(os.path.join(os.path.dirname(here), 'gin_configs'))  # installed: ddsp/training/..
  for path in candidates:
    if _looks_like_gin_dir(path):
      return os.path.abspath(path)
  raise FileNotFoundError(f'Cannot find the bundled gin configs; looked in {candidates}. Reinstall the package '
                          '(`pip install -e .`) or pass gin files by path.')


def list_gin_files(root=None):
  """All `.gin` files under the gin folder, as sorted paths relative to it (with '/' separators)."""
  root = root or gin_dir()
  found = []
  for dirpath, _, filenames in os.walk(root):
    for f in filenames:
      if f.endswith('.gin'):
        found.append(os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, '/'))
  return sorted(found)


def _preference(relpath):
  top = relpath.split('/')[0]
  rank = PREFERRED_FOLDERS.index(top) if top in PREFERRED_FOLDERS else len(PREFERRED_FOLDERS)
  return (rank, relpath.count('/'), len(relpath), relpath)


def resolve_gin_file(name, root=None):
  """Path of the gin file that `name` refers to (see the module docstring for the accepted forms).

  Args:
    name: a file path, a path relative to the gin folder, or a bare config name.
    root: the gin folder to search (default `gin_dir()`).

  Returns:
    An absolute path to an existing `.gin` file.

  Raises:
    FileNotFoundError: with the closest matching names when nothing matches.
  """
  if not name or not str(name).strip():
    raise FileNotFoundError('Empty gin file name.')
  name = os.path.expanduser(str(name).strip())
  if os.path.isfile(name):
    return os.path.abspath(name)
  root = root or gin_dir()
  rel = name.replace(os.sep, '/').lstrip('/')
  with_ext = rel if rel.endswith('.gin') else rel + '.gin'
  for candidate in (rel, with_ext):
    path = os.path.join(root, candidate)
    if os.path.isfile(path):
      return os.path.abspath(path)
  available = list_gin_files(root)
  base = os.path.basename(with_ext)
  same_name = [f for f in available if f.endswith('/' + with_ext) or os.path.basename(f) == base and '/' not in rel]
  if same_name:
    return os.path.abspath(os.path.join(root, sorted(same_name, key=_preference)[0]))
  stems = {f[:-4]: f for f in available}
  stems.update({os.path.basename(f)[:-4]: f for f in available})
  query = with_ext[:-4]
  close = difflib.get_close_matches(query, list(stems), n=5, cutoff=0.5)
  close += [s for s in stems if os.path.basename(query) in s]
  close_files = sorted({stems[c] for c in close}, key=_preference)[:8]
  hint = f' Close matches: {close_files}.' if close_files else f' Available: {available}.'
  raise FileNotFoundError(f'No gin file {name!r} as a path or in {root}.{hint}')


class _GinProbeFilter(logging.Filter):
  """Drops gin's 'Path not found' errors, logged while it probes search paths for an `include` that a later
  search path (e.g. the bundled folder) does provide. A file found nowhere still raises an IOError."""

  def filter(self, record):
    return not (record.pathname.endswith('resource_reader.py') and str(record.msg).startswith('Path not found'))


def add_search_path(path=None):
  """Adds the bundled gin folder (or `path`) to gin's include search path, once. Returns the path."""
  root_logger = logging.getLogger()
  if not any(isinstance(f, _GinProbeFilter) for f in root_logger.filters):
    root_logger.addFilter(_GinProbeFilter())
  path = os.path.abspath(path or gin_dir())
  try:
    from gin import config as gin_config
    known = list(getattr(gin_config, '_LOCATION_PREFIXES', []))
  except ImportError:
    known = []
  if path not in known:
    gin.add_config_file_search_path(path)
  return path
