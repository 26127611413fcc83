"""Small real-instrument recordings bundled with the package, for tests, demos and quick experiments.

The files live in `ddsp/assets/` (plain package data, not a Python package): mono 16 kHz 16-bit FLAC
rendered with FluidSynth from the FluidR3_GM SoundFont (MIT licence); `ddsp/assets/README.md` lists
them and how they were made (`scripts/render_assets.py`).

Usage:
  import soundfile as sf
  from ddsp import bundled
  audio, sample_rate = sf.read(bundled.asset_path('violin_phrase.flac'), dtype='float32')
  # audio: [n_samples] mono float32; add a batch axis for the library: audio[None, :] -> [1, n_samples].
"""
import os

ASSETS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'assets')
AUDIO_EXTENSIONS = ('.flac', '.wav')


def list_assets():
  """Returns the sorted file names (not paths) of the bundled audio files, e.g. 'violin_phrase.flac'.

  Only audio files (.flac, .wav) are listed; an empty list if the assets folder is missing.
  """
  if not os.path.isdir(ASSETS_DIR):
    return []
  return sorted(f for f in os.listdir(ASSETS_DIR)
                if f.lower().endswith(AUDIO_EXTENSIONS) and
                os.path.isfile(os.path.join(ASSETS_DIR, f)))


def asset_path(name):
  """Returns the absolute path of the bundled audio file `name`.

  Args:
    name: a file name from `list_assets()`, e.g. 'violin_note_A4_69.flac'; the '.flac' extension may
      be left out ('violin_note_A4_69').

  Returns:
    The absolute path, as a str.

  Raises:
    TypeError: `name` is not a string.
    ValueError: `name` is empty or contains a directory part.
    FileNotFoundError: no such asset; the message lists the available ones.
  """
  if not isinstance(name, str):
    raise TypeError('Asset name must be a str, got %s.' % type(name).__name__)
  if not name or os.path.basename(name) != name or name in ('.', '..') or '/' in name:
    raise ValueError('Asset name must be a plain file name such as "violin_phrase.flac", got %r.'
                     % name)
  available = list_assets()
  candidates = [name] if name.lower().endswith(AUDIO_EXTENSIONS) else [name, name + '.flac']
  for candidate in candidates:
    if candidate in available:
      return os.path.join(ASSETS_DIR, candidate)
  raise FileNotFoundError('No bundled asset %r in %s. Available: %s.' % (
      name, ASSETS_DIR, ', '.join(available) if available else '(none)'))
