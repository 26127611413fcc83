"""Pitch tracking of whole signals with CREPE (`ddsp.crepe`): framing, level gating, batching, decoding.

Accuracy of the published weights through this port (tests/test_pitch.py): on pure sines from 50 Hz to
1.9 kHz, `full` is within 16 cents (mean absolute error ~6 cents; 1.9 kHz, near the top of the range,
reads -13.5 cents) and `tiny` within 25 cents; on the bundled real-instrument notes `full` is within
3 cents of the nominal pitch. Confidence on pure sines is 0.65-0.97 depending on the pitch (440 Hz:
> 0.9), on white noise < 0.3 (`full`).

Public API:
  * `compute_f0(audio [n_samples], sample_rate, frame_rate, ...) -> (f0_hz [n_frames], f0_confidence
    [n_frames])`, NumPy float32, `n_frames = ceil(n_samples * frame_rate / sample_rate)`, frame `i` centred
    on time `i / frame_rate`.
  * `compute_f0_batch([audio_0, audio_1, ...], ...)`: the same for several signals, their frames sharing
    network batches.
  * `PretrainedCREPEEmbeddingLoss`: L1 distance between CREPE activations of two signals (a Keras layer).
"""
import math

import gin
import keras
import numpy as np
import tensorflow as tf

from ddsp import crepe

# The last, partial batch of a call runs at the smallest power of two >= its size (at least this), so
# short inputs do not pay for a whole batch; each such size is traced once.
_MIN_TAIL_BATCH = 16


# ------------------------------------------------------------------------------------------------------------
# Framing, gating, batching.
# ------------------------------------------------------------------------------------------------------------
def _check_audio(audio, name='audio'):
  """float32 `[n_samples]` or a ValueError naming the problem.

  Floats are taken as they are (full scale 1.0); integer PCM is scaled to [-1, 1) by its dtype's range
  (unsigned PCM is centred first).
  """
  if isinstance(audio, (tf.Tensor, tf.Variable)):
    audio = audio.numpy()
  arr = np.asarray(audio)
  if arr.dtype.kind not in 'iuf':
    raise ValueError(f'`{name}` must be a real-valued array of floats (or integer PCM), got dtype {arr.dtype}.')
  if arr.ndim != 1:
    raise ValueError(f'`{name}` must be 1-D [n_samples] (mono); got shape {arr.shape}. Downmix or select '
                     'a channel first.')
  if arr.shape[0] == 0:
    raise ValueError(f'`{name}` is empty (0 samples).')
  if arr.dtype.kind == 'i':
    return (arr.astype(np.float64) / -float(np.iinfo(arr.dtype).min)).astype(np.float32)
  if arr.dtype.kind == 'u':
    half = (float(np.iinfo(arr.dtype).max) + 1.0) / 2.0
    return ((arr.astype(np.float64) - half) / half).astype(np.float32)
  arr = arr.astype(np.float32, copy=False)
  finite = np.isfinite(arr)
  if not finite.all():
    bad = int(np.argmin(finite))
    kind = 'NaN' if np.isnan(arr[bad]) else 'Inf'
    raise ValueError(f'`{name}` contains {kind} (first non-finite value at sample {bad} of {arr.shape[0]}).')
  return arr


def _n_frames(n_samples, sample_rate, frame_rate):
  return max(1, int(math.ceil(n_samples * frame_rate / sample_rate - 1e-9)))


