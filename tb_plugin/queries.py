"""What each data route answers, built from a :class:`ProviderReader`.

Every function returns JSON-compatible data, or ``(meta, arrays)`` for a binary
:mod:`tb_plugin.payload`, and raises :class:`~tb_plugin.errors.NotFound` for an unknown run,
layer, quantity or step. Numerics live in :mod:`bn_inspect.stats` and :mod:`tb_plugin.series`.

Example:
    >>> meta, arrays = layer_series(reader, "default", "bn", schema.GAMMA)   # doctest: +SKIP
    >>> arrays["values"].shape                                              # doctest: +SKIP
    (4, 16)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bn_inspect import alignment, doctor, schema, stats
from bn_inspect.reader import RunData, Series
from bn_inspect.run_config import RunConfig, in_model_order, newest, parse
from tb_plugin.errors import BadRequest, NotFound
from tb_plugin.provider_reader import ProviderReader, RunIndex, SeriesKey
from tb_plugin.series import align_rows, count_summary, merge_timelines, steps_to_epochs

# Per-layer scalars shown as layer x epoch heatmaps in the "Training vs inference" view: how
# far the probe batch statistics (what training mode uses), the population statistics of the
# reference data (EMA staleness) and the replicas' batch statistics are from each other.
PROBE_GAPS = (schema.PROBE_MEAN_GAP, schema.PROBE_VAR_LOG_RATIO)
STALENESS_GAPS = (schema.POPULATION_MEAN_GAP, schema.POPULATION_VAR_LOG_RATIO)
REPLICA_GAPS = (schema.REPLICA_MEAN_SPREAD_GAP,)
GAP_QUANTITIES = PROBE_GAPS + STALENESS_GAPS + REPLICA_GAPS
# Plain scalars (one value per epoch and run) drawn next to those heatmaps.
MODE_SCALARS = (schema.SCALAR_MAX_STALENESS, schema.SCALAR_MAX_REPLICA_SPREAD)
# Channel band drawn around the channel mean in the "Runs compared" view.
PERCENTILES = (10.0, 90.0)
MAX_COMPARED_RUNS = 32
# Moving statistic -> the same statistic measured on data, for the per-channel comparisons of
# the "Training vs inference" view: on the probe batch (training mode), over the reference data.
STAT_PAIRS = {schema.MOVING_MEAN: schema.PROBE_BATCH_MEAN, schema.MOVING_VARIANCE: schema.PROBE_BATCH_VARIANCE}
POPULATION_PAIRS = {schema.MOVING_MEAN: schema.POPULATION_MEAN, schema.MOVING_VARIANCE: schema.POPULATION_VARIANCE}
# Per-channel spreads across replicas, by statistic: of their batch statistics, of their copies
# of the moving statistics.
REPLICA_SPREADS = {
    "mean": (schema.REPLICA_BATCH_MEAN_SPREAD, schema.REPLICA_MOVING_MEAN_SPREAD),
    "variance": (schema.REPLICA_BATCH_VARIANCE_SPREAD, schema.REPLICA_MOVING_VARIANCE_SPREAD),
}


def schema_summary() -> dict:
    """The names the front end needs, so it never hard-codes them."""
    return {
        "variable_quantities": list(schema.VARIABLE_QUANTITIES),
        "channel_quantities": list(schema.CHANNEL_QUANTITIES),
        "probe_gaps": list(PROBE_GAPS),
        "staleness_gaps": list(STALENESS_GAPS),
        "replica_gaps": list(REPLICA_GAPS),
        "staleness_scalar": schema.SCALAR_MAX_STALENESS,
        "replica_scalar": schema.SCALAR_MAX_REPLICA_SPREAD,
        "output_gap_fields": list(schema.OUTPUT_GAP_FIELDS),
        "residual_init_weight": schema.RESIDUAL_INIT_WEIGHT,
        "stat_pairs": dict(STAT_PAIRS),
        "population_pairs": dict(POPULATION_PAIRS),
        "replica_spreads": {stat: list(quantities) for stat, quantities in REPLICA_SPREADS.items()},
        "timelines": {"epoch": schema.TIMELINE_EPOCH, "batch": schema.TIMELINE_BATCH},
        "percentiles": list(PERCENTILES),
        "views": [{"id": view, "title": doctor.VIEW_TITLES[view]} for view in doctor.VIEWS],
        "max_compared_runs": MAX_COMPARED_RUNS,
        "match_modes": list(alignment.MATCH_MODES),
    }


def _run(index: dict[str, RunIndex], name: str) -> RunIndex:
    if name not in index:
        raise NotFound(f"unknown run {name!r}: it holds no bn-inspect data")
    return index[name]


def _check_layer(run: RunIndex, layer: str) -> None:
    if layer not in run.layers():
        raise NotFound(f"unknown layer {layer!r} in run {run.name!r}")


def _run_config(reader: ProviderReader, run: RunIndex, configs: list[tuple[int, dict]]) -> RunConfig:
    """The newest of ``run``'s config records, typed: parsed once while the run has no new data."""
    return reader.cached(run, "run_config", lambda: _typed(newest(configs)))


