"""Checks of what a user gives a command, before any work: numbers, choices, and pitch controls.

Every command line of the package declares the accepted range of each numeric flag once, as a `Range`, uses
`Range.help` to state it in the flag's help text and `check_flags` at the start of `main` (before any model
or data loads). A refused value raises `ValidationError`, a `ValueError` whose message names the flag, the
value and what is accepted; `ddsp.cli.run` prints it as one line `<command>: error: ...` and exits with
status 2.

    PITCH = Range(-96, 96, 'semitones')
    flags.DEFINE_float('pitch_shift', 0.0, PITCH.help('Pitch shift in semitones.'))
    PITCH.check('--pitch_shift', 1000.0)
    # ValidationError: --pitch_shift=1000 is outside the accepted range [-96, 96] semitones.

`check_audible_pitch` is the check of the pitch controls themselves (shift, range scaling, a user f0 curve):
it refuses an f0 curve whose every voiced frame lies at or above the Nyquist frequency (the output would be
digital silence) or below 20 Hz (inaudible).
"""
import dataclasses
import math

import numpy as np

# The lowest fundamental a listener hears as a pitch; a whole output below it is refused.
MIN_AUDIBLE_HZ = 20.0


class ValidationError(ValueError):
  """A value given by the user is refused; the message names it, the value and what is accepted."""


class InputError(ValueError):
  """A recording, curve or file given by the user cannot be used (unreadable, silent, malformed)."""


def format_number(value):
  """A number as a user typed it: `1000` for 1000.0, `0.25`, `nan`, `inf`, `1e+30`."""
  try:
    value = float(value)
  except (TypeError, ValueError):
    return repr(value)
  if math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
    return str(int(value))
  return f'{value:g}'


@dataclasses.dataclass(frozen=True)
class Range:
  """The accepted values of a numeric flag.

  Attributes:
    low: the lowest value (None: no lower bound).
    high: the highest value (None: no upper bound).
    unit: appended to the range in messages and help ('semitones', 'dB', 'Hz', ...).
    low_open: `low` itself is refused (an open interval, e.g. `(0, 1]`).
    high_open: `high` itself is refused.
  """
  low: float = None
  high: float = None
  unit: str = ''
  low_open: bool = False
  high_open: bool = False

  def text(self):
    """The range as written in help and messages: `[-96, 96] semitones`, `(0, 1]`, `>= 0 steps`."""
    if self.low is not None and self.high is not None:
      text = (f"{'(' if self.low_open else '['}{format_number(self.low)}, {format_number(self.high)}"
              f"{')' if self.high_open else ']'}")
    elif self.low is not None:
      text = f"{'>' if self.low_open else '>='} {format_number(self.low)}"
    elif self.high is not None:
      text = f"{'<' if self.high_open else '<='} {format_number(self.high)}"
    else:
      text = 'any finite number'
    return f'{text} {self.unit}' if self.unit else text

  def help(self, text):
    """A flag's help text with the accepted range appended."""
    return f'{text.rstrip()} Range: {self.text()}.'

  def contains(self, value):
    """Whether `value` (a finite number) is in the range."""
    if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
      return False
    if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
      return False
    return True

  def check(self, name, value):
    """Returns `value` if it is a finite number in the range; None passes (an unset optional flag).

    Args:
      name: how the user gave the value, e.g. '--pitch_shift'.
      value: the value.

    Raises:
      ValidationError: naming `name`, the value and the range.
    """
    if value is None:
      return None
    try:
      number = float(value)
    except (TypeError, ValueError):
      raise ValidationError(f'{name}={value!r} is not a number (accepted range {self.text()}).') from None
    if not math.isfinite(number):
      raise ValidationError(f'{name}={format_number(number)} is not a finite number (accepted range '
                            f'{self.text()}).')
    if not self.contains(number):
      raise ValidationError(f'{name}={format_number(number)} is outside the accepted range {self.text()}.')
    return value


# The accepted values of the user's controls of timbre transfer (`ddsp.training.features.adjust_features`
# arguments), shared by its front ends (`ddsp_transfer` flags, the studio's form), which check them before
# any work.
TRANSFER_CONTROL_RANGES = {
    'pitch_shift': Range(-96, 96, 'semitones'),
    'loudness_shift': Range(-120, 120, 'dB'),
    'f0_range_scale': Range(0, 10),
    'loudness_range_scale': Range(0, 10),
    'confidence_threshold': Range(0, 1),
    'unvoiced_loudness_db': Range(-200, 0, 'dB'),
    'max_gap_frames': Range(0, 100000, 'frames'),
    'interpolation': Range(0, 1),
}


