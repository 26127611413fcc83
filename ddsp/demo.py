r"""`make demo`: fit a Harmonic + FilteredNoise synthesizer to a bundled real instrument note.

Writes, under --output_dir: `target.wav` (the recording), `fit.wav` (the synthesizer after fitting), `fit.png`
(both spectrograms and the loss curve) and `fit_report.json` (loss before/after, steps, seconds).

  python -m ddsp.demo --output_dir=demo_out [--audio=path.wav --f0_hz=440 --n_steps=300]
"""
import os
import re
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import flags  # pylint: disable=g-import-not-at-top
import numpy as np

from ddsp import validation

# The accepted values of the numeric flags (stated in each flag's help; checked before any work). The f0 must
# lie below the Nyquist frequency of the 16 kHz synthesizer.
RANGES = {
    'f0_hz': validation.Range(validation.MIN_AUDIBLE_HZ, 8000, 'Hz', high_open=True),
    'seconds': validation.Range(0, 600, 's', low_open=True),
    'n_steps': validation.Range(1, 10**6, 'steps'),
    'learning_rate': validation.Range(0, 10, low_open=True),
}

flags.DEFINE_string('output_dir', 'demo_out', 'Where the WAVs, PNG and JSON go.')
flags.DEFINE_string('audio', None, 'Audio file to fit (default: the bundled violin A4 note).')
flags.DEFINE_float('f0_hz', None, RANGES['f0_hz'].help('Fundamental of the note in Hz (default: from the bundled '
                   'file name, or CREPE).'))
flags.DEFINE_float('seconds', 1.5, RANGES['seconds'].help('Seconds of audio to fit (from the start).'))
flags.DEFINE_integer('n_steps', 300, RANGES['n_steps'].help('Adam steps.'))
flags.DEFINE_float('learning_rate', 0.1, RANGES['learning_rate'].help('Adam learning rate.'))
FLAGS = flags.FLAGS

SAMPLE_RATE = 16000
FRAME_RATE = 250
DEFAULT_ASSET = 'violin_note_A4_69.flac'


def asset_dir():
  return os.path.join(os.path.dirname(os.path.abspath(__file__)), 'assets')


def load_mono(path, sample_rate=SAMPLE_RATE):
  """Reads any soundfile-readable file as mono float32 at `sample_rate` (soxr resampling)."""
  import soundfile as sf  # pylint: disable=g-import-not-at-top
  try:
    audio, rate = sf.read(path, dtype='float32', always_2d=True)
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f'Cannot read audio file {path!r}: {e}') from e
  if audio.size == 0:
    raise ValueError(f'Audio file {path!r} is empty.')
  audio = audio.mean(axis=1)
  if not np.all(np.isfinite(audio)):
    raise ValueError(f'Audio file {path!r} contains NaN or Inf samples.')
  if rate != sample_rate:
    import soxr  # pylint: disable=g-import-not-at-top
    audio = soxr.resample(audio, rate, sample_rate, quality='HQ').astype(np.float32)
  return audio


def midi_from_name(path):
  """MIDI pitch encoded in a bundled note's file name (`*_note_<name>_<midi>.flac`), or None."""
  match = re.search(r'_note_[A-Ga-g][#b]?\d_(\d+)\.', os.path.basename(path))
  return int(match.group(1)) if match else None


