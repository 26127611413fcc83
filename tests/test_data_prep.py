"""Tests of dataset preparation: audio reading, feature alignment, the Beam pipeline, bad input, NSynth.

Pipelines run on the DirectRunner in-memory (one process) so that a test can substitute the CREPE backend
with a simple FFT pitch estimator where the test is about the pipeline and not about pitch; the tests
that use the real CREPE port are skipped until `ddsp.pitch` exists.
"""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from ddsp.data_prep import audio_io
from ddsp.data_prep import examples
from ddsp.data_prep import features
from ddsp.data_prep import pipeline
from ddsp.data_prep import statistics

SR = 16000
IN_MEMORY = ['--runner=DirectRunner', '--direct_running_mode=in_memory', '--direct_num_workers=1']
ASSETS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'ddsp', 'assets')

try:
  from ddsp import pitch as _pitch  # noqa: F401  (availability probe)
  HAVE_CREPE = True
except ImportError:
  HAVE_CREPE = False


# ------------------------------------------------------------------------------------------------------------
# Helpers.
# ------------------------------------------------------------------------------------------------------------
def fft_f0(audio, sample_rate=SR, frame_rate=250, model='tiny', viterbi=False, crepe_frame_rate=None,
           loudness_floor_db=None, batch_size=512):
  """A stand-in pitch tracker (not CREPE): the peak of a 4096-point FFT of the 1024-sample frame centred
  on each hop (zero padding at the ends), refined by parabolic interpolation; unvoiced below RMS 1e-3."""
  del model, viterbi, crepe_frame_rate, loudness_floor_db, batch_size
  hop = sample_rate // frame_rate
  n_frames = -(-len(audio) // hop)
  padded = np.pad(np.asarray(audio, np.float64), (512, 512 + hop))
  frames = np.lib.stride_tricks.sliding_window_view(padded, 1024)[::hop][:n_frames]
  spec = np.abs(np.fft.rfft(frames * np.hanning(1024), n=4096, axis=-1))
  k = np.clip(np.argmax(spec[:, 1:-1], axis=-1) + 1, 1, spec.shape[1] - 2)
  a, b, c = (spec[np.arange(n_frames), k + d] for d in (-1, 0, 1))
  delta = 0.5 * (a - c) / np.where(a - 2 * b + c == 0, 1e-12, a - 2 * b + c)
  f0 = (k + delta) * sample_rate / 4096.0
  voiced = np.sqrt(np.mean(frames ** 2, axis=-1)) > 1e-3
  return np.where(voiced, f0, 0.0).astype(np.float32), voiced.astype(np.float32)


def fft_f0_batch(audios, *args, **kw):
  """`fft_f0` with the list-in, list-out signature of `features.f0_backend`."""
  return [fft_f0(a, *args, **kw) for a in audios]


@pytest.fixture
def fake_crepe(monkeypatch):
  monkeypatch.setattr(features, 'f0_backend', fft_f0_batch)
  return fft_f0_batch


def sine(freq, secs, sr=SR, amp=0.5, phase=0.0):
  t = np.arange(int(round(secs * sr))) / sr
  return (amp * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)


def step_signal(sr):
  """0-2 s silence, 2-4.5 s 220 Hz, 4.5-7 s 440 Hz (amplitude 0.5, continuous phase), at `sr`."""
  t = np.arange(7 * sr) / sr
  f = np.where(t < 4.5, 220.0, 440.0)
  phase = 2 * np.pi * np.where(t < 4.5, 220.0 * t, 220.0 * 4.5 + 440.0 * (t - 4.5))  # continuous phase
  x = 0.5 * np.sin(phase)
  x[t < 2.0] = 0.0
  return x, f


def write(path, audio, sr, **kw):
  sf.write(path, audio, sr, **kw)
  return str(path)


def read_records(pattern):
  import tensorflow as tf
  files = sorted(tf.io.gfile.glob(pattern))
  out = []
  for raw in tf.data.TFRecordDataset(files):
    ex = tf.train.Example.FromString(raw.numpy())
    f = ex.features.feature
    d = {}
    for k, v in f.items():
      if v.float_list.value:
        d[k] = np.asarray(v.float_list.value, np.float32)
      elif v.int64_list.value:
        d[k] = np.asarray(v.int64_list.value, np.int64)
      elif v.bytes_list.value:
        d[k] = v.bytes_list.value[0].decode()
      else:
        d[k] = np.zeros((0,), np.float32)
    out.append(d)
  return out


def run_prepare(inputs, out, config=None, **kw):
  kw.setdefault('pipeline_args', IN_MEMORY)
  return pipeline.prepare(inputs, out, config or pipeline.PrepareConfig(), **kw)


# ------------------------------------------------------------------------------------------------------------
# Reading.
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('fmt,subtype,ext,tol', [
    ('WAV', 'FLOAT', 'wav', 2e-3), ('FLAC', 'PCM_24', 'flac', 2e-3), ('OGG', 'VORBIS', 'ogg', None),
    ('MP3', 'MPEG_LAYER_III', 'mp3', None)])
def test_read_any_format_rate_channels_to_mono_16k(tmp_path, fmt, subtype, ext, tol):
  sr_in = 44100
  t = np.arange(int(2.0 * sr_in)) / sr_in
  left, right = 0.5 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 1000 * t)
  path = write(tmp_path / f'x.{ext}', np.stack([left, right], 1), sr_in, format=fmt, subtype=subtype)
  audio, info = audio_io.read_audio(path, SR)
  assert audio.dtype == np.float32 and audio.ndim == 1
  assert info.original_sample_rate == sr_in and info.original_channels == 2
  n_expected = round(2.0 * SR)
  assert abs(len(audio) - n_expected) <= (0 if tol else 2048)  # mp3/ogg decoders may add priming frames.
  # Spectrum of a middle second: both tones at half their channel amplitude (mono = mean of channels).
  seg = audio[4000:4000 + SR].astype(np.float64)
  spec = np.abs(np.fft.rfft(seg * np.hanning(SR))) / (np.hanning(SR).sum() / 2)
  assert spec[440] == pytest.approx(0.25, rel=0.05)
  assert spec[1000] == pytest.approx(0.15, rel=0.05)
  if tol:  # Lossless: sample-accurate against the analytic mono signal at 16 kHz (soxr HQ).
    t16 = np.arange(len(audio)) / SR
    ref = 0.25 * np.sin(2 * np.pi * 440 * t16) + 0.15 * np.sin(2 * np.pi * 1000 * t16)
    assert np.max(np.abs(audio[800:-800] - ref[800:-800])) < tol


