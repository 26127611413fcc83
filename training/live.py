"""Live timbre transfer: audio in -> audio out, block by block, the whole path in one stateless step.

`LiveModel(model, block_size)` joins `ddsp.stream_features.FeatureStream` (causal loudness and CREPE f0 of the
input, as offline) and `streaming.StreamingModel` (the trained decoder and synthesizers, as offline):

    live = LiveModel(model, block_size=512)               # any number of samples (a plugin host's block)
    state = live.initial_state(batch_size=1)              # every tensor zero
    for block in blocks:                                  # [1, 512] float32 at model.sample_rate
      out, state = live.step(block, state)                # [1, 512]: the audio of `latency` samples ago

State: the feature stream's tensors under `features_<key>`, the StreamingModel's under their own names
(`gru_state`, `frames`, `<harmonic>_phase`, ...) and the adapter's under `host_<key>`, one flat dict, so an
exported step (`ddsp_export --streaming --with_features`) takes and returns them by name.

Any block size. A block of a whole number of units is one inner step (its frames at once); the unit is one
hop, or P hops when CREPE runs slower than the frames (`crepe_frame_rate`, below). Any other block goes through
the host-block adapter: the block joins the input FIFO (`host_in`, the `host_fill` samples not yet a whole
unit), every whole unit in it runs one inner step (a `tf.while_loop` of 0 .. B // unit + 1 trips: TFLite's
built-in WHILE, so the export keeps a fixed block size), their audio joins the output FIFO (`host_out`) and the
call returns its oldest B samples. After call k, c = (k + 1) B mod unit input samples wait for the rest of
their unit, so the output must run c samples behind what the inner steps have made; c takes every multiple of
g = gcd(B, unit) below the unit, so the adapter delays by exactly E = unit - g (`adapter_latency`), the least
that never runs dry; E = 0 for a whole number of units. The output equals the whole-unit path's, E samples
later, sample for sample (tests/test_live_blocks.py).

Latency, exactly: output sample n is the model's rendering of input sample n - `latency`, `latency =
(Dl + D) * hop + E` samples: the features of a frame come out `features.latency_frames` (Dl) frames late (the
look-ahead of the centred loudness and CREPE windows, rounded up to whole frames), the synthesis adds
`streamer.latency_frames` (D = 2; 1 with a causal Nyquist mask), and the adapter E. A host that collects
`block_size` samples before each call adds the block: `total_latency = block_size + latency`. At 48 kHz, 50
frames/s (hop 960): Dl = 1, D = 2, so 960-sample blocks: 960 + 2880 = 3840 samples = 80 ms; 512-sample blocks:
512 + 2880 + 896 = 4288 samples = 89.33 ms; the low-latency recipe (below): 2368 samples = 49.33 ms.

Where it comes from (the 48 kHz real-time recipe). Offline, the audio of segment t (samples [t hop,
(t + 1) hop)) crossfades the harmonic controls of frames t and t + 1, and frame t + 1's Nyquist mask takes the
largest f0 of frames t .. t + 2 (`oscillators.neighbour_max`): segment t needs f0 of frame t + 2, whose CREPE
window (1024 samples at 16 kHz, centred, plus the decimator's 32) ends 1632 input samples after its centre.
So segment t cannot be made before input sample t hop + 2 hop + 1632 has arrived: 3552 samples = 74 ms after
its first sample, whatever the block size, before any frame rounding. The loudness window (n_fft 2048: 1024
samples after frame t + 1's centre) and the noise filter (its 127-tap FIR spills 63 samples into the previous
segment, inside frame t + 1 which the harmonics need anyway) are never the binding term, so a smaller loudness
window would not lower the latency today. Frame rounding costs little: the inner steps start on hop
boundaries, so segment t is out at input sample (t + 4) hop instead of t hop + 3552; for 960-sample blocks that
costs nothing (3840 either way), for 512-sample blocks 256 samples (a feature stream able to start a frame at
any sample would reach 512 + 3520 = 4032 samples = 84 ms; these minima are brute-forced in
tests/test_live_blocks.py). The 50 ms target at 48 kHz with 512-sample blocks therefore needs a change of
convention, in training and live alike: a causal Nyquist mask (f0 of frames t - 1 .. t + 1, -1 frame) and f0
from a CREPE window that ends at its frame instead of being centred on it (look-ahead 96 samples instead of
1632); then the loudness window binds, and with `OnlineLoudnessPreprocessor.n_fft` 1024 (512 samples of
look-ahead) the total is 512 + 1856 = 2368 samples = 49.33 ms on hop boundaries (1920 = 40 ms
sample-granular), with n_fft 2048 it would be 2432 (50.67 ms).

The low-latency convention (`gin/models/realtime/realtime_48k_lowlatency.gin`), read from the model, no flag:
`Harmonic.causal_nyquist` (frame t's mask from f0 of frames t - 1 and t: synthesis D = 1),
`OnlineLoudnessPreprocessor.f0_delay_frames` k (the model reads at frame t the centred CREPE f0 of frame
t - k, in training as live: the feature stream emits it k frames early, `FeatureStream(f0_delay_frames=k)`)
and its `n_fft`. At 48 kHz, 50 frames/s with k = 1 and n_fft 1024 the look-ahead of frame t's features is
672 samples (f0: 1632 - 960) and 512 (loudness), both within one hop, so Dl = 0: latency = (0 + 1) * 960 + E,
512-sample blocks 512 + 960 + 896 = 2368 samples = 49.33 ms, 960-sample blocks 960 + 960 = 1920 = 40 ms
(tests/test_live_lowlatency.py checks the sample, one more or one less fails). A whole-frame f0 delay keeps
training and live equal without interpolating CREPE outputs; one frame is the least that lets f0 not bind
(the delay must be >= 1632 - 960 = 672 input samples = 0.7 frame), and 20 ms is less than the 32 ms a window
ending at its frame would cost.

Features. f0 comes from CREPE on the 16 kHz resampled input (see `ddsp.stream_features`), at the model's
frame rate or, with `crepe_frame_rate` C, at C frames/s interpolated in cents to the frames as offline
(`compute_f0(crepe_frame_rate=C)`, data preparation's convention, default 100). The network is most of a
live step's cost at high frame rates: the paper's tiny model at 250 frames/s runs it 250 times a second, or
100 with C = 100 (blocks of P = 5 frames, CREPE twice per block); the look-ahead grows by at most the gap to
the next CREPE frame (`lookahead_samples`), and at 16 kHz the loudness window still binds. The model reads
f0 and loudness as it was trained to (no confidence gating: a live path cannot bridge gaps without more
look-ahead); the confidence is returned by `step_with_features`.
"""
import math
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
    block_size: samples per block, any number (a multiple of `unit` runs without the host-block adapter).
    crepe_model: CREPE capacity of the live f0 ('tiny', 'small', ...).
    crepe_frame_rate: frames per second at which the live CREPE runs (None: the model's frame rate), its f0
      interpolated in cents to the frames as `ddsp.pitch.compute_f0(crepe_frame_rate=...)` does offline (data
      preparation's default is 100). Inner steps then cover a whole number of CREPE frames: `unit` is P hops,
      P = `stream_features.crepe_period_frames` (250 frames/s with CREPE at 100: P = 5).
    loudness_n_fft: FFT size of the loudness frames; default the model preprocessor's `n_fft` if it has one,
      else 2048 (data preparation's). The f0 delay is the preprocessor's `f0_delay_frames` (0 if none).
    noise_seed: seed of the streamer's noise table.
    jit_compile: XLA for the step's features and synthesis (the CREPE network stays a oneDNN graph).
    name: module name.

  Attributes:
    sample_rate, hop, unit (samples of the smallest inner step), block_size, block_frames, features
    (`FeatureStream`), streamer (`StreamingModel`), latency_frames, latency (samples), total_latency (samples:
    block + latency).
  """

  def __init__(self, model, block_size, crepe_model='tiny', loudness_n_fft=None, noise_seed=0,
               jit_compile=False, crepe_frame_rate=None, name='live_model'):
    super().__init__(name=name)
    _, _, hop = streaming.model_geometry(model)
    block_size = int(block_size)
    if block_size <= 0:
      raise ValueError(f'block_size must be a positive number of samples, got {block_size}.')
    frame_rate = model.sample_rate / hop
    period = 1 if crepe_frame_rate is None or crepe_model is None else stream_features.crepe_period_frames(
        frame_rate, crepe_frame_rate)
    self.unit = period * hop
    # A block that is not a whole number of units goes through the host-block adapter (module doc): one unit
    # per inner step, the pending input and the output not yet due carried in the state.
    self.adapter = block_size % self.unit != 0
    self.streamer = streaming.StreamingModel(model, self.unit if self.adapter else block_size,
                                             noise_seed=noise_seed)
    self.sample_rate = int(self.streamer.sample_rate)
    self.hop = self.streamer.hop
    self.block_size = block_size
    self.block_frames = self.streamer.block_frames  # frames per inner step
    self.max_steps = block_size // self.unit + 1 if self.adapter else 1  # inner steps per call, at most
    if loudness_n_fft is None:
      loudness_n_fft = getattr(model.preprocessor, 'n_fft', None) or 2048
    self.f0_delay_frames = int(getattr(model.preprocessor, 'f0_delay_frames', 0) or 0)
    self.features = stream_features.FeatureStream(self.sample_rate, self.sample_rate / self.hop,
                                                  self.block_frames, loudness_n_fft=loudness_n_fft,
                                                  crepe_model=crepe_model, align_frames=self.block_frames,
                                                  f0_delay_frames=self.f0_delay_frames,
                                                  crepe_frame_rate=crepe_frame_rate)
    self.crepe_frame_rate = self.features.crepe_frame_rate
    self.latency_frames = self.features.latency_frames + self.streamer.latency_frames
    self.frame_latency = self.latency_frames * self.hop
    self.adapter_latency = adapter_latency(block_size, self.unit)
    self.latency = self.frame_latency + self.adapter_latency
    self.total_latency = self.block_size + self.latency
    # XLA fuses the many small ops of the features and the synthesis; CREPE's convolutions stay with oneDNN
    # (XLA's CPU convolutions are slower), so the step is three parts: analyse (XLA), network, finish (XLA).
    self.jit_compile = bool(jit_compile)
    self._analyse = self.features.analyse
    self._finish = self._finish_step
    if self.jit_compile:
      self._analyse = tf.function(self._analyse, jit_compile=True, reduce_retracing=True)
      self._finish = tf.function(self._finish, jit_compile=True, reduce_retracing=True)
    self._step_fn = tf.function(self._step, reduce_retracing=True)

  def state_spec(self, batch_size=None):
    spec = {FEATURE_PREFIX + k: v for k, v in self.features.state_spec(batch_size).items()}
    spec[FEATURE_PREFIX + 'frames_done'] = tf.TensorSpec([], tf.int32)
    spec.update(self.streamer.state_spec(batch_size))
    if self.adapter:
      spec['host_in'] = tf.TensorSpec([batch_size, self.unit], tf.float32)
      spec['host_fill'] = tf.TensorSpec([], tf.int32)
      spec['host_out'] = tf.TensorSpec([batch_size, self.adapter_latency + self.block_size], tf.float32)
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
      raise ValueError(f'An audio block must be [batch, {self.block_size}] samples (the block_size this '
                       f'LiveModel was built for), got shape {audio.shape}.')
    return audio

  def step(self, audio, state, sample_rate=None):
    """One block: (`[B, block_size]` audio, state) -> (`[B, block_size]` audio, new state)."""
    out, state, _ = self._step_fn(self.check_block(audio, sample_rate), state)
    return out, state

  def step_with_features(self, audio, state, sample_rate=None):
    """As `step`, also returning the features (f0_hz, f0_confidence, loudness_db `[B, block_frames]`) of input
    frames [s - features.latency_frames, ...). With the adapter: `[B, max_steps * block_frames]`, the frames of
    this call's inner steps last (right-aligned), and `n_frames` (int32 scalar) how many of them there are."""
    return self._step_fn(self.check_block(audio, sample_rate), state)

  def _step(self, audio, state):
    if not self.adapter:
      return self._inner_step(audio, state)
    return self._adapter_step(audio, state)

  def _adapter_step(self, audio, state):
    """Host block -> whole units -> host block (module doc, "Any block size"; `hop` here is the unit)."""
    hop, size, extra = self.unit, self.block_size, self.adapter_latency
    audio = self.features.sanitize(audio)  # a non-finite sample silences the whole host block
    inner = {k: v for k, v in state.items() if not k.startswith('host_')}
    fill = state['host_fill']  # c: pending input samples, right-aligned in host_in
    combined = tf.concat([state['host_in'], audio], axis=1)  # the pending input is combined[:, hop - c:]
    n_steps = (fill + size) // hop
    batch = tf.shape(audio)[0]
    frames = self.block_frames  # per inner step
    feats0 = {k: tf.zeros([batch, self.max_steps * frames]) for k in self.features.keys}

    def body(i, fifo, inner, feats):
      start = hop - fill + i * hop
      block = tf.gather(combined, start + tf.range(hop), axis=1)
      out, inner, f = self._inner_step(block, inner)
      # The output FIFO holds its samples right-aligned: shift left by one hop, append this hop.
      fifo = tf.concat([fifo[:, hop:], out], axis=1)
      feats = {k: tf.concat([feats[k][:, frames:], f[k]], axis=1) for k in feats}
      return i + 1, fifo, inner, feats

    _, fifo, inner, feats = tf.while_loop(lambda i, *_: i < n_steps, body,
                                          (tf.constant(0), state['host_out'], inner, feats0))
    # The FIFO held E - c samples before the loop (E = adapter_latency); emit its oldest `size`.
    held = extra - fill + n_steps * hop
    out = tf.gather(fifo, extra + size - held + tf.range(size), axis=1)
    new_state = dict(inner, host_in=combined[:, -hop:], host_fill=fill + size - n_steps * hop, host_out=fifo)
    feats['n_frames'] = n_steps * frames
    return out, {k: new_state[k] for k in sorted(new_state)}, feats

  def _inner_step(self, audio, state):
    feat_state = {k[len(FEATURE_PREFIX):]: v for k, v in state.items() if k.startswith(FEATURE_PREFIX)}
    stream_state = {k: v for k, v in state.items() if not k.startswith(FEATURE_PREFIX)}
    done = feat_state.pop('frames_done')
    feats, windows, analysed = self._analyse(audio, feat_state)
    return self._finish(self.features.net(windows), feats, feat_state, analysed, stream_state, done)

  def _finish_step(self, activations, feats, feat_state, analysed, stream_state, done):
    """CREPE's activations and the analysed block -> (audio, new state, features) (`_inner_step`)."""
    feats, feat_state = self.features.complete(activations, feats, feat_state, analysed)
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
      (audio `[B, n]` NumPy, features dict of NumPy `[B, n_frames]` aligned with the input frames; with an f0
      delay, frame t's f0 / confidence are those the model reads there: CREPE's centred frame t - k).
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
        v = f[k].numpy()
        feats[k].append(v[:, v.shape[1] - int(f['n_frames']):] if self.adapter else v)
    n_frames = -(-n // self.hop)
    d = self.features.latency_frames
    audio_out = np.concatenate(outs, axis=1)[:, self.latency:self.latency + n]
    return audio_out, {k: np.concatenate(v, axis=1)[:, d:d + n_frames] for k, v in feats.items()}


def adapter_latency(block_size, hop):
  """The host-block adapter's delay in samples: 0 for a whole number of hops, else hop - gcd(block_size, hop).

  Call k has received (k + 1) B input samples, of which c = (k + 1) B mod hop wait in the input FIFO for the
  rest of their hop; the inner steps have made (k + 1) B - c output samples, and the call must return B of
  them, so the output runs E >= c samples behind. c takes every multiple of g = gcd(B, hop) below hop, so the
  least E that never runs dry is hop - g (module doc).
  """
  block_size, hop = int(block_size), int(hop)
  return 0 if block_size % hop == 0 else hop - math.gcd(block_size, hop)


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


def stream_file(model_dir, input_path, output_path, block_size, crepe_model='tiny', checkpoint=None,
                jit_compile=False, crepe_frame_rate=None):
  """What `ddsp_stream` does: a file through the live path block by block, written as a WAV.

  `block_size` 0 (or None) means the model's hop (the least latency); any other number of samples works.
  `jit_compile` XLA-compiles the step, `crepe_frame_rate` sets the live CREPE's rate (`LiveModel`).

  The input is read as mono at the model's rate (converted with a note, as `ddsp_transfer` does); the output
  is aligned with it (the latency removed) and written atomically.

  Returns:
    dict: the `block_time_report` figures, latency / total_latency (samples and ms), lookahead_samples,
    feature / synth latency frames, hop, adapter_latency (samples), f0_delay_frames, seconds of audio, notes.

  Raises:
    ValueError (export_lib.ExportError, validation.InputError): no model, bad block size, unreadable input.
  """
  from ddsp import file_utils
  from ddsp.training import export_lib
  from ddsp.training import features as features_lib
  model = export_lib.load_model(model_dir, checkpoint)
  if not block_size:  # the least latency: one inner step (one hop, or P hops with a slower CREPE)
    block_size = model.hop_size * (1 if crepe_frame_rate is None else stream_features.crepe_period_frames(
        model.sample_rate / model.hop_size, crepe_frame_rate))
  player = LiveModel(model, block_size, crepe_model=crepe_model, jit_compile=jit_compile,
                     crepe_frame_rate=crepe_frame_rate)
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
                synth_latency_frames=player.streamer.latency_frames, hop=player.hop,
                f0_delay_frames=player.f0_delay_frames, crepe_frame_rate=player.crepe_frame_rate,
                unit=player.unit, adapter_latency=player.adapter_latency)
  return report
