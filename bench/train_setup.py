"""Set-up shared by the training benchmarks (`bench/train.py`, `bench/soak.py`); not a benchmark itself.

  * `load_config`: parse a gin recipe by name (solo_instrument, tiny_instrument, ...) plus bindings;
  * `synthetic_batch`: harmonic tones with vibrato and noise, with their f0 and A-weighted loudness (the work
    of real data, generated offline);
  * `set_threads`, `rss_mib`, `peak_rss_mib`.
"""
import os
import resource

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('KERAS_BACKEND', 'tensorflow')

import numpy as np


def set_threads(threads):
  """intra/inter-op threads of TensorFlow (0: its default). Call before any op runs."""
  if threads:
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def load_config(config, gin_params=()):
  """Parses gin recipe `config` (a name, a path relative to the gin folder, or a file) and `gin_params`.

  Returns:
    (absolute path of the recipe, its `%n_samples`).
  """
  import gin
  from ddsp.training import configs
  import ddsp.training  # noqa: F401  (registers the configurables)
  configs.add_search_path()
  config_path = configs.resolve_gin_file(config)
  gin.parse_config_files_and_bindings([config_path], list(gin_params))
  return config_path, int(configs.bound_value('%n_samples'))  # evaluates @example/secs_to_samples()


def synthetic_batch(batch_size, n_samples, sample_rate=16000, frame_rate=250, seed=0):
  """A batch of harmonic tones with vibrato and noise plus their f0 and loudness (NumPy float32).

  Returns:
    {'audio': [batch, n_samples], 'f0_hz', 'f0_confidence', 'loudness_db': [batch, n_frames]}.
  """
  from ddsp import spectral_ops
  rng = np.random.default_rng(seed)
  n_frames = -(-n_samples // (sample_rate // frame_rate))
  t = np.arange(n_samples) / sample_rate
  audio, f0 = [], []
  for _ in range(batch_size):
    base = rng.uniform(110.0, 440.0)
    f0_t = base * (1.0 + 0.01 * np.sin(2 * np.pi * rng.uniform(4, 6) * t))
    phase = 2 * np.pi * np.cumsum(f0_t) / sample_rate
    env = 0.5 * (1.0 - np.exp(-t * 20.0)) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t) ** 2)
    x = sum((0.6 / k) * np.sin(k * phase) for k in range(1, 9))
    audio.append((env * x + 0.003 * rng.standard_normal(n_samples)).astype(np.float32))
    f0.append(f0_t[::sample_rate // frame_rate][:n_frames].astype(np.float32))
  audio = np.stack(audio)
  loudness = spectral_ops.compute_loudness(audio, sample_rate, frame_rate)
  return {'audio': audio, 'f0_hz': np.stack(f0), 'f0_confidence': np.ones_like(np.stack(f0)),
          'loudness_db': loudness.astype(np.float32)}


def peak_rss_mib():
  """The peak resident memory of this process so far (MiB)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rss_mib():
  """The resident memory of this process now (MiB): psutil if installed, else VmRSS of /proc/self/status."""
  try:
    import psutil
    return psutil.Process().memory_info().rss / 2.0 ** 20
  except ImportError:
    with open('/proc/self/status') as f:
      for line in f:
        if line.startswith('VmRSS:'):
          return int(line.split()[1]) / 1024.0  # kB
  return float('nan')


if __name__ == '__main__':  # `make bench` runs every bench/*.py: nothing to measure here.
  print('bench/train_setup.py: helpers of bench/train.py and bench/soak.py (nothing to run)')
