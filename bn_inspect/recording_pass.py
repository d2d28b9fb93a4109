"""One compiled inference pass that records the moments of BN layers' inputs, model untouched.

A :class:`RecordingPass` runs ``stateless_call(..., training=False)`` on the whole model, or,
for a functional or Sequential model, on the part of it that feeds a chosen set of BN layers
(their *feed*: a ``keras.Model`` from the model's inputs to those layers' outputs, sharing
the model's layers and variables, so nothing after them runs). While the pass is traced (or
run, on eager backends) each recorded layer's ``call`` is shadowed by an instance attribute
that reduces the layer's input to per-channel ``(count, mean, m2)`` on the device and then
calls the original; the attribute is removed right after.

Example:
    >>> import keras, numpy as np
    >>> from bn_inspect.layers import find_batchnorm_layers
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.BatchNormalization(name="bn")])
    >>> found = find_batchnorm_layers(model)
    >>> recording = RecordingPass(model, [f.layer for f in found], record=[0], feed=True)
    >>> recording.uses_feed
    True
    >>> [(index, np.asarray(mean).tolist()) for index, (count, mean, m2) in recording.run(
    ...     *recording.state(), np.array([[0.0, 1.0], [2.0, 3.0]], "float32"))]
    [(0, [1.0, 2.0])]
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import keras

from bn_inspect.stateless import compile_for_backend, state_values


def _batch_moments(inputs: Any, axis: int, mask: Any) -> tuple[Any, Any, Any]:
    """Per-channel ``(count, mean, m2)`` of one batch of a BN layer's input (backend ops)."""
    ops = keras.ops
    x = ops.cast(inputs, "float32")
    ndim = len(x.shape)
    axis = axis % ndim
    axes = tuple(a for a in range(ndim) if a != axis)
    if mask is None:
        keep = ops.ones_like(x, dtype="bool")
    else:  # one dimension less than the inputs, channels last: as BatchNormalization._moments
        keep = ops.broadcast_to(ops.expand_dims(ops.cast(mask, "bool"), -1), ops.shape(x))
    count = ops.sum(ops.cast(keep, "int32"), axis=axes)
    mean = ops.sum(ops.where(keep, x, 0.0), axis=axes) / ops.maximum(ops.cast(count, "float32"), 1.0)
    channel_shape = [1] * ndim
    channel_shape[axis] = -1
    deviation = ops.where(keep, x - ops.reshape(mean, channel_shape), 0.0)
    return count, mean, ops.sum(ops.square(deviation), axis=axes)


def _recording_call(index: int, layer: Any, record: Callable[[int, tuple], None]) -> Callable:
    original = layer.call

    def call(inputs: Any, *args: Any, **kwargs: Any) -> Any:
        mask = kwargs.get("mask", args[1] if len(args) > 1 else None)  # call(inputs, training, mask)
        record(index, _batch_moments(inputs, layer.axis, mask))
        return original(inputs, *args, **kwargs)

    return call


@contextlib.contextmanager
def _recording_inputs(layers: Sequence[Any], record: Callable[[int, tuple], None]) -> Iterator[None]:
    """Shadow each layer's ``call`` so its input's moments reach ``record(index, moments)``."""
    missing = object()
    shadowed: list[tuple[Any, Any]] = []
    try:
        for index, layer in enumerate(layers):
            shadowed.append((layer, vars(layer).get("call", missing)))
            object.__setattr__(layer, "call", _recording_call(index, layer, record))  # no Keras tracking
        yield
    finally:
        for layer, previous in shadowed:
            if previous is missing:
                object.__delattr__(layer, "call")
            else:
                object.__setattr__(layer, "call", previous)


def _feed_model(model: Any, layers: Sequence[Any]) -> Any | None:
    """A model from ``model``'s inputs to the outputs of ``layers`` (sharing its layers and
    variables), or None when the model has no such graph: subclassed models, layers inside
    nested models, layers called more than once."""
    if any(len(getattr(layer, "_inbound_nodes", ())) != 1 for layer in layers):
        return None
    try:
        if isinstance(model, keras.Sequential):  # its inputs, a list of one; it has no `input`
            inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
        else:
            inputs = model.input  # a functional model's input structure (dict, list, tensor)
        return keras.Model(inputs, [layer.output for layer in layers], name=f"{model.name}_bn_feed")
    except Exception:  # no graph from the model's inputs to those layers
        return None


class RecordingPass:
    """A compiled inference pass recording the input moments of ``layers[i]`` for each ``i`` in
    ``record``; with ``feed``, run on the part of the model that feeds them when there is one.

    Call :meth:`run` with the model's own variable values (:meth:`state`, possibly with
    substituted statistics): it gives ``(index, (count, mean, m2))`` per recorded call, in
    call order (known once the pass has been traced, see :attr:`calls`).
    """

    def __init__(self, model: Any, layers: Sequence[Any], record: Sequence[int], feed: bool) -> None:
        self._model = model
        self._layers = list(layers)
        self._record = list(record)
        runner = _feed_model(model, [self._layers[i] for i in self._record]) if feed else None
        self.uses_feed = runner is not None
        self._runner = runner if runner is not None else model
        self._positions: tuple[list[int], list[int]] | None = None
        if runner is not None:
            trainable = {id(v): i for i, v in enumerate(model.trainable_variables)}
            non_trainable = {id(v): i for i, v in enumerate(model.non_trainable_variables)}
            self._positions = (
                [trainable[id(v)] for v in runner.trainable_variables],
                [non_trainable[id(v)] for v in runner.non_trainable_variables],
            )
        self.calls: list[int] = []  # layer index of each recorded call, set when traced
        self._fn = compile_for_backend(self._pass)

    def state(self) -> tuple[list, list]:
        """The model's current trainable and non-trainable values."""
        return state_values(self._model)

    def run(self, trainable: list, non_trainable: list, x: Any) -> list[tuple[int, tuple]]:
        """One pass on batch ``x`` with the model's variable values given."""
        if self._positions is not None:
            trainable = [trainable[i] for i in self._positions[0]]
            non_trainable = [non_trainable[i] for i in self._positions[1]]
        moments = self._fn(trainable, non_trainable, x)
        return list(zip(self.calls, moments))

    def _pass(self, trainable: list, non_trainable: list, x: Any) -> list:
        calls: list[int] = []
        moments: list = []

        def record(position: int, batch_moments: tuple) -> None:
            calls.append(self._record[position])
            moments.append(batch_moments)

        with _recording_inputs([self._layers[i] for i in self._record], record):
            self._runner.stateless_call(trainable, non_trainable, x, training=False)
        self.calls = calls
        return moments
