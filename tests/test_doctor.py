"""The BN doctor: every finding is triggered by a small real training run crafted to cause it,
its evidence checked against numpy on the model's own variables, and a healthy run triggers
none. Replica divergence (finding 7) is checked on schema-conformant data written with
bn_inspect.writer, since a MirroredStrategy run needs its own process (tests/test_robustness.py
runs one)."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
import textwrap
import warnings

import keras
import numpy as np
import pytest

from bn_inspect import BatchNormInspector, BatchNormInspectorWarning, doctor, load_logdir, schema
from bn_inspect.cli import main
from bn_inspect.reader import RunData, Series
from bn_inspect.writer import SummaryWriter

SAMPLES, FEATURES, BATCH = 200, 4, 32
STEPS = math.ceil(SAMPLES / BATCH)  # 7 training steps per epoch
PROBE = 64
EPS = 1e-3


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(SAMPLES, FEATURES)) * 2 + 1).astype("float32")  # not standardised
    return x, (x @ rng.normal(size=(FEATURES, 1))).astype("float32")


def _mlp(momentum: float = 0.9) -> keras.Model:
    """Dense -> bn1 -> ReLU -> Dense -> bn2 -> ReLU -> Dense."""
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(8, name="dense1"),
            keras.layers.BatchNormalization(name="bn1", momentum=momentum),
            keras.layers.Activation("relu"),
            keras.layers.Dense(8, name="dense2"),
            keras.layers.BatchNormalization(name="bn2", momentum=momentum),
            keras.layers.Activation("relu"),
            keras.layers.Dense(1, name="out"),
        ],
        name="mlp",
    )


class InferenceModeBackbone(keras.Model):
    """Keras' fine-tuning recipe: the backbone is called with training=False, so its BN layer
    runs in inference mode although trainable. (In a functional model Keras 3 overrides that
    recorded training=False with fit's training=True; a subclassed call() keeps it.)"""

    def __init__(self):
        super().__init__(name="recipe")
        self.backbone = keras.Sequential(
            [
                keras.Input((FEATURES,)),
                keras.layers.Dense(8, name="dense1"),
                keras.layers.BatchNormalization(name="bn1"),
            ],
            name="backbone",
        )
        self.dense2 = keras.layers.Dense(8, name="dense2")
        self.bn2 = keras.layers.BatchNormalization(name="bn2")
        self.out = keras.layers.Dense(1, name="out")

    def call(self, x, training=None):
        h = keras.ops.relu(self.backbone(x, training=False))
        return self.out(self.bn2(self.dense2(h), training=training))


def _inference_mode_backbone() -> keras.Model:
    keras.utils.set_random_seed(0)
    model = InferenceModeBackbone()
    model(np.zeros((2, FEATURES), "float32"))
    return model


class BreakStatistics(keras.callbacks.Callback):
    """At the end of training, writes broken values into moving statistics (listed before the
    inspector, so it logs them): bn1 variance -1, NaN, 1e-6, 0 in channels 0-3; bn2 mean inf in 0."""

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 < self.params["epochs"]:
            return
        bn1, bn2 = self.model.get_layer("bn1"), self.model.get_layer("bn2")
        variance = bn1.moving_variance.numpy()
        variance[:4] = [-1.0, np.nan, 1e-6, 0.0]
        bn1.moving_variance.assign(variance)
        mean = bn2.moving_mean.numpy()
        mean[0] = np.inf
        bn2.moving_mean.assign(mean)


def _frozen_backbone(x: np.ndarray, shift_sd: float) -> keras.Model:
    """The MLP with dense1 and bn1 frozen (a pre-trained backbone); bn1's moving statistics are
    the exact population statistics of its input over ``x``, the mean shifted by ``shift_sd``
    standard deviations."""
    model = _mlp(0.9)
    features = _bn1_input(model, x)
    mean, variance = features.mean(0), features.var(0)
    bn1 = model.get_layer("bn1")
    bn1.moving_mean.assign((mean + shift_sd * np.sqrt(variance)).astype("float32"))
    bn1.moving_variance.assign(variance.astype("float32"))
    model.get_layer("dense1").trainable = False
    bn1.trainable = False
    return model


def _fit(model, log_dir, x, y, epochs, batch_size=BATCH, callbacks=(), **inspector) -> keras.Model:
    model.compile("adam", "mse")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BatchNormInspectorWarning)
        model.fit(
            x,
            y,
            epochs=epochs,
            batch_size=batch_size,
            verbose=0,
            callbacks=[*callbacks, BatchNormInspector(log_dir, batch_size=batch_size, **inspector)],
        )
    return model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One logdir of real runs, each crafted to cause one finding, plus a healthy one; and
    the trained models, for independent checks."""
    root = tmp_path_factory.mktemp("doctor")
    x, y = _data()
    probe = {"probe_data": x[:PROBE]}
    models = {
        # momentum 0.9, 42 steps (0.9**42 = 1.2%), batch 32, probe 64, reference data
        "healthy": _fit(_mlp(0.9), root / "healthy", x, y, epochs=6, reference_data=x, **probe),
        # momentum 0.99, one epoch of 7 steps: 93% initializer
        "short": _fit(_mlp(0.99), root / "short", x, y, epochs=1, reference_data=x, **probe),
        "small_batch": _fit(_mlp(0.9), root / "small_batch", x[:40], y[:40], epochs=1, batch_size=2, **probe),
        "not_updating": _fit(_inference_mode_backbone(), root / "not_updating", x, y, epochs=1),
        "broken": _fit(_mlp(0.9), root / "broken", x, y, epochs=1, callbacks=[BreakStatistics()]),
    }
    frozen = _mlp(0.9)
    frozen.get_layer("bn2").trainable = False  # frozen before it ever saw data
    models["frozen"] = _fit(frozen, root / "frozen", x, y, epochs=1, **probe)
    # a frozen pre-trained backbone (dense1, bn1) whose statistics fit the data, or are 3 sd off
    models["frozen_fitting"] = _fit(
        _frozen_backbone(x, 0.0), root / "frozen_fitting", x, y, epochs=5, reference_data=x, **probe
    )
    models["frozen_shifted"] = _fit(
        _frozen_backbone(x, 3.0), root / "frozen_shifted", x, y, epochs=1, reference_data=x, **probe
    )
    runs = load_logdir(root)
    return {"root": str(root), "runs": runs, "models": models, "x": x, "findings": doctor.diagnose(runs)}


def _findings(trained, run: str) -> dict[str, doctor.Finding]:
    found = [f for f in trained["findings"] if f.run == run]
    by_id = {f.id: f for f in found}
    assert len(by_id) == len(found), "one finding per (run, id)"
    return by_id


# --- independent numerics --------------------------------------------------------------------
def _weights(model: keras.Model, name: str) -> dict[str, np.ndarray]:
    return {v.name: np.asarray(v.numpy(), np.float64) for v in model.get_layer(name).weights}


def _forward(model: keras.Model, x: np.ndarray, training: bool) -> np.ndarray:
    """The MLP in numpy; BN in training mode uses the batch's biased statistics."""
    h = np.asarray(x, np.float64)
    for layer in model.layers:
        w = {v.name: np.asarray(v.numpy(), np.float64) for v in layer.weights}
        if isinstance(layer, keras.layers.Dense):
            h = h @ w["kernel"] + w["bias"]
        elif isinstance(layer, keras.layers.BatchNormalization):
            mean, var = (h.mean(0), h.var(0)) if training else (w["moving_mean"], w["moving_variance"])
            h = w["gamma"] * (h - mean) / np.sqrt(var + EPS) + w["beta"]
        else:
            h = np.maximum(h, 0)
    return h


