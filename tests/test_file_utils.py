"""Atomic writers: complete files under their final name, nothing left behind on failure, normal permissions."""
import json
import os
import stat

import numpy as np
import pytest
import soundfile as sf

from ddsp import file_utils


def test_write_wav_round_trip_and_permissions(tmp_path):
  path = tmp_path / 'sub' / 'tone.wav'
  audio = (0.5 * np.sin(2 * np.pi * 440 * np.arange(1600) / 16000)).astype(np.float32)
  file_utils.write_wav(path, audio, 16000)
  back, rate = sf.read(path, dtype='float32')
  assert rate == 16000
  np.testing.assert_allclose(back, audio, atol=1.0 / 32768)
  mask = os.umask(0)
  os.umask(mask)
  assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~mask
  assert os.listdir(path.parent) == ['tone.wav']  # no temporary file left


def test_failed_write_leaves_nothing(tmp_path):
  path = tmp_path / 'bad.wav'
  with pytest.raises(ValueError, match='NaN'):
    file_utils.write_wav(path, np.array([0.0, np.nan], np.float32))
  with pytest.raises(TypeError):
    file_utils.write_json(tmp_path / 'x.json', {'a': object()})
  assert os.listdir(tmp_path) == []


def test_write_json_replaces_atomically(tmp_path):
  path = tmp_path / 'r.json'
  file_utils.write_json(path, {'a': np.float32(1.5), 'b': np.arange(3)})
  file_utils.write_json(path, {'a': 2})
  with open(path) as f:
    assert json.load(f) == {'a': 2}
  assert os.listdir(tmp_path) == ['r.json']
