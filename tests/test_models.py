"""Tests of ddsp.training.{nn, preprocessing, encoders, decoders, models} against NumPy references."""
import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

import ddsp
from ddsp.training import decoders
from ddsp.training import encoders
from ddsp.training import gru
from ddsp.training import models
from ddsp.training import nn
from ddsp.training import preprocessing

SR = 16000
HOP = 64


@pytest.fixture(autouse=True)
def _default_policies():
  yield
  nn.set_network_dtype(None)
  keras.mixed_precision.set_global_policy('float32')
  gin.clear_config()


# ------------------------------------------------------------------------------------------------------------
# NumPy references.
# ------------------------------------------------------------------------------------------------------------
def np_layer_norm(x, gamma, beta, eps):
  mean = x.mean(-1, keepdims=True)
  var = x.var(-1, keepdims=True)
  return (x - mean) / np.sqrt(var + eps) * gamma + beta


def np_leaky_relu(x, slope=0.2):
  return np.where(x > 0, x, slope * x)


def np_sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def np_gru(x, kernel, recurrent_kernel, bias):
  """Reset-after GRU (Keras' equations), float64. x [B,T,I] -> [B,T,U]."""
  units = recurrent_kernel.shape[0]
  b_in, b_rec = bias
  h = np.zeros((x.shape[0], units))
  out = []
  for t in range(x.shape[1]):
    xp = x[:, t] @ kernel + b_in
    rp = h @ recurrent_kernel + b_rec
    z = np_sigmoid(xp[:, :units] + rp[:, :units])
    r = np_sigmoid(xp[:, units:2 * units] + rp[:, units:2 * units])
    hh = np.tanh(xp[:, 2 * units:] + r * rp[:, 2 * units:])
    h = z * h + (1 - z) * hh
    out.append(h)
  return np.stack(out, axis=1)