def _gaps(mean, var, moving_mean, moving_var) -> tuple[float, float]:
    return (
        np.mean(np.abs(mean - moving_mean) / np.sqrt(moving_var + EPS)),
        np.mean(np.abs(np.log((var + EPS) / (moving_var + EPS)))),
    )


def _bn1_input(model: keras.Model, x: np.ndarray) -> np.ndarray:
    w = _weights(model, "dense1")
    return np.asarray(x, np.float64) @ w["kernel"] + w["bias"]


# --- the healthy run ---------------------------------------------------------------------------
def test_healthy_run_triggers_nothing(trained):
    assert _findings(trained, "healthy") == {}
    assert doctor.diagnose({"healthy": trained["runs"]["healthy"]}) == []


# --- 1. initializer still dominant --------------------------------------------------------------
def test_initializer_dominant_after_one_epoch_at_momentum_099(trained):
    finding = _findings(trained, "short")["initializer_dominant"]
    assert (finding.severity, finding.layer, finding.step, finding.view) == ("error", "bn1", 1, "compare")
    e = finding.evidence
    assert e["updates"] == STEPS and e["momentum"] == 0.99
    np.testing.assert_allclose(e["residual_init_weight"], 0.99**STEPS, rtol=1e-6)
    needed = math.ceil(math.log(0.05) / math.log(0.99)) - STEPS  # fewest steps to 0.99**t <= 5%
    assert 0.99 ** (STEPS + needed) <= 0.05 < 0.99 ** (STEPS + needed - 1)
    assert e["steps_needed"] == needed and e["epochs_needed"] == math.ceil(needed / STEPS)
    np.testing.assert_allclose(e["momentum_needed"] ** STEPS, 0.05)
    assert e["starts_from_initializers"] is True and e["layers"] == ["bn1", "bn2"]
    assert f">= {needed} more steps" in finding.fix and "recalibrate" in finding.fix


