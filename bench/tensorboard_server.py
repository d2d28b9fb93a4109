"""A real ``tensorboard`` subprocess for the benchmarks, and keep-alive HTTP to it."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROUTE = "/data/plugin/bn_inspect/"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    port = free_port()
    command = [str(Path(sys.executable).with_name("tensorboard")), "--logdir", str(logdir), "--port", str(port),
               "--host", "127.0.0.1", f"--load_fast={'true' if load_fast else 'false'}",
               "--reload_interval", str(reload_interval)]
    log = tempfile.TemporaryFile()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        yield Server(process, port, started)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


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
