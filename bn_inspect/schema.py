"""The one data contract between the callback (writer), the reader, the CLI and the plugin.

Every bn-inspect summary is a TensorBoard ``Summary.Value`` whose metadata names the plugin
``bn_inspect`` and carries a small JSON *content* record:

    {"v": 2, "kind": "layer", "layer": "model/block/bn", "quantity": "moving_mean",
     "timeline": "epoch"}

Readers identify a series by that record, never by parsing the tag string. Tags are only
unique names (see :func:`tag_for`).

Per-layer figures (scalars such as ``residual_init_weight``) are stored packed: at each step,
the layers that logged the same set of figures share one float32 ``[layers, quantities]``
value under a record of kind ``"layer_figures"`` that lists both:

    {"v": 2, "kind": "layer_figures", "layers": ["bn_1", "bn_2"],
     "quantities": ["residual_init_weight", "updates"], "timeline": "epoch"}

One tag per layer and figure made TensorBoard's loaders handle (and event files repeat a tag
for) thousands of 4-byte values per step. Readers unpack them with :func:`unpacked_records`
into per-layer series identical to the unpacked form, which they also still read.

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
    Per-channel quantities are float32 tensors of shape ``[channels]`` (a layer with several
    normalised axes is flattened in C order). Per-layer figures are float32 scalars (packed,
    see above). Model outputs on the probe are float32 ``[samples, features]``. The run
    configuration is a JSON string tensor.

Versions
    1: one tag per layer and figure. 2: per-layer figures packed, short tags.

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
    >>> md = schema.layer_metadata("dense_bn", schema.MOVING_MEAN)
    >>> schema.parse_content(md.plugin_data.content)["quantity"]
    'moving_mean'
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from tensorboard.compat.proto import summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2

from bn_inspect.run_config import LAYER_FIELDS, RUN_FIELDS

PLUGIN_NAME = "bn_inspect"
SCHEMA_VERSION = 2

# --- record kinds --------------------------------------------------------------------------
KIND_LAYER = "layer"  # one quantity of one BN layer
KIND_MODEL = "model"  # one quantity of the whole model (probe outputs, gaps)
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


# Short codes of quantities in tags. Tags are only unique names (readers never parse them),
# but every value written repeats its tag: short tags keep event files close to the raw
# float32 payload. Never change a code: a resumed run must write a series under the same tag.
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
    OUTPUT_TRAINING: "ot",
    OUTPUT_INFERENCE: "oi",
    OUTPUT_GAP: "og",
}


def layer_key(layer: str) -> str:
    """A short stable name of a layer path for tags: 8 URL-safe characters of its BLAKE2b
    hash (48 bits; the writer falls back to a longer tag on a collision within a run)."""
    digest = hashlib.blake2b(layer.encode("utf-8"), digest_size=6).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")


def tag_for(kind: str, quantity: str, layer: str | None = None, timeline: str = TIMELINE_EPOCH) -> str:
    """Return the unique tag of one series: short, stable across fits, never parsed.

    Example:
        >>> tag_for(KIND_LAYER, MOVING_MEAN, "net/bn")
        'W17UysQQ/mm'
        >>> tag_for(KIND_MODEL, OUTPUT_GAP, timeline=TIMELINE_BATCH)
        '_m/og/b'
    """
    suffix = "/b" if timeline == TIMELINE_BATCH else ""
    code = TAG_CODES.get(quantity, quantity)
    if kind == KIND_LAYER:
        return f"{layer_key(layer or '')}/{code}{suffix}"
    if kind == KIND_MODEL:
        return f"_m/{code}{suffix}"
    if kind == KIND_CONFIG:
        return CONFIG_TAG
    raise ValueError(f"unknown kind {kind!r}; use one of {KIND_LAYER!r}, {KIND_MODEL!r}, {KIND_CONFIG!r}")


def content_record(kind: str, quantity: str, layer: str | None = None, timeline: str = TIMELINE_EPOCH) -> dict:
    """The JSON record stored in ``plugin_data.content`` of a series."""
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


def layer_metadata(layer: str, quantity: str, timeline: str = TIMELINE_EPOCH) -> summary_pb2.SummaryMetadata:
    """Metadata of a per-layer series."""
    return make_metadata(content_record(KIND_LAYER, quantity, layer, timeline))


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
    needed = ("layers", "quantities") if record["kind"] == KIND_LAYER_FIGURES else ("quantity",)
    if any(name not in record for name in needed):
        raise ValueError(f"not a bn_inspect content record: a {record['kind']!r} record needs {', '.join(needed)}")
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
    """The tag of a packed-figures record: stable for the same layers and quantities.

    Example:
        >>> figures_tag(figures_record(["bn"], [UPDATES]))
        '_L/v2yzrnyz'
    """
    names = json.dumps([record["layers"], record["quantities"]]).encode("utf-8")
    digest = base64.urlsafe_b64encode(hashlib.blake2b(names, digest_size=6).digest()).decode("ascii")
    return f"_L/{digest}" + ("/b" if record["timeline"] == TIMELINE_BATCH else "")


def unpacked_records(record: dict) -> list[tuple[dict, tuple[int, int] | None]]:
    """The series a stored record holds: each series' own record, with its position in the
    stored value (``None``: the whole value). Every reader goes through this.

    Example:
        >>> [(r["layer"], r["quantity"], at) for r, at in unpacked_records(figures_record(["a", "b"], [UPDATES]))]
        [('a', 'updates', (0, 0)), ('b', 'updates', (1, 0))]
    """
    if record["kind"] != KIND_LAYER_FIGURES:
        return [(record, None)]
    timeline = record.get("timeline", TIMELINE_EPOCH)
    return [
        (content_record(KIND_LAYER, quantity, layer, timeline), (row, column))
        for row, layer in enumerate(record["layers"])
        for column, quantity in enumerate(record["quantities"])
    ]


# --- tensor encoding ------------------------------------------------------------------------
def encode_array(values: np.ndarray) -> tensor_pb2.TensorProto:
    """Encode a numeric array as a compact float32 ``TensorProto`` (raw bytes, not a list)."""
    array = np.asarray(values, dtype=np.float32).copy(order="C")  # keeps 0-d scalars 0-d
    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(d)) for d in array.shape]
    )
    return tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_shape=shape, tensor_content=array.tobytes())


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
