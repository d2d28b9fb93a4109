"""Find every BatchNormalization layer of a Keras model and describe it.

Example:
    >>> import keras
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization(name="bn")])
    >>> [found.path for found in find_batchnorm_layers(model)]
    ['bn']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from bn_inspect.run_config import LayerConfig


@dataclass(frozen=True)
class FoundLayer:
    """A BatchNormalization layer and its unique, readable path inside the model."""

    path: str
    layer: Any


def _sublayers(layer: Any) -> list:
    """Direct sublayers of a layer: a model's layers, or those a custom layer tracks."""
    tracked = getattr(layer, "_layers", None)
    if tracked is None:
        tracked = getattr(layer, "layers", [])
    return list(tracked)


def find_batchnorm_layers(model: Any) -> list[FoundLayer]:
    """All BatchNormalization layers of ``model`` in depth-first order, each once.

    Recurses into nested models and into custom layers that hold layers. A path joins the
    layer names from the outermost container down (``"backbone/block1/bn"``); the root
    model's own name is left out. A layer shared at several places is listed at its first.
    """
    found: list[FoundLayer] = []
    seen: set[int] = set()
    used_paths: set[str] = set()

    def visit(layer: Any, prefix: str) -> None:
        for child in _sublayers(layer):
            if id(child) in seen:
                continue
            seen.add(id(child))
            path = f"{prefix}{child.name}"
            if isinstance(child, keras.layers.BatchNormalization):
                unique, n = path, 2
                while unique in used_paths:
                    unique, n = f"{path}_{n}", n + 1
                used_paths.add(unique)
                found.append(FoundLayer(unique, child))
            visit(child, path + "/")

    visit(model, "")
    return found


def has_training_noise(model: Any) -> list[str]:
    """Names of layers whose training-mode output is random (Dropout and noise layers)."""
    noisy = (
        keras.layers.Dropout,
        keras.layers.GaussianNoise,
        keras.layers.GaussianDropout,
        keras.layers.AlphaDropout,
    )
    names: list[str] = []
    stack = _sublayers(model)
    seen: set[int] = set()
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if isinstance(layer, noisy) and getattr(layer, "rate", getattr(layer, "stddev", 1)) != 0:
            names.append(layer.name)
        stack.extend(_sublayers(layer))
    return sorted(names)


def _initializer_record(initializer: Any) -> dict:
    serialized = keras.initializers.serialize(initializer)
    if isinstance(serialized, dict):
        return {"class_name": serialized.get("class_name"), "config": serialized.get("config", {})}
    return {"class_name": str(serialized), "config": {}}


def layer_config(found: FoundLayer) -> LayerConfig:
    """The configuration of one layer (an entry of the run configuration's ``layers``)."""
    layer = found.layer
    policy = getattr(layer, "dtype_policy", None)
    trainable = bool(layer.trainable)
    return LayerConfig(
        path=found.path,
        class_name=type(layer).__name__,
        momentum=float(layer.momentum),
        epsilon=float(layer.epsilon),
        axis=int(layer.axis),
        center=bool(layer.center),
        scale=bool(layer.scale),
        trainable=trainable,
        synchronized=bool(getattr(layer, "synchronized", False)),
        renorm=bool(getattr(layer, "renorm", False)),
        inference_mode_in_training=not trainable,
        channels=int(np.prod(layer.moving_mean.shape)),
        beta_initializer=_initializer_record(layer.beta_initializer),
        gamma_initializer=_initializer_record(layer.gamma_initializer),
        moving_mean_initializer=_initializer_record(layer.moving_mean_initializer),
        moving_variance_initializer=_initializer_record(layer.moving_variance_initializer),
        dtype_policy=getattr(policy, "name", str(policy)),
    )


def batchnorm_variables(layer: Any) -> dict[str, Any]:
    """The layer's moving_mean, moving_variance, gamma and beta (those it has), by name, in
    :data:`bn_inspect.schema.VARIABLE_QUANTITIES` order."""
    named = {
        "moving_mean": layer.moving_mean,
        "moving_variance": layer.moving_variance,
        "gamma": layer.gamma if layer.scale else None,
        "beta": layer.beta if layer.center else None,
    }
    return {name: variable for name, variable in named.items() if variable is not None}


def variable_values(layer: Any) -> dict[str, np.ndarray]:
    """Current values of :func:`batchnorm_variables` as flat float32 arrays."""
    return {
        name: np.asarray(keras.ops.convert_to_numpy(var), dtype=np.float32).reshape(-1)
        for name, var in batchnorm_variables(layer).items()
    }
