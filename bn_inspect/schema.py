"""The one data contract between the callback (writer), the reader, the CLI and the plugin.

Every bn-inspect summary is a TensorBoard ``Summary.Value`` whose metadata names the plugin
``bn_inspect`` and carries a small JSON *content* record. Readers identify a series by that
record, never by parsing the tag string; tags are readable, stable names (see :func:`group_tag`).

Per layer and step, the per-channel quantities written together are one float32 tensor
``[quantities, channels]`` named by their group (:data:`CHANNEL_GROUPS`), e.g. the tag
``bn_inspect/model/block/bn/variables`` holds::

    {"v": 3, "kind": "layer", "layer": "model/block/bn", "timeline": "epoch",
     "quantities": ["moving_mean", "moving_variance", "gamma", "beta"]}

Model-level values are grouped the same way under ``bn_inspect/_model/<group>``
(:data:`MODEL_GROUPS`). Per-layer figures (scalars such as ``residual_init_weight``) of the
layers that logged the same set of figures share one ``[layers, quantities]`` value per step,
under a record of kind ``"layer_figures"`` that lists both:

    {"v": 3, "kind": "layer_figures", "layers": ["bn_1", "bn_2"],
     "quantities": ["residual_init_weight", "updates"], "timeline": "epoch"}

Every value written repeats its tag, and TensorBoard's loaders decode tensors one by one: few,
larger tensors per step keep both the bytes and the reading time down. Readers split the
stored values with :func:`unpacked_records` into one series per (layer, quantity).

Steps
    ``timeline="epoch"``: step 0 is the state at ``on_train_begin`` of a fresh fit (the
    initializers), step k is the state after epoch k (1-based). A resumed fit with
    ``initial_epoch=k`` logs its starting state at step k, so the sequence continues.
    Step k is then written twice (end of one fit, start of the next, in a later event file):
    readers keep the last value written per step. TensorBoard's own loaders may return both.
    ``timeline="batch"``: the global count of training steps completed: the optimizer's
    iteration count at the start of the fit plus the steps run since (steps a mixed-precision
    loss-scale optimizer skips count too: BN layers update their moving statistics in them).

Values
    Per-channel quantities are float32 ``[channels]`` (a layer with several normalised axes is
    flattened in C order), stored stacked by group. Per-layer figures are float32 scalars
    (packed, see above). Model outputs on the probe are float32 ``[samples, features]``. The
    run configuration is a JSON string tensor.

Versions
    1: one tag per layer and quantity (``bn_inspect/<layer>/<quantity>``). 2: per-layer figures
    packed, tags shortened to hashes. 3: readable tags, per-channel quantities packed by group.
    Readers read all three.

Replicas
    Under a ``tf.distribute`` strategy with several replicas, the probe batch is also split
    into contiguous shards, one per replica (sizes in the config's ``replica_probe_shards``),
    and run in training mode on every replica at once. The ``replica_*`` quantities say how
    far apart the replicas' batch statistics are: > 0 when each replica normalises with its
    own shard, ~0 with ``synchronized=True`` (the moments are all-reduced across replicas).
    ``replica_moving_*_spread`` compare the replicas' own copies of the moving statistics,
    which Keras 3 updates independently unless the layer is synchronized; the logged
    ``moving_*`` values are the first replica's copy, the one reading or saving gives.

This module imports only the protobuf classes of tensorboard, never TensorFlow.

Example:
    >>> from bn_inspect import schema
    >>> record = schema.group_record(schema.KIND_LAYER, [schema.MOVING_MEAN, schema.GAMMA], "dense_bn")
    >>> [r["quantity"] for r, at in schema.unpacked_records(record)]
    ['moving_mean', 'gamma']
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from tensorboard.compat.proto import summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2

from bn_inspect.run_config import LAYER_FIELDS, RUN_FIELDS

PLUGIN_NAME = "bn_inspect"
SCHEMA_VERSION = 3

# --- record kinds --------------------------------------------------------------------------
KIND_LAYER = "layer"  # quantities of one BN layer
KIND_MODEL = "model"  # quantities of the whole model (probe outputs, gaps)
KIND_CONFIG = "config"  # run configuration (JSON string)
KIND_LAYER_FIGURES = "layer_figures"  # per-layer scalars of several layers, packed [layers, quantities]

# --- timelines -----------------------------------------------------------------------------
TIMELINE_EPOCH = "epoch"
TIMELINE_BATCH = "batch"
TIMELINES = (TIMELINE_EPOCH, TIMELINE_BATCH)

# --- per-layer per-channel quantities (shape [channels]) -----------------------------------
MOVING_MEAN = "moving_mean"
MOVING_VARIANCE = "moving_variance"
GAMMA = "gamma"
BETA = "beta"
PROBE_BATCH_MEAN = "probe_batch_mean"  # training-mode batch statistics on the probe
PROBE_BATCH_VARIANCE = "probe_batch_variance"  # biased (ddof=0), as Keras uses it
POPULATION_MEAN = "population_mean"  # exact statistics over reference data
POPULATION_VARIANCE = "population_variance"
REPLICA_BATCH_MEAN_SPREAD = "replica_batch_mean_spread"  # max-min across replicas, per channel
REPLICA_BATCH_VARIANCE_SPREAD = "replica_batch_variance_spread"  # same for the batch variance
REPLICA_MOVING_MEAN_SPREAD = "replica_moving_mean_spread"  # max-min of the replicas' copies
REPLICA_MOVING_VARIANCE_SPREAD = "replica_moving_variance_spread"

CHANNEL_QUANTITIES = (
    MOVING_MEAN,
    MOVING_VARIANCE,
    GAMMA,
    BETA,
    PROBE_BATCH_MEAN,
    PROBE_BATCH_VARIANCE,
    POPULATION_MEAN,
    POPULATION_VARIANCE,
    REPLICA_BATCH_MEAN_SPREAD,
    REPLICA_BATCH_VARIANCE_SPREAD,
    REPLICA_MOVING_MEAN_SPREAD,
    REPLICA_MOVING_VARIANCE_SPREAD,
)
VARIABLE_QUANTITIES = (MOVING_MEAN, MOVING_VARIANCE, GAMMA, BETA)

# --- per-layer scalar quantities ------------------------------------------------------------
RESIDUAL_INIT_WEIGHT = "residual_init_weight"  # momentum ** updates
UPDATES = "updates"  # training steps in which the layer updated its moving stats
PROBE_MEAN_GAP = "probe_mean_gap"  # mean_c |batch_mean - moving_mean| / sqrt(moving_var + eps)
PROBE_VAR_LOG_RATIO = "probe_var_log_ratio"  # mean_c |log((batch_var + eps)/(moving_var + eps))|
POPULATION_MEAN_GAP = "population_mean_gap"  # same as PROBE_MEAN_GAP with population stats
POPULATION_VAR_LOG_RATIO = "population_var_log_ratio"
NONFINITE_CHANNELS = "nonfinite_channels"  # channels whose moving stats are NaN/inf/negative var
MOVING_CHANGE = "moving_change"  # max_c |moving - moving at the fit's start|, mean and variance
INIT_DISTANCE = "init_distance"  # max_c |moving - its initializer's constant| (NaN: not constants)
REPLICA_MEAN_SPREAD_GAP = "replica_mean_spread_gap"  # mean_c mean spread / sqrt(probe batch var + eps)

LAYER_SCALAR_QUANTITIES = (
    RESIDUAL_INIT_WEIGHT,
    UPDATES,
    PROBE_MEAN_GAP,
    PROBE_VAR_LOG_RATIO,
    POPULATION_MEAN_GAP,
    POPULATION_VAR_LOG_RATIO,
    NONFINITE_CHANNELS,
    REPLICA_MEAN_SPREAD_GAP,
    MOVING_CHANGE,
    INIT_DISTANCE,
)
LAYER_QUANTITIES = CHANNEL_QUANTITIES + LAYER_SCALAR_QUANTITIES

# --- model-level quantities -----------------------------------------------------------------
OUTPUT_TRAINING = "output_training"  # [samples, features], model(probe, training=True)
OUTPUT_INFERENCE = "output_inference"  # [samples, features], model(probe, training=False)
OUTPUT_GAP = "output_gap"  # [3]: mean |diff|, max |diff|, mean |diff| / mean |inference|
OUTPUT_GAP_FIELDS = ("mean_abs", "max_abs", "relative")
MODEL_QUANTITIES = (OUTPUT_TRAINING, OUTPUT_INFERENCE, OUTPUT_GAP)

CONFIG_TAG = "bn_inspect/_run/config"

# --- plain scalars for TensorBoard's Scalars tab (written as simple_value) ------------------
SCALAR_OUTPUT_GAP = "bn_inspect/train_inference_gap"
SCALAR_MEAN_RESIDUAL = "bn_inspect/mean_residual_init_weight"
SCALAR_MAX_LAYER_GAP = "bn_inspect/max_layer_mean_gap"
SCALAR_MAX_STALENESS = "bn_inspect/max_population_mean_gap"
SCALAR_MAX_REPLICA_SPREAD = "bn_inspect/max_replica_mean_spread_gap"
PLAIN_SCALAR_TAGS = (
    SCALAR_OUTPUT_GAP,
    SCALAR_MEAN_RESIDUAL,
    SCALAR_MAX_LAYER_GAP,
    SCALAR_MAX_STALENESS,
    SCALAR_MAX_REPLICA_SPREAD,
)

# --- run-config record fields (JSON): those of bn_inspect.run_config, which defines them ------
CONFIG_FIELDS_RUN = RUN_FIELDS
CONFIG_FIELDS_LAYER = LAYER_FIELDS


# Groups of per-channel quantities written together, one ``[quantities, channels]`` tensor per
# layer and step each; a quantity outside every group is a group of its own. Never rename a
# group: a resumed run must write a series under the same tag.
CHANNEL_GROUPS = {
    "variables": VARIABLE_QUANTITIES,
    "probe_batch": (PROBE_BATCH_MEAN, PROBE_BATCH_VARIANCE),
    "population": (POPULATION_MEAN, POPULATION_VARIANCE),
    "replica_batch_spread": (REPLICA_BATCH_MEAN_SPREAD, REPLICA_BATCH_VARIANCE_SPREAD),
    "replica_moving_spread": (REPLICA_MOVING_MEAN_SPREAD, REPLICA_MOVING_VARIANCE_SPREAD),
}
MODEL_GROUPS = {"probe_outputs": (OUTPUT_TRAINING, OUTPUT_INFERENCE), "output_gap": (OUTPUT_GAP,)}

TAG_PREFIX = "bn_inspect/"
MODEL_TAG_SCOPE = "_model"  # bn_inspect/_model/<group>
FIGURES_TAG_SCOPE = "_layers"  # bn_inspect/_layers/figures/<digest>

# Short codes of quantities: they name a group's subset in its tag (see group_tag).
TAG_CODES = {
    MOVING_MEAN: "mm",
    MOVING_VARIANCE: "mv",
    GAMMA: "g",
    BETA: "b",
    PROBE_BATCH_MEAN: "pm",
    PROBE_BATCH_VARIANCE: "pv",
    POPULATION_MEAN: "qm",
    POPULATION_VARIANCE: "qv",
    REPLICA_BATCH_MEAN_SPREAD: "rm",
    REPLICA_BATCH_VARIANCE_SPREAD: "rv",
    REPLICA_MOVING_MEAN_SPREAD: "rmm",
    REPLICA_MOVING_VARIANCE_SPREAD: "rmv",
    RESIDUAL_INIT_WEIGHT: "w",
    UPDATES: "u",
    PROBE_MEAN_GAP: "pg",
    PROBE_VAR_LOG_RATIO: "pr",
    POPULATION_MEAN_GAP: "qg",
    POPULATION_VAR_LOG_RATIO: "qr",
    NONFINITE_CHANNELS: "n",
    REPLICA_MEAN_SPREAD_GAP: "rg",
    MOVING_CHANGE: "mc",
    INIT_DISTANCE: "id",
    OUTPUT_TRAINING: "ot",
    OUTPUT_INFERENCE: "oi",
    OUTPUT_GAP: "og",
}


def group_of(kind: str, quantity: str) -> str:
    """The name of the group ``quantity`` is stored in (:data:`CHANNEL_GROUPS`, :data:`MODEL_GROUPS`).

    Example:
        >>> group_of(KIND_LAYER, GAMMA), group_of(KIND_MODEL, OUTPUT_GAP), group_of(KIND_LAYER, "custom")
        ('variables', 'output_gap', 'custom')
    """
    groups = CHANNEL_GROUPS if kind == KIND_LAYER else MODEL_GROUPS
    return next((name for name, members in groups.items() if quantity in members), quantity)


def group_order(kind: str, quantities: Sequence[str]) -> list[tuple[str, list[str]]]:
    """``quantities`` split by group, groups and members in schema order (others last, sorted).

    Example:
        >>> group_order(KIND_LAYER, [BETA, PROBE_BATCH_MEAN, MOVING_MEAN])
        [('variables', ['moving_mean', 'beta']), ('probe_batch', ['probe_batch_mean'])]
    """
    groups = CHANNEL_GROUPS if kind == KIND_LAYER else MODEL_GROUPS
    present = set(quantities)
    result = [(name, [q for q in members if q in present]) for name, members in groups.items()]
    result += [(q, [q]) for q in sorted(present - {q for members in groups.values() for q in members})]
    return [(name, members) for name, members in result if members]


def group_tag(kind: str, quantities: Sequence[str], layer: str | None = None, timeline: str = TIMELINE_EPOCH) -> str:
    """The tag of one group of quantities of a layer (or of the model): readable and stable.

    ``bn_inspect/<layer path>/<group>``; a partial group names its members by their codes
    (:data:`TAG_CODES`); the batch timeline ends in ``/batch``. Readers never parse it.

    Example:
        >>> group_tag(KIND_LAYER, VARIABLE_QUANTITIES, "net/bn")
        'bn_inspect/net/bn/variables'
        >>> group_tag(KIND_LAYER, [MOVING_MEAN, MOVING_VARIANCE, GAMMA], "net/bn", TIMELINE_BATCH)
        'bn_inspect/net/bn/variables/mm+mv+g/batch'
        >>> group_tag(KIND_MODEL, [OUTPUT_GAP])
        'bn_inspect/_model/output_gap'
    """
    if kind not in (KIND_LAYER, KIND_MODEL):
        raise ValueError(f"unknown kind {kind!r}; use {KIND_LAYER!r} or {KIND_MODEL!r}")
    name = group_of(kind, quantities[0])
    full = (CHANNEL_GROUPS if kind == KIND_LAYER else MODEL_GROUPS).get(name, (name,))
    scope = layer if kind == KIND_LAYER else MODEL_TAG_SCOPE
    tag = f"{TAG_PREFIX}{scope}/{name}"
    if tuple(quantities) != tuple(full):
        tag += "/" + "+".join(TAG_CODES.get(q, q) for q in quantities)
    return tag + ("/batch" if timeline == TIMELINE_BATCH else "")


def group_record(
    kind: str, quantities: Sequence[str], layer: str | None = None, timeline: str = TIMELINE_EPOCH
) -> dict:
    """The record of a group of quantities stored as one ``[quantities, ...]`` tensor."""
    record: dict[str, Any] = {"v": SCHEMA_VERSION, "kind": kind, "quantities": list(quantities), "timeline": timeline}
    if layer is not None:
        record["layer"] = layer
    return record


def content_record(kind: str, quantity: str, layer: str | None = None, timeline: str = TIMELINE_EPOCH) -> dict:
    """The record of one series (also what v1 stored per tag, and what :func:`unpacked_records` gives)."""
    record: dict[str, Any] = {"v": SCHEMA_VERSION, "kind": kind, "quantity": quantity, "timeline": timeline}
    if layer is not None:
        record["layer"] = layer
    return record


def make_metadata(record: dict) -> summary_pb2.SummaryMetadata:
    """Build the ``SummaryMetadata`` for a content record (data class: tensor)."""
    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name=PLUGIN_NAME, content=json.dumps(record, sort_keys=True).encode("utf-8")
        ),
        data_class=summary_pb2.DATA_CLASS_TENSOR,
    )


def parse_content(content: bytes) -> dict:
    """Decode a ``plugin_data.content`` record; raises ``ValueError`` on a foreign or newer one."""
    try:
        record = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a bn_inspect content record: {exc}") from exc
    if not isinstance(record, dict) or "kind" not in record:
        raise ValueError("not a bn_inspect content record: missing 'kind'")
    version = record.get("v", 0)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise ValueError(
            f"bn_inspect schema version {version} is newer than this reader ({SCHEMA_VERSION}); upgrade bn-inspect"
        )
    if record["kind"] == KIND_LAYER_FIGURES and not ("layers" in record and "quantities" in record):
        raise ValueError("not a bn_inspect content record: a 'layer_figures' record needs layers, quantities")
    if record["kind"] != KIND_LAYER_FIGURES and "quantity" not in record and "quantities" not in record:
        raise ValueError(f"not a bn_inspect content record: a {record['kind']!r} record needs quantity or quantities")
    record.setdefault("timeline", TIMELINE_EPOCH)
    return record


def figures_record(layers: Sequence[str], quantities: Sequence[str], timeline: str = TIMELINE_EPOCH) -> dict:
    """The record of per-layer figures packed as ``[layers, quantities]`` (see the module docstring)."""
    return {
        "v": SCHEMA_VERSION,
        "kind": KIND_LAYER_FIGURES,
        "layers": list(layers),
        "quantities": list(quantities),
        "timeline": timeline,
    }


def figures_tag(record: dict) -> str:
    """The tag of a packed-figures record: stable for the same layers and quantities (8
    URL-safe characters of their BLAKE2b hash; the rows need the record to be named).

    Example:
        >>> figures_tag(figures_record(["bn"], [UPDATES]))
        'bn_inspect/_layers/figures/v2yzrnyz'
    """
    names = json.dumps([record["layers"], record["quantities"]]).encode("utf-8")
    digest = base64.urlsafe_b64encode(hashlib.blake2b(names, digest_size=6).digest()).decode("ascii")
    return f"{TAG_PREFIX}{FIGURES_TAG_SCOPE}/figures/{digest}" + (
        "/batch" if record["timeline"] == TIMELINE_BATCH else ""
    )


Position = tuple[int, ...] | None  # index of a series in a stored value (None: all of it)


def unpacked_records(record: dict) -> list[tuple[dict, Position]]:
    """The series a stored record holds: each series' own record (:func:`content_record`),
    with its index in the stored value. Every reader goes through this.

    Example:
        >>> [(r["layer"], r["quantity"], at) for r, at in unpacked_records(figures_record(["a", "b"], [UPDATES]))]
        [('a', 'updates', (0, 0)), ('b', 'updates', (1, 0))]
        >>> [(r["quantity"], at) for r, at in unpacked_records(group_record(KIND_MODEL, [OUTPUT_GAP]))]
        [('output_gap', (0,))]
    """
    timeline = record.get("timeline", TIMELINE_EPOCH)
    if record["kind"] == KIND_LAYER_FIGURES:
        return [
            (content_record(KIND_LAYER, quantity, layer, timeline), (row, column))
            for row, layer in enumerate(record["layers"])
            for column, quantity in enumerate(record["quantities"])
        ]
    if "quantities" in record:
        return [
            (content_record(record["kind"], quantity, record.get("layer"), timeline), (row,))
            for row, quantity in enumerate(record["quantities"])
        ]
    return [(record, None)]


# --- tensor encoding ------------------------------------------------------------------------
def encode_array(values: np.ndarray) -> tensor_pb2.TensorProto:
    """Encode a numeric array as a compact float32 ``TensorProto`` (raw bytes, not a list).

    Example:
        >>> proto = encode_array(np.arange(6).reshape(2, 3))
        >>> [d.size for d in proto.tensor_shape.dim], decode_tensor(proto).tolist()
        ([2, 3], [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]])
    """
    array = np.asarray(values, dtype=np.float32)  # keeps 0-d scalars 0-d
    return tensor_pb2.TensorProto(
        dtype=types_pb2.DT_FLOAT, tensor_shape=_shape_proto(array.shape), tensor_content=array_content(array)
    )


def array_content(values: np.ndarray) -> bytes:
    """The ``tensor_content`` of :func:`encode_array`: the float32 values, row-major."""
    return np.asarray(values, dtype=np.float32).tobytes()


@functools.cache
def _shape_proto(shape: tuple[int, ...]) -> tensor_shape_pb2.TensorShapeProto:
    return tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(d)) for d in shape])


def encode_text(text: str) -> tensor_pb2.TensorProto:
    """Encode a string as a scalar ``DT_STRING`` tensor."""
    return tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(),
        string_val=[text.encode("utf-8")],
    )


def decode_tensor(proto: tensor_pb2.TensorProto) -> np.ndarray | str:
    """Decode what :func:`encode_array` / :func:`encode_text` wrote (numpy only, no TensorFlow)."""
    shape = tuple(d.size for d in proto.tensor_shape.dim)
    if proto.dtype == types_pb2.DT_STRING:
        return proto.string_val[0].decode("utf-8") if proto.string_val else ""
    if proto.dtype != types_pb2.DT_FLOAT:
        raise ValueError(f"unexpected tensor dtype {proto.dtype}; bn_inspect writes float32")
    if proto.tensor_content:
        return np.frombuffer(proto.tensor_content, dtype=np.float32).reshape(shape)
    values = np.asarray(proto.float_val, dtype=np.float32)
    if values.size == 1 and int(np.prod(shape)) != 1:
        values = np.full(shape, values[0], dtype=np.float32)
    return values.reshape(shape)
