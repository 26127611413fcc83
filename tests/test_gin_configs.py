"""Every .gin file in the repository's gin/ folder parses; every model config builds, runs and has the size
its architecture implies (parameter counts from closed-form formulas over the configured layer sizes); one
`sample_rate` / `frame_rate` / `example_secs` reaches every provider, preprocessor, synthesizer, encoder, reverb
and loss; the real-time recipes have the geometry they state."""
import math
import os

import gin
import numpy as np
import pytest
import tensorflow as tf

import ddsp.training  # noqa: F401  (registers every configurable)
from ddsp.training import configs
from ddsp.training import models

REPO_GIN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'gin')
ALL_GIN_FILES = configs.list_gin_files(REPO_GIN_DIR)
# Files that complete a model file (they read its macros `sample_rate`, `frame_rate`, `example_secs`).
FRAGMENTS = [f for f in ALL_GIN_FILES if f.startswith(('datasets/', 'eval/', 'optimization/'))]
SAMPLE_RATE = 16000
HOP = 64


def _parse(relpath, bindings=(), base=()):
  gin.clear_config()
  configs.add_search_path(REPO_GIN_DIR)
  files = [os.path.join(REPO_GIN_DIR, f) for f in list(base) + [relpath]]
  gin.parse_config_files_and_bindings(files, list(bindings))


def _bound(name, default=None):
  """The bound value with configurable references evaluated (`@reverb/secs_to_samples()` -> 48000)."""
  try:
    return configs.bound_value(name)
  except ValueError:
    return default


def _defines_model():
  return _bound('get_model.model') is not None


def _model_files():
  found = []
  for relpath in ALL_GIN_FILES:
    if relpath in FRAGMENTS:
      continue
    _parse(relpath)
    if _defines_model():
      found.append(relpath)
  gin.clear_config()
  return found


MODEL_FILES = _model_files()


@pytest.fixture(autouse=True)
def _clean_gin():
  yield
  gin.clear_config()


def test_the_expected_files_exist():
  for name in ('models/ae.gin', 'models/solo_instrument.gin', 'models/nsynth_ae.gin',
               'models/nsynth_ae_unsupervised.gin', 'models/tiny.gin', 'papers/iclr2020/nsynth_ae.gin',
               'papers/iclr2020/nsynth_ae_unsupervised.gin', 'papers/iclr2020/solo_instrument.gin',
               'papers/iclr2020/tiny_instrument.gin', 'models/tiny_fast.gin', 'recipes/tiny_instrument_fast.gin'):
    assert name in ALL_GIN_FILES, name
  assert set(MODEL_FILES) >= {f for f in ALL_GIN_FILES if f.startswith(('models/', 'papers/', 'recipes/'))}


@pytest.mark.parametrize('relpath', ALL_GIN_FILES)
def test_gin_file_parses(relpath):
  # Unknown configurables or parameters raise here; an unbound macro raises when the config is finalized.
  # A fragment (dataset, eval, optimisation) reads the model file's macros: it parses with one.
  _parse(relpath, base=['models/ae.gin'] if relpath in FRAGMENTS else [])
  assert gin.config_str() is not None


def test_fragments_bind_no_rate_of_their_own():
  """Only model files bind the rate macros: a dataset file included after a 48 kHz model cannot reset it."""
  for relpath in FRAGMENTS:
    _parse(relpath, base=['models/realtime/realtime_48k.gin'])
    assert _bound('%sample_rate') == 48000 and _bound('%frame_rate') == 50, relpath


