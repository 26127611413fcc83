"""ddsp.training: models, data, training loop, evaluation and summaries for DDSP experiments.

Submodules:
  nn: dense stacks, RNN wrappers, a small spectrogram ResNet.
  preprocessing: `F0LoudnessPreprocessor` (f0 / loudness scaling and resampling).
  encoders: `MfccTimeDistributedRnnEncoder` (z), `ResnetF0Encoder` (unsupervised f0), `CompositeEncoder`.
  decoders: `RnnFcDecoder`.
  models: `Autoencoder`, `get_model` (gin entry point).
  configs: `gin_dir()`, `resolve_gin_file(name)` for the bundled gin experiment files.
  data, trainers, train_util, evaluation, summaries: datasets, the distributed trainer, evaluation, TensorBoard.
  experiment: parse a gin config, build the model and data, train / evaluate / sample (under `ddsp_run`).
  checkpoints, inference (features, resynthesis), streaming, export_lib: restoring a model, its applications
    (input features and controls; transfer and its files), block-by-block synthesis, export.
"""
import os as _os

_os.environ.setdefault('KERAS_BACKEND', 'tensorflow')

# Importing the package registers every gin configurable of the library.
from ddsp.training import configs
from ddsp.training import nn
from ddsp.training import preprocessing
from ddsp.training import encoders
from ddsp.training import decoders
from ddsp.training import models
from ddsp.training import data
from ddsp.training import trainers
from ddsp.training import train_util
from ddsp.training import evaluation
from ddsp.training import summaries
