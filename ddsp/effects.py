"""Effects: processors that transform audio (reverb, filtering, modulated delay).

Audio is `[batch, n_samples]`; time-varying controls are `[batch, n_frames, channels]`.
"""
import gin
import keras
import numpy as np
import tensorflow as tf

from ddsp import blocks
from ddsp import core
from ddsp import processors
from ddsp import synths


def _ir_2d(ir, name='ir'):
  """IR as `[batch, ir_size]` from `[ir_size]`, `[batch, ir_size]` or `[batch, ir_size, 1]`."""
  ir = core.tf_float32(ir, name)
  if ir.shape.rank == 1:
    ir = ir[tf.newaxis]
  elif ir.shape.rank == 3 and ir.shape[-1] == 1:
    ir = ir[..., 0]
  if ir.shape.rank != 2:
    raise ValueError(f'`{name}` must be [ir_size], [batch, ir_size] or [batch, ir_size, 1], got {ir.shape}.')
  return ir


class ReverbBase(processors.Processor):
  """Convolution with an impulse response (causal, FFT), optionally adding the dry signal."""

  def __init__(self, add_dry=True, name="reverb", trainable=True, **kwargs):
    super().__init__(name=name, trainable=trainable, **kwargs)
    self.add_dry = add_dry

  @staticmethod
  def _mask_dry_ir(ir):
    """Zeroes the direct-path sample: the dry signal is added separately."""
    return tf.concat([tf.zeros_like(ir[:, :1]), ir[:, 1:]], axis=1)

  def get_signal(self, audio, ir):
    """Args: audio `[batch, n_samples]`, ir `[batch or 1, ir_size]`. Returns `[batch, n_samples]`."""
    wet = core.fft_convolve(audio, ir, padding='same', delay_compensation=0)
    return wet + audio if self.add_dry else wet

  def learned_ir(self):
    """The IR `[1, ir_size]` a trainable reverb learns (direct-path sample masked).

    Raises:
      ValueError: the reverb is not trainable (its IR or its parameters are inputs).
    """
    raise ValueError(f'{type(self).__name__} has no learned IR.')

  def block_step(self, config, input_channels):
    """A trainable reverb streams: a partitioned convolution with its learned IR, taken when the stream is built
    (build a new stream after changing the weights)."""
    try:
      ir = self.learned_ir()
    except ValueError as e:
      raise NotImplementedError(f'only a trainable reverb streams ({e})') from e
    return ReverbStep(self, ir[0].numpy(), config)


class ReverbStep(processors.BlockStep):
  """A reverb with a fixed IR, block by block (`blocks.PartitionedConvolution`), plus the dry signal."""
  reads_frames = False

  def __init__(self, reverb, ir, config):
    self.add_dry = reverb.add_dry
    self.convolution = blocks.PartitionedConvolution(ir, config.block_size, config.reverb_partition)

  def state_spec(self, batch_size, latency_frames):
    return self.convolution.state_spec(batch_size)

  def step(self, inputs, state, block):
    wet, state = self.convolution.step(inputs[0], state)
    return (wet + inputs[0] if self.add_dry else wet), state


@gin.register
class Reverb(ReverbBase):
  """Reverb by convolution with a long impulse response (the paper's room model).

  `Reverb(trainable=True)(audio)` learns the IR (`reverb_length` taps) as a variable; `Reverb()(audio, ir)`
  takes the IR as an input. The first IR sample is masked (the dry path is added separately when add_dry).

  `ir_scale`: the learned IR is `ir_scale * variable` (the variable starts at N(0, (1e-6 / ir_scale)^2), so
  the initial IR is the same for every scale). Adam moves each variable by about its learning rate per step
  whatever the gradient's size, so the IR's taps move `ir_scale` times as fast as the network's weights; 1.0 is
  the paper's parameterisation.

  `decay_db`: the learned taps are weighted by a fixed exponential envelope falling by `decay_db` dB from the
  first tap to the last (`10 ** (-decay_db / 20 * n / reverb_length)`), the decay of a room whose RT60 is
  `60 / decay_db` times the IR's length. Without it (0, the paper's parameterisation) every tap starts and
  moves alike, and a short training leaves a flat noise tail as loud at the end of the IR as near its start.
  """

  def __init__(self, trainable=False, reverb_length=48000, add_dry=True, ir_scale=1.0, decay_db=0.0,
               name='reverb', **kwargs):
    super().__init__(add_dry=add_dry, name=name, trainable=trainable, **kwargs)
    self.reverb_length = int(reverb_length)
    if not float(ir_scale) > 0:
      raise ValueError(f'Reverb: ir_scale must be > 0, got {ir_scale}.')
    if not float(decay_db) >= 0:
      raise ValueError(f'Reverb: decay_db must be >= 0, got {decay_db}.')
    self.ir_scale = float(ir_scale)
    self.decay_db = float(decay_db)
    n = np.arange(self.reverb_length, dtype=np.float64)
    self._envelope = (self.ir_scale * 10.0 ** (-self.decay_db / 20.0 * n / self.reverb_length)).astype(np.float32)
    if trainable:
      self.ir = self.add_weight(shape=(self.reverb_length,), name='ir', trainable=True,
                                initializer=keras.initializers.RandomNormal(stddev=1e-6 / self.ir_scale, seed=0))
    else:
      self.ir = None

  def get_ir(self):
    """The learned impulse response `[1, reverb_length]` (direct-path sample masked)."""
    if self.ir is None:
      raise ValueError('this Reverb is not trainable: its IR is an input')
    ir = tf.convert_to_tensor(self.ir)[tf.newaxis]
    if self.ir_scale != 1.0 or self.decay_db:
      ir = tf.constant(self._envelope)[tf.newaxis] * ir
    return self._mask_dry_ir(ir)

  def learned_ir(self):
    return self.get_ir()

  def get_controls(self, audio, ir=None):
    """Args: audio `[batch, n_samples]`; ir `[batch, ir_size]` unless trainable."""
    audio = core.tf_float32(audio, 'audio')
    if audio.shape.rank != 2:
      raise ValueError(f'Reverb: `audio` must be [batch, n_samples], got {audio.shape}.')
    if self.ir is not None:
      if ir is not None:
        raise ValueError('Reverb(trainable=True) learns its IR; do not pass `ir`.')
      ir = self.get_ir()
    elif ir is None:
      raise ValueError('Reverb(trainable=False) needs an `ir` input [batch, ir_size]; or use trainable=True.')
    else:
      ir = self._mask_dry_ir(_ir_2d(ir)) if self.add_dry else _ir_2d(ir)
    core.check_finite(audio, 'audio')
    core.check_finite(ir, 'ir')
    return {'audio': audio, 'ir': ir}


