"""Data providers: `tf.data` pipelines of feature dicts for training and evaluation.

Every provider has:
  * `get_dataset(batch_size=None, shuffle=True, repeats=-1, input_context=None, drop_remainder=True)`:
    a `tf.data.Dataset` of feature dicts, shuffled (when `shuffle`), repeated (`repeats=-1`: forever),
    batched (when `batch_size`), prefetched. With `shuffle=False` the order is deterministic (files in
    sorted order, records in file order), which evaluation relies on.
  * `get_batch(batch_size, ...)`: the same with a required batch size.
  * `dataset_fn(batch_size, ...)`: a function of a `tf.distribute.InputContext`, for
    `strategy.distribute_datasets_from_function(provider.dataset_fn(global_batch_size))`.
  * `sample_rate`, `frame_rate`, `n_samples`, `n_frames` attributes.

With an `input_context`, `batch_size` is the global batch size: each input pipeline reads a disjoint
shard (by file when there are at least as many files as pipelines, else by record) and batches
`input_context.get_per_replica_batch_size(batch_size)` examples. Without one, a dataset of global
batches is returned (what `strategy.experimental_distribute_dataset` expects).

Feature shapes (static; the batch axis is static too with `drop_remainder=True`):
  audio [batch, n_samples] float32; f0_hz, f0_confidence, loudness_db [batch, n_frames] float32;
  NSynth labels: pitch, velocity, instrument, instrument_family, instrument_source [batch] int64,
  qualities [batch, 10] int64; optional source_id / note_str [batch] string.
with n_samples = example_secs * sample_rate and n_frames = example_secs * frame_rate.

Providers (gin-registered, e.g. `train.data_provider = @data.TFRecordProvider()`):
  TFRecordProvider: records written by `ddsp_prepare_tfrecord`.
  NSynthTFRecordProvider: the NSynth cache written by `ddsp_prepare_tfrecord --nsynth` (the original
    NSynth records plus f0 and loudness), with the paper's filter (acoustic, MIDI pitch 24..84).
  NSynthTfds: NSynth prepared by `tensorflow_datasets` in a local data dir (never downloads).
  SyntheticProvider: random harmonic-plus-noise notes with known f0 (tests, self-supervised f0).
"""
import math
import os

import gin
import tensorflow as tf

_AUTOTUNE = tf.data.AUTOTUNE
NSYNTH_TFDS_GEOMETRY = (16000, 250, 64000)  # sample_rate, frame_rate, n_samples of tfds' NSynth
NSYNTH_QUALITIES = ('bright', 'dark', 'distortion', 'fast_decay', 'long_release', 'multiphonic',
                    'nonlinear_env', 'percussive', 'reverb', 'tempo-synced')


