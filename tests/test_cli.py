"""The bn-inspect CLI on a logdir written by the real callback, checked against numpy on the
models' own variables and outputs."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from tensorboard.compat.proto import event_pb2, summary_pb2

from bn_inspect import BatchNormInspector, align, comparison, load_logdir
from bn_inspect.cli import main
from bn_inspect.events import EventFileWriter

SAMPLES, BATCH = 32, 8
STEPS = SAMPLES // BATCH
EPOCHS = {"a": 3, "b": 2}
EPS = 1e-3


def _model(run: str) -> keras.Model:
    """Run a: default BN layers. Run b: bn1 with momentum 0.9 and a Constant(0.5) moving mean
    initializer, bn2 frozen."""
    keras.utils.set_random_seed(3)
    bn1 = (
        keras.layers.BatchNormalization(name="bn1")
        if run == "a"
        else keras.layers.BatchNormalization(
            name="bn1", momentum=0.9, moving_mean_initializer=keras.initializers.Constant(0.5)
        )
    )
    model = keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(4, name="dense1"),
            bn1,
            keras.layers.Dense(3, name="dense2"),
            keras.layers.BatchNormalization(name="bn2"),
            keras.layers.Dense(1, name="out"),
        ]
    )
    if run == "b":
        model.get_layer("bn2").trainable = False
    model.compile("adam", "mse")
    return model


def _bn_state(model: keras.Model) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {
        name: (model.get_layer(name).moving_mean.numpy().copy(), model.get_layer(name).moving_variance.numpy().copy())
        for name in ("bn1", "bn2")
    }


def _numpy_forward(model: keras.Model, x: np.ndarray, training: bool) -> np.ndarray:
    """The model's forward pass in numpy (BN in training mode uses the batch's biased stats,
    except a frozen layer, which always uses its moving stats)."""
    h = np.asarray(x, np.float64)
    for layer in model.layers:
        w = {v.name: np.asarray(v.numpy(), np.float64) for v in layer.weights}
        if isinstance(layer, keras.layers.Dense):
            h = h @ w["kernel"] + w["bias"]
        elif training and layer.trainable:
            h = w["gamma"] * (h - h.mean(0)) / np.sqrt(h.var(0) + EPS) + w["beta"]
        else:
            h = w["gamma"] * (h - w["moving_mean"]) / np.sqrt(w["moving_variance"] + EPS) + w["beta"]
    return h


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    """Two runs written by BatchNormInspector, with the models' BN state after every epoch."""
    root = tmp_path_factory.mktemp("logs")
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(SAMPLES, 5)) * 2 + 1).astype("float32")
    y = rng.normal(size=(SAMPLES, 1)).astype("float32")
    states, gaps = {}, {}
    for run, epochs in EPOCHS.items():
        model = _model(run)
        states[run] = [_bn_state(model)]
        record = keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs, m=model, s=states[run]: s.append(_bn_state(m))
        )
        model.fit(
            x,
            y,
            epochs=epochs,
            batch_size=BATCH,
            verbose=0,
            callbacks=[BatchNormInspector(root / run, probe_data=x[:16]), record],
        )
        gaps[run] = np.abs(_numpy_forward(model, x[:16], True) - _numpy_forward(model, x[:16], False)).mean()
    return {"root": str(root), "states": states, "gaps": gaps}


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _line(text: str, start: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(start))


# --- summary -------------------------------------------------------------------------------
def test_summary_residual_weight_gap_and_frozen_flag(logs, capsys):
    code, out, _ = run_cli(capsys, "summary", logs["root"])
    assert code == 0
    row_a, row_b = _line(out, "a "), _line(out, "b ")
    assert row_a.split()[1:3] == ["2", "3"] and row_b.split()[1:3] == ["2", "2"]  # layers, epochs
    # fresh models: the initializer weighs momentum ** (epochs * steps); a frozen layer 1
    assert f"{0.99 ** (3 * STEPS):#.3g}" in row_a
    assert f"{0.9 ** (2 * STEPS):#.3g}-{1.0:#.3g}" in row_b
    assert f"{logs['gaps']['a']:.4g}" in row_a and f"{logs['gaps']['b']:.4g}" in row_b
    assert "FROZEN: bn2" in row_b and "FROZEN" not in row_a


