"""Read bn-inspect logs into numpy arrays, without TensorFlow and without a TensorBoard server.

Example:
    >>> runs = load_logdir("logs")                          # doctest: +SKIP
    >>> run = runs["epochs/50"]                             # doctest: +SKIP
    >>> mm = run.layers["batch_normalization"]["moving_mean"]  # doctest: +SKIP
    >>> mm.steps.shape, mm.values.shape                     # doctest: +SKIP
    ((51,), (51, 32))
    >>> run.config["layers"][0]["momentum"]                 # doctest: +SKIP
    0.99
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bn_inspect import schema, storage
from bn_inspect.events import is_event_file, read_events
from bn_inspect.run_config import RunConfig, in_model_order, newest, parse


@dataclass
class Series:
    """One quantity over steps, sorted by step, one value per step (the last one written)."""

    steps: np.ndarray  # int64 [n]
    values: np.ndarray  # float32 [n, ...]
    wall_times: np.ndarray  # float64 [n]

    def at(self, step: int) -> np.ndarray:
        """The value logged at ``step``; ``KeyError`` if that step was not logged."""
        hits = np.nonzero(self.steps == step)[0]
        if hits.size == 0:
            raise KeyError(f"step {step} not logged; logged steps: {self.steps.tolist()}")
        return self.values[hits[0]]


@dataclass
class RunData:
    """Everything one run (one directory of event files) logged."""

    name: str
    config: dict | None = None  # the newest run-config record
    configs: list[tuple[int, dict]] = field(default_factory=list)  # (step, record), one per fit
    layers: dict[str, dict[str, Series]] = field(default_factory=dict)  # epoch timeline
    model: dict[str, Series] = field(default_factory=dict)  # epoch timeline
    batch_layers: dict[str, dict[str, Series]] = field(default_factory=dict)  # global-step timeline
    scalars: dict[str, Series] = field(default_factory=dict)  # plain Scalars-tab values

    @property
    def run_config(self) -> RunConfig | None:
        """The newest run configuration, typed (``None`` without one)."""
        return parse(self.config)

    @property
    def layer_paths(self) -> list[str]:
        """Every BN layer of the run, configured in its newest fit or logged, in model order."""
        config = self.run_config
        return in_model_order(set(config.paths if config else ()) | set(self.layers), config)

    @property
    def epochs(self) -> np.ndarray:
        """All epoch-timeline steps logged by this run."""
        steps = [s.steps for quantities in self.layers.values() for s in quantities.values()]
        return np.unique(np.concatenate(steps)) if steps else np.zeros(0, dtype=np.int64)

    def _repr_html_(self) -> str:
        """A compact summary in notebooks (:func:`bn_inspect.notebook.displays.run_summary`)."""
        from bn_inspect.notebook.displays import run_summary

        return run_summary(self)


class _SeriesBuilder:
    """Collects (step, wall_time, value) points; a repeated step keeps the last written."""

    def __init__(self) -> None:
        self.points: dict[int, tuple[float, Any]] = {}

    def add(self, step: int, wall_time: float, value: Any) -> None:
        self.points[step] = (wall_time, value)

    def build(self) -> Series:
        steps = sorted(self.points)
        values = [self.points[s][1] for s in steps]
        try:
            stacked = np.stack(values).astype(np.float32, copy=False)
        except ValueError:  # shapes changed between fits (e.g. a rebuilt model)
            stacked = np.empty(len(values), dtype=object)
            stacked[:] = values
        return Series(
            steps=np.asarray(steps, dtype=np.int64),
            values=stacked,
            wall_times=np.asarray([self.points[s][0] for s in steps], dtype=np.float64),
        )


def event_files(directory: str | os.PathLike | storage.Location) -> list[storage.Location]:
    """Event files directly inside ``directory`` (a path or fsspec URL), oldest first (by file
    name, as TensorBoard)."""
    location = storage.locate(directory)
    if not storage.is_directory(location):
        return []
    return sorted((f for f in storage.files_in(location) if is_event_file(f.name)), key=lambda f: f.name)


def iter_bn_values(directory: str | os.PathLike | storage.Location) -> Iterator[tuple[dict, int, float, Any]]:
    """Yield ``(content_record, step, wall_time, decoded_value)`` for every bn-inspect value
    in the event files of one run directory, packed per-layer figures unpacked
    (:func:`schema.unpacked_records`). Plain scalars come with a record of kind ``"scalar"``
    and their tag as quantity."""
    records: dict[str, list[tuple[dict, schema.Position]] | None] = {}  # tag -> its series
    for path in event_files(directory):
        for event in read_events(path):
            if not event.HasField("summary"):
                continue
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    if value.tag in schema.PLAIN_SCALAR_TAGS:
                        record = {"kind": "scalar", "quantity": value.tag, "timeline": schema.TIMELINE_EPOCH}
                        yield record, event.step, event.wall_time, np.float32(value.simple_value)
                    continue
                if value.tag not in records or records[value.tag] is None:
                    metadata = value.metadata.plugin_data
                    if metadata.plugin_name == schema.PLUGIN_NAME:
                        records[value.tag] = schema.unpacked_records(schema.parse_content(metadata.content))
                    elif value.tag not in records:
                        records[value.tag] = None
                series = records.get(value.tag)
                if series is None or not value.HasField("tensor"):
                    continue
                decoded = schema.decode_tensor(value.tensor)
                for record, position in series:
                    yield record, event.step, event.wall_time, decoded if position is None else decoded[position]


def last_logged_step(directory: str | os.PathLike | storage.Location) -> int | None:
    """Largest epoch-timeline step already logged in ``directory`` (``None`` when none)."""
    steps = [
        step
        for record, step, _, _ in iter_bn_values(directory)
        if record["kind"] != "scalar" and record["timeline"] == schema.TIMELINE_EPOCH
    ]
    return max(steps) if steps else None


def load_run(directory: str | os.PathLike | storage.Location, name: str) -> RunData:
    """Read one run directory."""
    run = RunData(name=name)
    builders: dict[tuple, _SeriesBuilder] = {}
    for record, step, wall_time, value in iter_bn_values(directory):
        kind, timeline = record["kind"], record["timeline"]
        if kind == schema.KIND_CONFIG:
            run.configs.append((step, json.loads(value)))
            continue
        key = (kind, timeline, record.get("layer"), record["quantity"])
        builders.setdefault(key, _SeriesBuilder()).add(step, wall_time, value)
    for (kind, timeline, layer, quantity), builder in sorted(builders.items(), key=lambda kv: str(kv[0])):
        series = builder.build()
        if kind == schema.KIND_LAYER:
            target = run.layers if timeline == schema.TIMELINE_EPOCH else run.batch_layers
            target.setdefault(layer, {})[quantity] = series
        elif kind == schema.KIND_MODEL and timeline == schema.TIMELINE_EPOCH:
            run.model[quantity] = series
        elif kind == "scalar":
            run.scalars[quantity] = series
    run.configs.sort(key=lambda item: item[0])
    run.config = newest(run.configs)
    run.layers = {path: run.layers[path] for path in in_model_order(run.layers, run.run_config)}
    return run


def run_directories(logdir: str | os.PathLike | storage.Location) -> Iterator[tuple[str, storage.Location]]:
    """``(run name, directory)`` for every directory under ``logdir`` holding event files.

    The run name is the path relative to ``logdir`` with ``/`` separators (``"."`` for
    ``logdir`` itself), as TensorBoard names runs. ``logdir`` is a path or fsspec URL; on
    object stores this is one recursive listing.
    """
    root = storage.locate(logdir)
    names = set()
    for file in storage.files_below(root):
        relative = storage.relative_path(file, root)
        if is_event_file(relative.rpartition("/")[2]):
            names.add(relative.rpartition("/")[0] or ".")
    for name in sorted(names):
        yield name, root if name == "." else root.join(*name.split("/"))


def load_logdir(
    logdir: str | os.PathLike | storage.Location, storage_options: dict | None = None
) -> dict[str, RunData]:
    """Load every run under ``logdir`` that holds bn-inspect data, keyed by run name.

    ``logdir`` is a local path or any fsspec URL (``s3://bucket/exp``, ``gs://...``);
    ``storage_options`` go to its filesystem (see :func:`bn_inspect.storage.locate`).
    Raises ``FileNotFoundError`` when ``logdir`` does not exist.
    """
    root = storage.locate(logdir, storage_options)
    if not storage.is_directory(root):
        raise FileNotFoundError(f"logdir {str(root)!r} does not exist or is not a directory")
    runs = {}
    for name, directory in run_directories(root):
        run = load_run(directory, name)
        if run.layers or run.configs:
            runs[name] = run
    return runs


def to_dataframe(runs: dict[str, RunData]):
    """Long-format ``pandas.DataFrame``: run, layer, quantity, step, channel, value.

    Per-layer epoch-timeline quantities only; needs pandas (``pip install pandas``).
    """
    import pandas as pd

    frames = []
    for run_name, run in runs.items():
        for layer, quantities in run.layers.items():
            for quantity, series in quantities.items():
                values = series.values.reshape(len(series.steps), -1)
                channels = values.shape[1]
                frames.append(
                    pd.DataFrame(
                        {
                            "run": run_name,
                            "layer": layer,
                            "quantity": quantity,
                            "step": np.repeat(series.steps, channels),
                            "channel": np.tile(np.arange(channels), len(series.steps)),
                            "value": values.reshape(-1),
                        }
                    )
                )
    columns = ["run", "layer", "quantity", "step", "channel", "value"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
