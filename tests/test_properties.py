"""Property-based tests (Hypothesis) of the commands' entry functions and of the readers of user files.

For random flag values and random bytes as files, every call ends in one of two ways:
  * success: exit status 0 (or a returned value) and a finite output actually written;
  * refusal: a non-zero exit status (or the reader's documented exception) with a one-line message naming the
    cause (the flag, the file), and no file written or changed.

Profiles: `ci` (the default, used by `make test`: few examples, derandomized, no example database written)
and `thorough` (many examples): `DDSP_HYPOTHESIS_PROFILE=thorough python -m pytest tests/test_properties.py`.
The in-process `ddsp_transfer` runs use the command's own `main` and one-line error wrapper on flags parsed by
absl into a private `FlagValues` (so that no flag clashes with another command's flags in the same process);
two subprocess tests check the real command lines (exit status, exactly one line on stderr, no TensorFlow
start-up noise).
"""
import contextlib
import functools
import hashlib
import io
import json
import math
import os
import subprocess
import sys
import tempfile
from unittest import mock

from hypothesis import event
from hypothesis import example
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import numpy as np
import pytest
import soundfile as sf

from ddsp import cli
from ddsp import validation
from ddsp.training import curves
from ddsp.training import features as features_lib

import helpers

_COMMON = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile('ci', max_examples=25, derandomize=True, **_COMMON)
settings.register_profile('thorough', max_examples=400, **_COMMON)
settings.load_profile(os.environ.get('DDSP_HYPOTHESIS_PROFILE', 'ci'))
# The runs that load a model and synthesise: a fraction of the profile's examples.
MODEL_EXAMPLES = max(6, settings().max_examples // 3)

SR = 16000


def _snapshot(folder):
  """{relative path: sha256} of every file under `folder`."""
  found = {}
  for root, _, files in os.walk(folder):
    for name in files:
      path = os.path.join(root, name)
      with open(path, 'rb') as f:
        found[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
  return found


def _one_line(message):
  return '\n' not in str(message).strip() and str(message).strip()


# ------------------------------------------------------------------------------------------------------------
# Readers of the files given beside the audio.
# ------------------------------------------------------------------------------------------------------------
_NUMBER_TEXT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-100000, 100000).map(str),
    st.sampled_from(['', 'nan', 'inf', '-0', '1e400', 'abc', 'f0', '0x10', '1,5', '#', ' ']))
_CSV_TEXT = st.builds(
    lambda rows, sep, header: (header + '\n' if header else '') + '\n'.join(sep.join(r) for r in rows),
    st.lists(st.lists(_NUMBER_TEXT, min_size=1, max_size=3), max_size=8),
    st.sampled_from([',', ';', '\t', ' ']),
    st.sampled_from(['', 'time,f0', 'hz', '# comment']))


def _check_curve_outcome(path, name, read):
  """`read()` either returns finite values within the kind's limits, or raises a one-line InputError naming
  the file."""
  try:
    values = read()
  except features_lib.InputError as e:
    assert path in str(e) and _one_line(e), str(e)
    return None
  assert values.ndim == 1 and values.size > 0 and np.all(np.isfinite(values))
  low, high, _ = curves.CURVE_LIMITS[name.split()[0]]
  assert np.all((values >= low) & (values <= high))
  return values


@given(content=st.one_of(st.binary(max_size=400), _CSV_TEXT.map(lambda t: t.encode('utf-8'))),
       suffix=st.sampled_from(['.csv', '.txt', '.npy']), name=st.sampled_from(['f0 curve', 'loudness curve']))
def test_curve_files_of_random_bytes(content, suffix, name):
  with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, 'curve' + suffix)
    with open(path, 'wb') as f:
      f.write(content)
    before = _snapshot(d)
    _check_curve_outcome(path, name, lambda: curves.read_curve(path, name))
    values = _check_curve_outcome(path, name, lambda: curves.load_curve(path, 37, name))
    assert values is None or values.shape == (37,)
    assert _snapshot(d) == before


@given(array=st.one_of(
    st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), max_size=20).map(np.array),
    st.builds(lambda shape, fill: np.full(shape, fill), st.lists(st.integers(0, 3), max_size=3).map(tuple),
              st.floats(-1e6, 1e6)),
    st.lists(st.text(max_size=3), min_size=1, max_size=3).map(np.array),
    st.lists(st.integers(-10, 30000), min_size=1, max_size=5).map(lambda v: np.array(v, np.int16))),
    name=st.sampled_from(['f0 curve', 'loudness curve']))
