"""Figures the CLI prints, derived from loaded runs (:mod:`bn_inspect.reader`); no printing.

Example:
    >>> from bn_inspect import load_logdir
    >>> runs = load_logdir("logs")                                   # doctest: +SKIP
    >>> summarize_run(runs["epochs/5"]).residual_max                 # doctest: +SKIP
    0.2003

Figures comparing runs are in :mod:`bn_inspect.comparison`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bn_inspect import schema
from bn_inspect.reader import RunData, Series
from bn_inspect.run_config import RunConfig


@dataclass
class LayerSummary:
    """The last logged state of one BN layer of a run."""

    path: str
    channels: int | None
    momentum: float | None
    frozen: bool
    updates: int | None  # training steps that updated the moving stats (last epoch logged)
    residual_init_weight: float | None  # momentum ** updates
    probe_mean_gap: float | None  # mean_c |batch - moving| / sqrt(moving var + eps) on the probe
    nonfinite_channels: int | None


@dataclass
class RunSummary:
    """The last logged state of one run."""

    name: str
    last_epoch: int | None
    layers: list[LayerSummary] = field(default_factory=list)
    output_gap: float | None = None  # mean |training - inference| output on the probe
    output_gap_relative: float | None = None  # the same, relative to mean |inference output|

    @property
    def frozen(self) -> list[str]:
        """Paths of the layers that run in inference mode during training."""
        return [layer.path for layer in self.layers if layer.frozen]

    @property
    def residual_min(self) -> float | None:
        values = [x.residual_init_weight for x in self.layers if x.residual_init_weight is not None]
        return min(values) if values else None

    @property
    def residual_max(self) -> float | None:
        values = [x.residual_init_weight for x in self.layers if x.residual_init_weight is not None]
        return max(values) if values else None


def _last(series: Series | None) -> np.ndarray | None:
    return None if series is None or len(series.steps) == 0 else series.values[-1]


def _last_float(series: Series | None) -> float | None:
    value = _last(series)
    return None if value is None else float(np.asarray(value).reshape(-1)[0])


def layer_configs(run: RunData) -> dict[str, dict]:
    """The newest configuration record of each layer as stored, by path (empty without a config)."""
    config = run.run_config
    return {layer.path: layer.record or layer.to_record() for layer in config.layers} if config else {}


def summarize_run(run: RunData) -> RunSummary:
    """Last epoch, per-layer residual initializer weight and gaps, probe output gap."""
    config = run.run_config or RunConfig()
    epochs = run.epochs
    summary = RunSummary(name=run.name, last_epoch=int(epochs[-1]) if epochs.size else None)
    for path in run.layer_paths:
        quantities, layer = run.layers.get(path, {}), config.layer(path)
        updates = _last_float(quantities.get(schema.UPDATES))
        nonfinite = _last_float(quantities.get(schema.NONFINITE_CHANNELS))
        summary.layers.append(
            LayerSummary(
                path=path,
                channels=layer.channels,
                momentum=layer.momentum,
                frozen=layer.frozen,
                updates=None if updates is None else int(updates),
                residual_init_weight=_last_float(quantities.get(schema.RESIDUAL_INIT_WEIGHT)),
                probe_mean_gap=_last_float(quantities.get(schema.PROBE_MEAN_GAP)),
                nonfinite_channels=None if nonfinite is None else int(nonfinite),
            )
        )
    gap = _last(run.model.get(schema.OUTPUT_GAP))
    if gap is not None:
        fields = dict(zip(schema.OUTPUT_GAP_FIELDS, np.asarray(gap, dtype=np.float64).tolist()))
        summary.output_gap, summary.output_gap_relative = fields["mean_abs"], fields["relative"]
    return summary


def describe(value: Any) -> str:
    """A config value as short text; initializer records as ``Class(key=value)``.

    Example:
        >>> describe({"class_name": "Constant", "config": {"value": 0.5}})
        'Constant(value=0.5)'
        >>> describe({"class_name": "Zeros", "config": {}})
        'Zeros'
    """
    if isinstance(value, dict) and "class_name" in value:
        config = value.get("config") or {}
        arguments = ", ".join(f"{k}={describe(v)}" for k, v in sorted(config.items()) if v is not None)
        return f"{value['class_name']}({arguments})" if arguments else str(value["class_name"])
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
