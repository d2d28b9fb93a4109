"""A TensorBoard WSGI app with the BN Inspect plugin, under either loader, for route tests."""

from __future__ import annotations

import contextlib
import json
import struct
import time
from collections.abc import Callable, Iterator

import numpy as np
from tensorboard import program
from tensorboard.backend import application
from tensorboard.backend.event_processing import data_ingester
from tensorboard.data import server_ingester
from tensorboard.plugins.core import core_plugin
from werkzeug.test import Client

from tb_plugin.loader import BNInspectLoader

LOADERS = ("python", "rust")
ROUTE = "/data/plugin/bn_inspect/"


def configure(*flags: str):
    """TensorBoard's parsed flags, with every loader's ``fix_flags`` applied, as at startup."""
    loaders = [core_plugin.CorePluginLoader(), BNInspectLoader()]
    tensorboard = program.TensorBoard(plugins=loaders)
    tensorboard.configure(argv=["tensorboard", *flags, "--reload_interval", "0", "--reload_task", "blocking"])
    return tensorboard.flags, loaders


@contextlib.contextmanager
def tensorboard_client(loader: str, *flags: str) -> Iterator[Client]:
    """A werkzeug client of the full TensorBoard app reading through the Python multiplexer
    (``loader="python"``) or the Rust data server (``"rust"``, as ``--load_fast=true``)."""
    parsed, loaders = configure(*flags)
    if loader == "python":
        ingester = data_ingester.LocalDataIngester(parsed)
    else:
        ingester = server_ingester.SubprocessServerDataIngester(
            server_binary=server_ingester.get_server_binary(),
            logdir=parsed.logdir,
            reload_interval=0,
            channel_creds_type=parsed.grpc_creds_type,
            samples_per_plugin=parsed.samples_per_plugin,
        )
    ingester.start()
    try:
        yield Client(application.TensorBoardWSGIApp(parsed, loaders, ingester.data_provider))
    finally:
        stdin = getattr(ingester, "_stdin_handle", None)  # the data server exits when its stdin closes
        if stdin is not None:
            stdin.close()


def get_json(client: Client, route: str, status: int = 200) -> dict:
    response = client.get(ROUTE + route)
    assert response.status_code == status, response.data[:300]
    assert response.mimetype == "application/json"
    return json.loads(response.data)


def decode(body: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    """Decode a binary payload independently of tb_plugin.payload: uint32 header length,
    JSON header, float32 arrays at the offsets it names."""
    (length,) = struct.unpack("<I", body[:4])
    assert (4 + length) % 4 == 0
    header = json.loads(body[4 : 4 + length])
    data = body[4 + length :]
    arrays = {}
    for name, spec in header["arrays"].items():
        count = int(np.prod(spec["shape"]))
        arrays[name] = np.frombuffer(data, "<f4", count=count, offset=spec["offset"]).reshape(spec["shape"])
    return header["meta"], arrays


def get_payload(client: Client, route: str) -> tuple[dict, dict[str, np.ndarray]]:
    response = client.get(ROUTE + route)
    assert response.status_code == 200, response.data[:300]
    assert response.mimetype == "application/octet-stream"
    return decode(response.data)


def wait_until(ready: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll until ``ready()``; the Rust data server loads in the background."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, "data did not load in time"
        time.sleep(0.1)