def test_npy_curves_of_random_arrays(array, name):
  with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, 'curve.npy')
    np.save(path, array)
    values = _check_curve_outcome(path, name, lambda: curves.read_curve(path, name))
    if values is not None:  # accepted: exactly the array's values, in order
      np.testing.assert_array_equal(values, np.asarray(array, np.float64).reshape(-1))


_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-1000, 1000),
              st.text(max_size=4)),
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.sampled_from(['f0_hz', 'quantiles', '0.5', 'mean_pitch_midi',
                                                                'mean_loudness_db_voiced', 'loudness_db_voiced',
                                                                'mean']), children, max_size=4)),
    max_leaves=10)


@given(content=st.one_of(st.binary(max_size=200), _JSON.map(lambda v: json.dumps(v).encode('utf-8'))))
def test_dataset_statistics_of_random_content(content):
  with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, 'dataset_statistics.json')
    with open(path, 'wb') as f:
      f.write(content)
    try:
      stats = features_lib.load_dataset_statistics(path)
    except ValueError as e:
      assert path in str(e) and _one_line(e), str(e)
      return
    assert math.isfinite(features_lib.dataset_median_midi(stats))
    assert math.isfinite(features_lib.dataset_voiced_loudness(stats))


_AUDIO_HEADERS = [b'', b'RIFF', b'RIFF\x24\x00\x00\x00WAVEfmt ', b'fLaC', b'OggS', b'ID3']


@given(header=st.sampled_from(_AUDIO_HEADERS), body=st.binary(max_size=300))
def test_audio_files_of_random_bytes(header, body):
  with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, 'take.wav')
    with open(path, 'wb') as f:
      f.write(header + body)
    before = _snapshot(d)
    try:
      audio, _ = features_lib.read_input(path, SR)
    except features_lib.InputError as e:
      assert path in str(e) and _one_line(e), str(e)
    else:
      assert audio.ndim == 1 and np.all(np.isfinite(audio))
    assert _snapshot(d) == before


@given(samples=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=1, max_size=64),
       rate=st.sampled_from([8000, 16000, 22050, 48000]))
def test_float_wav_with_random_samples(samples, rate):
  with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, 'take.wav')
    sf.write(path, np.array(samples, np.float32), rate, subtype='FLOAT')
    try:
      audio, _ = features_lib.read_input(path, SR)
    except features_lib.InputError as e:
      assert path in str(e) and _one_line(e), str(e)
    else:  # NaN or Inf samples are never passed on
      assert np.all(np.isfinite(samples)) and np.all(np.isfinite(audio))


# ------------------------------------------------------------------------------------------------------------
# The pitch and loudness controls.
# ------------------------------------------------------------------------------------------------------------
_ANY_FLOAT = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-200, 200))


@given(pitch_shift=_ANY_FLOAT, loudness_shift=_ANY_FLOAT, f0_range_scale=_ANY_FLOAT,
       confidence_threshold=st.floats(-1, 2), f0=st.floats(1, 20000), sample_rate=st.sampled_from([16000, 44100]))
# Found by the suite: a shift far down that underflowed f0 to 0 Hz (read as unvoiced, so never judged), and a
# finite loudness shift whose sum overflows to inf.
@example(pitch_shift=-1837.0, loudness_shift=0.0, f0_range_scale=0.0, confidence_threshold=0.0, f0=1.0,
         sample_rate=16000)
@example(pitch_shift=16.0, loudness_shift=3.4028235677973366e+38, f0_range_scale=0.0, confidence_threshold=0.0,
         f0=1.0, sample_rate=16000)
def test_adjust_features_with_random_controls(pitch_shift, loudness_shift, f0_range_scale, confidence_threshold,
                                              f0, sample_rate):
  n = 16
  features = {'f0_hz': np.linspace(f0, f0 * 1.5, n), 'loudness_db': np.linspace(-60.0, -20.0, n),
              'f0_confidence': np.linspace(0.0, 1.0, n)}
  try:
    out, info = features_lib.adjust_features(features, pitch_shift=pitch_shift, loudness_shift=loudness_shift,
                                             f0_range_scale=f0_range_scale,
                                             confidence_threshold=confidence_threshold, sample_rate=sample_rate)
  except (validation.ValidationError, features_lib.InputError) as e:
    assert _one_line(e), str(e)
    return
  for value in (pitch_shift, loudness_shift, f0_range_scale):
    assert math.isfinite(value)
  assert 0.0 <= confidence_threshold <= 1.0
  assert np.all(np.isfinite(out['f0_hz'])) and np.all(np.isfinite(out['loudness_db']))
  voiced = out['voiced'] & (out['f0_hz'] > 0)
  assert voiced.any() and np.any(out['f0_hz'][voiced] < sample_rate / 2.0)  # something audible remains
  assert np.any(out['f0_hz'][voiced] >= validation.MIN_AUDIBLE_HZ)
  assert info['voiced_frames'] == int(out['voiced'].sum())