class _Source:
  """One signal: 16 kHz padded audio, CREPE frame centres, gating and per-frame results."""

  def __init__(self, audio, sample_rate, frame_rate, crepe_frame_rate, loudness_floor_db, keep_activations):
    import soxr
    self.n_frames = _n_frames(audio.shape[0], sample_rate, frame_rate)
    if sample_rate != crepe.SAMPLE_RATE:
      audio = soxr.resample(audio, sample_rate, crepe.SAMPLE_RATE, quality='HQ').astype(np.float32, copy=False)
    self.frame_rate = float(frame_rate)
    self.crepe_rate = float(crepe_frame_rate)
    self.interpolate = abs(self.crepe_rate - self.frame_rate) > 1e-9
    if self.interpolate:
      t_last = (self.n_frames - 1) / self.frame_rate
      self.n_crepe = int(math.floor(t_last * self.crepe_rate + 1e-9)) + 2
    else:
      self.n_crepe = self.n_frames
    # Frame j is centred on 16 kHz sample round(j * 16000 / crepe_rate); in `padded` (512 zeros first) it
    # starts at that index.
    self.centres = np.rint(np.arange(self.n_crepe) * (crepe.SAMPLE_RATE / self.crepe_rate)).astype(np.int64)
    half = crepe.FRAME_SIZE // 2
    end = max(audio.shape[0] + half, int(self.centres[-1]) + crepe.FRAME_SIZE)
    self.padded = np.zeros((end,), np.float32)
    self.padded[half:half + audio.shape[0]] = audio
    self.windows = np.lib.stride_tricks.sliding_window_view(self.padded, crepe.FRAME_SIZE)
    self.floor_db = loudness_floor_db
    self.f0 = np.zeros((self.n_crepe,), np.float32)
    self.conf = np.zeros((self.n_crepe,), np.float32)
    self.ran = np.zeros((self.n_crepe,), bool)
    self.activations = np.zeros((self.n_crepe, crepe.N_BINS), np.float32) if keep_activations else None

  def frame_level_db(self, start, stop):
    """Mean-square level (dBFS, 10 log10 mean x^2) of CREPE frames [start, stop), O(span) memory."""
    c = self.centres[start:stop]
    seg = self.padded[c[0]:c[-1] + crepe.FRAME_SIZE].astype(np.float64)
    cs = np.concatenate([[0.0], np.cumsum(seg * seg)])
    rel = c - c[0]
    energy = np.maximum(cs[rel + crepe.FRAME_SIZE] - cs[rel], 0.0) / crepe.FRAME_SIZE
    return 10.0 * np.log10(np.maximum(energy, 1e-20))

  def chunks(self, chunk_frames):
    """Yields arrays of CREPE frame indices that must run through the network."""
    for start in range(0, self.n_crepe, chunk_frames):
      stop = min(start + chunk_frames, self.n_crepe)
      idx = np.arange(start, stop)
      if self.floor_db is not None:
        idx = idx[self.frame_level_db(start, stop) >= self.floor_db]
      if idx.size:
        yield idx

  def store(self, idx, act):
    self.ran[idx] = True
    if self.activations is not None:
      self.activations[idx] = act
    else:
      self.f0[idx], self.conf[idx] = crepe.activations_to_f0(act)

  def finish(self, viterbi):
    """(f0_hz [n_frames], confidence [n_frames]) at the output frame rate."""
    if self.activations is not None:
      ran = np.flatnonzero(self.ran)
      if ran.size:
        act = self.activations[ran]
        path = crepe.viterbi_path(act) if viterbi else None
        self.f0[ran], self.conf[ran] = crepe.activations_to_f0(act, path)
      self.activations = None
    if not self.interpolate:
      return self.f0, self.conf
    return _interpolate(self.f0, self.conf, self.ran, self.n_frames, self.crepe_rate / self.frame_rate)


def _interpolate(f0, conf, ran, n_frames, ratio):
  """CREPE-rate results -> the frame rate: position of frame i is `i * ratio` CREPE frames.

  Confidence is interpolated linearly (skipped frames count as 0). f0 is interpolated linearly in cents
  between two CREPE frames that both ran; next to a skipped frame it takes the value of the nearer frame
  that ran if that nearer frame ran, and 0 Hz if the nearer one was skipped.
  """
  pos = np.arange(n_frames) * ratio
  j = np.minimum(np.floor(pos + 1e-9).astype(np.int64), f0.shape[0] - 2)
  w = pos - j
  c_out = (1.0 - w) * conf[j] + w * conf[j + 1]
  cents = np.where(ran, crepe.hz_to_cents(np.where(ran, f0, 10.0)), 0.0)
  both = ran[j] & ran[j + 1]
  near = np.where(w < 0.5, j, j + 1)
  f_cents = np.where(both, (1.0 - w) * cents[j] + w * cents[j + 1], cents[near])
  f_out = np.where(both | ran[near], crepe.cents_to_hz(f_cents), 0.0)
  return f_out.astype(np.float32), c_out.astype(np.float32)


