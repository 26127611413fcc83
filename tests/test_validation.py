"""Unit tests of the validation layer: flag ranges, pitch limits, strict curve / statistics / checkpoint readers,
outputs that would replace an input, one-line errors and the quiet start-up.

Expectations are computed independently here (e.g. the Nyquist frequency and the shift that reaches it by hand).
"""
import math
import os
import types

import numpy as np
import pytest

from ddsp import cli
from ddsp import file_utils
from ddsp import startup
from ddsp import validation
from ddsp.training import curves
from ddsp.training import features as features_lib

ValidationError = validation.ValidationError
InputError = features_lib.InputError


# ------------------------------------------------------------------------------------------------------------
# Ranges.
# ------------------------------------------------------------------------------------------------------------
def test_range_names_flag_value_and_range():
  pitch = validation.Range(-96, 96, 'semitones')
  assert pitch.check('--pitch_shift', 12.5) == 12.5
  assert pitch.check('--pitch_shift', -96) == -96 and pitch.check('--pitch_shift', 96) == 96
  assert pitch.check('--pitch_shift', None) is None  # an unset optional flag
  with pytest.raises(ValidationError) as err:
    pitch.check('--pitch_shift', 1000.0)
  assert str(err.value) == '--pitch_shift=1000 is outside the accepted range [-96, 96] semitones.'
  for bad in (float('nan'), float('inf'), -float('inf')):
    with pytest.raises(ValidationError, match=r'--pitch_shift=-?(nan|inf) is not a finite number'):
      pitch.check('--pitch_shift', bad)
  with pytest.raises(ValidationError, match="--pitch_shift='abc' is not a number"):
    pitch.check('--pitch_shift', 'abc')
  assert pitch.help('Pitch shift in semitones.') == 'Pitch shift in semitones. Range: [-96, 96] semitones.'


def test_open_and_one_sided_ranges():
  frac = validation.Range(0, 1, high_open=True)
  assert frac.text() == '[0, 1)'
  frac.check('--f', 0.0)
  with pytest.raises(ValidationError, match=r'\[0, 1\)'):
    frac.check('--f', 1.0)
  positive = validation.Range(0, None, 's', low_open=True)
  assert positive.text() == '> 0 s'
  with pytest.raises(ValidationError, match='> 0 s'):
    positive.check('--example_secs', 0.0)
  positive.check('--example_secs', 1e-9)
  assert validation.Range(None, 0, 'dB').text() == '<= 0 dB'
  assert validation.Range().text() == 'any finite number'


def test_check_flags_choice_and_optional_number():
  ranges = {'a': validation.Range(0, 1), 'b': validation.Range(0, 10)}
  validation.check_flags(types.SimpleNamespace(a=0.5, b=None), ranges)
  with pytest.raises(ValidationError, match=r'^--b=11 is outside'):
    validation.check_flags(types.SimpleNamespace(a=0.5, b=11), ranges)
  assert validation.check_choice('--format', 'tflite', ('saved_model', 'tflite')) == 'tflite'
  with pytest.raises(ValidationError, match="--format='onnx' is not one of saved_model, tflite"):
    validation.check_choice('--format', 'onnx', ('saved_model', 'tflite'))
  with pytest.raises(ValidationError, match="^--format='onnx' is not one of saved_model, tflite"):
    validation.check_flags(types.SimpleNamespace(a=0.5, format='onnx'), {'a': ranges['a']},
                           {'format': ('saved_model', 'tflite')})
  rate = validation.Range(0, 16000, low_open=True)
  assert validation.parse_optional_number('--crepe_frame_rate', 'none', rate) is None
  assert validation.parse_optional_number('--crepe_frame_rate', 'Off', rate) is None
  assert validation.parse_optional_number('--crepe_frame_rate', '100', rate) == 100.0
  with pytest.raises(ValidationError, match="--crepe_frame_rate='fast' must be a number or 'none'"):
    validation.parse_optional_number('--crepe_frame_rate', 'fast', rate)
  with pytest.raises(ValidationError, match='--crepe_frame_rate=0 is outside'):
    validation.parse_optional_number('--crepe_frame_rate', '0', rate)


def test_crepe_capacity_not_installed_is_named():
  validation.check_crepe_installed('--crepe_model', 'tiny')
  with pytest.raises(ValidationError, match="--crepe_model='huge'"):
    validation.check_crepe_installed('--crepe_model', 'huge')