def test_read_mono_at_other_rates(tmp_path):
  for sr_in in (8000, 22050, 48000, 96000):
    path = write(tmp_path / f'm{sr_in}.wav', sine(300, 1.5, sr_in, 0.4), sr_in, subtype='FLOAT')
    audio, _ = audio_io.read_audio(path, SR)
    assert len(audio) == round(1.5 * SR)
    ref = sine(300, 1.5, SR, 0.4)
    assert np.max(np.abs(audio[1000:-1000] - ref[1000:-1000])) < 2e-3, sr_in


def _bad_files(d):
  """name -> (path, expected words in the reason)."""
  d.mkdir(exist_ok=True)
  good = np.stack([sine(440, 2.0, 44100), sine(440, 2.0, 44100)], 1)
  (d / 'empty.wav').write_bytes(b'')
  (d / 'notes.wav').write_text('this is a text file, not audio\n' * 20)
  write(d / 'full.wav', good, 44100)
  full = (d / 'full.wav').read_bytes()
  (d / 'header_only.wav').write_bytes(full[:30])
  (d / 'garbage.mp3').write_bytes(np.random.RandomState(0).bytes(4000))
  write(d / 'x.flac', good, 44100, format='FLAC')
  (d / 'cut.flac').write_bytes((d / 'x.flac').read_bytes()[:200])
  nan = good.copy()
  nan[1000, 0] = np.nan
  write(d / 'nan.wav', nan, 44100, subtype='FLOAT')
  (d / 'folder.wav').mkdir()
  os.symlink(str(d / 'does_not_exist.wav'), str(d / 'dangling.wav'))
  os.remove(d / 'x.flac')
  os.remove(d / 'full.wav')
  return {
      'empty.wav': 'empty file (0 bytes)',
      'notes.wav': 'not an audio file',
      'header_only.wav': 'corrupt',
      'garbage.mp3': 'not an audio file',
      'cut.flac': 'corrupt',
      'nan.wav': 'non-finite',
      'folder.wav': 'directory',
      'dangling.wav': 'broken symbolic link',
  }


def test_bad_files_raise_clear_reasons(tmp_path):
  expected = _bad_files(tmp_path / 'bad')
  for name, words in expected.items():
    with pytest.raises(audio_io.AudioReadError) as e:
      audio_io.read_audio(tmp_path / 'bad' / name)
    assert words in e.value.reason, (name, e.value.reason)
    assert name in str(e.value)
  with pytest.raises(audio_io.AudioReadError, match='file not found'):
    audio_io.read_audio(tmp_path / 'missing.wav')


