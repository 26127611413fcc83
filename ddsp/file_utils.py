"""Atomic file writing: a crash never leaves a half-written output under its final name."""
import contextlib
import json
import os
import tempfile

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


def _umask():
  mask = os.umask(0)
  os.umask(mask)
  return mask


def write_wav(path, audio, sample_rate=16000):
  """Writes mono or `[n_samples, channels]` float audio as 16-bit PCM WAV, atomically (clipped to [-1, 1])."""
  import soundfile as sf  # pylint: disable=g-import-not-at-top
  audio = np.asarray(audio, np.float32)
  if not np.all(np.isfinite(audio)):
    raise ValueError(f'Refusing to write {path}: the audio contains NaN or Inf.')
  with atomic_path(path) as tmp:
    sf.write(tmp, np.clip(audio, -1.0, 1.0), int(sample_rate), subtype='PCM_16', format='WAV')


def write_json(path, obj):
  """Writes `obj` as indented JSON, atomically."""
  with atomic_path(path) as tmp:
    with open(tmp, 'w', encoding='utf-8') as f:
      json.dump(obj, f, indent=2, sort_keys=True, default=_json_default)
      f.write('\n')


def save_figure(fig, path, dpi=100):
  """Saves a matplotlib figure as PNG, atomically."""
  with atomic_path(path) as tmp:
    fig.savefig(tmp, dpi=dpi, format='png', bbox_inches='tight')


def _json_default(x):
  if isinstance(x, (np.floating, np.integer)):
    return x.item()
  if isinstance(x, np.ndarray):
    return x.tolist()
  raise TypeError(f'Not JSON serialisable: {type(x).__name__}')
