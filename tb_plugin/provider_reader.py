"""Read bn-inspect series through TensorBoard's data provider.

The same code serves the Python loader (``MultiplexerDataProvider``) and the Rust data server
(``GrpcDataProvider``, ``--load_fast=true``). A series is identified by the content record in
its ``plugin_content`` (see :mod:`bn_inspect.schema`), never by parsing its tag.

Example:
    >>> reader = ProviderReader(context.data_provider, plugin_util.context(environ),
    ...                         plugin_util.experiment_id(environ))      # doctest: +SKIP
    >>> run = reader.index()["default"]                                  # doctest: +SKIP
    >>> key = SeriesKey(schema.KIND_LAYER, schema.GAMMA, "bn")            # doctest: +SKIP
    >>> reader.read(run, [key])[key].values.shape                        # doctest: +SKIP
    (4, 16)
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

import numpy as np
from tensorboard.data import provider
from tensorboard.plugins.scalar import metadata as scalar_metadata

from bn_inspect import schema
from bn_inspect.reader import RunData, Series
from bn_inspect.run_config import in_model_order, newest, parse
from tb_plugin.read_cache import ReaderCache
from tb_plugin.series import dedupe_last

T = TypeVar("T")

# Points asked for per series: all of them in practice. What the server retains is set by
# the loader (``samples_per_plugin``), not here.
MAX_POINTS = 1_000_000


class SeriesKey(NamedTuple):
    """What a series holds, from its content record (a tuple: hashed in C, and a listing of
    many runs hashes many)."""

    kind: str
    quantity: str
    layer: str | None = None
    timeline: str = schema.TIMELINE_EPOCH


@dataclass
class RunIndex:
    """The bn-inspect series of one run: content key -> tag, or for per-layer figures stored
    packed, -> where in which tags (:func:`schema.unpacked_records`)."""

    name: str
    tags: dict[SeriesKey, str]
    packed: dict[SeriesKey, list[tuple[str, tuple[int, ...]]]] = field(default_factory=dict)
    version: int = 0  # changes when the run gets new data (its tags' newest steps and wall times)

    _by_layer: dict[tuple[str | None, str], list[str]] | None = field(default=None, repr=False, compare=False)

    def keys(self) -> set[SeriesKey]:
        """Every series the run holds."""
        return set(self.tags) | set(self.packed)

    def _quantities_by_layer(self) -> dict[tuple[str | None, str], list[str]]:
        """(layer, timeline) -> its quantities in schema order; built once (an index is not
        changed after listing)."""
        if self._by_layer is None:
            present: dict[tuple[str | None, str], set[str]] = {}
            for key in self.keys():
                if key.kind == schema.KIND_LAYER:
                    present.setdefault((key.layer, key.timeline), set()).add(key.quantity)
            self._by_layer = {at: [q for q in schema.LAYER_QUANTITIES if q in found] for at, found in present.items()}
        return self._by_layer

    def layers(self) -> list[str]:
        """Paths of the layers with data, sorted."""
        return sorted({layer for layer, _ in self._quantities_by_layer() if layer is not None})

    def quantities(self, layer: str, timeline: str = schema.TIMELINE_EPOCH) -> list[str]:
        """Quantities logged for ``layer`` on ``timeline``, in schema order."""
        return list(self._quantities_by_layer().get((layer, timeline), []))

    @property
    def config_tag(self) -> str | None:
        """Tag of the run-config record, if the run has one."""
        return next((tag for key, tag in self.tags.items() if key.kind == schema.KIND_CONFIG), None)


@functools.lru_cache(maxsize=65536)
def _unpacked(content: bytes) -> tuple[tuple[SeriesKey, tuple[int, ...] | None], ...] | None:
    """The series a stored content record holds, each with its place in the stored value
    (:func:`schema.unpacked_records`; ``None``: not one of ours), decoded once per distinct
    record: every listing of every run repeats them."""
    try:
        records = schema.unpacked_records(schema.parse_content(content))
    except ValueError:
        return None
    return tuple(
        (SeriesKey(series["kind"], series["quantity"], series.get("layer"), series["timeline"]), position)
        for series, position in records
    )


def _text(value: Any) -> str:
    item = np.asarray(value, dtype=object).reshape(-1)[0]
    return item.decode("utf-8") if isinstance(item, bytes) else str(item)


def _tags_of(run: RunIndex, keys: Sequence[SeriesKey]) -> list[str]:
    """The tags holding ``keys`` in ``run`` (packed ones once), and its config tag."""
    tags = [run.tags[key] for key in keys if key in run.tags]
    tags += [tag for key in keys for tag, _ in run.packed.get(key, [])]
    return list(dict.fromkeys(tags + ([run.config_tag] if run.config_tag else [])))


def _series_of(run: RunIndex, keys: Sequence[SeriesKey], decoded: dict[str, Any]) -> dict[SeriesKey, Series]:
    """The series of ``keys`` from ``run``'s tags as read (each tag's points stacked, see
    :meth:`ProviderReader._read_tensors`): a packed series is a slice of its tag's values."""
    result = {}
    for key in keys:
        if key in run.tags and run.tags[key] in decoded:
            result[key] = decoded[run.tags[key]]
        places = [(tag, position) for tag, position in run.packed.get(key, []) if tag in decoded]
        places = [(tag, position) for tag, position in places if len(decoded[tag].steps)]
        if len(places) == 1:
            series, position = decoded[places[0][0]], places[0][1]
            result[key] = Series(series.steps, series.values[(slice(None), *position)], series.wall_times)
        elif len(places) > 1:  # the set of figures changed between steps: the last written wins
            found = [
                (step, wall_time, values[position])
                for tag, position in places
                for step, wall_time, values in zip(decoded[tag].steps, decoded[tag].wall_times, decoded[tag].values)
            ]
            result[key] = dedupe_last(sorted(found, key=lambda point: point[1]))
    return result


