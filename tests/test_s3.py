"""Logs in a real S3 API (moto_server, see tests/s3_server.py): a fit writes into a bucket, the
reader, the CLI and TensorBoard's own loader read it back, a killed fit keeps its finished
epochs there, and a bucket that cannot be written stops the fit in on_train_begin."""

import io
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from bn_models import make_data, sequential_mlp
from import_blocker import check, run_python

from bn_inspect import BatchNormInspector, load_logdir, schema, storage

SCRIPTS = Path(__file__).parent / "scripts"
EPOCHS = 3
SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


class RecordMovingMeans(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.by_step = {}

    def _record(self, step):
        self.by_step[step] = {name: self.model.get_layer(name).moving_mean.numpy().copy() for name in ("bn1", "bn2")}

    def on_train_begin(self, logs=None):
        self._record(0)

    def on_epoch_end(self, epoch, logs=None):
        self._record(epoch + 1)


@pytest.fixture(scope="module")
def trained(s3_server):
    """One fit that logs into s3://<bucket>/exp/run_a, and the moving means the model held."""
    bucket = s3_server.create_bucket("bn-inspect-trained")
    keras.utils.set_random_seed(0)
    model = sequential_mlp()
    model.compile("adam", "mse")
    x, y = make_data()
    recorder = RecordMovingMeans()
    inspector = BatchNormInspector(
        f"s3://{bucket}/exp/run_a", probe_data=x[:16], batch_size=16, storage_options=s3_server.storage_options
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x, y, epochs=EPOCHS, batch_size=16, verbose=0, callbacks=[inspector, recorder])
    return {"logdir": f"s3://{bucket}/exp", "recorded": recorder.by_step}


def test_reader_reads_the_run_back_from_the_bucket(trained, s3_server):
    runs = load_logdir(trained["logdir"], storage_options=s3_server.storage_options)
    assert list(runs) == ["run_a"]
    run = runs["run_a"]
    assert run.config["batch_size"] == 16 and run.config["epochs"] == EPOCHS
    for layer in ("bn1", "bn2"):
        series = run.layers[layer][schema.MOVING_MEAN]
        assert series.steps.tolist() == list(range(EPOCHS + 1))
        np.testing.assert_array_equal(series.values, np.stack([trained["recorded"][s][layer] for s in series.steps]))
    assert run.model[schema.OUTPUT_GAP].steps.tolist() == list(range(EPOCHS + 1))


def test_cli_reads_the_bucket_with_the_endpoint_from_the_environment(trained, s3_server):
    env = s3_server.environ()
    summary = subprocess.run(
        [sys.executable, "-m", "bn_inspect.cli", "summary", trained["logdir"]],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert summary.returncode == 0, summary.stderr
    assert any(line.split()[:3] == ["run_a", "2", str(EPOCHS)] for line in summary.stdout.splitlines())
    export = subprocess.run(
        [sys.executable, "-m", "bn_inspect.cli", "export", trained["logdir"]],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert export.returncode == 0, export.stderr
    table = pd.read_csv(io.StringIO(export.stdout))
    last = table[(table.layer == "bn2") & (table.quantity == schema.MOVING_MEAN) & (table.step == EPOCHS)]
    np.testing.assert_array_equal(
        last.sort_values("channel").value.to_numpy(np.float32), trained["recorded"][EPOCHS]["bn2"]
    )


def test_tensorboards_python_loader_without_tensorflow_reads_the_bucket(trained, s3_server):
    # TensorBoard's own S3 filesystem (boto3) takes its endpoint from S3_ENDPOINT.
    out = check(
        run_python(
            f"""
            import json
            from tensorboard.backend.event_processing import plugin_event_multiplexer as pem
            multiplexer = pem.EventMultiplexer(tensor_size_guidance={{"bn_inspect": 0}})
            multiplexer.AddRunsFromDirectory({trained["logdir"]!r})
            multiplexer.Reload()
            accumulator = multiplexer.GetAccumulator("run_a")
            steps = {{tag: [e.step for e in accumulator.Tensors(tag)] for tag in accumulator.Tags()["tensors"]}}
            print(json.dumps({{"steps": steps, "loaded": loaded(["tensorflow"])}}))
            """,
            blocked=("tensorflow",),
            env=s3_server.environ(S3_ENDPOINT=s3_server.endpoint),
        )
    )
    import json

    result = json.loads(out.strip().splitlines()[-1])
    assert result["loaded"] == []
    tag = schema.group_tag(schema.KIND_LAYER, schema.VARIABLE_QUANTITIES, "bn1")
    assert result["steps"][tag] == list(range(EPOCHS + 1))


def test_sigkill_mid_epoch_leaves_the_finished_epochs_in_the_bucket(s3_server, tmp_path):
    bucket = s3_server.create_bucket("bn-inspect-killed")
    variables = tmp_path / "variables.npz"
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / "killed_s3_fit.py"), f"s3://{bucket}/run", str(variables)],
        capture_output=True,
        text=True,
        timeout=300,
        env=s3_server.environ(),
    )
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    saved = np.load(variables)
    assert sorted(saved.files) == ["step_0", "step_1", "step_2"]  # killed in epoch 3
    run = load_logdir(f"s3://{bucket}/run", storage_options=s3_server.storage_options)["."]
    series = run.layers["bn"][schema.MOVING_MEAN]
    assert series.steps.tolist() == [0, 1, 2]
    np.testing.assert_array_equal(series.values, np.stack([saved[f"step_{s}"] for s in range(3)]))


