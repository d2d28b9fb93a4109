"""Numpy references for population statistics (no TensorFlow import: usable on any backend)."""

import keras
import numpy as np


def numpy_population(weights: dict, x: np.ndarray, frozen: tuple = ()) -> dict:
    """The convention in numpy for the bn_models MLP: inference mode, bn1 normalising with its
    population statistics (or its moving ones when frozen) before bn2 is measured."""
    h1 = np.asarray(x, np.float64) @ weights["dense1"]["kernel"] + weights["dense1"]["bias"]
    bn1 = weights["bn1"]
    mean1, var1 = (bn1["moving_mean"], bn1["moving_variance"]) if "bn1" in frozen else (h1.mean(0), h1.var(0))
    a1 = np.maximum(bn1["gamma"] * (h1 - mean1) / np.sqrt(var1 + 1e-3) + bn1["beta"], 0.0)
    h2 = a1 @ weights["dense2"]["kernel"] + weights["dense2"]["bias"]
    return {"bn1": (h1.mean(0), h1.var(0)), "bn2": (h2.mean(0), h2.var(0))}


def randomise_bn(model: keras.Model, seed: int = 1) -> None:
    """Non-default gamma, beta and moving statistics, so that substitutions matter."""
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            for variable in (layer.gamma, layer.beta, layer.moving_mean):
                variable.assign(rng.normal(size=variable.shape).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, size=layer.moving_variance.shape).astype("float32"))


def assert_population_close(got, mean, variance):
    """rel <= 1e-5: the variance relative to itself, the mean relative to the channel's std."""
    np.testing.assert_allclose(got.variance, variance, rtol=1e-5)
    np.testing.assert_allclose(got.mean, mean, rtol=1e-5, atol=1e-5 * np.sqrt(variance).max())
