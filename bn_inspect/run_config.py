"""The run configuration: what the callback records once per fit, typed.

The callback builds a :class:`RunConfig` and stores :meth:`RunConfig.to_record` as a JSON
string tensor (:data:`bn_inspect.schema.CONFIG_TAG`); every reader parses the stored record back
with :meth:`RunConfig.from_record`. Records of older versions, or written by hand, parse too:
a missing field takes its default (``None`` when unknown), fields this version does not know
are kept in ``extra``. The record as read stays available as ``record`` for code that shows
or compares it verbatim (the tab's configuration tables, ``bn-inspect compare``).

What "frozen", "the newest configuration" and "layers in model order" mean is defined here
and only here. No Keras, no TensorFlow.

Example:
    >>> config = RunConfig.from_record({"batch_size": 32, "layers": [{"path": "bn", "trainable": False}]})
    >>> config.batch_size, config.replicas, config.layer("bn").frozen
    (32, 1, True)
    >>> in_model_order(["z", "bn", "a"], config)
    ['bn', 'a', 'z']
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

DEFAULT_EPSILON = 1e-3  # Keras' BatchNormalization default, for records without epsilon


def initializer_constant(record: object) -> float | None:
    """The constant a stored initializer record fills with (Zeros, Ones, Constant), else ``None``.

    Example:
        >>> initializer_constant({"class_name": "Constant", "config": {"value": 2.0}}), initializer_constant(None)
        (2.0, None)
    """
    if not isinstance(record, dict):
        return None
    name = record.get("class_name")
    if name == "Zeros":
        return 0.0
    if name == "Ones":
        return 1.0
    if name == "Constant":
        value = (record.get("config") or {}).get("value")
        return float(value) if isinstance(value, (int, float)) else None
    return None


@dataclass(frozen=True)
class LayerConfig:
    """One BatchNormalization layer as configured in a fit (an entry of the record's ``layers``)."""

    path: str
    class_name: str | None = None
    momentum: float | None = None
    epsilon: float = DEFAULT_EPSILON
    axis: int | list[int] | None = None
    center: bool | None = None
    scale: bool | None = None
    trainable: bool | None = None
    synchronized: bool = False
    renorm: bool = False
    # Keras 3 runs a non-trainable BN layer in inference mode even in training (since v1 recorded).
    inference_mode_in_training: bool | None = None
    channels: int | None = None
    beta_initializer: dict | None = None  # {"class_name": ..., "config": {...}}
    gamma_initializer: dict | None = None
    moving_mean_initializer: dict | None = None
    moving_variance_initializer: dict | None = None
    dtype_policy: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    record: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def frozen(self) -> bool:
        """Runs in inference mode during training (``trainable=False``): its moving statistics
        stay fixed and it normalises with them.

        Example:
            >>> LayerConfig("bn", trainable=False).frozen, LayerConfig("bn").frozen
            (True, False)
        """
        if self.inference_mode_in_training is not None:
            return bool(self.inference_mode_in_training)
        return self.trainable is False

    @property
    def initial_statistics(self) -> tuple[float | None, float | None]:
        """The constants the moving mean and variance initializers fill with (``None``: not a
        constant initializer, or not recorded).

        Example:
            >>> LayerConfig("bn", moving_mean_initializer={"class_name": "Zeros", "config": {}}).initial_statistics
            (0.0, None)
        """
        return initializer_constant(self.moving_mean_initializer), initializer_constant(
            self.moving_variance_initializer
        )

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> LayerConfig:
        """Parse one stored ``layers`` entry (any version; missing fields take the defaults)."""
        known, extra = _split(cls, record)
        if known.get("epsilon") is None:
            known.pop("epsilon", None)
        for flag in ("synchronized", "renorm"):
            known[flag] = bool(known.get(flag))
        return cls(**known, extra=extra, record=record)

    def to_record(self) -> dict[str, Any]:
        """The JSON record the callback stores (every field, then any ``extra`` ones)."""
        return _record(self)


@dataclass(frozen=True)
class RunConfig:
    """The configuration of one fit: model, software, batching, probe, replicas and BN layers."""

    schema_version: int | None = None
    model_name: str | None = None
    keras_version: str | None = None
    backend: str | None = None
    global_dtype_policy: str | None = None
    batch_size: int | None = None
    steps_per_epoch: int | None = None
    epochs: int | None = None
    momentum_steps_at_begin: int = 0  # optimizer iterations when the fit began (0: fresh)
    probe_samples: int = 0  # 0: no probe
    probe_has_dropout: bool = False
    replicas: int = 1
    replica_probe_shards: list[int] = field(default_factory=list)
    layers: tuple[LayerConfig, ...] = ()  # in model order
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    record: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    def layer(self, path: str) -> LayerConfig:
        """The layer configured at ``path``; for a layer not configured (e.g. logged by an
        earlier fit only), the defaults, with ``record`` ``None``."""
        return self._by_path.get(path) or LayerConfig(path)

    @cached_property
    def _by_path(self) -> dict[str, LayerConfig]:
        return {layer.path: layer for layer in self.layers}

    @property
    def paths(self) -> list[str]:
        """The configured layers' paths, in model order."""
        return [layer.path for layer in self.layers]

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> RunConfig:
        """Parse a stored run-config record (any version; missing fields take the defaults).

        Example:
            >>> config = RunConfig.from_record({"steps_per_epoch": 0, "replicas": None})
            >>> config.steps_per_epoch, config.replicas, config.layers
            (None, 1, ())
        """
        known, extra = _split(cls, record)
        known["layers"] = tuple(LayerConfig.from_record(entry) for entry in record.get("layers") or [])
        batch_size = known.get("batch_size")
        known["batch_size"] = batch_size if isinstance(batch_size, int) and not isinstance(batch_size, bool) else None
        steps = known.get("steps_per_epoch")
        known["steps_per_epoch"] = int(steps) if isinstance(steps, (int, float)) and steps > 0 else None
        known["momentum_steps_at_begin"] = int(known.get("momentum_steps_at_begin") or 0)
        known["probe_samples"] = int(known.get("probe_samples") or 0)
        known["probe_has_dropout"] = bool(known.get("probe_has_dropout"))
        known["replicas"] = int(known.get("replicas") or 1)
        known["replica_probe_shards"] = [int(size) for size in known.get("replica_probe_shards") or []]
        return cls(**known, extra=extra, record=record)

    def to_record(self) -> dict[str, Any]:
        """The JSON record the callback stores (every field, layers as their records).

        Example:
            >>> record = RunConfig(batch_size=8, layers=(LayerConfig("bn", momentum=0.9),)).to_record()
            >>> record["batch_size"], record["layers"][0]["momentum"], RunConfig.from_record(record).batch_size
            (8, 0.9, 8)
        """
        record = _record(self)
        record["layers"] = [layer.to_record() for layer in self.layers]
        return record


@functools.cache
def _stored_fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls) if f.name not in ("extra", "record"))


