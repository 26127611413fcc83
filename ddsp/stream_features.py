"""Features of live audio, block by block: A-weighted loudness and CREPE f0 / confidence, equal to offline.

`FeatureStream(sample_rate, frame_rate, block_frames)` turns blocks of `block_frames * hop` input samples into
the same frames that the offline functions compute on the whole file:

  * loudness: `ddsp.spectral_ops.compute_loudness(audio, sample_rate, frame_rate, n_fft)` (frame t centred on
    sample t * hop, zero padding before the start and after the end);
  * f0 and confidence: `ddsp.pitch.compute_f0(resample_to_crepe(audio, sample_rate), 16000, frame_rate,
    model, crepe_frame_rate=C)` (no level gate, no Viterbi smoothing); with C = frame_rate (the default) one
    CREPE frame per output frame, frame t centred on 16 kHz sample t * hop16, hop16 = 16000 / frame_rate.

    stream = FeatureStream(48000, 50, block_frames=1)         # 960-sample blocks
    state = stream.initial_state(batch_size=1)                 # all zeros = the offline zero padding
    features, state = stream.step(audio_block, state)          # audio [B, 960] -> each feature [B, 1]

Alignment. A centred frame needs audio after its centre (its look-ahead): loudness `n_fft / 2` samples, CREPE
512 samples at 16 kHz plus the resampler's delay. Frames come out `latency_frames` (Dl) frames late: the block
that brings input frames [s, s + F) returns feature frames [s - Dl, s - Dl + F), Dl the smallest number of
frames with `(Dl + 1) * hop >= lookahead` (`lookahead_samples`, at the input rate). The first Dl frames of a
stream are the frames before the start (pre-roll; their audio is zeros: loudness -range_db).

f0 delay (`f0_delay_frames` k > 0, the low-latency live convention of
`OnlineLoudnessPreprocessor.f0_delay_frames`): frame t's f0 and confidence are CREPE's centred frame t - k
(window centred on 16 kHz sample (t - k) hop16), due k hop16 16 kHz samples earlier, so the f0 look-ahead
shrinks by k hop16 M input samples; frames t < k (before the start) are 0 Hz with confidence 0. Offline:
`compute_f0` as above, shifted by k frames with zeros in front.

CREPE at a lower rate (`crepe_frame_rate` C < frame_rate, data preparation's convention: it runs CREPE at 100
frames/s). CREPE frame j is centred on 16 kHz sample j 16000 / C; frame t sits at CREPE position p = t C /
frame_rate and takes confidence linearly and f0 linearly in cents between CREPE frames floor(p) and floor(p) + 1
(the second only when p is not whole): offline, `compute_f0(..., crepe_frame_rate=C)`. A block of F frames
then needs the same set of CREPE frames as the block before, shifted by Qb = F C / frame_rate frames (a whole
number: F is a multiple of `crepe_period_frames`, 5 for 250 frames/s and C = 100); it runs the network on its
newest Qb windows and carries the K (1 or 2) earlier results in the state (`crepe_f0`, `crepe_confidence`).
The look-ahead grows by the widest gap from a frame to the next CREPE centre (less than 16000 / C 16 kHz
samples: 128 = 8 ms at 250 frames/s and C = 100); Dl is the least delay at which every frame of a block has
its windows. At 250 frames/s and C = 100 the network runs 100 times a second instead of 250 (most of a live
step's cost), and at 16 kHz the loudness window still binds the latency.

Resampling to 16 kHz (CREPE's rate) is causal: for an input rate of M * 16 kHz (M = 1, 2, 3: 16, 32, 48 kHz)
a linear-phase Kaiser-windowed sinc low-pass of 2 Q + 1 taps (Q = 32 M, cut-off 0.46 of the 16 kHz rate,
about 7.4 kHz) decimates by M; 16 kHz sample m needs input samples up to m M + Q, a delay of Q / M = 32
samples at 16 kHz (2 ms). `resample_to_crepe` is the same filter on a whole signal in NumPy (float64): the
offline path the stream equals. It is not the soxr resampler `ddsp.pitch.compute_f0` uses on its own; on the
bundled clips the two differ by a few tenths of a cent on voiced frames (tests/test_live.py measures it).
Other rates (22.05, 44.1 kHz) are refused: resample the input before streaming.

Edges. The start equals offline exactly (resampled samples before the start are zero, as offline pads). At the
end of a file padded with zeros, loudness still equals offline; the f0 of the last frames whose CREPE window
reaches past the end differs at 32 and 48 kHz (offline, the resampled signal stops at the end of the file;
the live resampler's last Q / M outputs see the file's last samples and the zeros after them).

Bad input. A non-finite sample makes its whole block (per example) silence; the state stays finite.

Everything is written with TFLite built-in ops (`tf.signal.rfft` for the loudness, RFFT2D in TFLite, or a
real-DFT matrix product when n_fft is not a power of two; a strided convolution for the resampler, a gather
for the framing, the CREPE network), so the step exports without the Flex delegate.
"""
import fractions
import math