def _typed(record: dict | None) -> RunConfig:
    """A stored run-config record, typed (the defaults without one)."""
    return parse(record) or RunConfig()


def _key(quantity: str, layer: str, timeline: str = schema.TIMELINE_EPOCH) -> SeriesKey:
    return SeriesKey(schema.KIND_LAYER, quantity, layer, timeline)


def _float_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


OVERVIEW_LAYER_FIGURES = (schema.RESIDUAL_INIT_WEIGHT, schema.NONFINITE_CHANNELS)


def runs_overview(reader: ProviderReader) -> dict:
    """Runs, their configuration and per-layer headline figures (``/runs``).

    Per layer: ``frozen`` (inference mode in training), ``nonfinite`` (``None``, or the
    :func:`~tb_plugin.series.count_summary` of its non-finite channels over epochs) and the
    initializer weight left at the last epoch. Every run is listed afresh; a run's entry is
    built once per version (the runs without one are read in one data-provider call).
    """
    index = reader.index()
    runs = [index[name] for name in sorted(index)]
    entries = {run.name: reader.kept(run, "overview") for run in runs}
    missing = [run for run in runs if entries[run.name] is None]
    if missing:
        gap_key = SeriesKey(schema.KIND_MODEL, schema.OUTPUT_GAP)
        layers = {layer for run in missing for layer in run.layers()}
        keys = [gap_key] + [_key(q, layer) for layer in layers for q in OVERVIEW_LAYER_FIGURES]
        read = reader.read_runs(missing, keys)
        for run in missing:
            entries[run.name] = reader.cached(run, "overview", lambda run=run: _run_entry(run, *read[run.name]))
    return {"runs": [entries[run.name] for run in runs], "schema": schema_summary()}


def _run_entry(run: RunIndex, data: dict[SeriesKey, Series], configs: list[tuple[int, dict]]) -> dict:
    """The ``runs_overview`` entry of ``run`` from its series read and config records."""
    record = newest(configs)
    config = _typed(record)
    layer_entries = []
    for layer in in_model_order(run.layers(), config):
        residual = data.get(_key(schema.RESIDUAL_INIT_WEIGHT, layer))
        layer_entries.append(
            {
                "path": layer,
                "config": config.layer(layer).record,
                "frozen": config.layer(layer).frozen,
                "nonfinite": count_summary(data.get(_key(schema.NONFINITE_CHANNELS, layer))),
                "quantities": run.quantities(layer),
                "batch_quantities": run.quantities(layer, schema.TIMELINE_BATCH),
                "last_residual_init_weight": (
                    _float_or_none(residual.values[-1]) if residual is not None and len(residual.steps) else None
                ),
            }
        )
    logged = [s.steps for key, s in data.items() if key.kind == schema.KIND_LAYER]
    epochs = np.unique(np.concatenate(logged)).tolist() if logged else []
    gap = data.get(SeriesKey(schema.KIND_MODEL, schema.OUTPUT_GAP))
    output_gap = None
    if gap is not None and len(gap.steps):
        output_gap = {"step": int(gap.steps[-1])}
        output_gap.update({field: _float_or_none(v) for field, v in zip(schema.OUTPUT_GAP_FIELDS, gap.values[-1])})
    return {
        "run": run.name,
        "config": {k: v for k, v in record.items() if k != "layers"} if record else None,
        "epochs": epochs,
        "layers": layer_entries,
        "output_gap": output_gap,
    }


