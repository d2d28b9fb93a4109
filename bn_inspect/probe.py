"""Dual-mode forward pass on a fixed batch that changes no model state.

Both passes go through ``model.stateless_call``: variables are passed in as values and the
updated ones come back as results that are thrown away, so moving statistics, RNG seeds and
optimizer state stay bitwise untouched.

The training-mode pass starts every BN layer's moving statistics at zero (training-mode
outputs do not read them), so after one update each holds ``(1 - m) * batch_stat`` and the
exact batch statistics of every layer's actual input are recovered without hooks, for
nested and subclassed models alike (:func:`bn_inspect.stats.batch_stat_from_update`).

Example:
    >>> import keras, numpy as np
    >>> from bn_inspect.layers import find_batchnorm_layers
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization(name="bn")])
    >>> probe = Probe(model, find_batchnorm_layers(model), np.eye(3, dtype="float32"))
    >>> result = probe.run()
    >>> result.batch_mean["bn"].round(3).tolist()
    [0.333, 0.333, 0.333]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from bn_inspect.layers import FoundLayer
from bn_inspect.stats import batch_stat_from_update


@dataclass
class ProbeResult:
    """What one probe pass measured, as numpy arrays."""

    outputs_training: np.ndarray  # [samples, features]
    outputs_inference: np.ndarray  # [samples, features]
    batch_mean: dict[str, np.ndarray] = field(default_factory=dict)  # path -> [channels], NaN if frozen
    batch_variance: dict[str, np.ndarray] = field(default_factory=dict)


def _flatten_outputs(outputs: Any, samples: int) -> np.ndarray:
    parts = [np.asarray(keras.ops.convert_to_numpy(o), dtype=np.float32) for o in keras.tree.flatten(outputs)]
    return np.concatenate([p.reshape(samples, -1) for p in parts], axis=1)


def compile_for_backend(fn: Callable) -> Callable:
    """Compile ``fn`` once for the active Keras backend (tf.function / jax.jit / as is)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, reduce_retracing=True)
    if backend == "jax":
        import jax

        return jax.jit(fn)
    if backend == "torch":
        import torch

        def no_grad(*args: Any) -> Any:
            with torch.no_grad():
                return fn(*args)

        return no_grad
    return fn


def sample_count(x: Any) -> int:
    """Number of samples in a (possibly nested) batch of inputs."""
    first = keras.tree.flatten(x)[0]
    return int(np.shape(first)[0])


class Probe:
    """Runs the model on ``x`` in training and inference mode, without changing anything.

    Build once per fit (compiles one function); call :meth:`run` at every logged step.
    """

    def __init__(self, model: Any, layers: Sequence[FoundLayer], x: Any) -> None:
        self._model = model
        self._layers = list(layers)
        self._x = x
        self.samples = sample_count(x)
        index = {id(v): i for i, v in enumerate(model.non_trainable_variables)}
        # per layer: (index of the mean variable, index of the variance-or-stddev variable)
        self._stat_indices: list[tuple[int, int]] = []
        for found in self._layers:
            layer = found.layer
            spread_var = layer.moving_stddev if getattr(layer, "renorm", False) else layer.moving_variance
            self._stat_indices.append((index[id(layer.moving_mean)], index[id(spread_var)]))
        # A frozen layer runs in inference mode even when training=True: it reads its moving
        # statistics, so they must stay real, and it measures no batch statistics (NaN).
        self._measured = [bool(found.layer.trainable) for found in self._layers]
        self._zeroed = {i for pair, measured in zip(self._stat_indices, self._measured) if measured for i in pair}
        self._fn = compile_for_backend(self._stateless_pass)

    def _stateless_pass(self, trainable: list, non_trainable: list, zeroed: list, x: Any) -> tuple:
        model = self._model
        inference, _ = model.stateless_call(trainable, non_trainable, x, training=False)
        training, updated = model.stateless_call(trainable, zeroed, x, training=True)
        stats = [(updated[m], updated[v]) for m, v in self._stat_indices]
        return inference, training, stats

    def run(self) -> ProbeResult:
        """Run both passes and recover each layer's batch mean and (biased) variance."""
        model = self._model
        trainable = [keras.ops.convert_to_tensor(v) for v in model.trainable_variables]
        non_trainable = [keras.ops.convert_to_tensor(v) for v in model.non_trainable_variables]
        zeroed = [keras.ops.zeros_like(v) if i in self._zeroed else v for i, v in enumerate(non_trainable)]
        inference, training, stats = self._fn(trainable, non_trainable, zeroed, self._x)
        result = ProbeResult(
            outputs_training=_flatten_outputs(training, self.samples),
            outputs_inference=_flatten_outputs(inference, self.samples),
        )
        for found, (mean_after, spread_after), measured in zip(self._layers, stats, self._measured):
            layer = found.layer
            if not measured:
                nan = np.full(int(np.prod(layer.moving_mean.shape)), np.nan, dtype=np.float32)
                result.batch_mean[found.path], result.batch_variance[found.path] = nan, nan.copy()
                continue
            momentum = float(layer.momentum)
            mean = batch_stat_from_update(keras.ops.convert_to_numpy(mean_after), momentum)
            spread = batch_stat_from_update(keras.ops.convert_to_numpy(spread_after), momentum)
            if getattr(layer, "renorm", False):  # moving_stddev tracks sqrt(var + eps)
                variance = np.square(spread) - float(layer.epsilon)
            else:
                variance = spread
            result.batch_mean[found.path] = mean.reshape(-1)
            result.batch_variance[found.path] = variance.reshape(-1)
        return result
