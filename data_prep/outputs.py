"""What a preparation writes besides the shards: output names, the JSON reports, and the JSON form of the
statistics passed between the Beam workers and the driver."""
import math
import os

import numpy as np

from ddsp import file_utils
from ddsp.data_prep import statistics

REPORT_NAME = 'prepare_report.json'
STATS_NAME = 'dataset_statistics.json'
SHARD_TEMPLATE = '-SSSSS-of-NNNNN'
SHARD_GLOB = '-?????-of-?????'


def gfile():
  """`tf.io.gfile` (TensorFlow imported on first use): local paths and URLs alike."""
  import tensorflow as tf
  return tf.io.gfile


def write_json_element(obj, path):
  """Writes one combined Beam element (a results dict, a StatsAccumulator or a list of written files) as
  strict JSON for the driver to read back (`stats_from_state` turns the statistics back into an accumulator)."""
  if isinstance(obj, statistics.StatsAccumulator):
    obj = {'__stats__': True, 'voiced_confidence': obj.voiced_confidence, 'state': _stats_state(obj)}
  file_utils.write_json(path, obj, sort_keys=False, allow_nan=False)


def _stats_state(acc):
  return {k: (v.tolist() if isinstance(v, np.ndarray) else (None if isinstance(v, float) and
                                                              not math.isfinite(v) else v))
          for k, v in vars(acc).items()}


def stats_from_state(d):
  """The StatsAccumulator written by `write_json_element` (parsed JSON)."""
  acc = statistics.StatsAccumulator(d['voiced_confidence'])
  for k, v in d['state'].items():
    cur = getattr(acc, k)
    if isinstance(cur, np.ndarray):
      setattr(acc, k, np.asarray(v, np.int64))
    elif v is None:
      setattr(acc, k, math.inf if k.endswith('_min') else -math.inf)
    else:
      setattr(acc, k, v)
  return acc


def eval_prefix(output_tfrecord_path):
  """Prefix of the eval shards: `<dir>/<stem>-eval<ext>` (`/d/train.tfrecord` -> `/d/train-eval.tfrecord`),
  or `<path>.eval` without an extension. Never `<output>-...`: Beam's writer deletes existing files matching
  `<prefix>-*-of-NNNNN` and a glob `<output>*` must not pick up eval shards."""
  directory, base = os.path.split(output_tfrecord_path)
  stem, ext = os.path.splitext(base)
  name = f'{stem}-eval{ext}' if ext and stem else f'{base}.eval'
  return os.path.join(directory, name) if directory else name


def output_paths(output_tfrecord_path):
  """Names of everything a preparation writes for `output_tfrecord_path`."""
  directory = os.path.dirname(output_tfrecord_path) or '.'
  return {
      'train_glob': output_tfrecord_path + SHARD_GLOB,
      'eval_glob': eval_prefix(output_tfrecord_path) + SHARD_GLOB,
      'report': os.path.join(directory, REPORT_NAME),
      'statistics': os.path.join(directory, STATS_NAME),
  }


def existing_outputs(output_tfrecord_path):
  """Files a new preparation to `output_tfrecord_path` would replace."""
  fs = gfile()
  paths = output_paths(output_tfrecord_path)
  found = []
  for key in ('train_glob', 'eval_glob'):
    found += fs.glob(paths[key])
  for key in ('report', 'statistics'):
    if fs.exists(paths[key]):
      found.append(paths[key])
  return sorted(found)
