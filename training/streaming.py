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

State carried from block to block (a dict of tensors, all zeros at the start):
  * `gru_state` `[B, units]`: the decoder's GRU state;
  * `frames` `[B, D + 1, 2 + n_out]`: f0, loudness and the decoder outputs of the last D + 1 frames (the
    Hann crossfade between the last frame of a block and the first of the next, the linear f0 interpolation
    and the Nyquist mask, which looks at the neighbouring frames, all need them);
  * `<harmonic>_phase` `[B]` int64: the oscillator's running phase, in units of 2**-23 Hz-samples and
    wrapped exactly (integer arithmetic: no drift, float32-exact to ~3e-7 rad after any duration);
  * `<noise>_tail` `[B, W - 1]` and `<noise>_fifo` `[B, D * hop - W // 2]`: the noise filter's overlap-add
    tail (W-tap FIR per frame) and the filtered samples already final but not yet due;
  * `<reverb>_prev` `[B, L]` and `<reverb>_fdl_re`, `<reverb>_fdl_im` `[B, P - 1, L + 1]`: the reverb as a
    uniformly partitioned overlap-save convolution (partitions of L = gcd(block_size, 256) samples,
    P = ceil(reverb_length / L); the state is the last input partition and the spectra of the last P - 1);
  * `preroll` `[]`: how many of the first D output frames were emitted (they are silent pre-roll);
  * `noise_counter` `[]` int32: which block of the noise table the next block reads when no noise is given.

Latency. Offline, the audio between frames t and t+1 crossfades the harmonic amplitudes of both frames, whose
Nyquist masks look at f0 of frames t-1..t+2, and the noise filter of frame t+1 spills back into it (its FIR is
centred). So the segment of frame t can only be made once frame t+2 is known: the stream lags the input by
`latency_frames` D = 2 frames (`latency` = 128 samples = 8 ms at 16 kHz, hop 64) on top of the block itself.
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

TFLite. Everything is written with TFLite built-in ops: the noise filters' design (irfft + Hann window) is a
constant `[n_bands, W]` matrix, their convolution a Toeplitz product, the reverb's FFTs real DFT matrices
(2L x 2(L + 1)), the phase integer arithmetic; so `ddsp_export --format=tflite` needs no Flex delegate.

