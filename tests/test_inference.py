"""Tests of `ddsp.training.inference` (with `features` and `resynthesis`, through the API `inference`
re-exports) on tiny models trained for a few steps by `ddsp_run`.

Every check compares with an independent reference: CREPE's reading of the output audio, SciPy's convolution
of the exported impulse response, brute-force octave searches, the variables of the model itself, the bundled
recordings. The synthesizers follow f0 by construction, so even a briefly trained model must put its output
pitch where the controls ask.
"""
import os

import numpy as np
import pytest
import scipy.signal
import soundfile as sf

from ddsp import bundled
from ddsp import spectral_ops
from ddsp.data_prep import statistics
from ddsp.training import ddsp_run
from ddsp.training import features as features_lib
from ddsp.training import inference

import helpers

SR, FR = 16000, 250
TINY_FILES = helpers.TINY_FILES
TINY_PARAMS = helpers.tiny_params(n_examples=8, batch_size=2)
Z_FILES = ['models/nsynth_ae.gin', 'datasets/synthetic.gin', 'optimization/base.gin']
Z_PARAMS = [
    'n_samples = 16000', 'time_steps = 250', 'SyntheticProvider.example_secs = 1',
    'SyntheticProvider.n_examples = 4', 'RnnFcDecoder.rnn_channels = 8', 'RnnFcDecoder.ch = 8',
    'RnnFcDecoder.layers_per_stack = 1', 'MfccTimeDistributedRnnEncoder.rnn_channels = 8',
    'MfccTimeDistributedRnnEncoder.z_dims = 4', 'SpectralLoss.fft_sizes = (512, 128)', 'batch_size = 2',
]
CREPE_RATE = 100  # CREPE runs at 100 frames/s and is interpolated to 250: 2.5x cheaper, same curves here.


def _train(save_dir, files, params):
  result = ddsp_run.run('train', save_dir, gin_files=files, gin_params=params, num_steps=2,
                        steps_per_summary=0, progress_bar=False)
  assert result['step'] == 2
  return save_dir


@pytest.fixture(scope='module')
def trained_dir(tmp_path_factory):
  return _train(str(tmp_path_factory.mktemp('inference') / 'run'), TINY_FILES, TINY_PARAMS)


@pytest.fixture(scope='module')
def model(trained_dir):
  return inference.load_model(trained_dir)


@pytest.fixture(scope='module')
def voice():
  """The first 2.5 s of the bundled voice-like phrase (mono 16 kHz) and its CREPE / loudness features."""
  audio, rate = sf.read(bundled.asset_path('voice_like_phrase'), dtype='float32')
  assert rate == SR
  audio = audio[:40000]
  return audio, inference.extract_features(audio, SR, FR, crepe_frame_rate=CREPE_RATE)


def _cents(f_out, f_ref):
  return 1200.0 * np.log2(np.asarray(f_out, np.float64) / np.asarray(f_ref, np.float64))


# ------------------------------------------------------------------------------------------------------------
# Loading.
# ------------------------------------------------------------------------------------------------------------
def test_load_model_reads_the_saved_config_and_checkpoint(model, trained_dir):
  assert model.sample_rate == SR and model.frame_rate == FR and model.hop == 64
  assert model.train_n_samples == 16000 and model.train_time_steps == 250
  assert model.step == 2 and model.checkpoint == os.path.join(trained_dir, 'ckpt-2')
  assert 'Reverb.reverb_length = 800' in model.gin_config
  assert model.reverb is not None and model.reverb_input_key == 'add/signal'
  assert not model.has_z
  # The IR applied is the learned variable with its direct-path tap zeroed.
  variable = model.reverb.ir.numpy()
  np.testing.assert_array_equal(model.ir[1:], variable[1:])
  assert model.ir[0] == 0.0 and model.ir.shape == (800,)