def check_flags(flag_values, ranges, choices=None):
  """Checks the flags named in `ranges` ({flag name: Range}) and `choices` ({flag name: accepted values}).

  Args:
    flag_values: parsed absl flag values.
    ranges: {flag name: Range} of the numeric flags.
    choices: optional {flag name: sequence of accepted values} of the flags that take one of a few words.

  Raises:
    ValidationError: for the first flag whose value is outside its range (unset flags, None, pass) or not
      one of its choices.
  """
  for name, accepted in ranges.items():
    accepted.check(f'--{name}', getattr(flag_values, name))
  for name, accepted in (choices or {}).items():
    check_choice(f'--{name}', getattr(flag_values, name), accepted)


def check_choice(name, value, choices):
  """Returns `value` if it is one of `choices`; raises `ValidationError` naming `name`, the value and them."""
  if value not in tuple(choices):
    raise ValidationError(f'{name}={value!r} is not one of {", ".join(str(c) for c in choices)}.')
  return value


def parse_optional_number(name, text, accepted=None, none_words=('none', 'off', '')):
  """A flag that takes a number or a word meaning "none" (e.g. `--crepe_frame_rate=none`).

  Args:
    name: the flag as the user gave it ('--crepe_frame_rate').
    text: its value (a string, a number or None).
    accepted: optional `Range` of the number.
    none_words: the (lower-case) words that mean None.

  Returns:
    None or the float.

  Raises:
    ValidationError: not a number nor a none word, or outside `accepted`.
  """
  if text is None or str(text).strip().lower() in none_words:
    return None
  try:
    value = float(text)
  except (TypeError, ValueError):
    raise ValidationError(f"{name}={text!r} must be a number or 'none'.") from None
  if accepted is not None:
    accepted.check(name, value)
  elif not math.isfinite(value):
    raise ValidationError(f'{name}={format_number(value)} is not a finite number.')
  return value


def check_audible_pitch(f0_hz, voiced, sample_rate, controls='the pitch controls'):
  """Refuses pitch controls that put the whole output above the Nyquist frequency or below 20 Hz.

  A harmonic synthesizer drops every harmonic at or above Nyquist, so an f0 curve whose every voiced frame
  is there renders digital silence; one whose every voiced frame is below 20 Hz renders no audible pitch.
  Curves partly outside are fine (extrapolation): only the whole output is judged.

  Args:
    f0_hz: the f0 curve fed to the model `[n_frames]` (Hz; <= 0 is unvoiced).
    voiced: bool `[n_frames]`, the frames that sound (None: every frame with f0 > 0).
    sample_rate: the model's sample rate (Hz).
    controls: what set the pitch, for the message (e.g. 'pitch_shift +60 semitones').

  Raises:
    ValidationError: naming the controls, the limit and the f0 the controls produced.
  """
  f0 = np.asarray(f0_hz, np.float64).reshape(-1)
  sounding = f0 > 0
  if voiced is not None:
    sounding &= np.asarray(voiced, bool).reshape(-1)
  if not sounding.any():
    return
  f0 = f0[sounding]
  nyquist = float(sample_rate) / 2.0
  if np.all(f0 >= nyquist):
    raise ValidationError(
        f'{controls} put every voiced frame at or above the Nyquist frequency of the {format_number(sample_rate)} '
        f'Hz model ({format_number(nyquist)} Hz; lowest f0 {float(f0.min()):.0f} Hz): the output would be '
        'silent. Lower the pitch.')
  if np.all(f0 < MIN_AUDIBLE_HZ):
    raise ValidationError(
        f'{controls} put every voiced frame below {format_number(MIN_AUDIBLE_HZ)} Hz (highest f0 '
        f'{float(f0.max()):.2f} Hz): the output would have no audible pitch. Raise the pitch.')


def check_crepe_installed(name, capacity):
  """Refuses a CREPE capacity whose weights package is not installed (before any audio is analysed).

  Raises:
    ValidationError: naming the flag, the capacity and the package to install.
  """
  from ddsp import crepe  # TensorFlow; only when a command asks
  try:
    crepe.weights_path(capacity)
  except ValueError as e:
    raise ValidationError(f'{name}={capacity!r}: {e}') from None
  return capacity
