"""Dual-mode forward pass on a fixed batch that changes no model state.

Both passes go through ``model.stateless_call``: variables are passed in as values and the
updated ones come back as results that are thrown away, so moving statistics, RNG seeds and
optimizer state stay bitwise untouched.

The training-mode pass starts every BN layer's moving statistics at zero (training-mode
outputs do not read them), so after one update each holds ``(1 - m) * batch_stat`` and the
exact batch statistics of every layer's actual input are recovered without hooks, for
nested and subclassed models alike (:func:`bn_inspect.stats.batch_stat_from_update`).

Under a ``tf.distribute`` strategy, :class:`ReplicaProbe` also runs that training-mode pass
with the probe split across the replicas, to measure how much their batch statistics differ.

Example:
    >>> import keras, numpy as np
    >>> from bn_inspect.layers import find_batchnorm_layers
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization(name="bn")])
    >>> probe = Probe(model, find_batchnorm_layers(model), np.eye(3, dtype="float32"))
    >>> result = probe.run()
    >>> result.batch_mean["bn"].round(3).tolist()
    [0.333, 0.333, 0.333]
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from bn_inspect.layers import FoundLayer
from bn_inspect.stateless import compile_for_backend, moving_stat_indices, state_values
from bn_inspect.stats import batch_stat_from_update

# The probe runs eagerly this many times (the check at train begin, steps 0 and 1) before it is
# compiled: tracing and compiling both passes costs as much as tens of eager runs (0.3 s on
# TensorFlow, 1.2 s on JAX for 10 Dense-BN blocks, measured in bench/logging_costs.py), which
# a short fit would pay for two logged steps; a long fit pays it once, from the third epoch on.
EAGER_RUNS = 3


@dataclass
class ProbeResult:
    """What one probe pass measured, as numpy arrays."""

    outputs_training: np.ndarray  # [samples, features]
    outputs_inference: np.ndarray  # [samples, features]
    batch_mean: dict[str, np.ndarray] = field(default_factory=dict)  # path -> [channels], NaN if frozen
    batch_variance: dict[str, np.ndarray] = field(default_factory=dict)


def _flatten_outputs(outputs: Any, samples: int) -> np.ndarray:
    parts = [np.asarray(keras.ops.convert_to_numpy(o), dtype=np.float32) for o in keras.tree.flatten(outputs)]
    return np.concatenate([p.reshape(samples, -1) for p in parts], axis=1)


def sample_count(x: Any) -> int:
    """Number of samples in a (possibly nested) batch of inputs."""
    first = keras.tree.flatten(x)[0]
    return int(np.shape(first)[0])


class Probe:
    """Runs the model on ``x`` in training and inference mode, without changing anything.

    Build once per fit; call :meth:`run` at every logged step. The first :data:`EAGER_RUNS`
    runs go eagerly, later ones through one function compiled for the backend.
    """

    def __init__(self, model: Any, layers: Sequence[FoundLayer], x: Any) -> None:
        self.model = model
        self.layers = list(layers)
        self.x = x
        self.samples = sample_count(x)
        # per layer: (index of the mean variable, index of the variance-or-stddev variable)
        self._stat_indices = moving_stat_indices(model, self.layers, renorm_stddev=True)
        # A frozen layer runs in inference mode even when training=True: it reads its moving
        # statistics, so they must stay real, and it measures no batch statistics (NaN).
        self._measured = [bool(found.layer.trainable) for found in self.layers]
        self._zeroed = {i for pair, measured in zip(self._stat_indices, self._measured) if measured for i in pair}
        self._runs = 0
        self._compiled: Any = None
        self._last: tuple[list, ProbeResult] | None = None  # JAX: weak refs to the latest run's inputs, its result

    def training_stats(self, trainable: list, zeroed: list, x: Any) -> tuple[Any, list]:
        """The training-mode pass on ``x`` from the values of :meth:`state_inputs`: its outputs
        and, per layer, the (mean, variance-or-stddev) it updated from zero (backend tensors;
        traceable)."""
        training, updated = self.model.stateless_call(trainable, zeroed, x, training=True)
        return training, [(updated[m], updated[v]) for m, v in self._stat_indices]

    def _stateless_pass(self, trainable: list, non_trainable: list, zeroed: list, x: Any) -> tuple:
        inference, _ = self.model.stateless_call(trainable, non_trainable, x, training=False)
        training, stats = self.training_stats(trainable, zeroed, x)
        return inference, training, stats

    def _pass_function(self) -> Any:
        """The eager pass for the first :data:`EAGER_RUNS` runs, then the compiled one."""
        self._runs += 1
        if self._runs <= EAGER_RUNS and keras.backend.backend() in ("tensorflow", "jax"):
            return self._stateless_pass
        if self._compiled is None:
            self._compiled = compile_for_backend(self._stateless_pass)
        return self._compiled

    def state_inputs(self) -> tuple[list, list, list]:
        """Current trainable and non-trainable values, and the latter with measured stats zeroed."""
        trainable, non_trainable = state_values(self.model)
        zeroed = [keras.ops.zeros_like(v) if i in self._zeroed else v for i, v in enumerate(non_trainable)]
        return trainable, non_trainable, zeroed

    def batch_statistics(self, position: int, mean_after: Any, spread_after: Any) -> tuple[np.ndarray, np.ndarray]:
        """Batch mean and (biased) variance of layer ``position`` from the statistics
        :meth:`training_stats` returned for it (NaN for a frozen layer)."""
        layer = self.layers[position].layer
        if not self._measured[position]:
            nan = np.full(int(np.prod(layer.moving_mean.shape)), np.nan, dtype=np.float32)
            return nan, nan.copy()
        momentum = float(layer.momentum)
        mean = batch_stat_from_update(keras.ops.convert_to_numpy(mean_after), momentum)
        spread = batch_stat_from_update(keras.ops.convert_to_numpy(spread_after), momentum)
        if getattr(layer, "renorm", False):  # moving_stddev tracks sqrt(var + eps)
            variance = np.square(spread) - float(layer.epsilon)
        else:
            variance = spread
        return mean.reshape(-1), variance.reshape(-1)

    def _unchanged_since_last_run(self, inputs: list) -> ProbeResult | None:
        """The latest result when the model state is still the very arrays it ran on. Only on
        JAX, whose arrays are immutable: a variable that changed holds a new array. (The check at
        ``on_train_begin`` and step 0 then cost one run.)"""
        if self._last is None:  # kept on JAX only
            return None
        previous, result = self._last
        same = len(previous) == len(inputs) and all(ref() is array for ref, array in zip(previous, inputs))
        return result if same else None

    def run(self) -> ProbeResult:
        """Run both passes and recover each layer's batch mean and (biased) variance."""
        trainable, non_trainable, zeroed = self.state_inputs()
        unchanged = self._unchanged_since_last_run(trainable + non_trainable)
        if unchanged is not None:
            return unchanged
        inference, training, stats = self._pass_function()(trainable, non_trainable, zeroed, self.x)
        result = ProbeResult(
            outputs_training=_flatten_outputs(training, self.samples),
            outputs_inference=_flatten_outputs(inference, self.samples),
        )
        for position, (found, (mean_after, spread_after)) in enumerate(zip(self.layers, stats)):
            mean, variance = self.batch_statistics(position, mean_after, spread_after)
            result.batch_mean[found.path], result.batch_variance[found.path] = mean, variance
        if keras.backend.backend() == "jax":  # weak: the probe keeps no old model state alive
            self._last = ([weakref.ref(array) for array in trainable + non_trainable], result)
        return result


