"""Shared test set-up: quiet TensorFlow, Keras on the TF backend, deterministic seeds."""
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('KERAS_BACKEND', 'tensorflow')

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _seed():
  np.random.seed(0)
  import tensorflow as tf
  tf.random.set_seed(0)
