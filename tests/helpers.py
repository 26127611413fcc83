"""Set-up shared by the test modules: the tiny training recipe and the environment of subprocesses."""
import os

# A tiny model on 1 s synthetic examples: trains a step in well under a second on a CPU.
TINY_FILES = ['models/tiny.gin', 'datasets/synthetic.gin', 'optimization/base.gin']


def tiny_params(n_examples=16, batch_size=4):
  """The gin bindings of the tiny recipe (a 16-unit GRU, an 800-tap reverb, two FFT sizes)."""
  return [
      'n_samples = 16000', 'time_steps = 250', 'SyntheticProvider.example_secs = 1',
      f'SyntheticProvider.n_examples = {n_examples}', 'RnnFcDecoder.rnn_channels = 16',
      'Reverb.reverb_length = 800', 'SpectralLoss.fft_sizes = (512, 128)', f'batch_size = {batch_size}',
  ]


def subprocess_env():
  """The environment for a command run in a subprocess: quiet TensorFlow, Keras on TF, no cluster."""
  env = dict(os.environ)
  env['TF_CPP_MIN_LOG_LEVEL'] = '2'
  env['KERAS_BACKEND'] = 'tensorflow'
  env.pop('TF_CONFIG', None)
  return env


def train_tiny(save_dir, params, num_steps=2):
  """Trains the tiny recipe for `num_steps` through `experiment.run`; returns save_dir."""
  from ddsp.training import experiment
  result = experiment.run('train', save_dir, gin_files=TINY_FILES, gin_params=params, num_steps=num_steps,
                          steps_per_summary=0, progress_bar=False)
  assert result['step'] == num_steps
  return save_dir


def make_audible_without_noise(model):
  """Shifts the decoder's output biases of a randomly initialised model so that its harmonics are audible and
  its filtered noise is below 1e-6 (offline and live noise draws differ, so comparisons leave the noise out).
  Assumes output splits ending with 65 noise magnitudes and starting with the amplitude."""
  dense = model.decoder.dense_out
  bias = dense.bias.numpy()
  bias[0] += 3.0
  bias[-65:] -= 30.0
  dense.bias.assign(bias)
  return model


def stream_raw(player, audio, n_out, check_finite=False):
  """A live player's own output (no latency shift) for `n_out` samples, block by block through `step`.

  `audio` `[n]` is zero-padded to whole blocks; `check_finite` asserts the final state is finite."""
  import numpy as np
  n_blocks = -(-n_out // player.block_size)
  padded = np.zeros(n_blocks * player.block_size, np.float32)
  padded[:audio.shape[0]] = audio
  state, outs = player.initial_state(1), []
  for block in padded.reshape(n_blocks, player.block_size):
    out, state = player.step(block[np.newaxis], state)
    outs.append(out.numpy()[0])
  if check_finite:
    assert all(np.all(np.isfinite(v.numpy())) for v in state.values())
  return np.concatenate(outs)[:n_out]


def check_live_step_refuses_bad_blocks(player, other_rate):
  """A LiveModel's step refuses a block of another length, a stereo block and another sample rate, naming
  what it takes (`player.block_size` samples, mono, `player.sample_rate`)."""
  import numpy as np
  import pytest
  size, rate = player.block_size, player.sample_rate
  state = player.initial_state(1)
  with pytest.raises(ValueError, match=rf'\[batch, {size}\]'):
    player.step(np.zeros([1, size // 2], np.float32), state)
  with pytest.raises(ValueError, match='mono'):
    player.step(np.zeros([1, size, 2], np.float32), state)
  with pytest.raises(ValueError, match=f'model rate {rate} Hz, got {other_rate}'):
    player.step(np.zeros([1, size], np.float32), state, sample_rate=other_rate)