def test_truncated_wav_is_kept_with_a_warning(tmp_path):
  x = sine(440, 2.0, SR)
  full = (tmp_path / 'a.wav')
  write(full, x, SR, subtype='PCM_16')
  data = full.read_bytes()
  (tmp_path / 'cut.wav').write_bytes(data[:len(data) // 2])
  audio, info = audio_io.read_audio(tmp_path / 'cut.wav')
  assert any('truncated' in w for w in info.warnings)
  n = (len(data) // 2 - 44) // 2
  assert len(audio) == n
  np.testing.assert_allclose(audio, x[:n], atol=1.0 / 32768)


def test_expand_filepatterns_reports_unmatched(tmp_path):
  write(tmp_path / 'a.wav', sine(440, 0.1), SR)
  paths, unmatched = audio_io.expand_filepatterns([str(tmp_path / '*.wav'), str(tmp_path / '*.mp3')])
  assert paths == [str(tmp_path / 'a.wav')] and unmatched == [str(tmp_path / '*.mp3')]


# ------------------------------------------------------------------------------------------------------------
# Features.
# ------------------------------------------------------------------------------------------------------------
def test_loudness_backend_matches_spectral_ops_and_closed_form():
  from ddsp import spectral_ops
  rs = np.random.RandomState(1)
  x = (0.1 * rs.randn(3 * SR + 123)).astype(np.float32)
  ours = features.loudness_backend(x, SR, 250)
  ref = spectral_ops.compute_loudness(x, sample_rate=SR, frame_rate=250)
  assert ours.shape == (math.ceil(len(x) / 64),)
  np.testing.assert_allclose(ours, ref, atol=1e-3)
  # SPEC §3: a full-scale 1 kHz sine reads 0 dB (A-weighting is 0 dB at 1 kHz); 0.5 amplitude -6.02 dB;
  # silence -120 dB.
  ld = features.loudness_backend(sine(1000, 1.0, amp=1.0), SR, 250)
  assert np.median(ld[20:-20]) == pytest.approx(0.0, abs=0.3)
  ld = features.loudness_backend(sine(1000, 1.0, amp=0.5), SR, 250)
  assert np.median(ld[20:-20]) == pytest.approx(-6.02, abs=0.3)
  assert np.all(features.loudness_backend(np.zeros(SR, np.float32), SR, 250) == -120.0)


def _rms_frames(x, hop=64, half=512):
  """Frame-wise RMS of the 2*half samples centred on each hop (zero padding), a context-limited feature."""
  n_frames = -(-len(x) // hop)
  p = np.pad(x.astype(np.float64), (half, half + hop))
  return np.sqrt(np.mean(np.lib.stride_tricks.sliding_window_view(p, 2 * half)[::hop][:n_frames] ** 2, -1))


def test_chunked_frames_equals_one_call():
  rs = np.random.RandomState(2)
  x = (rs.randn(SR * 5 + 77) * np.linspace(0, 1, SR * 5 + 77)).astype(np.float32)
  direct = _rms_frames(x)
  chunked = features.chunked_frames(_rms_frames, x, 64, chunk_frames=97, context_samples=512)
  np.testing.assert_allclose(chunked, direct, rtol=1e-12)
  both = features.chunked_frames(lambda s: (_rms_frames(s), -_rms_frames(s)), x, 64, 200, 512, 320)
  np.testing.assert_allclose(both[1], -direct, rtol=1e-12)


def _crepe_like(audio, sample_rate=SR, frame_rate=250, crepe_frame_rate=100):
  """Like CREPE at 100 frames/s: a feature on a 160-sample grid, linearly interpolated to 250 frames/s."""
  c_hop, hop = int(sample_rate // crepe_frame_rate), int(sample_rate // frame_rate)
  coarse = _rms_frames(audio, hop=c_hop)
  n = -(-len(audio) // hop)
  return np.interp(np.arange(n) * hop / c_hop, np.arange(len(coarse)), coarse).astype(np.float32)


def test_long_sources_run_in_chunks_equal_to_one_call(monkeypatch):
  calls = []

  def backend(audios, sample_rate, frame_rate, model, viterbi, crepe_frame_rate, *unused):
    calls.append([len(a) for a in audios])
    return [(_crepe_like(a, sample_rate, frame_rate, crepe_frame_rate), np.ones(-(-len(a) // 64), np.float32))
            for a in audios]

  monkeypatch.setattr(features, 'f0_backend', backend)
  rs = np.random.RandomState(3)
  long = (0.3 * rs.randn(5 * SR + 333) * np.linspace(0.1, 1, 5 * SR + 333)).astype(np.float32)
  short = (0.3 * rs.randn(SR // 2)).astype(np.float32)
  config = pipeline.PrepareConfig(f0_chunk_secs=1.0)
  (f_long, _), (f_short, _) = features.compute_f0_many([long, short], config)
  assert len(calls) > 5 and max(max(c) for c in calls) < 1.5 * SR  # bounded chunks
  np.testing.assert_allclose(f_long, _crepe_like(long), rtol=1e-6)
  np.testing.assert_allclose(f_short, _crepe_like(short), rtol=1e-6)


def test_sources_of_a_bundle_share_one_crepe_call(tmp_path, monkeypatch):
  calls = []

  def backend(audios, *args, **kw):
    calls.append([len(a) for a in audios])
    return fft_f0_batch(audios, *args, **kw)

  monkeypatch.setattr(features, 'f0_backend', backend)
  d = tmp_path / 'in'
  d.mkdir()
  for i in range(5):
    write(d / f'n{i}.wav', sine(200 + 40 * i, 4.0, SR, 0.3), SR)
  report = run_prepare([str(d / '*.wav')], str(tmp_path / 'o' / 'x.tfrecord'))
  assert report['sources_ok'] == 5
  assert sum(len(c) for c in calls) == 5 and len(calls) < 5  # files batched together
  assert all(n == 64000 for c in calls for n in c)


@pytest.mark.skipif(not HAVE_CREPE, reason='ddsp.pitch (the CREPE port) is not available yet')
def test_real_crepe_batched_equals_separate():
  rs = np.random.RandomState(3)
  audios = [sine(330, 1.0, amp=0.4), (0.1 * rs.randn(4321)).astype(np.float32), sine(523.25, 0.5, amp=0.2)]
  config = pipeline.PrepareConfig()
  batched = features.compute_f0_many(audios, config)
  for a, (f0, conf) in zip(audios, batched):
    alone_f0, alone_conf = features.compute_f0_many([a], config)[0]
    assert f0.shape == (math.ceil(len(a) / 64),)
    np.testing.assert_allclose(f0, alone_f0, rtol=1e-4)
    np.testing.assert_allclose(conf, alone_conf, atol=1e-4)
  f0, conf = batched[0]
  assert np.median(f0[conf > 0.5]) == pytest.approx(330.0, rel=0.006)  # within 10 cents
  # A 3.3 s source in 1 s chunks: the frames of one whole-file call.
  x = np.concatenate([sine(220, 1.1, amp=0.3), np.zeros(3000, np.float32), sine(440, 2.0, amp=0.3)])
  whole = features.compute_f0_many([x], config)[0]
  chunked = features.compute_f0_many([x], pipeline.PrepareConfig(f0_chunk_secs=1.0))[0]
  np.testing.assert_allclose(chunked[0], whole[0], rtol=1e-4)
  np.testing.assert_allclose(chunked[1], whole[1], atol=1e-4)


def test_statistics_quantiles_match_numpy():
  rs = np.random.RandomState(4)
  acc_a, acc_b = statistics.StatsAccumulator(0.85), statistics.StatsAccumulator(0.85)
  lds, f0s, confs = [], [], []
  for acc in (acc_a, acc_b, acc_b):
    ld = rs.uniform(-90, -5, 30000)
    f0 = 440 * 2 ** (rs.randn(30000) / 6)
    conf = rs.uniform(0, 1, 30000)
    acc.add(ld, f0, conf)
    lds.append(ld), f0s.append(f0), confs.append(conf)
  merged = acc_a.merge(acc_b).to_dict(frame_rate=250)
  ld, f0, conf = map(np.concatenate, (lds, f0s, confs))
  voiced = conf >= 0.85
  assert merged['n_frames'] == 90000 and merged['n_voiced_frames'] == int(voiced.sum())
  for q in (0.05, 0.5, 0.95):
    assert merged['loudness_db']['quantiles'][f'{q:g}'] == pytest.approx(np.quantile(ld, q), abs=0.06)
    assert merged['loudness_db_voiced']['quantiles'][f'{q:g}'] == pytest.approx(
        np.quantile(ld[voiced], q), abs=0.06)
    assert merged['f0_hz']['quantiles'][f'{q:g}'] == pytest.approx(np.quantile(f0[voiced], q), rel=2e-3)
  assert merged['mean_loudness_db_voiced'] == pytest.approx(ld[voiced].mean(), abs=1e-6)
  midi = 69 + 12 * np.log2(f0[voiced] / 440)
  assert merged['mean_pitch_midi'] == pytest.approx(midi.mean(), abs=1e-6)
  hist = np.bincount(np.clip(np.round(midi).astype(int), 0, 127), minlength=128)
  assert np.abs(np.asarray(merged['pitch_histogram']['counts']) - hist).sum() <= 40  # bin-edge rounding


def test_example_bytes_equal_a_protobuf_built_example():
  import tensorflow as tf
  rs = np.random.RandomState(6)
  audio, f0, conf, ld = (rs.randn(n).astype(np.float32) for n in (64000, 1000, 1000, 1000))
  labels = {'pitch': [60], 'qualities': [0, 1, 1, 0, 0, 0, 0, 0, 0, 1], 'note_str': b'flute-060',
            'instrument_str': 'fl\u00fbte', 'offset': [-3]}
  ours = examples.make_example(audio, f0, conf, ld, pipeline.PrepareConfig(), 'dir/\u00e9.wav', 16000, labels)
  tr = tf.train
  flt = lambda v: tr.Feature(float_list=tr.FloatList(value=v))
  i64 = lambda v: tr.Feature(int64_list=tr.Int64List(value=v))
  byt = lambda v: tr.Feature(bytes_list=tr.BytesList(value=[v]))
  ref = tr.Example(features=tr.Features(feature={
      'audio': flt(audio), 'f0_hz': flt(f0), 'f0_confidence': flt(conf), 'loudness_db': flt(ld),
      'sample_rate': i64([16000]), 'frame_rate': i64([250]), 'source_id': byt('dir/\u00e9.wav'.encode()),
      'start_sample': i64([16000]), 'pitch': i64([60]), 'qualities': i64([0, 1, 1, 0, 0, 0, 0, 0, 0, 1]),
      'note_str': byt(b'flute-060'), 'instrument_str': byt('fl\u00fbte'.encode()), 'offset': i64([-3])}))
  assert tr.Example.FromString(ours) == ref
  parsed = tf.io.parse_single_example(ours, {'audio': tf.io.FixedLenFeature([64000], tf.float32),
                                             'offset': tf.io.FixedLenFeature([], tf.int64)})
  np.testing.assert_array_equal(parsed['audio'].numpy(), audio)
  assert int(parsed['offset']) == -3


def test_default_runner_options():
  args = pipeline.default_pipeline_args([])
  assert '--runner=DirectRunner' in args
  workers = pipeline.default_direct_workers()
  assert f'--direct_num_workers={workers}' in args
  assert ('--direct_running_mode=multi_processing' in args) == (workers > 1)
  assert pipeline.default_direct_workers(16) == 4 and pipeline.default_direct_workers(2) == 1
  other = ['--runner=DataflowRunner', '--project=p']
  assert pipeline.default_pipeline_args(other) == other  # other runners: flags pass through untouched


def test_config_validation_messages():
  with pytest.raises(ValueError, match='multiple of frame_rate'):
    pipeline.PrepareConfig(frame_rate=300).validate()
  with pytest.raises(ValueError, match='hop_secs'):
    pipeline.PrepareConfig(hop_secs=0.001).validate()
  with pytest.raises(ValueError, match='eval_split_fraction'):
    pipeline.PrepareConfig(eval_split_fraction=1.5).validate()
  with pytest.raises(ValueError, match='crepe_model'):
    pipeline.PrepareConfig(crepe_model='huge').validate()


# ------------------------------------------------------------------------------------------------------------
# The pipeline.
# ------------------------------------------------------------------------------------------------------------
def _mixed_folder(d):
  """Good files of known content plus broken ones. Returns {name: duration_secs} of the good files."""
  d.mkdir(exist_ok=True)
  x44, _ = step_signal(44100)
  write(d / 'step_44k_stereo.wav', np.stack([x44, x44], 1), 44100, subtype='FLOAT')  # 7 s -> 4 windows
  write(d / 'tone_48k.flac', sine(330, 5.0, 48000, 0.3), 48000, format='FLAC', subtype='PCM_24')  # 2 windows
  write(d / 'short.ogg', sine(500, 2.5, 22050, 0.3), 22050, format='OGG', subtype='VORBIS')  # padded: 1
  write(d / 'tone.mp3', sine(262, 4.2, 44100, 0.3), 44100, format='MP3', subtype='MPEG_LAYER_III')  # 1
  write(d / 'silent.wav', np.zeros(5 * SR, np.float32), SR)
  (d / 'empty.wav').write_bytes(b'')
  (d / 'readme.wav').write_text('not audio\n' * 50)
  nan = sine(440, 5.0)
  nan[100] = np.nan
  write(d / 'nan.wav', nan, SR, subtype='FLOAT')
  return {'step_44k_stereo.wav': 7.0, 'tone_48k.flac': 5.0, 'short.ogg': 2.5, 'tone.mp3': 4.2}


def test_pipeline_end_to_end_mixed_folder(tmp_path, fake_crepe):
  del fake_crepe
  good = _mixed_folder(tmp_path / 'in')
  out = str(tmp_path / 'out' / 'train.tfrecord')
  report = run_prepare([str(tmp_path / 'in' / '*')], out)

  # Report: every bad file listed with its reason; nothing lost.
  reasons = {os.path.basename(s['source']): s['reason'] for s in report['skipped']}
  assert set(reasons) == {'silent.wav', 'empty.wav', 'readme.wav', 'nan.wav'}
  assert 'silent' in reasons['silent.wav'] and 'empty' in reasons['empty.wav']
  assert 'not an audio file' in reasons['readme.wav'] and 'non-finite' in reasons['nan.wav']
  assert report['sources_ok'] == 4 and report['n_input_files'] == 8
  ok = {os.path.basename(s['source']): s for s in report['ok']}
  for name, secs in good.items():
    assert ok[name]['seconds'] == pytest.approx(secs, abs=0.1 if name.endswith(('mp3', 'ogg')) else 1e-3)
  assert ok['short.ogg']['padded']
  assert any('zero-padded' in w['warning'] for w in report['warnings'])
  expected_windows = {'step_44k_stereo.wav': 4, 'tone_48k.flac': 2, 'short.ogg': 1, 'tone.mp3': 1}
  assert {k: v['examples'] for k, v in ok.items()} == expected_windows
  assert report['examples_written'] == {'train': 8, 'eval': 0}
  with open(os.path.join(os.path.dirname(out), 'prepare_report.json')) as f:
    assert json.load(f)['examples_written']['train'] == 8

  # Records: schema, sizes, and features aligned with the audio.
  records = read_records(out + '-*-of-*')
  assert len(records) == 8
  for r in records:
    assert r['audio'].shape == (64000,) and r['f0_hz'].shape == (1000,)
    assert r['f0_confidence'].shape == r['loudness_db'].shape == (1000,)
    assert r['sample_rate'][0] == 16000 and r['frame_rate'][0] == 250
  step = sorted([r for r in records if r['source_id'].endswith('step_44k_stereo.wav')],
                key=lambda r: r['start_sample'][0])
  assert [r['start_sample'][0] for r in step] == [0, 16000, 32000, 48000]
  x16, f_true = step_signal(SR)
  for k, r in enumerate(step):
    # Audio: the analytic signal at 16 kHz (stereo downmix of identical channels, soxr HQ).
    seg = x16[k * SR:k * SR + 64000]
    inner = np.abs(np.arange(64000) / SR + k - 2.0) > 0.01  # away from the onset click
    inner &= np.abs(np.arange(64000) / SR + k - 4.5) > 0.01
    assert np.max(np.abs(r['audio'] - seg)[inner]) < 5e-3
    # Loudness: silent before 2 s of the file, about -7.3 dB (0.5 amplitude at 220 Hz, A-weighted) after.
    t = k + np.arange(1000) / 250.0
    assert np.all(r['loudness_db'][t < 1.9] < -100)
    ld_on = r['loudness_db'][(t > 2.1) & (t < 4.4)]
    if ld_on.size:
      f2 = 220.0 ** 2  # IEC 61672 A-weighting at 220 Hz (about -9.9 dB)
      ra = 12194.0 ** 2 * f2 ** 2 / ((f2 + 20.6 ** 2) * np.sqrt((f2 + 107.7 ** 2) * (f2 + 737.9 ** 2))
                                     * (f2 + 12194.0 ** 2))
      assert np.median(ld_on) == pytest.approx(20 * np.log10(0.5) + 20 * np.log10(ra) + 2.0, abs=0.3)
    # f0 frames: 220 Hz before 4.5 s of the file, 440 Hz after (frame i centred on sample start + i*hop).
    voiced = (t > 2.1) & (np.abs(t - 4.5) > 0.04)
    np.testing.assert_allclose(r['f0_hz'][voiced], f_true[(t[voiced] * SR).astype(int)], rtol=0.01)

  # Statistics: over the frames of every kept file, against NumPy quantiles of the same features.
  with open(os.path.join(os.path.dirname(out), 'dataset_statistics.json')) as f:
    stats = json.load(f)
  assert stats['n_files'] == 4
  lds, f0s = [], []
  for name in good:
    audio, _ = audio_io.read_audio(tmp_path / 'in' / name)
    if len(audio) < 64000:
      audio = np.pad(audio, (0, 64000 - len(audio)))
    lds.append(features.loudness_backend(audio, SR, 250))
    f0, conf = fft_f0(audio)
    f0s.append(f0[conf >= 0.85])
  ld, f0 = np.concatenate(lds), np.concatenate(f0s)
  assert stats['n_frames'] == len(ld)
  assert stats['loudness_db']['quantiles']['0.5'] == pytest.approx(np.median(ld), abs=0.06)
  assert stats['f0_hz']['quantiles']['0.5'] == pytest.approx(np.median(f0), rel=2e-3)
  assert sum(stats['pitch_histogram']['counts']) == len(f0)


def test_split_by_source_file_never_by_window(tmp_path, fake_crepe):
  del fake_crepe
  d = tmp_path / 'in'
  d.mkdir()
  for i in range(6):
    write(d / f'f{i}.wav', sine(200 + 50 * i, 6.0, SR, 0.3), SR)
  out = str(tmp_path / 'out' / 'data.tfrecord')
  config = pipeline.PrepareConfig(eval_split_fraction=0.34)
  report = run_prepare([str(d / '*.wav')], out, config)
  train = read_records(out + '-*-of-*')
  evals = read_records(str(tmp_path / 'out' / 'data-eval.tfrecord-*-of-*'))
  train_src, eval_src = {r['source_id'] for r in train}, {r['source_id'] for r in evals}
  assert len(eval_src) == 2 and len(train_src) == 4 and not train_src & eval_src
  assert len(train) == 4 * 3 and len(evals) == 2 * 3  # 6 s files: windows at 0, 1, 2 s
  assert report['examples_written'] == {'train': 12, 'eval': 6}
  # Deterministic: the same assignment from the ids alone, independent of order.
  paths = sorted(str(p) for p in d.glob('*.wav'))
  assert features.eval_split(paths[::-1], 0.34) == eval_src
  with open(tmp_path / 'out' / 'dataset_statistics.json') as f:
    assert json.load(f)['n_files'] == 4  # statistics of the training split only


def test_short_files_skip_flag_and_window_count(tmp_path, fake_crepe):
  del fake_crepe
  d = tmp_path / 'in'
  d.mkdir()
  write(d / 'short.wav', sine(440, 3.0), SR)
  write(d / 'long.wav', sine(440, 4.0 + 2.5), SR)  # windows at 0, 1, 2 s (2.5 s left over < 1 more hop)
  out = str(tmp_path / 'o' / 'x.tfrecord')
  report = run_prepare([str(d / '*.wav')], out, pipeline.PrepareConfig(short_files='skip'))
  assert [os.path.basename(s['source']) for s in report['skipped']] == ['short.wav']
  assert 'shorter than example_secs' in report['skipped'][0]['reason']
  assert report['examples_written']['train'] == 3


def test_glob_matching_nothing_is_an_error_before_any_work(tmp_path):
  write(tmp_path / 'a.wav', sine(440, 5.0), SR)
  out = tmp_path / 'out' / 'x.tfrecord'
  with pytest.raises(FileNotFoundError, match=r'\*\.flac'):
    run_prepare([str(tmp_path / '*.wav'), str(tmp_path / '*.flac')], str(out))
  assert not (tmp_path / 'out').exists()


def test_existing_output_refused_then_overwritten(tmp_path, fake_crepe):
  del fake_crepe
  d = tmp_path / 'in'
  d.mkdir()
  for i in range(3):
    write(d / f'f{i}.wav', sine(300, 4.0, SR, 0.3), SR)
  out = str(tmp_path / 'o' / 'x.tfrecord')
  run_prepare([str(d / '*.wav')], out, num_shards=2)
  assert len(read_records(out + '-*-of-00002')) == 3
  with pytest.raises(FileExistsError, match='--overwrite'):
    run_prepare([str(d / '*.wav')], out)
  os.remove(d / 'f2.wav')
  report = run_prepare([str(d / '*.wav')], out, num_shards=1, overwrite=True)
  # The old 2-shard files are gone: a reader of x.tfrecord-* sees only the new preparation.
  assert sorted(os.listdir(tmp_path / 'o')) == ['dataset_statistics.json', 'prepare_report.json',
                                                'x.tfrecord-00000-of-00001']
  assert len(read_records(out + '-*')) == 2 == report['examples_written']['train']


class _Interrupt(BaseException):
  """Stands for a kill / Ctrl-C in the middle of a run (not an ordinary per-file error)."""


def test_interrupted_run_leaves_no_partial_shard(tmp_path, monkeypatch):
  d = tmp_path / 'in'
  d.mkdir()
  for i in range(3):
    write(d / f'f{i}.wav', sine(300, 5.0, SR, 0.3), SR)
  calls = []

  def dies_on_second_batch(audio, *args, **kw):
    calls.append(1)
    if len(calls) == 2:
      raise _Interrupt()
    return fft_f0_batch(audio, *args, **kw)

  monkeypatch.setattr(features, 'f0_backend', dies_on_second_batch)
  out = str(tmp_path / 'o' / 'x.tfrecord')
  config = pipeline.PrepareConfig(batch_seconds=1.0)  # one CREPE call per file
  # The runner may re-raise the interrupt wrapped in its own error type.
  with pytest.raises(BaseException):  # noqa: B017
    run_prepare([str(d / '*.wav')], out, config)
  assert len(calls) == 2  # the first file's windows had been written (to the temp folder)
  leftovers = os.listdir(tmp_path / 'o')
  assert not [f for f in leftovers if f.startswith('x.tfrecord')], leftovers
  assert 'prepare_report.json' not in leftovers
  # A later successful run cleans the temp folder of the interrupted one.
  monkeypatch.setattr(features, 'f0_backend', fft_f0_batch)
  run_prepare([str(d / '*.wav')], out, config)
  assert not [f for f in os.listdir(tmp_path / 'o') if f.startswith('beam-temp')]


# ------------------------------------------------------------------------------------------------------------
# NSynth.
# ------------------------------------------------------------------------------------------------------------
def nsynth_example(note_str, pitch, source, audio, velocity=100, instrument=7, family=3, qualities=None):
  """An original-format NSynth tf.train.Example (bytes)."""
  import tensorflow as tf
  tr = tf.train
  ints = lambda v: tr.Feature(int64_list=tr.Int64List(value=list(np.atleast_1d(v))))
  byts = lambda v: tr.Feature(bytes_list=tr.BytesList(value=[v.encode()]))
  feats = {
      'note_str': byts(note_str), 'pitch': ints(pitch), 'velocity': ints(velocity),
      'instrument': ints(instrument), 'instrument_family': ints(family), 'instrument_source': ints(source),
      'qualities': ints(qualities if qualities is not None else [0, 1, 0, 0, 1, 0, 0, 0, 0, 1]),
      'sample_rate': ints(16000), 'instrument_str': byts('x_acoustic_007'),
      'instrument_family_str': byts('guitar'), 'instrument_source_str': byts('acoustic'),
  }
  if audio is not None:
    feats['audio'] = tr.Feature(float_list=tr.FloatList(value=np.asarray(audio, np.float32)))
  return tr.Example(features=tr.Features(feature=feats)).SerializeToString()


def write_nsynth(path, examples):
  import tensorflow as tf
  with tf.io.TFRecordWriter(str(path)) as w:
    for e in examples:
      w.write(e)
  return str(path)


NOTES = [  # note_str, pitch, instrument_source, kept by the paper's filter
    ('guitar_acoustic_007-060-100', 60, 0, True),
    ('guitar_acoustic_007-024-100', 24, 0, True),
    ('guitar_acoustic_007-084-100', 84, 0, True),
    ('guitar_electronic_001-060-100', 60, 1, False),
    ('guitar_synthetic_002-060-100', 60, 2, False),
    ('guitar_acoustic_007-021-100', 21, 0, False),
    ('guitar_acoustic_007-096-100', 96, 0, False),
]


def make_nsynth_files(d):
  d.mkdir(exist_ok=True)
  audios = {}
  exs = []
  for i, (name, pitch, source, _) in enumerate(NOTES):
    f0 = 440.0 * 2 ** ((pitch - 69) / 12)
    a = sine(f0, 4.0, SR, 0.2 + 0.05 * i) * np.exp(-np.arange(64000) / 32000.0).astype(np.float32)
    audios[name] = a
    exs.append(nsynth_example(name, pitch, source, a))
  exs.append(nsynth_example('broken_acoustic_000-060-100', 60, 0, None))  # no audio feature
  write_nsynth(d / 'nsynth-test.tfrecord', exs)
  (d / 'nsynth-corrupt.tfrecord').write_bytes(np.random.RandomState(5).bytes(3000))
  return audios


def test_nsynth_mode_filters_and_keeps_labels(tmp_path, fake_crepe):
  del fake_crepe
  audios = make_nsynth_files(tmp_path / 'ns')
  out = str(tmp_path / 'cache' / 'nsynth.tfrecord')
  config = pipeline.PrepareConfig(nsynth=True)
  report = run_prepare([str(tmp_path / 'ns' / '*.tfrecord')], out, config)
  kept = {n for n, _, _, k in NOTES if k}
  assert report['sources_ok'] == 3 and report['sources_filtered'] == 4
  assert report['filtered_reasons'] == {'filtered: instrument_source is not acoustic': 2,
                                        'filtered: pitch outside 24..84': 2}
  skipped = {os.path.basename(s['source'].split('#')[0]): s['reason'] for s in report['skipped']}
  assert 'audio' in skipped['nsynth-test.tfrecord']
  assert 'corrupt' in skipped['nsynth-corrupt.tfrecord'] or 'unreadable' in skipped['nsynth-corrupt.tfrecord']
  recs = read_records(out + '-*')
  assert {r['note_str'] for r in recs} == kept == {r['source_id'] for r in recs}
  for r in recs:
    np.testing.assert_array_equal(r['audio'], audios[r['note_str']])  # 16 kHz: bit-exact, one window
    pitch = int(r['note_str'].split('-')[1])
    assert r['pitch'][0] == pitch and r['instrument_source'][0] == 0 and r['velocity'][0] == 100
    assert list(r['qualities']) == [0, 1, 0, 0, 1, 0, 0, 0, 0, 1]
    assert r['instrument_family_str'] == 'guitar'
    f0 = r['f0_hz'][r['f0_confidence'] > 0.5]
    assert np.median(f0) == pytest.approx(440.0 * 2 ** ((pitch - 69) / 12), rel=0.01)


def test_nsynth_cache_read_by_provider(tmp_path, fake_crepe):
  del fake_crepe
  from ddsp.training import data
  audios = make_nsynth_files(tmp_path / 'ns')
  out = str(tmp_path / 'cache' / 'nsynth.tfrecord')
  run_prepare([str(tmp_path / 'ns' / 'nsynth-test.tfrecord')], out, pipeline.PrepareConfig(nsynth=True))
  provider = data.NSynthTFRecordProvider(out + '-*', with_source_id=True)
  batch = next(iter(provider.get_batch(3, shuffle=False, repeats=1)))
  assert batch['audio'].shape == (3, 64000) and batch['f0_hz'].shape == (3, 1000)
  assert batch['qualities'].shape == (3, 10) and batch['pitch'].shape == (3,)
  for i in range(3):
    name = batch['note_str'][i].numpy().decode()
    np.testing.assert_array_equal(batch['audio'][i].numpy(), audios[name])
    assert int(batch['pitch'][i]) == int(name.split('-')[1])
  # The original records (no f0) given to the provider: a clear message saying how to prepare them.
  with pytest.raises(ValueError, match='ddsp_prepare_tfrecord --nsynth'):
    data.NSynthTFRecordProvider(str(tmp_path / 'ns' / 'nsynth-test.tfrecord')).get_batch(2)


# ------------------------------------------------------------------------------------------------------------
# Command line and the real CREPE.
# ------------------------------------------------------------------------------------------------------------
def _cli(args, tmp_path):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  return subprocess.run([sys.executable, '-m', 'ddsp.data_prep.prepare_tfrecord'] + args, capture_output=True,
                        text=True, env=env, cwd=str(tmp_path), timeout=300, check=False)


def test_cli_flag_errors_before_any_work(tmp_path, capsys):
  from absl import app
  from absl import flags
  from ddsp.data_prep import prepare_tfrecord
  prepare_tfrecord.define_flags()
  write(tmp_path / 'a.wav', sine(440, 5.0), SR)
  try:
    flags.FLAGS(['prog', f'--input_audio_filepatterns={tmp_path}/*.nothing',
                 f'--output_tfrecord_path={tmp_path}/o/x'], known_only=True)
    assert prepare_tfrecord.run(IN_MEMORY) == 2
    assert 'No file matches' in capsys.readouterr().err
    assert not (tmp_path / 'o').exists()
    flags.FLAGS.unparse_flags()
    flags.FLAGS(['prog', '--output_tfrecord_path=/tmp/x'], known_only=True)
    with pytest.raises(app.UsageError, match='input_audio_filepatterns'):
      prepare_tfrecord.run([])
    flags.FLAGS(['prog', '--input_audio_filepatterns=/tmp/*.wav', '--output_tfrecord_path='], known_only=True)
    with pytest.raises(app.UsageError, match='output_tfrecord_path'):
      prepare_tfrecord.run([])
  finally:
    flags.FLAGS.unparse_flags()


@pytest.mark.skipif(not HAVE_CREPE, reason='ddsp.pitch (the CREPE port) is not available yet')
def test_cli_real_crepe_on_bundled_violin(tmp_path):
  src = os.path.join(ASSETS, 'violin_note_A4_69.flac')
  if not os.path.exists(src):
    pytest.skip('bundled violin note missing')
  d = tmp_path / 'in'
  d.mkdir()
  os.symlink(src, d / 'violin.flac')
  (d / 'broken.wav').write_bytes(b'RIFF1234WAVEjunk')
  out = tmp_path / 'o' / 'v.tfrecord'
  res = _cli([f'--input_audio_filepatterns={d}/*', f'--output_tfrecord_path={out}',
              '--direct_running_mode=in_memory', '--direct_num_workers=1', '--example_secs=1',
              '--hop_secs=0.5'], tmp_path)
  assert res.returncode == 0, res.stderr[-3000:]
  assert 'Skipped 1 source' in res.stdout and 'broken.wav' in res.stdout
  # Beam's own INFO lines and its import-time notice about BigQuery clients are not shown.
  for noise in ('apitools', 'bigquery', 'statecache.py', 'iobase.py', 'filebasedsink.py'):
    assert noise not in res.stderr, res.stderr[-3000:]
  recs = read_records(str(out) + '-*')
  assert recs
  f0 = np.concatenate([r['f0_hz'][r['f0_confidence'] > 0.85] for r in recs])
  cents = 1200 * np.log2(np.median(f0) / 440.0)
  assert abs(cents) < 25  # A4, nominal 440 Hz
