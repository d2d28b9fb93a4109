"""Every inspected BN variable to the host in one compiled call per logged step.

Reading the variables one by one costs one device-to-host conversion each (about 0.15 ms on
TensorFlow, 80 of them for 20 layers). :class:`VariableTransfer` instead packs them all into
one float32 vector inside a function compiled once per fit (``tf.function`` reading the
variables it captured, or ``jax.jit`` taking their values as arguments: neither retraces),
converts that vector once and cuts it into per-layer arrays on the host, where the count of
non-finite channels of every layer is one vectorised numpy expression.

Within an epoch JAX's ``fit`` keeps the training state outside the variables; the transfer
then reads that state (``model._jax_state``, which Keras keeps for callbacks) instead of
syncing it back into the model at every logged step.

Example:
    >>> import keras
    >>> from bn_inspect.layers import find_batchnorm_layers
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization(name="bn")])
    >>> snapshot = VariableTransfer(model, find_batchnorm_layers(model)).fetch()
    >>> sorted(snapshot.values["bn"]), snapshot.values["bn"]["moving_variance"].tolist(), snapshot.nonfinite
    (['beta', 'gamma', 'moving_mean', 'moving_variance'], [1.0, 1.0, 1.0], {'bn': 0})
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from bn_inspect.layers import FoundLayer, variable_values
from bn_inspect.stats import nonfinite_channel_mask, nonfinite_channels

Values = dict[str, dict[str, np.ndarray]]  # layer path -> variable name -> float32 [channels]


@dataclass
class Snapshot:
    """The BN variables at one moment, on the host."""

    values: Values
    nonfinite: dict[str, int]  # layer path -> channels with NaN/inf or negative moving statistics


def _layer_variables(layer: Any) -> dict[str, Any]:
    """The variables :func:`bn_inspect.layers.variable_values` reads, by name, in its order."""
    named = {
        "moving_mean": layer.moving_mean,
        "moving_variance": layer.moving_variance,
        "gamma": layer.gamma if layer.scale else None,
        "beta": layer.beta if layer.center else None,
    }
    return {name: var for name, var in named.items() if var is not None}


def _pack(values: Sequence[Any]) -> Any:
    """One float32 vector of all ``values``, flattened and concatenated (backend ops)."""
    ops = keras.ops
    return ops.concatenate([ops.reshape(ops.cast(v, "float32"), (-1,)) for v in values], axis=0)


class VariableTransfer:
    """Reads the variables of ``layers`` of ``model`` in one compiled call; build once per fit.

    :meth:`fetch` gives the same arrays as :func:`bn_inspect.layers.variable_values` per
    layer. If the compiled call fails (an unusual variable type), it reads them one by one.
    """

    def __init__(self, model: Any, layers: Sequence[FoundLayer]) -> None:
        self._model = model
        self._layers = list(layers)
        self._variables: list[Any] = []
        self._slices: list[tuple[str, str, int, int]] = []  # (path, name, start, stop) in the vector
        means, variances, starts = [], [], []  # positions in the vector; where each layer's means begin
        offset = channels = 0
        for found in self._layers:
            for name, variable in _layer_variables(found.layer).items():
                size = int(np.prod(variable.shape))
                self._slices.append((found.path, name, offset, offset + size))
                self._variables.append(variable)
                if name == "moving_mean":
                    starts.append(channels)
                    channels += size
                    means.append(np.arange(offset, offset + size))
                elif name == "moving_variance":
                    variances.append(np.arange(offset, offset + size))
                offset += size
        self._mean_index = np.concatenate(means) if means else np.zeros(0, int)
        self._variance_index = np.concatenate(variances) if variances else np.zeros(0, int)
        self._channel_starts = np.asarray(starts, dtype=np.intp)
        self._state_positions = self._training_state_positions()
        self._packed: Callable[[], Any] | None = self._compile() if self._variables else None

    def _training_state_positions(self) -> list[tuple[str, int]] | None:
        """Where each variable sits in JAX's training state (None when not on JAX)."""
        if keras.backend.backend() != "jax":
            return None
        trainable = {id(v): i for i, v in enumerate(self._model.trainable_variables)}
        non_trainable = {id(v): i for i, v in enumerate(self._model.non_trainable_variables)}
        positions = []
        for variable in self._variables:
            if id(variable) in trainable:
                positions.append(("trainable_variables", trainable[id(variable)]))
            elif id(variable) in non_trainable:
                positions.append(("non_trainable_variables", non_trainable[id(variable)]))
            else:
                return None
        return positions

    def _jax_values(self) -> list:
        """The variables' values: from JAX's training state while ``fit`` holds them there."""
        state = getattr(self._model, "_jax_state", None)
        if self._state_positions is not None and state and not getattr(self._model, "_jax_state_synced", True):
            return [state[group][index] for group, index in self._state_positions]
        if state and not getattr(self._model, "_jax_state_synced", True):
            self._model.jax_state_sync()
        return [v.value for v in self._variables]

    def _compile(self) -> Callable[[], Any]:
        backend = keras.backend.backend()
        variables = self._variables
        if backend == "tensorflow":
            import tensorflow as tf

            # Captured variables are read at every call: no arguments, traced once.
            return tf.function(lambda: _pack([v.value for v in variables]))
        if backend == "jax":
            import jax

            packed = jax.jit(_pack)
            return lambda: packed(self._jax_values())
        return lambda: _pack([keras.ops.convert_to_tensor(v) for v in variables])

    def fetch(self) -> Snapshot:
        """The current values and each layer's count of non-finite channels."""
        if self._packed is None:
            if keras.backend.backend() == "jax":  # fit keeps the values outside the variables mid-epoch
                self._model.jax_state_sync()
            values = {found.path: variable_values(found.layer) for found in self._layers}
            counts = {path: nonfinite_channels(v["moving_mean"], v["moving_variance"]) for path, v in values.items()}
            return Snapshot(values, counts)
        try:
            flat = np.asarray(keras.ops.convert_to_numpy(self._packed()), dtype=np.float32)
        except Exception:  # e.g. a distributed variable the compiled call cannot read: one by one
            self._packed = None
            return self.fetch()
        values: Values = {found.path: {} for found in self._layers}
        for path, name, start, stop in self._slices:
            values[path][name] = flat[start:stop]
        mask = nonfinite_channel_mask(flat[self._mean_index], flat[self._variance_index])
        counts = np.add.reduceat(mask.astype(np.int64), self._channel_starts) if len(mask) else []
        return Snapshot(values, {found.path: int(n) for found, n in zip(self._layers, counts)})