class DataProvider:
  """Base class: subclasses implement `_examples(shuffle, input_context)` (unbatched, sharded)."""

  def __init__(self, sample_rate=16000, frame_rate=250, example_secs=4, shuffle_buffer_size=1000):
    if sample_rate <= 0 or frame_rate <= 0 or example_secs <= 0:
      raise ValueError(f'sample_rate, frame_rate and example_secs must be positive, got {sample_rate}, '
                       f'{frame_rate}, {example_secs}.')
    if sample_rate % frame_rate:
      raise ValueError(f'sample_rate ({sample_rate}) must be a multiple of frame_rate ({frame_rate}).')
    for name, value in (('example_secs * sample_rate', example_secs * sample_rate),
                        ('example_secs * frame_rate', example_secs * frame_rate)):
      if abs(value - round(value)) > 1e-6:
        raise ValueError(f'{name} must be a whole number, got {value}.')
    self.sample_rate = int(sample_rate)
    self.frame_rate = int(frame_rate)
    self.example_secs = example_secs
    self.n_samples = int(round(example_secs * sample_rate))
    self.n_frames = int(round(example_secs * frame_rate))
    self.shuffle_buffer_size = int(shuffle_buffer_size)

  # -- to implement ---------------------------------------------------------------------------------------
  def _examples(self, shuffle, input_context):
    raise NotImplementedError

  # -- public ---------------------------------------------------------------------------------------------
  def get_dataset(self, batch_size=None, shuffle=True, repeats=-1, input_context=None,
                  drop_remainder=True):
    """A dataset of feature dicts (see the module docstring for shapes).

    Args:
      batch_size: global batch size; None yields single examples.
      shuffle: shuffle files and examples (reshuffled every epoch); False gives a deterministic order.
      repeats: epochs; -1 or None repeats forever.
      input_context: a `tf.distribute.InputContext` to shard the input and use the per-replica batch size.
      drop_remainder: drop a last partial batch, so that the batch axis is static.

    Returns:
      A `tf.data.Dataset`.
    """
    ds = self._examples(shuffle, input_context)
    if shuffle and self.shuffle_buffer_size > 1:
      ds = ds.shuffle(self.shuffle_buffer_size, reshuffle_each_iteration=True)
    if repeats is None or repeats < 0:
      ds = ds.repeat()
    elif repeats != 1:
      ds = ds.repeat(repeats)
    if batch_size:
      per_pipeline = int(batch_size)
      if input_context is not None:
        per_pipeline = input_context.get_per_replica_batch_size(int(batch_size))
      ds = ds.batch(per_pipeline, drop_remainder=drop_remainder)
    options = tf.data.Options()
    options.deterministic = not shuffle
    ds = ds.with_options(options)
    return ds.prefetch(_AUTOTUNE)

  def get_batch(self, batch_size, shuffle=True, repeats=-1, input_context=None, drop_remainder=True):
    """`get_dataset` with a required batch size: batches of feature dicts."""
    if not batch_size or batch_size < 1:
      raise ValueError(f'batch_size must be a positive integer, got {batch_size!r}.')
    return self.get_dataset(batch_size, shuffle, repeats, input_context, drop_remainder)

  def dataset_fn(self, batch_size, shuffle=True, repeats=-1, drop_remainder=True):
    """`input_context -> dataset`, for `strategy.distribute_datasets_from_function` (global batch size)."""
    def fn(input_context=None):
      return self.get_dataset(batch_size, shuffle, repeats, input_context, drop_remainder)
    return fn

  # -- helpers --------------------------------------------------------------------------------------------
  @staticmethod
  def _shard(ds, input_context):
    if input_context is not None and input_context.num_input_pipelines > 1:
      ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    return ds


# ------------------------------------------------------------------------------------------------------------
# TFRecords from ddsp_prepare_tfrecord.
# ------------------------------------------------------------------------------------------------------------
def _glob_files(file_pattern, owner):
  if not file_pattern:
    raise ValueError(f'{owner} needs a file_pattern (e.g. "/data/train.tfrecord-*"); bind it in gin with '
                     f'{owner}.file_pattern = ...')
  patterns = file_pattern if isinstance(file_pattern, (list, tuple)) else str(file_pattern).split(',')
  files, unmatched = set(), []
  for p in patterns:
    p = p.strip()
    if not p:
      continue
    matches = tf.io.gfile.glob(p)
    if not matches:
      unmatched.append(p)
    files.update(matches)
  if unmatched or not files:
    raise FileNotFoundError(f'{owner}: no file matches {", ".join(repr(p) for p in unmatched or patterns)}. '
                            'Prepare data with ddsp_prepare_tfrecord or fix the file_pattern.')
  return sorted(files)


def _first_example(files):
  """The first tf.train.Example found in `files` (or None), read eagerly."""
  for f in files:
    for raw in tf.data.TFRecordDataset(f).take(1):
      return f, tf.train.Example.FromString(raw.numpy())
  return None, None


