"""The plugin lists a run's series once and reuses that index; listing every run refreshes it. A\nrun's findings are kept until that run gets new data."""

from __future__ import annotations

import shutil

import numpy as np
from plugin_logdirs import EPOCHS, FROZEN_LAYER
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.context import RequestContext

from bn_inspect import doctor, load_logdir, schema
from bn_inspect.writer import SummaryWriter
from tb_plugin import queries
from tb_plugin.provider_reader import ProviderReader, SeriesKey
from tb_plugin.read_cache import ReaderCache


class CountingProvider(data_provider.MultiplexerDataProvider):
    """TensorBoard's Python-loader data provider, counting ``list_tensors`` calls; ``reload()``
    reads what was written since."""

    lists = 0

    def __init__(self, multiplexer, logdir):
        super().__init__(multiplexer, logdir)
        self.reload = multiplexer.Reload

    def list_tensors(self, *args, **kwargs):
        self.lists += 1
        return super().list_tensors(*args, **kwargs)


def _provider(logdir, kind: type | None = None) -> CountingProvider:
    """A ``kind`` (default :class:`CountingProvider`) over ``logdir``, loaded."""
    multiplexer = plugin_event_multiplexer.EventMultiplexer(tensor_size_guidance={schema.PLUGIN_NAME: 0})
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    return (kind or CountingProvider)(multiplexer, str(logdir))


def test_index_of_named_runs_is_listed_once_and_refreshed_by_listing_all(plugin_logdir):
    provider = _provider(plugin_logdir)
    cache = ReaderCache()
    reader = ProviderReader(provider, RequestContext(), "", cache)
    first = reader.index(["default"])
    again = ProviderReader(provider, RequestContext(), "", cache).index(["default"])
    assert provider.lists == 1 and again["default"] is first["default"]
    key = SeriesKey(schema.KIND_LAYER, schema.MOVING_MEAN, "bn_1")
    assert key in again["default"].keys()  # noqa: SIM118 (RunIndex is not a mapping)
    everything = reader.index()
    assert provider.lists == 2 and everything["default"] is first["default"]  # listed again, no new data: kept
    assert ProviderReader(provider, RequestContext(), "", cache).index(["default"])["default"] is everything["default"]
    assert provider.lists == 2


def test_without_a_cache_every_index_is_listed(plugin_logdir):
    provider = _provider(plugin_logdir)
    reader = ProviderReader(provider, RequestContext(), "")
    reader.index(["default"])
    reader.index(["default"])
    assert provider.lists == 2


class ReadCountingProvider(CountingProvider):
    """Also counts ``read_tensors`` calls and the runs each asked for."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reads: list[list[str]] = []

        self.points: dict[tuple[str, str], int] = {}  # (run, tag) -> points answered

    def read_tensors(self, *args, **kwargs):
        self.reads.append(sorted(kwargs["run_tag_filter"].runs))
        answer = super().read_tensors(*args, **kwargs)
        for run, tags in answer.items():
            for tag, points in tags.items():
                self.points[run, tag] = self.points.get((run, tag), 0) + len(points)
        return answer


def test_findings_are_kept_per_run_until_that_run_gets_new_data(plugin_logdir, tmp_path):
    logdir = tmp_path / "logs"
    shutil.copytree(plugin_logdir, logdir)
    provider = _provider(logdir, ReadCountingProvider)
    cache = ReaderCache()
    runs = ["default", "frozen"]

    def findings():
        return queries.findings(ProviderReader(provider, RequestContext(), "", cache), runs)

    first = findings()
    assert provider.reads and findings() == first
    reads = len(provider.reads)
    assert findings() == first and len(provider.reads) == reads  # kept: no data read again
    # New data in run "frozen": a step the later listing sees. Its findings are read afresh, not "default"'s.
    config = load_logdir(logdir)["frozen"].config
    writer = SummaryWriter(logdir / "frozen")
    writer.add_config(config)
    channels = next(layer["channels"] for layer in config["layers"] if layer["path"] == FROZEN_LAYER)
    writer.add_layer(FROZEN_LAYER, schema.MOVING_MEAN, np.full(channels, np.nan, np.float32))
    writer.add_layer(FROZEN_LAYER, schema.MOVING_VARIANCE, np.ones(channels, np.float32))
    writer.write_step(EPOCHS + 1)
    writer.close()
    provider.reload()
    ProviderReader(provider, RequestContext(), "", cache).index()  # the runs route (the tab's Reload)
    again = findings()
    assert provider.reads[reads:] and all(asked == ["frozen"] for asked in provider.reads[reads:])
    assert again != first
    expected = doctor.diagnose(load_logdir(logdir))
    assert again["findings"] == [f.to_dict() for f in expected if f.run in runs]


def test_findings_read_the_last_point_of_per_channel_series(plugin_logdir):
    """The doctor needs a layer's per-channel values at their last step only (its two-step
    checks read the per-layer figures moving_change and init_distance): the findings route
    asks TensorBoard for one point of each per-channel tag and finds what the doctor finds in
    the whole logdir read by load_logdir."""
    provider = _provider(plugin_logdir, ReadCountingProvider)
    answer = queries.findings(ProviderReader(provider, RequestContext(), ""), ["default", "frozen"])
    assert provider.reads == [["default", "frozen"]] * 2  # both runs at once: whole series, then last points
    per_channel = {
        key: n for key, n in provider.points.items() if key[1].endswith(("/variables", "/replica_moving_spread"))
    }
    assert per_channel and set(per_channel.values()) == {1}
    whole = [n for (run, tag), n in provider.points.items() if tag.startswith("bn_inspect/_layers/")]
    assert whole and min(whole) > 1  # the per-layer figures: every step
    expected = doctor.diagnose(load_logdir(plugin_logdir))
    assert answer["findings"] == [f.to_dict() for f in expected if f.run in ("default", "frozen")]


def test_runs_overview_is_built_once_per_run_version(plugin_logdir, tmp_path):
    """The runs route lists every run each time; a run's entry is rebuilt only when it has new
    data (here a new epoch step in "frozen"), the others are kept as they were."""
    logdir = tmp_path / "logs"
    shutil.copytree(plugin_logdir, logdir)
    provider = _provider(logdir, ReadCountingProvider)
    cache = ReaderCache()

    def overview():
        return {
            entry["run"]: entry
            for entry in queries.runs_overview(ProviderReader(provider, RequestContext(), "", cache))["runs"]
        }

    first = overview()
    reads = len(provider.reads)
    again = overview()
    assert len(provider.reads) == reads and all(again[name] is first[name] for name in first)
    config = load_logdir(logdir)["frozen"].config
    writer = SummaryWriter(logdir / "frozen")
    channels = next(layer["channels"] for layer in config["layers"] if layer["path"] == FROZEN_LAYER)
    writer.add_layer(FROZEN_LAYER, schema.MOVING_MEAN, np.zeros(channels, np.float32))
    writer.add_layer(FROZEN_LAYER, schema.MOVING_VARIANCE, np.ones(channels, np.float32))
    writer.add_layer(FROZEN_LAYER, schema.NONFINITE_CHANNELS, np.float32(0))
    writer.write_step(EPOCHS + 1)
    writer.close()
    provider.reload()
    after = overview()
    assert provider.reads[reads:] == [["frozen"]]
    assert after["frozen"]["epochs"] == first["frozen"]["epochs"] + [EPOCHS + 1]
    assert all(after[name] is first[name] for name in first if name != "frozen")
