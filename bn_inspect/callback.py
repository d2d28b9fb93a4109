"""The ``BatchNormInspector`` Keras callback."""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import keras
import numpy as np

from bn_inspect import schema, stats
from bn_inspect.distribution import replica_strategy, replica_values
from bn_inspect.layers import FoundLayer, find_batchnorm_layers, has_training_noise, layer_config, variable_values
from bn_inspect.population import PopulationStatistics
from bn_inspect.probe import Probe, ProbeResult, ReplicaProbe, sample_count
from bn_inspect.probe_data import ProbeDataError, as_probe_batch
from bn_inspect.reader import last_logged_step
from bn_inspect.writer import SummaryWriter

# Model outputs on the probe are stored raw only up to this many floats per mode.
MAX_STORED_OUTPUT_VALUES = 65536
# Population statistics cost one inference pass over reference_data per trainable BN layer.
# Once they add more than this share of the training time, and at least
# POPULATION_COST_FLOOR_SECONDS per logged step, the inspector says once which
# reference_every would bring them under it.
POPULATION_COST_SHARE = 0.1
POPULATION_COST_FLOOR_SECONDS = 1.0


class BatchNormInspectorWarning(UserWarning):
    """Something about the inspected model or data the user should know; training goes on."""


def _warn(message: str) -> None:
    warnings.warn(message, BatchNormInspectorWarning, stacklevel=3)


def _to_int(value: Any) -> int:
    return int(np.asarray(keras.ops.convert_to_numpy(value)).reshape(-1)[0])


def _fit_batch_size() -> int | None:
    """The ``batch_size`` the running ``fit`` iterates with, read from its data adapter."""
    frame = sys._getframe(1)
    while frame is not None:
        iterator = frame.f_locals.get("epoch_iterator") if frame.f_code.co_name == "fit" else None
        adapter = getattr(iterator, "data_adapter", None)
        size = getattr(adapter, "batch_size", None)
        if isinstance(size, int):
            return size
        frame = frame.f_back
    return None


def _is_chief(model: Any) -> bool:
    """False on the non-chief workers of a TensorFlow distribution strategy."""
    tf = sys.modules.get("tensorflow")
    if tf is None or keras.backend.backend() != "tensorflow":
        return True
    strategy = getattr(model, "distribute_strategy", None) or tf.distribute.get_strategy()
    return bool(getattr(strategy.extended, "should_save_summary", True))