def split_batch(x: Any, parts: int) -> list:
    """``x`` cut into ``parts`` contiguous shards along the sample axis (sizes differ by <= 1)."""
    pieces = [np.array_split(np.asarray(a), parts) for a in keras.tree.flatten(x)]
    return [keras.tree.pack_sequence_as(x, [p[i] for p in pieces]) for i in range(parts)]


@dataclass
class ReplicaResult:
    """Batch statistics every replica computed on its shard of the probe."""

    batch_mean: dict[str, np.ndarray] = field(default_factory=dict)  # path -> [replicas, channels]
    batch_variance: dict[str, np.ndarray] = field(default_factory=dict)


class ReplicaProbe:
    """The training-mode pass of a :class:`Probe`, its batch split across the replicas of a
    ``tf.distribute`` strategy and run by ``strategy.run``, still without changing any state.

    Replica i gets the i-th contiguous shard of the probe (:func:`split_batch`). Each replica
    normalises with the statistics of its own shard, or, for ``synchronized=True`` layers,
    with the moments all-reduced across replicas, exactly as in a distributed training step.
    Raises ``ValueError`` when a shard would hold fewer than 2 samples.
    """

    def __init__(self, probe: Probe, strategy: Any) -> None:
        self.replicas = int(strategy.num_replicas_in_sync)
        if probe.samples < 2 * self.replicas:
            raise ValueError(
                f"the probe has {probe.samples} samples, too few to give each of {self.replicas} "
                f"replicas 2; pass probe_data with at least {2 * self.replicas} samples"
            )
        self._probe = probe
        self._strategy = strategy
        shards = split_batch(probe.x, self.replicas)
        self.shard_sizes = [sample_count(shard) for shard in shards]
        self._shards = strategy.experimental_distribute_values_from_function(
            lambda context: shards[context.replica_id_in_sync_group]
        )
        self._fn = compile_for_backend(self._distributed_pass)

    def _distributed_pass(self, trainable: list, zeroed: list, shards: Any) -> Any:
        def replica_pass(x: Any) -> list:
            return self._probe.training_stats(trainable, zeroed, x)[1]

        return self._strategy.run(replica_pass, args=(shards,))

    def run(self) -> ReplicaResult:
        """Run the distributed pass and recover each replica's batch statistics per layer."""
        probe = self._probe
        trainable, _, zeroed = probe.state_inputs()
        per_replica = self._strategy.experimental_local_results(self._fn(trainable, zeroed, self._shards))
        result = ReplicaResult()
        for position, found in enumerate(probe.layers):
            pairs = [probe.batch_statistics(position, *stats[position]) for stats in per_replica]
            result.batch_mean[found.path] = np.stack([mean for mean, _ in pairs])
            result.batch_variance[found.path] = np.stack([variance for _, variance in pairs])
        return result
