"""ProcessorGroup DAGs, written in Python and in gin."""
import gin
import numpy as np
import pytest

import ddsp
from ddsp import effects, processors, synths

@gin.configurable
def build_group(group=gin.REQUIRED):
  """Returns the ProcessorGroup built by gin (processors are gin-registered, so they are built by reference)."""
  return group


GIN_DAG = """
import ddsp

build_group.group = @processors.ProcessorGroup()

ProcessorGroup.dag = [
    (@synths.Harmonic(), ['amps', 'harmonic_distribution', 'f0_hz']),
    (@synths.FilteredNoise(), ['noise_magnitudes']),
    (@processors.Add(), ['harmonic/signal', 'filtered_noise/signal']),
    (@effects.Reverb(), ['add/signal']),
]
synths.Harmonic.n_samples = 3200
synths.Harmonic.scale_fn = None
synths.FilteredNoise.n_samples = 3200
synths.FilteredNoise.scale_fn = None
effects.Reverb.trainable = True
effects.Reverb.reverb_length = 400
oscillators.harmonic_synthesis.amp_resample_method = 'window'
"""


def _controls(n_frames=50):
  return {
      'amps': np.full([2, n_frames, 1], 0.5, np.float32),
      'harmonic_distribution': np.tile(np.array([1.0, 0.0, 0.0], np.float32), [2, n_frames, 1]),
      'f0_hz': np.full([2, n_frames, 1], 500.0, np.float32),
      'noise_magnitudes': np.zeros([2, n_frames, 65], np.float32),
  }


def test_gin_builds_the_dag():
  gin.clear_config()
  try:
    gin.parse_config(GIN_DAG)
    group = build_group()
  finally:
    gin.clear_config()
  outputs = group(_controls(), return_outputs_dict=True)
  assert [p.name for p, _ in group.dag] == ['harmonic', 'filtered_noise', 'add', 'reverb']
  for key in ('harmonic/signal', 'filtered_noise/signal', 'add/signal', 'reverb/signal', 'harmonic/controls'):
    assert key in outputs
  # Silent noise (zero magnitudes, no scaling) and an IR that starts near zero: the output is the 500 Hz sine.
  t = np.arange(3200) / 16000
  np.testing.assert_allclose(outputs['add/signal'].numpy()[0], 0.5 * np.sin(2 * np.pi * 500 * t), atol=1e-4)
  assert len(group.trainable_variables) == 1


def test_dag_errors_are_clear():
  with pytest.raises(ValueError, match='non-empty'):
    processors.ProcessorGroup(dag=[])
  with pytest.raises(ValueError, match=r'dag\[0\]'):
    processors.ProcessorGroup(dag=[(synths.Harmonic(), 'amps')])
  with pytest.raises(ValueError, match='unique'):
    processors.ProcessorGroup(dag=[(processors.Add(), ['a', 'b']), (processors.Add(), ['a', 'b'])])
  group = processors.ProcessorGroup(dag=[(synths.Harmonic(n_samples=3200), ['amps', 'missing', 'f0_hz'])])
  with pytest.raises(KeyError, match='missing'):
    group(_controls())
  with pytest.raises(ValueError, match='shape'):
    processors.Add()(np.zeros([1, 10], np.float32), np.zeros([1, 11], np.float32))


def test_get_controls_and_get_signal_split():
  harmonic = synths.Harmonic(n_samples=3200)
  c = _controls()
  controls = harmonic.get_controls(c['amps'], c['harmonic_distribution'], c['f0_hz'])
  # exp_sigmoid then renormalisation: the distribution sums to one.
  np.testing.assert_allclose(controls['harmonic_distribution'].numpy().sum(-1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(controls['amplitudes'].numpy(), ddsp.core.exp_sigmoid(c['amps']).numpy())
  audio = harmonic.get_signal(**controls)
  np.testing.assert_allclose(audio.numpy(), harmonic(c['amps'], c['harmonic_distribution'], c['f0_hz']).numpy())


def test_mix_crossfades():
  one, two = np.ones([1, 640], np.float32), np.zeros([1, 640], np.float32)
  out = processors.Mix(scale_fn=None)(one, two, np.full([1, 10, 1], 0.25, np.float32)).numpy()
  np.testing.assert_allclose(out, 0.75, atol=1e-6)
  assert effects.Reverb  # imported for gin registration above