def test_initializer_dominant_skips_frozen_layers_and_warns_between_thresholds(trained):
    finding = _findings(trained, "frozen")["initializer_dominant"]
    assert finding.layer == "bn1" and finding.evidence["layers"] == ["bn1"]  # bn2 is frozen: residual 1
    assert finding.severity == "warning" and finding.evidence["residual_init_weight"] == pytest.approx(0.9**STEPS)


# --- 2. train / inference gap ---------------------------------------------------------------------
def test_train_inference_gap_names_the_first_layer(trained):
    finding = _findings(trained, "short")["train_inference_gap"]
    model, x = trained["models"]["short"], trained["x"]
    train, infer = _forward(model, x[:PROBE], True), _forward(model, x[:PROBE], False)
    relative = np.mean(np.abs(train - infer)) / np.mean(np.abs(infer))
    assert (finding.severity, finding.layer, finding.view) == ("error", "bn1", "modes")
    np.testing.assert_allclose(finding.evidence["output_gap_relative"], relative, rtol=1e-4)
    assert relative >= doctor.OUTPUT_GAP_ERROR

    features, bn1 = _bn1_input(model, x[:PROBE]), _weights(model, "bn1")
    mean_gap, var_ratio = _gaps(features.mean(0), features.var(0), bn1["moving_mean"], bn1["moving_variance"])
    np.testing.assert_allclose(
        [finding.evidence["mean_gap"], finding.evidence["var_log_ratio"]], [mean_gap, var_ratio], rtol=1e-4
    )
    chance_mean, chance_var = math.sqrt(2 / (math.pi * PROBE)), math.sqrt(2 / math.pi) * math.sqrt(2 / (PROBE - 1))
    assert finding.evidence["mean_gap_threshold"] == pytest.approx(max(0.2, 3 * chance_mean))
    assert finding.evidence["var_log_ratio_threshold"] == pytest.approx(max(0.2, 3 * chance_var))
    assert mean_gap >= finding.evidence["mean_gap_threshold"]


# --- 3. batch too small -----------------------------------------------------------------------
def test_batch_of_two_is_an_error(trained):
    finding = _findings(trained, "small_batch")["small_batch"]
    assert (finding.severity, finding.layer, finding.view) == ("error", None, "runs")
    assert finding.evidence["batch_size"] == 2 and finding.evidence["samples_per_statistic"] == 2
    assert finding.evidence["variance_relative_error"] == pytest.approx(math.sqrt(2.0))
    assert "GroupNormalization" in finding.fix
    assert "small_batch" not in _findings(trained, "healthy")


