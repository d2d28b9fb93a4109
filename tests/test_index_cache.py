"""The plugin lists a run's series once and reuses that index; listing every run refreshes it."""

from __future__ import annotations

from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.context import RequestContext

from bn_inspect import schema
from tb_plugin.provider_reader import ProviderReader, SeriesKey


class CountingProvider(data_provider.MultiplexerDataProvider):
    """TensorBoard's Python-loader data provider, counting ``list_tensors`` calls."""

    lists = 0

    def list_tensors(self, *args, **kwargs):
        self.lists += 1
        return super().list_tensors(*args, **kwargs)


def _provider(logdir) -> CountingProvider:
    multiplexer = plugin_event_multiplexer.EventMultiplexer(tensor_size_guidance={schema.PLUGIN_NAME: 0})
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    return CountingProvider(multiplexer, str(logdir))


def test_index_of_named_runs_is_listed_once_and_refreshed_by_listing_all(plugin_logdir):
    provider = _provider(plugin_logdir)
    cache = {}
    reader = ProviderReader(provider, RequestContext(), "", cache)
    first = reader.index(["default"])
    again = ProviderReader(provider, RequestContext(), "", cache).index(["default"])
    assert provider.lists == 1 and again["default"] is first["default"]
    key = SeriesKey(schema.KIND_LAYER, schema.MOVING_MEAN, "bn_1")
    assert key in again["default"].keys()  # noqa: SIM118 (RunIndex is not a mapping)
    everything = reader.index()
    assert provider.lists == 2 and everything["default"] is not first["default"]
    assert ProviderReader(provider, RequestContext(), "", cache).index(["default"])["default"] is everything["default"]
    assert provider.lists == 2


def test_without_a_cache_every_index_is_listed(plugin_logdir):
    provider = _provider(plugin_logdir)
    reader = ProviderReader(provider, RequestContext(), "")
    reader.index(["default"])
    reader.index(["default"])
    assert provider.lists == 2
