"""What every example shares: the log root, the article's data and model, population statistics.

The article's setup: ``np.random.seed(42); data = np.random.rand(1000, 10)``, random targets,
``Dense(32) -> BatchNormalization -> Dense(1)``, adam, mse, default batch size 32 (so 32
steps per epoch). Layers get fixed names, except in the initializers example, which builds its
models as the article does (automatic names, one process, no ``clear_session``).
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before Keras imports TensorFlow
logging.getLogger("tensorflow").setLevel(logging.ERROR)  # no retracing notices: examples build many models

import keras  # noqa: E402
import numpy as np  # noqa: E402

from bn_inspect.table import format_table  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
LOG_ROOT = REPO_ROOT / "logs"
SEED = 42
PROBE_SAMPLES = 64
# Keras' default batch size, passed to fit and to the inspector (Keras tells callbacks no batch size).
BATCH_SIZE = 32


def fresh_log_dir(log_root: str | os.PathLike, name: str) -> Path:
    """``log_root/name``, emptied first so that a rerun does not mix with older data."""
    path = Path(log_root) / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def article_data() -> tuple[np.ndarray, np.ndarray]:
    """The article's inputs (``np.random.seed(42); np.random.rand(1000, 10)``) and targets.

    The article draws new random targets for every model; here every run of an example
    trains on the same targets, so that runs differ only in what the example varies.
    """
    rng = np.random.RandomState(SEED)
    data = rng.rand(1000, 10).astype("float32")
    targets = rng.rand(1000, 1).astype("float32")
    return data, targets


def article_model(auto_names: bool = False, **bn_options) -> keras.Model:
    """``Dense(32) -> BatchNormalization(**bn_options) -> Dense(1)``, compiled with adam + mse.

    Seeds every random generator first, so the same call gives the same initial weights and
    the same batch order in ``fit``. ``auto_names=True`` leaves the names to Keras, as the
    article's script does: each model built in the process gets new ones
    (``batch_normalization``, ``batch_normalization_1``, ...).
    """
    keras.utils.set_random_seed(SEED)

    def name(fixed: str) -> str | None:
        return None if auto_names else fixed

    model = keras.Sequential(
        [
            keras.Input((10,)),
            keras.layers.Dense(32, name=name("dense")),
            keras.layers.BatchNormalization(name=name("bn"), **bn_options),
            keras.layers.Dense(1, name=name("head")),
        ],
        name=name("article"),
    )
    model.compile(optimizer="adam", loss="mse")
    return model


def population_stats(model: keras.Model, bn_name: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact mean and biased variance of BN layer ``bn_name``'s input over all of ``x``.

    Every layer before it runs in inference mode, as it does when the model predicts: these
    are the statistics the layer's moving averages are meant to estimate.
    """
    features = keras.Model(model.inputs[0], model.get_layer(bn_name).input)
    h = np.asarray(features(x, training=False), dtype=np.float64)
    return h.mean(axis=0), h.var(axis=0)


def bn_values(model: keras.Model, bn_name: str) -> dict[str, np.ndarray]:
    """The layer's moving_mean, moving_variance, gamma and beta as float64 arrays."""
    layer = model.get_layer(bn_name)
    return {
        name: np.asarray(getattr(layer, name).numpy(), np.float64)
        for name in ("moving_mean", "moving_variance", "gamma", "beta")
    }


def predict_one(model: keras.Model, sample: np.ndarray) -> float:
    """``model.predict`` (inference mode) on one sample, as a float."""
    return float(model.predict(sample.reshape(1, -1), verbose=0)[0, 0])


def show(title: str, headers: list[str], rows: list[list]) -> None:
    """Print a titled, aligned table."""
    print(f"\n{title}")
    print(format_table(headers, rows))