def _config_run(batch_size: int, replicas: int = 1, synchronized: bool = False, probe: int = 64) -> RunData:
    layer = {"path": "bn", "trainable": True, "inference_mode_in_training": False, "synchronized": synchronized}
    config = {"batch_size": batch_size, "replicas": replicas, "probe_samples": probe, "layers": [layer]}
    return RunData(name="r", config=config, configs=[(0, config)])


@pytest.mark.parametrize(
    "batch_size, replicas, synchronized, expected",
    [
        (1, 1, False, "error"),
        (3, 1, False, "error"),
        (4, 1, False, "warning"),
        (15, 1, False, "warning"),
        (16, 1, False, None),
        (16, 2, False, "warning"),
        (16, 2, True, None),
        (6, 2, False, "error"),
    ],
)
def test_batch_thresholds_count_samples_per_replica(batch_size, replicas, synchronized, expected):
    findings = doctor.check_batch_size(_config_run(batch_size, replicas, synchronized))
    assert [f.severity for f in findings] == ([expected] if expected else [])
    if expected:
        per_replica = batch_size if synchronized or replicas == 1 else batch_size // replicas
        assert findings[0].evidence["samples_per_statistic"] == per_replica


def test_probe_missing_or_small_is_info():
    (none,) = doctor.check_probe(_config_run(32, probe=0))
    (small,) = doctor.check_probe(_config_run(32, probe=8))
    assert (none.id, none.severity, small.id, small.severity) == ("no_probe", "info", "small_probe", "info")
    assert small.evidence["chance_mean_gap"] == pytest.approx(math.sqrt(2 / (math.pi * 8)))
    assert doctor.check_probe(_config_run(32, probe=16)) == []


# --- 4. frozen BN, and the reverse ------------------------------------------------------------
def test_frozen_before_training_is_an_error(trained):
    finding = _findings(trained, "frozen")["frozen_bn"]
    assert (finding.severity, finding.layer, finding.view) == ("error", "bn2", "runs")
    assert finding.evidence["frozen_bn_layers"] == 1 and finding.evidence["trainable_bn_layers"] == 1
    assert finding.evidence["frozen_at_initializers"] == 1 and finding.evidence["steps_trained"] == STEPS
    bn2 = _weights(trained["models"]["frozen"], "bn2")
    assert (bn2["moving_mean"] == 0).all() and (bn2["moving_variance"] == 1).all()  # what the doctor saw


def test_frozen_backbone_whose_statistics_fit_the_data_is_info(trained):
    finding = _findings(trained, "frozen_fitting")["frozen_bn"]
    assert (finding.severity, finding.layer, finding.view) == ("info", "bn1", "runs")
    assert finding.evidence["population_mean_gap"] < 1e-3 and finding.evidence["population_var_log_ratio"] < 1e-3
    assert finding.evidence["epochs_trained"] == 5 and finding.evidence["steps_trained"] == 5 * STEPS
    assert list(_findings(trained, "frozen_fitting")) == ["frozen_bn"]  # bn_not_updating skips frozen layers


def test_frozen_backbone_on_other_statistics_is_the_fine_tuning_trap(trained):
    finding = _findings(trained, "frozen_shifted")["frozen_bn"]
    model, x = trained["models"]["frozen_shifted"], trained["x"]
    features, bn1 = _bn1_input(model, x), _weights(model, "bn1")
    mean_gap, var_ratio = _gaps(features.mean(0), features.var(0), bn1["moving_mean"], bn1["moving_variance"])
    assert mean_gap == pytest.approx(3.0, rel=1e-3)  # as crafted
    assert (finding.severity, finding.layer, finding.view) == ("error", "bn1", "modes")
    np.testing.assert_allclose(finding.evidence["population_mean_gap"], mean_gap, rtol=1e-4)
    np.testing.assert_allclose(finding.evidence["population_var_log_ratio"], var_ratio, atol=1e-5)
    assert finding.evidence["frozen_misfit"] == 1 and "recalibrate" in finding.fix
    stale = _findings(trained, "frozen_shifted")["stale_moving_stats"]  # bn2 after it: 1 epoch, and bn1 broke it
    assert stale.evidence["layers"] == ["bn2"]  # frozen layers are check_frozen's