def _config_records(datums: list) -> list[tuple[int, dict]]:
    """Run-config records ``(step, record)`` by step, in the order written within a step."""
    points = sorted(enumerate(datums), key=lambda item: (item[1].step, item[0]))
    return [(int(point.step), json.loads(_text(point.numpy))) for _, point in points]


class ProviderReader:
    """bn-inspect views of one request's data provider, context and experiment.

    With a ``cache`` (:class:`~tb_plugin.read_cache.ReaderCache`), the index of a run is
    listed once and reused by later requests (listing a run's series costs a data-server
    round trip, ~40 ms, and under the Python loader a scan of every point), and so are the
    points read and values computed while the run has no new data. A cached index stays
    right: a tag always names the same series (:func:`schema.group_tag`). It only lacks
    series logged since: the ``runs`` route (the tab's Reload) lists every run again, and a
    run whose data changed gets a new version, so nothing cached of it is used again.
    """

    def __init__(
        self, data_provider: provider.DataProvider, ctx: Any, experiment_id: str, cache: ReaderCache | None = None
    ) -> None:
        self._provider = data_provider
        self._ctx = ctx
        self._experiment_id = experiment_id
        self._shared = cache is not None
        self._cache = cache if cache is not None else ReaderCache(max_values=0)  # this request only

    def index(self, runs: Sequence[str] | None = None) -> dict[str, RunIndex]:
        """Runs with bn-inspect series (all, listed afresh; or those named in ``runs``, from
        the index cache when it holds them all), by name."""
        cache = self._cache.indexes if self._shared else {}
        if runs is not None:
            cached = {run: cache.get((self._experiment_id, run)) for run in runs}
            if all(index is not None for index in cached.values()):
                return cached
        result = self._list(runs)
        if runs is None:
            for key in [key for key in list(cache) if key[0] == self._experiment_id and key[1] not in result]:
                cache.pop(key, None)
        cache.update({(self._experiment_id, name): index for name, index in result.items()})
        return result

    def _list(self, runs: Sequence[str] | None) -> dict[str, RunIndex]:
        listing = self._provider.list_tensors(
            self._ctx,
            experiment_id=self._experiment_id,
            plugin_name=schema.PLUGIN_NAME,
            run_tag_filter=provider.RunTagFilter(runs=list(runs)) if runs is not None else None,
        )
        known = self._cache.indexes if self._shared else {}
        result = {}
        for run, tags in listing.items():
            newest = sorted((tag, series.max_step, series.max_wall_time) for tag, series in tags.items())
            version = hash(tuple(newest))
            previous = known.get((self._experiment_id, run))
            if previous is not None and previous.version == version:
                result[run] = previous  # no new data: the same series
                continue
            index = RunIndex(run, {}, version=version)
            for tag, time_series in tags.items():
                series_of = _unpacked(time_series.plugin_content)
                if series_of is None:
                    continue  # not ours, or written by a newer bn-inspect
                for key, position in series_of:
                    if position is None:
                        index.tags[key] = tag
                    else:
                        index.packed.setdefault(key, []).append((tag, position))
            if index.keys():
                result[run] = index
        return result

    def _read_tensors(
        self, runs: Sequence[RunIndex], tags: Sequence[str], points_per_tag: int = MAX_POINTS
    ) -> dict[str, dict[str, Any]]:
        """``tags`` of ``runs`` decoded: a run's config tag as its config records (every one as
        ``(step, record)``, by step, in the order written within a step, as
        :attr:`bn_inspect.reader.RunData.configs`), any other tag as one
        :class:`~bn_inspect.reader.Series` of every point (or, with ``points_per_tag=1``, of the
        last one: both loaders' downsampling always keeps the last point). From the cache, the rest in one data-provider call (with the
        Rust data server, one round trip: ~40 ms each on loopback, so routes make as few as
        they can)."""
        result: dict[str, dict[str, Any]] = {run.name: {} for run in runs}
        if not tags:
            return result
        missing_runs, missing_tags = [], set()
        for run in runs:
            for tag in tags:
                value = self._cache.points((self._experiment_id, run.name, run.version, tag, points_per_tag))
                if value is None:
                    missing_runs.append(run)
                    missing_tags.add(tag)
                else:
                    result[run.name][tag] = value
        missing_runs = list({run.name: run for run in missing_runs}.values())
        if not missing_runs:
            return result
        read = self._provider.read_tensors(
            self._ctx,
            experiment_id=self._experiment_id,
            plugin_name=schema.PLUGIN_NAME,
            downsample=points_per_tag,
            run_tag_filter=provider.RunTagFilter(runs=[run.name for run in missing_runs], tags=sorted(missing_tags)),
        )
        for run in missing_runs:
            for tag, points in read.get(run.name, {}).items():
                if tag == run.config_tag:
                    value = _config_records(points)
                    size = len(value)
                else:
                    value = dedupe_last((d.step, d.wall_time, d.numpy) for d in points)
                    size = int(value.values.size)
                self._cache.keep_points((self._experiment_id, run.name, run.version, tag, points_per_tag), value, size)
                result[run.name][tag] = value
        return result

    def kept(self, run: RunIndex, name: Hashable) -> Any:
        """What :meth:`cached` keeps for ``name`` while ``run`` has no new data, or ``None``."""
        return self._cache.kept((self._experiment_id, run.name, run.version, name))

    def cached(self, run: RunIndex, name: Hashable, compute: Callable[[], T]) -> T:
        """``compute()``, computed once per ``name`` while ``run`` has no new data."""
        return self._cache.derived((self._experiment_id, run.name, run.version, name), compute)

    def read_runs(
        self, runs: Sequence[RunIndex], keys: Iterable[SeriesKey]
    ) -> dict[str, tuple[dict[SeriesKey, Series], list[tuple[int, dict]]]]:
        """For each of ``runs``: the numeric series of ``keys`` it holds (missing keys are left
        out; a repeated step keeps the value written last) and its config records (as
        :meth:`_read_tensors` gives them), all read in one data-provider call."""
        keys = list(keys)
        tags = {tag: None for run in runs for tag in _tags_of(run, keys)}
        data = self._read_tensors(runs, list(tags))
        result = {}
        for run in runs:
            decoded = data.get(run.name, {})
            result[run.name] = (_series_of(run, keys, decoded), decoded.get(run.config_tag, []))
        return result

    def read(self, run: RunIndex, keys: Iterable[SeriesKey]) -> dict[SeriesKey, Series]:
        """The numeric series of ``keys`` that ``run`` holds (see :meth:`read_runs`)."""
        keys = list(keys)
        decoded = self._read_tensors([run], [tag for tag in _tags_of(run, keys) if tag != run.config_tag])
        return _series_of(run, keys, decoded.get(run.name, {}))

    def read_with_config(self, run: RunIndex, keys: Iterable[SeriesKey]) -> tuple[dict[SeriesKey, Series], dict | None]:
        """:meth:`read` and the newest run-config record (highest step, last written; ``None``
        without one) in one data-provider call."""
        series, configs = self.read_runs([run], keys)[run.name]
        return series, newest(configs)

    def runs_data(
        self,
        runs: Sequence[RunIndex],
        layer_quantities: Sequence[str],
        model_quantities: Sequence[str],
        last_step_quantities: Callable[[RunIndex], Sequence[str]] = lambda run: (),
    ) -> dict[str, RunData]:
        """Each of ``runs`` as :func:`bn_inspect.load_logdir` gives it (its configs, layers in
        model order), holding only the epoch-timeline series of ``layer_quantities`` and
        ``model_quantities``: what pure functions over ``RunData`` (e.g.
        :func:`bn_inspect.doctor.diagnose`) read. Of a run's ``last_step_quantities(run)``
        (unless a tag holding them also holds a series read whole) only the last point is read:
        a run's per-channel history is most of its bytes. Runs that need the same are read in
        two data-provider calls (whole series, last points)."""
        groups: dict[tuple[str, ...], list[RunIndex]] = {}
        for run in runs:
            groups.setdefault(tuple(last_step_quantities(run)), []).append(run)
        result = {}
        for last_step, members in groups.items():
            keys = {run.name: self._run_keys(run, layer_quantities, model_quantities) for run in members}
            whole = {
                run.name: _tags_of(run, [k for k in keys[run.name] if k.quantity not in last_step]) for run in members
            }
            last = {run.name: [t for t in _tags_of(run, keys[run.name]) if t not in whole[run.name]] for run in members}
            decoded = self._read_tensors(members, list(dict.fromkeys(t for tags in whole.values() for t in tags)))
            last_points = self._read_tensors(
                members, list(dict.fromkeys(t for tags in last.values() for t in tags)), points_per_tag=1
            )
            for run in members:
                tags = {**decoded[run.name], **last_points[run.name]}
                result[run.name] = self._run_data(
                    run, _series_of(run, keys[run.name], tags), tags.get(run.config_tag, [])
                )
        return result

    @staticmethod
    def _run_keys(run: RunIndex, layer_quantities: Sequence[str], model_quantities: Sequence[str]) -> list[SeriesKey]:
        keys = [SeriesKey(schema.KIND_LAYER, q, layer) for layer in run.layers() for q in layer_quantities]
        return keys + [SeriesKey(schema.KIND_MODEL, q) for q in model_quantities]

    @staticmethod
    def _run_data(run: RunIndex, data: dict[SeriesKey, Series], configs: list[tuple[int, dict]]) -> RunData:
        config = newest(configs)
        layers: dict[str, dict[str, Series]] = {}
        for layer in in_model_order(run.layers(), parse(config)):
            quantities = {
                key.quantity: s for key, s in data.items() if key.kind == schema.KIND_LAYER and key.layer == layer
            }
            if quantities:
                layers[layer] = quantities
        model = {key.quantity: s for key, s in data.items() if key.kind == schema.KIND_MODEL}
        return RunData(name=run.name, config=config, configs=configs, layers=layers, model=model)

    def scalars(self, run: str, tags: Sequence[str]) -> dict[str, Series]:
        """The plain scalars ``tags`` (e.g. :data:`bn_inspect.schema.SCALAR_MAX_STALENESS`)
        that ``run`` logged, as TensorBoard's Scalars tab reads them; missing tags are left out."""
        result = self._provider.read_scalars(
            self._ctx,
            experiment_id=self._experiment_id,
            plugin_name=scalar_metadata.PLUGIN_NAME,
            downsample=MAX_POINTS,
            run_tag_filter=provider.RunTagFilter(runs=[run], tags=list(tags)),
        )
        data = result.get(run, {})
        return {tag: dedupe_last((d.step, d.wall_time, d.value) for d in data[tag]) for tag in tags if data.get(tag)}
