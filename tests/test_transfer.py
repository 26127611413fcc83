"""End-to-end tests of the `ddsp_transfer` command line, in subprocesses.

A tiny model is trained for two steps with `ddsp_run`; the CLI then timbre-transfers the bundled voice-like
phrase (written as a 22.05 kHz stereo file, so the conversion note shows), exports the learned impulse
response, applies it to another recording, and fails cleanly (one line, exit code 1) on bad input.
"""
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.signal
import soundfile as sf

from ddsp import bundled
from ddsp import spectral_ops

import helpers

SR = 16000
TINY_FILES = helpers.TINY_FILES
TINY_PARAMS = helpers.tiny_params(n_examples=8, batch_size=2)


@pytest.fixture(scope='module')
def trained_dir(tmp_path_factory):
  return helpers.train_tiny(str(tmp_path_factory.mktemp('transfer') / 'run'), TINY_PARAMS)


def _cli(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', KERAS_BACKEND='tensorflow')
  return subprocess.run([sys.executable, '-m', 'ddsp.training.transfer'] + list(args), capture_output=True,
                        text=True, env=env, timeout=240)


def test_cli_timbre_transfer_writes_wav_png_and_ir(trained_dir, tmp_path):
  voice, rate = sf.read(bundled.asset_path('voice_like_phrase'), dtype='float32')
  voice = voice[:3 * rate]
  import soxr
  voice_22k = soxr.resample(voice, rate, 22050)
  source = str(tmp_path / 'voice_stereo.wav')
  sf.write(source, np.stack([voice_22k, voice_22k], axis=1), 22050, subtype='FLOAT')
  out = str(tmp_path / 'out' / 'voice_as_model.wav')
  ir_path = str(tmp_path / 'out' / 'ir.wav')
  proc = _cli(f'--model_dir={trained_dir}', f'--input={source}', f'--output={out}', '--pitch_shift=-12',
              '--loudness_shift=-3', '--no_reverb', f'--export_ir={ir_path}', '--crepe_frame_rate=100')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'channels downmixed to mono' in proc.stderr and '22050 Hz to 16000 Hz' in proc.stderr
  assert 'pitch shift -12 semitones' in proc.stdout and 'wrote' in proc.stdout
  audio, out_rate = sf.read(out, dtype='float32')
  assert out_rate == SR and audio.shape == (3 * SR,) and np.abs(audio).max() > 1e-3
  png = os.path.splitext(out)[0] + '.png'
  with open(png, 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  # The output follows the input's pitch an octave down (CREPE on both, where both are confidently pitched).
  f0_in, c_in = spectral_ops.compute_f0(voice, SR, 250, crepe_frame_rate=100)
  f0_out, c_out = spectral_ops.compute_f0(audio, SR, 250, crepe_frame_rate=100)
  frames = (c_in > 0.5) & (c_out > 0.5)
  assert frames.sum() > 300
  cents = 1200.0 * np.log2(f0_out[frames] / f0_in[frames])
  assert abs(np.median(cents) + 1200.0) < 25.0
  ir, ir_rate = sf.read(ir_path, dtype='float32')
  assert ir_rate == SR and ir.shape == (800,) and ir[0] == 0.0

  # Acoustic transfer of another recording through the exported room.
  violin_path = bundled.asset_path('violin_note_A4_69')
  wet_path = str(tmp_path / 'out' / 'violin_room.wav')
  proc = _cli(f'--model_dir={trained_dir}', f'--input={violin_path}', f'--output={wet_path}',
              '--acoustic_transfer')
  assert proc.returncode == 0, proc.stderr[-3000:]
  violin, _ = sf.read(violin_path, dtype='float64')
  wet, _ = sf.read(wet_path, dtype='float64')
  expected = violin + scipy.signal.fftconvolve(violin, ir.astype(np.float64))[:violin.size]
  np.testing.assert_allclose(wet, np.clip(expected, -1, 1), atol=2.0 / 32767)
  assert os.path.isfile(os.path.splitext(wet_path)[0] + '.png')


def test_cli_errors_are_one_line_with_exit_code_1(trained_dir, tmp_path):
  silent = str(tmp_path / 'silent.wav')
  sf.write(silent, np.zeros(8000, np.float32), SR)
  proc = _cli(f'--model_dir={trained_dir}', f'--input={silent}', f'--output={tmp_path / "o.wav"}')
  assert proc.returncode == 1
  errors = [line for line in proc.stderr.splitlines() if line.startswith('ddsp_transfer: error:')]
  assert len(errors) == 1 and 'silent' in errors[0], proc.stderr[-2000:]
  assert not os.path.exists(tmp_path / 'o.wav')

  missing = str(tmp_path / 'no_model')
  proc = _cli(f'--model_dir={missing}', f'--input={silent}', f'--output={tmp_path / "o.wav"}')
  assert proc.returncode == 1
  assert f"ddsp_transfer: error: Model folder '{missing}' does not exist." in proc.stderr


def test_cli_reports_incompatible_checkpoint_and_unpitched_input(trained_dir, tmp_path):
  noise = str(tmp_path / 'noise.flac')
  sf.write(noise, np.random.default_rng(0).uniform(-0.5, 0.5, 8000).astype(np.float32), SR)
  proc = _cli(f'--model_dir={trained_dir}', f'--input={noise}', f'--output={tmp_path / "o.wav"}',
              '--confidence_threshold=0.9', '--crepe_frame_rate=100')
  assert proc.returncode == 1 and 'ddsp_transfer: error: No voiced frames' in proc.stderr, proc.stderr[-2000:]
  proc = _cli(f'--model_dir={trained_dir}', f'--input={noise}', f'--output={tmp_path / "o.wav"}',
              '--gin_param=RnnFcDecoder.rnn_channels = 8')
  assert proc.returncode == 1
  assert 'ddsp_transfer: error: Checkpoint' in proc.stderr and 'does not match' in proc.stderr
  assert not os.path.exists(tmp_path / 'o.wav')


def test_cli_refuses_an_output_that_is_an_input(trained_dir, tmp_path, monkeypatch):
  take = tmp_path / 'take.wav'
  t = np.arange(SR) / SR
  sf.write(str(take), (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), SR)
  link = tmp_path / 'link.wav'
  os.symlink(take, link)
  before = take.read_bytes()
  monkeypatch.chdir(tmp_path)  # './take.wav' and the symlink both name the input
  for output in (str(take), './take.wav', str(link)):
    proc = _cli(f'--model_dir={trained_dir}', f'--input={take}', f'--output={output}')
    assert proc.returncode == 1, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith('ddsp_transfer: error:')]
    assert len(errors) == 1 and '--output' in errors[0] and 'is --input' in errors[0], proc.stderr[-2000:]
    assert take.read_bytes() == before
  # A curve file is an input too; the figure beside the output must not replace it.
  curve = tmp_path / 'out.png'
  curve.write_bytes(b'not really a png')
  proc = _cli(f'--model_dir={trained_dir}', f'--input={take}', f'--output={tmp_path / "out.wav"}',
              f'--f0_curve={curve}')
  assert proc.returncode == 1 and 'the figure beside --output' in proc.stderr, proc.stderr[-2000:]
  assert not (tmp_path / 'out.wav').exists()


def test_result_curves_draw_f0_on_voiced_frames_only():
  import types
  from ddsp.training import resynthesis
  f0_in = np.array([1990.0, 220.0, 221.0, 0.0, 1500.0, 330.0])    # CREPE's guesses on silence at 0 and 4
  voiced = np.array([False, True, True, False, False, True])
  result = types.SimpleNamespace(
      features_input={'f0_hz': f0_in, 'loudness_db': np.full(6, -30.0)},
      features={'f0_hz': 2.0 * f0_in, 'loudness_db': np.full(6, -33.0), 'voiced': voiced})
  f0_curves, ld_curves = resynthesis.result_curves(result)
  for curve, scale in zip(f0_curves.values(), (1.0, 2.0)):
    np.testing.assert_array_equal(np.isnan(curve), ~voiced)
    np.testing.assert_array_equal(curve[voiced], scale * f0_in[voiced])
  np.testing.assert_array_equal(list(ld_curves.values())[1], np.full(6, -33.0))
