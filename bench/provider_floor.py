"""TensorBoard's own floor under the plugin's heaviest route: its data provider reading the
tensors that route needs, timed in this process, with no code of the plugin.

``compare`` of every run on one layer reads each run's ``variables`` tensor of that layer at
every step (the per-layer figures and configs are read once and kept). The same
``read_tensors`` call, made here on a data provider of either loader, is the least that route
can cost on that loader: decoding every tensor (Python loader), or shipping them over gRPC and
decoding them (Rust data server).

Example:
    >>> with data_provider(logdir, load_fast=True) as provider:             # doctest: +SKIP
    ...     read_ms(provider, runs, tag_of_layer, layers, requests=10)
    [312.4, ...]
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from tensorboard.backend.event_processing import data_provider as python_provider
from tensorboard.backend.event_processing import plugin_event_multiplexer
from tensorboard.context import RequestContext
from tensorboard.data import provider, server_ingester
from tensorboard.util import grpc_util

from bn_inspect import schema

ALL_POINTS = 1_000_000


@contextlib.contextmanager
def data_provider(logdir: Path, load_fast: bool) -> Iterator[provider.DataProvider]:
    """A data provider over ``logdir`` with every bn-inspect point kept, loaded once: the Rust
    data server (``load_fast``, as ``tensorboard --load_fast=true`` starts it) or the Python
    loader's multiplexer. The data server is stopped on exit."""
    if not load_fast:
        multiplexer = plugin_event_multiplexer.EventMultiplexer(tensor_size_guidance={schema.PLUGIN_NAME: 0})
        multiplexer.AddRunsFromDirectory(str(logdir))
        multiplexer.Reload()
        yield python_provider.MultiplexerDataProvider(multiplexer, str(logdir))
        return
    ingester = server_ingester.SubprocessServerDataIngester(
        server_ingester.get_server_binary(),
        str(logdir),
        reload_interval=0,
        channel_creds_type=grpc_util.ChannelCredsType.LOCAL,
        samples_per_plugin={schema.PLUGIN_NAME: 0},
    )
    ingester.start()
    try:
        yield ingester.data_provider
    finally:
        # The data server runs with --die-after-stdin; the ingester keeps that pipe and has no
        # stop of its own (TensorBoard stops it by exiting).
        ingester._stdin_handle.close()


def read_ms(
    data: provider.DataProvider, runs: Sequence[str], tag_of: Callable[[int], str], requests: int
) -> list[float]:
    """Milliseconds of ``requests`` ``read_tensors`` calls for every point of ``tag_of(i)`` of
    every run in ``runs`` (request ``i``), as the plugin asks them."""
    times = []
    for i in range(requests):
        start = time.perf_counter()
        data.read_tensors(
            RequestContext(),
            experiment_id="",
            plugin_name=schema.PLUGIN_NAME,
            downsample=ALL_POINTS,
            run_tag_filter=provider.RunTagFilter(runs=list(runs), tags=[tag_of(i)]),
        )
        times.append(1000.0 * (time.perf_counter() - start))
    return times


def wait_until_loaded(data: provider.DataProvider, runs: int, steps: int, timeout: float) -> None:
    """Until each of ``runs`` runs lists bn-inspect tensors up to step ``steps`` (the Rust data
    server loads in the background)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listing = data.list_tensors(RequestContext(), experiment_id="", plugin_name=schema.PLUGIN_NAME)
        if len(listing) == runs and all(
            tags and max(s.max_step for s in tags.values()) >= steps for tags in listing.values()
        ):
            return
        time.sleep(0.5)
    raise TimeoutError(f"the data provider did not list {runs} complete runs within {timeout:.0f} s")
