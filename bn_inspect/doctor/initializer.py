"""Check 1: the moving statistics still weigh their initializers (``momentum**updates``)."""

from __future__ import annotations

import math

from bn_inspect import schema, stats
from bn_inspect.doctor.finding import ERROR, VIEW_COMPARE, WARNING, Finding, finding
from bn_inspect.doctor.reading import at_initializers, counting_start, plural, run_layers, scalar
from bn_inspect.doctor.thresholds import RESIDUAL_ERROR, RESIDUAL_WARNING
from bn_inspect.reader import RunData
from bn_inspect.run_config import RunConfig


def check_initializer_dominant(run: RunData) -> list[Finding]:
    """Trainable layers whose moving statistics still weigh the initializer ``momentum**updates``
    above :data:`RESIDUAL_WARNING` at the last epoch; names the first in model order, with
    the steps (and the momentum) that would bring it below the threshold."""
    hits = []
    for layer in run_layers(run):
        last = layer.last(schema.RESIDUAL_INIT_WEIGHT)
        if layer.frozen or last is None or not scalar(last[1]) >= RESIDUAL_WARNING:
            continue
        hits.append((layer, last[0], scalar(last[1])))
    if not hits:
        return []
    layer, step, weight = hits[0]
    momentum = float(layer.config.momentum if layer.config.momentum is not None else 0.99)
    updates_value = layer.at(schema.UPDATES, step)
    updates = int(scalar(updates_value)) if updates_value is not None else None
    if updates is None:
        updates = round(math.log(weight) / math.log(momentum)) if 0 < momentum < 1 and weight > 0 else 0
    steps_needed = max(0, stats.steps_until_residual(momentum, RESIDUAL_WARNING) - updates) if momentum < 1 else None
    steps_per_epoch = (run.run_config or RunConfig()).steps_per_epoch
    epochs_needed = math.ceil(steps_needed / steps_per_epoch) if steps_needed is not None and steps_per_epoch else None
    momentum_needed = RESIDUAL_WARNING ** (1.0 / updates) if updates > 0 else None
    start = counting_start(run)
    from_initializers = at_initializers(layer, start) if start is not None else None
    severity = ERROR if weight >= RESIDUAL_ERROR and from_initializers is not False else WARNING
    origin = "the starting values" if from_initializers is False else "the initializers"
    fixes = []
    if steps_needed is not None:
        about = f" (about {plural(epochs_needed, 'epoch')})" if epochs_needed else ""
        fixes.append(f"train >= {steps_needed} more steps{about}")
    if momentum_needed is not None:
        fixes.append(f"use momentum <= {momentum_needed:.3g}")
    fixes.append("or call bn_inspect.recalibrate(model, x_train) after training")
    return [
        finding(
            "initializer_dominant",
            severity,
            run,
            layer=layer.path,
            affected=[hit[0].path for hit in hits],
            title=(
                f"{origin} still weigh {weight:.0%} in the moving statistics after {updates} updates "
                f"(momentum {momentum:g})"
            ),
            evidence={
                "residual_init_weight": weight,
                "momentum": momentum,
                "updates": updates,
                "threshold": RESIDUAL_WARNING,
                "steps_needed": steps_needed,
                "epochs_needed": epochs_needed,
                "momentum_needed": momentum_needed,
                "starts_from_initializers": from_initializers,
                "max_residual_init_weight": max(hit[2] for hit in hits),
            },
            fix=", ".join(fixes),
            view=VIEW_COMPARE,
            quantity=schema.RESIDUAL_INIT_WEIGHT,
            step=step,
        )
    ]
