"""The decoders' GRU: a Keras-compatible layer with a fast CPU training path, and its block-by-block form.

`FastGru` trains (custom gradient, see `gru_recurrence`); `gru_block` runs the same layer's weights on one
block of frames for streaming inference (`ddsp.training.streaming`), with TFLite built-in ops only.
"""

import gin
import keras
import tensorflow as tf


# ------------------------------------------------------------------------------------------------------------
# A GRU with a fast CPU/GPU path: input projections as one matrix multiply, a lean recurrence, and a custom
# gradient whose weight gradients are single large matrix multiplies.
# ------------------------------------------------------------------------------------------------------------
def _gru_gates(x_proj, rec, units):
  """Gate maths shared by the forward and backward passes (float32).

  Args:
    x_proj: `[..., 3 * units]` input projection plus input bias, gates ordered (z, r, h) as in Keras.
    rec: `[..., 3 * units]` recurrent projection `h_prev @ recurrent_kernel + recurrent_bias`.
    units: U.

  Returns:
    z, r, candidate h~, and the recurrent part of the candidate (`rec_h`), each `[..., units]`.
  """
  xz, xr, xh = x_proj[..., :units], x_proj[..., units:2 * units], x_proj[..., 2 * units:]
  rz, rr, rh = rec[..., :units], rec[..., units:2 * units], rec[..., 2 * units:]
  z = tf.sigmoid(xz + rz)
  r = tf.sigmoid(xr + rr)
  hh = tf.tanh(xh + r * rh)
  return z, r, hh, rh


def _recurrent_matmul(h, kernel):
  """`h @ kernel` in the kernel's dtype (bf16 under mixed precision), result in float32."""
  return tf.cast(tf.matmul(tf.cast(h, kernel.dtype), kernel), tf.float32)


def _gru_forward_loop(x_proj, recurrent_kernel, recurrent_bias, h0):
  """Forward recurrence. Returns the states `[T, B, U]` and the recurrent projections `[T, B, 3U]`."""
  units = h0.shape[-1]
  n_steps = tf.shape(x_proj)[0]
  # The recurrent biases of z and r simply add to the input projection; only h~'s is gated by r.
  x_proj = x_proj + tf.concat([recurrent_bias[:2 * units], tf.zeros([units])], axis=0)
  bias_h = recurrent_bias[2 * units:]

  def body(t, h, states, recs):
    x_t = x_proj[t]
    rec = _recurrent_matmul(h, recurrent_kernel)
    zr = tf.sigmoid(x_t[:, :2 * units] + rec[:, :2 * units])
    z, r = zr[:, :units], zr[:, units:]
    hh = tf.tanh(x_t[:, 2 * units:] + r * (rec[:, 2 * units:] + bias_h))
    h = hh + z * (h - hh)
    return t + 1, h, states.write(t, h), recs.write(t, rec)

  states = tf.TensorArray(tf.float32, size=n_steps, element_shape=h0.shape)
  recs = tf.TensorArray(tf.float32, size=n_steps, element_shape=x_proj.shape[1:])
  _, _, states, recs = tf.while_loop(lambda t, *_: t < n_steps, body, (0, h0, states, recs))
  return states.stack(), recs.stack() + recurrent_bias


def _gru_backward_loop(d_outputs, gate_factors, z, recurrent_kernel, h0):
  """Backward recurrence: the total gradient `dL/dh_t` for every step `[T, B, U]`, and `dL/dh0`.

  `gate_factors [T, B, 3U]` maps dL/dh_t to the gradient of the recurrent projection of step t (see
  `gru_recurrence`); `dh_{t-1} = dh_t * z_t + (tile(dh_t, 3) * gate_factors_t) @ recurrent_kernel^T`.
  """
  n_steps = tf.shape(d_outputs)[0]
  kernel_t = tf.transpose(recurrent_kernel)

  def body(t, dh_next, dhs):
    dh = d_outputs[t] + dh_next
    d_rec = tf.tile(dh, [1, 3]) * gate_factors[t]
    dh_prev = dh * z[t] + _recurrent_matmul(d_rec, kernel_t)
    return t - 1, dh_prev, dhs.write(t, dh)

  dhs = tf.TensorArray(tf.float32, size=n_steps, element_shape=h0.shape)
  _, dh0, dhs = tf.while_loop(lambda t, *_: t >= 0, body, (n_steps - 1, tf.zeros_like(h0), dhs))
  return dhs.stack(), dh0