# ------------------------------------------------------------------------------------------------------------
# Pitch limits.
# ------------------------------------------------------------------------------------------------------------
def test_audible_pitch_limits_computed_by_hand():
  # 16 kHz: Nyquist 8000 Hz. A curve entirely at or above it is silent; one frame below it is enough.
  with pytest.raises(ValidationError, match=r'Nyquist frequency of the 16000 Hz model \(8000 Hz'):
    validation.check_audible_pitch(np.full(10, 8000.0), None, 16000)
  validation.check_audible_pitch(np.full(10, 7999.0), None, 16000)
  validation.check_audible_pitch(np.r_[np.full(9, 9000.0), 7000.0], None, 16000)
  # 44.1 kHz: Nyquist 22050 Hz.
  validation.check_audible_pitch(np.full(4, 9000.0), None, 44100)
  with pytest.raises(ValidationError, match='22050 Hz'):
    validation.check_audible_pitch(np.full(4, 22050.0), None, 44100)
  # Below 20 Hz everywhere: no audible pitch; unvoiced frames (f0 0 or masked) are not judged.
  with pytest.raises(ValidationError, match='below 20 Hz'):
    validation.check_audible_pitch(np.full(5, 19.9), None, 16000)
  validation.check_audible_pitch(np.array([19.0, 20.0]), None, 16000)
  validation.check_audible_pitch(np.array([9000.0, 300.0]), np.array([True, True]), 16000)
  with pytest.raises(ValidationError):
    validation.check_audible_pitch(np.array([9000.0, 300.0]), np.array([True, False]), 16000)
  validation.check_audible_pitch(np.zeros(5), None, 16000)  # nothing voiced: another check's business


def test_pitch_shift_reaching_nyquist_is_refused_with_the_limit():
  n = 50
  features = {'f0_hz': np.full(n, 440.0), 'loudness_db': np.full(n, -30.0), 'f0_confidence': np.ones(n)}
  # 440 Hz * 2 ** (s / 12) >= 8000 Hz  <=>  s >= 12 * log2(8000 / 440) = 50.22 semitones.
  limit = 12.0 * math.log2(8000.0 / 440.0)
  out, _ = features_lib.adjust_features(features, pitch_shift=math.floor(limit), sample_rate=16000)
  assert out['f0_hz'].max() < 8000.0
  with pytest.raises(ValidationError, match=r'pitch_shift \+51 semitones.*8000 Hz'):
    features_lib.adjust_features(features, pitch_shift=math.ceil(limit), sample_rate=16000)
  # Down: 440 * 2 ** (s / 12) < 20  <=>  s < -12 * log2(22) = -53.5 semitones.
  features_lib.adjust_features(features, pitch_shift=-53, sample_rate=16000)
  with pytest.raises(ValidationError, match='below 20 Hz'):
    features_lib.adjust_features(features, pitch_shift=-54, sample_rate=16000)
  # Without a sample rate (library use) the shift is applied as asked.
  out, _ = features_lib.adjust_features(features, pitch_shift=60.0)
  np.testing.assert_allclose(out['f0_hz'], 440.0 * 32.0, rtol=1e-9)
  for name in ('pitch_shift', 'loudness_shift', 'f0_range_scale'):
    with pytest.raises(ValidationError, match=name):
      features_lib.adjust_features(features, **{name: float('nan')})
  with pytest.raises(ValidationError, match='confidence_threshold'):
    features_lib.adjust_features(features, confidence_threshold=1.5)


# ------------------------------------------------------------------------------------------------------------
# Strict curve readers.
# ------------------------------------------------------------------------------------------------------------
def _write(tmp_path, name, content):
  path = tmp_path / name
  path.write_bytes(content if isinstance(content, bytes) else content.encode('utf-8'))
  return str(path)


@pytest.mark.parametrize('content, where', [
    ('f0\n200\nabc\n', 'line 3'),                       # a word among the values
    ('time,f0\n0,200\n1,210,5\n', 'line 3'),            # a ragged row
    ('time,f0,x\n0,200\n', 'line 1'),                   # a header wider than the rows
    ('0,200\n0,210\n', 'line 2'),                       # time that does not increase
    ('200\nnan\n', 'line 2'),                           # not finite
    ('200\n-5\n', 'line 2'),                            # negative f0
    ('200\n200000\n', 'line 2'),                        # above 100 kHz
    ('# only a comment\n\n', 'holds no values'),
    ('', 'is empty'),
    (b'\xff\xfe\x00\x01', 'NUL bytes'),
    (b'200\n\xff\xfe\n', 'line 2: not UTF-8'),
])
def test_malformed_csv_curve_names_file_and_line(tmp_path, content, where):
  path = _write(tmp_path, 'f0.csv', content)
  with pytest.raises(InputError) as err:
    curves.read_curve(path, 'f0 curve')
  assert path in str(err.value) and where in str(err.value)
  assert '\n' not in str(err.value)