def layer_series(
    reader: ProviderReader, run_name: str, layer: str, quantity: str, timeline: str = schema.TIMELINE_EPOCH
) -> tuple[dict, dict[str, np.ndarray]]:
    """One quantity of one layer over steps (``/series``): ``values`` ``[steps, channels]``
    (or ``[steps]`` for per-layer scalars), its per-step ``drift`` and the steps' ``epochs``."""
    if quantity not in schema.LAYER_QUANTITIES:
        raise NotFound(f"unknown quantity {quantity!r}; use one of {', '.join(schema.LAYER_QUANTITIES)}")
    if timeline not in schema.TIMELINES:
        raise BadRequest(f"timeline must be one of {', '.join(schema.TIMELINES)}; got {timeline!r}")
    run = _run(reader.index([run_name]), run_name)
    _check_layer(run, layer)
    key = _key(quantity, layer, timeline)
    data, config = reader.read_with_config(run, [key])
    series = data.get(key)
    if series is None:
        raise NotFound(f"run {run_name!r} logged no {quantity} for layer {layer!r} on the {timeline} timeline")
    epochs = steps_to_epochs(series.steps, timeline == schema.TIMELINE_BATCH, _typed(config).steps_per_epoch)
    arrays = {"values": series.values}
    if series.values.ndim == 2:
        arrays["drift"] = stats.drift(series.values)
    if epochs is not None:
        arrays["epochs"] = epochs
    meta = {
        "run": run_name,
        "layer": layer,
        "quantity": quantity,
        "timeline": timeline,
        "steps": series.steps.tolist(),
        "channels": int(series.values.shape[1]) if series.values.ndim == 2 else None,
    }
    return meta, arrays


COMPARED_CURVES = (*schema.VARIABLE_QUANTITIES, schema.RESIDUAL_INIT_WEIGHT)


def _compare_one(
    reader: ProviderReader,
    run: RunIndex,
    layer: str,
    read: tuple[dict[SeriesKey, Series], list],
    prefix: str,
    arrays: dict[str, np.ndarray],
) -> tuple[dict, dict[str, Series]]:
    """Curves of one run for ``compare_runs`` from its ``read`` series and configs; returns
    its meta and its epoch series."""
    data, configs = read
    spe = _run_config(reader, run, configs).steps_per_epoch
    curves = COMPARED_CURVES
    epoch_series = {}
    for quantity in curves:
        epoch = data.get(_key(quantity, layer))
        if epoch is None or not len(epoch.steps):
            continue
        x, values = merge_timelines(epoch, data.get(_key(quantity, layer, schema.TIMELINE_BATCH)), spe)
        arrays[f"{prefix}/{quantity}/x"] = x
        if quantity == schema.RESIDUAL_INIT_WEIGHT:
            arrays[f"{prefix}/{quantity}/y"] = values
        else:
            for field, summary in stats.channel_summary(values, *PERCENTILES).items():
                arrays[f"{prefix}/{quantity}/{field}"] = summary
            epoch_series[quantity] = epoch
    within_epoch = spe is not None and any(key.timeline == schema.TIMELINE_BATCH for key in data)
    meta = {"run": run.name, "has_layer": True, "within_epoch": within_epoch, "quantities": list(epoch_series)}
    return meta, epoch_series


def _layer_list(run: RunIndex, config: RunConfig) -> list[tuple[str, int | None]]:
    """``(path, channels)`` of a run's layers in model order, for :mod:`bn_inspect.alignment`."""
    return [(path, config.layer(path).channels) for path in in_model_order(run.layers(), config)]


def _check_match(match: str) -> None:
    if match not in alignment.MATCH_MODES:
        raise BadRequest(f"match must be one of {', '.join(alignment.MATCH_MODES)}; got {match!r}")


def align_runs(reader: ProviderReader, run_names: Sequence[str], match: str = "auto") -> dict:
    """Which layers of ``run_names`` are the same layer (``/alignment``):
    :func:`bn_inspect.alignment.align_layers` on each run's layers, as JSON (slots in model
    order, each with how it was matched and, unmatched, why)."""
    _check_match(match)
    names = list(dict.fromkeys(run_names))
    if not names:
        raise BadRequest("pass at least one run: /alignment?run=<name>")
    index = reader.index(names)
    runs = [_run(index, name) for name in names]
    read = reader.read_runs(runs, [])
    layers = {run.name: _layer_list(run, _run_config(reader, run, read[run.name][1])) for run in runs}
    return alignment.align_layers(layers, match).to_dict()


