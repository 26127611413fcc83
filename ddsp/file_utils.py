"""Atomic file writing: a crash never leaves a half-written output under its final name.

The one home of every writer in the package: files (`atomic_path`, `write_bytes`, `write_text`,
`write_json`, `write_wav`, `save_figure`) and folders (`atomic_dir`). Local paths are written through a
temporary file in the same folder and `os.replace`; URLs (`gs://...`) through `tf.io.gfile` and a rename.
"""
import contextlib
import io
import json
import os
import shutil
import tempfile
import uuid

import numpy as np


@contextlib.contextmanager
def atomic_path(path, suffix=None):
  """Yields a temporary path in the same directory; renames it to `path` only if the block succeeds.

  Args:
    path: the final file path.
    suffix: suffix of the temporary file (libraries that infer the format from the name need it); default
      the final path's extension.
  """
  path = os.fspath(path)
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  suffix = os.path.splitext(path)[1] if suffix is None else suffix
  fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.tmp.', suffix=suffix,
                             dir=directory)
  os.close(fd)
  try:
    yield tmp
    # mkstemp creates the file readable by its owner only; give it the permissions a plain open() would.
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.remove(tmp)
    raise


@contextlib.contextmanager
def atomic_dir(path):
  """Yields a temporary folder beside `path`; it replaces `path` (and what was there) only if the block succeeds."""
  path = os.path.abspath(os.fspath(path))
  parent = os.path.dirname(path)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix='.' + os.path.basename(path) + '.tmp.', dir=parent)
  try:
    yield tmp
    old = None
    if os.path.exists(path):
      old = tempfile.mkdtemp(prefix='.' + os.path.basename(path) + '.old.', dir=parent)
      os.rmdir(old)
      os.rename(path, old)
    os.rename(tmp, path)
    if old:
      shutil.rmtree(old, ignore_errors=True)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise


def is_url(path):
  """Whether `path` is a URL for `tf.io.gfile` (e.g. `gs://bucket/x`) rather than a local path."""
  return '://' in os.fspath(path)


def same_file(a, b):
  """True when two local paths name the same file (after `~`, `./`, `..` and symlinks are resolved)."""
  if is_url(a) or is_url(b):
    return os.fspath(a) == os.fspath(b)
  a, b = os.path.realpath(os.path.expanduser(a)), os.path.realpath(os.path.expanduser(b))
  if a == b:
    return True
  try:
    return os.path.samefile(a, b)  # hard links
  except OSError:
    return False


def check_outputs_are_not_inputs(outputs, inputs):
  """Refuses to write over a file the command reads.

  Args:
    outputs: {description: path} of every file the command will write (None values are skipped).
    inputs: {description: path} of every file it reads (None values are skipped).

  Raises:
    ValueError: naming the output and the input it would replace.
  """
  for out_name, out_path in outputs.items():
    for in_name, in_path in inputs.items():
      if out_path and in_path and same_file(out_path, in_path):
        raise ValueError(f'{out_name} {os.fspath(out_path)!r} is {in_name} {os.fspath(in_path)!r}: writing it '
                         'would destroy the input. Choose another output path.')


def _resolved(path):
  return os.path.realpath(os.path.expanduser(os.fspath(path)))


def is_within(path, folder):
  """True when local `path` is `folder` or lies inside it (after `~`, `./`, `..` and symlinks are resolved)."""
  if is_url(path) or is_url(folder):
    path, folder = os.fspath(path).rstrip('/'), os.fspath(folder).rstrip('/')
    return path == folder or path.startswith(folder + '/')
  path, folder = _resolved(path), _resolved(folder)
  try:
    return os.path.commonpath([path, folder]) == folder
  except ValueError:  # different drives
    return False


def check_folder_holds_no_inputs(out_name, folder, inputs):
  """Refuses an output folder that is replaced as a whole when it is, or holds, something the command reads.

  Args:
    out_name: how the user gave the folder (e.g. '--output').
    folder: the output folder.
    inputs: {description: path} of the folders and files the command reads (None values are skipped).

  Raises:
    ValueError: naming the folder and the input inside it.
  """
  for in_name, in_path in inputs.items():
    if folder and in_path and is_within(in_path, folder):
      raise ValueError(f'{out_name} {os.fspath(folder)!r} holds {in_name} {os.fspath(in_path)!r}: writing it '
                       'would destroy the input. Choose another output folder.')


def write_bytes(path, data):
  """Writes bytes to `path` atomically (local paths and `tf.io.gfile` URLs); returns the path."""
  path = os.fspath(path)
  if is_url(path):
    import tensorflow as tf  # only URLs need gfile
    directory = os.path.dirname(path)
    if directory:
      tf.io.gfile.makedirs(directory)
    tmp = f'{path}.tmp-{uuid.uuid4().hex}'
    with tf.io.gfile.GFile(tmp, 'wb') as f:
      f.write(data)
    tf.io.gfile.rename(tmp, path, overwrite=True)
    return path
  with atomic_path(path) as tmp:
    with open(tmp, 'wb') as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
  return path


def write_text(path, text):
  """Writes UTF-8 text to `path` atomically; returns the path."""
  return write_bytes(path, text.encode('utf-8'))


def _umask():
  mask = os.umask(0)
  os.umask(mask)
  return mask


def write_wav(path, audio, sample_rate=16000):
  """Writes mono or `[n_samples, channels]` float audio as 16-bit PCM WAV, atomically (clipped to [-1, 1])."""
  import soundfile as sf
  audio = np.asarray(audio, np.float32)
  if audio.ndim == 2 and 1 in audio.shape:
    audio = audio.reshape(-1)
  if not np.all(np.isfinite(audio)):
    raise ValueError(f'Refusing to write {path}: the audio contains NaN or Inf.')
  buf = io.BytesIO()
  sf.write(buf, np.clip(audio, -1.0, 1.0), int(sample_rate), subtype='PCM_16', format='WAV')
  return write_bytes(path, buf.getvalue())


def write_json(path, obj, sort_keys=True, allow_nan=True):
  """Writes `obj` as indented JSON, atomically (NumPy scalars and arrays become numbers and lists); returns
  the path. `allow_nan=False` refuses NaN/Inf (strict JSON)."""
  text = json.dumps(obj, indent=2, sort_keys=sort_keys, default=json_default, allow_nan=allow_nan)
  return write_text(path, text + '\n')


def save_figure(fig, path, dpi=None, tight=True):
  """Saves a matplotlib figure as PNG, atomically (dpi: the figure's own by default); returns the path."""
  buf = io.BytesIO()
  fig.savefig(buf, dpi=dpi or fig.dpi, format='png', bbox_inches='tight' if tight else None)
  return write_bytes(path, buf.getvalue())


def json_default(x):
  """`json.dumps(default=...)` for NumPy scalars and arrays and bytes."""
  if isinstance(x, (np.floating, np.integer, np.bool_)):
    return x.item()
  if isinstance(x, np.ndarray):
    return x.tolist()
  if isinstance(x, bytes):
    return x.decode('utf-8', 'replace')
  raise TypeError(f'Not JSON serialisable: {type(x).__name__}')