def test_good_csv_curves_parse():
  cases = {'200\n300\n': [200, 300], 'time,f0\n0,200\n0.5,300\n': [200, 300], '0;200\n1;0\n': [200, 0],
           '# c\n0\t100\n1\t150\n': [100, 150], '\ufeffhz\n440\n': [440]}
  for i, (content, want) in enumerate(cases.items()):
    path = f'/tmp/_ddsp_val_{os.getpid()}_{i}.csv'
    with open(path, 'w', encoding='utf-8') as f:
      f.write(content)
    try:
      np.testing.assert_array_equal(curves.read_curve(path, 'f0 curve'), want)
    finally:
      os.remove(path)
  # Loudness curves accept negative values and refuse absurd ones.
  np.testing.assert_array_equal(curves.read_curve(np.array([-40.0, -20.0]), 'loudness curve'), [-40, -20])
  with pytest.raises(InputError, match='element 1'):
    curves.read_curve([-40.0, -500.0], 'loudness curve')


def test_npy_curve_names_file_and_shape(tmp_path):
  good = tmp_path / 'ok.npy'
  np.save(good, np.array([[100.0], [200.0]]))
  np.testing.assert_array_equal(curves.read_curve(str(good), 'f0 curve'), [100.0, 200.0])
  bad = tmp_path / 'wide.npy'
  np.save(bad, np.ones((3, 4)))
  with pytest.raises(InputError, match=r"wide.npy' has shape \(3, 4\)"):
    curves.read_curve(str(bad), 'f0 curve')
  text = tmp_path / 'text.npy'
  np.save(text, np.array(['a', 'b']))
  with pytest.raises(InputError, match='text.npy.*dtype <U1'):
    curves.read_curve(str(text), 'f0 curve')
  junk = _write(tmp_path, 'junk.npy', b'\x93NUMPY garbage')
  with pytest.raises(InputError, match='junk.npy.*not a NumPy .npy array'):
    curves.read_curve(junk, 'f0 curve')
  neg = tmp_path / 'neg.npy'
  np.save(neg, np.array([100.0, -3.0]))
  with pytest.raises(InputError, match=r'neg.npy.*element 1.*negative'):
    curves.read_curve(str(neg), 'f0 curve')
  with pytest.raises(InputError, match='does not exist'):
    curves.read_curve(str(tmp_path / 'missing.csv'), 'f0 curve')


def test_f0_curve_all_zero_is_named_not_blamed_on_crepe():
  n = 20
  features = {'f0_hz': np.full(n, 440.0), 'loudness_db': np.full(n, -30.0), 'f0_confidence': np.ones(n)}
  with pytest.raises(InputError, match='The f0 curve has no frame above 0 Hz'):
    features_lib.adjust_features(features, f0_curve=np.zeros(n))


# ------------------------------------------------------------------------------------------------------------
# Dataset statistics.
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('content, reason', [
    (b'{"f0_hz": ', 'not valid JSON'),
    (b'\xff\xfe{}', 'not UTF-8'),
    (b'[1, 2]', 'hold a JSON list'),
    (b'{}', 'hold no voiced frames'),
    (b'{"f0_hz": {"quantiles": {"0.5": "abc"}}, "mean_loudness_db_voiced": -30}', "['0.5'] is 'abc'"),
    (b'{"f0_hz": {"quantiles": {"0.5": -1}}, "mean_loudness_db_voiced": -30}', 'not a positive number'),
    (b'{"f0_hz": [], "mean_loudness_db_voiced": -30}', 'not an object'),
    (b'{"mean_pitch_midi": 60, "mean_loudness_db_voiced": NaN}', 'not a finite number'),
])
def test_malformed_dataset_statistics_name_the_file(tmp_path, content, reason):
  path = _write(tmp_path, 'dataset_statistics.json', content)
  with pytest.raises(ValueError) as err:
    features_lib.load_dataset_statistics(path)
  assert path in str(err.value) and reason in str(err.value)


def test_good_dataset_statistics():
  stats = {'f0_hz': {'quantiles': {'0.5': 440.0}}, 'mean_loudness_db_voiced': -30.0}
  assert features_lib.dataset_median_midi(stats) == pytest.approx(69.0)
  assert features_lib.dataset_voiced_loudness(stats) == -30.0
  assert features_lib.dataset_median_midi({'mean_pitch_midi': 57}) == 57.0