def compare_runs(
    reader: ProviderReader, run_names: Sequence[str], layers: Sequence[str]
) -> tuple[dict, dict[str, np.ndarray]]:
    """One layer slot across runs (``/compare``): ``layers`` names one layer for every run, or
    each run's own layer (the paths of an aligned slot, one per run, in order).

    Arrays are named ``"<i>/<quantity>/<field>"`` with ``i`` the run's position in
    ``run_names``: ``x`` (epochs, within-epoch points included), ``mean``, ``low``, ``high``
    (channel percentiles ``PERCENTILES``); ``"<i>/residual_init_weight/x|y"``; and
    ``"<i>/<quantity>/distance_x|distance"``: RMS over channels of this run minus the
    reference run (the first run holding its layer), at the epochs both logged.
    """
    if not run_names:
        raise BadRequest("pass at least one run: /compare?run=<name>&layer=<path>")
    if len(run_names) > MAX_COMPARED_RUNS:
        raise BadRequest(f"compare at most {MAX_COMPARED_RUNS} runs at once; got {len(run_names)}")
    if len(layers) not in (1, len(run_names)):
        raise BadRequest(f"pass one layer, or one per run ({len(run_names)}); got {len(layers)}")
    paths = list(layers) * len(run_names) if len(layers) == 1 else list(layers)
    index = reader.index(list(dict.fromkeys(run_names)))
    runs = [_run(index, name) for name in run_names]
    held = [path in run.layers() for run, path in zip(runs, paths)]
    if not any(held):
        raise NotFound(f"unknown layer {' / '.join(dict.fromkeys(paths))!r}: none of the runs has it")
    arrays: dict[str, np.ndarray] = {}
    runs_meta, all_series = [], []
    keys = [_key(q, path, t) for path in dict.fromkeys(paths) for q in COMPARED_CURVES for t in schema.TIMELINES]
    holding = {run.name: run for run, has in zip(runs, held) if has}
    read = reader.read_runs(list(holding.values()), keys)
    for position, (run, path) in enumerate(zip(runs, paths)):
        if held[position]:
            meta, series = _compare_one(reader, run, path, read[run.name], str(position), arrays)
        else:
            meta, series = {"run": run.name, "has_layer": False, "within_epoch": False, "quantities": []}, {}
        meta["layer"] = path
        runs_meta.append(meta)
        all_series.append(series)
    reference = held.index(True)
    for position, series in enumerate(all_series):
        runs_meta[position]["distance_quantities"] = []
        if position == reference:
            continue
        for quantity, values in series.items():
            base = all_series[reference].get(quantity)
            if base is None:
                continue
            try:
                steps, distance = stats.run_distance(base.steps, base.values, values.steps, values.values)
            except ValueError:
                continue  # different channel counts: not comparable
            arrays[f"{position}/{quantity}/distance_x"] = steps
            arrays[f"{position}/{quantity}/distance"] = distance
            runs_meta[position]["distance_quantities"].append(quantity)
    meta = {
        "layer": paths[reference],
        "reference": runs[reference].name,
        "percentiles": list(PERCENTILES),
        "runs": runs_meta,
    }
    return meta, arrays


def train_vs_inference(reader: ProviderReader, run_name: str) -> tuple[dict, dict[str, np.ndarray]]:
    """Training- vs inference-mode figures of one run (``/modes``).

    Arrays: ``output_gap`` ``[steps, 3]`` (fields ``schema.OUTPUT_GAP_FIELDS``); for each
    per-layer gap quantity logged (probe gaps, EMA staleness, replica spread), ``<quantity>``
    ``[layers, steps]`` (NaN where not logged) and ``<quantity>/logged`` (1 where logged, so a
    logged NaN is told apart); for each plain scalar of ``MODE_SCALARS`` logged, ``<tag>``
    ``[steps]``. Meta: the steps of each, ``frozen`` per layer and the run's ``replicas``.
    """
    run = _run(reader.index([run_name]), run_name)
    gap_key = SeriesKey(schema.KIND_MODEL, schema.OUTPUT_GAP)
    keys = [gap_key] + [_key(q, layer) for q in GAP_QUANTITIES for layer in run.layers()]
    data, record = reader.read_with_config(run, keys)
    config = _typed(record)
    layers = in_model_order(run.layers(), config)
    arrays: dict[str, np.ndarray] = {}
    meta: dict = {
        "run": run_name,
        "layers": layers,
        "frozen": [config.layer(layer).frozen for layer in layers],
        "replicas": config.replicas,
        "output_gap_fields": list(schema.OUTPUT_GAP_FIELDS),
        "output_gap_steps": [],
        "gap_steps": {},
        "scalar_steps": {},
        "probe_samples": config.probe_samples,
        "probe_has_dropout": config.probe_has_dropout,
    }
    gap = data.get(gap_key)
    if gap is not None and len(gap.steps):
        arrays["output_gap"] = gap.values.reshape(len(gap.steps), -1)
        meta["output_gap_steps"] = gap.steps.tolist()
    for quantity in GAP_QUANTITIES:
        rows = [data.get(_key(quantity, layer)) for layer in layers]
        if any(row is not None for row in rows):
            steps, matrix, logged = align_rows(rows)
            arrays[quantity] = matrix
            arrays[f"{quantity}/logged"] = logged
            meta["gap_steps"][quantity] = steps.tolist()
    for tag, series in reader.scalars(run_name, MODE_SCALARS).items():
        arrays[tag] = series.values
        meta["scalar_steps"][tag] = series.steps.tolist()
    return meta, arrays


