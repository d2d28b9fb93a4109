"""TF-free event files: framing, truncation, the reader API, and no TensorFlow import."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from tensorboard.compat.proto import event_pb2

from bn_inspect import events, load_logdir, schema, to_dataframe
from bn_inspect.writer import SummaryWriter


def _write_run(directory, steps, channels=4, layer="net/bn"):
    writer = SummaryWriter(directory)
    expected = {}
    for step in steps:
        values = np.random.default_rng(step).normal(size=channels).astype(np.float32)
        expected[step] = values
        writer.add_layer(layer, schema.MOVING_MEAN, values)
        writer.add_layer(layer, schema.RESIDUAL_INIT_WEIGHT, np.float32(0.5**step))
        writer.write_step(step)
    writer.close()
    return writer.path, expected


def test_masked_crc_matches_tensorboard():
    from tensorboard.summary.writer.record_writer import masked_crc32c as tb_masked

    for payload in (b"", b"abc", bytes(range(256)) * 3):
        assert events.masked_crc32c(payload) == tb_masked(payload)


def test_records_read_by_tensorboards_own_loader(tmp_path):
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader

    path, _ = _write_run(tmp_path, [0, 1, 2])
    tb_payloads = list(RawEventFileLoader(str(path)).Load())
    assert tb_payloads == list(events.iter_records(path))
    assert event_pb2.Event.FromString(tb_payloads[0]).file_version == events.FILE_VERSION


def test_truncated_last_record_is_dropped_cleanly(tmp_path):
    path, expected = _write_run(tmp_path, [0, 1, 2])
    data = Path(path).read_bytes()
    for cut in (1, 5, 13):
        Path(path).write_bytes(data[:-cut])
        series = load_logdir(tmp_path)["."].layers["net/bn"][schema.MOVING_MEAN]
        assert series.steps.tolist() == [0, 1]
        np.testing.assert_array_equal(series.at(1), expected[1])


def test_corrupt_payload_stops_reading(tmp_path):
    path, _ = _write_run(tmp_path, [0, 1, 2])
    data = bytearray(Path(path).read_bytes())
    data[-10] ^= 0xFF  # inside the last payload
    Path(path).write_bytes(bytes(data))
    assert load_logdir(tmp_path)["."].layers["net/bn"][schema.MOVING_MEAN].steps.tolist() == [0, 1]


def test_repeated_steps_keep_the_last_written_and_runs_are_named_by_path(tmp_path):
    _write_run(tmp_path / "exp" / "a", [0, 1, 2])
    _, newer = _write_run(tmp_path / "exp" / "a", [2, 3])
    _write_run(tmp_path / "b", [0])
    (tmp_path / "empty").mkdir()
    runs = load_logdir(tmp_path)
    assert sorted(runs) == ["b", "exp/a"]
    series = runs["exp/a"].layers["net/bn"][schema.MOVING_MEAN]
    assert series.steps.tolist() == [0, 1, 2, 3]
    np.testing.assert_array_equal(series.at(2), newer[2])
    np.testing.assert_allclose(runs["exp/a"].layers["net/bn"][schema.RESIDUAL_INIT_WEIGHT].values, 0.5 ** np.arange(4))


def test_config_and_dataframe(tmp_path):
    writer = SummaryWriter(tmp_path)
    writer.add_config({"model_name": "m", "layers": [{"path": "net/bn"}]})
    writer.add_layer("net/bn", schema.MOVING_MEAN, np.arange(3, dtype=np.float32))
    writer.write_step(0)
    writer.close()
    run = load_logdir(tmp_path)["."]
    assert run.config == {"model_name": "m", "layers": [{"path": "net/bn"}]}
    frame = to_dataframe({"r": run})
    assert frame["value"].tolist() == [0.0, 1.0, 2.0] and frame["channel"].tolist() == [0, 1, 2]


def test_missing_logdir_and_newer_schema_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_logdir(tmp_path / "nope")
    record = schema.content_record(schema.KIND_LAYER, schema.MOVING_MEAN, "x")
    record["v"] = schema.SCHEMA_VERSION + 1
    with pytest.raises(ValueError, match="upgrade bn-inspect"):
        schema.parse_content(json.dumps(record).encode())


def test_reader_imports_neither_tensorflow_nor_keras(tmp_path):
    _write_run(tmp_path, [0, 1])
    code = textwrap.dedent(f"""
        import sys
        from bn_inspect import load_logdir
        runs = load_logdir({str(tmp_path)!r})
        assert runs["."].layers["net/bn"]["moving_mean"].steps.tolist() == [0, 1]
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "jax", "torch"))
        print(heavy)
        assert not heavy, heavy
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr + result.stdout
