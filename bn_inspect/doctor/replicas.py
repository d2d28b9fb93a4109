"""Check 7: replicas of an unsynchronized layer normalise with batch means far apart."""

from __future__ import annotations

import math

import numpy as np

from bn_inspect import schema, stats
from bn_inspect.doctor.finding import ERROR, VIEW_MODES, WARNING, Finding, finding
from bn_inspect.doctor.reading import run_layers, scalar
from bn_inspect.doctor.thresholds import REPLICA_SPREAD_ERROR, REPLICA_SPREAD_WARNING
from bn_inspect.reader import RunData
from bn_inspect.run_config import RunConfig


def check_replica_divergence(run: RunData) -> list[Finding]:
    """Under a distribution strategy with several replicas, unsynchronized layers whose replicas'
    batch means on the probe (split in one shard per replica) are :data:`REPLICA_SPREAD_WARNING`
    batch standard deviations or more apart at the last epoch."""
    config = run.run_config or RunConfig()
    replicas = config.replicas
    if replicas < 2:
        return []
    hits = []
    for layer in run_layers(run):
        spread = layer.last(schema.REPLICA_MEAN_SPREAD_GAP)
        if layer.frozen or layer.config.synchronized or spread is None:
            continue
        if scalar(spread[1]) >= REPLICA_SPREAD_WARNING:
            hits.append((layer, spread[0], scalar(spread[1])))
    if not hits:
        return []
    layer, step, spread_gap = hits[0]
    shards = [size for size in config.replica_probe_shards if size]
    chance = stats.expected_normal_range(replicas) / math.sqrt(min(shards)) if shards else None
    copies, variance = layer.at(schema.REPLICA_MOVING_MEAN_SPREAD, step), layer.at(schema.MOVING_VARIANCE, step)
    copies_gap = (
        float(np.mean(copies / np.sqrt(np.maximum(variance + layer.epsilon, np.finfo(np.float64).tiny))))
        if copies is not None and variance is not None
        else None
    )
    batch_size = config.batch_size
    return [
        finding(
            "replica_divergence",
            ERROR if spread_gap >= REPLICA_SPREAD_ERROR else WARNING,
            run,
            layer=layer.path,
            affected=[hit[0].path for hit in hits],
            title=(
                f"{replicas} replicas normalise '{layer.path}' with batch means {spread_gap:.2g} sd apart "
                "(synchronized=False" + (f"; chance alone: {chance:.2g} sd" if chance is not None else "") + ")"
            ),
            evidence={
                "replica_mean_spread_gap": spread_gap,
                "chance_spread_gap": chance,
                "replicas": replicas,
                "probe_shards": shards,
                "samples_per_replica": batch_size // replicas if batch_size is not None else None,
                "moving_copies_mean_gap": copies_gap,
                "threshold": REPLICA_SPREAD_WARNING,
            },
            fix="use BatchNormalization(synchronized=True): it all-reduces the batch statistics across replicas",
            view=VIEW_MODES,
            quantity=schema.REPLICA_MEAN_SPREAD_GAP,
            step=step,
        )
    ]
