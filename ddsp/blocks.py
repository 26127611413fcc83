"""Block-by-block processing: the driver of a processor DAG in a stream, and the block maths its steps share.

`GroupStream(group, frame_channels, config)` runs a `processors.ProcessorGroup` one block of frames at a time.
Each node of the DAG contributes its own `BlockStep` (`Processor.block_step`, written next to the processor's
offline code); a node without one is refused by name when the stream is built. The stream's latency D is the
largest look-ahead of its steps; it keeps the last D + 1 frames of every frame-rate input (the `frames` state)
and counts the silent pre-roll (`preroll`), and each step keeps its own state under `<node name>_<key>`.

    stream = GroupStream(group, {'f0_hz': 1, 'amps': 1, 'harmonic_distribution': 60, 'noise_magnitudes': 65},
                         processors.StreamConfig(hop=64, block_frames=4))
    state = stream.initial_state(batch_size=1)
    audio, state = stream.step(frames, state, noise)   # frames: key -> [B, 4, C]; audio [B, 256]
    tail, state = stream.flush(state)                  # the last D frames of audio

`concat(step outputs..., flush output)[D * hop:]` equals the group's offline output on the whole input (the
tests check it for every processor that streams).

Everything is written with TFLite built-in ops (no FFT, complex or float64 tensors): a noise filter's design
(irfft + Hann window) is a constant `[n_bands, W]` matrix (`fir_design_matrix`), its convolution a product
with the Toeplitz matrix of each frame's noise (`fir_overlap_add`), and a reverb a uniformly partitioned
overlap-save convolution with real DFTs as matrix products (`PartitionedConvolution`).
"""
import math

import numpy as np
import tensorflow as tf

from ddsp import core
from ddsp import processors


# ------------------------------------------------------------------------------------------------------------
# Shared block maths.
# ------------------------------------------------------------------------------------------------------------
def fir_window_size(window_size, n_bands):
  """The length of a frequency-sampled FIR as `core.frequency_impulse_response` makes it (odd, <= irfft size)."""
  full = 2 * (int(n_bands) - 1)
  window = int(window_size)
  if window <= 0 or window > full:
    window = full
  if window % 2 == 0:
    window -= 1
  return window


