"""Dataset preparation (installed as `ddsp.data_prep`).

Modules:
  audio_io: robust reading of wav/flac/ogg/mp3 at any rate and channel count -> mono float32.
  pipeline: the Apache Beam pipeline (audio folders or NSynth TFRecords -> sharded TFRecords + reports).
  statistics: mergeable dataset statistics (`dataset_statistics.json`).
  prepare_tfrecord: the `ddsp_prepare_tfrecord` command line.
"""