def gru_recurrence(x_proj, recurrent_kernel, recurrent_bias, h0):
  """Runs the reset-after GRU recurrence over time, with a hand-written backward pass.

  `h_t = z_t * h_{t-1} + (1 - z_t) * h~_t` with `z_t = sigmoid(xz_t + h_{t-1} Uz + bz)`,
  `r_t = sigmoid(xr_t + h_{t-1} Ur + br)`, `h~_t = tanh(xh_t + r_t * (h_{t-1} Uh + bh))` (Keras' GRU with
  reset_after=True). The state and the gate maths are float32; the recurrent matmul runs in the dtype of
  `recurrent_kernel` (bf16 under mixed precision).

  Backward pass: with `a` the gate pre-activations and `dh_t` the total gradient of state t,
    da_z = dh_t (h_{t-1} - h~_t) z (1 - z),  da_h = dh_t (1 - z)(1 - h~^2),  da_r = da_h rec_h r (1 - r),
    d rec_t = [da_z, da_r, da_h r],  dh_{t-1} = dh_t z + d rec_t U^T.
  Everything that does not depend on dh is computed for all steps at once (the forward pass keeps the
  recurrent projections), so the loop walks back in time with one `[batch, 3U] x [3U, U]` matmul and a few
  element-wise ops per step; the kernel gradient is one large matmul. Much cheaper than differentiating the
  loop op by op.

  Args:
    x_proj: `[time, batch, 3U]` float32, `x @ kernel + input_bias` for every step.
    recurrent_kernel: `[U, 3U]`.
    recurrent_bias: `[3U]` float32.
    h0: `[batch, U]` float32 initial state.

  Returns:
    `[time, batch, U]` float32 states.
  """

  @tf.custom_gradient
  def _run(x_proj, recurrent_kernel, recurrent_bias, h0):
    units = h0.shape[-1]
    outputs, rec_all = _gru_forward_loop(x_proj, recurrent_kernel, recurrent_bias, h0)

    def grad(d_outputs):
      d_outputs = tf.convert_to_tensor(d_outputs, tf.float32)
      h_prev = tf.concat([h0[tf.newaxis], outputs[:-1]], axis=0)  # [T, B, U]
      z, r, hh, rh = _gru_gates(x_proj, rec_all, units)
      f_z = (h_prev - hh) * z * (1.0 - z)
      f_h = (1.0 - z) * (1.0 - hh * hh)
      f_r = f_h * rh * r * (1.0 - r)
      dh, dh0 = _gru_backward_loop(d_outputs, tf.concat([f_z, f_r, f_h * r], axis=-1), z, recurrent_kernel, h0)
      d_z, d_r, d_h = dh * f_z, dh * f_r, dh * f_h
      d_x_proj = tf.concat([d_z, d_r, d_h], axis=-1)  # gradient of the pre-activations from the input
      flat_d_rec = tf.reshape(tf.concat([d_z, d_r, d_h * r], axis=-1), [-1, 3 * units])
      flat_prev = tf.reshape(h_prev, [-1, units])
      d_kernel = tf.matmul(tf.cast(flat_prev, recurrent_kernel.dtype), tf.cast(flat_d_rec, recurrent_kernel.dtype),
                           transpose_a=True)
      d_bias = tf.reduce_sum(flat_d_rec, axis=0)
      return d_x_proj, tf.cast(d_kernel, recurrent_kernel.dtype), d_bias, dh0

    return outputs, grad

  return _run(x_proj, recurrent_kernel, recurrent_bias, h0)