# ------------------------------------------------------------------------------------------------------------
# Outputs that would replace an input.
# ------------------------------------------------------------------------------------------------------------
def test_output_folders_holding_an_input_are_refused(tmp_path, monkeypatch):
  run = tmp_path / 'runs' / 'violin'
  run.mkdir(parents=True)
  (tmp_path / 'link').symlink_to(tmp_path / 'runs')
  monkeypatch.chdir(tmp_path)
  for folder in (str(run), str(tmp_path / 'runs'), './runs', str(tmp_path / 'link'), str(tmp_path)):
    with pytest.raises(ValueError, match='holds --save_dir'):
      file_utils.check_folder_holds_no_inputs('--output', folder, {'--save_dir': str(run)})
  file_utils.check_folder_holds_no_inputs('--output', str(tmp_path / 'export'), {'--save_dir': str(run)})
  file_utils.check_folder_holds_no_inputs('--output', str(tmp_path / 'runs' / 'violin2'), {'--save_dir': str(run)})
  assert file_utils.is_within('gs://b/runs/violin', 'gs://b/runs')
  assert not file_utils.is_within('gs://b/runs2', 'gs://b/runs')


def test_export_output_checks(tmp_path):
  from ddsp.training import export
  run = tmp_path / 'run'
  run.mkdir()
  (run / 'ckpt-2.index').write_bytes(b'x')
  with pytest.raises(ValueError, match='holds --save_dir'):
    export.check_output(str(run), str(run), 'saved_model')
  with pytest.raises(ValueError, match="training file 'ckpt-2.index'"):
    export.check_output(str(run), str(run / 'ckpt-2.index'), 'tflite')
  export.check_output(str(run), str(run / 'model.tflite'), 'tflite')  # a new file beside the checkpoints
  export.check_output(str(run), str(tmp_path / 'export'), 'saved_model')
  with pytest.raises(ValidationError, match=r'--block_size=0 is outside the accepted range \[1, 1048576\]'):
    export.check_flags(types.SimpleNamespace(block_size=0, batch_size=None, format='saved_model'))


def test_prepare_outputs_that_are_inputs_are_refused(tmp_path, monkeypatch):
  from ddsp.data_prep import prepare_tfrecord
  audio = tmp_path / 'audio'
  audio.mkdir()
  shard = audio / 'train.tfrecord-00000-of-00001'
  shard.write_bytes(b'x')
  stats = audio / 'dataset_statistics.json'
  stats.write_bytes(b'{}')
  monkeypatch.chdir(tmp_path)
  for inputs, prefix in (([str(shard)], str(audio / 'train.tfrecord')),
                         ([str(shard)], './audio/train.tfrecord'),
                         ([str(stats)], str(audio / 'other.tfrecord')),
                         ([str(audio / 'train-eval.tfrecord-00000-of-00001')], str(audio / 'train.tfrecord'))):
    with pytest.raises(ValueError, match='would write over the input'):
      prepare_tfrecord.check_outputs(inputs, prefix)
  prepare_tfrecord.check_outputs([str(audio / 'take.wav')], str(audio / 'train.tfrecord'))
  prepare_tfrecord.check_outputs([str(shard)], str(tmp_path / 'out' / 'train.tfrecord'))


# ------------------------------------------------------------------------------------------------------------
# Checkpoints.
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('index', [b'', np.random.default_rng(0).bytes(64), b'not a checkpoint at all' * 10],
                         ids=['empty', 'random', 'text'])
def test_damaged_checkpoint_is_named_as_unrestorable(tmp_path, index):
  from ddsp.training import checkpoints
  prefix = str(tmp_path / 'ckpt-3')
  with open(prefix + '.index', 'wb') as f:
    f.write(index)
  with open(prefix + '.data-00000-of-00001', 'wb') as f:
    f.write(b'\x00' * 16)
  with pytest.raises(checkpoints.UnreadableCheckpointError) as err:
    checkpoints.check_readable(prefix)
  assert f'Checkpoint {prefix} cannot be restored' in str(err.value)
  assert isinstance(err.value, checkpoints.IncompatibleCheckpointError)


