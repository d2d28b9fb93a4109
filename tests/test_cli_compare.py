"""``bn-inspect compare`` on runs written the way users write them: models built one after
another in one process, without ``keras.backend.clear_session()``, so every run's layers carry
different automatic names (tests/auto_named_logdir.py). Checked against the models' own
variables."""

from __future__ import annotations

import numpy as np

from bn_inspect.cli import main

EPS = 1e-3


def _compare(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["compare", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _rows(out: str, section: str, end: str | None = None) -> list[list[str]]:
    """The table rows of a section of the output, split on whitespace."""
    text = out.split(section, 1)[1]
    text = text.split(end, 1)[0] if end else text
    lines = text.strip().splitlines()
    start = next(i for i, line in enumerate(lines) if set(line.replace(" ", "")) == {"-"})
    return [line.split() for line in lines[start + 1 :] if line.strip() and not line.startswith("  ")]


def test_auto_named_layers_are_aligned_and_the_initializers_differ(auto_named, capsys):
    default, custom = (auto_named["paths"][run][0] for run in ("init_default", "init_custom"))
    assert default != custom  # what the user gets: batch_normalization vs batch_normalization_<n>
    code, out, _ = _compare(capsys, auto_named["root"], "init_default", "init_custom")
    assert code == 0
    assert _rows(out, "layer alignment", "configuration:") == [
        ["batch_normalization", default, custom, "matched", "by", "name", "(numbering", "removed)"]
    ]
    config = {(row[0], row[1]): row[2:] for row in _rows(out, "configuration:", "moving statistics")}
    assert ("run", "model_name") not in config  # sequential vs sequential_1: Keras' numbering only
    for initializer in ("beta", "gamma", "moving_mean", "moving_variance"):
        assert config[("batch_normalization", f"{initializer}_initializer")][1] == "Constant(value=0.5)"
    (row,) = _rows(out, "moving statistics at epoch 2", "mean gap =")
    (mean_a, var_a), (mean_b, var_b) = (
        np.asarray(auto_named["states"][run][0], np.float64) for run in ("init_default", "init_custom")
    )
    expected = [
        np.sqrt(np.mean((mean_b - mean_a) ** 2)),
        np.sqrt(np.mean((var_b - var_a) ** 2)),
        np.mean(np.abs(mean_b - mean_a) / np.sqrt((var_a + var_b) / 2 + EPS)),
        np.mean(np.abs(np.log((var_b + EPS) / (var_a + EPS)))),
    ]
    assert row[:2] == ["batch_normalization", "init_custom"]
    np.testing.assert_allclose([float(v) for v in row[2:6]], expected, rtol=1e-3)
    assert expected[0] > 0.1  # the initializer still weighs in after one epoch


def test_match_path_finds_nothing_in_common_and_says_so(auto_named, capsys):
    code, out, _ = _compare(capsys, auto_named["root"], "init_default", "init_custom", "--match", "path")
    assert code == 0
    assert "0 slot(s) matched, 2 unmatched" in out
    assert f"unmatched: '{auto_named['paths']['init_custom'][0]}' of init_custom: no other run has path" in out
    assert "(no slot holds layers of two runs (try --match auto))" in out


def test_three_runs_of_different_depth(auto_named, capsys):
    code, out, _ = _compare(capsys, auto_named["root"], "init_default", "init_custom", "deeper")
    assert code == 0
    deeper = auto_named["paths"]["deeper"]
    rows = _rows(out, "layer alignment", "configuration:")
    assert [row[:4] for row in rows] == [
        ["batch_normalization", *(auto_named["paths"][r][0] for r in ("init_default", "init_custom")), deeper[0]],
        [deeper[1], "-", "-", deeper[1]],
    ]
    assert " ".join(rows[0][4:]) == "matched by position"  # deeper's names strip to one name twice
    assert " ".join(rows[1][4:]) == "unmatched"
    assert f"unmatched: '{deeper[1]}' of deeper: " in out and "1st 8-channel BN layer" in out
    distances = {row[1]: row for row in _rows(out, "moving statistics at epoch 2", "mean gap =")}
    assert set(distances) == {"init_custom", "deeper"}
    (mean_a, _), (mean_c, _) = (auto_named["states"][run][0] for run in ("init_default", "deeper"))
    np.testing.assert_allclose(float(distances["deeper"][2]), np.sqrt(np.mean((mean_c - mean_a) ** 2)), rtol=1e-3)