@gin.register
class FastGru(keras.layers.Layer):
  """GRU returning the whole sequence: `keras.layers.GRU(units, return_sequences=True)` (reset_after=True,
  tanh / sigmoid) with a faster training path for CPUs.

  The weights are those of an inner `keras.layers.GRU` (`kernel [in, 3U]`, `recurrent_kernel [U, 3U]`,
  `bias [2, 3U]`: input and recurrent biases, gates ordered (z, r, h)), so checkpoints do not depend on the
  path taken. The fast path (`implementation='fast'`, and 'auto' when no GPU is visible):
    * the input projection of all frames is one `[batch * time, in] x [in, 3U]` matmul;
    * the loop only does the recurrent matmul and the gate maths (state kept in float32);
    * a custom gradient (see `gru_recurrence`) replaces the per-step weight-gradient updates by one matmul.
  `implementation='keras'` (and 'auto' with a GPU) calls the Keras layer (cuDNN on GPUs).

  `batch_splits > 1` (fast path) runs that many independent recurrences on slices of the batch, which the
  TensorFlow executor may schedule on different cores (useful only with idle cores).

  Input `[batch, time, channels]`; output `[batch, time, units]` in the compute dtype.
  """

  def __init__(self, units, implementation='auto', batch_splits=1, dtype=None, name='fast_gru', **kwargs):
    super().__init__(name=name, dtype=dtype, **kwargs)
    if implementation not in ('auto', 'fast', 'keras'):
      raise ValueError(f"`implementation` must be 'auto', 'fast' or 'keras', got {implementation!r}.")
    self.units = int(units)
    self.implementation = implementation
    self.batch_splits = int(batch_splits)
    self.gru = keras.layers.GRU(self.units, return_sequences=True, dtype=self.dtype_policy, name='gru')

  def build(self, input_shape):
    self.gru.build(tuple(input_shape))
    self.built = True

  @property
  def kernel(self):
    return self.gru.cell.kernel

  @property
  def recurrent_kernel(self):
    return self.gru.cell.recurrent_kernel

  @property
  def bias(self):
    return self.gru.cell.bias

  def uses_fast_path(self):
    if self.implementation == 'auto':
      return not tf.config.list_logical_devices('GPU')
    return self.implementation == 'fast'

  def call(self, x, initial_state=None, training=False):
    if x.shape.rank != 3:
      raise ValueError(f'FastGru expects [batch, time, channels], got shape {x.shape}.')
    if not self.uses_fast_path():
      state = None if initial_state is None else [initial_state]
      return self.gru(x, initial_state=state, training=training)
    compute = self.compute_dtype
    batch = tf.shape(x)[0]
    # Time-major input projection in one matmul.
    x_tm = tf.transpose(tf.cast(x, compute), [1, 0, 2])
    flat = tf.reshape(x_tm, [-1, x.shape[-1]])
    kernel = tf.cast(tf.convert_to_tensor(self.kernel), compute)
    recurrent_kernel = tf.cast(tf.convert_to_tensor(self.recurrent_kernel), compute)
    bias = tf.cast(tf.convert_to_tensor(self.bias), tf.float32)
    proj = tf.cast(tf.matmul(flat, kernel), tf.float32) + bias[0]
    proj = tf.reshape(proj, [tf.shape(x_tm)[0], batch, 3 * self.units])
    if initial_state is None:
      h0 = tf.zeros([batch, self.units], tf.float32)
    else:
      h0 = tf.cast(initial_state, tf.float32)
    splits = self.batch_splits
    if splits > 1 and x.shape[0] is not None and x.shape[0] % splits == 0:
      parts = [gru_recurrence(p, recurrent_kernel, bias[1], h) for p, h in
               zip(tf.split(proj, splits, axis=1), tf.split(h0, splits, axis=0))]
      states = tf.concat(parts, axis=1)
    else:
      states = gru_recurrence(proj, recurrent_kernel, bias[1], h0)
    return tf.cast(tf.transpose(states, [1, 0, 2]), compute)

  def compute_output_shape(self, input_shape):
    return tuple(input_shape[:-1]) + (self.units,)


def gru_block(layer, x, h):
  """A GRU layer's weights (Keras reset-after maths, as `gru_recurrence`) run on one block of frames.

  The input projection of all frames is one matmul; the recurrence is unrolled for blocks of up to 64
  frames (no loop op: cheapest in graph mode and in TFLite) and a loop over unrolled 64-frame chunks beyond.

  Args:
    layer: a built `FastGru` (or `keras.layers.GRU`): `units`, `kernel`, `recurrent_kernel`, `bias`.
    x: `[B, F, channels]`.
    h: `[B, units]` state.

  Returns:
    (`[B, F, units]` outputs, `[B, units]` last state), float32.
  """
  units = layer.units
  kernel = tf.cast(tf.convert_to_tensor(layer.kernel), tf.float32)
  recurrent_kernel = tf.cast(tf.convert_to_tensor(layer.recurrent_kernel), tf.float32)
  bias = tf.cast(tf.convert_to_tensor(layer.bias), tf.float32)
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