def _tail_batch_size(n_valid, batch_size):
  """Batch size for a last batch of `n_valid` frames: the next power of two (>= 16), capped at batch_size."""
  size = max(_MIN_TAIL_BATCH, 1 << max(0, int(n_valid) - 1).bit_length())
  return min(batch_size, size)


def _run_network(sources, capacity, batch_size, jit_compile, chunk_frames=16384):
  """Runs every CREPE frame of every source that passes its gate, in fixed-size batches shared by sources.

  Full batches have `batch_size` frames; the last one is zero-padded to `_tail_batch_size` frames. Each
  batch shape has its own `tf.function` (fixed input signature), traced once per process.
  """
  buf = np.zeros((batch_size, crepe.FRAME_SIZE), np.float32)
  owners, fill = [], 0

  def flush(n_valid):
    size = batch_size if n_valid == batch_size else _tail_batch_size(n_valid, batch_size)
    buf[n_valid:size] = 0.0
    infer = crepe.get_inference_fn(capacity, size, jit_compile)
    act = infer(tf.constant(buf[:size])).numpy()
    for src, idx, off in owners:
      src.store(idx, act[off:off + idx.size])
    owners.clear()

  for src in sources:
    for idx in src.chunks(chunk_frames):
      pos = 0
      while pos < idx.size:
        take = min(batch_size - fill, idx.size - pos)
        sel = idx[pos:pos + take]
        buf[fill:fill + take] = src.windows[src.centres[sel]]
        owners.append((src, sel, fill))
        fill += take
        pos += take
        if fill == batch_size:
          flush(fill)
          fill = 0
  if fill:
    flush(fill)


def _check_args(sample_rate, frame_rate, model, crepe_frame_rate, loudness_floor_db, batch_size):
  crepe.check_capacity(model)
  for name, v in (('sample_rate', sample_rate), ('frame_rate', frame_rate)):
    if not isinstance(v, (int, float, np.integer, np.floating)) or not v > 0 or not math.isfinite(v):
      raise ValueError(f'`{name}` must be a positive number, got {v!r}.')
  if crepe_frame_rate is not None and (not crepe_frame_rate > 0 or not math.isfinite(crepe_frame_rate)):
    raise ValueError(f'`crepe_frame_rate` must be positive or None, got {crepe_frame_rate!r}.')
  if loudness_floor_db is not None and not math.isfinite(loudness_floor_db):
    raise ValueError(f'`loudness_floor_db` must be a finite number or None, got {loudness_floor_db!r}.')
  if int(batch_size) != batch_size or batch_size < 1:
    raise ValueError(f'`batch_size` must be a positive integer, got {batch_size!r}.')


