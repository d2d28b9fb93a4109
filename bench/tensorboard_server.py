"""A real ``tensorboard`` subprocess for the benchmarks, and keep-alive HTTP to it."""

from __future__ import annotations

import contextlib
import http.client
import json
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from examples.local_tensorboard import serve as serve_tensorboard

ROUTE = "/data/plugin/bn_inspect/"


@dataclass
class Server:
    """A running TensorBoard: its process, port and the ``perf_counter`` time it was started."""

    process: subprocess.Popen
    port: int
    started: float

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connection(self) -> http.client.HTTPConnection:
        """A keep-alive connection (TensorBoard speaks HTTP/1.1)."""
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)


@contextlib.contextmanager
def serve(logdir: Path, load_fast: bool, reload_interval: int = 0) -> Iterator[Server]:
    """Start ``tensorboard --logdir logdir`` with the Rust data server (``load_fast``) or the
    Python loader; ``reload_interval=0`` loads once. Stopped on exit."""
    started = time.perf_counter()
    flags = (f"--load_fast={'true' if load_fast else 'false'}", "--reload_interval", str(reload_interval))
    with serve_tensorboard(logdir, *flags) as (url, process):
        yield Server(process, urllib.parse.urlsplit(url).port, started)


def get(connection: http.client.HTTPConnection, path: str) -> tuple[int, str, bytes]:
    """GET ``path`` on a keep-alive connection: status, content type and body."""
    connection.request("GET", path)
    response = connection.getresponse()
    return response.status, response.getheader("Content-Type", ""), response.read()


def wait_for(server: Server, ready: Callable[[dict], bool], timeout: float, interval: float = 0.25) -> float:
    """Poll the ``runs`` route until ``ready(answer)``; seconds since the server started.
    Raises ``TimeoutError`` (with the server's state) when it does not happen in time."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"tensorboard exited with code {server.process.returncode}")
        try:
            connection = server.connection()
            status, _, body = get(connection, ROUTE + "runs")
            connection.close()
            if status == 200 and ready(json.loads(body)):
                return time.perf_counter() - server.started
        except (OSError, http.client.HTTPException, json.JSONDecodeError):
            pass
        time.sleep(interval)
    raise TimeoutError(f"the runs route was not ready within {timeout:.0f} s")