@functools.cache
def _stored_field_set(cls: type) -> frozenset[str]:
    return frozenset(_stored_fields(cls))


def _split(cls: type, record: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A record's fields ``cls`` knows (present ones only) and the others."""
    names = _stored_field_set(cls)
    known = {key: value for key, value in record.items() if key in names}
    return known, {key: value for key, value in record.items() if key not in names}


def _record(config: Any) -> dict[str, Any]:
    record = {name: getattr(config, name) for name in _stored_fields(type(config)) if name != "layers"}
    return {**record, **config.extra}


RUN_FIELDS: tuple[str, ...] = tuple(_stored_fields(RunConfig))
LAYER_FIELDS: tuple[str, ...] = tuple(_stored_fields(LayerConfig))


def newest(configs: Sequence[tuple[int, dict]]) -> dict | None:
    """The newest of a run's stored records ``[(step, record), ...]`` (sorted by step, in the
    order written within a step): the last; ``None`` without any.

    Example:
        >>> newest([(0, {"epochs": 2}), (2, {"epochs": 4})])
        {'epochs': 4}
    """
    return configs[-1][1] if configs else None


def parse(record: dict | None) -> RunConfig | None:
    """:meth:`RunConfig.from_record`, ``None`` for no record."""
    return None if record is None else RunConfig.from_record(record)


def in_model_order(paths: Iterable[str], config: RunConfig | None) -> list[str]:
    """``paths`` in model order: those ``config`` lists in its order, then the others sorted.

    Example:
        >>> in_model_order({"b", "x", "a"}, RunConfig(layers=(LayerConfig("b"), LayerConfig("a"))))
        ['b', 'a', 'x']
    """
    position = {path: i for i, path in enumerate(config.paths if config else [])}
    return sorted(paths, key=lambda path: (position.get(path, len(position)), path))
