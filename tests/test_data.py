"""Tests of the data providers (`ddsp.training.data`) and the dataset gin files."""
import glob
import os

import gin
import numpy as np
import pytest
import tensorflow as tf

from ddsp.data_prep import examples
from ddsp.data_prep import pipeline
from ddsp.training import data

GIN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'gin', 'datasets')


def write_windows(path, n, example_secs=1, sample_rate=16000, frame_rate=250, seed=0, prefix='src',
                  labels_fn=None):
  """Writes `n` records in the ddsp_prepare_tfrecord schema; returns their arrays in file order."""
  config = pipeline.PrepareConfig(sample_rate=sample_rate, frame_rate=frame_rate, example_secs=example_secs)
  rs = np.random.RandomState(seed)
  rows = []
  with tf.io.TFRecordWriter(str(path)) as w:
    for i in range(n):
      row = {'audio': rs.uniform(-1, 1, config.n_samples).astype(np.float32),
             'f0_hz': rs.uniform(50, 1000, config.n_frames).astype(np.float32),
             'f0_confidence': rs.uniform(0, 1, config.n_frames).astype(np.float32),
             'loudness_db': rs.uniform(-120, 0, config.n_frames).astype(np.float32),
             'source_id': f'{prefix}-{i}'}
      labels = labels_fn(i) if labels_fn else None
      w.write(examples.make_example(row['audio'], row['f0_hz'], row['f0_confidence'], row['loudness_db'],
                                    config, row['source_id'], 0, labels))
      rows.append(row)
  return rows


@pytest.fixture
def shards(tmp_path):
  """3 shards of 4 one-second records each; rows in sorted-file order."""
  rows = []
  for s in range(3):
    rows += write_windows(tmp_path / f'train.tfrecord-{s:05d}-of-00003', 4, seed=s, prefix=f's{s}')
  return str(tmp_path / 'train.tfrecord-*'), rows


def test_tfrecord_round_trip_static_shapes_deterministic_eval(shards):
  pattern, rows = shards
  provider = data.TFRecordProvider(pattern, example_secs=1, with_source_id=True)
  ds = provider.get_batch(4, shuffle=False, repeats=1)
  spec = ds.element_spec
  assert spec['audio'].shape == (4, 16000) and spec['f0_hz'].shape == (4, 250)
  assert spec['loudness_db'].shape == spec['f0_confidence'].shape == (4, 250)
  got = [b for b in ds]
  assert len(got) == 3
  flat = {k: np.concatenate([b[k].numpy() for b in got]) for k in got[0]}
  for i, row in enumerate(rows):  # deterministic order: sorted files, records in file order
    assert flat['source_id'][i].decode() == row['source_id']
    for k in ('audio', 'f0_hz', 'f0_confidence', 'loudness_db'):
      np.testing.assert_array_equal(flat[k][i], row[k])
  again = [b['source_id'].numpy().tolist() for b in provider.get_batch(4, shuffle=False, repeats=1)]
  assert again == [b['source_id'].numpy().tolist() for b in got]


def test_shuffle_repeat_and_unbatched(shards):
  pattern, rows = shards
  provider = data.TFRecordProvider(pattern, example_secs=1, with_source_id=True, shuffle_buffer_size=12)
  ids = [x['source_id'].numpy().decode() for x in provider.get_dataset(shuffle=True, repeats=2)]
  names = [r['source_id'] for r in rows]
  assert sorted(ids) == sorted(names * 2)
  assert ids[:12] != names  # shuffled (12! orders; the sorted one has negligible probability)
  assert sorted(ids[:12]) == sorted(names)  # each epoch is a permutation
  forever = provider.get_batch(5, shuffle=True)  # repeats=-1
  assert len(list(forever.take(7))) == 7


