"""Every inspected BN variable to the host in one call per logged step.

Reading the variables one by one costs one device-to-host conversion each (about 0.15 ms on
TensorFlow, 80 of them for 20 layers). :class:`VariableTransfer` instead packs them all into
one float32 vector, each layer's variables side by side, converts that vector once and views
it on the host as one ``[variables, channels]`` block per layer (the layer's ``variables``
group of :mod:`bn_inspect.schema`, written as it is), where the count of non-finite channels
of every layer is one vectorised numpy expression.

Per backend: ``jax.jit`` takes the variables' values as arguments (one trace per process and
set of shapes, shared by every fit), and its result comes back asynchronously
(:meth:`VariableTransfer.start`), so training need not wait for it. TensorFlow concatenates
eagerly for the first :data:`EAGER_FETCHES` fetches and then through one traced function
reading the variables it captured (tracing it costs about as much as that many eager fetches,
so short fits never pay it).

Within an epoch JAX's ``fit`` keeps the training state outside the variables; the transfer
then reads that state (``model._jax_state``, which Keras keeps for callbacks) instead of
syncing it back into the model at every logged step.

Example:
    >>> import keras
    >>> from bn_inspect.layers import find_batchnorm_layers
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization(name="bn")])
    >>> snapshot = VariableTransfer(model, find_batchnorm_layers(model)).fetch()
    >>> snapshot.names["bn"], snapshot.blocks["bn"].shape, snapshot.nonfinite
    (('moving_mean', 'moving_variance', 'gamma', 'beta'), (4, 3), {'bn': 0})
    >>> snapshot.values["bn"]["moving_variance"].tolist()
    [1.0, 1.0, 1.0]
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from bn_inspect.layers import FoundLayer, batchnorm_variables, variable_values
from bn_inspect.stats import nonfinite_channel_mask

Values = dict[str, dict[str, np.ndarray]]  # layer path -> variable name -> float32 [channels]

# TensorFlow: fetches done eagerly before the one call is traced (tracing ~90 ms for 80
# variables ≈ 64 eager fetches at ~1.4 ms; a traced call then costs ~0.4 ms; bench/logging_costs.py).
EAGER_FETCHES = 64


@dataclass
class Snapshot:
    """The BN variables at one moment, on the host."""

    blocks: dict[str, np.ndarray]  # layer path -> float32 [variables, channels], rows named by ``names``
    names: dict[str, tuple[str, ...]]  # layer path -> its variables, in schema.VARIABLE_QUANTITIES order
    nonfinite: dict[str, int]  # layer path -> channels with NaN/inf or negative moving statistics

    @property
    def values(self) -> Values:
        """Each layer's variables by name (views of its block)."""
        return {path: dict(zip(self.names[path], block)) for path, block in self.blocks.items()}


class PendingSnapshot:
    """A :class:`Snapshot` on its way to the host: :meth:`ready` asks, :meth:`result` waits."""

    def __init__(self, transfer: VariableTransfer, packed: Any) -> None:
        self._transfer = transfer
        self._packed = packed

    def ready(self) -> bool:
        """True when :meth:`result` will not wait for the device."""
        is_ready = getattr(self._packed, "is_ready", None)
        return bool(is_ready()) if is_ready is not None else True

    def result(self) -> Snapshot:
        """The snapshot (waits for the device if it has not finished)."""
        return self._transfer.snapshot_of(np.asarray(keras.ops.convert_to_numpy(self._packed), dtype=np.float32))


def _pack(values: Sequence[Any]) -> Any:
    """One float32 vector of all ``values``, flattened and concatenated (backend ops)."""
    ops = keras.ops
    flat = [v if len(v.shape) == 1 else ops.reshape(v, (-1,)) for v in values]
    return ops.concatenate([v if v.dtype == "float32" else ops.cast(v, "float32") for v in flat], axis=0)


@functools.cache
def _jax_pack() -> Callable[[list], Any]:
    """``_pack`` under ``jax.jit``, one per process: fits with the same shapes share its trace."""
    import jax

    return jax.jit(_pack)