@gin.register
class ExpDecayReverb(ReverbBase):
  """Parametric reverb: a fixed white-noise IR shaped by `gain * exp(-decay_rate * t)`.

  Controls: gain (through exp_sigmoid-free softplus) and decay (per second, `2 + softplus(decay)`).
  `ExpDecayReverb(trainable=True)(audio)` learns both; otherwise `(audio, gain [B,1], decay [B,1])`.
  """

  def __init__(self, trainable=False, reverb_length=48000, sample_rate=16000, add_dry=True, seed=0,
               name='exp_decay_reverb', **kwargs):
    super().__init__(add_dry=add_dry, name=name, trainable=trainable, **kwargs)
    self.reverb_length = int(reverb_length)
    self.sample_rate = int(sample_rate)
    rng = np.random.default_rng(seed)
    self._noise = tf.constant(rng.uniform(-1.0, 1.0, self.reverb_length).astype(np.float32))
    if trainable:
      self.gain = self.add_weight(shape=(1,), name='gain', initializer=keras.initializers.Constant(-4.0))
      self.decay = self.add_weight(shape=(1,), name='decay', initializer=keras.initializers.Constant(4.0))
    else:
      self.gain = self.decay = None

  def _ir(self, gain, decay):
    """`[batch, reverb_length]` IR of `gain`, `decay` `[batch, 1]` (direct-path sample masked)."""
    gain = tf.reshape(core.tf_float32(gain, 'gain'), [-1, 1])
    decay = tf.reshape(core.tf_float32(decay, 'decay'), [-1, 1])
    t = tf.range(self.reverb_length, dtype=tf.float32)[tf.newaxis] / float(self.sample_rate)
    envelope = tf.nn.softplus(gain) * tf.exp(-(2.0 + tf.nn.softplus(decay)) * t)
    return self._mask_dry_ir(envelope * self._noise[tf.newaxis])

  def learned_ir(self):
    if self.gain is None:
      raise ValueError('this ExpDecayReverb is not trainable: its gain and decay are inputs')
    return self._ir(tf.convert_to_tensor(self.gain)[tf.newaxis], tf.convert_to_tensor(self.decay)[tf.newaxis])

  def get_controls(self, audio, gain=None, decay=None):
    audio = core.tf_float32(audio, 'audio')
    if self.gain is not None:
      return {'audio': audio, 'ir': self.learned_ir()}
    if gain is None or decay is None:
      raise ValueError('ExpDecayReverb(trainable=False) needs `gain` and `decay` inputs [batch, 1].')
    return {'audio': audio, 'ir': self._ir(gain, decay)}


