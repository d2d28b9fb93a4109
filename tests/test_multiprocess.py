"""One writer per run in multi-process training: two JAX processes on localhost train one model
under ``keras.distribution`` (data parallel, gloo), both with the inspector on one log_dir;
only process 0 writes, and what it logs is process 0's variables."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

from bn_inspect import load_logdir, schema
from bn_inspect.events import is_event_file

SCRIPT = Path(__file__).parent / "scripts" / "jax_process_fit.py"
VARIABLES = {
    schema.MOVING_MEAN: "moving_mean",
    schema.MOVING_VARIANCE: "moving_variance",
    schema.GAMMA: "gamma",
    schema.BETA: "beta",
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_only_process_0_writes_and_logs_its_variables(tmp_path):
    port, log_dir = _free_port(), tmp_path / "run"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="jax")
    processes = [
        subprocess.Popen(
            [sys.executable, str(SCRIPT), str(i), str(port), str(log_dir), str(tmp_path / f"p{i}.npz")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in (0, 1)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    saved = [np.load(tmp_path / f"p{i}.npz") for i in (0, 1)]
    assert [int(s["process_index"]) for s in saved] == [0, 1]

    (event_file,) = [p.name for p in log_dir.iterdir() if is_event_file(p.name)]
    assert f".{processes[0].pid}." in event_file  # written by process 0
    run = load_logdir(log_dir)["."]
    assert run.config["backend"] == "jax"
    for quantity, variable in VARIABLES.items():
        series = run.layers["bn"][quantity]
        assert series.steps.tolist() == [0, 1, 2, 3]
        expected = np.stack([saved[0][f"bn/{variable}/{step}"] for step in range(4)])
        np.testing.assert_array_equal(series.values, expected)
    # Each process fed its own data; data parallel training still leaves one set of statistics.
    np.testing.assert_array_equal(saved[1]["bn/moving_mean/3"], saved[0]["bn/moving_mean/3"])
