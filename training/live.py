"""Live timbre transfer: audio in -> audio out, block by block, the whole path in one stateless step.

`LiveModel(model, block_size)` joins `ddsp.stream_features.FeatureStream` (causal loudness and CREPE f0 of the
input, as offline) and `streaming.StreamingModel` (the trained decoder and synthesizers, as offline):

    live = LiveModel(model, block_size=960)               # a multiple of the model's hop
    state = live.initial_state(batch_size=1)              # every tensor zero
    for block in blocks:                                  # [1, 960] float32 at model.sample_rate
      out, state = live.step(block, state)                # [1, 960]: the audio of `latency` samples ago

State: the feature stream's tensors under `features_<key>` and the StreamingModel's under their own names
(`gru_state`, `frames`, `<harmonic>_phase`, ...), one flat dict, so an exported step (`ddsp_export --streaming
--with_features`) takes and returns them by name.

Latency, exactly: the features of a frame come out `features.latency_frames` frames late (the look-ahead of
the centred loudness and CREPE windows), the synthesis adds its own `streamer.latency_frames` (2), so output
sample n is the model's rendering of input sample n - `latency`, `latency = (Dl + 2) * hop` samples. A host
that collects `block_size` samples before each call adds the block: `total_latency = block_size + latency`.

Features. f0 comes from CREPE run at the model's frame rate on the 16 kHz resampled input (see
`ddsp.stream_features`); the model reads f0 and loudness as it was trained to (no confidence gating: a live
path cannot bridge gaps without more look-ahead); the confidence is returned by `step_with_features`.
"""
import os

os.environ.setdefault('KERAS_BACKEND', 'tensorflow')

import tensorflow as tf

from ddsp import core
from ddsp import stream_features
from ddsp.training import streaming

FEATURE_PREFIX = 'features_'