@gin.register
class TFRecordProvider(DataProvider):
  """Windows written by `ddsp_prepare_tfrecord`.

  Args:
    file_pattern: glob(s) of the shards, a comma-separated string or a list (e.g.
      '/data/train.tfrecord-*'; eval shards are '/data/train-eval.tfrecord-*').
    example_secs: window length the data was prepared with.
    sample_rate: audio rate the data was prepared with.
    frame_rate: feature frame rate the data was prepared with.
    with_source_id: also return `source_id` [batch] (string).
    shuffle_buffer_size: examples in the shuffle buffer (each 4 s example is ~270 kB).
    check_records: read one record up front and raise a clear error if its shapes or rates differ from
      this provider's settings (instead of a parse error deep inside tf.data).
  """

  def __init__(self, file_pattern=None, example_secs=4, sample_rate=16000, frame_rate=250,
               with_source_id=False, shuffle_buffer_size=1000, check_records=True):
    super().__init__(sample_rate, frame_rate, example_secs, shuffle_buffer_size)
    self.file_pattern = file_pattern
    self.with_source_id = with_source_id
    self.check_records = check_records

  @property
  def features_dict(self):
    """The tf.io parsing spec."""
    feats = {
        'audio': tf.io.FixedLenFeature([self.n_samples], tf.float32),
        'f0_hz': tf.io.FixedLenFeature([self.n_frames], tf.float32),
        'f0_confidence': tf.io.FixedLenFeature([self.n_frames], tf.float32),
        'loudness_db': tf.io.FixedLenFeature([self.n_frames], tf.float32),
    }
    if self.with_source_id:
      feats['source_id'] = tf.io.FixedLenFeature([], tf.string, default_value='')
    return feats

  def _check(self, files):
    path, ex = _first_example(files)
    if ex is None:
      return
    f = ex.features.feature
    name = type(self).__name__
    missing = [k for k in ('audio', 'f0_hz', 'f0_confidence', 'loudness_db') if k not in f]
    if missing:
      hint = ''
      if 'instrument_source' in f and 'f0_hz' in missing:
        hint = (' These look like original NSynth records: compute f0 and loudness once with '
                '`ddsp_prepare_tfrecord --nsynth --input_audio_filepatterns=<nsynth files> '
                '--output_tfrecord_path=<cache>` and point file_pattern at the cache.')
      raise ValueError(f'{name}: records in {path} lack {missing}.{hint}')
    n_audio, n_f0 = len(f['audio'].float_list.value), len(f['f0_hz'].float_list.value)
    rates = {}
    for key in ('sample_rate', 'frame_rate'):
      if key in f:
        v = f[key].int64_list.value or f[key].float_list.value
        rates[key] = v[0] if v else None
    if rates.get('sample_rate') not in (None, self.sample_rate):
      raise ValueError(f'{name}: {path} was prepared at sample_rate={rates["sample_rate"]}, but the provider '
                       f'has sample_rate={self.sample_rate}; set {name}.sample_rate = {rates["sample_rate"]}.')
    if rates.get('frame_rate') not in (None, self.frame_rate):
      raise ValueError(f'{name}: {path} was prepared at frame_rate={rates["frame_rate"]}, but the provider '
                       f'has frame_rate={self.frame_rate}; set {name}.frame_rate = {rates["frame_rate"]}.')
    if n_audio != self.n_samples or n_f0 != self.n_frames:
      secs = n_audio / float(self.sample_rate)
      raise ValueError(f'{name}: records in {path} hold {n_audio} audio samples and {n_f0} frames, but '
                       f'example_secs={self.example_secs} at {self.sample_rate} Hz / {self.frame_rate} frames/s '
                       f'expects {self.n_samples} and {self.n_frames}; set {name}.example_secs = {secs:g}.')

  def _parse(self, record):
    return tf.io.parse_single_example(record, self.features_dict)

  def _files(self):
    files = _glob_files(self.file_pattern, type(self).__name__)
    if self.check_records:
      self._check(files)
    return files

  def _examples(self, shuffle, input_context):
    files = self._files()
    n_pipelines = input_context.num_input_pipelines if input_context is not None else 1
    shard_files = n_pipelines > 1 and len(files) >= n_pipelines
    fds = tf.data.Dataset.from_tensor_slices(files)
    if shard_files:
      fds = fds.shard(n_pipelines, input_context.input_pipeline_id)
    if shuffle:
      fds = fds.shuffle(len(files), reshuffle_each_iteration=True)
      ds = fds.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), 16), block_length=1,
                          num_parallel_calls=_AUTOTUNE, deterministic=False)
    else:
      ds = fds.flat_map(tf.data.TFRecordDataset)  # Sorted files, records in order: deterministic.
    if n_pipelines > 1 and not shard_files:
      ds = ds.shard(n_pipelines, input_context.input_pipeline_id)
    return ds.map(self._parse, num_parallel_calls=_AUTOTUNE, deterministic=not shuffle)


