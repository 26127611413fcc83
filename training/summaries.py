"""TensorBoard summaries and figures for training, evaluation and sampling.

Summaries are written with the core `tf.summary.write` op and the TensorBoard plugin metadata of the
`scalars`, `images` and `audio` dashboards, so that writing them needs TensorFlow only (the `tensorboard`
package is needed just to view them). Figures are drawn with matplotlib's Agg canvas (no pyplot, no global
backend change) and can also be saved as PNG files atomically.

Call the summary functions inside `with writer.as_default():` of a `tf.summary.create_file_writer`.
Shapes: audio [batch, n_samples] (or [n_samples]); frame features [batch, n_frames] or [batch, n_frames, 1].
"""
import io

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

# AudioPluginData{version: 0, encoding: WAV (= 11)} in protobuf wire format (field 2, varint 11).
_AUDIO_PLUGIN_CONTENT = b'\x10\x0b'


def _metadata(plugin_name, content=b''):
  return summary_pb2.SummaryMetadata(
      plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=plugin_name, content=content))


# ------------------------------------------------------------------------------------------------------------
# Scalars, images, audio.
# ------------------------------------------------------------------------------------------------------------
def scalar(name, value, step):
  """Writes one scalar (TensorBoard `scalars` dashboard)."""
  return tf.summary.write(name, tf.cast(tf.convert_to_tensor(value), tf.float32), step=step,
                          metadata=_metadata('scalars'))


def scalars(values, step, prefix=''):
  """Writes every entry of a {name: number} dict as a scalar named `prefix + name`."""
  for name, value in sorted(values.items()):
    scalar(prefix + name, value, step)


def png_images(name, pngs, width, height, step):
  """Writes already-encoded PNG images (list of bytes, all `width` x `height` pixels) as one image summary."""
  tensor = tf.constant([str(int(width)).encode(), str(int(height)).encode()] + list(pngs), dtype=tf.string)
  return tf.summary.write(name, tensor, step=step, metadata=_metadata('images'))


def figure(name, fig, step):
  """Renders a matplotlib Figure to PNG and writes it as an image summary."""
  png, (width, height) = figure_to_png(fig)
  return png_images(name, [png], width, height, step)


def encode_wav(audio, sample_rate):
  """Encodes mono float audio [n_samples] in [-1, 1] (clipped) as 16-bit WAV bytes."""
  audio = np.clip(np.asarray(audio, np.float32).reshape(-1, 1), -1.0, 1.0)
  return tf.audio.encode_wav(audio, int(sample_rate)).numpy()


def audio(name, audio_batch, sample_rate, step, max_outputs=3):
  """Writes up to `max_outputs` clips of audio [batch, n_samples] (or [n_samples]) as an audio summary."""
  audio_batch = np.asarray(audio_batch, np.float32)
  if audio_batch.ndim == 1:
    audio_batch = audio_batch[np.newaxis]
  if audio_batch.ndim != 2:
    raise ValueError(f'audio must be [batch, n_samples], got shape {audio_batch.shape}.')
  clips = [[encode_wav(a, sample_rate), b''] for a in audio_batch[:max_outputs]]
  tensor = tf.constant(clips, dtype=tf.string)
  return tf.summary.write(name, tensor, step=step, metadata=_metadata('audio', _AUDIO_PLUGIN_CONTENT))


# ------------------------------------------------------------------------------------------------------------
# Figures.
# ------------------------------------------------------------------------------------------------------------
def _new_figure(width_in, height_in):
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  fig = Figure(figsize=(width_in, height_in), dpi=80)
  FigureCanvasAgg(fig)
  return fig