class LiveModel(tf.Module):
  """Audio -> audio, block by block, through a trained solo-instrument model (see the module doc).

  Args:
    model: a built / restored `models.Autoencoder` that `streaming.StreamingModel` accepts.
    block_size: samples per block, a multiple of the model's hop.
    crepe_model: CREPE capacity of the live f0 ('tiny', 'small', ...).
    loudness_n_fft: FFT size of the loudness frames; default the model preprocessor's `n_fft` if it has one,
      else 2048 (data preparation's).
    noise_seed: seed of the streamer's noise table.
    jit_compile: XLA for the step.
    name: module name.

  Attributes:
    sample_rate, hop, block_size, block_frames, features (`FeatureStream`), streamer (`StreamingModel`),
    latency_frames, latency (samples), total_latency (samples: block + latency).
  """

  def __init__(self, model, block_size, crepe_model='tiny', loudness_n_fft=None, noise_seed=0,
               jit_compile=False, name='live_model'):
    super().__init__(name=name)
    self.streamer = streaming.StreamingModel(model, block_size, noise_seed=noise_seed)
    self.sample_rate = int(self.streamer.sample_rate)
    self.hop = self.streamer.hop
    self.block_size = self.streamer.block_size
    self.block_frames = self.streamer.block_frames
    if loudness_n_fft is None:
      loudness_n_fft = getattr(model.preprocessor, 'n_fft', None) or 2048
    self.features = stream_features.FeatureStream(self.sample_rate, self.sample_rate / self.hop,
                                                  self.block_frames, loudness_n_fft=loudness_n_fft,
                                                  crepe_model=crepe_model, align_frames=self.block_frames)
    self.latency_frames = self.features.latency_frames + self.streamer.latency_frames
    self.latency = self.latency_frames * self.hop
    self.total_latency = self.block_size + self.latency
    self._step_fn = tf.function(self._step, jit_compile=bool(jit_compile), reduce_retracing=True)

  def state_spec(self, batch_size=None):
    spec = {FEATURE_PREFIX + k: v for k, v in self.features.state_spec(batch_size).items()}
    spec[FEATURE_PREFIX + 'frames_done'] = tf.TensorSpec([], tf.int32)
    spec.update(self.streamer.state_spec(batch_size))
    return {k: spec[k] for k in sorted(spec)}

  def initial_state(self, batch_size=1):
    """Every state tensor zero (`batch_size` an int or scalar tensor)."""
    return {k: tf.zeros(tf.stack([batch_size if d is None else d for d in s.shape]) if s.shape.rank else [],
                        s.dtype)
            for k, s in self.state_spec(None).items()}

  def check_block(self, audio, sample_rate=None):
    """The block as float32 `[B, block_size]`, or a ValueError (wrong rate, stereo, wrong length)."""
    if sample_rate is not None and int(sample_rate) != self.sample_rate:
      raise ValueError(f'The live input must be at the model rate {self.sample_rate} Hz, got {sample_rate} Hz '
                       '(resample before streaming).')
    audio = core.tf_float32(audio, 'audio')
    if audio.shape.rank == 3:
      if audio.shape[-1] != 1:
        raise ValueError(f'The live input must be mono [batch, {self.block_size}]; got {audio.shape[-1]} '
                         'channels (downmix first).')
      audio = audio[..., 0]
    if audio.shape.rank != 2 or (audio.shape[1] is not None and audio.shape[1] != self.block_size):
      raise ValueError(f'An audio block must be [batch, {self.block_size}] samples (block_size, a multiple of '
                       f'the hop {self.hop}), got shape {audio.shape}.')
    return audio

  def step(self, audio, state, sample_rate=None):
    """One block: (`[B, block_size]` audio, state) -> (`[B, block_size]` audio, new state)."""
    out, state, _ = self._step_fn(self.check_block(audio, sample_rate), state)
    return out, state

  def step_with_features(self, audio, state, sample_rate=None):
    """As `step`, also returning the features (f0_hz, f0_confidence, loudness_db `[B, block_frames]`) of input
    frames [s - features.latency_frames, ...)."""
    return self._step_fn(self.check_block(audio, sample_rate), state)

  def _step(self, audio, state):
    feat_state = {k[len(FEATURE_PREFIX):]: v for k, v in state.items() if k.startswith(FEATURE_PREFIX)}
    stream_state = {k: v for k, v in state.items() if not k.startswith(FEATURE_PREFIX)}
    done = feat_state.pop('frames_done')
    feats, feat_state = self.features.step(audio, feat_state)
    # The first Dl feature frames (whole blocks) are the frames before the start: the synthesis waits, its
    # state held at zero and its output silent, so it starts at input frame 0 exactly as offline.
    started = done >= self.features.latency_frames
    out, new_stream = self.streamer._step(feats['f0_hz'], feats['loudness_db'], stream_state)
    out = tf.where(started, out, tf.zeros_like(out))
    new_state = {k: tf.where(started, v, stream_state[k]) for k, v in new_stream.items()}
    new_state.update({FEATURE_PREFIX + k: v for k, v in feat_state.items()})
    new_state[FEATURE_PREFIX + 'frames_done'] = tf.minimum(done + self.block_frames, self.features.latency_frames)
    return out, {k: new_state[k] for k in sorted(new_state)}, feats

  def process(self, audio, progress=None):
    """A whole signal `[n]` or `[B, n]` through the live path, block by block (what a host does).

    The input is padded with zeros to cover the latency; the output is shifted back by it, so it lines up
    with the input (`[B, n]`).

    Args:
      audio: float32 at the model's rate.
      progress: optional callable(block seconds) called after each block with its wall time.

    Returns:
      (audio `[B, n]` NumPy, features dict of NumPy `[B, n_frames]` aligned with the input frames).
    """
    import time

    import numpy as np
    x = np.asarray(audio, np.float32)
    if x.ndim == 1:
      x = x[np.newaxis]
    n = x.shape[1]
    n_blocks = -(-(n + self.latency) // self.block_size)
    padded = np.zeros((x.shape[0], n_blocks * self.block_size), np.float32)
    padded[:, :n] = x
    state = self.initial_state(x.shape[0])
    outs, feats = [], {k: [] for k in self.features.keys}
    for i in range(n_blocks):
      start = time.perf_counter()
      out, state, f = self._step_fn(tf.constant(padded[:, i * self.block_size:(i + 1) * self.block_size]), state)
      out = out.numpy()
      if progress is not None:
        progress(time.perf_counter() - start)
      outs.append(out)
      for k in feats:
        feats[k].append(f[k].numpy())
    n_frames = -(-n // self.hop)
    d = self.features.latency_frames
    audio_out = np.concatenate(outs, axis=1)[:, self.latency:self.latency + n]
    return audio_out, {k: np.concatenate(v, axis=1)[:, d:d + n_frames] for k, v in feats.items()}


def block_time_report(block_seconds, block_size, sample_rate, warmup=2):
  """Real-time factor and per-block wall-time percentiles of a stream (the first `warmup` blocks left out).

  Returns:
    dict: blocks, block_ms (the block's duration), rtf (audio seconds per wall second), p50_ms, p99_ms,
    max_ms, warmup_ms.
  """
  import numpy as np
  times = np.asarray(block_seconds[warmup:] if len(block_seconds) > warmup else block_seconds, np.float64)
  block_secs = block_size / float(sample_rate)
  return {'blocks': len(block_seconds), 'block_ms': 1e3 * block_secs,
          'rtf': float(block_secs * times.size / max(times.sum(), 1e-12)),
          'p50_ms': float(1e3 * np.percentile(times, 50)), 'p99_ms': float(1e3 * np.percentile(times, 99)),
          'max_ms': float(1e3 * times.max()), 'warmup_ms': float(1e3 * sum(block_seconds[:warmup]))}


def stream_file(model_dir, input_path, output_path, block_size, crepe_model='tiny', checkpoint=None):
  """What `ddsp_stream` does: a file through the live path block by block, written as a WAV.

  The input is read as mono at the model's rate (converted with a note, as `ddsp_transfer` does); the output
  is aligned with it (the latency removed) and written atomically.

  Returns:
    dict: the `block_time_report` figures, latency / total_latency (samples and ms), lookahead_samples,
    seconds of audio, notes.

  Raises:
    ValueError (export_lib.ExportError, validation.InputError): no model, bad block size, unreadable input.
  """
  from ddsp import file_utils
  from ddsp.training import export_lib
  from ddsp.training import features as features_lib
  model = export_lib.load_model(model_dir, checkpoint)
  player = LiveModel(model, block_size, crepe_model=crepe_model)
  audio, notes = features_lib.read_input(input_path, player.sample_rate)
  times = []
  out, _ = player.process(audio, progress=times.append)
  file_utils.write_wav(output_path, out[0], player.sample_rate)
  report = block_time_report(times, player.block_size, player.sample_rate)
  ms = 1e3 / player.sample_rate
  report.update(seconds=audio.shape[0] / player.sample_rate, notes=notes, sample_rate=player.sample_rate,
                block_size=player.block_size, latency=player.latency, latency_ms=player.latency * ms,
                total_latency=player.total_latency, total_latency_ms=player.total_latency * ms,
                lookahead_samples=dict(player.features.lookahead_samples),
                feature_latency_frames=player.features.latency_frames,
                synth_latency_frames=player.streamer.latency_frames)
  return report