@gin.register
class NSynthTFRecordProvider(TFRecordProvider):
  """The NSynth cache written by `ddsp_prepare_tfrecord --nsynth` (original NSynth records + f0, loudness).

  Applies the paper's filter on reading too (acoustic instruments, MIDI pitch 24..84), so a cache prepared
  with a wider filter still yields the paper's subset unless the filter arguments are changed.

  Args:
    file_pattern: glob(s) of the cache shards.
    example_secs, sample_rate, frame_rate: as prepared (NSynth notes: 4 s at 16 kHz, 250 frames/s).
    acoustic_only: keep instrument_source == 0 (acoustic) only.
    min_pitch, max_pitch: MIDI pitch range kept, inclusive.
    with_source_id: also return `note_str` [batch] (string).
    shuffle_buffer_size, check_records: as for TFRecordProvider.
  """

  def __init__(self, file_pattern=None, example_secs=4, sample_rate=16000, frame_rate=250,
               acoustic_only=True, min_pitch=24, max_pitch=84, with_source_id=False,
               shuffle_buffer_size=1000, check_records=True):
    super().__init__(file_pattern, example_secs, sample_rate, frame_rate, False, shuffle_buffer_size,
                     check_records)
    self.acoustic_only = acoustic_only
    self.min_pitch, self.max_pitch = int(min_pitch), int(max_pitch)
    self.with_note_str = with_source_id

  @property
  def features_dict(self):
    feats = dict(super().features_dict)
    for key in ('pitch', 'velocity', 'instrument', 'instrument_family', 'instrument_source'):
      feats[key] = tf.io.FixedLenFeature([], tf.int64)
    feats['qualities'] = tf.io.FixedLenFeature([len(NSYNTH_QUALITIES)], tf.int64)
    if self.with_note_str:
      feats['note_str'] = tf.io.FixedLenFeature([], tf.string)
    return feats

  def _check(self, files):
    super()._check(files)
    path, ex = _first_example(files)
    if ex is not None:
      missing = [k for k in ('pitch', 'velocity', 'instrument', 'instrument_family', 'instrument_source',
                             'qualities') if k not in ex.features.feature]
      if missing:
        raise ValueError(f'NSynthTFRecordProvider: records in {path} lack the NSynth labels {missing}; were '
                         'they prepared with `ddsp_prepare_tfrecord --nsynth`? (Use TFRecordProvider for '
                         'other audio.)')

  def _keep(self, ex):
    keep = (ex['pitch'] >= self.min_pitch) & (ex['pitch'] <= self.max_pitch)
    if self.acoustic_only:
      keep &= tf.equal(ex['instrument_source'], 0)
    return keep

  def _examples(self, shuffle, input_context):
    return super()._examples(shuffle, input_context).filter(self._keep)


