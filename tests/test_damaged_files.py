"""Damaged event files: bytes flipped at seeded random positions of a real event file. Every
record the flip did not touch is read back, with one warning naming the file, the offset and
what was skipped; what TensorBoard's own loaders return for the same files agrees with it."""

from __future__ import annotations

import struct
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from plugin_client import configure
from tensorboard import context
from tensorboard.backend.event_processing import data_ingester
from tensorboard.data import provider, server_ingester

from bn_inspect import BatchNormInspector, load_logdir, schema
from bn_inspect.cli import main
from bn_inspect.events import DamagedEventFileWarning, RecordScan, read_events

FLIPS = 48  # damaged copies of the event file, one flipped byte each
SEED = 16


def record_spans(data: bytes) -> list[tuple[int, int]]:
    """``(start, end)`` of every record of an undamaged file, from the length fields alone."""
    spans, offset = [], 0
    while offset < len(data):
        (length,) = struct.unpack_from("<Q", data, offset)
        spans.append((offset, offset + 16 + length))
        offset += 16 + length
    assert offset == len(data)
    return spans


@pytest.fixture(scope="module")
def event_file(tmp_path_factory) -> Path:
    """The event file of a real fit: 6 epochs, within-epoch logging, a probe (~40 records)."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(6), keras.layers.BatchNormalization(name="bn"), keras.layers.Dense(1)]
    )
    model.compile("sgd", "mse")
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    directory = tmp_path_factory.mktemp("clean")
    inspector = BatchNormInspector(directory, probe_data=x[:16], log_every_n_batches=1)
    model.fit(x, x[:, :1], epochs=6, batch_size=16, verbose=0, callbacks=[inspector])
    (path,) = directory.iterdir()
    return path


@pytest.fixture(scope="module")
def flips(event_file, tmp_path_factory) -> dict[str, tuple[int, int]]:
    """Run name -> (flipped position, index of the record it is in), one run directory each."""
    data = event_file.read_bytes()
    spans = record_spans(data)
    rng = np.random.default_rng(SEED)
    logdir = tmp_path_factory.mktemp("damaged")
    result = {}
    for trial in range(FLIPS):
        position = int(rng.integers(len(data)))
        damaged = bytearray(data)
        damaged[position] ^= int(rng.integers(1, 256))
        run = f"flip_{trial:02d}"
        (logdir / run).mkdir()
        (logdir / run / event_file.name).write_bytes(bytes(damaged))
        result[run] = (position, next(i for i, (start, end) in enumerate(spans) if start <= position < end))
    result["logdir"] = logdir
    return result


def tensors_by_tag_step(path: Path) -> dict[tuple[str, int], np.ndarray]:
    """bn-inspect tensor values of a file as this project's reader gives them."""
    found, ours = {}, set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamagedEventFileWarning)
        for event in read_events(path):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == schema.PLUGIN_NAME:
                    ours.add(value.tag)
                if value.tag in ours and value.HasField("tensor"):
                    found[(value.tag, event.step)] = schema.decode_tensor(value.tensor)
    return found


def test_every_untouched_record_is_recovered_with_one_warning(event_file, flips):
    data = event_file.read_bytes()
    spans = record_spans(data)
    payloads = [data[start + 12 : end - 4] for start, end in spans]
    for run, (position, touched) in ((k, v) for k, v in flips.items() if k != "logdir"):
        path = flips["logdir"] / run / event_file.name
        scan = RecordScan(path.read_bytes())
        assert list(scan) == payloads[:touched] + payloads[touched + 1 :], (run, position)
        start, end = spans[touched]
        assert (scan.skipped_records, scan.skipped_bytes, scan.first_offset) == (1, end - start, start)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            load_logdir(path.parent)
        (warning,) = [w for w in caught if issubclass(w.category, DamagedEventFileWarning)]
        assert str(path) in str(warning.message)
        assert f"byte offset {start}" in str(warning.message) and f"{end - start} bytes" in str(warning.message)