class VariableTransfer:
    """Reads the variables of ``layers`` of ``model`` in one call; build once per fit.

    :meth:`fetch` gives the same arrays as :func:`bn_inspect.layers.variable_values` per
    layer. If the packed call fails (an unusual variable type), it reads them one by one.
    """

    def __init__(self, model: Any, layers: Sequence[FoundLayer]) -> None:
        self._model = model
        self._layers = list(layers)
        self._variables: list[Any] = []
        self._blocks: list[tuple[str, tuple[str, ...], int, int]] = []  # (path, names, start, stop) in the vector
        means, variances, starts = [], [], []  # positions in the vector; where each layer's means begin
        offset = channels = 0
        for found in self._layers:
            named = batchnorm_variables(found.layer)
            size = int(np.prod(found.layer.moving_mean.shape))
            self._blocks.append((found.path, tuple(named), offset, offset + size * len(named)))
            for position, (name, variable) in enumerate(named.items()):
                self._variables.append(variable)
                indices = np.arange(offset + position * size, offset + (position + 1) * size)
                if name == "moving_mean":
                    starts.append(channels)
                    channels += size
                    means.append(indices)
                elif name == "moving_variance":
                    variances.append(indices)
            offset += size * len(named)
        self._mean_index = np.concatenate(means) if means else np.zeros(0, int)
        self._variance_index = np.concatenate(variances) if variances else np.zeros(0, int)
        self._channel_starts = np.asarray(starts, dtype=np.intp)
        self._state_positions = self._training_state_positions()
        self._fetches = 0
        self._traced: Callable[[], Any] | None = None
        self._one_by_one = not self._variables

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

    def _packed(self) -> Any:
        """The packed vector as a backend array (on JAX still being computed, already on its way
        to the host)."""
        backend = keras.backend.backend()
        self._fetches += 1
        if backend == "jax":
            packed = _jax_pack()(self._jax_values())
            packed.copy_to_host_async()
            return packed
        if backend == "tensorflow":
            if self._fetches <= EAGER_FETCHES:
                return _pack([v.value for v in self._variables])
            if self._traced is None:
                import tensorflow as tf

                variables = self._variables  # captured: read at every call, no arguments, traced once
                traced = tf.function(lambda: _pack([v.value for v in variables]), autograph=False)
                self._traced = traced.get_concrete_function()
            return self._traced()
        return _pack([keras.ops.convert_to_tensor(v) for v in self._variables])

    def _read_one_by_one(self) -> np.ndarray:
        if keras.backend.backend() == "jax":  # fit keeps the values outside the variables mid-epoch
            self._model.jax_state_sync()
        parts = [np.zeros(0, np.float32)]
        for found in self._layers:
            parts += list(variable_values(found.layer).values())
        return np.concatenate(parts)

    def start(self) -> PendingSnapshot:
        """Start reading the current values; the result may still be on its way (JAX)."""
        if not self._one_by_one:
            try:
                return PendingSnapshot(self, self._packed())
            except Exception:  # e.g. a distributed variable the packed call cannot read: one by one
                self._one_by_one = True
        return PendingSnapshot(self, self._read_one_by_one())

    def fetch(self) -> Snapshot:
        """The current values and each layer's count of non-finite channels."""
        return self.start().result()

    def snapshot_of(self, flat: np.ndarray) -> Snapshot:
        """The :class:`Snapshot` a packed vector holds."""
        blocks, names = {}, {}
        for path, variables, start, stop in self._blocks:
            blocks[path] = flat[start:stop].reshape(len(variables), -1)
            names[path] = variables
        mask = nonfinite_channel_mask(flat[self._mean_index], flat[self._variance_index])
        counts = np.add.reduceat(mask.astype(np.int64), self._channel_starts) if len(mask) else []
        return Snapshot(blocks, names, {found.path: int(n) for found, n in zip(self._layers, counts)})
