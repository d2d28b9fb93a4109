"""Check 4: frozen BN layers (the fine-tuning trap), and the reverse: trainable layers whose
moving statistics never move."""

from __future__ import annotations

import math

from bn_inspect import schema
from bn_inspect.doctor.finding import ERROR, INFO, VIEW_EPOCHS, VIEW_MODES, VIEW_RUNS, WARNING, Finding, finding, listed
from bn_inspect.doctor.reading import (
    at_initializers,
    epochs_trained,
    fit_start,
    last_epoch,
    misfit,
    plural,
    population_gaps,
    run_layers,
    scalar,
    unchanged_since,
)
from bn_inspect.reader import RunData
from bn_inspect.run_config import RunConfig


def check_frozen(run: RunData) -> list[Finding]:
    """BN layers with ``trainable=False`` (inference mode during training, fixed statistics) in
    a run that trained: the fine-tuning trap.

    With ``reference_data`` logged, a frozen layer's statistics are compared with the population
    statistics of the input it now sees (thresholds of :func:`check_staleness`): error when they
    are a whole standard deviation or a factor 4 in variance off, warning from 0.2, info when
    they fit. Without it: warning (the fit cannot be checked). Error in any case when a frozen
    layer still holds its initializers' constants: it never estimated any statistics.
    """
    layers = run_layers(run)
    frozen = [layer for layer in layers if layer.frozen]
    trained = epochs_trained(run)
    last = last_epoch(run)
    if not frozen or trained == 0 or last is None:
        return []
    at_init = [layer for layer in frozen if at_initializers(layer, last)]
    gaps = {layer.path: population_gaps(layer) for layer in frozen}
    misfits = {path: misfit(gap[1], gap[2]) for path, gap in gaps.items() if gap is not None}
    misfitting = [layer for layer in frozen if misfits.get(layer.path)]
    unmeasured = [layer for layer in frozen if gaps[layer.path] is None]
    named = (at_init or misfitting or frozen)[0]
    gap = gaps[named.path]
    count = f"{len(frozen)} BN layer(s) frozen (inference mode, fixed statistics)"
    refresh = "set trainable=True, bn_inspect.recalibrate(model, x_new), freeze again, recompile"
    if at_init:
        severity = ERROR
        title = f"'{named.path}' is frozen with its initializers' statistics: it has never normalised anything"
        fix = "train the layer before freezing it, or run bn_inspect.recalibrate(model, x_train) while it is trainable, then freeze"
    elif misfitting:
        severity = ERROR if ERROR in misfits.values() else WARNING
        title = (
            f"'{named.path}' is frozen and no longer normalises the data it sees: its statistics are "
            f"{gap[1]:.2g} sd and x{math.exp(gap[2]):.2g} in variance off the reference data's"
        )
        fix = f"refresh the frozen layers' statistics on the new data before fine-tuning: {refresh}"
    elif unmeasured:
        severity = WARNING
        title = f"{count} while the model trained {plural(trained, 'epoch')}"
        fix = f"pass reference_data to BatchNormInspector to check them against the new data; if they differ: {refresh}"
    else:
        severity = INFO
        title = f"{count}; their statistics fit the reference data"
        fix = "nothing to do while the data stays like the reference data"
    steps_per_epoch = (run.run_config or RunConfig()).steps_per_epoch
    return [
        finding(
            "frozen_bn",
            severity,
            run,
            layer=named.path,
            title=title,
            evidence={
                "frozen_bn_layers": len(frozen),
                "trainable_bn_layers": len(layers) - len(frozen),
                "frozen_at_initializers": len(at_init),
                "frozen_misfit": len(misfitting),
                "frozen_unmeasured": len(unmeasured),
                "population_mean_gap": gap[1] if gap else None,
                "population_var_log_ratio": gap[2] if gap else None,
                "epochs_trained": trained,
                "steps_trained": trained * steps_per_epoch if steps_per_epoch else None,
                "layers": listed([layer.path for layer in frozen]),
            },
            fix=fix,
            view=VIEW_MODES if misfits.get(named.path) else VIEW_RUNS,
            quantity=schema.POPULATION_MEAN_GAP if misfits.get(named.path) else None,
            step=last,
        )
    ]


def check_not_updating(run: RunData) -> list[Finding]:
    """The reverse of the frozen trap: trainable BN layers whose moving statistics did not change
    at all while the optimizer stepped in the newest fit. They run in inference mode although
    trainable: called with ``training=False`` (Keras' fine-tuning recipe), or momentum 1. Error
    when they still hold their initializers' constants, else warning."""
    start, last = fit_start(run), last_epoch(run)
    if start is None or last is None or last <= start:
        return []
    static = []
    for layer in run_layers(run):
        if layer.frozen:
            continue
        updates = [layer.at(schema.UPDATES, step) for step in (start, last)]
        if any(v is None for v in updates):
            continue
        stepped = int(scalar(updates[1]) - scalar(updates[0]))
        if stepped > 0 and unchanged_since(layer, start, last):
            static.append((layer, stepped))
    if not static:
        return []
    at_init = [layer.path for layer, _ in static if at_initializers(layer, last)]
    layer, stepped = next(((lay, s) for lay, s in static if lay.path in at_init), static[0])
    return [
        finding(
            "bn_not_updating",
            ERROR if at_init else WARNING,
            run,
            layer=layer.path,
            title=(
                f"'{layer.path}' is trainable but its moving statistics did not change in {stepped} training steps: "
                "it runs in inference mode" + (" with its initializers' statistics" if at_init else "")
            ),
            evidence={
                "training_steps": stepped,
                "momentum": layer.config.momentum,
                "static_layers": len(static),
                "static_at_initializers": len(at_init),
                "layers": listed([lay.path for lay, _ in static]),
            },
            fix=(
                "call the model (or sub-model) holding it with training=None, not training=False, and keep "
                "momentum < 1; if inference mode is intended, check its statistics fit the data (recalibrate)"
            ),
            view=VIEW_EPOCHS,
            quantity=schema.MOVING_MEAN,
            step=last,
        )
    ]
