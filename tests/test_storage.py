"""Logs at any fsspec URL: local paths and file:// append to one file, other filesystems get
one complete event file per flush; bad URLs fail early, naming the fix, without credentials."""

import fsspec
import numpy as np
import pytest
from import_blocker import check, run_python

from bn_inspect import events, load_logdir, schema, storage
from bn_inspect.writer import SummaryWriter

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


def _write(log_dir, steps, layer="bn"):
    writer = SummaryWriter(log_dir)
    expected = {}
    for step in steps:
        expected[step] = np.random.default_rng(step).normal(size=3).astype(np.float32)
        writer.add_layer(layer, schema.MOVING_MEAN, expected[step])
        writer.write_step(step)
    writer.close()
    return expected


def test_object_store_gets_one_complete_event_file_per_flush():
    url = "memory://bn-inspect-tests/segments/run"
    expected = _write(url, [0, 1, 2])
    fs = fsspec.filesystem("memory")
    names = sorted(fs.ls("/bn-inspect-tests/segments/run", detail=False))
    assert len(names) == 4  # the version record, uploaded on open, then one object per step
    steps = []
    for name in names:
        records = [event for event in events.read_events(f"memory://{name}")]
        assert records[0].file_version == events.FILE_VERSION  # every object is a valid event file
        steps += [event.step for event in records[1:]]
    assert steps == [0, 1, 2]  # names sort in writing order
    series = load_logdir("memory://bn-inspect-tests/segments")["run"].layers["bn"][schema.MOVING_MEAN]
    assert series.steps.tolist() == [0, 1, 2]
    np.testing.assert_array_equal(series.values, np.stack([expected[s] for s in (0, 1, 2)]))


def test_object_store_costs_one_write_per_flush_and_only_the_new_bytes(tmp_path):
    _write(tmp_path, [0, 1, 2, 3])
    (local,) = list(tmp_path.iterdir())
    url = "memory://bn-inspect-tests/bytes/run"
    _write(url, [0, 1, 2, 3])
    fs = fsspec.filesystem("memory")
    sizes = [fs.size(p) for p in fs.ls("/bn-inspect-tests/bytes/run", detail=False)]
    header = len(events.frame_record(next(events.read_events(local)).SerializeToString()))
    # Same records as the local file (wall times differ, sizes do not), plus one version record per object.
    assert sum(sizes) == local.stat().st_size + header * (len(sizes) - 1)


def test_file_url_and_plain_path_are_the_same_directory(tmp_path):
    expected = _write(f"file://{tmp_path}/run", [0, 1])
    assert [p.name for p in (tmp_path / "run").iterdir() if events.is_event_file(p.name)]
    by_path = load_logdir(tmp_path)["run"].layers["bn"][schema.MOVING_MEAN]
    by_url = load_logdir(f"file://{tmp_path}")["run"].layers["bn"][schema.MOVING_MEAN]
    np.testing.assert_array_equal(by_path.values, by_url.values)
    np.testing.assert_array_equal(by_url.values, np.stack([expected[0], expected[1]]))


def test_missing_protocol_package_names_the_extra_and_writes_nothing_local(tmp_path):
    out = check(
        run_python(
            f"""
            import os
            from bn_inspect import storage
            from bn_inspect.writer import SummaryWriter
            os.chdir({str(tmp_path)!r})
            for url in ("gs://bucket/run", "s3://bucket/run", "nosuchfs://bucket/run"):
                try:
                    SummaryWriter(url)
                except storage.StorageError as error:
                    print(error)
            """,
            blocked=("gcsfs", "s3fs"),  # as if they were not installed
        )
    )
    gs, s3, unknown = out.strip().splitlines()
    assert gs.endswith(
        'needs the fsspec implementation of gs://, which is not installed; pip install "bn-inspect[gcs]".'
    )
    assert s3.endswith(
        'needs the fsspec implementation of s3://, which is not installed; pip install "bn-inspect[s3]".'
    )
    assert "Protocol not known: nosuchfs" in unknown
    assert list(tmp_path.iterdir()) == []  # never a local directory named after the scheme


def test_credentials_in_a_url_never_reach_a_message(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for url in (f"s3://AKIAEXAMPLE:{SECRET}@bucket/run", f"nosuchfs://user:{SECRET}@host/run"):
        with pytest.raises(storage.StorageError) as caught:
            SummaryWriter(url)
        assert SECRET not in str(caught.value)
        assert "***@" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_redact_masks_userinfo_of_every_url():
    text = f"failed s3://a:{SECRET}@b/x and https://user:{SECRET}@host:9000/p, kept /local/a@b"
    masked = storage.redact(text)
    assert SECRET not in masked
    assert masked == "failed s3://***@b/x and https://***@host:9000/p, kept /local/a@b"
