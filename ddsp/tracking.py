"""Makes layers held in Python lists visible to TensorFlow's object-based checkpoints.

Keras 3 keeps list attributes of a layer (`self.blocks = [Dense(...), ...]`) in its own tracker: their weights
are in `layer.weights` and in `.weights.h5` files, but `tf.train.Checkpoint` (which this library uses for
model + optimiser + data-iterator state) does not follow them. A layer reachable only through such a list is
then written only through the optimiser's variable list and is silently left at its initial value by any
restore that reads the model alone (evaluation, inference, export).

`track_layers` gives every layer of the list a plain attribute of its own (`<prefix>_<i>`), which both Keras
and TensorFlow follow. Keras de-duplicates layers by identity, so the layer order (and the order of
`trainable_variables`) does not change.
"""


def track_layers(owner, layers, prefix):
  """Registers each layer of `layers` as the attribute `<prefix>_<i>` of `owner`; returns `layers` as a list.

  Args:
    owner: the Keras layer or model that holds the list.
    layers: a sequence of Keras layers (or other trackables).
    prefix: attribute-name prefix; the checkpoint path of layer i is `<owner path>/<prefix>_<i>`. Keep it
      stable: it is part of the checkpoint format.
  """
  layers = list(layers)
  for i, layer in enumerate(layers):
    setattr(owner, f'{prefix}_{i}', layer)
  return layers