# ------------------------------------------------------------------------------------------------------------
# NSynth from tensorflow_datasets.
# ------------------------------------------------------------------------------------------------------------
@gin.register
class NSynthTfds(DataProvider):
  """NSynth as prepared by `tensorflow_datasets` in a local data dir; nothing is ever downloaded.

  The default config, 'nsynth/gansynth_subset.f0_and_loudness', is the paper's subset (acoustic, MIDI
  24..84) with CREPE f0 and loudness at 250 frames/s. Prepare it once where network access is allowed
  (`tfds build nsynth/gansynth_subset.f0_and_loudness --data_dir=DIR`, or copy a prepared folder), then
  point `data_dir` at it. Other configs ('nsynth/full', 'nsynth/gansynth_subset') lack f0 and loudness;
  use `ddsp_prepare_tfrecord --nsynth` on the original records for those.

  Args:
    name: 'nsynth/<config>' or 'nsynth/<config>:<version>'.
    split: 'train', 'valid' or 'test' (tfds slicing such as 'train[:10%]' works).
    data_dir: the tfds data dir holding `nsynth/<config>/<version>/`; default $TFDS_DATA_DIR or
      ~/tensorflow_datasets.
    sample_rate, frame_rate, example_secs: NSynth's (16 kHz, 250 frames/s, 4 s).
    with_source_id: also return `note_str` [batch] (the NSynth id, string).
    shuffle_buffer_size: examples in the shuffle buffer.
  """

  def __init__(self, name='nsynth/gansynth_subset.f0_and_loudness', split='train', data_dir=None,
               sample_rate=16000, frame_rate=250, example_secs=4, with_source_id=False,
               shuffle_buffer_size=1000):
    super().__init__(sample_rate, frame_rate, example_secs, shuffle_buffer_size)
    self.name, self.split, self.with_source_id = name, split, with_source_id
    self.data_dir = data_dir or os.environ.get('TFDS_DATA_DIR') or os.path.join(
        os.path.expanduser('~'), 'tensorflow_datasets')

  def _prepared_dir(self):
    name, _, version = self.name.partition(':')
    root = os.path.join(self.data_dir, *name.split('/'))
    candidates = sorted(tf.io.gfile.glob(os.path.join(root, version or '*', 'dataset_info.json')),
                        key=lambda p: [int(x) if x.isdigit() else x for x in
                                       os.path.basename(os.path.dirname(p)).split('.')])
    if not candidates:
      raise FileNotFoundError(
          f"NSynthTfds: '{self.name}' is not prepared in data_dir {self.data_dir!r} (looked for "
          f"{os.path.join(root, version or '<version>', 'dataset_info.json')}). This library never downloads "
          f"data. Prepare it once where the NSynth download is reachable, e.g. `pip install "
          f"tensorflow-datasets apache-beam crepe && tfds build {name} --data_dir={self.data_dir}` (Beam "
          f"based, large), or copy an already prepared folder there and set NSynthTfds.data_dir; or prepare "
          f"the original NSynth TFRecords with `ddsp_prepare_tfrecord --nsynth` and use "
          f"NSynthTFRecordProvider.")
    return os.path.dirname(candidates[-1])

  def _builder(self):
    directory = self._prepared_dir()
    try:
      import tensorflow_datasets as tfds
    except ImportError as e:
      raise ImportError('NSynthTfds needs tensorflow_datasets: pip install tensorflow-datasets '
                        '(or use NSynthTFRecordProvider, which needs nothing extra).') from e
    return tfds, tfds.builder_from_directory(directory)

  def _convert(self, ex):
    if 'f0' not in ex or 'loudness' not in ex:
      raise ValueError(f"NSynthTfds: '{self.name}' has no f0/loudness features; use the "
                       "'nsynth/gansynth_subset.f0_and_loudness' config or NSynthTFRecordProvider.")
    out = {
        'audio': tf.ensure_shape(tf.cast(ex['audio'], tf.float32), [self.n_samples]),
        'f0_hz': tf.ensure_shape(ex['f0']['hz'], [self.n_frames]),
        'f0_confidence': tf.ensure_shape(ex['f0']['confidence'], [self.n_frames]),
        'loudness_db': tf.ensure_shape(ex['loudness']['db'], [self.n_frames]),
        'pitch': tf.cast(ex['pitch'], tf.int64),
        'velocity': tf.cast(ex['velocity'], tf.int64),
        'instrument': tf.cast(ex['instrument']['label'], tf.int64),
        'instrument_family': tf.cast(ex['instrument']['family'], tf.int64),
        'instrument_source': tf.cast(ex['instrument']['source'], tf.int64),
        'qualities': tf.stack([tf.cast(ex['qualities'][q], tf.int64) for q in NSYNTH_QUALITIES]),
    }
    if self.with_source_id:
      out['note_str'] = ex['id']
    return out

  def _examples(self, shuffle, input_context):
    if (self.sample_rate, self.frame_rate, self.n_samples) != NSYNTH_TFDS_GEOMETRY:
      raise ValueError(f'NSynthTfds: tensorflow_datasets\' NSynth is 4 s at 16000 Hz with f0/loudness at 250 '
                       f'frames/s, but the provider asks for {self.example_secs:g} s at {self.sample_rate} Hz, '
                       f'{self.frame_rate} frames/s (the gin macros sample_rate, frame_rate, example_secs); '
                       'prepare NSynth at other rates with `ddsp_prepare_tfrecord --nsynth` and use '
                       'NSynthTFRecordProvider.')
    tfds, builder = self._builder()
    read_config = tfds.ReadConfig(input_context=input_context, shuffle_reshuffle_each_iteration=True,
                                  interleave_cycle_length=16 if shuffle else 1)
    ds = builder.as_dataset(split=self.split, shuffle_files=shuffle, read_config=read_config)
    return ds.map(self._convert, num_parallel_calls=_AUTOTUNE, deterministic=not shuffle)