def _fit_raises(log_dir, storage_options=None):
    keras.utils.set_random_seed(0)
    model = sequential_mlp()
    model.compile("sgd", "mse")
    x, y = make_data(n=32)
    inspector = BatchNormInspector(log_dir, storage_options=storage_options)
    with pytest.raises(storage.StorageError) as caught, warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        model.fit(x, y, epochs=2, verbose=0, callbacks=[inspector])
    assert int(model.optimizer.iterations.numpy()) == 0  # stopped in on_train_begin, before any step
    return str(caught.value), [str(w.message) for w in warned]


def test_unwritable_bucket_stops_the_fit_in_on_train_begin_without_secrets(s3_server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    options = {**s3_server.storage_options, "secret": SECRET}
    message, warned = _fit_raises("s3://no-such-bucket-here/run", options)
    assert "cannot write to log_dir 's3://no-such-bucket-here/run'" in message and "bucket" in message
    assert SECRET not in message and not any(SECRET in w for w in warned)
    assert list(tmp_path.iterdir()) == []  # nothing written locally instead


def test_credentials_in_the_url_stop_the_fit_and_are_never_shown(s3_server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s3_server.create_bucket("bn-inspect-secret")
    message, warned = _fit_raises(f"s3://AKIAEXAMPLE:{SECRET}@bn-inspect-secret/run", s3_server.storage_options)
    assert "s3://***@bn-inspect-secret/run" in message and "AWS_ACCESS_KEY_ID" in message
    assert SECRET not in message and not any(SECRET in w for w in warned)
    assert list(tmp_path.iterdir()) == []
    assert load_logdir  # the bucket stays empty:
    fs = storage.locate("s3://bn-inspect-secret", s3_server.storage_options)
    assert storage.files_below(fs) == []


def test_a_failed_upload_is_retried_with_the_next_step(s3_server):
    import boto3

    from bn_inspect.writer import SummaryWriter

    bucket = s3_server.create_bucket("bn-inspect-outage")
    client = boto3.client(
        "s3", endpoint_url=s3_server.endpoint, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    writer = SummaryWriter(storage.locate(f"s3://{bucket}/run", s3_server.storage_options))
    values = {step: np.full(3, step, np.float32) for step in range(3)}
    writer.add_layer("bn", schema.MOVING_MEAN, values[0])
    writer.write_step(0)
    for listed in client.list_objects_v2(Bucket=bucket)["Contents"]:  # the store goes away
        client.delete_object(Bucket=bucket, Key=listed["Key"])
    client.delete_bucket(Bucket=bucket)
    writer.add_layer("bn", schema.MOVING_MEAN, values[1])
    with pytest.raises(FileNotFoundError):
        writer.write_step(1)
    client.create_bucket(Bucket=bucket)  # and comes back
    writer.add_layer("bn", schema.MOVING_MEAN, values[2])
    writer.write_step(2)
    writer.close()
    run = load_logdir(f"s3://{bucket}/run", storage_options=s3_server.storage_options)["."]
    series = run.layers["bn"][schema.MOVING_MEAN]
    assert series.steps.tolist() == [1, 2]  # step 0 went with the deleted bucket; step 1 was kept and retried
    np.testing.assert_array_equal(series.values, np.stack([values[1], values[2]]))


def test_within_epoch_logging_sends_one_object_per_epoch(s3_server):
    """Every step's state arrives in the bucket, equal to the variables after that step, in one
    object per epoch (with the epoch's own state), not one per step."""
    import boto3

    bucket = s3_server.create_bucket("bn-inspect-batches")
    keras.utils.set_random_seed(0)
    model = sequential_mlp()
    model.compile("adam", "mse")
    x, y = make_data()  # 96 samples: 6 steps of 16 per epoch
    after_step = {}

    class RecordAfterEachStep(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            after_step[len(after_step) + 1] = self.model.get_layer("bn1").moving_mean.numpy().copy()

    inspector = BatchNormInspector(
        f"s3://{bucket}/run", log_every_n_batches=1, storage_options=s3_server.storage_options
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[inspector, RecordAfterEachStep()])
    client = boto3.client(
        "s3", endpoint_url=s3_server.endpoint, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    objects = client.list_objects_v2(Bucket=bucket)["Contents"]
    assert len(objects) == 4  # the version record, step 0, and one per epoch
    series = load_logdir(f"s3://{bucket}/run", storage_options=s3_server.storage_options)["."].batch_layers["bn1"]
    moving_mean = series[schema.MOVING_MEAN]
    assert moving_mean.steps.tolist() == list(range(1, 13))
    np.testing.assert_array_equal(moving_mean.values, np.stack([after_step[step] for step in range(1, 13)]))
