"""Write bn-inspect summaries (the :mod:`bn_inspect.schema` contract) without TensorFlow.

Example:
    >>> import tempfile, numpy as np
    >>> w = SummaryWriter(tempfile.mkdtemp())
    >>> w.add_layer("bn", "moving_mean", np.zeros(4))
    >>> w.write_step(0)
    >>> w.close()
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence

import numpy as np
from tensorboard.compat.proto import event_pb2, summary_pb2

from bn_inspect import schema
from bn_inspect.events import EventFileWriter

METADATA_COPIES = 2  # values of a tag per file that carry its metadata


class SummaryWriter:
    """Collects the values of one step and writes them as one ``Event``.

    Values are packed at :meth:`write_step` (schema v3): per layer, the per-channel quantities
    of one group (:data:`schema.CHANNEL_GROUPS`) into one ``[quantities, channels]`` tensor;
    model-level values by :data:`schema.MODEL_GROUPS`; per-layer figures (scalars of
    :data:`schema.LAYER_SCALAR_QUANTITIES`) into one ``[layers, quantities]`` value per set of
    figures (:func:`schema.figures_record`). Metadata is attached to the first
    :data:`METADATA_COPIES` values of each tag in a file only (TensorBoard keeps the first
    metadata of a series): one damaged record never leaves a series of the file unnamed.
    """

    def __init__(self, log_dir: str | os.PathLike) -> None:
        self._file = EventFileWriter(log_dir)
        self._metadata_written: dict[str, int] = {}  # tag -> values written with metadata
        self._records: dict[str, dict] = {}  # tag -> content record of the values it names
        self._pending: list[summary_pb2.Summary.Value] = []
        # (tag, shape) -> the value last written under tag, refilled with each step's array
        self._reused: dict[tuple[str, tuple[int, ...]], summary_pb2.Summary.Value] = {}
        # (timeline, kind, layer) -> quantity -> value, packed by group at write_step
        self._arrays: dict[tuple[str, str, str | None], dict[str, np.ndarray]] = {}
        self._figures: dict[str, dict[str, dict[str, float]]] = {}  # timeline -> layer -> quantity -> value
        self._stacked: list[tuple[str, str, tuple[str, ...], np.ndarray]] = []  # (timeline, layer, quantities, block)
        self._stacked_plans: dict[tuple, tuple[str, dict]] = {}  # tag and record of a stacked group
        # what the names of the values queued decide, computed once per set of names: tag, quantities, record
        self._group_plans: dict[tuple, list[tuple[str, list[str], dict]]] = {}
        self._figure_plans: dict[tuple, list[tuple[str, list[str], list[str], dict]]] = {}

    @property
    def path(self) -> str:
        """Path of the event file being written."""
        return str(self._file.path)

    def _add(self, tag: str, tensor, record: dict) -> None:
        value = summary_pb2.Summary.Value(tag=tag, tensor=tensor)
        if self._metadata_written.get(tag, 0) < METADATA_COPIES:
            value.metadata.CopyFrom(schema.make_metadata(record))
            self._metadata_written[tag] = self._metadata_written.get(tag, 0) + 1
        self._pending.append(value)

    def _add_array(self, tag: str, values: np.ndarray, record: dict) -> None:
        """Queue an array under ``tag``: a new value while the tag still gets its metadata, then
        that value (without metadata) refilled, which builds no protobuf message per step."""
        array = np.asarray(values, dtype=np.float32)
        key = (tag, array.shape)
        reused = self._reused.get(key)
        if reused is None or self._metadata_written.get(tag, 0) < METADATA_COPIES:
            self._add(tag, schema.encode_array(array), record)
            self._reused[key] = summary_pb2.Summary.Value(tag=tag, tensor=self._pending[-1].tensor)
            return
        reused.tensor.tensor_content = schema.array_content(array)
        self._pending.append(reused)

    def _unique_tag(self, tag: str, record: dict) -> str:
        """``tag``, or a longer one when another series of this file already has ``tag`` (a
        layer path that spells another's tag, or a collision of :func:`schema.figures_tag`)."""
        if self._records.setdefault(tag, record) == record:
            return tag
        return self._unique_tag(f"{tag}/{record.get('layer') or ','.join(record.get('layers', []))}", record)

    def add_layer(self, layer: str, quantity: str, values, timeline: str = schema.TIMELINE_EPOCH) -> None:
        """Queue one per-layer quantity (array or scalar) for the next :meth:`write_step`."""
        if quantity in schema.LAYER_SCALAR_QUANTITIES and np.ndim(values) == 0:
            self._figures.setdefault(timeline, {}).setdefault(layer, {})[quantity] = float(values)
            return
        self._arrays.setdefault((timeline, schema.KIND_LAYER, layer), {})[quantity] = np.asarray(values, np.float32)

    def add_layer_group(
        self, layer: str, quantities: Sequence[str], block: np.ndarray, timeline: str = schema.TIMELINE_EPOCH
    ) -> None:
        """Queue quantities of one group of a layer already stacked as ``block[quantities, ...]``
        (the members of one :data:`schema.CHANNEL_GROUPS` group, in its order): written as it is.
        ``ValueError`` for any other set of quantities."""
        key = (timeline, layer, tuple(quantities), block.shape)
        if key not in self._stacked_plans:
            order = schema.group_order(schema.KIND_LAYER, quantities)
            if [members for _, members in order] != [list(quantities)] or len(quantities) != len(block):
                raise ValueError(f"{list(quantities)} are not one group's members in order, one row each")
            record = schema.group_record(schema.KIND_LAYER, quantities, layer, timeline)
            tag = schema.group_tag(schema.KIND_LAYER, quantities, layer, timeline)
            self._stacked_plans[key] = (self._unique_tag(tag, record), record)
        self._stacked.append((*key[:3], block))

    def add_figures(
        self, layers: Sequence[str], figures: dict[str, np.ndarray], timeline: str = schema.TIMELINE_EPOCH
    ) -> None:
        """Queue per-layer figures of several layers: ``figures[quantity][i]`` belongs to
        ``layers[i]`` (quantities of :data:`schema.LAYER_SCALAR_QUANTITIES`)."""
        by_layer = self._figures.setdefault(timeline, {})
        for quantity, column in figures.items():
            if quantity not in schema.LAYER_SCALAR_QUANTITIES:
                raise ValueError(f"{quantity!r} is not a per-layer figure; see schema.LAYER_SCALAR_QUANTITIES")
            for layer, value in zip(layers, np.asarray(column, dtype=np.float64).tolist()):
                by_layer.setdefault(layer, {})[quantity] = value

    def add_model(self, quantity: str, values, timeline: str = schema.TIMELINE_EPOCH) -> None:
        """Queue one model-level quantity (probe outputs, output gap)."""
        self._arrays.setdefault((timeline, schema.KIND_MODEL, None), {})[quantity] = np.asarray(values, np.float32)

    def add_config(self, config: dict) -> None:
        """Queue the run configuration record (JSON)."""
        record = schema.content_record(schema.KIND_CONFIG, "config")
        text = json.dumps(config, sort_keys=True, default=str)
        self._add(schema.CONFIG_TAG, schema.encode_text(text), record)

    def add_scalar(self, tag: str, value: float) -> None:
        """Queue a plain scalar, shown by TensorBoard's Scalars tab."""
        self._pending.append(summary_pb2.Summary.Value(tag=tag, simple_value=float(value)))

    def _group_plan(self, timeline: str, kind: str, layer: str | None, arrays: dict) -> list:
        """Tag, quantities and record of each ``[quantities, ...]`` tensor of one layer's arrays."""
        plan = []
        for _, members in schema.group_order(kind, list(arrays)):
            by_shape: dict[tuple[int, ...], list[str]] = {}
            for quantity in members:
                by_shape.setdefault(arrays[quantity].shape, []).append(quantity)
            for quantities in by_shape.values():
                record = schema.group_record(kind, quantities, layer, timeline)
                plan.append(
                    (self._unique_tag(schema.group_tag(kind, quantities, layer, timeline), record), quantities, record)
                )
        return plan

    def _add_groups(self) -> None:
        """Queue the arrays, one ``[quantities, ...]`` tensor per group (and value shape)."""
        for timeline, layer, quantities, block in self._stacked:
            tag, record = self._stacked_plans[(timeline, layer, quantities, block.shape)]
            self._add_array(tag, block, record)
        self._stacked = []
        for (timeline, kind, layer), arrays in self._arrays.items():
            names = (timeline, kind, layer, tuple((q, a.shape) for q, a in arrays.items()))
            if names not in self._group_plans:
                self._group_plans[names] = self._group_plan(timeline, kind, layer, arrays)
            for tag, quantities, record in self._group_plans[names]:
                self._add_array(tag, np.stack([arrays[q] for q in quantities]), record)
        self._arrays = {}

    def _figure_plan(self, timeline: str, by_layer: dict[str, dict[str, float]]) -> list:
        """Tag, layers, quantities and record of each packed value of one timeline's figures."""
        groups: dict[tuple[str, ...], list[str]] = {}
        for layer, named in by_layer.items():
            groups.setdefault(tuple(q for q in schema.LAYER_SCALAR_QUANTITIES if q in named), []).append(layer)
        plan = []
        for quantities, layers in groups.items():
            record = schema.figures_record(layers, quantities, timeline)
            plan.append((self._unique_tag(schema.figures_tag(record), record), layers, list(quantities), record))
        return plan

    def _add_figures(self) -> None:
        """Queue the per-layer figures, one packed value per set of figures logged."""
        for timeline, by_layer in self._figures.items():
            names = (timeline, tuple((layer, tuple(named)) for layer, named in by_layer.items()))
            if names not in self._figure_plans:
                self._figure_plans[names] = self._figure_plan(timeline, by_layer)
            for tag, layers, quantities, record in self._figure_plans[names]:
                values = np.array([[by_layer[layer][q] for q in quantities] for layer in layers], dtype=np.float32)
                self._add_array(tag, values, record)
        self._figures = {}

    def write_step(self, step: int, flush: bool = True) -> None:
        """Write everything queued as one event at ``step``; hand it to storage unless ``flush``
        is False (then :meth:`flush` or :meth:`close` does)."""
        self._add_groups()
        self._add_figures()
        if not self._pending:
            return
        event = event_pb2.Event(wall_time=time.time(), step=int(step))
        event.summary.value.extend(self._pending)  # copies: a reused value may be refilled next step
        self._pending = []
        self._file.write(event)
        if flush:
            self._file.flush()

    def flush(self) -> None:
        """Hand every event written so far to storage (a file: the OS; an object store: one object)."""
        self._file.flush()

    def close(self) -> None:
        """Close the event file (queued values are dropped)."""
        self._pending = []
        self._arrays = {}
        self._figures = {}
        self._stacked = []
        self._file.close()
