"""bn_inspect.alignment on the layer paths of real Keras models built one after another in one
process (automatic names, no ``clear_session``). The truth each test checks against is which
layer objects were built at the same place of the same architecture."""

from __future__ import annotations

import keras
import pytest

from bn_inspect import align
from bn_inspect.alignment import align_layers, strip_numbering
from bn_inspect.layers import find_batchnorm_layers, layer_config
from bn_inspect.reader import RunData


def _mlp(widths: tuple[int, ...], names: tuple[str, ...] | None = None) -> keras.Model:
    """Dense(w) -> BatchNormalization per width, then Dense(1); BN layers named by ``names``
    or automatically."""
    layers = [keras.Input((5,))]
    for k, width in enumerate(widths):
        layers += [keras.layers.Dense(width), keras.layers.BatchNormalization(name=names[k] if names else None)]
    return keras.Sequential([*layers, keras.layers.Dense(1)])


def _nested() -> keras.Model:
    """A functional model around a Sequential backbone, one BN layer inside it and one after."""
    backbone = keras.Sequential([keras.Input((5,)), keras.layers.Dense(6), keras.layers.BatchNormalization()])
    inputs = keras.Input((5,))
    x = keras.layers.Dense(3)(backbone(inputs))
    outputs = keras.layers.BatchNormalization()(x)
    return keras.Model(inputs, outputs)


def _layers(model: keras.Model) -> list[tuple[str, int]]:
    return [(found.path, layer_config(found).channels) for found in find_batchnorm_layers(model)]


def _same_places(alignment, models: dict[str, keras.Model]) -> None:
    """Every slot holds, from each run, the BN layer built at the same place."""
    found = {run: find_batchnorm_layers(model) for run, model in models.items()}
    first = next(iter(models))
    assert len(alignment.slots) == len(found[first])
    for k, slot in enumerate(alignment.slots):
        assert slot.runs == list(models)
        for run in models:
            assert slot.path(run) == found[run][k].path


def test_the_article_model_built_twice_matches_by_name():
    models = {"init_default": _mlp((32,)), "init_custom": _mlp((32,))}
    paths = [_layers(m)[0][0] for m in models.values()]
    assert paths[0] != paths[1]  # automatic names: batch_normalization, batch_normalization_<n>
    alignment = align_layers({run: _layers(m) for run, m in models.items()})
    _same_places(alignment, models)
    assert [slot.how for slot in alignment.slots] == ["name"]
    assert alignment.slots[0].name == "batch_normalization" and alignment.unmatched == []


def test_one_architecture_with_several_bn_layers_built_twice_falls_back_to_order():
    """Both models' BN layers strip to ``batch_normalization``: not unique, so by position
    among layers of equal channel count."""
    models = {"a": _mlp((8, 4, 8)), "b": _mlp((8, 4, 8))}
    alignment = align_layers({run: _layers(m) for run, m in models.items()})
    _same_places(alignment, models)
    assert [slot.how for slot in alignment.slots] == ["position"] * 3
    assert all(slot.layers[run].how == "position" for slot in alignment.slots for run in models)


def test_different_depth_aligns_the_common_prefix_and_reports_the_rest():
    shallow, deep = _mlp((8, 8)), _mlp((8, 8, 8, 4))
    alignment = align_layers({"shallow": _layers(shallow), "deep": _layers(deep)})
    deep_paths = [path for path, _ in _layers(deep)]
    assert [slot.path("shallow") for slot in alignment.matched] == [path for path, _ in _layers(shallow)]
    assert [slot.path("deep") for slot in alignment.matched] == deep_paths[:2]
    assert [slot.path("deep") for slot in alignment.unmatched] == deep_paths[2:]
    assert [slot.runs for slot in alignment.unmatched] == [["deep"], ["deep"]]
    third, fourth = alignment.unmatched
    assert "no other run has a 3rd 8-channel BN layer left" in third.why
    assert "no other run has a 1st 4-channel BN layer left" in fourth.why
    assert "names several layers of this run" in third.why  # why the name rule did not apply
    assert [slot.name for slot in alignment.slots][2:] == deep_paths[2:]  # model order kept


def test_renamed_layers_match_by_position_and_unchanged_names_by_path():
    before = _mlp((8, 4), names=("bn1", "bn2"))
    after = _mlp((8, 4), names=("bn1", "norm2"))
    alignment = align_layers({"before": _layers(before), "after": _layers(after)})
    assert [(s.name, s.how, s.path("after")) for s in alignment.slots] == [
        ("bn1", "path", "bn1"),
        ("bn2", "position", "norm2"),
    ]


def test_nested_models_match_by_path_without_numbering():
    models = {"first": _nested(), "second": _nested()}
    alignment = align_layers({run: _layers(m) for run, m in models.items()})
    _same_places(alignment, models)
    assert [slot.how for slot in alignment.slots] == ["name", "name"]
    assert "/" in alignment.slots[0].path("second")  # inside the nested Sequential
    assert [slot.name for slot in alignment.slots] == [strip_numbering(p) for p, _ in _layers(models["first"])]


def test_match_path_keeps_auto_named_layers_apart_and_says_why():
    models = {"a": _mlp((8,)), "b": _mlp((8,))}
    alignment = align_layers({run: _layers(m) for run, m in models.items()}, match="path")
    assert [slot.how for slot in alignment.slots] == ["unmatched", "unmatched"]
    assert all(slot.why == f"no other run has path '{slot.name}'" for slot in alignment.slots)


def test_match_position_ignores_names():
    first, second = _mlp((4, 4), names=("x", "y")), _mlp((4, 4), names=("y", "x"))
    alignment = align_layers({"first": _layers(first), "second": _layers(second)}, match="position")
    assert [(s.path("first"), s.path("second"), s.how) for s in alignment.slots] == [
        ("x", "y", "position"),
        ("y", "x", "position"),
    ]
    auto = align_layers({"first": _layers(first), "second": _layers(second)})
    assert [(s.path("first"), s.path("second"), s.how) for s in auto.slots] == [("x", "x", "path"), ("y", "y", "path")]


def test_a_third_run_joins_slots_matched_by_an_earlier_rule():
    """Two runs share hand-chosen paths; a third, auto-named, joins their slot by name."""
    layers = {"a": [("bn", 8)], "b": [("bn", 8)], "c": [("bn_3", 8)]}
    (slot,) = align_layers(layers).slots
    assert slot.runs == ["a", "b", "c"]
    assert [slot.layers[run].how for run in "abc"] == ["path", "path", "name"]
    assert slot.how == "name"  # the weakest rule of its layers


def test_align_reads_runs_config_records_and_rejects_unknown_modes():
    runs = {
        name: RunData(name, config={"layers": [{"path": path, "channels": 3} for path in paths]})
        for name, paths in {"a": ["bn"], "b": ["batch_normalization_4"]}.items()
    }
    (slot,) = align(runs).slots
    assert (slot.path("a"), slot.path("b"), slot.how) == ("bn", "batch_normalization_4", "position")
    assert slot.to_dict()["description"] == "matched by position"
    with pytest.raises(ValueError, match="auto, path, position"):
        align(runs, match="name")


def test_one_run_has_one_slot_per_layer():
    alignment = align_layers({"only": [("bn", 8), ("bn_1", 8)]})
    assert [(s.name, s.how) for s in alignment.slots] == [("bn", "path"), ("bn_1", "path")]