@given(value=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**13, 10**13)))
def test_every_command_range_names_a_refused_value(value):
  from ddsp.data_prep import prepare_tfrecord
  from ddsp.training import ddsp_run
  from ddsp.training import export
  from ddsp.training import demo
  from ddsp.training import transfer
  for module in (transfer, export, ddsp_run, prepare_tfrecord, demo):
    for name, accepted in module.RANGES.items():
      try:
        accepted.check(f'--{name}', value)
      except validation.ValidationError as e:
        assert str(e).startswith(f'--{name}={validation.format_number(value)} ') and accepted.text() in str(e)
        assert value is not None and (not math.isfinite(value) or not accepted.contains(value))
      else:
        assert value is None or (math.isfinite(value) and accepted.contains(value))


# ------------------------------------------------------------------------------------------------------------
# ddsp_transfer's entry function, in-process.
# ------------------------------------------------------------------------------------------------------------
def _private_flags(define_flags):
  """The command's flags defined into a new absl `FlagValues` (not the global one)."""
  from absl import flags
  flag_values = flags.FlagValues()
  names = ('DEFINE_string', 'DEFINE_float', 'DEFINE_integer', 'DEFINE_boolean', 'DEFINE_enum',
           'DEFINE_multi_string')
  patched = {n: functools.partial(getattr(flags, n), flag_values=flag_values) for n in names}
  with mock.patch.multiple(flags, **patched):
    define_flags.__wrapped__()  # the undecorated definitions (`cli.define_once`)
  return flag_values


@pytest.fixture(scope='module')
def transfer_setup(tmp_path_factory):
  from ddsp.training import transfer
  root = tmp_path_factory.mktemp('properties')
  model_dir = helpers.train_tiny(str(root / 'run'), helpers.tiny_params(n_examples=4, batch_size=2))
  inputs = root / 'inputs'
  inputs.mkdir()
  t = np.arange(SR // 2) / SR
  sf.write(str(inputs / 'take.wav'), (0.3 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32), SR)
  return transfer, _private_flags(transfer.define_flags), model_dir, str(inputs)


def _run_transfer(transfer, flag_values, args):
  """Parses `args` into `flag_values` and runs the command's main with its one-line errors; returns
  (exit status, stdout, stderr)."""
  flag_values.unparse_flags()
  flag_values(['ddsp_transfer'] + args)
  out, err = io.StringIO(), io.StringIO()
  status = 0
  with mock.patch.object(transfer, 'FLAGS', flag_values), contextlib.redirect_stdout(out), \
      contextlib.redirect_stderr(err):
    try:
      cli._one_line_errors(transfer.main, 'ddsp_transfer')(['ddsp_transfer'])
    except SystemExit as e:
      status = e.code
  return status, out.getvalue(), err.getvalue()


_FLAG_NUMBER = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-30, 30)).map(repr)


_GOOD = dict(pitch_shift=st.floats(-24, 24).map(repr), loudness_shift=st.floats(-20, 20).map(repr),
             f0_range_scale=st.sampled_from(['1.0', '0', '2']), confidence_threshold=st.sampled_from(['0.5', '0']),
             f0_curve=st.none(), output_is_input=st.just(False))
_ANY = dict(pitch_shift=_FLAG_NUMBER, loudness_shift=_FLAG_NUMBER,
            f0_range_scale=st.sampled_from(['1.0', '0', '-1', '2', 'inf']),
            confidence_threshold=st.sampled_from(['0.5', '0', '1.5', 'nan']),
            f0_curve=st.one_of(st.none(), st.binary(max_size=40), _CSV_TEXT.map(lambda t: t.encode('utf-8'))),
            output_is_input=st.booleans())


