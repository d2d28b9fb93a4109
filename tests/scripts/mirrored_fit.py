"""Train under tf.distribute.MirroredStrategy on two logical CPUs with the inspector.

Usage: python mirrored_fit.py LOG_ROOT OUT_NPZ

Trains one model with ``synchronized=False`` BN layers (run ``LOG_ROOT/unsync``) and one with
``synchronized=True`` (``LOG_ROOT/sync``), then saves into OUT_NPZ what the test checks the
logs against, computed independently of bn-inspect: every replica's copy of the final BN
variables, numpy batch statistics of the first BN layer's input on each half of the probe, and
whether training without the inspector ends in bitwise the same variables.
"""

import os
import sys
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["KERAS_BACKEND"] = "tensorflow"

import tensorflow as tf

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from bn_inspect import BatchNormInspector  # noqa: E402


def build(synchronized: bool) -> tuple[keras.Model, keras.Model]:
    """A model with two BN layers, and the sub-model giving the first BN layer's input."""
    inputs = keras.Input((6,))
    features = keras.layers.Dense(4, name="features")(inputs)
    h = keras.layers.BatchNormalization(name="bn1", synchronized=synchronized)(features)
    h = keras.layers.Dense(3, activation="relu", name="hidden")(h)
    h = keras.layers.BatchNormalization(name="bn2", synchronized=synchronized)(h)
    model = keras.Model(inputs, keras.layers.Dense(1, name="out")(h), name=f"mirrored_{synchronized}")
    model.compile("sgd", "mse")
    return model, keras.Model(inputs, features)


def main(log_root: str, out_path: str) -> None:
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 6)).astype("float32")
    y = x[:, :1] * 2
    probe = x[:16].copy()
    probe[8:] += 3.0  # the second replica's shard differs clearly from the first's
    out = {}
    final = {}
    for name, synchronized in (("plain", False), ("unsync", False), ("sync", True)):
        keras.utils.set_random_seed(0)
        with strategy.scope():
            model, feature_model = build(synchronized)
        callbacks = [] if name == "plain" else [BatchNormInspector(os.path.join(log_root, name), probe_data=probe)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=callbacks)
        final[name] = [np.asarray(c) for v in model.variables for c in strategy.experimental_local_results(v.value)]
        if name == "plain":
            continue
        for layer_name in ("bn1", "bn2"):
            layer = model.get_layer(layer_name)
            for variable in (layer.moving_mean, layer.moving_variance, layer.gamma, layer.beta):
                copies = strategy.experimental_local_results(variable.value)
                out[f"{name}/{layer_name}/{variable.name}"] = np.stack([np.asarray(c) for c in copies])
        shards = [np.asarray(feature_model(half), np.float64) for half in (probe[:8], probe[8:])]
        out[f"{name}/bn1/shard_mean"] = np.stack([s.mean(axis=0) for s in shards])
        out[f"{name}/bn1/shard_variance"] = np.stack([s.var(axis=0) for s in shards])
        out[f"{name}/bn1/probe_variance"] = np.asarray(feature_model(probe), np.float64).var(axis=0)
    plain, inspected = final["plain"], final["unsync"]
    out["unchanged_by_inspector"] = len(plain) == len(inspected) and all(
        a.tobytes() == b.tobytes() for a, b in zip(plain, inspected)
    )
    np.savez(out_path, **out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