@pytest.mark.parametrize('n_pipelines', [2, 5])  # 3 files: by file (2 pipelines) or by record (5)
def test_sharding_for_tf_distribute(shards, n_pipelines):
  pattern, rows = shards
  provider = data.TFRecordProvider(pattern, example_secs=1, with_source_id=True)
  seen = []
  for pid in range(n_pipelines):
    ctx = tf.distribute.InputContext(num_input_pipelines=n_pipelines, input_pipeline_id=pid,
                                     num_replicas_in_sync=n_pipelines)
    ds = provider.get_dataset(2 * n_pipelines, shuffle=False, repeats=1, input_context=ctx,
                              drop_remainder=False)
    ids = [i.decode() for b in ds for i in b['source_id'].numpy()]
    assert all(b['audio'].shape[0] <= 2 for b in ds)  # per-replica batch = global / replicas
    seen.append(ids)
  flat = [i for ids in seen for i in ids]
  assert sorted(flat) == sorted(r['source_id'] for r in rows) and len(set(flat)) == len(flat)


def test_distribute_datasets_from_function(shards):
  pattern, _ = shards
  provider = data.TFRecordProvider(pattern, example_secs=1)
  strategy = tf.distribute.OneDeviceStrategy('/cpu:0')
  dist = strategy.distribute_datasets_from_function(provider.dataset_fn(4, shuffle=False, repeats=1))
  batches = list(dist)
  assert len(batches) == 3 and batches[0]['audio'].shape == (4, 16000)


def test_clear_errors(tmp_path, shards):
  pattern, _ = shards
  with pytest.raises(FileNotFoundError, match='no file matches'):
    data.TFRecordProvider(str(tmp_path / 'nothing-*'), example_secs=1).get_batch(2)
  with pytest.raises(ValueError, match='needs a file_pattern'):
    data.TFRecordProvider().get_batch(2)
  with pytest.raises(ValueError, match=r'example_secs = 1'):
    data.TFRecordProvider(pattern, example_secs=4).get_batch(2)
  with pytest.raises(ValueError, match='frame_rate'):
    data.TFRecordProvider(pattern, example_secs=1, frame_rate=200).get_batch(2)
  with pytest.raises(ValueError, match='multiple of frame_rate'):
    data.TFRecordProvider(pattern, sample_rate=16000, frame_rate=300)


def test_nsynth_tfrecord_provider_applies_the_paper_filter(tmp_path):
  # (pitch, instrument_source): kept iff acoustic and 24 <= pitch <= 84.
  notes = [(60, 0), (24, 0), (84, 0), (23, 0), (85, 0), (60, 1), (60, 2)]

  def labels(i):
    p, src = notes[i]
    return {'pitch': [p], 'velocity': [75], 'instrument': [i], 'instrument_family': [4],
            'instrument_source': [src], 'qualities': [i % 2] * 10, 'note_str': f'note-{i}'}

  write_windows(tmp_path / 'nsynth.tfrecord-00000-of-00001', len(notes), example_secs=4, labels_fn=labels)
  provider = data.NSynthTFRecordProvider(str(tmp_path / 'nsynth.tfrecord-*'), with_source_id=True)
  got = list(provider.get_dataset(shuffle=False, repeats=1))
  assert [int(x['pitch']) for x in got] == [60, 24, 84]
  assert all(int(x['instrument_source']) == 0 for x in got)
  assert got[1]['qualities'].numpy().tolist() == [1] * 10 and got[1]['note_str'].numpy() == b'note-1'
  wide = data.NSynthTFRecordProvider(str(tmp_path / 'nsynth.tfrecord-*'), acoustic_only=False, min_pitch=0,
                                     max_pitch=127)
  assert len(list(wide.get_dataset(shuffle=False, repeats=1))) == 7
  # Plain windows (no labels) are refused with the reason.
  write_windows(tmp_path / 'plain.tfrecord', 2, example_secs=4)
  with pytest.raises(ValueError, match='NSynth labels'):
    data.NSynthTFRecordProvider(str(tmp_path / 'plain.tfrecord')).get_batch(1)