def fir_design_matrix(n_bands, window):
  """`[n_bands, window]` float32: magnitudes `[.., n_bands]` @ it = the windowed, centred linear-phase FIR.

  The same filter as `core.frequency_impulse_response` (irfft of real magnitudes, Hann window, centred on
  sample window // 2), as one matrix product.
  """
  n_fft = 2 * (n_bands - 1)
  k = np.arange(n_bands)[:, np.newaxis]
  n = (np.arange(window) - window // 2)[np.newaxis]
  weight = np.where((k == 0) | (k == n_bands - 1), 1.0, 2.0)
  hann = tf.signal.hann_window(window, periodic=False).numpy().astype(np.float64)
  design = weight * np.cos(2.0 * np.pi * k * n / n_fft) / n_fft * hann[np.newaxis]
  return tf.constant(design.astype(np.float32))


def fir_overlap_add(signal, irs, hop):
  """Each frame's hop of `signal` through its own FIR, overlap-added: `[B, n * hop + W - 1]`.

  Args:
    signal: `[B, n * hop]`.
    irs: `[B, n, W]` one FIR per frame.
    hop: samples per frame.

  Returns:
    The full convolution (W - 1 samples longer than the input), written as matrix products with the Toeplitz
    matrix of each frame's samples (copies only, no gather), at most 64 frames at a time.
  """
  batch = tf.shape(signal)[0]
  n_frames, window = irs.shape[1], irs.shape[2]
  frames = tf.pad(tf.reshape(signal, [batch, n_frames, hop]), [[0, 0], [0, 0], [window - 1, window - 1]])
  n_full, n_pad = hop + window - 1, hop + 2 * window - 2
  full = []
  for start in range(0, n_frames, 64):
    count = min(64, n_frames - start)
    # Row i of the Toeplitz matrix is padded[i:i + W] (the IR reversed): n_full copies of the padded frame laid
    # end to end and read with a row stride of n_pad + 1.
    tiled = tf.tile(frames[:, start:start + count], [1, 1, n_full + 1])[:, :, :n_full * (n_pad + 1)]
    toeplitz = tf.reshape(tiled, [batch, count, n_full, n_pad + 1])[..., :window]
    full.append(tf.matmul(toeplitz, irs[:, start:start + count, ::-1, tf.newaxis])[..., 0])
  full = full[0] if len(full) == 1 else tf.concat(full, axis=1)  # [B, n, hop + W - 1]
  n_chunks = -(-n_full // hop)
  full = tf.reshape(tf.pad(full, [[0, 0], [0, 0], [0, n_chunks * hop - n_full]]), [batch, n_frames, n_chunks, hop])
  total = 0.0
  for c in range(n_chunks):  # overlap-add: chunk c of frame t lands on frame t + c
    total += tf.pad(full[:, :, c], [[0, 0], [c, n_chunks - 1 - c], [0, 0]])
  return tf.reshape(total, [batch, (n_frames + n_chunks - 1) * hop])[:, :n_frames * hop + window - 1]


class PartitionedConvolution:
  """Causal convolution with a fixed IR, block by block: uniformly partitioned overlap-save.

  Partitions of L samples (a divisor of the block), P = ceil(ir_size / L) of them; the IR's partition spectra
  are computed once, here. The state is the last input partition (`prev` `[B, L]`) and the spectra of the last
  P - 1 input partitions (`fdl_re`, `fdl_im` `[B, max(P - 1, 1), L + 1]`); output partition s is
  `irdft(sum_p H_p X_{s - p})[L:]`, with real DFTs of 2L samples as matrix products.

  Args:
    ir: `[ir_size]` impulse response (NumPy or tensor).
    block_size: samples per block.
    partition: the partition length is gcd(block_size, partition).
  """

  def __init__(self, ir, block_size, partition=256):
    ir = np.asarray(ir, np.float64)
    size = math.gcd(int(block_size), int(partition))
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
    self.part, self.n_parts, self.n_sub = size, n_parts, int(block_size) // size
    self.block_size = int(block_size)
    self.history = max(n_parts - 1, 1)
    self.spectra_re = tf.constant(spectra.real.astype(np.float32))
    self.spectra_im = tf.constant(spectra.imag.astype(np.float32))
    self.forward = tf.constant(forward.astype(np.float32))
    self.inverse = tf.constant(inverse.astype(np.float32))

  def state_spec(self, batch_size):
    size = self.part
    return {'prev': tf.TensorSpec([batch_size, size], tf.float32),
            'fdl_re': tf.TensorSpec([batch_size, self.history, size + 1], tf.float32),
            'fdl_im': tf.TensorSpec([batch_size, self.history, size + 1], tf.float32)}

  def step(self, audio, state):
    """`[B, n]` audio (any n: zero-padded to whole blocks) -> (wet `[B, n]`, new state)."""
    n = int(audio.shape[1])
    if n != self.block_size:
      n_blocks = -(-n // self.block_size)
      padded = tf.pad(audio, [[0, 0], [0, n_blocks * self.block_size - n]])
      outs = []
      for i in range(n_blocks):
        out, state = self.step(padded[:, i * self.block_size:(i + 1) * self.block_size], state)
        outs.append(out)
      return tf.concat(outs, axis=1)[:, :n], state
    size, n_parts, n_sub, history = self.part, self.n_parts, self.n_sub, self.history
    batch = tf.shape(audio)[0]
    x = tf.reshape(audio, [batch, n_sub, size])
    pieces = tf.concat([state['prev'][:, tf.newaxis], x], axis=1)  # [B, S + 1, L]
    frames = tf.concat([pieces[:, :-1], pieces[:, 1:]], axis=-1)  # [B, S, 2L]
    spec = tf.reshape(tf.matmul(tf.reshape(frames, [-1, 2 * size]), self.forward), [batch, n_sub, 2 * (size + 1)])
    all_re = tf.concat([state['fdl_re'], spec[..., :size + 1]], axis=1)  # [B, history + S, L + 1], oldest first
    all_im = tf.concat([state['fdl_im'], spec[..., size + 1:]], axis=1)
    h_re, h_im = self.spectra_re[::-1], self.spectra_im[::-1]  # oldest partition's filter first
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
    wet_spec = tf.concat([tf.concat(wet_re, axis=1), tf.concat(wet_im, axis=1)], axis=-1)  # [B, S, 2(L + 1)]
    wet = tf.reshape(tf.matmul(tf.reshape(wet_spec, [-1, 2 * (size + 1)]), self.inverse), [batch, self.block_size])
    return wet, {'prev': x[:, -1], 'fdl_re': all_re[:, -history:], 'fdl_im': all_im[:, -history:]}


# ------------------------------------------------------------------------------------------------------------
# The driver.
# ------------------------------------------------------------------------------------------------------------
class GroupStream:
  """A `ProcessorGroup` run block by block (see the module doc).

  Args:
    group: the `processors.ProcessorGroup`.
    frame_channels: dict (ordered) of the frame-rate inputs the DAG may read: key -> channels. Their order is the
      channel order of the `frames` state.
    config: `processors.StreamConfig`.

  Raises:
    ValueError: naming the node whose processor has no block step, or an input key that is neither a frame
      input nor an earlier node's signal.
  """

  def __init__(self, group, frame_channels, config):
    if not isinstance(group, processors.ProcessorGroup):
      raise ValueError(f'Streaming needs a ProcessorGroup, got {type(group).__name__}.')
    self.config = config
    self.hop = config.hop
    self._slices, offset = {}, 0
    for key, channels in frame_channels.items():
      self._slices[key] = (offset, offset + int(channels))
      offset += int(channels)
    self.n_frame_channels = offset
    self.nodes, signals = [], set()
    for proc, keys in group.dag:
      name = proc.name
      channels = []
      for key in keys:
        if key in signals:
          channels.append(None)
        elif key in self._slices:
          channels.append(self._slices[key][1] - self._slices[key][0])
        else:
          raise ValueError(f'Streaming: node {name!r} reads {key!r}, which is neither a frame input '
                           f'{sorted(self._slices)} nor an earlier signal {sorted(signals)}.')
      try:
        step = proc.block_step(config, channels)
      except NotImplementedError as e:
        raise ValueError(f'Streaming: node {name!r} ({type(proc).__name__}) cannot stream: {e} Processors that '
                         'stream implement `block_step` (Harmonic, FilteredNoise, Add, trainable reverbs).') from e
      wrong = [k for k, c in zip(keys, channels) if (c is None) == step.reads_frames]
      if wrong:
        want = 'frame-rate controls' if step.reads_frames else 'earlier audio signals'
        raise ValueError(f'Streaming: node {name!r} ({type(proc).__name__}) takes {want}; {wrong} are not.')
      self.nodes.append((name, keys, step))
      signals.add(f'{name}/signal')
    self.latency_frames = max([1] + [step.lookahead_frames for _, _, step in self.nodes])
    self.latency = self.latency_frames * self.hop
    self.history = self.latency_frames + 1
    self._state_keys = [list(step.state_spec(None, self.latency_frames)) for _, _, step in self.nodes]

  def state_spec(self, batch_size=None):
    """Dict name -> tf.TensorSpec of the state (batch axis first; `preroll` a scalar)."""
    spec = {'frames': tf.TensorSpec([batch_size, self.history, self.n_frame_channels], tf.float32),
            'preroll': tf.TensorSpec([], tf.float32)}
    for name, _, step in self.nodes:
      for key, value in step.state_spec(batch_size, self.latency_frames).items():
        spec[f'{name}_{key}'] = value
    return spec

  def step(self, frames, state, noise=None, final=False):
    """One block.

    Args:
      frames: dict key -> `[B, F, C]` of the block's input frames (every key of `frame_channels`); None with
        `final`.
      state: the state dict (see `state_spec`).
      noise: `[B, F * hop]` uniform noise of the block's input frames, for the steps that draw noise.
      final: the flush: no input, the last frame held for D frames.

    Returns:
      (audio `[B, n * hop]` of output frames [s - D, s - D + n), n = F or D at the flush; new state).
    """
    d = self.latency_frames
    if final:
      new_frames = tf.tile(state['frames'][:, -1:], [1, d, 1])
    else:
      new_frames = tf.concat([core.ensure_3d(frames[k], k) for k in self._slices], axis=-1)
    n_new = int(new_frames.shape[1])
    ext = tf.concat([state['frames'], new_frames], axis=1)  # frames [s - D - 1, s + n_new)
    done = state['preroll']
    block = processors.Block(
        n_frames=n_new, hop=self.hop, latency_frames=d, final=final, noise=None if final else noise,
        valid=tf.cast(done + tf.range(n_new, dtype=tf.float32) >= float(d), tf.float32))
    new_state = {'frames': ext[:, -self.history:], 'preroll': tf.minimum(done + float(n_new), float(d))}
    signals = {}
    audio = None
    for (name, keys, step), state_keys in zip(self.nodes, self._state_keys):
      inputs = [signals[k] if k in signals else ext[..., slice(*self._slices[k])] for k in keys]
      audio, node_state = step.step(inputs, {k: state[f'{name}_{k}'] for k in state_keys}, block)
      new_state.update({f'{name}_{k}': node_state[k] for k in state_keys})
      signals[f'{name}/signal'] = audio
    return audio, new_state

  def flush(self, state):
    """Ends the stream: (the last D frames of audio `[B, D * hop]`, final state)."""
    return self.step(None, state, final=True)
