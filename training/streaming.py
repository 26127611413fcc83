"""Streaming inference: a trained solo-instrument model run block by block, with its state carried across blocks.

`StreamingModel(model, block_size)` takes the weights of a trained `models.Autoencoder` without a latent z
(the `solo_instrument` / `tiny` family: `F0LoudnessPreprocessor` -> `RnnFcDecoder` with a GRU -> a
ProcessorGroup of `Harmonic`, `FilteredNoise`, `Add` and trainable `Reverb` nodes) and turns frames into audio
one block at a time:

    streamer = StreamingModel(model, block_size=256)        # 256 samples = 4 frames of 64 samples
    state = streamer.initial_state(batch_size=1)            # every state tensor starts at zero
    for f0_block, ld_block in blocks:                       # each [batch, 4] frames
      audio, state = streamer.step(f0_block, ld_block, state)  # audio [batch, 256]
    tail, state = streamer.flush(state)                      # the last `latency` samples of the stream

The processors run through `ddsp.blocks.GroupStream`: each node of the model's ProcessorGroup brings its own
block step (`Harmonic`, `FilteredNoise`, `Add` and trainable reverbs have one, written next to their offline
code); a model with a node that cannot stream is refused with that node's name. This module adds the decoder
(its GRU state carried across blocks) and the noise.

State carried from block to block (a dict of tensors, all zeros at the start):
  * `gru_state` `[B, units]`: the decoder's GRU state;
  * `frames` `[B, D + 1, 2 + n_out]`: f0, loudness and the decoder outputs of the last D + 1 frames;
  * `preroll` `[]`: how many of the first D output frames were emitted (they are silent pre-roll);
  * `noise_counter` `[]` int32: which block of the noise table the next block reads when no noise is given;
  * each node's own state under `<node name>_<key>`: `<harmonic>_phase` `[B]` int64 (the oscillator's phase,
    exact integer arithmetic), `<noise>_tail` and `<noise>_fifo` (the noise filter's overlap-add tail and the
    samples not yet due), `<reverb>_prev`, `<reverb>_fdl_re`, `<reverb>_fdl_im` (the partitioned convolution's
    last input partition and spectra). See the steps' docstrings.

Latency. Offline, the audio between frames t and t+1 crossfades the harmonic amplitudes of both frames, whose
Nyquist masks look at f0 of frames t-1..t+2, and the noise filter of frame t+1 spills back into it (its FIR is
centred). So the segment of frame t can only be made once frame t+2 is known: the stream lags the input by
`latency_frames` D = 2 frames (`latency` = 128 samples = 8 ms at 16 kHz, hop 64) on top of the block itself;
D is the largest look-ahead of the processors' steps, so with `Harmonic(causal_nyquist=True)` (masks from f0 of
frames t-1 and t) it is 1 frame.
Each `step` returns the audio of the frames `[s - D, s + F - D)` for an input block of frames `[s, s + F)`; the
first D frames of the stream are silence (pre-roll). `flush` treats the stream as ended (the last frame held,
as offline synthesis does at the end of its window) and returns the last D frames of audio. So
`concat(step outputs..., flush output)[latency:]` equals the offline `Autoencoder` output on the whole input,
up to float rounding (tested within 1e-4), when both use the same noise.

Noise. Offline, `FilteredNoise` draws `[batch, n_samples]` uniform noise; `step(..., noise=...)` takes the
noise samples of the block's input frames (`[batch, block_size]`, samples `[s * hop, (s + F) * hop)`) so a
caller can feed exactly the offline draw (as the tests do). Without it, blocks read a fixed table of 65536
seeded uniform samples (about 4 s, `noise_seed`) one after the other, cyclically, the same for every example of
a batch: deterministic, but not the offline sequence.

TFLite. Everything is written with TFLite built-in ops (see `ddsp.blocks`), so `ddsp_export --format=tflite`
needs no Flex delegate. Every per-frame layer (dense stacks, the GRU's input projection, the output layer, the
filter design) runs as one matrix product per block; only the GRU recurrence walks frame by frame. The reverb's
partition spectra are computed once, when the streamer is built: build a new streamer after changing the weights.
"""
import os

os.environ.setdefault('KERAS_BACKEND', 'tensorflow')

import tensorflow as tf