@gin.register
class FilteredNoiseReverb(ReverbBase):
  """Parametric reverb whose IR is time-varying coloured noise (a FilteredNoise synth over the IR's length).

  `FilteredNoiseReverb(trainable=True)(audio)` learns the magnitudes `[n_frames, n_bands]`; otherwise
  `(audio, magnitudes [B, n_frames, n_bands])`. The noise is fixed (seeded) so the IR is a deterministic
  function of the magnitudes.
  """

  def __init__(self, trainable=False, reverb_length=48000, window_size=257, n_frames=1000, n_bands=16,
               scale_fn=core.exp_sigmoid, initial_bias=-3.0, add_dry=True, seed=0,
               name='filtered_noise_reverb', **kwargs):
    super().__init__(add_dry=add_dry, name=name, trainable=trainable, **kwargs)
    self.reverb_length = int(reverb_length)
    if self.reverb_length % int(n_frames):
      raise ValueError(f'FilteredNoiseReverb: reverb_length {reverb_length} must be a multiple of n_frames '
                       f'{n_frames}.')
    self.n_frames, self.n_bands = int(n_frames), int(n_bands)
    self._synth = synths.FilteredNoise(n_samples=self.reverb_length, window_size=window_size, scale_fn=scale_fn,
                                       initial_bias=initial_bias, seed=seed, name='ir_noise')
    if trainable:
      self.magnitudes = self.add_weight(shape=(self.n_frames, self.n_bands), name='magnitudes',
                                        initializer=keras.initializers.RandomNormal(stddev=0.01, seed=0))
    else:
      self.magnitudes = None

  def learned_ir(self):
    if self.magnitudes is None:
      raise ValueError('this FilteredNoiseReverb is not trainable: its magnitudes are an input')
    return self._mask_dry_ir(self._synth(tf.convert_to_tensor(self.magnitudes)[tf.newaxis]))

  def get_controls(self, audio, magnitudes=None):
    audio = core.tf_float32(audio, 'audio')
    if self.magnitudes is not None:
      magnitudes = tf.convert_to_tensor(self.magnitudes)[tf.newaxis]
    elif magnitudes is None:
      raise ValueError('FilteredNoiseReverb(trainable=False) needs `magnitudes` [batch, n_frames, n_bands].')
    ir = self._synth(magnitudes)
    return {'audio': audio, 'ir': self._mask_dry_ir(ir)}


@gin.register
class FIRFilter(processors.Processor):
  """Time-varying FIR filter for any signal: `FIRFilter(...)(audio [B,N], magnitudes [B,T,n_bands])`."""

  def __init__(self, window_size=257, scale_fn=core.exp_sigmoid, name='fir_filter', **kwargs):
    super().__init__(name=name, **kwargs)
    self.window_size = int(window_size)
    self.scale_fn = scale_fn

  def get_controls(self, audio, magnitudes):
    audio = core.tf_float32(audio, 'audio')
    magnitudes = core.ensure_3d(magnitudes, 'magnitudes')
    core.check_finite(magnitudes, 'magnitudes')
    if self.scale_fn is not None:
      magnitudes = self.scale_fn(magnitudes)
    return {'audio': audio, 'magnitudes': magnitudes}

  def get_signal(self, audio, magnitudes):
    return core.frequency_filter(audio, magnitudes, window_size=self.window_size)


@gin.register
class ModDelay(processors.Processor):
  """Modulated delay line (chorus, flanger, vibrato): `gain(n) * audio(n - delay(n))` (+ dry).

  `ModDelay(...)(audio [B,N], gain [B,T,1], phase [B,T,1])`, delay(n) = center_ms + depth_ms * phase(n) with
  phase in [0, 1] (sigmoid of the input by default); fractional delays are linearly interpolated.
  """

  def __init__(self, center_ms=15.0, depth_ms=10.0, sample_rate=16000, gain_scale_fn=core.exp_sigmoid,
               phase_scale_fn=tf.nn.sigmoid, add_dry=True, name='mod_delay', **kwargs):
    super().__init__(name=name, **kwargs)
    self.center_ms, self.depth_ms = float(center_ms), float(depth_ms)
    self.sample_rate = int(sample_rate)
    self.gain_scale_fn, self.phase_scale_fn = gain_scale_fn, phase_scale_fn
    self.add_dry = add_dry

  def get_controls(self, audio, gain, phase):
    audio = core.tf_float32(audio, 'audio')
    gain = core.ensure_3d(gain, 'gain')
    phase = core.ensure_3d(phase, 'phase')
    if self.gain_scale_fn is not None:
      gain = self.gain_scale_fn(gain)
    if self.phase_scale_fn is not None:
      phase = self.phase_scale_fn(phase)
    return {'audio': audio, 'gain': gain, 'phase': phase}

  def get_signal(self, audio, gain, phase):
    n_samples = audio.shape[1]
    gain = core.resample(gain, n_samples, method='linear')[..., 0]
    phase = core.resample(phase, n_samples, method='linear')[..., 0]
    delay = (self.center_ms + self.depth_ms * phase) * (self.sample_rate / 1000.0)  # samples, [B, N]
    position = tf.range(n_samples, dtype=tf.float32)[tf.newaxis] - delay
    lower = tf.floor(position)
    frac = position - lower
    lower = tf.cast(lower, tf.int32)
    max_delay = int(np.ceil((self.center_ms + self.depth_ms) * self.sample_rate / 1000.0)) + 2
    padded = tf.pad(audio, [[0, 0], [max_delay, 0]])
    lo = tf.gather(padded, tf.maximum(lower + max_delay, 0), batch_dims=1)
    hi = tf.gather(padded, tf.maximum(lower + max_delay + 1, 0), batch_dims=1)
    wet = gain * (lo + frac * (hi - lo))
    return wet + audio if self.add_dry else wet
