"""The typed run configuration: records of every version parse, the callback's records survive a
round trip unchanged, and "frozen", "model order" and "newest" mean what the readers need."""

from __future__ import annotations

import dataclasses

from bn_inspect import load_logdir, schema
from bn_inspect.reader import RunData
from bn_inspect.run_config import LayerConfig, RunConfig, in_model_order, newest

# What the callback of data contract v1 wrote (bn_inspect/callback.py at its first release):
# no replica_probe_shards yet.
V1_RECORD = {
    "schema_version": 1,
    "model_name": "mlp",
    "keras_version": "3.3.3",
    "backend": "tensorflow",
    "global_dtype_policy": "float32",
    "batch_size": 16,
    "steps_per_epoch": 8,
    "epochs": 3,
    "momentum_steps_at_begin": 0,
    "probe_samples": 64,
    "probe_has_dropout": False,
    "replicas": 1,
    "layers": [
        {
            "path": "bn1",
            "class_name": "BatchNormalization",
            "momentum": 0.9,
            "epsilon": 0.001,
            "axis": -1,
            "center": True,
            "scale": True,
            "trainable": False,
            "synchronized": False,
            "renorm": False,
            "inference_mode_in_training": True,
            "channels": 8,
            "beta_initializer": {"class_name": "Zeros", "config": {}},
            "gamma_initializer": {"class_name": "Ones", "config": {}},
            "moving_mean_initializer": {"class_name": "Zeros", "config": {}},
            "moving_variance_initializer": {"class_name": "Ones", "config": {}},
            "dtype_policy": "float32",
        }
    ],
}


def test_a_v1_record_parses_with_the_missing_fields_at_their_defaults():
    config = RunConfig.from_record(V1_RECORD)
    assert (config.schema_version, config.batch_size, config.steps_per_epoch, config.probe_samples) == (1, 16, 8, 64)
    assert config.replica_probe_shards == [] and config.replicas == 1 and config.extra == {}
    (layer,) = config.layers
    assert (layer.path, layer.momentum, layer.channels, layer.frozen) == ("bn1", 0.9, 8, True)
    assert layer.moving_variance_initializer == {"class_name": "Ones", "config": {}}
    assert layer.record is V1_RECORD["layers"][0] and config.record is V1_RECORD


def test_a_record_with_few_fields_parses():
    config = RunConfig.from_record({"model_name": "m", "layers": [{"path": "net/bn"}]})
    assert config.batch_size is None and config.steps_per_epoch is None and config.momentum_steps_at_begin == 0
    assert (config.probe_samples, config.probe_has_dropout, config.replicas) == (0, False, 1)
    (layer,) = config.layers
    assert layer == LayerConfig("net/bn") and layer.epsilon == 1e-3 and layer.momentum is None
    assert not layer.frozen and not layer.synchronized
    assert RunConfig.from_record({"steps_per_epoch": None, "replicas": None, "batch_size": True}) == RunConfig()


def test_the_callbacks_records_survive_a_round_trip(plugin_logdir):
    """Records the real callback wrote (conftest's runs) come back identical from the types."""
    runs = load_logdir(plugin_logdir)
    records = [record for run in runs.values() for _, record in run.configs]
    assert records
    for record in records:
        assert set(record) == set(schema.CONFIG_FIELDS_RUN)
        assert RunConfig.from_record(record).to_record() == record


def test_fields_of_a_newer_writer_are_kept():
    record = {**V1_RECORD, "storage": "s3", "layers": [{**V1_RECORD["layers"][0], "groups": 2}]}
    config = RunConfig.from_record(record)
    assert config.extra == {"storage": "s3"} and config.layers[0].extra == {"groups": 2}
    assert config.to_record()["storage"] == "s3" and config.to_record()["layers"][0]["groups"] == 2


def test_frozen_is_inference_mode_in_training_else_not_trainable():
    assert LayerConfig("a", trainable=False).frozen
    assert not LayerConfig("a", trainable=True).frozen and not LayerConfig("a").frozen
    # Keras 3 records both; inference mode is what decides (a record saying otherwise wins).
    assert not LayerConfig("a", trainable=False, inference_mode_in_training=False).frozen
    assert LayerConfig("a", trainable=True, inference_mode_in_training=True).frozen


def test_model_order_and_the_newest_record():
    config = RunConfig(layers=(LayerConfig("head/bn"), LayerConfig("body/bn")))
    assert in_model_order(["old", "body/bn", "head/bn", "a"], config) == ["head/bn", "body/bn", "a", "old"]
    assert in_model_order(["b", "a"], None) == ["a", "b"]
    assert newest([]) is None and newest([(0, {"epochs": 1}), (3, {"epochs": 2})]) == {"epochs": 2}
    run = RunData("r", config=config.to_record(), layers={"a": {}, "head/bn": {}})
    assert run.layer_paths == ["head/bn", "body/bn", "a"]  # configured, then logged only
    assert run.run_config == config
    assert dataclasses.replace(run, config=None).run_config is None