def _harmonic_tone_batch(batch, n_samples, f0=220.0, sample_rate=SAMPLE_RATE, hop=HOP):
  """Two-harmonic tones with their f0 and A-weighted loudness (computed in NumPy by the DSP library)."""
  from ddsp import spectral_ops
  t = np.arange(n_samples) / sample_rate
  gains = np.linspace(0.2, 0.5, batch)[:, None]
  audio = (gains * (np.sin(2 * np.pi * f0 * t) + 0.5 * np.sin(4 * np.pi * f0 * t))).astype(np.float32)
  n_frames = -(-n_samples // hop)
  loudness = spectral_ops.compute_loudness(audio, sample_rate, sample_rate // hop)
  return {
      'audio': tf.constant(audio),
      'f0_hz': tf.constant(np.full((batch, n_frames), f0, np.float32)),
      'f0_confidence': tf.ones((batch, n_frames)),
      'loudness_db': tf.constant(loudness.astype(np.float32)),
  }


# ----------------------------------------------------------------------------------------------------------
# Closed-form parameter counts from the configured layer sizes.
# ----------------------------------------------------------------------------------------------------------
def _dense(n_in, n_out):
  return n_in * n_out + n_out


def _stack(n_in, ch, layers):
  """layers x [Dense(ch), LayerNorm(ch)]: kernel + bias + gamma + beta."""
  total = 0
  for _ in range(layers):
    total += _dense(n_in, ch) + 2 * ch
    n_in = ch
  return total


def _gru(n_in, units):
  """Reset-after GRU: three gates, input kernel, recurrent kernel, input and recurrent biases."""
  return 3 * (n_in * units + units * units + units + units)


def _decoder_params(input_channels):
  rnn = _bound('RnnFcDecoder.rnn_channels')
  ch = _bound('RnnFcDecoder.ch')
  lps = _bound('RnnFcDecoder.layers_per_stack')
  n_out = sum(size for _, size in _bound('RnnFcDecoder.output_splits'))
  total = sum(_stack(c, ch, lps) for c in input_channels)
  stacked = [ch if lps else c for c in input_channels]
  total += _gru(sum(stacked), rnn)
  out_in = rnn + sum(stacked)
  total += _stack(out_in, ch, lps)
  total += _dense(ch if lps else out_in, n_out)
  return total


def _mfcc_encoder_params():
  n_mfcc = _bound('MfccTimeDistributedRnnEncoder.n_mfcc', 30)
  rnn = _bound('MfccTimeDistributedRnnEncoder.rnn_channels')
  z_dims = _bound('MfccTimeDistributedRnnEncoder.z_dims')
  norm = 2 * n_mfcc  # instance norm (or layer norm): scale and offset per coefficient
  return norm + _gru(n_mfcc, rnn) + _dense(rnn, z_dims)


def _conv(k, n_in, n_out):
  return k * k * n_in * n_out + n_out


def _f0_encoder_params():
  stem = _bound('ResnetF0Encoder.stem_ch')
  blocks = list(_bound('ResnetF0Encoder.block_ch'))
  n_mels = _bound('ResnetF0Encoder.n_mels')
  n_bins = _bound('ResnetF0Encoder.n_bins')
  total = _conv(7, 1, stem) + 2 * stem
  c_in = stem
  for c in blocks:
    total += _conv(3, c_in, c) + 2 * c + _conv(3, c, c) + 2 * c + _conv(1, c_in, c)  # strided: projection
    c_in = c
  freq = n_mels
  for _ in range(2 + len(blocks)):
    freq = math.ceil(freq / 2)
  return total + _dense(freq * blocks[-1], n_bins)


def _expected_params():
  keys = list(_bound('RnnFcDecoder.input_keys'))
  z_dims = _bound('MfccTimeDistributedRnnEncoder.z_dims')
  channels = [z_dims if k == 'z' else 1 for k in keys]
  decoder = _decoder_params(channels)
  encoder = 0
  config = gin.config_str()
  encoder_ref = str(_bound('Autoencoder.encoder'))
  if 'MfccTimeDistributedRnnEncoder' in encoder_ref or 'CompositeEncoder' in encoder_ref:
    encoder += _mfcc_encoder_params()
  if 'CompositeEncoder' in encoder_ref:
    encoder += _f0_encoder_params()
  reverb = 0
  dag = str(_bound('ProcessorGroup.dag'))
  if 'Reverb' in dag and _bound('Reverb.trainable', False):
    reverb = _bound('Reverb.reverb_length')
  del config
  return decoder, encoder, reverb


@pytest.mark.parametrize('relpath', MODEL_FILES)
def test_model_builds_runs_and_has_the_implied_size(relpath):
  # 1 s examples keep the test fast; the parameter count does not depend on the length.
  _parse(relpath, ['example_secs = 1'])
  model = models.get_model()
  assert isinstance(model, models.Autoencoder)
  rate, frames = _bound('%sample_rate'), _bound('%frame_rate')
  assert (model.sample_rate, model.frame_rate, model.n_samples, model.time_steps) == (rate, frames, rate, frames)
  batch = _harmonic_tone_batch(2, rate, sample_rate=rate, hop=rate // frames)
  outputs = tf.function(lambda b: model(b, training=False))(batch)

  audio = outputs['audio_synth']
  assert audio.shape == (2, rate)
  assert audio.dtype == tf.float32
  assert np.all(np.isfinite(audio.numpy()))
  for name, size in _bound('RnnFcDecoder.output_splits'):
    assert outputs[name].shape == (2, frames, size), name
  losses = model.compute_losses(outputs)
  assert 'spectral_loss' in losses
  assert all(np.isfinite(float(v)) and float(v) > 0 for v in losses.values())

  decoder, encoder, reverb = _expected_params()
  assert model.decoder.count_params() == decoder
  if model.encoder is not None:
    assert model.encoder.count_params() == encoder
  assert model.count_params() == decoder + encoder + reverb


@pytest.mark.parametrize('relpath,paper_figure', [
    ('papers/iclr2020/solo_instrument.gin', 4.8e6),
    ('papers/iclr2020/tiny_instrument.gin', 0.28e6),
])
def test_paper_model_sizes(relpath, paper_figure):
  """solo_instrument about 4.8M parameters, tiny about 0.28M."""
  _parse(relpath)
  decoder, encoder, reverb = _expected_params()
  implied = decoder + encoder + reverb
  assert abs(implied - paper_figure) / paper_figure < 0.10
  # The built model holds exactly that many parameters (built on a short batch: size is length-free).
  _parse(relpath, ['n_samples = 16000', 'time_steps = 250'])
  model = models.get_model()
  model(_harmonic_tone_batch(1, 16000))
  assert abs(model.count_params() - implied) / implied < 0.10
  assert model.count_params() == implied


def test_solo_instrument_architecture():
  _parse('papers/iclr2020/solo_instrument.gin')
  assert tuple(_bound('RnnFcDecoder.input_keys')) == ('ld_scaled', 'f0_scaled')
  assert dict(_bound('RnnFcDecoder.output_splits')) == {'amps': 1, 'harmonic_distribution': 60,
                                                        'noise_magnitudes': 65}
  assert _bound('Autoencoder.encoder') is None
  assert _bound('RnnFcDecoder.rnn_channels') == 512 and _bound('RnnFcDecoder.layers_per_stack') == 3
  assert _bound('Reverb.trainable') is True and _bound('Reverb.reverb_length') == 48000


def test_nsynth_ae_architecture():
  _parse('papers/iclr2020/nsynth_ae.gin')
  assert tuple(_bound('RnnFcDecoder.input_keys')) == ('ld_scaled', 'f0_scaled', 'z')
  assert dict(_bound('RnnFcDecoder.output_splits'))['harmonic_distribution'] == 100
  assert _bound('MfccTimeDistributedRnnEncoder.z_dims') == 16
  assert 'Reverb' not in str(_bound('ProcessorGroup.dag'))


def test_tiny_has_no_dense_stacks():
  _parse('papers/iclr2020/tiny_instrument.gin')
  assert _bound('RnnFcDecoder.layers_per_stack') == 0
  assert _bound('RnnFcDecoder.rnn_channels') == 256


def test_fast_recipe_is_tiny_with_a_compact_decaying_reverb():
  _parse('papers/iclr2020/tiny_instrument.gin', ['n_samples = 16000', 'time_steps = 250'])
  paper = models.get_model()
  paper(_harmonic_tone_batch(1, 16000))
  _parse('recipes/tiny_instrument_fast.gin', ['n_samples = 16000', 'time_steps = 250'])
  assert _bound('RnnFcDecoder.layers_per_stack') == 0 and _bound('RnnFcDecoder.rnn_channels') == 256
  assert _bound('%batch_size') == 8 and _bound('Trainer.learning_rate') == 1e-3
  model = models.get_model()
  model(_harmonic_tone_batch(1, 16000))
  reverb, _ = model.reverb_node()
  assert reverb.reverb_length == 16000
  # Only the reverb differs from the paper's tiny model: 48000 - 16000 fewer taps.
  assert paper.count_params() - model.count_params() == 48000 - 16000
  # The effective IR's envelope: ir_scale at the first tap, 60 dB lower at the last (closed form).
  ir = np.asarray(reverb.ir)
  effective = np.asarray(reverb.get_ir())[0]
  ratio = effective[1:] / ir[1:]
  n = np.arange(1, 16000)
  np.testing.assert_allclose(ratio, 0.1 * 10.0 ** (-3.0 * n / 16000), rtol=1e-5)


def test_resolve_gin_file_forms():
  root = configs.gin_dir()
  solo = os.path.join(root, 'papers', 'iclr2020', 'solo_instrument.gin')
  assert configs.resolve_gin_file('papers/iclr2020/solo_instrument.gin') == solo
  assert configs.resolve_gin_file('papers/iclr2020/solo_instrument') == solo
  assert configs.resolve_gin_file('solo_instrument') == solo  # papers/ wins over models/
  assert configs.resolve_gin_file('models/solo_instrument') == os.path.join(root, 'models', 'solo_instrument.gin')
  assert configs.resolve_gin_file(solo) == solo
  assert configs.resolve_gin_file('tiny') == os.path.join(root, 'models', 'tiny.gin')
  fast = os.path.join(root, 'recipes', 'tiny_instrument_fast.gin')
  assert configs.resolve_gin_file('tiny_instrument_fast') == fast
  with pytest.raises(FileNotFoundError, match='tiny_instrument'):
    configs.resolve_gin_file('tiny_instrumnt')


# ----------------------------------------------------------------------------------------------------------
# One sample_rate / frame_rate for every component.
# ----------------------------------------------------------------------------------------------------------
def _rates_seen(model):
  """(component, sample_rate or None, frame count or None) for every part of the model that reads a rate."""
  seen = [('preprocessor', getattr(model.preprocessor, 'sample_rate', None), model.preprocessor.time_steps)]
  encoders = list(getattr(model.encoder, 'encoders', None) or ([model.encoder] if model.encoder else []))
  for enc in encoders:
    seen.append((enc.name, enc.sample_rate, getattr(enc, 'z_time_steps', getattr(enc, 'time_steps', None))))
  for proc in model.processor_group.processors:
    seen.append((proc.name, getattr(proc, 'sample_rate', None), None))
  for loss in model.loss_objs:
    seen.append((loss.name, loss.sample_rate, loss.frame_rate))
  return seen


@pytest.mark.parametrize('relpath', ['papers/iclr2020/tiny_instrument.gin', 'papers/iclr2020/solo_instrument.gin',
                                     'papers/iclr2020/nsynth_ae_unsupervised.gin',
                                     'recipes/tiny_instrument_fast.gin'])
def test_two_bindings_move_every_component_to_another_rate(relpath):
  _parse(relpath)
  reverb_secs = _bound('reverb/secs_to_samples.secs')
  provider_cls = type(_bound('train.data_provider'))
  _parse(relpath, ['sample_rate = 48000', 'frame_rate = 50'])
  model = models.get_model()
  assert (model.sample_rate, model.frame_rate, model.n_samples, model.time_steps) == (48000, 50, 192000, 200)
  for name, rate, frames in _rates_seen(model):
    assert rate in (None, 48000), name
    assert frames in (None, 200, 50), name  # a frame count, or the loss's frame rate
  if reverb_secs is not None:
    assert model.reverb_node()[0].reverb_length == int(reverb_secs * 48000)
  provider = _bound('train.data_provider')
  assert isinstance(provider, provider_cls)
  assert (provider.sample_rate, provider.frame_rate, provider.n_samples, provider.n_frames) == (48000, 50, 192000, 200)
  # The 16 kHz paper geometry is what the files give without the bindings.
  _parse(relpath)
  model = models.get_model()
  assert (model.sample_rate, model.frame_rate, model.n_samples, model.time_steps) == (16000, 250, 64000, 1000)


def test_example_secs_sets_both_lengths_and_fractional_lengths_are_refused():
  _parse('papers/iclr2020/tiny_instrument.gin', ['example_secs = 0.5'])
  assert (_bound('%n_samples'), _bound('%time_steps')) == (8000, 125)
  assert _bound('TFRecordProvider.example_secs') == 0.5
  assert configs.secs_to_samples(0.25, 48000) == 12000 and configs.secs_to_frames(2, 50) == 100
  with pytest.raises(ValueError, match='not a whole number'):
    configs.secs_to_frames(0.01, 50)  # half a frame
  with pytest.raises(ValueError, match='positive'):
    configs.secs_to_samples(0, 16000)


# ----------------------------------------------------------------------------------------------------------
# Real-time recipes.
# ----------------------------------------------------------------------------------------------------------
REALTIME = [('models/realtime/realtime_16k.gin', 16000, 60, 1024),
            ('models/realtime/realtime_32k.gin', 32000, 100, 2048),
            ('models/realtime/realtime_48k.gin', 48000, 120, 2048)]


@pytest.mark.parametrize('relpath,rate,n_harmonics,n_fft', REALTIME)
def test_realtime_model_geometry_and_online_loudness(relpath, rate, n_harmonics, n_fft):
  from ddsp.training import live
  from ddsp.training import preprocessing
  _parse(relpath, ['example_secs = 1'])
  model = models.get_model()
  assert isinstance(model.preprocessor, preprocessing.OnlineLoudnessPreprocessor)
  assert model.preprocessor.n_fft == n_fft
  assert model.encoder is None
  assert (model.sample_rate, model.frame_rate, model.hop_size, model.time_steps) == (rate, 50, rate // 50, 50)
  assert dict(model.decoder.output_splits)['harmonic_distribution'] == n_harmonics
  reverb, _ = model.reverb_node()
  assert reverb.reverb_length == rate // 2  # 0.5 s
  # Each loss scale spans the same time as the paper's at 16 kHz (2048 samples = 128 ms ... 64 = 4 ms).
  assert [size / rate for size in model.loss_objs[0].fft_sizes] == [s / 16000 for s in (2048, 1024, 512, 256, 128, 64)]
  assert model.decoder.rnn.rnn_type == 'gru' and not model.decoder.rnn.bidirectional

  # The loudness the model computes from the audio, against the closed form: a sine of amplitude a at 1 kHz
  # reads 20 log10(a) dB (A-weighting is 0 dB there); its first half at a, the second at a / 4 (-12 dB).
  t = np.arange(rate) / rate
  amp = np.where(t < 0.5, 0.5, 0.125)
  audio = (amp * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)[np.newaxis]
  feats = {'audio': tf.constant(audio), 'f0_hz': tf.fill([1, 50], 1000.0),
           'loudness_db': tf.fill([1, 50], -90.0)}  # the data's loudness: ignored while training
  trained = model(feats, training=True)
  loudness = trained['loudness_db'].numpy()[0, :, 0]
  np.testing.assert_allclose(loudness[5:20], 20 * np.log10(0.5), atol=0.05)
  np.testing.assert_allclose(loudness[30:45], 20 * np.log10(0.125), atol=0.05)
  np.testing.assert_allclose(trained['ld_scaled'].numpy()[0, :, 0], loudness / 120.0 + 1.0, rtol=1e-6)
  # Outside training a given loudness curve is the caller's (e.g. a shifted one) and is used as given.
  given = model(feats, training=False)
  np.testing.assert_allclose(given['loudness_db'].numpy(), -90.0)
  del feats['loudness_db']
  computed = model(feats, training=False)
  np.testing.assert_allclose(computed['loudness_db'].numpy()[0, :, 0], loudness, atol=1e-4)
  # Live, one-frame blocks: the look-ahead (loudness n_fft / 2, CREPE 512 samples at 16 kHz + the decimator's
  # 32) is under 2 frames, so the features come 1 frame late and the synthesis adds 2: 60 ms at every rate.
  player = live.LiveModel(model, rate // 50)
  assert player.features.lookahead_samples['loudness'] == n_fft // 2 < rate // 50 * 2
  assert player.latency == 3 * rate // 50


def test_realtime_preprocessor_refuses_f0_at_another_frame_rate():
  _parse('models/realtime/realtime_16k.gin', ['example_secs = 1'])
  model = models.get_model()
  feats = {'audio': tf.zeros([1, 16000]), 'f0_hz': tf.fill([1, 250], 220.0)}
  with pytest.raises(ValueError, match='250 frames/s.*frame_rate=50|50 frames/s.*250 frames/s'):
    model(feats, training=True)


def test_realtime_48k_violin_recipe():
  _parse('recipes/realtime_48k_violin.gin')
  provider = _bound('train.data_provider')
  assert (provider.sample_rate, provider.frame_rate, provider.n_samples) == (48000, 50, 192000)
  assert _bound('%batch_size') == 8
  model = models.get_model()
  assert (model.sample_rate, model.frame_rate) == (48000, 50)
