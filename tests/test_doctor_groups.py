"""``bn-inspect doctor`` on many runs: a finding shared by several runs (same check, same
severity, same aligned layer) is printed once with its runs. On the logdir users write (models
built one after another without ``clear_session``, tests/auto_named_logdir.py) plus one run of
another model, written with bn_inspect.writer, whose layer cannot be aligned with theirs."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from bn_inspect import doctor, load_logdir, schema
from bn_inspect.alignment import align_layers
from bn_inspect.cli import main
from bn_inspect.writer import SummaryWriter

AUTO_RUNS = ("init_default", "init_custom", "deeper")
OTHER, OTHER_LAYER, OTHER_CHANNELS = "other_model", "encoder/bn", 16  # 16 channels: no auto-named run has them
MOMENTUM, STEPS = 0.99, 8  # the auto-named runs: 2 epochs of 64 samples / batch 16


@pytest.fixture(scope="module")
def logdir(auto_named, tmp_path_factory):
    root = tmp_path_factory.mktemp("doctor_groups")
    for run in AUTO_RUNS:
        shutil.copytree(f"{auto_named['root']}/{run}", root / run)
    writer = SummaryWriter(root / OTHER)
    writer.add_config({"model_name": "encoder", "batch_size": 32, "steps_per_epoch": 4, "layers": [
        {"path": OTHER_LAYER, "channels": OTHER_CHANNELS, "momentum": MOMENTUM, "trainable": True}
    ]})  # fmt: skip
    for step in range(3):
        residual = MOMENTUM ** (4 * step)
        mean = np.zeros(OTHER_CHANNELS, np.float32)
        if step == 2:
            mean[3] = np.nan  # a finding of this run only: non-finite moving statistics
        writer.add_layer(OTHER_LAYER, schema.MOVING_MEAN, mean)
        writer.add_layer(OTHER_LAYER, schema.MOVING_VARIANCE, np.ones(OTHER_CHANNELS, np.float32))
        writer.add_layer(OTHER_LAYER, schema.UPDATES, np.float32(4 * step))
        writer.add_layer(OTHER_LAYER, schema.RESIDUAL_INIT_WEIGHT, np.float32(residual))
        writer.write_step(step)
    writer.close()
    return str(root)


def _doctor(capsys, *argv: str) -> tuple[int, str]:
    code = main(["doctor", *argv])
    return code, capsys.readouterr().out


def _blocks(out: str) -> dict[str, list[str]]:
    """The report's sections (``in several runs``, ``run NAME``), each a list of its lines."""
    blocks: dict[str, list[str]] = {}
    for block in out.strip().split("\n\n"):
        head, *lines = block.splitlines()
        blocks[head.split(":")[0]] = lines
    return blocks


def test_a_finding_of_every_auto_named_run_is_printed_once(logdir, auto_named, capsys):
    assert MOMENTUM**STEPS >= doctor.RESIDUAL_ERROR  # every auto-named run: initializers dominate
    code, out = _doctor(capsys, logdir)
    assert code == 1
    blocks = _blocks(out)
    shared = [line for line in blocks["in several runs"] if "initializer_dominant" in line]
    assert len(shared) == 1
    first = sorted(AUTO_RUNS)  # the logdir's runs load in name order
    assert shared[0].endswith(f" in 3 runs: {', '.join(first)}")
    slot = shared[0].split("[", 1)[1].split("]")[0]
    paths = {run: auto_named["paths"][run][0] for run in AUTO_RUNS}
    assert len(set(paths.values())) == 3  # three different paths, one slot named by one of them or
    assert slot in {*paths.values(), *(re.sub(r"_\d+$", "", path) for path in paths.values())}  # their common name
    layers_line = next(line for line in blocks["in several runs"] if line.strip().startswith("layers:"))
    assert sorted(layers_line.split("layers:", 1)[1].strip().split(", ")) == sorted(
        f"{run}: {path}" for run, path in paths.items() if path != slot
    )
    for run in AUTO_RUNS:  # listed once, pointing at the shared findings, none repeated
        assert not [line for line in blocks[f"run {run}"] if "initializer_dominant" in line]
    # The other model's layer cannot be aligned: its finding of the same check stays its own.
    other = blocks[f"run {OTHER}"]
    assert sorted(line.split()[1] for line in other if line.startswith("  ERROR")) == [
        "initializer_dominant",
        "nonfinite_moving_stats",
    ]
    assert f"[{OTHER_LAYER}]" in next(line for line in other if "initializer_dominant" in line)
    assert out.count("nonfinite_moving_stats") == 1


def test_json_keeps_every_finding_and_adds_the_groups(logdir, auto_named, capsys):
    code, out = _doctor(capsys, logdir, "--format", "json")
    answer = json.loads(out)
    assert code == answer["exit_code"] == 1
    assert answer["findings"] == [f.to_dict() for f in doctor.diagnose(load_logdir(logdir))]
    indices = sorted(i for group in answer["groups"] for i in group["findings"])
    assert indices == list(range(len(answer["findings"])))  # every finding in exactly one group
    dominant = [g for g in answer["groups"] if g["id"] == "initializer_dominant"]
    assert sorted(len(g["runs"]) for g in dominant) == [1, 3]
    shared = next(g for g in dominant if len(g["runs"]) == 3)
    assert shared["layers"] == {run: auto_named["paths"][run][0] for run in AUTO_RUNS}
    for group in answer["groups"]:
        members = [answer["findings"][i] for i in group["findings"]]
        assert {(f["id"], f["severity"]) for f in members} == {(group["id"], group["severity"])}
        assert [f["run"] for f in members] == group["runs"]


def test_match_path_merges_nothing_across_auto_named_runs(logdir, capsys):
    code, out = _doctor(capsys, logdir, "--match", "path")
    assert code == 1
    assert "in several runs" not in out
    assert len([line for line in out.splitlines() if "initializer_dominant" in line]) == 4


def test_same_check_on_one_slot_with_other_severity_is_another_group():
    def found(run: str, layer: str, severity: str) -> doctor.Finding:
        return doctor.Finding("initializer_dominant", severity, run, layer, "t", {}, "f", doctor.VIEW_COMPARE)

    alignment = align_layers({"a": [("bn", 8)], "b": [("bn_1", 8)], "c": [("bn_2", 8)]})
    findings = [found("a", "bn", doctor.ERROR), found("b", "bn_1", doctor.ERROR), found("c", "bn_2", doctor.WARNING)]
    groups = doctor.group_findings(findings, alignment)
    assert [(g.severity, g.runs) for g in groups] == [(doctor.ERROR, ["a", "b"]), (doctor.WARNING, ["c"])]
