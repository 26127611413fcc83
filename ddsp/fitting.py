"""Analysis by synthesis: fit frame-wise synthesizer controls to a recording by gradient descent.

This is the smallest end-to-end use of the library: the controls of a Harmonic + FilteredNoise synthesizer are
free variables, and Adam on the multi-scale spectral loss makes the synthesizer reproduce a real sound.
"""
import dataclasses

import keras
import numpy as np
import tensorflow as tf

from ddsp import core
from ddsp import losses
from ddsp import processors
from ddsp import synths


@dataclasses.dataclass
class FitResult:
  """Outcome of `fit_harmonic_plus_noise`.

  Attributes:
    audio: the fitted synthesizer's output, `[n_samples]` float32.
    losses: spectral loss at every step (before the update), `[n_steps]`.
    controls: the fitted physical controls ('amplitudes' [T,1], 'harmonic_distribution' [T,K],
      'noise_magnitudes' [T,n_bands], 'f0_hz' [T,1]).
  """
  audio: np.ndarray
  losses: np.ndarray
  controls: dict


def build_synth(n_samples, sample_rate=16000, noise_seed=0):
  """The Harmonic + FilteredNoise ProcessorGroup used for fitting.

  Inputs: 'amps' [B,T,1], 'harmonic_distribution' [B,T,K], 'f0_hz' [B,T,1], 'noise_magnitudes' [B,T,n_bands].
  """
  return processors.ProcessorGroup(dag=[
      (synths.Harmonic(n_samples=n_samples, sample_rate=sample_rate), ['amps', 'harmonic_distribution', 'f0_hz']),
      (synths.FilteredNoise(n_samples=n_samples, seed=noise_seed), ['noise_magnitudes']),
      (processors.Add(), ['harmonic/signal', 'filtered_noise/signal']),
  ])


def fit_harmonic_plus_noise(audio, f0_hz, sample_rate=16000, frame_rate=250, n_harmonics=60, n_noise_bands=65,
                            n_steps=300, learning_rate=0.1, loss=None, callback=None, initial_amp_logit=-5.0):
  """Fits Harmonic + FilteredNoise controls to `audio`.

  Args:
    audio: target recording, `[n_samples]` float (mono, at `sample_rate`); n_samples must be a multiple of the
      hop sample_rate / frame_rate (trim or pad first).
    f0_hz: fundamental frequency, a float (constant) or `[n_frames]` curve in Hz (0 = unvoiced).
    sample_rate: samples per second.
    frame_rate: control frames per second.
    n_harmonics: harmonics of the additive synthesizer.
    n_noise_bands: bands of the noise filter.
    n_steps: Adam steps.
    learning_rate: Adam learning rate.
    loss: a loss layer `(target [B,N], audio [B,N]) -> scalar`; default the paper's SpectralLoss.
    callback: optional `callback(step, loss_value)` called after each step (progress bars).
    initial_amp_logit: starting pre-activation of the harmonic amplitude (-5: quiet, like a fresh model).

  Returns:
    A `FitResult`.
  """
  target = np.asarray(audio, np.float32)
  if target.ndim != 1 or target.size == 0:
    raise ValueError(f'`audio` must be a non-empty 1-D array, got shape {target.shape}.')
  if not np.all(np.isfinite(target)):
    raise ValueError('`audio` contains NaN or Inf samples.')
  hop = sample_rate // frame_rate
  if target.size % hop:
    raise ValueError(f'`audio` length {target.size} must be a multiple of the hop {hop}; trim or pad it.')
  n_samples, n_frames = target.size, target.size // hop
  f0 = np.broadcast_to(np.asarray(f0_hz, np.float32), [n_frames]).reshape(1, n_frames, 1)

  synth = build_synth(n_samples, sample_rate)
  loss = loss or losses.SpectralLoss()
  variables = {
      'amps': tf.Variable(tf.fill([1, n_frames, 1], float(initial_amp_logit)), name='amps'),
      'harmonic_distribution': tf.Variable(tf.zeros([1, n_frames, n_harmonics]), name='harmonic_distribution'),
      'noise_magnitudes': tf.Variable(tf.zeros([1, n_frames, n_noise_bands]), name='noise_magnitudes'),
  }
  f0_t = tf.constant(f0)
  target_t = tf.constant(target[np.newaxis])
  optimizer = keras.optimizers.Adam(learning_rate)
  var_list = list(variables.values())

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      value = loss(target_t, synth(dict(variables, f0_hz=f0_t)))
    grads = tape.gradient(value, var_list)
    optimizer.apply_gradients(zip(grads, var_list))
    return value

  history = []
  for i in range(n_steps):
    value = float(step())
    if not np.isfinite(value):
      raise FloatingPointError(f'The loss became {value} at step {i}.')
    history.append(value)
    if callback is not None:
      callback(i, value)

  outputs = synth(dict(variables, f0_hz=f0_t), return_outputs_dict=True)
  controls = {
      'amplitudes': outputs['harmonic/controls']['amplitudes'].numpy()[0],
      'harmonic_distribution': outputs['harmonic/controls']['harmonic_distribution'].numpy()[0],
      'noise_magnitudes': outputs['filtered_noise/controls']['magnitudes'].numpy()[0],
      'f0_hz': f0[0],
  }
  return FitResult(audio=outputs['signal'].numpy()[0], losses=np.array(history, np.float32), controls=controls)


__all__ = ['FitResult', 'build_synth', 'fit_harmonic_plus_noise', 'core']
