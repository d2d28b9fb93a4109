"""TensorBoard's data-provider interface over a logdir, read by the project's TF-free event
reader (:mod:`bn_inspect.events`): what the tab's queries (:mod:`tb_plugin.queries`, through
:class:`tb_plugin.provider_reader.ProviderReader`) read inside a notebook kernel, with no
TensorBoard server.

It holds what the tab reads: the ``bn_inspect`` tensors and the plain scalars of every run (a
directory of event files, named as TensorBoard names it), from a local path or any fsspec URL
(:mod:`bn_inspect.storage`). :meth:`LogdirProvider.reload` reads
the logdir again, re-parsing only the event files that changed.

Example:
    >>> provider = LogdirProvider("logs")                                   # doctest: +SKIP
    >>> reader = ProviderReader(provider, None, "")                         # doctest: +SKIP
    >>> sorted(reader.index())                                              # doctest: +SKIP
    ['epochs/5', 'epochs/50']
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tensorboard.data import provider
from tensorboard.plugins.scalar import metadata as scalar_metadata

from bn_inspect import schema, storage
from bn_inspect.events import read_events
from bn_inspect.reader import event_files, run_directories


@dataclass
class _Tag:
    """One tag's points in the order written, and the plugin content of its first value."""

    plugin_content: bytes
    points: list[tuple[int, float, Any]] = field(default_factory=list)


@dataclass
class _FileLog:
    """What one event file holds; ``signature`` (size, modification time) tells when to read it
    again."""

    signature: tuple[Any, Any]
    tensors: dict[str, _Tag] = field(default_factory=dict)
    scalars: dict[str, _Tag] = field(default_factory=dict)  # plain scalars (no plugin content)


def _decoded(tensor: Any) -> Any:
    value = schema.decode_tensor(tensor)
    # Text as TensorBoard's loaders give it: a 0-d object array of bytes.
    return np.array(value.encode("utf-8"), dtype=object) if isinstance(value, str) else value


def _read_file(path: storage.Location, signature: tuple[Any, Any]) -> _FileLog:
    log = _FileLog(signature)
    for event in read_events(path):
        if not event.HasField("summary"):
            continue
        for value in event.summary.value:
            if value.HasField("simple_value"):
                log.scalars.setdefault(value.tag, _Tag(b"")).points.append(
                    (event.step, event.wall_time, value.simple_value)
                )
                continue
            tag = log.tensors.get(value.tag)
            if tag is None:
                plugin_data = value.metadata.plugin_data
                if plugin_data.plugin_name != schema.PLUGIN_NAME:
                    continue
                tag = log.tensors[value.tag] = _Tag(plugin_data.content)
            if value.HasField("tensor"):
                tag.points.append((event.step, event.wall_time, _decoded(value.tensor)))
    return log


def _signature(path: storage.Location) -> tuple[Any, Any]:
    info = path.fs.info(path.path)
    changed = next((info[key] for key in ("mtime", "LastModified", "updated", "created") if key in info), None)
    return info.get("size"), str(changed)


def _wanted(names: Iterable[str], wanted: Iterable[str] | None) -> list[str]:
    return [name for name in names if wanted is None or name in wanted]