import keras
import numpy as np
import tensorflow as tf

from ddsp import crepe
from ddsp import spectral_ops

RESAMPLER_HALF_TAPS = 32   # Q / M: taps on each side of the centre, per 16 kHz sample.
RESAMPLER_CUTOFF = 0.46    # Pass-band edge, as a fraction of the 16 kHz sample rate.
RESAMPLER_BETA = 8.0       # Kaiser window shape (about 80 dB stop-band attenuation).
_FLOAT_MAX = 3.4e38


def decimation_factor(sample_rate):
  """M = sample_rate / 16000 for the rates the stream decimates (16, 32, 48 kHz, ...); ValueError otherwise."""
  rate = float(sample_rate)
  factor = rate / crepe.SAMPLE_RATE
  if not rate > 0 or factor != int(factor) or factor < 1:
    raise ValueError(f'Live f0 needs a sample rate that is a whole multiple of 16000 Hz (16, 32, 48 kHz), '
                     f'got {sample_rate}; resample the input first.')
  return int(factor)


def decimation_filter(factor):
  """The anti-alias low-pass of the decimator by `factor`: float64 `[2 Q + 1]`, Q = 32 factor, unit DC gain."""
  if factor == 1:
    return np.ones([1])
  q = RESAMPLER_HALF_TAPS * factor
  n = np.arange(-q, q + 1, dtype=np.float64)
  cutoff = RESAMPLER_CUTOFF / factor  # cycles per input sample
  taps = 2.0 * cutoff * np.sinc(2.0 * cutoff * n) * np.kaiser(2 * q + 1, RESAMPLER_BETA)
  return taps / taps.sum()


