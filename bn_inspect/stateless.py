"""Stateless calls shared by the probe and population statistics: compile once per backend,
find the BN variables among the model's, and take the model state as values.

Everything here reads the model and assigns nothing: the passes built on it go through
``model.stateless_call`` with these values, so variables, RNG seeds and optimizer state stay
bitwise untouched.

Example:
    >>> import keras
    >>> from bn_inspect.layers import find_batchnorm_layers
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization(name="bn")])
    >>> moving_stat_indices(model, find_batchnorm_layers(model))
    [(0, 1)]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras

from bn_inspect.layers import FoundLayer


def compile_for_backend(fn: Callable) -> Callable:
    """Compile ``fn`` once for the active Keras backend (tf.function / jax.jit / torch eager).

    On torch it runs without autograd and leaves torch's global random state as it was.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, reduce_retracing=True)
    if backend == "jax":
        import jax

        return jax.jit(fn)
    if backend == "torch":
        import torch

        def isolated(*args: Any) -> Any:
            # Unseeded Dropout on torch draws from torch's global RNG: fork it, so training
            # draws the same masks with or without the probe.
            with torch.no_grad(), torch.random.fork_rng():
                return fn(*args)

        return isolated
    return fn


def moving_stat_indices(model: Any, layers: Sequence[FoundLayer], renorm_stddev: bool = False) -> list[tuple[int, int]]:
    """Per layer, the positions of its moving mean and moving variance in
    ``model.non_trainable_variables`` (with ``renorm_stddev``, of its ``moving_stddev``
    instead of the variance for ``renorm=True`` layers)."""
    index = {id(v): i for i, v in enumerate(model.non_trainable_variables)}
    indices = []
    for found in layers:
        layer = found.layer
        spread = layer.moving_stddev if renorm_stddev and getattr(layer, "renorm", False) else layer.moving_variance
        indices.append((index[id(layer.moving_mean)], index[id(spread)]))
    return indices


def state_values(model: Any) -> tuple[list, list]:
    """The model's current trainable and non-trainable variable values, as backend tensors."""
    trainable = [keras.ops.convert_to_tensor(v) for v in model.trainable_variables]
    non_trainable = [keras.ops.convert_to_tensor(v) for v in model.non_trainable_variables]
    return trainable, non_trainable