class LogdirProvider(provider.DataProvider):
    """The runs under ``logdir`` (a local path or fsspec URL) as a TensorBoard data provider
    (one experiment; ``ctx`` and ``experiment_id`` are ignored). Raises ``FileNotFoundError``
    naming ``logdir`` when it is not a directory."""

    def __init__(self, logdir: str | os.PathLike | storage.Location) -> None:
        if isinstance(logdir, (str, os.PathLike)) and "://" not in os.fspath(logdir):
            logdir = os.path.expanduser(os.fspath(logdir))
        self.logdir = storage.locate(logdir)
        self._files: dict[str, _FileLog] = {}
        self._runs: dict[str, list[_FileLog]] = {}
        self.reload()

    def reload(self) -> None:
        """Read the logdir again: new runs and files, and files that grew or changed."""
        if not storage.is_directory(self.logdir):
            raise FileNotFoundError(f"logdir {str(self.logdir)!r} does not exist or is not a directory")
        files: dict[str, _FileLog] = {}
        runs: dict[str, list[_FileLog]] = {}
        for name, directory in run_directories(self.logdir):
            for path in event_files(directory):
                try:
                    signature = _signature(path)
                except OSError:
                    continue  # removed while listing
                known = self._files.get(path.path)
                if known is None or known.signature != signature:
                    known = _read_file(path, signature)
                files[path.path] = known
                runs.setdefault(name, []).append(known)
        self._files, self._runs = files, runs

    def _merged_tags(self, run: str, scalars: bool) -> dict[str, _Tag]:
        """One run's ``bn_inspect`` tensor tags (or its plain-scalar tags), with the points of
        every file of the run."""
        merged: dict[str, _Tag] = {}
        for log in self._runs.get(run, []):
            for name, tag in (log.scalars if scalars else log.tensors).items():
                merged.setdefault(name, _Tag(tag.plugin_content)).points.extend(tag.points)
        return merged

    def _selected_runs(self, run_tag_filter: provider.RunTagFilter | None) -> list[str]:
        return _wanted(sorted(self._runs), run_tag_filter.runs if run_tag_filter else None)

    def _listed(self, scalars: bool, series: type, run_tag_filter: provider.RunTagFilter | None) -> dict[str, dict]:
        """``list_tensors`` / ``list_scalars``: each selected run's tags as ``series`` records."""
        result = {}
        for run in self._selected_runs(run_tag_filter):
            tags = self._merged_tags(run, scalars)
            listed = {
                name: series(
                    max_step=max(point[0] for point in tags[name].points),
                    max_wall_time=max(point[1] for point in tags[name].points),
                    plugin_content=tags[name].plugin_content,
                    description="",
                    display_name="",
                )
                for name in _wanted(tags, run_tag_filter.tags if run_tag_filter else None)
                if tags[name].points
            }
            if listed:
                result[run] = listed
        return result

    def _read(self, scalars: bool, datum: type, listing: dict[str, dict], downsample: int | None) -> dict[str, dict]:
        """``read_tensors`` / ``read_scalars``: the points of every listed tag as ``datum`` records."""
        result = {}
        for run, tags in listing.items():
            stored = self._merged_tags(run, scalars)
            result[run] = {
                name: _downsampled([datum(*point) for point in stored[name].points], downsample) for name in tags
            }
        return result

    def list_runs(self, ctx: Any = None, *, experiment_id: str) -> list[provider.Run]:
        return [provider.Run(run_id=name, run_name=name, start_time=None) for name in sorted(self._runs)]

    def list_tensors(
        self, ctx: Any = None, *, experiment_id: str, plugin_name: str, run_tag_filter: provider.RunTagFilter = None
    ) -> dict[str, dict[str, provider.TensorTimeSeries]]:
        if plugin_name != schema.PLUGIN_NAME:
            return {}
        return self._listed(False, provider.TensorTimeSeries, run_tag_filter)

    def read_tensors(
        self,
        ctx: Any = None,
        *,
        experiment_id: str,
        plugin_name: str,
        downsample: int | None = None,
        run_tag_filter: provider.RunTagFilter = None,
    ) -> dict[str, dict[str, list[provider.TensorDatum]]]:
        listing = self.list_tensors(
            ctx, experiment_id=experiment_id, plugin_name=plugin_name, run_tag_filter=run_tag_filter
        )
        return self._read(False, provider.TensorDatum, listing, downsample)

    def list_scalars(
        self, ctx: Any = None, *, experiment_id: str, plugin_name: str, run_tag_filter: provider.RunTagFilter = None
    ) -> dict[str, dict[str, provider.ScalarTimeSeries]]:
        if plugin_name != scalar_metadata.PLUGIN_NAME:
            return {}
        return self._listed(True, provider.ScalarTimeSeries, run_tag_filter)

    def read_scalars(
        self,
        ctx: Any = None,
        *,
        experiment_id: str,
        plugin_name: str,
        downsample: int | None = None,
        run_tag_filter: provider.RunTagFilter = None,
    ) -> dict[str, dict[str, list[provider.ScalarDatum]]]:
        listing = self.list_scalars(
            ctx, experiment_id=experiment_id, plugin_name=plugin_name, run_tag_filter=run_tag_filter
        )
        return self._read(True, provider.ScalarDatum, listing, downsample)

    def read_last_scalars(
        self, ctx: Any = None, *, experiment_id: str, plugin_name: str, run_tag_filter: provider.RunTagFilter = None
    ) -> dict[str, dict[str, provider.ScalarDatum]]:
        read = self.read_scalars(
            ctx, experiment_id=experiment_id, plugin_name=plugin_name, run_tag_filter=run_tag_filter
        )
        return {run: {name: points[-1] for name, points in tags.items()} for run, tags in read.items()}


def _downsampled(points: list, downsample: int | None) -> list:
    """At most ``downsample`` points, evenly spaced, the last one kept (as TensorBoard does)."""
    if downsample is None or len(points) <= downsample:
        return points
    if downsample <= 0:
        return []
    keep = np.linspace(0, len(points) - 1, downsample).round().astype(int)
    return [points[i] for i in np.unique(keep)]
