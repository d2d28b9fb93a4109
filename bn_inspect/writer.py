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

from tensorboard.compat.proto import event_pb2, summary_pb2

from bn_inspect import schema
from bn_inspect.events import EventFileWriter


class SummaryWriter:
    """Collects the values of one step and writes them as one ``Event``.

    Metadata is attached to the first value of each tag in a file only, as TensorBoard
    expects (it keeps the first metadata of a series).
    """

    def __init__(self, log_dir: str | os.PathLike) -> None:
        self._file = EventFileWriter(log_dir)
        self._tags_with_metadata: set[str] = set()
        self._pending: list[summary_pb2.Summary.Value] = []

    @property
    def path(self) -> str:
        """Path of the event file being written."""
        return str(self._file.path)

    def _add(self, tag: str, tensor, metadata: summary_pb2.SummaryMetadata | None) -> None:
        value = summary_pb2.Summary.Value(tag=tag, tensor=tensor)
        if metadata is not None and tag not in self._tags_with_metadata:
            value.metadata.CopyFrom(metadata)
            self._tags_with_metadata.add(tag)
        self._pending.append(value)

    def add_layer(self, layer: str, quantity: str, values, timeline: str = schema.TIMELINE_EPOCH) -> None:
        """Queue one per-layer quantity (array or scalar) for the next :meth:`write_step`."""
        record = schema.content_record(schema.KIND_LAYER, quantity, layer, timeline)
        tag = schema.tag_for(schema.KIND_LAYER, quantity, layer, timeline)
        self._add(tag, schema.encode_array(values), schema.make_metadata(record))

    def add_model(self, quantity: str, values, timeline: str = schema.TIMELINE_EPOCH) -> None:
        """Queue one model-level quantity (probe outputs, output gap)."""
        record = schema.content_record(schema.KIND_MODEL, quantity, None, timeline)
        tag = schema.tag_for(schema.KIND_MODEL, quantity, None, timeline)
        self._add(tag, schema.encode_array(values), schema.make_metadata(record))

    def add_config(self, config: dict) -> None:
        """Queue the run configuration record (JSON)."""
        record = schema.content_record(schema.KIND_CONFIG, "config")
        text = json.dumps(config, sort_keys=True, default=str)
        self._add(schema.CONFIG_TAG, schema.encode_text(text), schema.make_metadata(record))

    def add_scalar(self, tag: str, value: float) -> None:
        """Queue a plain scalar, shown by TensorBoard's Scalars tab."""
        self._pending.append(summary_pb2.Summary.Value(tag=tag, simple_value=float(value)))

    def write_step(self, step: int) -> None:
        """Write everything queued as one event at ``step`` and flush it to disk."""
        if not self._pending:
            return
        event = event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary_pb2.Summary(value=self._pending))
        self._pending = []
        self._file.write(event)
        self._file.flush()

    def close(self) -> None:
        """Close the event file (queued values are dropped)."""
        self._pending = []
        self._file.close()