Every per-frame layer (dense stacks, the GRU's input projection, the output layer, the filter design) runs as
one matrix product per block; only the GRU recurrence walks frame by frame. The reverb's partition spectra
are computed once, when the streamer is built: build a new streamer after changing the weights.
"""
import math
import os

os.environ.setdefault('KERAS_BACKEND', 'tensorflow')

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from ddsp import core  # pylint: disable=g-import-not-at-top
from ddsp import effects  # pylint: disable=g-import-not-at-top
from ddsp import processors  # pylint: disable=g-import-not-at-top
from ddsp import synths  # pylint: disable=g-import-not-at-top
from ddsp.training import decoders  # pylint: disable=g-import-not-at-top
from ddsp.training import preprocessing  # pylint: disable=g-import-not-at-top

TWO_PI = 2.0 * math.pi
# Phase unit: 2**-23 Hz-samples, so that a float32 frequency of 1 Hz or more is a whole number of units.
PHASE_UNITS_PER_HZ = 2.0 ** 23
NOISE_TABLE_SAMPLES = 65536


def model_geometry(model):
  """(n_samples, time_steps, hop) of an Autoencoder with an `F0LoudnessPreprocessor` and a `Harmonic` node.

  Raises:
    ValueError: if the model has no such preprocessor / synthesizer or n_samples is not a multiple of
      time_steps.
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
    hop, block_frames, block_size, latency_frames, latency (samples), sample_rate.
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
    # Per-frame quantities kept in the `frames` history: f0_hz, loudness_db, then the decoder outputs.
    self._frame_slices = {'f0_hz': (0, 1), 'loudness_db': (1, 2)}
    offset = 2
    for split_name, size in model.decoder.output_splits:
      self._frame_slices[split_name] = (offset, offset + size)
      offset += size
    self.n_frame_channels = offset
    self._nodes = self._parse_dag(model.processor_group)
    harmonics = [n for n in self._nodes if n['kind'] == 'harmonic']
    self.sample_rate = harmonics[0]['processor'].sample_rate if harmonics else 16000
    noise_frames = [((n['window'] - 1) // 2 + self.hop - 1) // self.hop for n in self._nodes
                    if n['kind'] == 'noise']
    self.latency_frames = max([2] + noise_frames)
    self.latency = self.latency_frames * self.hop
    self.history = self.latency_frames + 1
    self._prepare_constants(reverb_partition)
    self.jit_compile = bool(jit_compile)
    self._step_fn = tf.function(self._step, jit_compile=self.jit_compile, reduce_retracing=True)
    self._flush_fn = tf.function(self._flush, reduce_retracing=True)

  # ----------------------------------------------------------------------------------------------------------
  # Construction.
  # ----------------------------------------------------------------------------------------------------------
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

  def _frame_key(self, key, owner):
    if key not in self._frame_slices:
      raise ValueError(f'Streaming: {owner} reads {key!r}; supported frame inputs are '
                       f'{sorted(self._frame_slices)}.')
    return key

  def _parse_dag(self, group):
    nodes, signals = [], set()
    for proc, keys in group.dag:
      name = proc.name
      if isinstance(proc, synths.Harmonic):
        amps, dist, f0 = (self._frame_key(k, name) for k in keys)
        nodes.append({'kind': 'harmonic', 'processor': proc, 'name': name, 'amps': amps, 'dist': dist,
                      'f0': f0})
      elif isinstance(proc, synths.FilteredNoise):
        mags = self._frame_key(keys[0], name)
        n_bands = self.decoder_split_size(mags)
        window = proc.window_size
        full = 2 * (n_bands - 1)
        if window <= 0 or window > full:
          window = full
        if window % 2 == 0:
          window -= 1
        nodes.append({'kind': 'noise', 'processor': proc, 'name': name, 'mags': mags, 'window': window})
      elif isinstance(proc, processors.Add):
        for k in keys:
          if k not in signals:
            raise ValueError(f'Streaming: Add node {name!r} reads {k!r}, which is not an earlier signal.')
        nodes.append({'kind': 'add', 'processor': proc, 'name': name, 'inputs': list(keys)})
      elif isinstance(proc, effects.Reverb):
        if proc.ir is None:
          raise ValueError(f'Streaming supports a trainable Reverb (learned IR); {name!r} takes its IR as input.')
        if keys[0] not in signals:
          raise ValueError(f'Streaming: Reverb node {name!r} reads {keys[0]!r}, which is not an earlier signal.')
        nodes.append({'kind': 'reverb', 'processor': proc, 'name': name, 'inputs': [keys[0]]})
      else:
        raise ValueError(f'Streaming supports Harmonic, FilteredNoise, Add and trainable Reverb nodes; '
                         f'{name!r} is a {type(proc).__name__}.')
      signals.add(f'{name}/signal')
    if not any(n['kind'] in ('harmonic', 'noise') for n in nodes):
      raise ValueError('Streaming needs at least one Harmonic or FilteredNoise node.')
    return nodes

  def decoder_split_size(self, key):
    lo, hi = self._frame_slices[key]
    return hi - lo

  def _prepare_constants(self, reverb_partition):
    """Constant matrices: the noise filters' design (irfft + window as one matmul) and convolution indices,
    the reverb's real DFT matrices and IR partition spectra, and the noise table."""
    for node in self._nodes:
      if node['kind'] == 'noise':
        n_bands, window = self.decoder_split_size(node['mags']), node['window']
        n_fft = 2 * (n_bands - 1)
        # irfft of real magnitudes, sample n = j - window // 2 (zero-phase IR centred), times the Hann window.
        k = np.arange(n_bands)[:, np.newaxis]
        n = (np.arange(window) - window // 2)[np.newaxis]
        weight = np.where((k == 0) | (k == n_bands - 1), 1.0, 2.0)
        hann = tf.signal.hann_window(window, periodic=False).numpy().astype(np.float64)
        design = weight * np.cos(2.0 * np.pi * k * n / n_fft) / n_fft * hann[np.newaxis]
        node['design'] = tf.constant(design.astype(np.float32))  # [n_bands, W]
      elif node['kind'] == 'reverb':
        size = math.gcd(self.block_size, int(reverb_partition))
        ir = node['processor'].get_ir()[0].numpy().astype(np.float64)  # [R], direct-path sample masked
        n_parts = -(-ir.shape[0] // size)
        parts = np.pad(ir, [0, n_parts * size - ir.shape[0]]).reshape(n_parts, size)
        spectra = np.fft.rfft(parts, n=2 * size)  # [P, L + 1]
        n = np.arange(2 * size)[:, np.newaxis]
        k = np.arange(size + 1)[np.newaxis]
        angle = 2.0 * np.pi * k * n / (2 * size)
        forward = np.concatenate([np.cos(angle), -np.sin(angle)], axis=1)  # [2L, 2(L + 1)]
        weight = np.where((k == 0) | (k == size), 1.0, 2.0) / (2 * size)
        out = angle[size:].T  # [L + 1, L]: angles of the output samples L..2L-1
        inverse = np.concatenate([weight.T * np.cos(out), -weight.T * np.sin(out)], axis=0)  # [2(L + 1), L]
        node.update(part=size, n_parts=n_parts, n_sub=self.block_size // size,
                    spectra_re=tf.constant(spectra.real.astype(np.float32)),
                    spectra_im=tf.constant(spectra.imag.astype(np.float32)),
                    forward=tf.constant(forward.astype(np.float32)),
                    inverse=tf.constant(inverse.astype(np.float32)))
    # Noise used when `step` is given none: a fixed seeded table read block after block, cyclically.
    self.noise_blocks = max(1, -(-NOISE_TABLE_SAMPLES // self.block_size))
    table = tf.random.stateless_uniform([1, self.noise_blocks * self.block_size], seed=[self.noise_seed, 0],
                                        minval=-1.0, maxval=1.0)
    self.noise_table = tf.constant(tf.reshape(table, [self.noise_blocks, self.block_size]))

  # ----------------------------------------------------------------------------------------------------------
  # State.
  # ----------------------------------------------------------------------------------------------------------
  def state_spec(self, batch_size=None):
    """Dict name -> tf.TensorSpec of the state (batch axis first except for the two scalars)."""
    b = batch_size
    spec = {
        'gru_state': tf.TensorSpec([b, self.gru.units], tf.float32),
        'frames': tf.TensorSpec([b, self.history, self.n_frame_channels], tf.float32),
        'preroll': tf.TensorSpec([], tf.float32),
        'noise_counter': tf.TensorSpec([], tf.int32),
    }
    for node in self._nodes:
      name = node['name']
      if node['kind'] == 'harmonic':
        spec[f'{name}_phase'] = tf.TensorSpec([b], tf.int64)
      elif node['kind'] == 'noise':
        spec[f'{name}_tail'] = tf.TensorSpec([b, node['window'] - 1], tf.float32)
        spec[f'{name}_fifo'] = tf.TensorSpec([b, self.latency - (node['window'] - 1) // 2], tf.float32)
      elif node['kind'] == 'reverb':
        size, history = node['part'], max(node['n_parts'] - 1, 1)
        spec[f'{name}_prev'] = tf.TensorSpec([b, size], tf.float32)
        spec[f'{name}_fdl_re'] = tf.TensorSpec([b, history, size + 1], tf.float32)
        spec[f'{name}_fdl_im'] = tf.TensorSpec([b, history, size + 1], tf.float32)
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
    tail, _ = self._step(None, None, state, None, final=True)
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
  def _decode(self, f0_hz, loudness_db, gru_state):
    """Decoder on one block: `[B, F]` f0 and loudness -> `[B, F, n_out]` outputs and the new GRU state."""
    feats = {'f0_scaled': preprocessing.scale_f0_hz(f0_hz[..., tf.newaxis]),
             'ld_scaled': preprocessing.scale_loudness_db(loudness_db[..., tf.newaxis],
                                                          self.model.preprocessor.loudness_range_db)}
    dec = self.decoder
    stacks = [stack(feats[k]) for stack, k in zip(dec.input_stacks, dec.input_keys)]
    x = stacks[0] if len(stacks) == 1 else tf.concat(stacks, axis=-1)
    h, last = self._gru(x, gru_state)
    y = tf.concat([tf.cast(h, stacks[0].dtype)] + stacks, axis=-1)
    out = tf.cast(dec.dense_out(dec.out_stack(y)), tf.float32)
    return out, last

  def _gru(self, x, h):
    """The decoder's GRU (Keras reset-after maths, as `nn.gru_recurrence`) on one block.

    The input projection of all frames is one matmul; the recurrence is unrolled for blocks of up to 64
    frames (no loop op: cheapest in graph mode and in TFLite) and a loop over unrolled 64-frame chunks beyond.

    Args:
      x: `[B, F, channels]`.
      h: `[B, units]` state.

    Returns:
      (`[B, F, units]` outputs, `[B, units]` last state), float32.
    """
    units = self.gru.units
    kernel = tf.cast(tf.convert_to_tensor(self.gru.kernel), tf.float32)
    recurrent_kernel = tf.cast(tf.convert_to_tensor(self.gru.recurrent_kernel), tf.float32)
    bias = tf.cast(tf.convert_to_tensor(self.gru.bias), tf.float32)
    batch, n_frames = tf.shape(x)[0], x.shape[1]
    proj = tf.matmul(tf.reshape(tf.cast(x, tf.float32), [-1, x.shape[-1]]), kernel) + bias[0]
    # The recurrent biases of z and r add to the input projection; only the candidate's is gated by r.
    proj += tf.concat([bias[1, :2 * units], tf.zeros([units])], axis=0)
    proj = tf.reshape(proj, [batch, n_frames, 3 * units])
    bias_h = bias[1, 2 * units:]

    def cell(x_t, h):
      rec = tf.matmul(h, recurrent_kernel)
      zr = tf.sigmoid(x_t[:, :2 * units] + rec[:, :2 * units])
      z, r = zr[:, :units], zr[:, units:]
      hh = tf.tanh(x_t[:, 2 * units:] + r * (rec[:, 2 * units:] + bias_h))
      return hh + z * (h - hh)

    h = tf.cast(h, tf.float32)
    if n_frames <= 64:
      outputs = []
      for t in range(n_frames):
        h = cell(proj[:, t], h)
        outputs.append(h)
      return tf.stack(outputs, axis=1), h
    # Longer blocks: a loop over chunks of 64 frames, each unrolled (few loop iterations: a TFLite loop
    # copies its whole output buffer at every iteration).
    chunk = 64
    n_chunks = -(-n_frames // chunk)
    proj = tf.pad(proj, [[0, 0], [0, n_chunks * chunk - n_frames], [0, 0]])
    proj = tf.transpose(tf.reshape(proj, [batch, n_chunks, chunk, 3 * units]), [1, 0, 2, 3])
    states = tf.TensorArray(tf.float32, size=n_chunks, element_shape=h.shape[:1].concatenate([chunk, units]))

    def body(i, h, states):
      x_i = proj[i]
      outputs = []
      for t in range(chunk):
        h = cell(x_i[:, t], h)
        outputs.append(h)
      return i + 1, h, states.write(i, tf.stack(outputs, axis=1))

    _, _, states = tf.while_loop(lambda i, *_: i < n_chunks, body, (0, h, states))
    states = tf.transpose(states.stack(), [1, 0, 2, 3])
    states = tf.reshape(states, [batch, n_chunks * chunk, units])[:, :n_frames]
    return states, states[:, -1]  # (the padded frames ran past the end: not the state)

  def _key(self, ext, key):
    lo, hi = self._frame_slices[key]
    return ext[..., lo:hi]

  def _step(self, f0_hz, loudness_db, state, noise=None, final=False):
    """One block (`final`: the flush, with D held frames). Returns (audio, new state)."""
    d = self.latency_frames
    hop = self.hop
    if final:
      n_new = d
      last = state['frames'][:, -1:]
      new_frames = tf.tile(last, [1, d, 1])
      gru_state = state['gru_state']
      batch = tf.shape(last)[0]
    else:
      n_new = self.block_frames
      dec_out, gru_state = self._decode(f0_hz, loudness_db, state['gru_state'])
      new_frames = tf.concat([f0_hz[..., tf.newaxis], loudness_db[..., tf.newaxis], dec_out], axis=-1)
      batch = tf.shape(f0_hz)[0]
    ext = tf.concat([state['frames'], new_frames], axis=1)  # frames [s - D - 1, s + n_new)
    new_state = {'gru_state': gru_state, 'frames': ext[:, -self.history:]}

    # Output frames [s - D, s + n_new - D) are ext[1:n_new + 1]; the first D of the stream are pre-roll.
    done = state['preroll']
    valid = tf.cast(done + tf.range(n_new, dtype=tf.float32) >= float(d), tf.float32)  # [n_new]
    valid_samples = tf.repeat(valid, hop)  # [n_new * hop]
    new_state['preroll'] = tf.minimum(done + float(n_new), float(d))
    counter = state['noise_counter']
    new_state['noise_counter'] = tf.math.floormod(counter + 1, self.noise_blocks)
    if noise is None and not final:
      block = tf.gather(self.noise_table, counter[tf.newaxis])  # [1, block_size]
      noise = tf.tile(block, tf.stack([batch, 1]))

    signals = {}
    for node in self._nodes:
      name, kind = node['name'], node['kind']
      if kind == 'harmonic':
        audio, phase = self._harmonic(node, ext, n_new, state[f'{name}_phase'], valid, final)
        new_state[f'{name}_phase'] = phase
        audio *= valid_samples
      elif kind == 'noise':
        audio, tail, fifo = self._noise(node, ext, n_new, noise, state[f'{name}_tail'], state[f'{name}_fifo'],
                                        final)
        new_state[f'{name}_tail'], new_state[f'{name}_fifo'] = tail, fifo
        audio *= valid_samples
      elif kind == 'add':
        audio = signals[node['inputs'][0]] + signals[node['inputs'][1]]
      else:
        audio, prev, fdl_re, fdl_im = self._reverb(node, signals[node['inputs'][0]], state[f'{name}_prev'],
                                                   state[f'{name}_fdl_re'], state[f'{name}_fdl_im'])
        new_state[f'{name}_prev'] = prev
        new_state[f'{name}_fdl_re'], new_state[f'{name}_fdl_im'] = fdl_re, fdl_im
      signals[f'{name}/signal'] = audio
    return audio, new_state

  def _flush(self, state):
    return self._step(None, None, state, None, final=True)

  def _harmonic(self, node, ext, n_new, phase0, valid, final):
    """Harmonic audio of output frames ext[1:n_new + 1]; also the phase after them."""
    proc, hop = node['processor'], self.hop
    f0 = tf.maximum(self._key(ext, node['f0']), 0.0)  # [B, E, 1], E = n_new + D + 1
    # Nyquist mask of frame t from max(f0[t-1], f0[t], f0[t+1]) (offline: `core._neighbour_max`).
    peak = tf.maximum(tf.maximum(f0[:, :-2], f0[:, 1:-1]), f0[:, 2:])[:, :n_new + 1]
    amps = self._key(ext, node['amps'])[:, 1:n_new + 2]
    dist = self._key(ext, node['dist'])[:, 1:n_new + 2]
    if proc.scale_fn is not None:
      amps, dist = proc.scale_fn(amps), proc.scale_fn(dist)
    f0 = f0[:, 1:n_new + 2]  # frames [s - D, s + n_new - D + 1)
    dist = core.normalize_harmonics(dist, peak, proc.sample_rate, normalize=proc.normalize_below_nyquist)
    harm = amps * dist * tf.cast(f0 > 0.0, tf.float32)  # [B, n_new + 1, K]
    if final:
      # Offline synthesis holds the last frame's harmonic amplitudes past the end.
      harm = tf.concat([harm[:, :-1], harm[:, -2:-1]], axis=1)
    # f0 linearly interpolated within each segment.
    frac = tf.range(hop, dtype=tf.float32) / hop
    lo, hi = f0[:, :-1, tf.newaxis, :], f0[:, 1:, tf.newaxis, :]
    f0_audio = lo + frac[tf.newaxis, tf.newaxis, :, tf.newaxis] * (hi - lo)  # [B, n_new, hop, 1]
    f0_audio = tf.reshape(f0_audio, [tf.shape(f0)[0], n_new * hop])
    # Exact phase: frequencies in integer units of 2**-23 Hz (exact for float32 values >= 1 Hz), summed and
    # wrapped in int64, so the phase never drifts; one turn is sample_rate * 2**23 units.
    units = tf.cast(tf.round(f0_audio * PHASE_UNITS_PER_HZ), tf.int64)
    units *= tf.cast(tf.repeat(valid, hop), tf.int64)
    turn = tf.constant(int(proc.sample_rate) * int(PHASE_UNITS_PER_HZ), tf.int64)
    phase = tf.math.floormod(tf.cumsum(units, axis=1, exclusive=True) + phase0[:, tf.newaxis], turn)
    phase32 = tf.cast(phase, tf.float32) * (TWO_PI / (proc.sample_rate * PHASE_UNITS_PER_HZ))
    new_phase = tf.math.floormod(phase0 + tf.reduce_sum(units, axis=1), turn)
    audio = _harmonic_segments(phase32, harm, hop, proc.amp_resample_method)
    return audio, new_phase

  def _noise(self, node, ext, n_new, noise, tail, fifo, final):
    """Filtered noise of output frames ext[1:n_new + 1]; also the new overlap-add tail and fifo."""
    proc, hop = node['processor'], self.hop
    size = n_new * hop
    if final:
      conv = tf.zeros([tf.shape(tail)[0], size + node['window'] - 1])  # no noise past the end
    else:
      mags = self._key(ext, node['mags'])[:, -n_new:]
      if proc.scale_fn is not None:
        mags = proc.scale_fn(mags + proc.initial_bias)
      conv = self._filter_noise(node, noise, mags, n_new)  # [B, size + W - 1]
    total = conv + tf.pad(tail, [[0, 0], [0, size]])
    pending = tf.concat([fifo, total[:, :size]], axis=1)
    return pending[:, :size], total[:, size:], pending[:, size:]

  def _filter_noise(self, node, noise, mags, n_new):
    """Each frame's hop of noise through its own FIR filter, overlap-added: `[B, n_new * hop + W - 1]`.

    The same filters as `core.frequency_filter` (frequency sampling, Hann window, linear phase), written as
    matrix products (TFLite built-in ops only): the design is one `[n_bands, W]` matmul, the convolution of
    each frame a product with the Toeplitz matrix of its noise.
    """
    hop, window = self.hop, node['window']
    batch = tf.shape(noise)[0]
    irs = tf.reshape(tf.matmul(tf.reshape(mags, [-1, mags.shape[-1]]), node['design']), [batch, n_new, window])
    frames = tf.pad(tf.reshape(noise, [batch, n_new, hop]), [[0, 0], [0, 0], [window - 1, window - 1]])
    n_full, n_pad = hop + window - 1, hop + 2 * window - 2
    full = []
    for start in range(0, n_new, 64):  # at most 64 frames' Toeplitz matrices at a time
      count = min(64, n_new - start)
      # Row i of the Toeplitz matrix is padded[i:i + W] (the IR reversed): n_full copies of the padded frame
      # laid end to end and read with a row stride of n_pad + 1 (copies only, no gather).
      tiled = tf.tile(frames[:, start:start + count], [1, 1, n_full + 1])[:, :, :n_full * (n_pad + 1)]
      toeplitz = tf.reshape(tiled, [batch, count, n_full, n_pad + 1])[..., :window]
      full.append(tf.matmul(toeplitz, irs[:, start:start + count, ::-1, tf.newaxis])[..., 0])
    full = full[0] if len(full) == 1 else tf.concat(full, axis=1)  # [B, n_new, hop + W - 1]
    n_chunks = -(-n_full // hop)
    full = tf.reshape(tf.pad(full, [[0, 0], [0, 0], [0, n_chunks * hop - n_full]]), [batch, n_new, n_chunks, hop])
    total = 0.0
    for c in range(n_chunks):  # overlap-add: chunk c of frame t lands on frame t + c
      total += tf.pad(full[:, :, c], [[0, 0], [c, n_chunks - 1 - c], [0, 0]])
    return tf.reshape(total, [batch, (n_new + n_chunks - 1) * hop])[:, :n_new * hop + window - 1]

  def _reverb(self, node, audio, prev, fdl_re, fdl_im):
    """Uniformly partitioned overlap-save convolution with the learned IR (plus the dry signal).

    Partitions of L samples (`node['part']`, a divisor of the block); the spectra (real DFTs of 2L samples,
    as matmuls) of the last P - 1 input partitions are the state. Output partition s is
    `irdft(sum_p H_p X_{s - p})[L:]`.
    """
    size, n_parts = node['part'], node['n_parts']
    n = int(audio.shape[1])
    block = node['n_sub'] * size
    if n != block:
      # The flush: zero-padded to whole blocks.
      n_blocks = -(-n // block)
      padded = tf.pad(audio, [[0, 0], [0, n_blocks * block - n]])
      outs = []
      for i in range(n_blocks):
        out, prev, fdl_re, fdl_im = self._reverb(node, padded[:, i * block:(i + 1) * block], prev, fdl_re, fdl_im)
        outs.append(out)
      return tf.concat(outs, axis=1)[:, :n], prev, fdl_re, fdl_im
    batch = tf.shape(audio)[0]
    n_sub = node['n_sub']
    x = tf.reshape(audio, [batch, n_sub, size])
    pieces = tf.concat([prev[:, tf.newaxis], x], axis=1)  # [B, S + 1, L]
    frames = tf.concat([pieces[:, :-1], pieces[:, 1:]], axis=-1)  # [B, S, 2L]
    spec = tf.matmul(tf.reshape(frames, [-1, 2 * size]), node['forward'])
    spec = tf.reshape(spec, [batch, n_sub, 2 * (size + 1)])
    spec_re, spec_im = spec[..., :size + 1], spec[..., size + 1:]
    history = max(n_parts - 1, 1)
    all_re = tf.concat([fdl_re, spec_re], axis=1)  # [B, history + S, L + 1], oldest first
    all_im = tf.concat([fdl_im, spec_im], axis=1)
    h_re, h_im = node['spectra_re'][::-1], node['spectra_im'][::-1]  # oldest partition's filter first
    wet_re, wet_im = [], []
    for start in range(0, n_sub, 16):  # output partitions in chunks: gathers of [B, <=16, P, L + 1]
      count = min(16, n_sub - start)
      first = history + 1 - n_parts + start
      if count == 1:
        x_re, x_im = all_re[:, tf.newaxis, first:first + n_parts], all_im[:, tf.newaxis, first:first + n_parts]
      else:
        index = tf.constant((first + np.arange(count)[:, np.newaxis] + np.arange(n_parts)[np.newaxis])
                            .reshape(-1).astype(np.int32))
        x_re = tf.reshape(tf.gather(all_re, index, axis=1), [batch, count, n_parts, size + 1])
        x_im = tf.reshape(tf.gather(all_im, index, axis=1), [batch, count, n_parts, size + 1])
      wet_re.append(tf.reduce_sum(x_re * h_re - x_im * h_im, axis=2))
      wet_im.append(tf.reduce_sum(x_re * h_im + x_im * h_re, axis=2))
    wet_re, wet_im = tf.concat(wet_re, axis=1), tf.concat(wet_im, axis=1)
    wet_spec = tf.concat([wet_re, wet_im], axis=-1)  # [B, S, 2(L + 1)]
    wet = tf.reshape(tf.matmul(tf.reshape(wet_spec, [-1, 2 * (size + 1)]), node['inverse']), [batch, block])
    out = wet + audio if node['processor'].add_dry else wet
    return out, x[:, -1], all_re[:, -history:], all_im[:, -history:]


def _harmonic_segments(phase, harm, hop, method):
  """Sum of harmonics over segments, each crossfading the amplitudes of two consecutive frames.

  The same factorisation as `core.harmonic_synthesis`: sin((Ki a + b) phi) = sin(Ki a phi) cos(b phi) +
  cos(Ki a phi) sin(b phi), so only 2 (Ki + Ko) sines per sample and one small matmul per segment.

  Args:
    phase: `[B, S * hop]` fundamental phase of the S segments.
    harm: `[B, S + 1, K]` harmonic amplitudes of the frames bounding the segments.
    hop: samples per segment.
    method: 'window' (Hann crossfade) or 'linear'.

  Returns:
    `[B, S * hop]` audio.
  """
  batch = tf.shape(phase)[0]
  n_seg = harm.shape[1] - 1
  n_harmonics = harm.shape[-1]
  n_outer, n_inner = core._factor(n_harmonics + 1)  # pylint: disable=protected-access
  n_total = n_outer * n_inner
  coeffs = tf.pad(harm, [[0, 0], [0, 0], [1, n_total - n_harmonics - 1]])
  coeffs = tf.transpose(tf.reshape(coeffs, [batch, n_seg + 1, n_outer, n_inner]), [0, 1, 3, 2])
  mats = tf.concat([coeffs[:, :-1], coeffs[:, 1:]], axis=-2)  # [B, S, 2 Ki, Ko]
  phase = tf.reshape(phase, [batch, n_seg, hop, 1])
  inner = phase * tf.range(n_inner, dtype=tf.float32)
  outer = phase * (float(n_inner) * tf.range(n_outer, dtype=tf.float32))
  frac = tf.range(hop, dtype=tf.float32) / hop
  if method == 'window':
    frac = tf.sin(0.5 * math.pi * frac) ** 2
  frac = frac[:, tf.newaxis]
  cos_in, sin_in = tf.cos(inner), tf.sin(inner)
  left = tf.concat([tf.concat([(1.0 - frac) * cos_in, frac * cos_in], axis=-1),
                    tf.concat([(1.0 - frac) * sin_in, frac * sin_in], axis=-1)], axis=-2)
  p_c, p_s = tf.split(tf.matmul(left, mats), 2, axis=-2)
  audio = tf.reduce_sum(tf.sin(outer) * p_c + tf.cos(outer) * p_s, axis=-1)
  return tf.reshape(audio, [batch, n_seg * hop])


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