def _read_all(ingester, runs: list[str]) -> dict[str, dict]:
    """Every run's tensors as TensorBoard reads them; a run whose tensors TensorBoard itself
    fails to decode (it passed on a damaged payload) is left out."""
    ingester.start()
    try:
        time.sleep(0.5)
        result = {}
        for run in runs:
            try:
                result[run] = ingester.data_provider.read_tensors(
                    context.RequestContext(),
                    experiment_id="",
                    plugin_name=schema.PLUGIN_NAME,
                    downsample=10**6,
                    run_tag_filter=provider.RunTagFilter(runs=[run]),
                ).get(run, {})
            except (ValueError, TypeError):  # e.g. a flipped dtype: "Cannot convert value 39 to a TensorFlow DType"
                continue
        return result
    finally:
        stdin = getattr(ingester, "_stdin_handle", None)
        if stdin is not None:
            stdin.close()


@pytest.mark.parametrize("loader", ["python", "rust"])
def test_tensorboard_loaders_agree_on_what_they_read(event_file, flips, loader):
    """TensorBoard's Python loader stops at a damaged record and the Rust data server at a
    damaged length; every value either returns from a record
    the flip did not touch is what this project's reader returns, and the reader returns more."""
    logdir = str(flips["logdir"])
    parsed, _ = configure("--logdir", logdir)
    if loader == "python":
        ingester = data_ingester.LocalDataIngester(parsed)
    else:
        ingester = server_ingester.SubprocessServerDataIngester(
            server_binary=server_ingester.get_server_binary(),
            logdir=logdir,
            reload_interval=0,
            channel_creds_type=parsed.grpc_creds_type,
            samples_per_plugin=parsed.samples_per_plugin,
        )
    runs = [run for run in flips if run != "logdir"]
    theirs = _read_all(ingester, runs)
    assert len(theirs) > len(runs) // 2
    clean = tensors_by_tag_step(event_file)
    steps_of_record = {
        index: {(value.tag, event.step) for value in event.summary.value if value.HasField("tensor")}
        for index, event in enumerate(read_events(event_file))
    }
    assert sum(len(keys) for keys in steps_of_record.values()) == len(clean)  # one record per (tag, step)
    more = 0
    for run, (_, touched) in ((k, v) for k, v in flips.items() if k != "logdir"):
        ours = tensors_by_tag_step(flips["logdir"] / run / event_file.name)
        assert set(ours) == set(clean) - steps_of_record[touched], run  # every untouched value
        read = {
            (tag, datum.step): datum.numpy
            for tag, datums in theirs.get(run, {}).items()
            for datum in datums
            if (tag, datum.step) in clean and (tag, datum.step) not in steps_of_record[touched]
        }
        assert set(read) <= set(ours), run
        for key, value in read.items():
            if isinstance(ours[key], str):  # the run config: a string tensor
                value = np.asarray(value).reshape(-1)[0].decode("utf-8")
            np.testing.assert_array_equal(value, ours[key])
        more += len(ours) - len(read)
    assert more > 0  # the reader keeps what follows a damaged record


def test_truncated_tail_is_silent(event_file, tmp_path):
    data = event_file.read_bytes()
    spans = record_spans(data)
    rng = np.random.default_rng(SEED)
    for cut in rng.integers(spans[1][0], len(data), size=12).tolist():
        path = tmp_path / f"cut_{cut}" / event_file.name
        path.parent.mkdir()
        path.write_bytes(data[:cut])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            scan = RecordScan(path.read_bytes())
            payloads = list(scan)
            assert load_logdir(path.parent) is not None
        whole = sum(1 for _, end in spans if end <= cut)
        assert payloads == [data[start + 12 : end - 4] for start, end in spans[:whole]]
        assert scan.skipped_records == 0


def test_cli_prints_the_damage_to_stderr(event_file, flips, capsys):
    spans = record_spans(event_file.read_bytes())
    run, (_, touched) = next((k, v) for k, v in flips.items() if k != "logdir" and v[1] > 1)
    path = flips["logdir"] / run / event_file.name
    assert main(["summary", str(path.parent)]) == 0
    captured = capsys.readouterr()
    line = next(line for line in captured.err.splitlines() if "damaged" in line)
    assert line.startswith("bn-inspect: warning: ") and str(path) in line
    assert f"byte offset {spans[touched][0]}" in line
    assert "damaged" not in captured.out