@gin.register
def compute_f0_batch(audios, sample_rate=16000, frame_rate=250, model='tiny', viterbi=False,
                     crepe_frame_rate=None, loudness_floor_db=None, batch_size=512, jit_compile=None):
  """CREPE f0 of several signals at once; their frames share the network's batches.

  Each result equals what `compute_f0` returns for that signal alone (frames never mix signals' audio).

  Args:
    audios: list of 1-D arrays `[n_samples_i]` (lengths may differ).
    sample_rate: rate of every signal, or a list with one rate per signal.
    frame_rate, model, viterbi, crepe_frame_rate, loudness_floor_db, batch_size, jit_compile: see
      `compute_f0`.

  Returns:
    A list of `(f0_hz [n_frames_i], f0_confidence [n_frames_i])` NumPy float32 pairs,
    `n_frames_i = ceil(n_samples_i * frame_rate / sample_rate_i)`.

  Raises:
    ValueError: bad audio (names the signal and the problem) or arguments.
    CrepeWeightsNotInstalledError: the model's weights package is missing.
  """
  if isinstance(audios, np.ndarray) and audios.ndim == 1:
    raise ValueError('`audios` must be a list of 1-D arrays; for one signal use compute_f0().')
  audios = list(audios)
  rates = list(sample_rate) if isinstance(sample_rate, (list, tuple, np.ndarray)) else [sample_rate] * len(audios)
  if len(rates) != len(audios):
    raise ValueError(f'Got {len(rates)} sample rates for {len(audios)} signals.')
  crepe_rate = frame_rate if crepe_frame_rate is None else crepe_frame_rate
  for r in rates:
    _check_args(r, frame_rate, model, crepe_rate, loudness_floor_db, batch_size)
  batch_size = int(batch_size)
  checked = [_check_audio(a, f'audios[{i}]' if len(audios) > 1 else 'audio') for i, a in enumerate(audios)]
  crepe.get_crepe_model(model)  # Fails early (ImportError) when the weights are missing.
  results = []
  # Sources are prepared lazily, a group at a time, so resampled copies of all inputs are never held at once.
  group, group_samples = [], 0
  pending = list(zip(checked, rates))

  def run_group(group):
    _run_network(group, model, batch_size, jit_compile)
    for src in group:
      results.append(src.finish(viterbi))

  for audio, rate in pending:
    group.append(_Source(audio, rate, frame_rate, crepe_rate, loudness_floor_db, keep_activations=viterbi))
    group_samples += audio.shape[0]
    if group_samples >= 64 * crepe.SAMPLE_RATE * 60:  # ~1 hour of audio per group.
      run_group(group)
      group, group_samples = [], 0
  if group:
    run_group(group)
  return results


@gin.register
def compute_f0(audio, sample_rate=16000, frame_rate=250, model='tiny', viterbi=False, crepe_frame_rate=None,
               loudness_floor_db=None, batch_size=512, jit_compile=None):
  """Fundamental frequency and confidence of mono audio with CREPE.

  Frame `i` is centred on time `i / frame_rate` (sample `i * sample_rate / frame_rate`), the audio
  zero-padded at both ends. The network runs at `crepe_frame_rate` (its frames centred on
  `j / crepe_frame_rate`); when that differs from `frame_rate`, f0 (in cents) and confidence are
  interpolated linearly to the frames.

  Args:
    audio: 1-D array `[n_samples]` at `sample_rate` (resampled to 16 kHz with soxr): floats with full
      scale 1.0, or integer PCM (scaled by its dtype's range).
    sample_rate: rate of `audio` in Hz.
    frame_rate: output frames per second.
    model: CREPE capacity: 'tiny', 'small', 'medium', 'large' or 'full'.
    viterbi: decode with `crepe.viterbi_path` (a smooth path; holds all activations, ~1.4 kB per CREPE frame).
    crepe_frame_rate: frames per second at which CREPE runs; None: `frame_rate`.
    loudness_floor_db: CREPE frames whose mean-square level `10 log10(mean(x^2))` over their 1024 samples
      (dBFS; a full-scale sine reads -3 dB) is below this skip the network: f0 0 Hz, confidence 0. None
      runs every frame. Every frame that ran keeps the network's f0 estimate, however unconfident.
    batch_size: frames per network call. Batches have this fixed shape (one `tf.function` trace); the
      last batch of a call is zero-padded to the next power of two (>= 16, <= batch_size), a shape that is
      also traced only once, so short inputs do not pay for a whole batch.
    jit_compile: XLA-compile the inference function; None uses the measured default.

  Returns:
    `(f0_hz [n_frames], f0_confidence [n_frames])`, NumPy float32,
    `n_frames = ceil(n_samples * frame_rate / sample_rate)`.

  Raises:
    ValueError: empty, non-1-D or non-finite audio, unknown model, bad rates.
    CrepeWeightsNotInstalledError (ImportError and ValueError): `pip install ddsp[crepe-<model>]`.
  """
  return compute_f0_batch([audio], sample_rate=sample_rate, frame_rate=frame_rate, model=model,
                          viterbi=viterbi, crepe_frame_rate=crepe_frame_rate,
                          loudness_floor_db=loudness_floor_db, batch_size=batch_size,
                          jit_compile=jit_compile)[0]