def layer_at_step(reader: ProviderReader, run_name: str, layer: str, step: int) -> tuple[dict, dict[str, np.ndarray]]:
    """Every per-channel quantity of one layer at one step (``/layer_step``), e.g. probe batch
    statistics next to the moving ones. ``meta["steps"]`` lists the steps that can be asked,
    ``meta["quantity_steps"]`` the steps each quantity was logged at (population statistics
    may be logged every few epochs only)."""
    run = _run(reader.index([run_name]), run_name)
    _check_layer(run, layer)
    data = reader.read(run, [_key(q, layer) for q in schema.CHANNEL_QUANTITIES])
    logged = sorted({int(s) for series in data.values() for s in series.steps})
    arrays = {
        key.quantity: series.values[series.steps == step][0] for key, series in data.items() if step in series.steps
    }
    if not arrays:
        raise NotFound(f"step {step} not logged for layer {layer!r} of run {run_name!r}; logged: {logged}")
    meta = {
        "run": run_name,
        "layer": layer,
        "step": step,
        "steps": logged,
        "quantity_steps": {key.quantity: series.steps.tolist() for key, series in data.items()},
        "quantities": list(arrays),
    }
    return meta, arrays


def _last_step_quantities(run: RunIndex) -> tuple[str, ...]:
    """What the doctor needs of ``run`` at the last step only (:func:`bn_inspect.doctor.last_step_quantities`)."""
    series = run.keys()
    return doctor.last_step_quantities(key.quantity for key in series)


def _diagnosed(data: RunData) -> tuple[list[doctor.Finding], list[tuple[str, int | None]]]:
    """A run's findings and its layers (for the alignment): kept while it has no new data."""
    return doctor.diagnose({data.name: data}), alignment.run_layers(data)


def findings(reader: ProviderReader, run_names: Sequence[str], match: str = "auto") -> dict:
    """What :func:`bn_inspect.doctor.diagnose` finds in ``run_names`` (every run when empty),
    most severe first, with the count per severity, and the findings shared by several runs
    (:func:`bn_inspect.doctor.group_findings` on the runs' layers aligned with ``match``)
    (``/findings``)."""
    _check_match(match)
    index = reader.index(list(dict.fromkeys(run_names)) or None)
    names = sorted(index) if not run_names else list(dict.fromkeys(run_names))
    runs = [_run(index, name) for name in names]
    checked = {run.name: reader.kept(run, "findings") for run in runs}
    missing = [run for run in runs if checked[run.name] is None]
    if missing:  # read together: with the Rust data server each call is a round trip
        used = (doctor.LAYER_QUANTITIES_USED, doctor.MODEL_QUANTITIES_USED)
        data = reader.runs_data(missing, *used, _last_step_quantities)
        for run in missing:
            checked[run.name] = reader.cached(run, "findings", lambda run=run: _diagnosed(data[run.name]))
    found = sorted((f for name in names for f in checked[name][0]), key=lambda f: doctor.severity_rank(f.severity))
    aligned = alignment.align_layers({name: checked[name][1] for name in names}, match)
    return {
        "runs": names,
        "severities": list(doctor.SEVERITIES),
        "counts": doctor.counts(found),
        "findings": [finding.to_dict() for finding in found],
        "groups": [group.to_dict() for group in doctor.group_findings(found, aligned)],
    }
