"""The writer's events, value by value, against events built here from the protobuf definitions."""

import json

import numpy as np
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2

from bn_inspect import schema
from bn_inspect.writer import SummaryWriter

VARIABLES = ["moving_mean", "moving_variance", "gamma", "beta"]


def _value(tag, array, record=None):
    """A ``Summary.Value`` built from the protobuf definitions: float32 bytes, metadata if named."""
    array = np.asarray(array, np.float32)
    tensor = tensor_pb2.TensorProto(
        dtype=types_pb2.DT_FLOAT,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[{"size": d} for d in array.shape]),
        tensor_content=array.tobytes(),
    )
    value = summary_pb2.Summary.Value(tag=tag, tensor=tensor)
    if record is not None:
        value.metadata.plugin_data.plugin_name = "bn_inspect"
        value.metadata.plugin_data.content = json.dumps(record, sort_keys=True).encode()
        value.metadata.data_class = summary_pb2.DATA_CLASS_TENSOR
    return value


def _written_events(path):
    events = list(EventFileLoader(path).Load())
    for event in events:
        event.wall_time = 0
    return [event for event in events if event.HasField("summary")]


def test_steps_with_the_same_and_other_names_write_the_expected_values(tmp_path):
    rng = np.random.default_rng(7)
    writer, expected, copies = SummaryWriter(tmp_path), [], {}

    def named(tag, record):  # metadata on the first two values of each tag only
        copies[tag] = copies.get(tag, 0) + 1
        return record if copies[tag] <= 2 else None

    figures_record = {"v": 3, "kind": "layer_figures", "layers": ["net/b", "net/a"]}
    figures_record |= {"quantities": ["residual_init_weight", "updates"], "timeline": "batch"}
    figures_tag = schema.figures_tag(figures_record)  # a hash of the names; the schema's doctest pins it
    for step in range(5):
        values = []
        full = step != 3  # step 3 logs a part of the variables of net/a
        quantities = VARIABLES if full else ["moving_mean", "gamma"]
        arrays = {q: rng.normal(size=6).astype(np.float32) for q in quantities}
        for q in quantities:
            writer.add_layer("net/a", q, arrays[q], schema.TIMELINE_BATCH)
        tag = "bn_inspect/net/a/variables/batch" if full else "bn_inspect/net/a/variables/mm+g/batch"
        record = {"v": 3, "kind": "layer", "quantities": quantities, "timeline": "batch", "layer": "net/a"}
        values.append(_value(tag, [arrays[q] for q in quantities], named(tag, record)))
        # "net/a/variables" spells the tag of a partial group of "net/a": it gets a longer one
        mm_alone, odd = rng.normal(size=3), rng.normal(size=2)
        writer.add_layer("net/a", "moving_mean", mm_alone)
        writer.add_layer("net/a/variables", "mm", odd)
        record = {"v": 3, "kind": "layer", "quantities": ["moving_mean"], "timeline": "epoch", "layer": "net/a"}
        values.append(_value("bn_inspect/net/a/variables/mm", [mm_alone], named("a-mm", record)))
        record = {"v": 3, "kind": "layer", "quantities": ["mm"], "timeline": "epoch", "layer": "net/a/variables"}
        tag = "bn_inspect/net/a/variables/mm/net/a/variables"
        values.append(_value(tag, [odd], named(tag, record)))
        figures = rng.normal(size=(2, 2))
        for layer, row in zip(["net/b", "net/a"], figures):
            writer.add_layer(layer, "updates", row[1], schema.TIMELINE_BATCH)
            writer.add_layer(layer, "residual_init_weight", row[0], schema.TIMELINE_BATCH)
        values.append(_value(figures_tag, figures, named(figures_tag, figures_record)))
        writer.write_step(step)
        expected.append(event_pb2.Event(step=step, summary=summary_pb2.Summary(value=values)))
    writer.close()

    written = _written_events(writer.path)
    assert [e.step for e in written] == list(range(5))
    for got, want in zip(written, expected):
        assert [v.tag for v in got.summary.value] == [v.tag for v in want.summary.value]
        assert got == want


def test_stacked_groups_and_figure_columns_write_what_one_value_at_a_time_writes(tmp_path):
    """A block given whole (add_layer_group) and figures given as columns (add_figures) are the
    same events as the same values queued one by one, over enough steps to reuse each tag's value."""
    import pytest

    rng = np.random.default_rng(3)
    one_by_one, stacked = SummaryWriter(tmp_path / "one_by_one"), SummaryWriter(tmp_path / "stacked")
    layers = ["net/a", "net/b"]
    for step in range(4):
        blocks = {layer: rng.normal(size=(4, 5)).astype(np.float32) for layer in layers}
        updates, weights = rng.integers(0, 9, size=2).astype(float), rng.random(2)
        for i, layer in enumerate(layers):
            for row, quantity in enumerate(VARIABLES):
                one_by_one.add_layer(layer, quantity, blocks[layer][row], schema.TIMELINE_BATCH)
            one_by_one.add_layer(layer, schema.UPDATES, np.float32(updates[i]), schema.TIMELINE_BATCH)
            one_by_one.add_layer(layer, schema.RESIDUAL_INIT_WEIGHT, weights[i], schema.TIMELINE_BATCH)
            stacked.add_layer_group(layer, VARIABLES, blocks[layer], schema.TIMELINE_BATCH)
        figures = {schema.UPDATES: updates, schema.RESIDUAL_INIT_WEIGHT: weights}
        stacked.add_figures(layers, figures, schema.TIMELINE_BATCH)
        one_by_one.write_step(step)
        stacked.write_step(step, flush=step % 2 == 1)
    one_by_one.close()
    stacked.close()
    expected = _written_events(one_by_one.path)
    assert len(expected) == 4 and _written_events(stacked.path) == expected
    with pytest.raises(ValueError, match="not one group's members in order"):
        stacked.add_layer_group("net/a", ["gamma", "moving_mean"], np.zeros((2, 5)))
    with pytest.raises(ValueError, match="not one group's members in order"):
        stacked.add_layer_group("net/a", ["moving_mean", "probe_batch_mean"], np.zeros((2, 5)))
    with pytest.raises(ValueError, match="not a per-layer figure"):
        stacked.add_figures(layers, {schema.MOVING_MEAN: np.zeros(2)})