# ------------------------------------------------------------------------------------------------------------
# Perceptual loss.
# ------------------------------------------------------------------------------------------------------------
@gin.register
class PretrainedCREPEEmbeddingLoss(keras.layers.Layer):
  """L1 distance between the CREPE activations of two signals (a perceptual loss term).

  `PretrainedCREPEEmbeddingLoss(...)(target_audio [B, N], audio [B, N]) -> scalar`: both signals (16 kHz)
  are cut into centred frames of 1024 samples every 256 (zero padding at the ends), each frame goes
  through the frozen CREPE network up to `activation_layer`, and the loss is `weight` times the mean
  absolute difference of the activations. Differentiable w.r.t. `audio`; no gradient flows to the target
  or the weights. The CREPE weights are not tracked as this layer's weights (not checkpointed with a
  model that uses the loss).

  Args:
    weight: multiplier of the loss.
    model: CREPE capacity.
    activation_layer: name of the layer whose output is compared ('classifier', 'conv6-BN', ...).
    hop_size: samples between frames.
  """

  def __init__(self, weight=1.0, model='tiny', activation_layer='classifier', hop_size=crepe.EMBEDDING_HOP,
               name='pretrained_crepe_embedding_loss', **kwargs):
    kwargs['trainable'] = False
    super().__init__(name=name, **kwargs)
    crepe.check_capacity(model)
    self.weight = float(weight)
    self.model_name = model
    self.activation_layer = activation_layer
    self.hop_size = int(hop_size)
    if self.hop_size < 1:
      raise ValueError(f'`hop_size` must be a positive integer, got {hop_size!r}.')
    net = crepe.get_crepe_activation_model(model, activation_layer)  # Validates the layer name.
    # Held in a closure, not as a tracked sub-layer: the frozen CREPE weights are not this layer's weights
    # (they are not saved in the checkpoints of a model that uses the loss; they load from the package).
    self._net = lambda frames: net(frames, training=False)

  def _activations(self, audio, name):
    audio = tf.convert_to_tensor(audio)
    if audio.dtype != tf.float32:
      audio = tf.cast(audio, tf.float32)
    if audio.shape.rank != 2:
      raise ValueError(f'`{name}` must be [batch, n_samples], got shape {audio.shape}.')
    half = crepe.FRAME_SIZE // 2
    padded = tf.pad(audio, [[0, 0], [half, half]])
    frames = tf.signal.frame(padded, crepe.FRAME_SIZE, self.hop_size)  # [B, F, 1024]
    flat = tf.reshape(frames, [-1, crepe.FRAME_SIZE])
    return self._net(flat)

  def call(self, target_audio, audio):
    target = tf.stop_gradient(self._activations(target_audio, 'target_audio'))
    value = self._activations(audio, 'audio')
    if target.shape.is_fully_defined() and value.shape.is_fully_defined() and target.shape != value.shape:
      raise ValueError(f'PretrainedCREPEEmbeddingLoss: `target_audio` and `audio` must have the same shape '
                       f'[batch, n_samples]; their activations are {target.shape} and {value.shape}.')
    return self.weight * tf.reduce_mean(tf.abs(target - value))

  def get_config(self):
    config = super().get_config()
    config.update(weight=self.weight, model=self.model_name, activation_layer=self.activation_layer,
                  hop_size=self.hop_size)
    return config