def _fake_tfds_nsynth(data_dir):
  """A tfds-prepared dataset with NSynth's 'gansynth_subset.f0_and_loudness' features, built locally."""
  tfds = pytest.importorskip('tensorflow_datasets')
  qualities = data.NSYNTH_QUALITIES

  with tfds.core.registered.skip_registration():
    class FakeNsynth(tfds.core.GeneratorBasedBuilder):
      """Same features as tfds' nsynth/gansynth_subset.f0_and_loudness, 3 + 2 generated notes."""
      VERSION = tfds.core.Version('2.3.3')

      def _info(self):
        shp = (1000,)
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            'id': tf.string,
            'audio': tfds.features.Audio(shape=(64000,), dtype=np.float32, sample_rate=16000),
            'pitch': tfds.features.ClassLabel(num_classes=128),
            'velocity': tfds.features.ClassLabel(num_classes=128),
            'instrument': {'label': tfds.features.ClassLabel(num_classes=1006),
                           'family': tfds.features.ClassLabel(num_classes=11),
                           'source': tfds.features.ClassLabel(names=['acoustic', 'electronic', 'synthetic'])},
            'qualities': {q: tf.bool for q in qualities},
            'f0': {'hz': tfds.features.Tensor(shape=shp, dtype=np.float32),
                   'midi': tfds.features.Tensor(shape=shp, dtype=np.float32),
                   'confidence': tfds.features.Tensor(shape=shp, dtype=np.float32)},
            'loudness': {'db': tfds.features.Tensor(shape=shp, dtype=np.float32)}}))

      def _split_generators(self, dl_manager):
        del dl_manager
        return {'train': self._generate_examples(3), 'test': self._generate_examples(2)}

      def _generate_examples(self, n):
        for i in range(n):
          yield f'n{i}', {
              'id': f'note-{i}', 'audio': np.full(64000, 0.01 * i, np.float32), 'pitch': 60 + i,
              'velocity': 100, 'instrument': {'label': 5, 'family': 2, 'source': 'acoustic'},
              'qualities': {q: j % 2 == 0 for j, q in enumerate(qualities)},
              'f0': {'hz': np.full(1000, 100. + i, np.float32), 'midi': np.zeros(1000, np.float32),
                     'confidence': np.ones(1000, np.float32)},
              'loudness': {'db': np.full(1000, -20. - i, np.float32)}}

    builder = FakeNsynth(data_dir=str(data_dir / 'build'))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(try_download_gcs=False))
  target = data_dir / 'tfds' / 'nsynth' / 'gansynth_subset.f0_and_loudness'
  target.mkdir(parents=True)
  os.rename(builder.data_dir, target / '2.3.3')
  return str(data_dir / 'tfds')


def test_nsynth_tfds_reads_a_local_prepared_copy(tmp_path):
  data_dir = _fake_tfds_nsynth(tmp_path)
  provider = data.NSynthTfds(data_dir=data_dir, with_source_id=True)
  batch = next(iter(provider.get_batch(3, shuffle=False, repeats=1)))
  assert batch['audio'].shape == (3, 64000) and batch['f0_hz'].shape == (3, 1000)
  assert batch['qualities'].shape == (3, 10)
  for i in range(3):
    k = int(batch['note_str'][i].numpy().decode().split('-')[1])  # note-k was generated from k
    assert int(batch['pitch'][i]) == 60 + k
    assert float(batch['f0_hz'][i, 0]) == 100.0 + k and float(batch['loudness_db'][i, 7]) == -20.0 - k
    np.testing.assert_allclose(batch['audio'][i].numpy(), 0.01 * k, atol=1e-7)
    assert batch['qualities'][i].numpy().tolist() == [1, 0] * 5
  test_split = data.NSynthTfds(data_dir=data_dir, split='test')
  assert len(list(test_split.get_dataset(shuffle=False, repeats=1))) == 2


def test_nsynth_tfds_not_prepared_says_how(tmp_path):
  with pytest.raises(FileNotFoundError, match='never downloads'):
    data.NSynthTfds(data_dir=str(tmp_path)).get_batch(2)