class BatchNormInspector(keras.callbacks.Callback):
    """Log every BatchNormalization layer's statistics to TensorBoard, every epoch.

    For each BN layer (nested and subclassed models included) it writes per-channel
    moving mean/variance, gamma and beta, the weight the initializer still has in the
    moving statistics (``momentum ** updates``), and the layer's configuration. With
    ``probe_data`` it also runs the model on that fixed batch in training and in inference
    mode, without changing any model state, and logs both outputs, their gap, and each
    layer's batch statistics next to its moving ones. With ``reference_data`` it also logs
    each layer's exact population statistics over that data and their distance to the
    moving ones ("EMA staleness"): the statistics :func:`bn_inspect.recalibrate` would
    install, i.e. of the input each layer meets at inference (Dropout off) once the BN
    layers before it use population statistics too (see :mod:`bn_inspect.population`).

    Steps: step 0 is the state before the first epoch (the initializers); step k the state
    after epoch k. A fit resumed with ``initial_epoch=k`` continues at step k.

    Under a ``tf.distribute`` strategy only the chief writes. With several replicas the
    probe also runs split across them, to show how far apart their batch statistics are
    (``synchronized=True`` layers: ~0). Whatever fails while logging is reported as a
    :class:`BatchNormInspectorWarning` and skipped; training goes on unchanged.

    Args:
        log_dir: Directory of this run's event files (one run = one directory; compare runs
            by giving each its own sub-directory of a common ``--logdir``).
        probe_data: Fixed batch for the training-vs-inference probe: an array, an
            ``(x, y)`` tuple, a list/dict of arrays, or a dataset of batches (taken up to
            ``max_probe_samples``). Use at least a few dozen samples. Defaults to `None`
            (probe off).
        log_every_n_batches: Also log the variables every N training steps, on the global
            step, for within-epoch curves. Defaults to `None` (epoch ends only).
        max_probe_samples: Largest probe batch accepted. Defaults to `1024`.
        batch_size: Training batch size to record in the run config. Defaults to `None`
            (read from the running ``fit``).
        reference_data: Data for population statistics: arrays, an ``(x, y)`` tuple, or a
            re-iterable dataset of batches (``tf.data.Dataset``, ``keras.utils.PyDataset``),
            streamed batch by batch, once per trainable BN layer at every logged step; a
            few thousand training samples are plenty. Defaults to `None` (off).
        reference_every: Compute them at step 0 and at every epoch that is a multiple of
            this. Defaults to `1`.
        reference_batch_size: Batch size for array ``reference_data`` (speed and memory
            only; the statistics do not depend on it). Defaults to `256`.

    Example:
    ```python
    model.fit(x, y, epochs=5,
              callbacks=[BatchNormInspector("logs/run1", probe_data=x[:64])])
    # then: tensorboard --logdir logs   (tab "BN Inspect")
    ```
    """

    def __init__(
        self,
        log_dir: str | os.PathLike,
        probe_data: Any = None,
        log_every_n_batches: int | None = None,
        max_probe_samples: int = 1024,
        batch_size: int | None = None,
        reference_data: Any = None,
        reference_every: int = 1,
        reference_batch_size: int = 256,
    ) -> None:
        super().__init__()
        if not isinstance(log_dir, (str, os.PathLike)) or not str(log_dir):
            raise ValueError(f"log_dir must be a directory path; got {log_dir!r}.")
        if log_every_n_batches is not None and (not isinstance(log_every_n_batches, int) or log_every_n_batches < 1):
            raise ValueError(f"log_every_n_batches must be a positive int or None; got {log_every_n_batches!r}.")
        if not isinstance(max_probe_samples, int) or max_probe_samples < 1:
            raise ValueError(f"max_probe_samples must be a positive int; got {max_probe_samples!r}.")
        if not isinstance(reference_every, int) or reference_every < 1:
            raise ValueError(f"reference_every must be a positive int (epochs); got {reference_every!r}.")
        if not isinstance(reference_batch_size, int) or reference_batch_size < 1:
            raise ValueError(f"reference_batch_size must be a positive int; got {reference_batch_size!r}.")
        self.log_dir = Path(log_dir)
        self.probe_data = probe_data
        self.log_every_n_batches = log_every_n_batches
        self.max_probe_samples = max_probe_samples
        self.batch_size = batch_size
        self.reference_data = reference_data
        self.reference_every = reference_every
        self.reference_batch_size = reference_batch_size
        self._last_step: int | None = None
        if log_every_n_batches is not None:
            # Only then hook every batch: Keras dispatches batch callbacks asynchronously
            # as long as no callback overrides them.
            self.on_train_batch_end = self._on_train_batch_end_logging
        self._reset()

    # --- state ------------------------------------------------------------------------------
    def _reset(self) -> None:
        self._writer: SummaryWriter | None = None
        self._layers: list[FoundLayer] = []
        self._probe: Probe | None = None
        self._replica_probe: ReplicaProbe | None = None
        self._strategy: Any = None  # a tf.distribute strategy with several replicas, if any
        self._population: PopulationStatistics | None = None
        self._config: dict | None = None
        self._started = False
        self._step_offset = 0
        self._iterations_at_begin = 0
        self._updates_at_begin: dict[str, int] = {}
        self._steps_done = 0  # training steps of this fit's finished epochs
        self._batch_begun: int | None = None  # in-epoch index of the latest step begun
        self._epoch_started: float | None = None  # perf_counter when the current epoch's training began
        self._population_seconds: float | None = None  # the latest population statistics' duration
        self._population_cost_told = False

    @property
    def layers(self) -> list[FoundLayer]:
        """The BatchNormalization layers found at the start of the current fit."""
        return list(self._layers)

    # --- hooks ------------------------------------------------------------------------------
    def on_train_begin(self, logs: dict | None = None) -> None:
        self._close()
        self._reset()
        model = self.model
        self._layers = find_batchnorm_layers(model)
        if not self._layers:
            _warn(f"bn-inspect: model {model.name!r} has no BatchNormalization layer; nothing to log.")
            return
        if not _is_chief(model):
            self._layers = []
            return
        existing_step = last_logged_step(self.log_dir) if self.log_dir.is_dir() else None
        self._open_writer()
        self._strategy = replica_strategy(model)
        self._prepare_probe()
        if self.reference_data is not None:
            self._population = PopulationStatistics(
                model, self.reference_data, layers=self._layers, batch_size=self.reference_batch_size
            )
        self._iterations_at_begin = self._iterations()
        self._updates_at_begin = {
            found.path: (self._iterations_at_begin if found.layer.trainable else 0) for found in self._layers
        }
        self._config = self._run_config()
        if self._last_step is None and existing_step is not None:
            if self._iterations_at_begin > 0:
                self._last_step = existing_step  # a trained model resumes: continue the steps
            else:
                _warn(
                    f"bn-inspect: {str(self.log_dir)!r} already holds bn-inspect data and this model "
                    "has not trained yet, so two runs will be mixed in one series. Give each run its "
                    "own log_dir."
                )

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if self._writer is None:
            return
        if not self._started:
            self._started = True
            if self._last_step is not None and self._last_step > epoch:
                self._step_offset = self._last_step - epoch
            self._safely(self._log_epoch_state, epoch + self._step_offset, include_config=True)
        self._epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        trained = time.perf_counter() - self._epoch_started if self._epoch_started is not None else None
        self._count_epoch_steps()
        if self._writer is None:
            return
        self._safely(self._log_epoch_state, epoch + 1 + self._step_offset)
        if trained is not None:
            self._safely(self._tell_population_cost, trained)

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        # Counts the steps BN layers update in; optimizer.iterations misses those a loss-scale
        # optimizer skips (mixed precision). Keras runs this hook synchronously in any case.
        self._batch_begun = batch

    def _on_train_batch_end_logging(self, batch: int, logs: dict | None = None) -> None:
        """``on_train_batch_end``, installed only with ``log_every_n_batches`` (see __init__)."""
        if self._writer is not None and (batch + 1) % self.log_every_n_batches == 0:
            if keras.backend.backend() == "jax":  # JAX's fit keeps the values outside the variables mid-epoch
                self.model.jax_state_sync()
            self._safely(self._log_batch_state, self._iterations_at_begin + self._steps_done + batch + 1)

    def on_train_end(self, logs: dict | None = None) -> None:
        self._close()

    # --- setup --------------------------------------------------------------------------------
    def _open_writer(self) -> None:
        if self.log_dir.exists() and not self.log_dir.is_dir():
            raise ValueError(f"bn-inspect: log_dir {str(self.log_dir)!r} is a file; pass a directory path.")
        try:
            self._writer = SummaryWriter(self.log_dir)
        except OSError as exc:
            raise ValueError(
                f"bn-inspect: cannot write to log_dir {str(self.log_dir)!r} ({exc.strerror or exc}); "
                "pass a writable directory."
            ) from exc

    def _prepare_probe(self) -> None:
        if self.probe_data is None:
            _warn(
                "bn-inspect: probe off. Pass probe_data=x[:64] (a fixed batch of training inputs) to "
                "compare training-mode and inference-mode outputs and batch vs moving statistics."
            )
            return
        x = as_probe_batch(self.probe_data, self.max_probe_samples)
        samples = sample_count(x)
        if samples < 2:
            _warn(
                f"bn-inspect: probe_data has {samples} sample; in training mode every BatchNormalization "
                "output then equals beta (the batch variance is 0). Use a probe of a few dozen samples."
            )
        noisy = has_training_noise(self.model)
        if noisy:
            _warn(
                f"bn-inspect: layers {noisy} add random noise in training mode, so part of the "
                "training-vs-inference output gap on the probe is noise, not BatchNormalization."
            )
        try:
            probe = Probe(self.model, self._layers, x)
            probe.run()
        except Exception as exc:
            expected = getattr(self.model, "input_shape", None)
            got = keras.tree.map_structure(lambda a: f"{a.dtype} {tuple(a.shape)}", x)
            raise ProbeDataError(
                f"bn-inspect: the model cannot run on probe_data (inputs: {got}); the model "
                f"expects inputs of shape {expected}. Pass a batch of training inputs. ({exc})"
            ) from exc
        self._probe = probe
        self._replica_probe = self._prepare_replica_probe(probe)

    def _prepare_replica_probe(self, probe: Probe) -> ReplicaProbe | None:
        """Split the probe across the replicas of a distribution strategy; off on any failure."""
        if self._strategy is None:
            return None
        try:
            replica_probe = ReplicaProbe(probe, self._strategy)
            replica_probe.run()
        except Exception as exc:  # an extra: never stop training for it
            _warn(f"bn-inspect: per-replica batch statistics off: {type(exc).__name__}: {exc}")
            return None
        return replica_probe

    def _iterations(self) -> int:
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None:
            return 0
        return _to_int(optimizer.iterations)

    def _count_epoch_steps(self) -> None:
        """Add the steps of the epoch that just ended to ``_steps_done``."""
        if self._batch_begun is None:
            return
        steps = self._batch_begun + max(1, int(getattr(self.model, "steps_per_execution", 1) or 1))
        planned = (self.params or {}).get("steps")
        self._steps_done += min(steps, planned) if planned else steps
        self._batch_begun = None

    def _global_step(self) -> int:
        """Training steps the model has run: before this fit (the optimizer's count) and in it."""
        return self._iterations_at_begin + self._steps_done

    def _run_config(self) -> dict:
        model = self.model
        policy = keras.config.dtype_policy()
        strategy = getattr(model, "distribute_strategy", None)
        return {
            "schema_version": schema.SCHEMA_VERSION,
            "model_name": model.name,
            "keras_version": keras.__version__,
            "backend": keras.backend.backend(),
            "global_dtype_policy": getattr(policy, "name", str(policy)),
            "batch_size": self.batch_size if self.batch_size is not None else _fit_batch_size(),
            "steps_per_epoch": (self.params or {}).get("steps"),
            "epochs": (self.params or {}).get("epochs"),
            "momentum_steps_at_begin": self._iterations_at_begin,
            "probe_samples": self._probe.samples if self._probe else 0,
            "probe_has_dropout": bool(has_training_noise(model)) if self._probe else False,
            "replicas": int(getattr(strategy, "num_replicas_in_sync", 1) or 1),
            "replica_probe_shards": self._replica_probe.shard_sizes if self._replica_probe else [],
            "layers": [layer_config(found) for found in self._layers],
        }

    # --- logging ----------------------------------------------------------------------------
    def _safely(self, log: Any, *args: Any, **kwargs: Any) -> None:
        """Run a logging step; a failure is reported and skipped, never raised into fit."""
        try:
            log(*args, **kwargs)
        except Exception as exc:  # the inspector must not break training
            _warn(f"bn-inspect: logging skipped this time: {type(exc).__name__}: {exc}")

    def _updates(self, found: FoundLayer, iterations: int) -> int:
        base = self._updates_at_begin[found.path]
        return base + (iterations - self._iterations_at_begin if found.layer.trainable else 0)

    def _add_variables(self, timeline: str, iterations: int) -> dict[str, dict[str, np.ndarray]]:
        writer = self._writer
        assert writer is not None
        values_by_layer = {}
        for found in self._layers:
            values = variable_values(found.layer)
            values_by_layer[found.path] = values
            for quantity, array in values.items():
                writer.add_layer(found.path, quantity, array, timeline)
            updates = self._updates(found, iterations)
            writer.add_layer(found.path, schema.UPDATES, np.float32(updates), timeline)
            writer.add_layer(
                found.path,
                schema.RESIDUAL_INIT_WEIGHT,
                stats.residual_init_weight(found.layer.momentum, updates),
                timeline,
            )
            if timeline == schema.TIMELINE_EPOCH and self._strategy is not None:
                self._add_replica_copies(found)
            bad = stats.nonfinite_channels(values["moving_mean"], values["moving_variance"])
            writer.add_layer(found.path, schema.NONFINITE_CHANNELS, np.float32(bad), timeline)
            if bad and timeline == schema.TIMELINE_EPOCH:
                _warn(
                    f"bn-inspect: layer {found.path!r} has {bad} channel(s) with NaN/inf or negative moving statistics."
                )
        return values_by_layer

    def _add_replica_copies(self, found: FoundLayer) -> None:
        """How far apart the replicas' copies of the moving statistics are (see distribution.py)."""
        writer = self._writer
        assert writer is not None
        try:
            mean_copies = replica_values(found.layer.moving_mean, self._strategy)
            variance_copies = replica_values(found.layer.moving_variance, self._strategy)
        except Exception as exc:  # an extra: never cost the epoch its variables
            _warn(f"bn-inspect: replica copies of {found.path!r} unreadable: {type(exc).__name__}: {exc}")
            return
        writer.add_layer(found.path, schema.REPLICA_MOVING_MEAN_SPREAD, stats.replica_spread(mean_copies))
        writer.add_layer(found.path, schema.REPLICA_MOVING_VARIANCE_SPREAD, stats.replica_spread(variance_copies))

    def _log_epoch_state(self, step: int, include_config: bool = False) -> None:
        writer = self._writer
        assert writer is not None
        if include_config and self._config is not None:
            writer.add_config(self._config)
        iterations = self._global_step()
        values_by_layer = self._add_variables(schema.TIMELINE_EPOCH, iterations)
        residuals = [
            stats.residual_init_weight(found.layer.momentum, self._updates(found, iterations)) for found in self._layers
        ]
        writer.add_scalar(schema.SCALAR_MEAN_RESIDUAL, float(np.mean(residuals)))
        if self._probe is not None:
            try:
                self._add_probe(values_by_layer)
            except Exception as exc:  # a failing probe must not cost the epoch its variables
                _warn(f"bn-inspect: probe skipped at step {step}: {type(exc).__name__}: {exc}")
        if self._population is not None and step % self.reference_every == 0:
            try:
                self._add_population(values_by_layer)
            except Exception as exc:  # population statistics must not cost the epoch its variables
                _warn(f"bn-inspect: population statistics skipped at step {step}: {type(exc).__name__}: {exc}")
        writer.write_step(step)
        self._last_step = step

    def _add_probe(self, values_by_layer: dict[str, dict[str, np.ndarray]]) -> None:
        writer = self._writer
        assert writer is not None and self._probe is not None
        result = self._probe.run()
        gap = stats.output_gap(result.outputs_training, result.outputs_inference)
        writer.add_model(schema.OUTPUT_GAP, gap)
        writer.add_scalar(schema.SCALAR_OUTPUT_GAP, gap[0])
        if result.outputs_inference.size <= MAX_STORED_OUTPUT_VALUES:
            writer.add_model(schema.OUTPUT_TRAINING, result.outputs_training)
            writer.add_model(schema.OUTPUT_INFERENCE, result.outputs_inference)
        layer_gaps = []
        for found in self._layers:
            mean, variance = result.batch_mean[found.path], result.batch_variance[found.path]
            values = values_by_layer[found.path]
            writer.add_layer(found.path, schema.PROBE_BATCH_MEAN, mean)
            writer.add_layer(found.path, schema.PROBE_BATCH_VARIANCE, variance)
            mean_gap, var_ratio = stats.layer_gaps(
                mean, variance, values["moving_mean"], values["moving_variance"], found.layer.epsilon
            )
            writer.add_layer(found.path, schema.PROBE_MEAN_GAP, mean_gap)
            writer.add_layer(found.path, schema.PROBE_VAR_LOG_RATIO, var_ratio)
            layer_gaps.append(mean_gap)
        measured = [gap for gap in layer_gaps if np.isfinite(gap)]  # frozen layers measure none
        if measured:
            writer.add_scalar(schema.SCALAR_MAX_LAYER_GAP, float(max(measured)))
        if self._replica_probe is not None:
            try:
                self._add_replicas(result)
            except Exception as exc:  # an extra: never cost the probe its values
                _warn(f"bn-inspect: per-replica batch statistics skipped: {type(exc).__name__}: {exc}")

    def _add_replicas(self, result: ProbeResult) -> None:
        writer = self._writer
        assert writer is not None and self._replica_probe is not None
        replicas = self._replica_probe.run()
        gaps = []
        for found in self._layers:
            mean_spread = stats.replica_spread(replicas.batch_mean[found.path])
            writer.add_layer(found.path, schema.REPLICA_BATCH_MEAN_SPREAD, mean_spread)
            variance_spread = stats.replica_spread(replicas.batch_variance[found.path])
            writer.add_layer(found.path, schema.REPLICA_BATCH_VARIANCE_SPREAD, variance_spread)
            gap = stats.replica_mean_spread_gap(mean_spread, result.batch_variance[found.path], found.layer.epsilon)
            writer.add_layer(found.path, schema.REPLICA_MEAN_SPREAD_GAP, gap)
            gaps.append(gap)
        measured = [gap for gap in gaps if np.isfinite(gap)]
        if measured:
            writer.add_scalar(schema.SCALAR_MAX_REPLICA_SPREAD, float(max(measured)))

    def _add_population(self, values_by_layer: dict[str, dict[str, np.ndarray]]) -> None:
        writer = self._writer
        assert writer is not None and self._population is not None
        start = time.perf_counter()
        populations = self._population.compute()
        self._population_seconds = time.perf_counter() - start
        gaps = []
        for found in self._population.order:
            population, values = populations[found.path], values_by_layer[found.path]
            writer.add_layer(found.path, schema.POPULATION_MEAN, population.mean)
            writer.add_layer(found.path, schema.POPULATION_VARIANCE, population.variance)
            mean_gap, var_ratio = stats.layer_gaps(
                population.mean,
                population.variance,
                values["moving_mean"],
                values["moving_variance"],
                found.layer.epsilon,
            )
            writer.add_layer(found.path, schema.POPULATION_MEAN_GAP, mean_gap)
            writer.add_layer(found.path, schema.POPULATION_VAR_LOG_RATIO, var_ratio)
            gaps.append(mean_gap)
        if gaps:
            writer.add_scalar(schema.SCALAR_MAX_STALENESS, float(np.nanmax(gaps)))

    def _tell_population_cost(self, epoch_seconds: float) -> None:
        """Warn once when population statistics take a large share of training time, naming
        the ``reference_every`` that keeps them under ``POPULATION_COST_SHARE``."""
        cost = self._population_seconds
        if self._population_cost_told or self._population is None or cost is None or epoch_seconds <= 0:
            return
        every = stats.interval_for_share(cost, epoch_seconds, POPULATION_COST_SHARE)
        if every <= self.reference_every or cost < POPULATION_COST_FLOOR_SECONDS:
            return
        self._population_cost_told = True
        _warn(
            f"bn-inspect: population statistics took {cost:.1f} s ({self._population.passes} inference "
            f"pass(es) over reference_data, one per trainable BN layer), {cost / epoch_seconds:.0%} of a "
            f"{epoch_seconds:.1f} s training epoch, every {self.reference_every} epoch(s). Pass "
            f"reference_every={every} (or a smaller reference_data) to keep them under "
            f"{POPULATION_COST_SHARE:.0%} of training time."
        )

    def _log_batch_state(self, global_step: int) -> None:
        writer = self._writer
        assert writer is not None
        self._add_variables(schema.TIMELINE_BATCH, global_step)
        writer.write_step(global_step)

    def _close(self) -> None:
        if getattr(self, "_writer", None) is not None:
            self._writer.close()
            self._writer = None