def test_frozen_without_reference_data_is_a_warning(trained):
    run = trained["runs"]["frozen_fitting"]
    unmeasured = {
        path: {q: series for q, series in quantities.items() if not q.startswith("population_")}
        for path, quantities in run.layers.items()
    }
    (finding,) = doctor.check_frozen(dataclasses.replace(run, layers=unmeasured))
    assert (finding.severity, finding.layer) == ("warning", "bn1")
    assert finding.evidence["frozen_unmeasured"] == 1 and "reference_data" in finding.fix


def test_trainable_layer_called_in_inference_mode_does_not_update(trained):
    finding = _findings(trained, "not_updating")["bn_not_updating"]
    assert (finding.severity, finding.layer, finding.view) == ("error", "backbone/bn1", "epochs")
    assert finding.evidence["training_steps"] == STEPS and finding.evidence["layers"] == ["backbone/bn1"]
    bn1 = trained["models"]["not_updating"].backbone.get_layer("bn1")
    assert bn1.trainable and (bn1.moving_mean.numpy() == 0).all()
    assert "training=None" in finding.fix
    run = trained["runs"]["not_updating"]
    assert run.config["layers"][0]["trainable"] is True  # the config alone would not tell


# --- 5. broken moving variance ----------------------------------------------------------------
def test_nonfinite_and_tiny_variance_channels(trained):
    findings = _findings(trained, "broken")
    nonfinite, tiny = findings["nonfinite_moving_stats"], findings["tiny_moving_variance"]
    model = trained["models"]["broken"]
    variance = model.get_layer("bn1").moving_variance.numpy()
    bad = ~np.isfinite(variance) | (np.nan_to_num(variance) < 0)
    assert (nonfinite.severity, nonfinite.layer) == ("error", "bn1")
    assert nonfinite.evidence["channels"] == bad.sum() == 2 and nonfinite.evidence["of_channels"] == 8
    assert nonfinite.evidence["channel_indices"] == [0, 1]
    assert nonfinite.evidence["nan"] == 1 and nonfinite.evidence["negative_variance"] == 1
    assert nonfinite.evidence["layers"] == ["bn1", "bn2"]  # bn2's moving mean holds inf
    small = np.isfinite(variance) & (variance >= 0) & (variance < EPS)
    assert (tiny.severity, tiny.layer) == ("warning", "bn1")
    assert tiny.evidence["channel_indices"] == np.flatnonzero(small).tolist() == [2, 3]
    assert tiny.evidence["zero_variance"] == 1 and tiny.evidence["min_variance"] == 0.0
    assert json.loads(json.dumps(nonfinite.to_dict(), allow_nan=False))["evidence"]["channels"] == 2


# --- 6. EMA staleness -------------------------------------------------------------------------
def test_stale_moving_statistics_against_population(trained):
    finding = _findings(trained, "short")["stale_moving_stats"]
    model, x = trained["models"]["short"], trained["x"]
    features, bn1 = _bn1_input(model, x), _weights(model, "bn1")  # bn1 comes first: its input is exact
    mean_gap, var_ratio = _gaps(features.mean(0), features.var(0), bn1["moving_mean"], bn1["moving_variance"])
    assert (finding.layer, finding.view, finding.quantity) == ("bn1", "modes", schema.POPULATION_MEAN_GAP)
    np.testing.assert_allclose(finding.evidence["population_mean_gap"], mean_gap, rtol=1e-4)
    np.testing.assert_allclose(finding.evidence["population_var_log_ratio"], var_ratio, rtol=1e-4)
    expected = "error" if mean_gap >= 1.0 or var_ratio >= math.log(4) else "warning"
    assert finding.severity == expected


