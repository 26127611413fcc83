"""An exported live step (`ddsp_export --streaming --with_features --format=tflite`) run on a recording.

The file holds the whole audio -> audio step (`ddsp.training.live.LiveModel`: causal loudness, CREPE f0 and
the model); `<file>.json` beside it (`export_lib.live_serving_function`) states the sample rate, the block
size, the latency and the layout of the state tensors. A plugin host does what `stream_tflite_file` does:
zero state, then one `tf.lite.Interpreter` call per block with the state fed back by name. The output is
aligned with the input (the stated latency removed), so it can be compared with `ddsp_stream` on the
Keras model sample by sample.
"""
import json
import os
import time
import warnings

import numpy as np

from ddsp import startup


def read_metadata(tflite_path):
  """The export's JSON (`<tflite_path>.json`) as a dict; ValueError naming the file when missing or not live."""
  meta_path = tflite_path + '.json'
  if not os.path.isfile(tflite_path):
    raise ValueError(f'No TFLite model at {tflite_path!r}.')
  try:
    with open(meta_path, encoding='utf-8') as f:
      meta = json.load(f)
  except (OSError, ValueError) as e:
    raise ValueError(f'Cannot read the export metadata {meta_path!r} ({e}); export with ddsp_export '
                     '--format=tflite --streaming --with_features, which writes it beside the model.') from e
  if not meta.get('with_features') or 'state' not in meta:
    raise ValueError(f'{tflite_path!r} is not a live audio -> audio export (its metadata has no '
                     "'with_features' state); export with ddsp_export --streaming --with_features.")
  return meta


class TfliteLivePlayer:
  """The exported live step: `process(audio [n]) -> audio [n]`, block by block, aligned with the input.

  Args:
    tflite_path: the `.tflite` file (its `.json` beside it).
    threads: interpreter threads (1 is what a plugin's audio thread would use).
  """

  def __init__(self, tflite_path, threads=1):
    import tensorflow as tf
    self.meta = read_metadata(tflite_path)
    self.sample_rate = int(self.meta['sample_rate'])
    self.block_size = int(self.meta['block_size'])
    self.latency = int(self.meta['latency'])
    self.total_latency = int(self.meta['total_latency'])
    batch = int(self.meta['inputs']['audio'][0])
    if batch != 1:
      raise ValueError(f'{tflite_path!r} was exported for batch {batch}; export with --batch_size=1 to play a file.')
    # tf.lite.Interpreter warns that it moves to the ai_edge_litert package in a later TensorFlow; it is
    # TensorFlow 2.2x's own interpreter here (constraints.txt), so the warning is not passed on to a user. In a
    # command, the interpreter's native note ("Created TensorFlow Lite XNNPACK delegate") is held back too.
    with warnings.catch_warnings(), startup.quiet_native_startup(probe_devices=False):
      warnings.filterwarnings('ignore', message=r'.*tf\.lite\.Interpreter is deprecated')
      interpreter = tf.lite.Interpreter(model_path=tflite_path, num_threads=int(threads))
      interpreter.allocate_tensors()  # applies the delegate now, inside the capture
      self._runner = interpreter.get_signature_runner()
    self._names = list(self.meta['state'])

  def initial_state(self):
    return {k: np.zeros(v['shape'], v['dtype']) for k, v in self.meta['state'].items()}

  def process(self, audio, progress=None):
    """Mono float32 `[n]` at the export's rate -> `[n]`, padded to cover the latency and shifted back."""
    x = np.asarray(audio, np.float32).reshape(-1)
    n = x.shape[0]
    n_blocks = -(-(n + self.latency) // self.block_size)
    padded = np.zeros(n_blocks * self.block_size, np.float32)
    padded[:n] = x
    state, outs = self.initial_state(), []
    for i in range(n_blocks):
      start = time.perf_counter()
      out = self._runner(audio=padded[np.newaxis, i * self.block_size:(i + 1) * self.block_size], **state)
      if progress is not None:
        progress(time.perf_counter() - start)
      outs.append(np.asarray(out['audio']).reshape(-1))
      state = {k: out[k] for k in self._names}
    return np.concatenate(outs)[self.latency:self.latency + n]


def stream_tflite_file(tflite_path, input_path, output_path, threads=1):
  """What `ddsp_stream --tflite` does: a file through the exported live step, written as an aligned WAV.

  Returns:
    dict: the `live.block_time_report` figures plus seconds, notes, sample_rate, block_size, latency,
    total_latency (samples and ms) and the export's look-ahead figures.

  Raises:
    ValueError (validation.InputError): no model or metadata, unreadable input.
  """
  from ddsp import file_utils
  from ddsp.training import features as features_lib
  from ddsp.training import live
  player = TfliteLivePlayer(tflite_path, threads)
  audio, notes = features_lib.read_input(input_path, player.sample_rate)
  times = []
  out = player.process(audio, progress=times.append)
  file_utils.write_wav(output_path, out, player.sample_rate)
  report = live.block_time_report(times, player.block_size, player.sample_rate)
  ms = 1e3 / player.sample_rate
  report.update(seconds=audio.shape[0] / player.sample_rate, notes=notes, sample_rate=player.sample_rate,
                block_size=player.block_size, latency=player.latency, latency_ms=player.latency * ms,
                total_latency=player.total_latency, total_latency_ms=player.total_latency * ms,
                lookahead_samples=dict(player.meta.get('lookahead_samples', {})))
  return report