def harmonic_batch(batch=2, n_samples=16000, f0=220.0):
  t = np.arange(n_samples) / SR
  gains = np.linspace(0.2, 0.5, batch)[:, None]
  audio = (gains * (np.sin(2 * np.pi * f0 * t) + 0.3 * np.sin(4 * np.pi * f0 * t))).astype(np.float32)
  n_frames = -(-n_samples // HOP)
  loudness = ddsp.spectral_ops.compute_loudness(audio, SR, SR // HOP)
  return {
      'audio': tf.constant(audio),
      'f0_hz': tf.constant(np.full((batch, n_frames), f0, np.float32)),
      'f0_confidence': tf.ones((batch, n_frames)),
      'loudness_db': tf.constant(loudness.astype(np.float32)),
  }


def small_processor_group(n_samples, reverb=False):
  dag = [
      (ddsp.synths.Harmonic(n_samples=n_samples), ['amps', 'harmonic_distribution', 'f0_hz']),
      (ddsp.synths.FilteredNoise(n_samples=n_samples), ['noise_magnitudes']),
      (ddsp.processors.Add(), ['filtered_noise/signal', 'harmonic/signal']),
  ]
  if reverb:
    dag.append((ddsp.effects.Reverb(trainable=True, reverb_length=4000), ['add/signal']))
  return ddsp.processors.ProcessorGroup(dag=dag)


def small_decoder(**kwargs):
  args = dict(rnn_channels=32, ch=16, layers_per_stack=2, input_keys=('ld_scaled', 'f0_scaled'),
              output_splits=(('amps', 1), ('harmonic_distribution', 10), ('noise_magnitudes', 9)))
  args.update(kwargs)
  return decoders.RnnFcDecoder(**args)


# ------------------------------------------------------------------------------------------------------------
# nn.
# ------------------------------------------------------------------------------------------------------------
def test_layer_norm_matches_numpy_and_its_gradient_matches_autodiff():
  rng = np.random.default_rng(0)
  x = rng.normal(2.0, 3.0, (5, 7, 24)).astype(np.float32)
  layer = nn.LayerNorm(epsilon=1e-5)
  layer.build(x.shape)
  gamma = rng.normal(size=24).astype(np.float32)
  beta = rng.normal(size=24).astype(np.float32)
  layer.gamma.assign(gamma)
  layer.beta.assign(beta)
  np.testing.assert_allclose(layer(x).numpy(), np_layer_norm(x.astype(np.float64), gamma, beta, 1e-5),
                             rtol=1e-4, atol=1e-4)
  w = tf.constant(rng.normal(size=x.shape).astype(np.float32))
  xt = tf.constant(x)
  with tf.GradientTape() as tape:
    tape.watch(xt)
    loss = tf.reduce_sum(layer(xt) ** 2 * w)
  grad = tape.gradient(loss, xt)
  with tf.GradientTape() as tape:  # plain autodiff of the textbook formula
    tape.watch(xt)
    mean, var = tf.nn.moments(xt, axes=[-1], keepdims=True)
    ref = (xt - mean) / tf.sqrt(var + 1e-5) * gamma + beta
    loss_ref = tf.reduce_sum(ref ** 2 * w)
  grad_ref = tape.gradient(loss_ref, xt)
  np.testing.assert_allclose(grad.numpy(), grad_ref.numpy(), rtol=1e-3, atol=1e-3)


def test_dense_stack_matches_numpy():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(3, 11, 5)).astype(np.float32)
  stack = nn.DenseStack(ch=8, layers=3)
  y = stack(x).numpy()
  assert y.shape == (3, 11, 8)
  ref = x.astype(np.float64)
  for dense, norm in zip(stack.dense_layers, stack.norm_layers):
    kernel, bias = [w.numpy().astype(np.float64) for w in dense.weights]
    ref = np_leaky_relu(np_layer_norm(ref @ kernel + bias, norm.gamma.numpy(), norm.beta.numpy(), 1e-5))
  np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
  assert stack.count_params() == (5 * 8 + 8 + 16) + 2 * (8 * 8 + 8 + 16)


def test_dense_stack_with_zero_layers_is_identity():
  x = np.random.default_rng(2).normal(size=(2, 4, 3)).astype(np.float32)
  stack = nn.DenseStack(ch=8, layers=0)
  np.testing.assert_array_equal(stack(x).numpy(), x)
  assert stack.count_params() == 0


@pytest.mark.parametrize('implementation', ['fast', 'keras'])
def test_gru_matches_numpy_reference(implementation):
  rng = np.random.default_rng(3)
  x = rng.normal(size=(2, 9, 4)).astype(np.float32)
  rnn = nn.Rnn(6, 'gru', implementation=implementation)
  rnn.build(x.shape)
  layer = rnn.rnn
  weights = [w for w in layer.weights]
  by_shape = {tuple(w.shape): w for w in weights}
  kernel, recurrent, bias = by_shape[(4, 18)], by_shape[(6, 18)], by_shape[(2, 18)]
  bias.assign(rng.normal(size=(2, 18)).astype(np.float32))  # non-zero biases exercise both bias terms
  y = rnn(x).numpy()
  ref = np_gru(x.astype(np.float64), kernel.numpy(), recurrent.numpy(), bias.numpy())
  np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
  assert rnn.count_params() == 3 * (4 * 6 + 6 * 6 + 2 * 6)


def test_fast_and_keras_paths_share_weights_and_agree():
  rng = np.random.default_rng(12)
  x = rng.normal(size=(2, 15, 3)).astype(np.float32)
  layer = gru.FastGru(5, implementation='fast')
  y_fast = layer(x).numpy()
  names = sorted(v.path.split('/', 1)[1] for v in layer.weights)
  layer.implementation = 'keras'
  np.testing.assert_allclose(layer(x).numpy(), y_fast, rtol=1e-5, atol=1e-6)
  other = gru.FastGru(5, implementation='keras')
  other(x)
  assert sorted(v.path.split('/', 1)[1] for v in other.weights) == names  # same checkpoint layout
  with pytest.raises(ValueError, match='implementation'):
    gru.FastGru(5, implementation='cudnn')


def test_fast_gru_gradients_match_keras_gru_autodiff():
  rng = np.random.default_rng(4)
  x = tf.constant(rng.normal(size=(3, 20, 5)).astype(np.float32))
  w = tf.constant(rng.normal(size=(3, 20, 7)).astype(np.float32))
  fast = gru.FastGru(7)
  ref = keras.layers.GRU(7, return_sequences=True)
  fast.build(x.shape)
  ref.build(x.shape)
  fast.bias.assign(rng.normal(size=(2, 21)).astype(np.float32))
  ref.cell.kernel.assign(fast.kernel)
  ref.cell.recurrent_kernel.assign(fast.recurrent_kernel)
  ref.cell.bias.assign(fast.bias)

  def grads(layer, variables):
    with tf.GradientTape() as tape:
      tape.watch(x)
      loss = tf.reduce_sum(layer(x) * w)
    return tape.gradient(loss, [x] + variables)

  g_fast = grads(fast, [fast.kernel, fast.recurrent_kernel, fast.bias])
  g_ref = grads(ref, [ref.cell.kernel, ref.cell.recurrent_kernel, ref.cell.bias])
  for a, b in zip(g_fast, g_ref):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


def test_fast_gru_gradient_matches_finite_differences():
  rng = np.random.default_rng(5)
  x = rng.normal(size=(2, 6, 3))
  layer = gru.FastGru(4)
  layer.build(x.shape)
  layer.bias.assign(rng.normal(size=(2, 12)).astype(np.float32))
  kernel = layer.recurrent_kernel.numpy().astype(np.float64)
  w = rng.normal(size=(2, 6, 4))

  def np_loss(rec):
    return float((np_gru(x, layer.kernel.numpy().astype(np.float64), rec, layer.bias.numpy()) * w).sum())

  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(layer(tf.constant(x, tf.float32)) * tf.constant(w, tf.float32))
  grad = tape.gradient(loss, layer.recurrent_kernel).numpy()
  eps = 1e-5
  for i, j in [(0, 0), (1, 5), (3, 11), (2, 8)]:
    plus, minus = kernel.copy(), kernel.copy()
    plus[i, j] += eps
    minus[i, j] -= eps
    numeric = (np_loss(plus) - np_loss(minus)) / (2 * eps)
    assert abs(grad[i, j] - numeric) < 1e-3 * max(1.0, abs(numeric)), (i, j, grad[i, j], numeric)


def test_bidirectional_rnn_concatenates_a_time_reversed_pass():
  rng = np.random.default_rng(6)
  x = rng.normal(size=(2, 5, 3)).astype(np.float32)
  rnn = nn.Rnn(4, 'gru', bidirectional=True)
  y = rnn(x).numpy()
  assert y.shape == (2, 5, 8)
  back = rnn.rnn_backward
  ref_back = np_gru(x[:, ::-1].astype(np.float64), back.kernel.numpy(), back.recurrent_kernel.numpy(),
                    back.bias.numpy())[:, ::-1]
  np.testing.assert_allclose(y[..., 4:], ref_back, rtol=1e-5, atol=1e-5)


def test_lstm_wrapper_returns_sequences():
  rnn = nn.Rnn(5, 'lstm')
  y = rnn(np.zeros((2, 7, 3), np.float32))
  assert y.shape == (2, 7, 5)
  assert rnn.count_params() == 4 * (3 * 5 + 5 * 5 + 5)


def test_rnn_rejects_unknown_type():
  with pytest.raises(ValueError, match='rnn_type'):
    nn.Rnn(4, 'transformer')


def test_spectrogram_resnet_keeps_time_and_pools_frequency():
  resnet = nn.SpectrogramResNet(stem_ch=4, block_ch=(4, 8))
  y = resnet(np.random.default_rng(7).normal(size=(2, 13, 64)).astype(np.float32))
  # 64 bins / 2 (stem) / 2 (pool) / 2 / 2 (blocks) = 4 bins x 8 channels.
  assert y.shape == (2, 13, 32)
  assert resnet.output_channels(64) == 32


# ------------------------------------------------------------------------------------------------------------
# Preprocessing.
# ------------------------------------------------------------------------------------------------------------
def test_preprocessor_scales_and_resamples():
  f0 = np.array([[0.0, 110.0, 220.0, 440.0, 880.0]], np.float32)
  ld = np.array([[-120.0, -60.0, -30.0, 0.0, -10.0]], np.float32)
  pre = preprocessing.F0LoudnessPreprocessor(time_steps=5)
  out = pre({'f0_hz': f0, 'loudness_db': ld})
  midi = np.where(f0 > 0, 12 * np.log2(np.maximum(f0, 1e-9) / 440.0) + 69, 0.0)
  np.testing.assert_allclose(out['f0_scaled'].numpy()[..., 0], midi / 127.0, atol=1e-6)
  np.testing.assert_allclose(out['ld_scaled'].numpy()[..., 0], ld / 120.0 + 1.0, atol=1e-6)
  assert out['f0_scaled'].shape == (1, 5, 1) and out['ld_scaled'].shape == (1, 5, 1)


def test_preprocessor_resamples_linearly_to_time_steps():
  rng = np.random.default_rng(8)
  ld = rng.uniform(-80, 0, (2, 25)).astype(np.float32)
  f0 = rng.uniform(100, 400, (2, 25)).astype(np.float32)
  out = preprocessing.F0LoudnessPreprocessor(time_steps=100)({'f0_hz': f0, 'loudness_db': ld})
  positions = np.arange(100) * 25 / 100  # frame t sits at step t * 100 / 25
  for b in range(2):
    np.testing.assert_allclose(out['ld_scaled'].numpy()[b, :, 0],
                               np.interp(positions, np.arange(25), ld[b] / 120.0 + 1.0), atol=1e-5)
    scaled = (12 * np.log2(f0[b] / 440.0) + 69) / 127
    np.testing.assert_allclose(out['f0_scaled'].numpy()[b, :, 0], np.interp(positions, np.arange(25), scaled),
                               atol=1e-5)
  assert out['f0_hz'].shape == (2, 100, 1)


def test_preprocessor_names_missing_features():
  with pytest.raises(KeyError, match="'loudness_db'"):
    preprocessing.F0LoudnessPreprocessor(10)({'f0_hz': np.zeros((1, 10), np.float32)})
  out = preprocessing.F0LoudnessPreprocessor(10, require_f0=False)({'loudness_db': np.zeros((1, 10), np.float32)})
  assert 'f0_scaled' not in out and out['ld_scaled'].shape == (1, 10, 1)


# ------------------------------------------------------------------------------------------------------------
# Encoders.
# ------------------------------------------------------------------------------------------------------------
def test_instance_norm_matches_numpy():
  x = np.random.default_rng(9).normal(3.0, 2.0, (2, 40, 6)).astype(np.float32)
  norm = encoders.InstanceNorm()
  y = norm(x).numpy()
  ref = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5)
  np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