from ddsp import blocks
from ddsp import core
from ddsp import processors
from ddsp import synths
from ddsp.training import decoders
from ddsp.training import gru
from ddsp.training import preprocessing

NOISE_TABLE_SAMPLES = 65536


def model_geometry(model):
  """(n_samples, time_steps, hop) of an Autoencoder with an `F0LoudnessPreprocessor` and a ProcessorGroup.

  Raises:
    ValueError: if the model has no such preprocessor / processor group.
  """
  pre = getattr(model, 'preprocessor', None)
  if not isinstance(pre, preprocessing.F0LoudnessPreprocessor):
    raise ValueError('Streaming needs a model whose preprocessor is an F0LoudnessPreprocessor, got '
                     f'{type(pre).__name__}.')
  group = getattr(model, 'processor_group', None)
  if not isinstance(group, processors.ProcessorGroup):
    raise ValueError(f'Streaming needs a ProcessorGroup, got {type(group).__name__}.')
  return model.n_samples, model.time_steps, model.hop_size


class StreamingModel(tf.Module):
  """A stateful block-by-block version of a trained solo-instrument `Autoencoder` (see the module doc).

  Args:
    model: a built (called once / restored) `models.Autoencoder` without encoder.
    block_size: samples per block; a multiple of the model's hop (64 at 16 kHz and 250 frames/s).
    noise_seed: seed of the noise table read when `step` gets no `noise`.
    jit_compile: compile `step` with XLA.
    reverb_partition: the reverb's partition length is gcd(block_size, reverb_partition) samples (the
      overlap-save cost per sample grows with reverb_length / partition, the DFT matmuls' with the partition).
    name: module name.

  Attributes:
    hop, block_frames, block_size, latency_frames, latency (samples), sample_rate, processors (the
    `blocks.GroupStream`).
  """

  def __init__(self, model, block_size=256, noise_seed=0, jit_compile=False, reverb_partition=256,
               name='streaming_model'):
    super().__init__(name=name)
    if getattr(model, 'encoder', None) is not None:
      raise ValueError(f'Streaming supports models without an encoder (no z: solo_instrument, tiny); this model '
                       f'has a {type(model.encoder).__name__}.')
    _, _, self.hop = model_geometry(model)
    block_size = int(block_size)
    if block_size <= 0 or block_size % self.hop:
      raise ValueError(f'block_size must be a positive multiple of the hop ({self.hop} samples = one frame), '
                       f'got {block_size}.')
    self.block_size = block_size
    self.block_frames = block_size // self.hop
    self.noise_seed = int(noise_seed)
    self._check_decoder(model.decoder)
    self.model = model
    self.decoder = model.decoder
    self.gru = model.decoder.rnn.rnn
    self.n_out = model.decoder.n_out
    self.sample_rate = model.sample_rate
    # Frame-rate inputs of the processors: f0_hz, loudness_db, then the decoder outputs.
    self._splits = list(model.decoder.output_splits)
    channels = {'f0_hz': 1, 'loudness_db': 1}
    channels.update(self._splits)
    config = processors.StreamConfig(hop=self.hop, block_frames=self.block_frames,
                                     reverb_partition=int(reverb_partition))
    self.processors = blocks.GroupStream(model.processor_group, channels, config)
    self.latency_frames = self.processors.latency_frames
    self.latency = self.processors.latency
    # Noise used when `step` is given none: a fixed seeded table read block after block, cyclically.
    self.noise_blocks = max(1, -(-NOISE_TABLE_SAMPLES // self.block_size))
    table = tf.random.stateless_uniform([1, self.noise_blocks * self.block_size], seed=[self.noise_seed, 0],
                                        minval=-1.0, maxval=1.0)
    self.noise_table = tf.constant(tf.reshape(table, [self.noise_blocks, self.block_size]))
    self.jit_compile = bool(jit_compile)
    self._step_fn = tf.function(self._step, jit_compile=self.jit_compile, reduce_retracing=True)
    self._flush_fn = tf.function(self._flush, reduce_retracing=True)

  @staticmethod
  def _check_decoder(decoder):
    if not isinstance(decoder, decoders.RnnFcDecoder):
      raise ValueError(f'Streaming supports the RnnFcDecoder, got {type(decoder).__name__}.')
    unknown = [k for k in decoder.input_keys if k not in ('f0_scaled', 'ld_scaled')]
    if unknown:
      raise ValueError(f'Streaming supports decoders reading only f0_scaled and ld_scaled; this one also reads '
                       f'{unknown} (a z model?).')
    if decoder.rnn.rnn_type != 'gru' or decoder.rnn.bidirectional:
      raise ValueError('Streaming needs a causal GRU decoder (rnn_type gru, not bidirectional).')
    if not decoder.built or not decoder.rnn.rnn.built:
      raise ValueError('The model is not built: call it once (or restore a checkpoint) before streaming.')

  # ----------------------------------------------------------------------------------------------------------
  # State.
  # ----------------------------------------------------------------------------------------------------------
  def state_spec(self, batch_size=None):
    """Dict name -> tf.TensorSpec of the state (batch axis first except for the two scalars), sorted by name."""
    spec = {'gru_state': tf.TensorSpec([batch_size, self.gru.units], tf.float32),
            'noise_counter': tf.TensorSpec([], tf.int32)}
    spec.update(self.processors.state_spec(batch_size))
    return {k: spec[k] for k in sorted(spec)}

  def initial_state(self, batch_size=1):
    """The state at the start of a stream: every tensor zero (`batch_size` an int or a scalar tensor)."""
    return {k: tf.zeros(tf.stack([batch_size if d is None else d for d in s.shape]) if s.shape.rank else [],
                        s.dtype)
            for k, s in self.state_spec(None).items()}

  def synthesize(self, f0_hz, loudness_db, noise=None):
    """Whole-window synthesis with the streaming maths, in one call (graph-friendly: used by the TFLite export).

    Args:
      f0_hz, loudness_db: `[batch, block_frames]` (this streamer's block is the whole window).
      noise: optional `[batch, block_size]` noise.

    Returns:
      `[batch, block_size]` audio aligned with offline synthesis (one step, the flush, latency removed).
    """
    state = self.initial_state(tf.shape(f0_hz)[0])
    audio, state = self._step(f0_hz, loudness_db, state, noise)
    tail, _ = self._flush(state)
    return tf.concat([audio, tail], axis=1)[:, self.latency:]

  # ----------------------------------------------------------------------------------------------------------
  # Public API.
  # ----------------------------------------------------------------------------------------------------------
  def step(self, f0_hz, loudness_db, state, noise=None):
    """Feeds one block of frames.

    Args:
      f0_hz: `[batch, block_frames]` (or `[batch, block_frames, 1]`) f0 in Hz.
      loudness_db: same shape, loudness in dB.
      state: the dict returned by `initial_state` or the previous `step`.
      noise: optional `[batch, block_size]` uniform noise for the block's input frames (see the module doc).

    Returns:
      (audio `[batch, block_size]` for frames `[s - latency_frames, s + block_frames - latency_frames)`,
      new state).
    """
    f0_hz, loudness_db = self._check_block(f0_hz, 'f0_hz'), self._check_block(loudness_db, 'loudness_db')
    if noise is not None:
      noise = core.tf_float32(noise, 'noise')
      if noise.shape.rank != 2 or (noise.shape[1] is not None and noise.shape[1] != self.block_size):
        raise ValueError(f'`noise` must be [batch, {self.block_size}], got {noise.shape}.')
    return self._step_fn(f0_hz, loudness_db, state, noise)

  def flush(self, state):
    """Ends the stream: returns the last `latency` samples (`[batch, latency]`) and the final state."""
    return self._flush_fn(state)

  def process(self, f0_hz, loudness_db, noise=None):
    """Streams a whole input block by block (with a final flush) and removes the latency.

    Args:
      f0_hz, loudness_db: `[batch, n_frames]`, n_frames a multiple of block_frames.
      noise: optional `[batch, n_frames * hop]` noise, cut into the blocks' slices.

    Returns:
      `[batch, n_frames * hop]` audio, aligned with offline synthesis.
    """
    f0_hz = core.ensure_3d(f0_hz, 'f0_hz')[..., 0]
    loudness_db = core.ensure_3d(loudness_db, 'loudness_db')[..., 0]
    n_frames = int(f0_hz.shape[1])
    if n_frames % self.block_frames:
      raise ValueError(f'{n_frames} frames is not a multiple of the block ({self.block_frames} frames).')
    state = self.initial_state(int(f0_hz.shape[0]))
    outputs = []
    for start in range(0, n_frames, self.block_frames):
      stop = start + self.block_frames
      block_noise = None if noise is None else noise[:, start * self.hop:stop * self.hop]
      audio, state = self.step(f0_hz[:, start:stop], loudness_db[:, start:stop], state, block_noise)
      outputs.append(audio)
    tail, _ = self.flush(state)
    outputs.append(tail)
    return tf.concat(outputs, axis=1)[:, self.latency:]

  def _check_block(self, x, name):
    x = core.tf_float32(x, name)
    if x.shape.rank == 3 and x.shape[-1] == 1:
      x = x[..., 0]
    if x.shape.rank != 2 or (x.shape[1] is not None and x.shape[1] != self.block_frames):
      raise ValueError(f'`{name}` must be [batch, {self.block_frames}] frames (block_size {self.block_size} / '
                       f'hop {self.hop}), got shape {x.shape}.')
    return x

  # ----------------------------------------------------------------------------------------------------------
  # The computation.
  # ----------------------------------------------------------------------------------------------------------
  def _step(self, f0_hz, loudness_db, state, noise=None):
    """One block: the decoder, then the processors' steps. Returns (audio, new state)."""
    dec_out, gru_state = self._decode(f0_hz, loudness_db, state['gru_state'])
    frames = {'f0_hz': f0_hz[..., tf.newaxis], 'loudness_db': loudness_db[..., tf.newaxis]}
    offset = 0
    for key, size in self._splits:
      frames[key] = dec_out[..., offset:offset + size]
      offset += size
    counter = state['noise_counter']
    if noise is None:
      block = tf.gather(self.noise_table, counter[tf.newaxis])  # [1, block_size]
      noise = tf.tile(block, tf.stack([tf.shape(f0_hz)[0], 1]))
    audio, new_state = self.processors.step(frames, self._group_state(state), noise)
    new_state.update(gru_state=gru_state, noise_counter=tf.math.floormod(counter + 1, self.noise_blocks))
    return audio, new_state

  def _flush(self, state):
    audio, new_state = self.processors.flush(self._group_state(state))
    new_state.update(gru_state=state['gru_state'],
                     noise_counter=tf.math.floormod(state['noise_counter'] + 1, self.noise_blocks))
    return audio, new_state

  @staticmethod
  def _group_state(state):
    return {k: v for k, v in state.items() if k not in ('gru_state', 'noise_counter')}

  def _decode(self, f0_hz, loudness_db, gru_state):
    """Decoder on one block: `[B, F]` f0 and loudness -> `[B, F, n_out]` outputs and the new GRU state."""
    feats = {'f0_scaled': preprocessing.scale_f0_hz(f0_hz[..., tf.newaxis]),
             'ld_scaled': preprocessing.scale_loudness_db(loudness_db[..., tf.newaxis],
                                                          self.model.preprocessor.loudness_range_db)}
    dec = self.decoder
    stacks = [stack(feats[k]) for stack, k in zip(dec.input_stacks, dec.input_keys)]
    x = stacks[0] if len(stacks) == 1 else tf.concat(stacks, axis=-1)
    h, last = gru.gru_block(self.gru, x, gru_state)
    y = tf.concat([tf.cast(h, stacks[0].dtype)] + stacks, axis=-1)
    out = tf.cast(dec.dense_out(dec.out_stack(y)), tf.float32)
    return out, last


def offline_fn(model, jit_compile=False):
  """A tf.function `(f0_hz [B, T], loudness_db [B, T]) -> audio [B, n_samples]` running the whole model."""
  def run(f0_hz, loudness_db):
    return model({'f0_hz': f0_hz, 'loudness_db': loudness_db}, training=False)['audio_synth']
  return tf.function(run, jit_compile=jit_compile, reduce_retracing=True)


def set_noise_seed(model, seed):
  """Makes every FilteredNoise node of the model draw seeded (stateless, repeatable) noise."""
  group = getattr(model, 'processor_group', None)
  for proc in getattr(group, 'processors', []):
    if isinstance(proc, synths.FilteredNoise):
      proc.seed = None if seed is None else int(seed)


def offline_noise(model, batch_size):
  """The noise the model's first FilteredNoise node draws (deterministic once `set_noise_seed` was called)."""
  for proc in model.processor_group.processors:
    if isinstance(proc, synths.FilteredNoise):
      return proc.noise(batch_size)
  return None
