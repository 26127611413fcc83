"""User curves: f0 or loudness given as a file (CSV/text or `.npy`) or an array, read strictly.

`read_curve` parses and checks the values (a malformed file names the file and the line, or the shape);
`load_curve` also resamples the curve to the model's frame count. Used by `ddsp.training.features`
(`adjust_features`) and the `ddsp_transfer --f0_curve / --loudness_curve` flags. Shapes: `[n]` in,
`[n_frames]` out (NumPy).
"""
import math
import os

import numpy as np

from ddsp import validation

InputError = validation.InputError

# The values a user curve may hold, per kind: (low, high, unit). f0 0 Hz marks an unvoiced frame.
CURVE_LIMITS = {'f0': (0.0, 100000.0, 'Hz'), 'loudness': (-200.0, 200.0, 'dB')}


def _curve_kind(name):
  """'f0' or 'loudness' from a curve's name ('f0 curve', 'loudness curve'), else None (no value limits)."""
  for kind in CURVE_LIMITS:
    if name.lower().startswith(kind):
      return kind
  return None


def _parse_number(text):
  """The float of a CSV field, or None when it is not a number."""
  try:
    return float(text)
  except ValueError:
    return None


def _split_fields(line, delimiter):
  return line.split() if delimiter is None else [field.strip() for field in line.split(delimiter)]


def _check_value(value, limits, where):
  """Raises InputError(where + reason) if `value` is not finite or outside `limits` (low, high, unit)."""
  if not math.isfinite(value):
    raise InputError(f'{where}: {value} is not a finite number.')
  if limits is not None:
    low, high, unit = limits
    if low == 0.0 and value < 0.0:
      raise InputError(f'{where}: {value:g} {unit} is negative (f0 must be >= 0 Hz; 0 marks an unvoiced frame).')
    if not low <= value <= high:
      raise InputError(f'{where}: {value:g} {unit} is outside [{low:g}, {high:g}] {unit}.')


def _check_values(values, limits, where):
  """Raises InputError naming `where` and the element index for the first value that fails `_check_value`."""
  for i, x in enumerate(values):
    if not math.isfinite(x) or (limits is not None and not limits[0] <= x <= limits[1]):
      _check_value(float(x), limits, f'{where}, element {i}')


def _read_csv_curve(path, name, limits):
  """The values of a CSV / text curve file, parsed strictly.

  One value per line, or rows of several columns (e.g. `time,value`) whose last column is the value;
  separated by commas, semicolons, tabs or spaces (the first data line decides). Blank lines and lines
  starting with '#' are skipped; the first line may be a header of names (no field a number) with as many
  columns as the rows. Every field of every row must be a finite number, every row must have the same
  number of columns, a first (time) column of several must increase, and values must be within `limits`.

  Raises:
    InputError: naming the file and the line.
  """
  with open(path, 'rb') as f:
    data = f.read()
  if not data.strip():
    raise InputError(f'{name} file {path!r} is empty.')
  if b'\x00' in data:
    raise InputError(f'{name} file {path!r} is not a text (CSV) file: it holds NUL bytes (a .npy curve must be '
                     'named *.npy).')
  try:
    text = data.decode('utf-8-sig')
  except UnicodeDecodeError as e:
    line = data[:e.start].count(b'\n') + 1
    raise InputError(f'{name} file {path!r}, line {line}: not UTF-8 text (byte {e.start}); is it a CSV '
                     'file?') from None
  delimiter, n_columns, header, values, last_time = False, None, None, [], None
  for number, raw in enumerate(text.splitlines(), 1):
    line = raw.strip()
    if not line or line.startswith('#'):
      continue
    where = f'{name} file {path!r}, line {number}'
    if delimiter is False:
      delimiter = next((d for d in (',', ';', '\t') if d in line), None)
    fields = _split_fields(line, delimiter)
    numbers = [_parse_number(field) for field in fields]
    if n_columns is None and header is None and not values and all(x is None for x in numbers):
      header = (number, len(fields))  # a header of column names
      continue
    if any(x is None for x in numbers):
      bad = fields[[x is None for x in numbers].index(True)]
      raise InputError(f'{where}: {bad!r} is not a number ({line[:60]!r}).')
    if n_columns is None:
      n_columns = len(fields)
      if header is not None and header[1] != n_columns:
        raise InputError(f'{name} file {path!r}, line {header[0]}: the header has {header[1]} column(s) but '
                         f'line {number} has {n_columns}.')
    elif len(fields) != n_columns:
      raise InputError(f'{where}: {len(fields)} column(s) where the rows before have {n_columns} '
                       f'({line[:60]!r}).')
    for x in numbers:
      if not math.isfinite(x):
        raise InputError(f'{where}: {x} is not a finite number.')
    if n_columns > 1:
      if last_time is not None and not numbers[0] > last_time:
        raise InputError(f'{where}: the time column does not increase ({numbers[0]:g} after {last_time:g}).')
      last_time = numbers[0]
    _check_value(numbers[-1], limits, where)
    values.append(numbers[-1])
  if not values:
    raise InputError(f'{name} file {path!r} holds no values (only a header, comments or blank lines).')
  return np.asarray(values, np.float64)