def test_mfcc_encoder_shapes_and_frames():
  enc = encoders.MfccTimeDistributedRnnEncoder(rnn_channels=16, z_dims=4, z_time_steps=250)
  audio = harmonic_batch(2, 16000)['audio']
  mfcc = enc.compute_mfcc(audio)
  assert mfcc.shape == (2, 63, 30)  # frames centred on 0, 256, ..., 15872: ceil(16000 / 256)
  out = enc({'audio': audio})
  assert out['z'].shape == (2, 250, 4) and out['z'].dtype == tf.float32
  # Instance norm -> GRU(30 -> 16) -> Dense(16 -> 4).
  assert enc.count_params() == 2 * 30 + 3 * (30 * 16 + 16 * 16 + 2 * 16) + (16 * 4 + 4)


def test_mfcc_matches_librosa_on_the_encoder_framing():
  librosa = pytest.importorskip('librosa')
  audio = harmonic_batch(1, 8000)['audio'].numpy()
  enc = encoders.MfccTimeDistributedRnnEncoder(rnn_channels=8, z_dims=2, z_time_steps=125)
  mfcc = enc.compute_mfcc(tf.constant(audio)).numpy()[0]
  mel = librosa.feature.melspectrogram(y=audio[0].astype(np.float64), sr=SR, n_fft=1024, hop_length=256,
                                       n_mels=128, fmin=20, fmax=8000, power=2.0, center=True,
                                       pad_mode='constant')
  ref = librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=None), n_mfcc=30).T
  assert mfcc.shape == (8000 // 256 + 1, 30) or mfcc.shape == (-(-8000 // 256), 30)
  np.testing.assert_allclose(mfcc, ref[:mfcc.shape[0]], rtol=1e-3, atol=0.05)


def test_resnet_f0_encoder_outputs_the_expected_frequency():
  enc = encoders.ResnetF0Encoder(n_bins=64, f0_min_hz=20.0, f0_max_hz=2000.0, n_mels=64, time_steps=125,
                                 stem_ch=4, block_ch=(4, 8))
  batch = harmonic_batch(2, 8000)
  out = enc(batch)
  assert out['f0_hz'].shape == (2, 125, 1) and out['f0_distribution'].shape == (2, 125, 64)
  probs = out['f0_distribution'].numpy()
  bins = 20.0 * 100.0 ** (np.arange(64) / 63.0)  # log-spaced bin centres
  np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
  np.testing.assert_allclose(out['f0_hz'].numpy()[..., 0], (probs * bins).sum(-1), rtol=1e-4)
  # A decisive final layer (zero kernel, one large bias) puts all mass on its bin: f0 is that bin's centre.
  kernel, bias = enc.dense_logits.weights
  kernel.assign(tf.zeros_like(kernel))
  target = np.full(64, -30.0, np.float32)
  target[37] = 30.0
  bias.assign(target)
  out = enc(batch)
  np.testing.assert_allclose(out['f0_hz'].numpy(), bins[37], rtol=1e-4)
  midi = 12 * np.log2(bins[37] / 440.0) + 69
  np.testing.assert_allclose(out['f0_scaled'].numpy(), midi / 127, rtol=1e-4)


def test_resnet_f0_encoder_is_differentiable():
  enc = encoders.ResnetF0Encoder(n_bins=32, n_mels=32, time_steps=63, stem_ch=4, block_ch=(4,))
  batch = harmonic_batch(1, 4000)
  with tf.GradientTape() as tape:
    f0 = enc(batch)['f0_hz']
    loss = tf.reduce_mean((f0 - 300.0) ** 2)
  grads = tape.gradient(loss, enc.trainable_variables)
  assert all(g is not None for g in grads)
  assert sum(float(tf.reduce_sum(tf.abs(g))) for g in grads) > 0


# ------------------------------------------------------------------------------------------------------------
# Decoder.
# ------------------------------------------------------------------------------------------------------------
def decoder_inputs(batch=2, steps=50, z_dims=3):
  rng = np.random.default_rng(10)
  return {
      'ld_scaled': tf.constant(rng.uniform(0, 1, (batch, steps, 1)).astype(np.float32)),
      'f0_scaled': tf.constant(rng.uniform(0.3, 0.6, (batch, steps)).astype(np.float32)),  # [B, T] accepted
      'z': tf.constant(rng.normal(size=(batch, steps, z_dims)).astype(np.float32)),
  }


def test_decoder_output_splits_and_parameter_count():
  dec = small_decoder(input_keys=('ld_scaled', 'f0_scaled', 'z'))
  out = dec(decoder_inputs())
  assert set(out) == {'amps', 'harmonic_distribution', 'noise_magnitudes'}
  assert out['amps'].shape == (2, 50, 1)
  assert out['harmonic_distribution'].shape == (2, 50, 10)
  assert out['noise_magnitudes'].shape == (2, 50, 9)
  stack = lambda n_in: (n_in * 16 + 16 + 32) + (16 * 16 + 16 + 32)  # 2 layers of Dense 16 + LayerNorm
  gru = 3 * (48 * 32 + 32 * 32 + 2 * 32)  # input: 3 stacks x 16 channels
  out_stack = stack(32 + 48)
  dense = 16 * 20 + 20
  assert dec.count_params() == stack(1) + stack(1) + stack(3) + gru + out_stack + dense


def test_decoder_without_stacks_feeds_inputs_to_the_rnn():
  dec = small_decoder(layers_per_stack=0)
  dec(decoder_inputs())
  # GRU(2 -> 32), then Dense(32 + 2 -> 20).
  assert dec.count_params() == 3 * (2 * 32 + 32 * 32 + 2 * 32) + (34 * 20 + 20)


def test_decoder_output_is_causal_in_time():
  """Per-frame stacks plus a forward GRU: changing frame t must not change outputs before t."""
  dec = small_decoder()
  inputs = decoder_inputs()
  dec(inputs)
  rng = np.random.default_rng(11)
  for v in dec.weights:  # non-zero biases: a 1-channel input through Dense + LayerNorm keeps its value
    if len(v.shape) == 1 and 'bias' in v.path:
      v.assign(rng.normal(size=v.shape).astype(np.float32))
  base = dec(inputs)['harmonic_distribution'].numpy()
  changed = dict(inputs)
  ld = inputs['ld_scaled'].numpy()
  ld[:, 30:] += 0.5
  changed['ld_scaled'] = tf.constant(ld)
  new = dec(changed)['harmonic_distribution'].numpy()
  np.testing.assert_allclose(new[:, :30], base[:, :30], atol=1e-6)
  assert np.abs(new[:, 30:] - base[:, 30:]).max() > 1e-4


def test_decoder_errors_name_the_problem():
  dec = small_decoder(input_keys=('ld_scaled', 'f0_scaled', 'z'))
  inputs = decoder_inputs()
  del inputs['z']
  with pytest.raises(KeyError, match="'z'"):
    dec(inputs)
  inputs = decoder_inputs()
  inputs['z'] = inputs['z'][:, :10]
  with pytest.raises(ValueError, match='time'):
    dec(inputs)
  with pytest.raises(ValueError, match='output_splits'):
    decoders.RnnFcDecoder(output_splits=(('amps', 1), ('amps', 2)))


def test_decoder_mixed_bfloat16_keeps_float32_variables_and_outputs():
  keras.utils.set_random_seed(0)
  inputs = decoder_inputs()
  dec32 = small_decoder()
  out32 = dec32(inputs)
  dec16 = small_decoder(network_dtype='mixed_bfloat16')
  dec16(inputs)
  for v16, v32 in zip(dec16.weights, dec32.weights):
    assert v16.dtype == 'float32'
    v16.assign(v32)
  out16 = dec16(inputs)
  # bfloat16 keeps 8 bits of mantissa; rounding errors add up through the stacks and the GRU into an absolute
  # error of the final Dense layer's outputs, the same for every output head: compare each head's RMS error with
  # the RMS of all outputs together (a head with small values, like the single `amps` channel, would otherwise
  # be judged against its own small scale).
  scale = np.sqrt(np.mean(np.concatenate([out32[k].numpy().reshape(-1) for k in out32]) ** 2))
  for key in out32:
    assert out16[key].dtype == tf.float32
    a, b = out16[key].numpy(), out32[key].numpy()
    rms_error = np.sqrt(np.mean((a - b) ** 2))
    assert rms_error <= 0.05 * scale, (key, rms_error, scale)
  assert dec16.rnn.rnn.compute_dtype == 'bfloat16'


# ------------------------------------------------------------------------------------------------------------
# Autoencoder.
# ------------------------------------------------------------------------------------------------------------
def small_autoencoder(n_samples=8000, time_steps=125, reverb=False, encoder=None, **decoder_kwargs):
  return models.Autoencoder(
      preprocessor=preprocessing.F0LoudnessPreprocessor(time_steps=time_steps),
      encoder=encoder,
      decoder=small_decoder(**decoder_kwargs),
      processor_group=small_processor_group(n_samples, reverb=reverb),
      losses=[ddsp.losses.SpectralLoss(fft_sizes=(512, 256, 128))])


def test_autoencoder_returns_every_intermediate():
  model = small_autoencoder(reverb=True)
  batch = harmonic_batch(2, 8000)
  batch['instrument'] = tf.constant([3, 7])
  out = model(batch)
  for key in ('audio', 'f0_confidence', 'instrument', 'f0_scaled', 'ld_scaled', 'amps', 'harmonic_distribution',
              'noise_magnitudes', 'harmonic/signal', 'filtered_noise/signal', 'add/signal', 'reverb/signal',
              'harmonic/controls', 'audio_synth'):
    assert key in out, key
  assert out['audio_synth'].shape == (2, 8000)
  np.testing.assert_array_equal(out['audio_synth'].numpy(), out['reverb/signal'].numpy())
  np.testing.assert_array_equal(model.get_audio_from_outputs(out).numpy(), out['audio_synth'].numpy())
  # Decoder params + the 4000-tap learned impulse response.
  assert model.count_params() == model.decoder.count_params() + 4000


def test_autoencoder_knows_its_geometry_and_sets_its_length():
  model = small_autoencoder(n_samples=8000, time_steps=125, reverb=True)
  # 8000 samples at the synthesizers' default 16 kHz over 125 frames: a 64-sample hop, 250 frames/s.
  assert (model.sample_rate, model.n_samples, model.time_steps, model.hop_size) == (16000, 8000, 125, 64)
  assert model.frame_rate == pytest.approx(250.0)
  assert model.n_frames(8001) == 126
  model.set_length(50)
  assert (model.n_samples, model.time_steps, model.train_n_samples, model.train_time_steps) == (3200, 50, 8000, 125)
  # The reverb keeps its IR length; the synthesized audio follows the new length.
  assert model.processor_group.processors[-1].reverb_length == 4000
  out = model({'f0_hz': tf.fill([1, 50], 220.0), 'loudness_db': tf.fill([1, 50], -30.0)})
  assert out['audio_synth'].shape == (1, 3200)
  reverb, key = model.reverb_node()
  assert reverb is model.processor_group.processors[-1] and key == 'add/signal'


def test_autoencoder_geometry_errors_name_the_conflict():
  model = models.Autoencoder(
      preprocessor=preprocessing.F0LoudnessPreprocessor(time_steps=125), decoder=small_decoder(),
      processor_group=ddsp.processors.ProcessorGroup(dag=[
          (ddsp.synths.Harmonic(n_samples=8000), ['amps', 'harmonic_distribution', 'f0_hz']),
          (ddsp.synths.FilteredNoise(n_samples=4000), ['noise_magnitudes']),
      ]))
  assert model.train_n_samples is None
  with pytest.raises(ValueError, match=r'share one n_samples, got \[4000, 8000\]'):
    _ = model.sample_rate


def test_training_refuses_data_at_another_sample_rate():
  from ddsp.training import data
  from ddsp.training import train_util
  model = small_autoencoder(n_samples=8000, time_steps=125)
  provider = data.SyntheticProvider(n_examples=2, example_secs=0.5, sample_rate=16000, frame_rate=250)
  assert train_util.check_geometry(model, provider) == (16000, 250)
  provider = data.SyntheticProvider(n_examples=2, example_secs=0.5, sample_rate=24000, frame_rate=250)
  with pytest.raises(train_util.DataError, match='16000 Hz audio but the data .* is at 24000 Hz'):
    train_util.check_geometry(model, provider)
  # 0.5 s at 100 frames/s is 50 frames, not the model's 125 (250 frames/s): refused, naming both rates.
  provider = data.SyntheticProvider(n_examples=2, example_secs=0.5, sample_rate=16000, frame_rate=100)
  with pytest.raises(train_util.DataError, match='runs at 250 frames/s but the data .* is at 100 frames/s'):
    train_util.check_geometry(model, provider)


def test_compute_losses_compares_synthesis_with_the_input():
  model = small_autoencoder()
  out = model(harmonic_batch(2, 8000))
  losses = model.compute_losses(out)
  assert set(losses) == {'spectral_loss'} and float(losses['spectral_loss']) > 0
  same = dict(out)
  same['audio_synth'] = out['audio']
  assert float(model.compute_losses(same)['spectral_loss']) == pytest.approx(0.0, abs=1e-6)
  assert float(model.total_loss(out)) == pytest.approx(float(losses['spectral_loss']))


def test_autoencoder_requires_decoder_and_processor_group():
  with pytest.raises(ValueError, match='decoder'):
    models.Autoencoder(processor_group=small_processor_group(8000))
  with pytest.raises(ValueError, match='processor_group'):
    models.Autoencoder(decoder=small_decoder())


def test_a_few_training_steps_lower_the_loss():
  keras.utils.set_random_seed(0)
  model = small_autoencoder(rnn_channels=64, ch=64)
  batch = harmonic_batch(2, 8000)
  optimizer = keras.optimizers.Adam(3e-3)

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      loss = model.total_loss(model(batch, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply(grads, model.trainable_variables)
    return loss

  losses = [float(step()) for _ in range(30)]
  assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:3]), losses


def test_global_mixed_policy_keeps_synthesis_and_losses_float32():
  keras.mixed_precision.set_global_policy('mixed_bfloat16')
  model = small_autoencoder(reverb=True)
  keras.mixed_precision.set_global_policy('float32')
  assert model.decoder.rnn.rnn.compute_dtype == 'bfloat16'  # networks follow the global policy
  for layer in [model.processor_group] + list(model.processor_group.processors) + model.loss_objs:
    assert layer.compute_dtype == 'float32', layer.name
  out = model(harmonic_batch(2, 8000))
  assert out['audio_synth'].dtype == tf.float32 and out['audio'].dtype == tf.float32
  assert out['amps'].dtype == tf.float32


def test_unsupervised_encoder_replaces_f0_and_keeps_the_dataset_value():
  f0_encoder = encoders.ResnetF0Encoder(n_bins=32, n_mels=32, time_steps=125, stem_ch=4, block_ch=(4,))
  z_encoder = encoders.MfccTimeDistributedRnnEncoder(rnn_channels=8, z_dims=3, z_time_steps=125)
  model = small_autoencoder(encoder=encoders.CompositeEncoder([f0_encoder, z_encoder]),
                            input_keys=('ld_scaled', 'f0_scaled', 'z'))
  batch = harmonic_batch(1, 8000)
  out = model(batch)
  np.testing.assert_array_equal(out['f0_hz_input'].numpy(), batch['f0_hz'].numpy())
  np.testing.assert_allclose(out['harmonic/controls']['f0_hz'].numpy(), out['f0_hz'].numpy())
  assert out['z'].shape == (1, 125, 3)
  f0 = out['f0_hz'].numpy()
  assert np.all((f0 >= 20.0) & (f0 <= 2000.0))
  with tf.GradientTape() as tape:
    loss = model.total_loss(model(batch, training=True))
  grads = tape.gradient(loss, f0_encoder.trainable_variables)
  assert any(float(tf.reduce_sum(tf.abs(g))) > 0 for g in grads if g is not None)


def test_get_model_from_gin():
  gin.parse_config("""
      import ddsp.training
      get_model.model = @models.Autoencoder()
      Autoencoder.preprocessor = @preprocessing.F0LoudnessPreprocessor()
      Autoencoder.decoder = @decoders.RnnFcDecoder()
      Autoencoder.processor_group = @processors.ProcessorGroup()
      F0LoudnessPreprocessor.time_steps = 125
      RnnFcDecoder.rnn_channels = 16
      RnnFcDecoder.ch = 8
      RnnFcDecoder.layers_per_stack = 1
      RnnFcDecoder.input_keys = ('ld_scaled', 'f0_scaled')
      ProcessorGroup.dag = [(@synths.Harmonic(), ['amps', 'harmonic_distribution', 'f0_hz']),
                            (@synths.FilteredNoise(), ['noise_magnitudes']),
                            (@processors.Add(), ['filtered_noise/signal', 'harmonic/signal'])]
      Harmonic.n_samples = 8000
      FilteredNoise.n_samples = 8000
  """)
  model = models.get_model()
  assert isinstance(model, models.Autoencoder)
  assert isinstance(model.loss_objs[0], ddsp.losses.SpectralLoss)  # the default loss
  out = model(harmonic_batch(1, 8000))
  assert out['audio_synth'].shape == (1, 8000)


@pytest.mark.parametrize('steps,with_state', [(250, False), (250, True), (1000, False)])
def test_fast_gru_gradients_match_stock_keras_gru_on_long_sequences(steps, with_state):
  """The hand-written backward pass against TF autodiff of the stock Keras GRU (reset_after=True, the variant
  FastGru implements), over training-length sequences and with an initial state: relative error < 1e-4."""
  rng = np.random.default_rng(steps + int(with_state))
  units = 16
  x = tf.constant(rng.normal(size=(2, steps, 3)).astype(np.float32))
  w = tf.constant(rng.normal(size=(2, steps, units)).astype(np.float32))
  h0 = tf.Variable(rng.normal(size=(2, units)).astype(np.float32) if with_state else np.zeros((2, units), np.float32))
  fast = gru.FastGru(units, implementation='fast')
  ref = keras.layers.GRU(units, return_sequences=True, reset_after=True)
  fast.build(x.shape)
  ref.build(x.shape)
  fast.bias.assign(rng.normal(size=(2, 3 * units)).astype(np.float32))
  for mine, theirs in [(fast.kernel, ref.cell.kernel), (fast.recurrent_kernel, ref.cell.recurrent_kernel),
                       (fast.bias, ref.cell.bias)]:
    theirs.assign(mine)

  def grads(call, variables):
    with tf.GradientTape() as tape:
      tape.watch(x)
      loss = tf.reduce_sum(call() * w)
    return tape.gradient(loss, [x, h0] + variables)

  g_fast = grads(lambda: fast(x, initial_state=h0), [fast.kernel, fast.recurrent_kernel, fast.bias])
  g_ref = grads(lambda: ref(x, initial_state=[h0]), [ref.cell.kernel, ref.cell.recurrent_kernel, ref.cell.bias])
  for name, a, b in zip(['x', 'h0', 'kernel', 'recurrent_kernel', 'bias'], g_fast, g_ref):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert np.linalg.norm(a - b) / np.linalg.norm(b) < 1e-4, name