def test_truncated_checkpoint_data_is_named(tmp_path):
  import tensorflow as tf
  from ddsp.training import checkpoints
  ckpt = tf.train.Checkpoint(v=tf.Variable(np.arange(4096, dtype=np.float32)))
  prefix = ckpt.write(str(tmp_path / 'ckpt-1'))
  checkpoints.check_readable(prefix)
  data = prefix + '.data-00000-of-00001'
  with open(data, 'rb') as f:
    content = f.read()
  with open(data, 'wb') as f:
    f.write(content[:len(content) // 2])
  with pytest.raises(checkpoints.UnreadableCheckpointError, match='truncated'):
    checkpoints.check_readable(prefix)


# ------------------------------------------------------------------------------------------------------------
# One-line errors and the quiet start-up.
# ------------------------------------------------------------------------------------------------------------
def test_fail_prints_one_line_and_exits(capsys):
  with pytest.raises(SystemExit) as exit_info:
    cli.fail('ddsp_x', ValueError('first line\n  second line'), 2)
  assert exit_info.value.code == 2
  assert capsys.readouterr().err == 'ddsp_x: error: first line\n'
  assert cli.first_line(ValueError('')) == 'ValueError'


def test_native_start_up_lines_are_filtered_and_others_kept():
  text = ('WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n'
          'E0000 00:00:1796390723.719576    4559 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)\n'
          'I0000 00:00:1796382128.49 14114 cudart_stub.cc:31] Could not find cuda drivers on your machine.\n'
          '2024-01-01 10:00:00.000000: I tensorflow/core/util/port.cc:153] oneDNN custom operations are on.\n'
          'To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the '
          'appropriate compiler flags.\n'
          'INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n'
          'E0000 00:00:1796419728.254916    5360 node_def_util.cc:682] NodeDef mentions attribute Truncate\n'
          'ddsp_transfer: note: input resampled.\n'
          'Traceback (most recent call last):\n')
  kept = 'ddsp_transfer: note: input resampled.\nTraceback (most recent call last):\n'
  assert startup.filter_native_logs(text) == kept


def test_command_name_and_verbose_switch():
  assert startup.command_name(['/usr/bin/ddsp_transfer', '--x'], []) == 'ddsp_transfer'
  assert startup.command_name(['-m'], ['python', '-m', 'ddsp.training.export', '--x']) == 'ddsp_export'
  assert startup.command_name(['pytest'], ['python', '-m', 'pytest']) is None
  assert startup.verbose([], {'DDSP_VERBOSE': '1'}) and not startup.verbose([], {'DDSP_VERBOSE': '0'})
  assert startup.verbose(['--verbosity=1'], {}) and startup.verbose(['-v', '2'], {})
  assert not startup.verbose(['--verbosity=0'], {}) and not startup.verbose([], {})


def test_every_console_script_is_a_quiet_command():
  """setup.py's console scripts and `startup.COMMANDS` name the same commands and modules (a script missing
  there would print TensorFlow's native start-up lines)."""
  import re
  with open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'setup.py'),
            encoding='utf-8') as f:
    scripts = dict(re.findall(r"'(ddsp_\w+) = ([\w.]+):console_entry_point'", f.read()))
  assert len(scripts) >= 8 and scripts == startup.COMMANDS


def test_quiet_native_startup_holds_back_fd2_native_lines_only():
  import subprocess
  import sys
  code = ('import os, sys\n'
          'from ddsp import startup\n'
          'with startup.quiet_native_startup(active=True):\n'
          '  os.write(2, b"E0000 00:00:1.5 12 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR\\n")\n'
          '  os.write(2, b"a line of the program\\n")\n'
          'os.write(2, b"after\\n")\n')
  proc = subprocess.run([sys.executable, '-c', code], capture_output=True, timeout=120, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stderr.decode().splitlines()[-2:] == ['a line of the program', 'after']
  assert b'cuInit' not in proc.stderr


def test_a_flag_that_does_not_parse_is_one_line_with_status_2(capsys):
  from absl import flags
  flag_values = flags.FlagValues()
  flags.DEFINE_float('pitch_shift', 0.0, 'Pitch shift.', flag_values=flag_values)
  parse = cli._one_line_parse_errors(flag_values, 'ddsp_transfer')
  assert parse(['ddsp_transfer', '--pitch_shift=3']) == ['ddsp_transfer'] and flag_values.pitch_shift == 3.0
  with pytest.raises(SystemExit) as exit_info:
    parse(['ddsp_transfer', '--pitch_shift=abc'])
  assert exit_info.value.code == 2
  err = capsys.readouterr().err
  assert err.startswith('ddsp_transfer: error: flag --pitch_shift=abc:') and err.count('\n') == 1


def test_refused_values_in_main_are_one_line_with_status_2(capsys):
  def main(argv):
    del argv
    validation.Range(-96, 96, 'semitones').check('--pitch_shift', 1000.0)
  with pytest.raises(SystemExit) as exit_info:
    cli._one_line_errors(main, 'ddsp_transfer')(['ddsp_transfer'])
  assert exit_info.value.code == 2
  assert capsys.readouterr().err == ('ddsp_transfer: error: --pitch_shift=1000 is outside the accepted range '
                                     '[-96, 96] semitones.\n')