def plot_fit(target, fitted, losses, path, sample_rate=SAMPLE_RATE):
  """PNG with the target and fitted log-spectrograms and the loss curve."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  from ddsp import file_utils  # pylint: disable=g-import-not-at-top

  fig, axes = plt.subplots(3, 1, figsize=(9, 9))
  for ax, audio, title in ((axes[0], target, 'target (recording)'), (axes[1], fitted, 'synthesizer after fitting')):
    ax.specgram(audio, NFFT=1024, Fs=sample_rate, noverlap=768, cmap='magma', vmin=-130, vmax=-10)
    ax.set_title(title)
    ax.set_ylabel('Hz')
  axes[1].set_xlabel('seconds')
  axes[2].plot(losses)
  axes[2].set_yscale('log')
  axes[2].set_title('multi-scale spectral loss')
  axes[2].set_xlabel('step')
  fig.tight_layout()
  file_utils.save_figure(fig, path)
  plt.close(fig)


def run(output_dir, audio_path=None, f0_hz=None, seconds=1.5, n_steps=300, learning_rate=0.1):
  """Runs the fit demo; returns the report dict."""
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  from ddsp import core, file_utils, fitting  # pylint: disable=g-import-not-at-top

  audio_path = audio_path or os.path.join(asset_dir(), DEFAULT_ASSET)
  target = load_mono(audio_path)
  hop = SAMPLE_RATE // FRAME_RATE
  n = min(len(target), int(seconds * SAMPLE_RATE)) // hop * hop
  if n == 0:
    raise ValueError(f'{audio_path!r} is shorter than one frame ({hop} samples).')
  target = target[:n]
  if f0_hz is None:
    midi = midi_from_name(audio_path)
    if midi is not None:
      f0_hz = float(core.midi_to_hz(float(midi)))
    else:
      from ddsp import spectral_ops  # pylint: disable=g-import-not-at-top
      f0_curve, confidence = spectral_ops.compute_f0(target, SAMPLE_RATE, FRAME_RATE)
      f0_hz = np.where(confidence > 0.5, f0_curve, 0.0)[:n // hop]
  print(f'Fitting {os.path.basename(audio_path)} ({n / SAMPLE_RATE:.2f} s) with f0 '
        f'{f0_hz if np.isscalar(f0_hz) else "from CREPE"} Hz, {n_steps} steps...')

  start = time.time()
  with tqdm(total=n_steps, unit='step') as bar:
    def callback(_, value):
      bar.set_postfix(loss=f'{value:.3f}')
      bar.update(1)
    result = fitting.fit_harmonic_plus_noise(target, f0_hz, SAMPLE_RATE, FRAME_RATE, n_steps=n_steps,
                                             learning_rate=learning_rate, callback=callback)
  seconds_taken = time.time() - start

  os.makedirs(output_dir, exist_ok=True)
  paths = {name: os.path.join(output_dir, name) for name in ('target.wav', 'fit.wav', 'fit.png', 'fit_report.json')}
  file_utils.write_wav(paths['target.wav'], target, SAMPLE_RATE)
  file_utils.write_wav(paths['fit.wav'], result.audio, SAMPLE_RATE)
  plot_fit(target, result.audio, result.losses, paths['fit.png'])
  report = {
      'audio': audio_path, 'seconds_of_audio': n / SAMPLE_RATE, 'n_steps': n_steps,
      'initial_loss': float(result.losses[0]), 'final_loss': float(result.losses[-1]),
      'loss_reduction': float(1.0 - result.losses[-1] / result.losses[0]), 'wall_seconds': seconds_taken,
  }
  file_utils.write_json(paths['fit_report.json'], report)
  print(f'Spectral loss {report["initial_loss"]:.2f} -> {report["final_loss"]:.2f} '
        f'({100 * report["loss_reduction"]:.0f}% lower) in {seconds_taken:.1f} s.')
  for path in paths.values():
    print('  wrote', os.path.abspath(path))
  return report


def main(argv):
  del argv
  validation.check_flags(FLAGS, RANGES)
  try:
    run(FLAGS.output_dir, FLAGS.audio, FLAGS.f0_hz, FLAGS.seconds, FLAGS.n_steps, FLAGS.learning_rate)
  except ValueError as e:  # unreadable, empty, non-finite or too short audio: one line, exit status 1
    from ddsp import cli
    cli.fail('ddsp_fit_demo', e, 1)


def console_entry_point():
  from ddsp import cli  # pylint: disable=g-import-not-at-top
  cli.run(main)


if __name__ == '__main__':
  console_entry_point()