def test_synthetic_provider_known_f0():
  provider = data.SyntheticProvider(n_examples=3, example_secs=1, midi_min=40, midi_max=80, seed=7)
  batch = next(iter(provider.get_batch(3, shuffle=False, repeats=1)))
  assert batch['audio'].shape == (3, 16000) and batch['f0_hz'].shape == (3, 250)
  assert batch['harmonic_distribution'].shape == (3, 250, 30)
  for i in range(3):
    audio, f0 = batch['audio'][i].numpy().astype(np.float64), batch['f0_hz'][i].numpy()
    assert 40 <= 69 + 12 * np.log2(f0.mean() / 440) <= 80
    # The strongest spectral peak of a middle 0.5 s is the fundamental (harmonic amplitudes k^-tilt).
    seg = audio[4000:12000] * np.hanning(8000)
    spec = np.abs(np.fft.rfft(seg, 8 * 8000))
    peak = np.fft.rfftfreq(8 * 8000, 1 / 16000)[np.argmax(spec)]
    f_mid = f0[62:188]
    assert f_mid.min() * 0.99 <= peak <= f_mid.max() * 1.01
    # Nothing above Nyquist was synthesised: the distribution is zero there and sums to 1.
    dist = batch['harmonic_distribution'][i].numpy()
    k = np.arange(1, 31)
    assert np.all(dist[k[None, :] * f0[:, None] >= 8000] == 0)
    np.testing.assert_allclose(dist.sum(-1), 1.0, rtol=1e-5)
    assert np.max(np.abs(audio)) <= 0.9 + 1e-6
  again = next(iter(provider.get_batch(3, shuffle=False, repeats=1)))
  np.testing.assert_array_equal(again['audio'].numpy(), batch['audio'].numpy())  # deterministic


@pytest.mark.parametrize('gin_file', sorted(glob.glob(os.path.join(GIN_DIR, '*.gin'))), ids=os.path.basename)
def test_dataset_gin_files_parse_and_build(gin_file, tmp_path):
  import ddsp.training  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import  (registers `train`)
  name = os.path.basename(gin_file)
  bindings = []
  if name == 'tfrecord.gin':
    write_windows(tmp_path / 'x.tfrecord-00000-of-00001', 2, example_secs=4)
    bindings = [f"TFRecordProvider.file_pattern = '{tmp_path}/x.tfrecord-*'"]
  elif name == 'nsynth_tfrecord.gin':
    write_windows(tmp_path / 'n.tfrecord-00000-of-00001', 2, example_secs=4, labels_fn=lambda i: {
        'pitch': [60], 'velocity': [1], 'instrument': [1], 'instrument_family': [1],
        'instrument_source': [0], 'qualities': [0] * 10})
    bindings = [f"NSynthTFRecordProvider.file_pattern = '{tmp_path}/n.tfrecord-*'"]
  elif name == 'nsynth_tfds.gin':
    bindings = [f"NSynthTfds.data_dir = '{_fake_tfds_nsynth(tmp_path)}'"]
  elif name == 'synthetic.gin':
    bindings = ['SyntheticProvider.n_examples = 2']
  # A dataset file reads the rates and window of the model file it completes (macros sample_rate,
  # frame_rate, example_secs): parsed after models/ae.gin (16 kHz, 250 frames/s, 4 s).
  model_file = os.path.join(os.path.dirname(GIN_DIR), 'models', 'ae.gin')
  with gin.unlock_config():
    gin.parse_config_files_and_bindings([model_file, gin_file], bindings)
  try:
    provider = gin.query_parameter('train.data_provider').scoped_configurable_fn()
    batch = next(iter(provider.get_batch(2, shuffle=False, repeats=1)))
    assert batch['audio'].shape == (2, 64000) and batch['f0_hz'].shape == (2, 1000)
  finally:
    gin.clear_config()


def test_nsynth_tfds_refuses_other_rates(tmp_path):
  provider = data.NSynthTfds(data_dir=_fake_tfds_nsynth(tmp_path), sample_rate=48000, frame_rate=50)
  with pytest.raises(ValueError, match='16000 Hz.*250 frames/s.*48000 Hz, 50 frames/s'):
    provider.get_batch(2)