# ------------------------------------------------------------------------------------------------------------
# Synthetic notes.
# ------------------------------------------------------------------------------------------------------------
@gin.register
class SyntheticProvider(DataProvider):
  """Random harmonic-plus-noise notes with known f0 (for tests and self-supervised f0 pretraining).

  Example i is a deterministic function of (seed, i): f0 = midi_to_hz(m) with m uniform in
  [midi_min, midi_max], with a vibrato of random rate (3..7 Hz) and depth (0..vibrato_semitones);
  harmonic k has amplitude k^-tilt (tilt uniform in [0.5, 2]) and is dropped at or above Nyquist; the
  amplitude envelope rises, holds and decays; white noise at noise_db (uniform) relative to the harmonic
  part is added; the peak is random in [0.1, 0.9].

  Features: audio [n_samples]; f0_hz [n_frames] (the true f0 at each frame centre); f0_confidence
  [n_frames] (1 where the note sounds above -60 dB of its peak envelope, else 0); loudness_db [n_frames]
  (`ddsp.spectral_ops.compute_loudness` of the audio); harmonic_distribution [n_frames, n_harmonics]
  (the true normalised harmonic amplitudes, 0 above Nyquist).

  Args:
    n_examples: examples per epoch.
    example_secs, sample_rate, frame_rate: sizes.
    midi_min, midi_max: pitch range (MIDI).
    n_harmonics: harmonics per note.
    vibrato_semitones: maximum vibrato depth.
    noise_db_range: (low, high) dB of the noise relative to the harmonic signal's RMS.
    seed: dataset seed.
    shuffle_buffer_size: examples in the shuffle buffer.
  """

  def __init__(self, n_examples=1000, example_secs=4, sample_rate=16000, frame_rate=250, midi_min=36.0,
               midi_max=84.0, n_harmonics=30, vibrato_semitones=0.5, noise_db_range=(-50.0, -20.0), seed=0,
               shuffle_buffer_size=100):
    super().__init__(sample_rate, frame_rate, example_secs, shuffle_buffer_size)
    if not 0 < midi_min <= midi_max < 128:
      raise ValueError(f'Need 0 < midi_min <= midi_max < 128, got {midi_min}, {midi_max}.')
    if n_examples < 1 or n_harmonics < 1:
      raise ValueError('n_examples and n_harmonics must be >= 1.')
    self.n_examples = int(n_examples)
    self.midi_min, self.midi_max = float(midi_min), float(midi_max)
    self.n_harmonics = int(n_harmonics)
    self.vibrato_semitones = float(vibrato_semitones)
    self.noise_db_range = tuple(float(x) for x in noise_db_range)
    self.seed = int(seed)

  def _make(self, index):
    sr, n, hop = self.sample_rate, self.n_samples, self.sample_rate // self.frame_rate
    seeds = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(index, tf.int64)])
    u = tf.random.stateless_uniform([8], seed=seeds, dtype=tf.float64)
    midi = self.midi_min + (self.midi_max - self.midi_min) * u[0]
    vib_rate = 3.0 + 4.0 * u[1]
    vib_depth = self.vibrato_semitones * u[2]
    vib_phase = 2.0 * math.pi * u[3]
    tilt = 0.5 + 1.5 * u[4]
    noise_db = self.noise_db_range[0] + (self.noise_db_range[1] - self.noise_db_range[0]) * u[5]
    peak = 0.1 + 0.8 * u[6]
    t = tf.range(n, dtype=tf.float64) / sr
    f0 = 440.0 * tf.pow(tf.constant(2.0, tf.float64),
                        (midi + vib_depth * tf.sin(2.0 * math.pi * vib_rate * t + vib_phase) - 69.0) / 12.0)
    phase = tf.math.floormod(tf.cumsum(2.0 * math.pi * f0 / sr, exclusive=True), 2.0 * math.pi)
    k = tf.range(1, self.n_harmonics + 1, dtype=tf.float64)
    amps = tf.pow(k, -tilt)
    below = tf.cast(k[tf.newaxis, :] * f0[:, tf.newaxis] < sr / 2.0, tf.float64)  # [n, K]
    harmonic = tf.reduce_sum(amps * below * tf.sin(k * phase[:, tf.newaxis]), axis=-1)
    # Envelope: 50 ms attack, hold, decay over the last 30%, short release to silence at the end.
    attack = tf.minimum(t / 0.05, 1.0)
    dur = n / float(sr)
    decay = tf.where(t > 0.7 * dur, tf.exp(-(t - 0.7 * dur) / (0.1 * dur)), tf.ones_like(t))
    env = attack * decay
    harmonic = harmonic * env
    rms = tf.sqrt(tf.reduce_mean(tf.square(harmonic)) + 1e-12)
    noise = tf.random.stateless_uniform([n], seed=seeds + 1, minval=-1.0, maxval=1.0, dtype=tf.float64)
    noise = noise * math.sqrt(3.0) * rms * tf.pow(tf.constant(10.0, tf.float64), noise_db / 20.0) * env
    audio = harmonic + noise
    audio = audio * peak / tf.reduce_max(tf.abs(audio))
    audio = tf.cast(audio, tf.float32)
    frame_idx = tf.range(self.n_frames) * hop
    f0_frames = tf.cast(tf.gather(f0, frame_idx), tf.float32)
    env_frames = tf.gather(env, frame_idx)
    confidence = tf.cast(env_frames > 1e-3, tf.float32)
    from ddsp import spectral_ops
    loudness = spectral_ops.compute_loudness(audio, sample_rate=sr, frame_rate=self.frame_rate,
                                             use_tf=True)
    dist = tf.gather(below, frame_idx) * amps[tf.newaxis, :]
    dist = dist / tf.maximum(tf.reduce_sum(dist, axis=-1, keepdims=True), 1e-12)
    return {
        'audio': tf.ensure_shape(audio, [n]),
        'f0_hz': tf.ensure_shape(f0_frames, [self.n_frames]),
        'f0_confidence': tf.ensure_shape(confidence, [self.n_frames]),
        'loudness_db': tf.ensure_shape(tf.cast(loudness, tf.float32), [self.n_frames]),
        'harmonic_distribution': tf.ensure_shape(tf.cast(dist, tf.float32),
                                                 [self.n_frames, self.n_harmonics]),
    }

  def _examples(self, shuffle, input_context):
    ds = tf.data.Dataset.range(self.n_examples)
    ds = self._shard(ds, input_context)
    return ds.map(self._make, num_parallel_calls=_AUTOTUNE, deterministic=True)
