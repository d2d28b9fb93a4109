"""``recalibrate``: replace BatchNormalization moving statistics by population statistics.

PreciseBN for Keras (Wu & Johnson 2021; fvcore ``update_bn_stats``,
``torch.optim.swa_utils.update_bn``), with one difference, argued in
:mod:`bn_inspect.population`: statistics are taken from the input each layer meets at
inference, layer after layer in call order, with the layers before it already recalibrated.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from bn_inspect.layers import variable_values
from bn_inspect.population import PopulationStatistics
from bn_inspect.stats import layer_gaps


@dataclass(frozen=True)
class LayerRecalibration:
    """What ``recalibrate`` found for one BN layer, and whether it installed it."""

    path: str
    updated: bool  # False for frozen (trainable=False) layers, which keep their statistics
    count: int  # values per channel the population statistics were computed from
    old_mean: np.ndarray  # float32 [channels], the moving mean before
    old_variance: np.ndarray
    new_mean: np.ndarray  # float32 [channels], the population mean (installed when updated)
    new_variance: np.ndarray
    mean_gap: float  # mean_c |new_mean - old_mean| / sqrt(old_variance + eps)
    variance_log_ratio: float  # mean_c |log((new_variance + eps) / (old_variance + eps))|


def recalibrate(
    model: Any,
    data: Any,
    num_samples: int | None = None,
    progress: bool = True,
    batch_size: int = 128,
) -> dict[str, LayerRecalibration]:
    """Set every trainable BN layer's moving statistics to its population statistics on ``data``.

    Layer ``k`` gets the exact mean and (biased) variance of the input it receives at
    inference (Dropout off) once the layers called before it are recalibrated, so that
    afterwards inference normalises ``data`` exactly. That takes one pass over ``data``
    per trainable BN layer. Only ``moving_mean`` and ``moving_variance`` change (and a
    renorm layer's ``moving_stddev``, kept equal to ``sqrt(moving_variance + epsilon)``);
    weights, frozen BN layers, RNG and optimizer state are untouched. Works for
    sequential, functional, nested and subclassed models.

    Use it after training (or before evaluating an early checkpoint) with a few thousand
    training samples, without augmentation noise you would not apply at inference.

    Args:
        model: A built Keras model.
        data: Model inputs: an array, a list/dict of arrays, an ``(x, y)`` tuple, or a
            re-iterable dataset of batches (``tf.data.Dataset``, ``keras.utils.PyDataset``).
            Targets are ignored. It is read once per trainable BN layer, batch by batch.
        num_samples: Use at most this many samples. Defaults to `None` (all of ``data``).
        progress: Show a Keras progress bar. Defaults to `True`.
        batch_size: Batch size for array ``data`` (only speed and memory depend on it).
            Defaults to `128`.

    Returns:
        ``{layer path: LayerRecalibration}`` in call order, old vs new statistics per
        layer, frozen layers included with ``updated=False``.

    Example:
    ```python
    model.fit(x_train, y_train, epochs=1)
    report = bn_inspect.recalibrate(model, x_train, num_samples=4096)
    for path, layer in report.items():
        print(path, layer.mean_gap)
    ```
    """
    statistics = PopulationStatistics(model, data, batch_size=batch_size, num_samples=num_samples, what="data")
    if statistics.unreached:
        warnings.warn(
            f"recalibrate: layers {[f.path for f in statistics.unreached]} are not called at inference "
            "and keep their moving statistics.",
            stacklevel=2,
        )
    populations = statistics.compute(progress=progress)
    layers = {found.path: found.layer for found in statistics.order}
    report: dict[str, LayerRecalibration] = {}
    for path, population in populations.items():
        layer = layers[path]
        old = variable_values(layer)
        new_mean = population.mean.astype(np.float32)
        new_variance = population.variance.astype(np.float32)
        if layer.trainable:
            _install(layer, new_mean, new_variance)
        mean_gap, variance_log_ratio = layer_gaps(
            new_mean, new_variance, old["moving_mean"], old["moving_variance"], layer.epsilon
        )
        report[path] = LayerRecalibration(
            path=path,
            updated=bool(layer.trainable),
            count=population.count,
            old_mean=old["moving_mean"],
            old_variance=old["moving_variance"],
            new_mean=new_mean,
            new_variance=new_variance,
            mean_gap=mean_gap,
            variance_log_ratio=variance_log_ratio,
        )
    return report


def _install(layer: Any, mean: np.ndarray, variance: np.ndarray) -> None:
    def assign(variable: Any, values: np.ndarray) -> None:
        variable.assign(np.asarray(values).reshape(variable.shape).astype(variable.dtype))

    assign(layer.moving_mean, mean)
    assign(layer.moving_variance, variance)
    if getattr(layer, "renorm", False):
        assign(layer.moving_stddev, np.sqrt(variance.astype(np.float64) + layer.epsilon))