# --- 7. replicas diverging (synthetic, schema-conformant) ---------------------------------------
def _replica_run(log_dir, spread_gaps: dict[str, list[float]], replicas: int = 2) -> RunData:
    """Two epochs of a 2-replica run, layers "bn_a" (synchronized=False) and "bn_sync"."""
    layers = [
        {
            "path": path,
            "trainable": True,
            "inference_mode_in_training": False,
            "synchronized": path == "bn_sync",
            "epsilon": EPS,
        }
        for path in spread_gaps
    ]
    writer = SummaryWriter(log_dir)
    for step in range(2):
        if step == 0:
            writer.add_config(
                {
                    "batch_size": 32,
                    "replicas": replicas,
                    "replica_probe_shards": [8, 8],
                    "probe_samples": 16,
                    "layers": layers,
                }
            )
        for path, gaps in spread_gaps.items():
            writer.add_layer(path, schema.MOVING_VARIANCE, np.array([1.0, 4.0]))
            writer.add_layer(path, schema.REPLICA_MOVING_MEAN_SPREAD, np.array([0.1, 0.4]))
            writer.add_layer(path, schema.REPLICA_MEAN_SPREAD_GAP, np.float32(gaps[step]))
        writer.write_step(step)
    writer.close()
    return load_logdir(log_dir)["."]


def test_replica_divergence_without_synchronized(tmp_path):
    run = _replica_run(tmp_path / "a", {"bn_a": [2.0, 0.5], "bn_sync": [3.0, 3.0]})
    (finding,) = doctor.check_replica_divergence(run)
    assert (finding.severity, finding.layer, finding.step) == ("warning", "bn_a", 1)  # the last epoch counts
    assert finding.evidence["replica_mean_spread_gap"] == pytest.approx(0.5)
    assert finding.evidence["chance_spread_gap"] == pytest.approx(2 / math.sqrt(math.pi) / math.sqrt(8))
    expected_copies = np.mean(np.array([0.1, 0.4]) / np.sqrt(np.array([1.0, 4.0]) + EPS))
    assert finding.evidence["moving_copies_mean_gap"] == pytest.approx(expected_copies, rel=1e-6)
    assert finding.evidence["samples_per_replica"] == 16 and "synchronized=True" in finding.fix

    severe = _replica_run(tmp_path / "b", {"bn_a": [0.0, 1.5]})
    assert [f.severity for f in doctor.check_replica_divergence(severe)] == ["error"]
    calm = _replica_run(tmp_path / "c", {"bn_a": [0.0, 0.1], "bn_sync": [3.0, 3.0]})
    assert doctor.check_replica_divergence(calm) == []
    single = _replica_run(tmp_path / "d", {"bn_a": [2.0, 2.0]}, replicas=1)
    assert doctor.check_replica_divergence(single) == []


# --- the findings API ---------------------------------------------------------------------------
def test_every_finding_is_complete_and_json_able(trained):
    ids = {f.id for f in trained["findings"]}
    assert {
        "initializer_dominant",
        "train_inference_gap",
        "small_batch",
        "frozen_bn",
        "bn_not_updating",
        "nonfinite_moving_stats",
        "tiny_moving_variance",
        "stale_moving_stats",
        "no_probe",
    } <= ids
    for finding in trained["findings"]:
        assert finding.severity in doctor.SEVERITIES and finding.view in doctor.VIEWS
        assert finding.title and finding.fix and "\n" not in finding.fix and finding.evidence
        assert finding.layer is None or finding.layer in trained["runs"][finding.run].layers
        assert json.loads(json.dumps(finding.to_dict(), allow_nan=False)) == finding.to_dict()


def test_findings_need_only_the_declared_quantities(trained):
    """The tab reads only doctor.LAYER_QUANTITIES_USED and MODEL_QUANTITIES_USED."""
    reduced = {
        name: dataclasses.replace(
            run,
            layers={
                path: {q: s for q, s in quantities.items() if q in doctor.LAYER_QUANTITIES_USED}
                for path, quantities in run.layers.items()
            },
            model={q: s for q, s in run.model.items() if q in doctor.MODEL_QUANTITIES_USED},
            batch_layers={},
            scalars={},
        )
        for name, run in trained["runs"].items()
    }
    assert doctor.diagnose(reduced) == trained["findings"]


def _reduced(trained, keep) -> dict:
    """Every run with each layer series replaced by ``keep(quantity, series)`` (dropped when ``None``)."""
    runs = {}
    for name, run in trained["runs"].items():
        layers = {
            path: {q: kept for q, s in quantities.items() if (kept := keep(q, s)) is not None}
            for path, quantities in run.layers.items()
        }
        runs[name] = dataclasses.replace(run, layers=layers)
    return runs


