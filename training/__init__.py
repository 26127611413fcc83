"""ddsp.training: models, data, training loop, evaluation and summaries for DDSP experiments.

Submodules:
  nn: dense stacks, RNN wrappers, a small spectrogram ResNet.
  preprocessing: `F0LoudnessPreprocessor` (f0 / loudness scaling and resampling).
  encoders: `MfccTimeDistributedRnnEncoder` (z), `ResnetF0Encoder` (unsupervised f0), `CompositeEncoder`.
  decoders: `RnnFcDecoder`.
  models: `Autoencoder`, `get_model` (gin entry point).
  configs: `gin_dir()`, `resolve_gin_file(name)` for the bundled gin experiment files.
  data, trainers, train_util, evaluation, summaries: datasets, the distributed trainer, evaluation, TensorBoard.
"""
import importlib as _importlib
import os as _os

_os.environ.setdefault('KERAS_BACKEND', 'tensorflow')

_SUBMODULES = ('configs', 'nn', 'preprocessing', 'encoders', 'decoders', 'models', 'data', 'trainers',
               'train_util', 'evaluation', 'summaries')

for _name in _SUBMODULES:
  # Import every submodule that exists in this checkout; errors inside an existing module propagate.
  if _os.path.exists(_os.path.join(_os.path.dirname(__file__), _name + '.py')):
    globals()[_name] = _importlib.import_module(__name__ + '.' + _name)
