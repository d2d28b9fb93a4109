"""Shared pytest setup: quiet TensorFlow, deterministic ops."""

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


@pytest.fixture(scope="session")
def plugin_logdir(tmp_path_factory):
    """Runs "default" and "constant_init" written by the real BatchNormInspector
    (see tests/plugin_logdirs.py); shared by the TensorBoard plugin's tests."""
    from plugin_logdirs import write_callback_runs

    return write_callback_runs(tmp_path_factory.mktemp("plugin_logdir"))