@settings(max_examples=MODEL_EXAMPLES)
@given(args=st.one_of(st.fixed_dictionaries(_GOOD), st.fixed_dictionaries(_ANY)))
def test_transfer_entry_with_random_flags_and_curves(transfer_setup, args):
  pitch_shift, loudness_shift, f0_range_scale = args['pitch_shift'], args['loudness_shift'], args['f0_range_scale']
  confidence_threshold, f0_curve, output_is_input = (args['confidence_threshold'], args['f0_curve'],
                                                     args['output_is_input'])
  transfer, flag_values, model_dir, inputs = transfer_setup
  take = os.path.join(inputs, 'take.wav')
  with tempfile.TemporaryDirectory() as out_dir:
    output = take if output_is_input else os.path.join(out_dir, 'out.wav')
    args = [f'--model_dir={model_dir}', f'--input={take}', f'--output={output}', f'--pitch_shift={pitch_shift}',
            f'--loudness_shift={loudness_shift}', f'--f0_range_scale={f0_range_scale}',
            f'--confidence_threshold={confidence_threshold}', '--crepe_frame_rate=50', '--max_gap_frames=0']
    if f0_curve is not None:
      curve = os.path.join(out_dir, 'f0.csv')
      with open(curve, 'wb') as f:
        f.write(f0_curve)
      args.append(f'--f0_curve={curve}')
    before_inputs, before_out = _snapshot(inputs), _snapshot(out_dir)
    status, stdout, stderr = _run_transfer(transfer, flag_values, args)
    # The first flag out of its range, in the order the command checks them (its RANGES).
    given_values = {'pitch_shift': pitch_shift, 'loudness_shift': loudness_shift, 'f0_range_scale': f0_range_scale,
                    'confidence_threshold': confidence_threshold}
    refused = [name for name in transfer.RANGES if name in given_values and not (
        math.isfinite(float(given_values[name])) and transfer.RANGES[name].contains(float(given_values[name])))]
    errors = [line for line in stderr.splitlines() if line.strip()]
    event(f'exit status {status}')
    if status == 0:
      assert not refused and not output_is_input
      audio, rate = sf.read(output, dtype='float64')
      assert rate == SR and audio.size == SR // 2 and np.all(np.isfinite(audio))
      assert os.path.isfile(os.path.splitext(output)[0] + '.png') and 'wrote' in stdout
      return
    assert len(errors) == 1 and errors[0].startswith('ddsp_transfer: error: '), stderr
    assert _snapshot(out_dir) == before_out  # nothing written
    if refused:
      assert status == 2 and errors[0].startswith(f'ddsp_transfer: error: --{refused[0]}='), errors[0]
    elif output_is_input:
      assert status == 1 and 'is --input' in errors[0], errors[0]
    else:
      assert f0_curve is not None, errors[0]  # valid flags on a pitched take fail only on a bad curve
      assert status in (1, 2) and 'f0 curve' in errors[0], errors[0]
    assert _snapshot(inputs) == before_inputs  # the input is never changed


# ------------------------------------------------------------------------------------------------------------
# The real command lines: exit status, one line, no TensorFlow start-up noise.
# ------------------------------------------------------------------------------------------------------------
def _command(module, args, cwd):
  env = helpers.subprocess_env()
  env.pop('TF_CPP_MIN_LOG_LEVEL', None)  # the command must be quiet by itself
  env.pop('DDSP_VERBOSE', None)
  return subprocess.run([sys.executable, '-m', module] + args, capture_output=True, text=True, env=env,
                        cwd=cwd, timeout=240, check=False)


def test_cli_refuses_a_flag_value_in_one_line_before_loading(tmp_path):
  proc = _command('ddsp.training.transfer', [f'--model_dir={tmp_path}/none', f'--input={tmp_path}/a.wav',
                                             f'--output={tmp_path}/o.wav', '--loudness_shift=nan'], str(tmp_path))
  assert proc.returncode == 2
  assert proc.stderr == ('ddsp_transfer: error: --loudness_shift=nan is not a finite number (accepted range '
                         '[-120, 120] dB).\n'), proc.stderr
  assert proc.stdout == '' and os.listdir(tmp_path) == []


def test_cli_prepare_refuses_values_and_writes_nothing(tmp_path):
  proc = _command('ddsp.data_prep.prepare_tfrecord', ['--input_audio_filepatterns=*.wav',
                                                      '--output_tfrecord_path=out/train.tfrecord',
                                                      '--example_secs=0'], str(tmp_path))
  assert proc.returncode == 2
  assert proc.stderr == ('ddsp_prepare_tfrecord: error: --example_secs=0 is outside the accepted range '
                         '(0, 3600] s.\n'), proc.stderr
  assert os.listdir(tmp_path) == []