def test_summary_per_layer(logs, capsys):
    code, out, _ = run_cli(capsys, "summary", logs["root"], "--layers")
    assert code == 0
    assert _line(out, "a    bn1").split()[2:5] == ["4", "0.99", str(3 * STEPS)]
    assert _line(out, "b    bn1").split()[2:5] == ["4", "0.9", str(2 * STEPS)]
    frozen = _line(out, "b    bn2").split()
    assert frozen[4] == "0" and frozen[5] == "1" and frozen[-1] == "FROZEN"


# --- compare -------------------------------------------------------------------------------
def _expected_distance(state_a, state_b) -> dict[str, float]:
    (mean_a, var_a), (mean_b, var_b) = ([np.asarray(v, np.float64) for v in state] for state in (state_a, state_b))
    return {
        "mean_rms": np.sqrt(np.mean((mean_b - mean_a) ** 2)),
        "variance_rms": np.sqrt(np.mean((var_b - var_a) ** 2)),
        "mean_gap": np.mean(np.abs(mean_b - mean_a) / np.sqrt((var_a + var_b) / 2 + EPS)),
        "variance_log_ratio": np.mean(np.abs(np.log((var_b + EPS) / (var_a + EPS)))),
    }


def test_compare_defaults_to_last_common_epoch(logs, capsys):
    code, out, _ = run_cli(capsys, "compare", logs["root"], "a", "b")
    assert code == 0
    assert "moving statistics at epoch 2 " in out
    runs = [load_logdir(logs["root"])[name] for name in "ab"]
    distances = comparison.moving_stats_distances(runs, align(runs), 2)
    for layer in ("bn1", "bn2"):
        expected = _expected_distance(logs["states"]["a"][2][layer], logs["states"]["b"][2][layer])
        for key, value in expected.items():
            np.testing.assert_allclose(distances[layer]["b"][key], value, rtol=1e-6)
        row = _line(out.split("moving statistics at")[1], f"{layer} ").split()
        assert row[1] == "b"
        assert row[2:6] == [
            f"{expected[k]:.4g}" for k in ("mean_rms", "variance_rms", "mean_gap", "variance_log_ratio")
        ]


def test_compare_config_diff_names_initializers_momentum_and_frozen(logs, capsys):
    _, out, _ = run_cli(capsys, "compare", logs["root"], "a", "b")
    config = out.split("moving statistics")[0]
    assert _line(config, "bn1    momentum").split()[2:] == ["0.99", "0.9"]
    assert _line(config, "bn1    moving_mean_initializer").split()[2:] == ["Zeros", "Constant(value=0.5)"]
    assert _line(config, "bn2    trainable").split()[2:] == ["True", "False"]
    assert _line(config, "run    epochs").split()[2:] == ["3", "2"]
    assert "gamma_initializer" not in config  # equal fields are not listed


def test_compare_at_epoch_zero_sees_the_initializers(logs, capsys):
    code, out, _ = run_cli(capsys, "compare", logs["root"], "a", "b", "--epoch", "0")
    assert code == 0
    row = _line(out.split("moving statistics at")[1], "bn1 ").split()
    assert row[2:4] == [f"{0.5:.4g}", f"{0.0:.4g}"]  # Zeros vs Constant(0.5); both variances 1


def test_compare_epoch_not_logged_by_both(logs, capsys):
    code, _, err = run_cli(capsys, "compare", logs["root"], "a", "b", "--epoch", "3")
    assert code == 2 and "epoch 3" in err and "[0, 1, 2]" in err


def test_compare_shows_the_alignment_and_needs_two_runs(logs, capsys):
    code, out, _ = run_cli(capsys, "compare", logs["root"], "a", "b")
    assert code == 0
    assert _line(out, "bn1 ").split() == ["bn1", "bn1", "bn1", "same", "path"]
    code, _, err = run_cli(capsys, "compare", logs["root"], "a")
    assert code == 2 and "two or more runs" in err


# --- export --------------------------------------------------------------------------------
def test_export_csv_holds_the_logged_variables(logs, capsys, tmp_path):
    code, out, _ = run_cli(capsys, "export", logs["root"])
    assert code == 0
    frame = pd.read_csv(io.StringIO(out))
    assert list(frame.columns) == ["run", "layer", "quantity", "step", "channel", "value"]
    for run, epochs in EPOCHS.items():
        for epoch in range(epochs + 1):
            rows = frame[
                (frame.run == run) & (frame.layer == "bn1") & (frame.quantity == "moving_mean") & (frame.step == epoch)
            ]
            np.testing.assert_allclose(
                rows.sort_values("channel").value, logs["states"][run][epoch]["bn1"][0], rtol=1e-6
            )
    target = tmp_path / "all.csv"
    code, _, err = run_cli(capsys, "export", logs["root"], "--output", str(target))
    assert code == 0 and f"wrote {len(frame)} rows" in err
    assert pd.read_csv(target).equals(frame)


