"""Small Keras models with BatchNormalization in every kind of container, and a numpy
re-implementation of their forward pass for independent checks."""

from __future__ import annotations

import keras
import numpy as np

FEATURES = 6


def _mlp_layers(prefix: str) -> list:
    return [
        keras.layers.Dense(8, name=f"{prefix}dense1"),
        keras.layers.BatchNormalization(name=f"{prefix}bn1", momentum=0.9),
        keras.layers.Activation("relu", name=f"{prefix}relu"),
        keras.layers.Dense(5, name=f"{prefix}dense2"),
        keras.layers.BatchNormalization(name=f"{prefix}bn2", epsilon=1e-2),
        keras.layers.Dense(2, name=f"{prefix}out"),
    ]


def sequential_mlp() -> keras.Model:
    return keras.Sequential([keras.Input((FEATURES,)), *_mlp_layers("")], name="seq")


def functional_mlp() -> keras.Model:
    inputs = keras.Input((FEATURES,))
    x = inputs
    for layer in _mlp_layers(""):
        x = layer(x)
    return keras.Model(inputs, x, name="func")


def nested_mlp() -> keras.Model:
    """A functional model whose first half is itself a Sequential model."""
    layers = _mlp_layers("")
    inner = keras.Sequential([keras.Input((FEATURES,)), *layers[:3]], name="backbone")
    inputs = keras.Input((FEATURES,))
    x = inner(inputs)
    for layer in layers[3:]:
        x = layer(x)
    return keras.Model(inputs, x, name="outer")


class _Block(keras.layers.Layer):
    """A custom layer holding a Dense and a BatchNormalization."""

    def __init__(self, dense: keras.layers.Layer, bn: keras.layers.Layer, **kwargs):
        super().__init__(**kwargs)
        self.dense, self.bn = dense, bn

    def call(self, x, training=None):
        return self.bn(self.dense(x), training=training)


class SubclassedMLP(keras.Model):
    def __init__(self):
        super().__init__(name="sub")
        layers = _mlp_layers("")
        self.block = _Block(layers[0], layers[1], name="block")
        self.relu, self.dense2, self.bn2, self.out = layers[2:]

    def call(self, x, training=None):
        x = self.relu(self.block(x, training=training))
        return self.out(self.bn2(self.dense2(x), training=training))


def subclassed_mlp() -> keras.Model:
    model = SubclassedMLP()
    model(np.zeros((2, FEATURES), "float32"))
    return model


def dropout_mlp(units: int, rate: float, outputs: int, seed: int) -> keras.Model:
    """Dense -> BatchNormalization -> Dropout -> Dense, compiled, seeded: a model whose
    training-mode output is random."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((FEATURES,))
    h = keras.layers.Dense(units)(inputs)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.Dropout(rate, name="dropout")(h)
    model = keras.Model(inputs, keras.layers.Dense(outputs)(h))
    model.compile("adam", "mse")
    return model


MODEL_BUILDERS = {
    "sequential": sequential_mlp,
    "functional": functional_mlp,
    "nested": nested_mlp,
    "subclassed": subclassed_mlp,
}


def mlp_weights(model: keras.Model) -> dict[str, dict[str, np.ndarray]]:
    """The MLP's weights by layer name, as numpy, found by walking every container."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for layer in model._flatten_layers(include_self=False):
        if layer.weights and not layer._layers:
            out[layer.name] = {w.name: np.asarray(w.numpy(), np.float64) for w in layer.weights}
    return out


def numpy_mlp_forward(weights: dict, x: np.ndarray, training: bool) -> tuple[np.ndarray, dict]:
    """Forward pass of the MLP in numpy; returns (outputs, {bn name: its input})."""
    inputs = {}

    def dense(name, h):
        return h @ weights[name]["kernel"] + weights[name]["bias"]

    def bn(name, h, eps):
        inputs[name] = h
        w = weights[name]
        if training:
            mean, var = h.mean(axis=0), h.var(axis=0)
        else:
            mean, var = w["moving_mean"], w["moving_variance"]
        return w["gamma"] * (h - mean) / np.sqrt(var + eps) + w["beta"]

    h = bn("bn1", dense("dense1", np.asarray(x, np.float64)), 1e-3)
    h = np.maximum(h, 0)
    h = bn("bn2", dense("dense2", h), 1e-2)
    return dense("out", h), inputs


def make_data(n: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(n, FEATURES)) * 2 + 1).astype("float32")
    y = rng.normal(size=(n, 2)).astype("float32")
    return x, y


def snapshot(model: keras.Model) -> list[np.ndarray]:
    """Copies of every model and optimizer variable."""
    variables = list(model.variables)
    if getattr(model, "optimizer", None) is not None:
        variables += list(model.optimizer.variables)
    return [np.array(v.numpy(), copy=True) for v in variables]