def figure_to_png(fig):
  """Renders a Figure with the Agg canvas; returns (png bytes, (width, height) in pixels)."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
  canvas.draw()
  width, height = canvas.get_width_height()
  buf = io.BytesIO()
  fig.savefig(buf, format='png', dpi=fig.dpi)
  return buf.getvalue(), (width, height)


def log_spectrogram(audio_1d, n_fft=1024, hop=256):
  """Log-magnitude spectrogram (dB, max 0) of mono audio [n_samples] -> [n_frames, n_fft // 2 + 1]."""
  x = np.asarray(audio_1d, np.float64).reshape(-1)
  if x.size < n_fft:
    x = np.pad(x, (0, n_fft - x.size))
  x = np.pad(x, (n_fft // 2, n_fft // 2))
  n_frames = 1 + (x.size - n_fft) // hop
  idx = np.arange(n_fft)[np.newaxis, :] + hop * np.arange(n_frames)[:, np.newaxis]
  mag = np.abs(np.fft.rfft(x[idx] * np.hanning(n_fft + 1)[:-1], axis=-1))
  return 20.0 * np.log10(np.maximum(mag, 1e-6))


def spectrogram_figure(audios, sample_rate, titles=None):
  """A column of log-magnitude spectrograms (shared colour scale, 80 dB range).

  Args:
    audios: list of mono audio arrays [n_samples] (e.g. target and resynthesis).
    sample_rate: in Hz, for the axes.
    titles: one title per audio.

  Returns:
    A matplotlib Figure.
  """
  specs = [log_spectrogram(a) for a in audios]
  top = max(float(s.max()) for s in specs)
  fig = _new_figure(8, 2.4 * len(specs))
  for i, spec in enumerate(specs):
    ax = fig.add_subplot(len(specs), 1, i + 1)
    n = len(np.asarray(audios[i]).reshape(-1))
    ax.imshow(spec.T, origin='lower', aspect='auto', cmap='magma', vmin=top - 80.0, vmax=top,
              extent=[0.0, n / sample_rate, 0.0, sample_rate / 2.0])
    ax.set_ylabel('Hz')
    if titles:
      ax.set_title(titles[i])
  fig.axes[-1].set_xlabel('seconds')
  fig.tight_layout()
  return fig


def curves_figure(f0_curves, loudness_curves, frame_rate):
  """f0 (Hz) and loudness (dB) curves over time, one line per entry of each {label: [n_frames]} dict.

  The longest curve sets the duration (n_frames / frame_rate); shorter curves (e.g. at a decoder's coarser
  frame rate) are spread over the same duration.
  """
  fig = _new_figure(8, 5)
  panels = [('f0 (Hz)', f0_curves), ('loudness (dB)', loudness_curves)]
  lengths = [np.asarray(c).size for curves in (f0_curves, loudness_curves) for c in curves.values()]
  duration = max(lengths, default=0) / float(frame_rate)
  for i, (label, curves) in enumerate(panels):
    ax = fig.add_subplot(2, 1, i + 1)
    for name, curve in curves.items():
      curve = np.asarray(curve, np.float64).reshape(-1)
      ax.plot(np.arange(curve.size) * (duration / max(curve.size, 1)), curve, label=name, linewidth=1.0)
    ax.set_ylabel(label)
    if curves:
      ax.legend(loc='upper right', fontsize='small')
  fig.axes[-1].set_xlabel('seconds')
  fig.tight_layout()
  return fig


# ------------------------------------------------------------------------------------------------------------
# What the training loop writes.
# ------------------------------------------------------------------------------------------------------------
def _numpy(x):
  return None if x is None else np.asarray(x.numpy() if hasattr(x, 'numpy') else x, np.float32)


def _frames(x):
  """[batch, n_frames(, 1)] -> [batch, n_frames]."""
  x = _numpy(x)
  if x is not None and x.ndim == 3:
    x = x[..., 0]
  return x


def loudness_curve(audio_batch, sample_rate, frame_rate):
  """A-weighted loudness (dB) of audio [batch, n_samples] -> [batch, n_frames], via ddsp.spectral_ops."""
  from ddsp import spectral_ops
  return np.asarray(spectral_ops.compute_loudness(np.asarray(audio_batch, np.float32), sample_rate=sample_rate,
                                                  frame_rate=frame_rate))


def audio_summaries(batch, outputs, audio_gen, step, sample_rate=16000, frame_rate=250, max_outputs=2,
                    prefix='train/'):
  """Target and resynthesised audio, their spectrograms, and f0 / loudness curves.

  Args:
    batch: the input feature dict (`audio` [batch, n_samples], `f0_hz`, `loudness_db` [batch, n_frames]).
    outputs: the model's output dict (may hold a learned `f0_hz`).
    audio_gen: resynthesised audio [batch, n_samples].
    step: the global step.
    sample_rate, frame_rate: of the audio and the frame features.
    max_outputs: how many examples to write.
    prefix: tag prefix.
  """
  target = _numpy(batch['audio'])[:max_outputs]
  gen = _numpy(audio_gen)[:max_outputs]
  audio(prefix + 'audio/target', target, sample_rate, step, max_outputs)
  audio(prefix + 'audio/resynthesis', gen, sample_rate, step, max_outputs)
  for i in range(min(max_outputs, target.shape[0])):
    fig = spectrogram_figure([target[i], gen[i]], sample_rate, titles=['target', 'resynthesis'])
    figure(f'{prefix}spectrogram/{i}', fig, step)
    f0_curves = {}
    f0_in = _frames(batch.get('f0_hz'))
    if f0_in is not None:
      f0_curves['input f0'] = f0_in[i]
    f0_out = _frames(outputs.get('f0_hz')) if isinstance(outputs, dict) else None
    same = f0_in is not None and f0_out is not None and f0_out.shape == f0_in.shape and np.allclose(
        f0_out[i], f0_in[i])
    if f0_out is not None and not same:  # e.g. the f0 of an unsupervised f0 encoder
      f0_curves['model f0'] = f0_out[i]
    ld_curves = {}
    ld_in = _frames(batch.get('loudness_db'))
    if ld_in is not None:
      ld_curves['input loudness'] = ld_in[i]
    try:
      ld_curves['resynthesis loudness'] = loudness_curve(gen[i:i + 1], sample_rate, frame_rate)[0]
    except ImportError:
      pass
    figure(f'{prefix}f0_loudness/{i}', curves_figure(f0_curves, ld_curves, frame_rate), step)