def test_findings_need_per_channel_values_at_their_last_step_only(trained):
    """What the tab reads of runs that log moving_change and init_distance: the series of
    doctor.last_step_quantities reduced to their last point."""

    def last_point(quantity, series):
        if quantity not in doctor.LAST_STEP_QUANTITIES:
            return series
        return Series(series.steps[-1:], series.values[-1:], series.wall_times[-1:])

    for run in trained["runs"].values():
        logged = {q for quantities in run.layers.values() for q in quantities}
        assert doctor.last_step_quantities(logged) == doctor.LAST_STEP_QUANTITIES
    assert doctor.diagnose(_reduced(trained, last_point)) == trained["findings"]


def test_logs_without_the_moving_figures_give_the_same_findings(trained):
    """Logs written before moving_change and init_distance (v1, v2, early v3): the checks
    compare the per-channel values of the two steps instead, and find the same."""
    figures = (schema.MOVING_CHANGE, schema.INIT_DISTANCE)
    older = _reduced(trained, lambda quantity, series: None if quantity in figures else series)
    assert {f.id for f in trained["findings"]} >= {"bn_not_updating", "frozen_bn", "initializer_dominant"}
    assert doctor.diagnose(older) == trained["findings"]


def test_diagnose_sorts_most_severe_first(trained):
    ranks = [doctor.severity_rank(f.severity) for f in trained["findings"]]
    assert ranks == sorted(ranks) and ranks[0] == 0


def test_nonfinite_evidence_becomes_null_in_json():
    finding = doctor.Finding("x", doctor.INFO, "r", None, "t", {"e": math.inf, "n": [np.float32("nan")]}, "f", "runs")
    assert finding.to_dict()["evidence"] == {"e": None, "n": [None]}


# --- CLI ------------------------------------------------------------------------------------------
def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_exit_codes(trained, capsys):
    root = trained["root"]
    assert _cli(capsys, "doctor", root, "--run", "healthy")[0] == 0
    assert _cli(capsys, "doctor", root, "--run", "frozen_fitting")[0] == 0  # info only
    assert _cli(capsys, "doctor", root)[0] == 1
    code, _, err = _cli(capsys, "doctor", root, "--run", "nope")
    assert code == 2 and "unknown run 'nope'" in err
    code, _, err = _cli(capsys, "doctor", root + "/missing")
    assert code == 2 and "does not exist" in err


def test_cli_text_is_grouped_by_run_most_severe_first(trained, capsys):
    code, out, _ = _cli(capsys, "doctor", trained["root"], "--run", "healthy", "--run", "short")
    assert code == 1
    lines = out.splitlines()
    headers = [line for line in lines if line.startswith("run ")]
    assert headers == ["run short: 2 errors, 1 warning", "run healthy: no findings"]
    severities = [
        line.split()[0] for line in lines if line.startswith("  ") and line.split()[0] in ("ERROR", "WARNING")
    ]
    assert severities == ["ERROR", "ERROR", "WARNING"]
    assert "fix:" in out and "see:      compare view, residual_init_weight, epoch 1" in out
    assert lines[-1] == "2 runs checked: 2 errors, 1 warning"


def test_cli_json_matches_the_api(trained, capsys):
    code, out, _ = _cli(capsys, "doctor", trained["root"], "--format", "json")
    answer = json.loads(out)
    assert code == answer["exit_code"] == 1
    assert answer["runs"] == list(trained["runs"])
    assert answer["findings"] == [f.to_dict() for f in trained["findings"]]
    assert answer["counts"] == doctor.counts(trained["findings"])


def test_cli_doctor_never_imports_frameworks_and_exit_code_reaches_the_shell(trained):
    script = textwrap.dedent(f"""
        import contextlib, io, sys
        from bn_inspect.cli import main
        with contextlib.redirect_stdout(io.StringIO()):
            code = main(["doctor", {trained["root"]!r}, "--format", "json"])
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "jax", "torch"))
        assert not heavy, heavy
        sys.exit(code)
    """)
    assert subprocess.run([sys.executable, "-c", script], timeout=120).returncode == 1
