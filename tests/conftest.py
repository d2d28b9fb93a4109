"""Shared pytest setup: quiet TensorFlow, deterministic ops."""

import os
import tempfile

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# On JAX, reuse compiled programs across tests (the small test models repeat): halves the
# JAX run. A speed cache only: JAX keys entries by its version, the device and the program.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "bn-inspect-jax-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


@pytest.fixture(scope="session")
def plugin_logdir(tmp_path_factory):
    """Runs "default", "constant_init" and "frozen" written by the real BatchNormInspector, and
    the synthetic "replicas" run (see tests/plugin_logdirs.py); shared by the plugin's tests."""
    from plugin_logdirs import write_callback_runs

    return write_callback_runs(tmp_path_factory.mktemp("plugin_logdir"))


@pytest.fixture(scope="session")
def auto_named(tmp_path_factory):
    """Runs of one process with automatic layer names (see tests/auto_named_logdir.py), written
    in a new process so that the names do not depend on which tests ran before."""
    from auto_named_logdir import write_auto_named_runs_in_a_new_process

    return write_auto_named_runs_in_a_new_process(tmp_path_factory.mktemp("auto_named"))


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 API (moto_server on a free port) for the whole session; see tests/s3_server.py."""
    from s3_server import start_s3_server

    server = start_s3_server()
    yield server
    server.stop()