def test_load_model_errors(trained_dir, tmp_path):
  missing = str(tmp_path / 'nowhere')
  with pytest.raises(FileNotFoundError, match='nowhere'):
    inference.load_model(missing)
  # A folder with the config but no checkpoint.
  no_ckpt = tmp_path / 'no_ckpt'
  no_ckpt.mkdir()
  (no_ckpt / 'operative_config-0.gin').write_text(
      open(os.path.join(trained_dir, 'operative_config-0.gin')).read())
  with pytest.raises(FileNotFoundError, match='No checkpoint found in .*no_ckpt'):
    inference.load_model(str(no_ckpt))
  # A folder with a checkpoint but no config.
  no_config = tmp_path / 'no_config'
  no_config.mkdir()
  with pytest.raises(FileNotFoundError, match='No operative_config'):
    inference.load_model(str(no_config))
  # A config that does not fit the checkpoint (another GRU size).
  with pytest.raises(inference.IncompatibleCheckpointError, match='does not match'):
    inference.load_model(trained_dir, gin_params=['RnnFcDecoder.rnn_channels = 8'])
  assert issubclass(inference.IncompatibleCheckpointError, ValueError)


# ------------------------------------------------------------------------------------------------------------
# Any length, one pass.
# ------------------------------------------------------------------------------------------------------------
def test_any_length_in_one_pass_with_gru_state_carried(model):
  rng = np.random.default_rng(0)
  n_frames = 343  # 1.372 s: neither the training window nor a multiple of it.
  f0 = 220.0 * 2.0 ** (rng.uniform(-1, 1, n_frames).cumsum() / 60.0)
  ld = -30.0 + 5.0 * np.sin(np.arange(n_frames) / 20.0)
  audio, dry, outputs = model.resynthesize(f0, ld)
  assert audio.shape == dry.shape == (n_frames * 64,)
  assert outputs['amps'].shape[:2] == (1, n_frames)
  # The GRU is causal: over the first 100 frames, one pass over the whole file gives exactly the decoder
  # outputs of a pass over those 100 frames alone. (Windowed processing would restart the state at each seam.)
  _, _, prefix = model.resynthesize(f0[:100], ld[:100])
  np.testing.assert_allclose(outputs['amps'][:, :100], prefix['amps'], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(outputs['harmonic_distribution'][:, :100], prefix['harmonic_distribution'],
                             rtol=1e-5, atol=1e-6)
  # An input of any sample count: the output has the same length.
  out = inference.transfer(model, np.sin(2 * np.pi * 330.0 * np.arange(12345) / SR).astype(np.float32) * 0.3,
                           crepe_frame_rate=CREPE_RATE)
  assert out.audio.shape == (12345,) and np.all(np.isfinite(out.audio))


# ------------------------------------------------------------------------------------------------------------
# Independent controls.
# ------------------------------------------------------------------------------------------------------------
def test_pitch_shift_by_an_octave_doubles_the_measured_f0(model, voice):
  audio, features = voice
  result = {}
  for shift in (0.0, inference.octaves(1)):
    adjusted, info = inference.adjust_features(features, pitch_shift=shift)
    assert info['pitch_shift_semitones'] == shift
    out, dry, outputs = model.resynthesize(adjusted['f0_hz'], adjusted['loudness_db'], audio)
    # The synthesizer reads exactly the shifted curve.
    np.testing.assert_allclose(outputs['f0_hz'][0, :, 0], features['f0_hz'] * 2.0 ** (shift / 12.0),
                               rtol=1e-5)
    f0_out, conf_out = spectral_ops.compute_f0(dry, SR, FR, crepe_frame_rate=CREPE_RATE)
    result[shift] = (f0_out, conf_out, adjusted['voiced'])
  f0_0, c0, voiced = result[0.0]
  f0_12, c12, _ = result[12.0]
  frames = voiced & (c0 > 0.5) & (c12 > 0.5)
  assert frames.sum() > 200
  ratio_cents = _cents(f0_12[frames], f0_0[frames])
  assert abs(np.median(ratio_cents) - 1200.0) < 10.0
  assert np.mean(np.abs(ratio_cents - 1200.0) < 50.0) > 0.9
  # ... and each output follows the curve it was given.
  assert np.mean(np.abs(_cents(f0_12[frames], 2.0 * features['f0_hz'][frames])) < 50.0) > 0.9


def test_loudness_shift_and_range_scaling_reach_the_decoder(model, voice):
  audio, features = voice
  adjusted, info = inference.adjust_features(features, loudness_shift=6.0, unvoiced_loudness_db=None)
  assert info['loudness_shift_db'] == 6.0
  _, _, outputs = model.resynthesize(adjusted['f0_hz'], adjusted['loudness_db'], audio)
  np.testing.assert_allclose(outputs['loudness_db'][0, :, 0], features['loudness_db'] + 6.0, atol=1e-4)
  np.testing.assert_allclose(outputs['ld_scaled'][0, :, 0], features['loudness_db'] / 120.0 + 1.0 + 0.05,
                             atol=1e-5)
  # Range scaling: deviations around the voiced mean (dB) and the voiced median pitch (semitones).
  adjusted, _ = inference.adjust_features(features, loudness_range_scale=0.5, f0_range_scale=0.0,
                                          unvoiced_loudness_db=None)
  voiced = adjusted['voiced']
  mean = features['loudness_db'][voiced].mean()
  np.testing.assert_allclose(adjusted['loudness_db'], mean + 0.5 * (features['loudness_db'] - mean),
                             atol=1e-3)
  median_midi = np.median(12 * np.log2(features['f0_hz'][voiced] / 440.0) + 69)
  np.testing.assert_allclose(adjusted['f0_hz'], 440.0 * 2 ** ((median_midi - 69) / 12), rtol=1e-5)


def test_voiced_mask_and_user_curves(model, voice, tmp_path):
  audio, features = voice
  adjusted, info = inference.adjust_features(features, confidence_threshold=0.8, max_gap_frames=0)
  unvoiced = features['f0_confidence'] < 0.8
  assert 0 < unvoiced.sum() < unvoiced.size and info['voiced_frames'] == (~unvoiced).sum()
  assert np.all(adjusted['loudness_db'][unvoiced] == -120.0)
  np.testing.assert_array_equal(adjusted['loudness_db'][~unvoiced], features['loudness_db'][~unvoiced])
  # Short dips of confidence between voiced frames (note changes) are bridged; longer gaps and the edges stay.
  mask = np.array([0, 0, 1, 1, 0, 1, 0, 0, 1, 0, 0, 0, 0, 1, 0], bool)
  filled = features_lib.fill_short_gaps(mask, 2)
  np.testing.assert_array_equal(filled, np.array([0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0], bool))
  adjusted, _ = inference.adjust_features(features, confidence_threshold=0.8)  # default: 8-frame gaps
  np.testing.assert_array_equal(adjusted['voiced'], features_lib.fill_short_gaps(~unvoiced, 8))
  assert adjusted['voiced'].sum() > (~unvoiced).sum()
  n = features['f0_hz'].size
  # A CSV curve (time,value with a header) of another length is resampled, end points aligned.
  csv = tmp_path / 'f0.csv'
  csv.write_text('time,f0\n' + ''.join(f'{t},{200.0 + 100.0 * t}\n' for t in range(11)))
  npy = tmp_path / 'ld.npy'
  np.save(npy, np.linspace(-50.0, -10.0, 7))
  adjusted, _ = inference.adjust_features(features, f0_curve=str(csv), loudness_curve=str(npy))
  np.testing.assert_allclose(adjusted['f0_hz'], np.linspace(200.0, 1200.0, n), rtol=1e-5)
  np.testing.assert_allclose(adjusted['loudness_db'], np.linspace(-50.0, -10.0, n), atol=1e-4)
  assert adjusted['voiced'].all()  # a user f0 curve decides voicing (f0 > 0)
  bad = tmp_path / 'bad.csv'
  bad.write_text('1.0\nfoo\n2.0\n')
  with pytest.raises(inference.InputError, match='bad.csv'):
    inference.adjust_features(features, f0_curve=str(bad))


def test_extrapolation_beyond_the_training_pitch_range(model):
  # The synthetic training data spans MIDI 36..84; ask for a glide MIDI 88 -> 95 (1319 -> 1976 Hz).
  assert 'SyntheticProvider.midi_max = 84' in model.gin_config
  n_frames = 375
  midi = np.linspace(88.0, 95.0, n_frames)
  f0 = 440.0 * 2.0 ** ((midi - 69.0) / 12.0)
  features = {'f0_hz': np.full(n_frames, 100.0), 'loudness_db': np.full(n_frames, -25.0),
              'f0_confidence': np.ones(n_frames)}
  adjusted, _ = inference.adjust_features(features, f0_curve=f0)
  _, dry, _ = model.resynthesize(adjusted['f0_hz'], adjusted['loudness_db'])
  f0_out, conf = spectral_ops.compute_f0(dry, SR, FR, crepe_frame_rate=CREPE_RATE)
  frames = np.arange(n_frames) > 10
  frames &= conf > 0.5
  assert frames.sum() > 0.8 * n_frames
  cents = _cents(f0_out[frames], f0[frames])
  assert np.mean(np.abs(cents) < 50.0) > 0.9, np.percentile(np.abs(cents), [50, 90])


# ------------------------------------------------------------------------------------------------------------
# Timbre transfer: auto_adjust.
# ------------------------------------------------------------------------------------------------------------
def _stats(midi_centre, loudness_db, tmp_path):
  rng = np.random.default_rng(1)
  acc = statistics.StatsAccumulator()
  for _ in range(3):
    midi = midi_centre + rng.normal(0.0, 2.0, 500)
    acc.add(loudness_db + rng.normal(0.0, 3.0, 500), 440.0 * 2.0 ** ((midi - 69.0) / 12.0), np.ones(500))
  path = tmp_path / 'dataset_statistics.json'
  path.write_text(__import__('json').dumps(acc.to_dict(frame_rate=FR)))
  return str(path)


def test_auto_adjust_matches_octave_and_loudness_to_the_training_set(model, voice, tmp_path):
  audio, features = voice
  voiced = features['f0_confidence'] >= 0.5
  median_in = np.median(12 * np.log2(features['f0_hz'][voiced] / 440.0) + 69)
  for target_midi in (40.0, 52.0, 66.0, 90.0):
    path = _stats(target_midi, -32.0, tmp_path)
    stats = features_lib.load_dataset_statistics(path)
    octaves, ld_shift = features_lib.auto_adjust_shifts(features['f0_hz'], features['loudness_db'], voiced,
                                                        stats)
    # Brute force: the whole-octave shift landing closest to the dataset's median pitch.
    median_ds = 12 * np.log2(stats['f0_hz']['quantiles']['0.5'] / 440.0) + 69
    best = min(range(-5, 6), key=lambda k: abs(median_in + 12 * k - median_ds))
    assert octaves == best
    want_ld = stats['mean_loudness_db_voiced'] - features['loudness_db'][voiced].mean()
    assert ld_shift == pytest.approx(want_ld)
  # Through the whole pipeline, with the statistics found in the model folder.
  path = _stats(45.0, -20.0, tmp_path)
  os.replace(path, os.path.join(model.save_dir, 'dataset_statistics.json'))
  try:
    result = inference.transfer(model, audio, auto_adjust=True, crepe_frame_rate=CREPE_RATE)
  finally:
    os.remove(os.path.join(model.save_dir, 'dataset_statistics.json'))
  assert result.info['auto_octave_shift'] == min(range(-5, 6), key=lambda k: abs(median_in + 12 * k - 45.0))
  voiced_out = result.features['voiced']
  assert np.mean(result.features['loudness_db'][voiced_out]) == pytest.approx(-20.0, abs=0.5)
  with pytest.raises(FileNotFoundError, match='dataset_statistics.json'):
    inference.transfer(model, audio, auto_adjust=True, crepe_frame_rate=CREPE_RATE)


# ------------------------------------------------------------------------------------------------------------
# Room acoustics.
# ------------------------------------------------------------------------------------------------------------
def test_dereverberation_acoustic_transfer_and_ir_export(trained_dir, voice, tmp_path):
  audio, features = voice
  room = inference.load_model(trained_dir)
  # Give the briefly trained room an audible tail so that the checks are not trivially passed.
  rng = np.random.default_rng(2)
  taps = np.arange(800)
  ir = (rng.normal(0.0, 0.2, 800) * np.exp(-taps / 150.0)).astype(np.float32)
  room.reverb.ir.assign(ir)
  result = inference.transfer(room, audio, crepe_frame_rate=CREPE_RATE)
  # Dereverberated = the signal feeding the reverb node.
  np.testing.assert_array_equal(result.audio_dry, result.outputs['add/signal'][0][:audio.size])
  # The exported IR is the model's variable (direct-path tap zeroed) ...
  path = str(tmp_path / 'ir.wav')
  inference.export_ir(room, path)
  read, rate = sf.read(path, dtype='float32')
  assert rate == SR
  np.testing.assert_array_equal(read[1:], ir[1:])
  assert read[0] == 0.0
  inference.export_ir(room, str(tmp_path / 'ir_dry.wav'), include_dry=True)
  assert sf.read(str(tmp_path / 'ir_dry.wav'))[0][0] == 1.0
  # ... and the full output differs from the dry one by exactly that convolution.
  full_dry = result.outputs['add/signal'][0]
  expected = full_dry + scipy.signal.fftconvolve(full_dry.astype(np.float64), read)[:full_dry.size]
  np.testing.assert_allclose(result.outputs['audio_synth'][0], expected, atol=2e-5)
  assert np.max(np.abs(result.audio - result.audio_dry)) > 1e-2
  # Acoustic transfer: any recording through the learned room.
  violin, _ = sf.read(bundled.asset_path('violin_note_A4_69'), dtype='float32')
  wet = inference.apply_ir(room, violin)
  reference = violin + scipy.signal.fftconvolve(violin.astype(np.float64), read)[:violin.size]
  np.testing.assert_allclose(wet, reference, atol=2e-5)
  # Outputs: WAV + PNG, atomically written.
  paths = inference.write_result(result, str(tmp_path / 'out' / 'voice.wav'), write_dry=True)
  assert [os.path.basename(p) for p in paths] == ['voice.wav', 'voice.png']
  written, rate = sf.read(paths[0], dtype='float32')
  assert rate == SR and written.size == audio.size
  np.testing.assert_allclose(written, np.clip(result.audio_dry, -1, 1), atol=1.0 / 32767 + 1e-6)
  assert open(paths[1], 'rb').read(8) == b'\x89PNG\r\n\x1a\n'
  assert not [n for n in os.listdir(tmp_path / 'out') if n.startswith('.')]


# ------------------------------------------------------------------------------------------------------------
# Bad input.
# ------------------------------------------------------------------------------------------------------------
def test_bad_inputs_give_clear_errors(model, tmp_path):
  with pytest.raises(inference.InputError, match='silent'):
    inference.transfer(model, np.zeros(8000, np.float32))
  noise = np.random.default_rng(0).uniform(-0.5, 0.5, 8000).astype(np.float32)
  with pytest.raises(inference.InputError, match='No voiced frames'):
    inference.transfer(model, noise, confidence_threshold=0.9, crepe_frame_rate=CREPE_RATE)
  not_audio = tmp_path / 'notes.wav'
  not_audio.write_text('this is not audio')
  with pytest.raises(inference.InputError, match='notes.wav'):
    inference.transfer(model, str(not_audio))
  with pytest.raises(inference.InputError, match='does not exist|missing|No such'):
    inference.transfer(model, str(tmp_path / 'missing.wav'))
  with pytest.raises(ValueError, match='no timbre latent z'):
    inference.transfer(model, noise, interpolate_with=noise, confidence_threshold=0,
                       crepe_frame_rate=CREPE_RATE)


def test_other_rate_and_channels_are_converted_with_a_note(model, tmp_path):
  t = np.arange(22050) / 22050.0
  tone = 0.3 * np.sin(2 * np.pi * 440.0 * t)
  path = str(tmp_path / 'stereo.wav')
  sf.write(path, np.stack([tone, 0.5 * tone], axis=1), 22050, subtype='FLOAT')
  result = inference.transfer(model, path, crepe_frame_rate=CREPE_RATE)
  assert result.audio.shape == (16000,)
  assert any('2 channels downmixed' in n for n in result.info['notes'])
  assert any('22050 Hz to 16000 Hz' in n for n in result.info['notes'])
  voiced = result.features['voiced']
  assert np.median(result.features_input['f0_hz'][voiced]) == pytest.approx(440.0, rel=0.01)


# ------------------------------------------------------------------------------------------------------------
# Timbre interpolation (a model with z).
# ------------------------------------------------------------------------------------------------------------
def test_timbre_interpolation_between_two_inputs(tmp_path_factory, voice):
  z_model = inference.load_model(_train(str(tmp_path_factory.mktemp('z') / 'run'), Z_FILES, Z_PARAMS))
  assert z_model.has_z and z_model.reverb is None
  audio_a, features_a = voice
  audio_b, _ = sf.read(bundled.asset_path('violin_note_A4_69'), dtype='float32')
  features_b = inference.extract_features(audio_b, SR, FR, crepe_frame_rate=CREPE_RATE)
  z_a = z_model.encode_z(features_a, audio_a)
  z_b = z_model.encode_z(features_b, audio_b)
  assert z_a.shape == (features_a['f0_hz'].size, 4)
  mean_b = z_b.mean(axis=0)
  np.testing.assert_allclose(features_lib.interpolate_z(z_a, z_b, 0.0), z_a)
  np.testing.assert_allclose(features_lib.interpolate_z(z_a, z_b, 1.0), np.broadcast_to(mean_b, z_a.shape),
                             atol=1e-6)
  half = inference.transfer(z_model, audio_a, interpolate_with=audio_b, interpolation=0.5,
                            crepe_frame_rate=CREPE_RATE)
  # The decoder read the midpoint between A's z and B's average z.
  np.testing.assert_allclose(half.outputs['z'][0], 0.5 * (z_a + mean_b), atol=1e-5)
  own = inference.transfer(z_model, audio_a, crepe_frame_rate=CREPE_RATE)
  np.testing.assert_allclose(own.outputs['z'][0], z_a, atol=1e-5)
  assert half.audio.shape == own.audio.shape == audio_a.shape
  assert np.max(np.abs(half.outputs['amps'] - own.outputs['amps'])) > 0


def test_dereverberation_when_nodes_follow_the_reverb():
  # A DAG where noise is added after the reverb: bypassing the reverb must keep that later node.
  from ddsp.training import models
  dag = ("ProcessorGroup.dag = [(@synths.Harmonic(), ['amps', 'harmonic_distribution', 'f0_hz']), "
         "(@effects.Reverb(), ['harmonic/signal']), (@synths.FilteredNoise(), ['noise_magnitudes']), "
         "(@processors.Add(), ['reverb/signal', 'filtered_noise/signal'])]")
  ddsp_run.parse_gin(gin_files=TINY_FILES, gin_params=TINY_PARAMS + [dag, 'FilteredNoise.initial_bias = 0.0'])
  wrapped = inference.wrap_model(models.get_model())
  assert wrapped.reverb_input_key == 'harmonic/signal' and wrapped.frame_rate == FR
  wrapped.reverb.ir.assign(np.random.default_rng(3).normal(0.0, 0.1, 800).astype(np.float32))
  n_frames = 130
  audio, dry, outputs = wrapped.resynthesize(np.full(n_frames, 300.0), np.full(n_frames, -30.0))
  assert audio.shape == dry.shape == (n_frames * 64,)
  noise = outputs['filtered_noise/signal'][0]
  np.testing.assert_allclose(dry, outputs['harmonic/signal'][0] + noise, atol=1e-6)
  np.testing.assert_allclose(audio, outputs['reverb/signal'][0] + noise, atol=1e-6)
  assert np.max(np.abs(audio - dry)) > 1e-2


def test_dataset_statistics_found_through_a_wrapped_gin_binding(tmp_path):
  # Gin's operative config puts a long value on its own line after `= \`.
  data = tmp_path / ('a_long_folder_name_' * 4) / 'data'
  data.mkdir(parents=True)
  (data / 'dataset_statistics.json').write_text('{}')
  config = f"TFRecordProvider.file_pattern = \\\n    '{data}/train.tfrecord-*'\n"
  assert features_lib.find_dataset_statistics(str(tmp_path / 'model'), config) == str(
      data / 'dataset_statistics.json')
  assert features_lib.find_dataset_statistics(str(tmp_path / 'model'), '') is None