def test_export_parquet_holds_the_csv_table(logs, capsys, tmp_path):
    """The parquet file, read by pyarrow, is the CSV export's table: same rows in the same
    order, the same float32 values."""
    import pyarrow.parquet

    code, out, _ = run_cli(capsys, "export", logs["root"])
    assert code == 0
    csv = pd.read_csv(io.StringIO(out))
    target = tmp_path / "all.parquet"
    code, _, err = run_cli(capsys, "export", logs["root"], "--format", "parquet", "--output", str(target))
    assert code == 0 and f"wrote {len(csv)} rows" in err
    table = pyarrow.parquet.read_table(target).to_pandas()
    assert list(table.columns) == list(csv.columns) and len(table) == len(csv) > 0
    for column in ("run", "layer", "quantity", "step", "channel"):
        assert table[column].tolist() == csv[column].tolist(), column
    np.testing.assert_array_equal(table["value"].to_numpy(np.float32), csv["value"].to_numpy().astype(np.float32))


def test_export_parquet_without_pyarrow_names_the_fix(logs, capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now raises ImportError
    target = tmp_path / "all.parquet"
    code, _, err = run_cli(capsys, "export", logs["root"], "--format", "parquet", "--output", str(target))
    assert code == 2 and "pip install pyarrow" in err and not target.exists()


def test_export_without_pandas(logs, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError
    code, _, err = run_cli(capsys, "export", logs["root"])
    assert code == 2 and "pip install pandas" in err


def test_export_parquet_to_stdout_is_refused(logs, capsys):
    code, _, err = run_cli(capsys, "export", logs["root"], "--format", "parquet", "--output", "-")
    assert code == 2 and "--output FILE.parquet" in err


# --- errors --------------------------------------------------------------------------------
def test_missing_logdir(capsys, tmp_path):
    for command in (["summary"], ["compare"], ["export"]):
        argv = command + [str(tmp_path / "nope")] + (["a", "b"] if command == ["compare"] else [])
        code, out, err = run_cli(capsys, *argv)
        assert code == 2 and out == "" and "does not exist" in err and "bn-inspect summary logs" in err


def test_unknown_run_lists_known_runs(logs, capsys):
    code, _, err = run_cli(capsys, "compare", logs["root"], "a", "c")
    assert code == 2 and "unknown run 'c'" in err and "Known runs: a, b" in err


def test_logdir_without_bn_inspect_data(capsys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli(capsys, "summary", str(empty))
    assert code == 2 and "no event files" in err and "BatchNormInspector" in err

    foreign = tmp_path / "foreign" / "run"
    foreign.mkdir(parents=True)
    with EventFileWriter(foreign) as writer:  # a plain Keras-TensorBoard-like scalar
        writer.write(
            event_pb2.Event(
                step=1, summary=summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag="loss", simple_value=1.0)])
            )
        )
    code, _, err = run_cli(capsys, "summary", str(tmp_path / "foreign"))
    assert code == 2 and "1 run(s) of event files but none with bn_inspect data" in err


def test_usage_error_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["summary"])
    assert exc.value.code == 2


# --- process level -------------------------------------------------------------------------
def test_cli_never_imports_tensorflow_or_keras(logs, tmp_path):
    script = textwrap.dedent(
        f"""
        import contextlib, io, sys
        from bn_inspect.cli import main
        root = {logs["root"]!r}
        for argv in (["summary", root], ["summary", root, "--layers"], ["compare", root, "a", "b"],
                     ["export", root, "--output", {str(tmp_path / "x.csv")!r}]):
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                assert main(argv) == 0, argv
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "jax", "torch"))
        assert not heavy, heavy
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


def test_exit_code_reaches_the_shell(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "bn_inspect.cli", "summary", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and result.stderr.startswith("bn-inspect: error: logdir")
    assert Path(sys.executable).parent.joinpath("bn-inspect").exists()  # the console script is installed


def test_export_into_a_closed_pipe_is_quiet(logs):
    reader = subprocess.Popen(["head", "-n", "1"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    result = subprocess.run(
        [sys.executable, "-m", "bn_inspect.cli", "export", logs["root"]],
        stdout=reader.stdin,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
    )
    reader.stdin.close()
    reader.wait(timeout=10)
    assert result.returncode in (0, 1) and result.stderr == ""
