"""`make demo` end to end (shortened): prepare the bundled violin with Beam, train, evaluate, sample, resume.

The checks compare with independent readings: the prepared windows and the sampled target WAV against the
bundled FLAC read with soundfile, and the reported metrics against finite, physically possible ranges.
"""
import json
import os

import numpy as np
import soundfile as sf

from ddsp import bundled
from ddsp.training import demo

SMALL = ['RnnFcDecoder.rnn_channels = 16', 'Reverb.reverb_length = 1000', 'SpectralLoss.fft_sizes = (512, 128)']


def test_demo_runs_every_stage_and_resumes(tmp_path):
  out = str(tmp_path / 'demo')
  logs = []
  report = demo.run_demo(out, num_steps=3, batch_size=2, steps_per_save=3, gin_params=SMALL, log=logs.append)

  # Preparation: a 60 s phrase in 4 s windows every 1 s -> 57 windows; the 12 s held-out phrase -> 9.
  eval_audio, rate = sf.read(bundled.asset_path('violin_phrase_eval.flac'), dtype='float32')
  train_info = sf.info(bundled.asset_path('violin_phrase.flac'))
  assert rate == 16000
  assert report['train_examples'] == int(train_info.duration) - 4 + 1
  assert report['eval_examples'] == int(len(eval_audio) / rate) - 4 + 1

  # Training reached the requested step and wrote a checkpoint and TensorBoard events.
  assert report['steps'] == 3
  model_dir = os.path.join(out, 'model')
  assert os.path.exists(os.path.join(model_dir, 'ckpt-3.index'))
  assert any(f.startswith('events.out.tfevents') for f in os.listdir(model_dir))

  # Evaluation: the paper's metrics, finite and in their possible ranges, also in eval_results.json.
  metrics = report['eval_metrics']
  assert 0.0 <= metrics['f0_outlier_ratio'] <= 1.0
  assert 0.0 <= metrics['loudness_l1'] < 120.0 and 0.0 <= metrics['f0_l1'] and metrics['spectral_loss'] > 0
  with open(os.path.join(model_dir, 'eval_results.json')) as f:
    assert json.load(f)

  # Sampling: the first target WAV is one of the 4 s windows (1 s apart) of the held-out recording (16-bit
  # quantised; the shard's order is the runner's).
  sample_dir = os.path.join(out, 'model', 'samples', 'step_3')
  target, target_rate = sf.read(os.path.join(sample_dir, 'example_0_target.wav'), dtype='float32')
  resynthesis, _ = sf.read(os.path.join(sample_dir, 'example_0_resynthesis.wav'), dtype='float32')
  assert target_rate == 16000 and len(target) == len(resynthesis) == 64000
  errors = [np.abs(target - eval_audio[s:s + 64000]).max() for s in range(0, len(eval_audio) - 64000 + 1, 16000)]
  assert min(errors) <= 2.0 / 32768, errors
  assert np.all(np.isfinite(resynthesis)) and np.abs(resynthesis).max() > 0
  for name in report['samples']:
    assert os.path.getsize(os.path.join(out, name)) > 0
  with open(os.path.join(out, 'demo_report.json')) as f:
    assert json.load(f)['steps'] == 3

  # Transfer: the whole held-out phrase in one pass (same length as the recording), and the voice-like phrase
  # (MIDI 60-69) moved by whole octaves towards the violin training set (MIDI 55-86, median above the voice's).
  phrase, _ = sf.read(os.path.join(out, 'transfer', 'eval_phrase_resynthesis.wav'), dtype='float32')
  assert len(phrase) == len(eval_audio) and np.all(np.isfinite(phrase))
  voice_info = report['transfer_info']['voice_to_violin']
  assert voice_info['auto_octave_shift'] in (0, 1)
  assert voice_info['pitch_shift_semitones'] == 12 * voice_info['auto_octave_shift']
  for name in report['transfer']:
    assert os.path.getsize(os.path.join(out, name)) > 0

  # It ends with the command that opens the studio on the model it trained.
  assert logs[-1].strip().endswith(f'ddsp_studio --model_dir={model_dir}'), logs[-2:]

  # A second run reuses the prepared data and continues training from the checkpoint.
  logs.clear()
  again = demo.run_demo(out, num_steps=5, batch_size=2, steps_per_save=5, gin_params=SMALL, log=logs.append)
  assert any('reusing' in line for line in logs)
  assert again['steps'] == 5 and os.path.exists(os.path.join(model_dir, 'ckpt-5.index'))