def resample_to_crepe(audio, sample_rate):
  """Offline form of the stream's resampler: `[n]` audio -> `[ceil(n / M)]` float32 at 16 kHz (NumPy).

  Output sample m = sum_q h[q] x[m M + q], x zero outside the signal (the linear-phase filter centred).
  """
  factor = decimation_factor(sample_rate)
  x = np.asarray(audio, np.float64)
  if factor == 1:
    return x.astype(np.float32)
  taps = decimation_filter(factor)
  q = (taps.shape[0] - 1) // 2
  full = np.convolve(x, taps)  # full[i] = sum_k taps[k] x[i - k]; taps symmetric
  return full[q::factor][:-(-x.shape[0] // factor)].astype(np.float32)


def crepe_period_frames(frame_rate, crepe_frame_rate):
  """P, the fewest frames that hold a whole number of CREPE frames (a live block is a multiple of P).

  ValueError unless 0 < crepe_frame_rate <= frame_rate and 16000 / crepe_frame_rate is a whole number of
  samples (CREPE frames on whole 16 kHz samples, as offline).
  """
  rate = float(crepe_frame_rate)
  if rate > float(frame_rate) and math.isfinite(rate) and rate / float(frame_rate) == int(rate / float(frame_rate)):
    rate = float(frame_rate)  # a CREPE frame on every frame (`FeatureStream`)
  if not 0 < rate <= float(frame_rate) or not math.isfinite(rate):
    raise ValueError(f'Live CREPE runs at most once per frame: crepe_frame_rate must be in (0, {frame_rate:g}] '
                     f'or a whole multiple of it, got {crepe_frame_rate}.')
  if crepe.SAMPLE_RATE / rate != int(crepe.SAMPLE_RATE / rate):
    raise ValueError(f'16000 / crepe_frame_rate must be a whole number of samples, got 16000 / {crepe_frame_rate}.')
  return (fractions.Fraction(rate) / fractions.Fraction(float(frame_rate))).denominator


def _loudness_tables(n_fft, sample_rate):
  """(`[n_fft]` periodic Hann window, `[n_fft / 2 + 1]` per-bin power weights), float32: the power of
  `rfft(frame * window)` weighted and summed = the A-weighted, calibrated power of `compute_loudness`."""
  weights, window = spectral_ops._loudness_weights(int(n_fft), int(sample_rate))  # same weights as offline
  return window.astype(np.float32), weights.astype(np.float32)


def _loudness_matrix(n_fft, sample_rate):
  """`[n_fft, 2 K]`: frame @ it, squared and summed = the A-weighted, calibrated power of `compute_loudness`.

  The real DFT with the periodic Hann window and the square roots of the per-bin weights folded into its
  cosines and sines; bins of zero weight (DC) are left out. Used when n_fft is not a power of two (TFLite's
  RFFT2D needs one).
  """
  weights, window = spectral_ops._loudness_weights(int(n_fft), int(sample_rate))
  bins = np.flatnonzero(weights > 0)
  n = np.arange(n_fft)[:, np.newaxis]
  angle = 2.0 * np.pi * n * bins[np.newaxis] / n_fft
  scale = window[:, np.newaxis] * np.sqrt(weights[bins])[np.newaxis]
  return np.concatenate([scale * np.cos(angle), scale * np.sin(angle)], axis=1).astype(np.float32)


def _frame_index(n_frames, hop, size):
  return tf.constant((np.arange(n_frames)[:, np.newaxis] * hop + np.arange(size)[np.newaxis]).astype(np.int32))


class CrepeNetwork(tf.Module):
  """The Keras CREPE network of `ddsp.crepe.get_crepe_model(capacity)` as plain TensorFlow ops on its weights.

  `[N, 1024] -> [N, 360]`, the same maths as the Keras model in inference mode (frame normalisation, six
  blocks of conv -> ReLU -> batch norm -> max-pool 2, dense, sigmoid), written for the few frames of a live
  block. The first convolution (512 taps, stride 4) is a stride-1 convolution over groups of 4 samples
  (space to depth: `[N, 1024] -> [N, 256 + T - 1, 4]`, kernel `[T, 4, C]`, T = 129 taps of 4 samples, its
  'same' zero padding kept), which oneDNN runs about 2.5x faster for one frame than the strided form; batch
  norm is one multiply-add per channel with its constants folded. The result equals the Keras model's to
  float32 round-off (tests/test_live.py). Built-in TFLite ops only.
  """

  def __init__(self, capacity='tiny', name=None):
    super().__init__(name=name or f'crepe_{capacity}_frames')
    model = crepe.get_crepe_model(capacity)
    self.layers = []
    for layer in model.layers:
      if isinstance(layer, keras.layers.Conv1D):
        kernel, bias = (w.numpy() for w in layer.weights)
        self.layers.append(['conv', layer.strides[0], layer.padding, kernel, bias.astype(np.float32)])
      elif isinstance(layer, keras.layers.BatchNormalization):
        gamma, beta, mean, var = (w.numpy().astype(np.float64) for w in layer.weights)
        scale = gamma / np.sqrt(var + layer.epsilon)
        self.layers[-1] += [tf.constant(scale.astype(np.float32)), tf.constant((beta - mean * scale).astype(
            np.float32))]
    dense = model.get_layer('classifier')
    self.dense_kernel, self.dense_bias = (tf.constant(w.numpy()) for w in dense.weights)
    # The first convolution as a stride-1 convolution over groups of `stride` samples.
    _, stride, padding, kernel, _ = self.layers[0][:5]
    width = kernel.shape[0]
    out_len = -(-crepe.FRAME_SIZE // stride) if padding == 'same' else (crepe.FRAME_SIZE - width) // stride + 1
    pad_left = max((out_len - 1) * stride + width - crepe.FRAME_SIZE, 0) // 2 if padding == 'same' else 0
    lead = -(-pad_left // stride) * stride  # zeros before the frame, a whole number of groups
    shift = lead - pad_left
    taps = -(-(shift + width) // stride)
    grouped = np.zeros([taps * stride, kernel.shape[2]], np.float32)
    grouped[shift:shift + width] = kernel[:, 0, :]
    self.stride, self.out_len, self.taps = stride, out_len, taps
    self.pad = [lead, (out_len + taps - 1) * stride - lead - crepe.FRAME_SIZE]
    self.first_kernel = tf.constant(grouped.reshape(taps, stride, kernel.shape[2]))
    for entry in self.layers:
      if entry[0] == 'conv':
        entry[3], entry[4] = tf.constant(entry[3]), tf.constant(entry[4])

  def __call__(self, frames):
    """`[N, 1024]` float32 raw 16 kHz frames -> `[N, 360]` sigmoid activations."""
    centred = frames - tf.reduce_mean(frames, axis=-1, keepdims=True)
    var = tf.reduce_mean(tf.square(centred), axis=-1, keepdims=True)
    x = centred / tf.sqrt(tf.maximum(var, 1e-16))
    lead, trail = self.pad
    x = tf.pad(x, [[0, 0], [lead, max(trail, 0)]])[:, :(self.out_len + self.taps - 1) * self.stride]
    x = tf.reshape(x, [-1, self.out_len + self.taps - 1, self.stride])
    for i, (_, stride, padding, kernel, bias, scale, shift) in enumerate(self.layers):
      if i == 0:
        x = tf.nn.conv1d(x, self.first_kernel, 1, 'VALID')
      else:
        x = tf.nn.conv1d(x, kernel, stride, padding.upper())
      x = tf.nn.relu(x + bias) * scale + shift
      x = tf.nn.max_pool1d(x, 2, 2, 'VALID')
    x = tf.reshape(x, [tf.shape(x)[0], -1])
    return tf.sigmoid(tf.matmul(x, self.dense_kernel) + self.dense_bias)


def decode_activations(activations):
  """CREPE decoding in TensorFlow (built-in ops): `[N, 360]` -> (f0_hz `[N]`, confidence `[N]`).

  The same as `ddsp.crepe.activations_to_f0` without a path: the activation-weighted mean cents of the bins
  within +-4 of the peak; f0 as the peak bin's frequency times 2 ** (offset / 1200), so float32 keeps ~1e-7
  relative precision.
  """
  centre = tf.argmax(activations, axis=-1, output_type=tf.int32)
  offsets = tf.range(crepe.N_BINS, dtype=tf.int32)[tf.newaxis] - centre[:, tf.newaxis]
  inside = tf.cast(tf.abs(offsets) <= crepe.LOCAL_AVERAGE_RADIUS, tf.float32)
  w = activations * inside
  total = tf.reduce_sum(w, axis=-1)
  delta = tf.reduce_sum(w * tf.cast(offsets, tf.float32), axis=-1) / tf.maximum(total, 1e-30)
  delta = tf.where(total > 0.0, delta, 0.0) * crepe.CENTS_PER_BIN
  table = tf.constant(crepe.cents_to_hz(crepe.bin_cents()).astype(np.float32))
  f0 = tf.gather(table, centre) * tf.exp(delta * (math.log(2.0) / 1200.0))
  return f0, tf.reduce_max(activations, axis=-1)


class FeatureStream:
  """Loudness and CREPE f0 / confidence of live audio, block by block (see the module doc).

  Args:
    sample_rate: input rate (any rate for loudness alone; a multiple of 16 kHz with f0).
    frame_rate: frames per second; hop = sample_rate / frame_rate samples, an integer (and 16000 / frame_rate
      too, with f0).
    block_frames: frames per block (block_size = block_frames * hop samples).
    loudness_n_fft: FFT size of the loudness frames (2048: `compute_loudness`' and data preparation's default).
    crepe_model: CREPE capacity ('tiny', 'small', ...), or None for loudness alone.
    range_db, ref_db: as `compute_loudness`.
    align_frames: round the latency up to a multiple of this (a live model aligns it to whole blocks).
    f0_delay_frames: k, frames by which f0 / confidence are delayed (module doc; 0: centred on their frame).
    crepe_frame_rate: C, frames per second at which CREPE runs (module doc, "CREPE at a lower rate"); None:
      `frame_rate`. 16000 / C must be whole, C <= frame_rate, and block_frames * C / frame_rate whole
      (`crepe_period_frames`). A whole multiple of the frame rate (data preparation's 100 for a 50 frames/s
      model) puts a CREPE frame on every frame: the same as `frame_rate`, which it becomes.

  Attributes:
    hop, hop16, block_size, factor (M), latency_frames (Dl), latency (samples), lookahead_samples
    (`{'loudness': n_fft / 2, 'f0': ...}` input samples: how far the farthest window a frame needs ends after
    the frame's centre; f0: (512 + 32 - k hop16) M at C = frame_rate), keys (the feature names),
    f0_delay_frames, crepe_frame_rate, crepe_frames_per_block.
  """

  def __init__(self, sample_rate, frame_rate, block_frames, loudness_n_fft=2048, crepe_model='tiny',
               range_db=spectral_ops.LD_RANGE, ref_db=0.0, align_frames=1, f0_delay_frames=0,
               crepe_frame_rate=None):
    self.sample_rate = int(sample_rate)
    self.frame_rate = float(frame_rate)
    hop = self.sample_rate / self.frame_rate
    if hop != int(hop) or hop < 1:
      raise ValueError(f'sample_rate / frame_rate must be a whole hop, got {sample_rate} / {frame_rate}.')
    self.hop = int(hop)
    self.block_frames = int(block_frames)
    if self.block_frames < 1:
      raise ValueError(f'block_frames must be >= 1, got {block_frames}.')
    self.block_size = self.block_frames * self.hop
    self.n_fft = int(loudness_n_fft)
    if self.n_fft < 2 or self.n_fft % 2:
      raise ValueError(f'loudness_n_fft must be an even number >= 2, got {loudness_n_fft}.')
    self.range_db, self.ref_db = float(range_db), float(ref_db)
    self.crepe_model = crepe_model
    if f0_delay_frames != int(f0_delay_frames) or int(f0_delay_frames) < 0:
      raise ValueError(f'f0_delay_frames must be a whole number of frames >= 0, got {f0_delay_frames}.')
    self.f0_delay_frames = int(f0_delay_frames)
    self.lookahead_samples = {'loudness': self.n_fft // 2}
    loudness_lag = -(-self.n_fft // 2 // self.hop) - 1
    align = max(1, int(align_frames))
    self.crepe_frame_rate = None
    if crepe_model is not None:
      crepe.check_capacity(crepe_model)
      self.factor = decimation_factor(self.sample_rate)
      hop16 = crepe.SAMPLE_RATE / self.frame_rate
      if hop16 != int(hop16):
        raise ValueError(f'Live f0 needs 16000 / frame_rate to be whole, got 16000 / {frame_rate}.')
      self.hop16 = int(hop16)
      self.crepe_frame_rate = self.frame_rate if crepe_frame_rate is None else float(crepe_frame_rate)
      ratio = self.crepe_frame_rate / self.frame_rate
      if ratio > 1 and ratio == int(ratio):  # every frame on a CREPE frame: the same f0 as CREPE per frame
        self.crepe_frame_rate = self.frame_rate
      period = crepe_period_frames(self.frame_rate, self.crepe_frame_rate)
      if self.block_frames % period:
        raise ValueError(f'With CREPE at {self.crepe_frame_rate:g} frames/s and frames at {self.frame_rate:g}/s, '
                         f'a block must be a multiple of {period} frames (a whole number of CREPE frames), '
                         f'got {self.block_frames}.')
      self._ratio = fractions.Fraction(self.crepe_frame_rate) / fractions.Fraction(self.frame_rate)
      self.crepe_frames_per_block = int(self.block_frames * self._ratio)
      self.crepe_hop16 = int(crepe.SAMPLE_RATE / self.crepe_frame_rate)
      taps = decimation_filter(self.factor)
      self.q = (taps.shape[0] - 1) // 2
      self.delay16 = self.q // self.factor
      self.resampler = tf.constant(taps.astype(np.float32)[:, np.newaxis, np.newaxis])
      f0_lag = 0
      while not self._f0_plan(f0_lag)['fits']:
        f0_lag += 1
      self.latency_frames = -(-max(0, loudness_lag, f0_lag) // align) * align
      self._plan = self._f0_plan(self.latency_frames)
      self.lookahead_samples['f0'] = self._plan['ahead16'] * self.factor
      self.net = CrepeNetwork(crepe_model)
    else:
      self.factor, self.hop16, self.q, self.delay16 = None, None, 0, 0
      self.crepe_frames_per_block = 0
      self.latency_frames = -(-max(0, loudness_lag) // align) * align
    self.latency = self.latency_frames * self.hop
    self.keys = ('loudness_db',) if crepe_model is None else ('f0_hz', 'f0_confidence', 'loudness_db')
    # The loudness power: an RFFT of the windowed frame (n_fft a power of two), else a real-DFT matrix.
    self._ld_fft = self.n_fft & (self.n_fft - 1) == 0
    if self._ld_fft:
      window, weights = _loudness_tables(self.n_fft, self.sample_rate)
      self._ld_window, self._ld_weights = tf.constant(window), tf.constant(weights)
    else:
      self._ld_matrix = tf.constant(_loudness_matrix(self.n_fft, self.sample_rate))
    self._ld_index = _frame_index(self.block_frames, self.hop, self.n_fft)
    if crepe_model is not None:
      plan = self._plan
      starts = np.asarray(plan['new_starts'], np.int64)
      self._f0_index = tf.constant((starts[:, np.newaxis] + np.arange(crepe.FRAME_SIZE)).astype(np.int32))
      self._f0_lo = tf.constant(np.asarray(plan['lo'], np.int32))
      self._f0_hi = tf.constant(np.asarray(plan['hi'], np.int32))
      self._f0_w = tf.constant(np.asarray(plan['w'], np.float32))

  def _f0_plan(self, latency_frames):
    """Where the CREPE frames of a block come from, for a feature latency of `latency_frames` (Dl).

    Block 0 returns f0 frames b0 + r (r < F, b0 = -Dl - k); frame i sits at CREPE position p = i C / frame_rate
    and takes CREPE frames j = floor(p) and, when p is not whole, j + 1 (the offline interpolation). CREPE frame j
    is centred on 16 kHz sample j crepe_hop16. Every block needs the same set shifted by Qb =
    crepe_frames_per_block frames: it runs the network on its last Qb (`new_starts`: window starts in the
    16 kHz ring) and carries the K earlier ones from the blocks before (`carry`). `fits`: the farthest window ends
    within the audio the block has brought (and the carried frames are before the start of the stream).
    """
    qb, hop16, c16 = self.crepe_frames_per_block, self.hop16, self.crepe_hop16
    b0 = -int(latency_frames) - self.f0_delay_frames
    lo, hi, w, ahead = [], [], [], []
    for r in range(self.block_frames):
      pos = (b0 + r) * self._ratio
      j = math.floor(pos)
      lo.append(j)
      hi.append(j + 1 if pos != j else j)
      w.append(float(pos - j))
      ahead.append(hi[-1] * c16 - (b0 + r + self.f0_delay_frames) * hop16)
    jmin, jmax = min(lo), max(hi)
    carry = jmax - jmin + 1 - qb
    half = crepe.FRAME_SIZE // 2
    end16 = self.block_frames * hop16 - self.delay16  # 16 kHz samples of the stream after block 0
    ring = max(0, half - self.delay16 - (jmax - qb + 1) * c16)  # the 16 kHz ring (state) before the block
    offset = ring + self.delay16 - half  # ring index of the window start of CREPE frame 0, less its centre
    return {'fits': jmax * c16 + half <= end16 and (carry <= 0 or jmin + carry - 1 < 0),
            'carry': max(carry, 0), 'ring': ring, 'ahead16': max(ahead) + half + self.delay16,
            'new_starts': [(jmax - qb + 1 + q) * c16 + offset for q in range(qb)],
            'lo': [j - jmin for j in lo], 'hi': [j - jmin for j in hi], 'w': w}

  # ----------------------------------------------------------------------------------------------------------
  def state_spec(self, batch_size=None):
    """Name -> tf.TensorSpec: the input ring (`audio`), and with f0 the resampler's input tail (`tail`), the
    16 kHz ring (`audio16`), `count16` (16 kHz samples made so far, int32, saturating at the delay) and, with
    CREPE slower than the frames, `crepe_f0` / `crepe_confidence` (the carried CREPE frames)."""
    spec = {'audio': tf.TensorSpec([batch_size, self.latency + self.n_fft // 2], tf.float32)}
    if self.crepe_model is not None:
      spec['tail'] = tf.TensorSpec([batch_size, max(2 * self.q, 1)], tf.float32)
      spec['audio16'] = tf.TensorSpec([batch_size, self._plan['ring']], tf.float32)
      spec['count16'] = tf.TensorSpec([], tf.int32)
      if self._plan['carry']:  # CREPE results of the last K frames, which this block's frames still need
        spec['crepe_f0'] = tf.TensorSpec([batch_size, self._plan['carry']], tf.float32)
        spec['crepe_confidence'] = tf.TensorSpec([batch_size, self._plan['carry']], tf.float32)
      if self.f0_delay_frames:  # frames fed so far, saturating at Dl + k (the frames before the start)
        spec['f0_frames'] = tf.TensorSpec([], tf.int32)
    return spec

  def initial_state(self, batch_size=1):
    return {k: tf.zeros(tf.stack([batch_size if d is None else d for d in s.shape]) if s.shape.rank else [],
                        s.dtype)
            for k, s in self.state_spec(None).items()}

  def sanitize(self, audio):
    """`[B, n]`: each example's block with a non-finite sample becomes zeros (silence)."""
    finite = tf.cast(tf.abs(audio) <= _FLOAT_MAX, tf.float32)  # False for NaN and +-Inf
    ok = tf.reduce_min(finite, axis=1, keepdims=True)
    return tf.where(ok > 0.0, audio, tf.zeros_like(audio))

  def step(self, audio, state):
    """One block: `[B, block_size]` float32 audio -> (dict key -> `[B, block_frames]`, new state).

    The frames returned are input frames [s - Dl, s - Dl + F) for a block of input frames [s, s + F).
    The same as `complete(net(windows), *analyse(audio, state))` (`analyse` -> features, windows, new state),
    the three parts a caller may compile apart (`LiveModel(jit_compile=True)` leaves the network to oneDNN).
    """
    features, windows, new_state = self.analyse(audio, state)
    if windows is None:
      return features, new_state
    return self.complete(self.net(windows), features, state, new_state)

  def analyse(self, audio, state):
    """The block's loudness and CREPE windows: (features {'loudness_db'}, windows `[B Qb, 1024]` or None
    without f0, new state without the f0 part)."""
    audio = self.sanitize(audio)
    batch = tf.shape(audio)[0]
    new_state = {}
    ext = tf.concat([state['audio'], audio], axis=1)
    new_state['audio'] = ext[:, -self.state_spec()['audio'].shape[1]:]
    frames = tf.gather(ext, self._ld_index, axis=1)  # [B, F, n_fft]
    if self._ld_fft:
      spectrum = tf.signal.rfft(frames * self._ld_window)  # TFLite: RFFT2D
      power = tf.reduce_sum((tf.square(tf.math.real(spectrum)) + tf.square(tf.math.imag(spectrum)))
                            * self._ld_weights, axis=-1)
    else:
      proj = tf.matmul(tf.reshape(frames, [-1, self.n_fft]), self._ld_matrix)
      power = tf.reshape(tf.reduce_sum(tf.square(proj), axis=-1), [batch, self.block_frames])
    loudness = 10.0 / math.log(10.0) * tf.math.log(tf.maximum(power, 1e-20)) - self.ref_db
    features = {'loudness_db': tf.maximum(loudness, -self.range_db)}
    if self.crepe_model is None:
      return features, None, new_state
    # Causal decimation to 16 kHz: the last 2Q input samples and this block, filtered, every M-th sample.
    n16 = self.block_size // self.factor
    if self.factor == 1:
      audio16 = audio
      new_state['tail'] = state['tail']
    else:
      ext_in = tf.concat([state['tail'], audio], axis=1)
      audio16 = tf.nn.conv1d(ext_in[..., tf.newaxis], self.resampler, stride=self.factor, padding='VALID')[..., 0]
      new_state['tail'] = ext_in[:, -2 * self.q:]
      # 16 kHz samples before the start of the stream are zero (the offline padding).
      index = state['count16'] + tf.range(n16, dtype=tf.int32)
      audio16 = audio16 * tf.cast(index >= self.delay16, tf.float32)[tf.newaxis]
    new_state['count16'] = tf.minimum(state['count16'] + n16, self.delay16)
    ext16 = tf.concat([state['audio16'], audio16], axis=1)
    new_state['audio16'] = ext16[:, ext16.shape[1] - self._plan['ring']:]
    windows = tf.reshape(tf.gather(ext16, self._f0_index, axis=1), [-1, crepe.FRAME_SIZE])
    return features, windows, new_state

  def complete(self, activations, features, state, new_state):
    """CREPE's activations `[B Qb, 360]` of `analyse`'s windows -> (features with f0_hz and f0_confidence,
    the whole new state), given `analyse`'s features and new state and the block's incoming `state`."""
    features, new_state = dict(features), dict(new_state)
    f0, conf = decode_activations(activations)
    batch = tf.shape(activations)[0] // self.crepe_frames_per_block
    f0 = tf.reshape(f0, [batch, self.crepe_frames_per_block])
    conf = tf.reshape(conf, [batch, self.crepe_frames_per_block])
    if self._plan['carry']:
      f0 = tf.concat([state['crepe_f0'], f0], axis=1)
      conf = tf.concat([state['crepe_confidence'], conf], axis=1)
      new_state['crepe_f0'] = f0[:, self.crepe_frames_per_block:]
      new_state['crepe_confidence'] = conf[:, self.crepe_frames_per_block:]
    if self.crepe_frames_per_block != self.block_frames or self._plan['carry']:
      f0, conf = self._interpolate(f0, conf)
    if self.f0_delay_frames:
      first = self.latency_frames + self.f0_delay_frames  # the first block frame of input frame k
      voiced = tf.cast(state['f0_frames'] + tf.range(self.block_frames, dtype=tf.int32) >= first, tf.float32)
      f0, conf = f0 * voiced[tf.newaxis], conf * voiced[tf.newaxis]
      new_state['f0_frames'] = tf.minimum(state['f0_frames'] + self.block_frames, first)
    features['f0_hz'], features['f0_confidence'] = f0, conf
    return features, new_state

  def _interpolate(self, f0, conf):
    """CREPE frames `[B, K + Qb]` -> the block's frames `[B, F]`: confidence linear, f0 linear in cents
    (`f_lo (f_hi / f_lo) ** w`, as `ddsp.pitch.compute_f0` offline). Carried frames before the start of the
    stream are zeros; the floor keeps the ratio finite there."""
    f_lo, f_hi = tf.gather(f0, self._f0_lo, axis=1), tf.gather(f0, self._f0_hi, axis=1)
    c_lo, c_hi = tf.gather(conf, self._f0_lo, axis=1), tf.gather(conf, self._f0_hi, axis=1)
    w = self._f0_w[tf.newaxis]
    ratio = tf.maximum(f_hi, 1e-3) / tf.maximum(f_lo, 1e-3)
    return f_lo * tf.exp(w * tf.math.log(ratio)), (1.0 - w) * c_lo + w * c_hi

  def flops_per_frame(self):
    """Multiply-adds x 2 per frame: the loudness FFT (2.5 n log2 n for a real FFT, plus the window and the
    weighted power), the resampler and the CREPE network."""
    if self._ld_fft:
      total = int(2.5 * self.n_fft * math.log2(self.n_fft)) + self.n_fft + 4 * (self.n_fft // 2 + 1)
    else:
      total = 2 * self.n_fft * int(self._ld_matrix.shape[1])
    if self.crepe_model is not None:
      total += 2 * self.hop * (2 * self.q + 1) // self.factor + int(
          crepe.flops_per_frame(self.crepe_model) * self.crepe_frames_per_block / self.block_frames)
    return total