def _read_npy_curve(path, name, limits):
  """The values of a `.npy` curve: shape `[n]`, `[n, 1]` or `[1, n]` (or one value) of real numbers."""
  try:
    values = np.load(path, allow_pickle=False)
  except Exception as e:  # random bytes raise many kinds of error
    reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise InputError(f'{name} file {path!r} is not a NumPy .npy array: {reason}') from None
  if not isinstance(values, np.ndarray):
    raise InputError(f'{name} file {path!r} is an .npz archive, not one .npy array.')
  if values.dtype.kind not in 'iuf':
    raise InputError(f'{name} file {path!r} holds dtype {values.dtype} with shape {values.shape}; expected real '
                     'numbers.')
  shape = values.shape
  if values.ndim > 2 or (values.ndim == 2 and 1 not in shape):
    raise InputError(f'{name} file {path!r} has shape {shape}; expected [n] (one value per frame), [n, 1] or '
                     '[1, n].')
  values = values.astype(np.float64).reshape(-1)
  if values.size == 0:
    raise InputError(f'{name} file {path!r} has shape {shape}: no values.')
  _check_values(values, limits, f'{name} file {path!r} (shape {shape})')
  return values


def read_curve(source, name='curve'):
  """A user curve's values, parsed and checked strictly (not resampled).

  Args:
    source: a `.npy` file, a CSV/text file (see `_read_csv_curve`), or an array-like of numbers.
    name: 'f0 curve' (values in [0, 100000] Hz, 0 unvoiced), 'loudness curve' (values in [-200, 200] dB),
      or any other name (finite values); used in messages.

  Returns:
    NumPy float64 `[n]`.

  Raises:
    InputError: a missing, empty or malformed file (naming the file and the line, or the shape), or a value
      that is not finite or out of range.
  """
  limits = CURVE_LIMITS.get(_curve_kind(name))
  if isinstance(source, (str, os.PathLike)):
    path = os.fspath(source)
    if not os.path.isfile(path):
      raise InputError(f'{name} file {path!r} does not exist.')
    try:
      if path.lower().endswith('.npy'):
        return _read_npy_curve(path, name, limits)
      return _read_csv_curve(path, name, limits)
    except OSError as e:
      raise InputError(f'Cannot read {name} file {path!r}: {e}') from e
  try:
    values = np.asarray(source, np.float64).reshape(-1)
  except (TypeError, ValueError) as e:
    raise InputError(f'The {name} is not an array of numbers: {e}') from e
  if values.size == 0:
    raise InputError(f'The {name} is empty.')
  _check_values(values, limits, f'The {name}')
  return values


def load_curve(source, n_frames, name='curve'):
  """A user curve resampled (linearly, end points aligned) to `n_frames` frames.

  Args:
    source: a `.npy` file, a CSV/text file (one value per line, or `time,value` rows whose last column is
      used; a header line of column names is skipped), or an array `[n]`; parsed strictly (`read_curve`).
    n_frames: the frame count wanted.
    name: for error messages ('f0 curve' and 'loudness curve' also set the accepted values).

  Returns:
    NumPy float32 `[n_frames]`.
  """
  values = read_curve(source, name)
  if values.size == 1:
    return np.full(n_frames, values[0], np.float32)
  if values.size == n_frames:
    return values.astype(np.float32)
  src = np.linspace(0.0, 1.0, values.size)
  dst = np.linspace(0.0, 1.0, n_frames)
  return np.interp(dst, src, values).astype(np.float32)
