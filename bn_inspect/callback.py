"""The ``BatchNormInspector`` Keras callback."""

from __future__ import annotations

import os
import time
from typing import Any

import keras
import numpy as np

from bn_inspect import schema, stats, storage, summaries
from bn_inspect.batch_logging import BatchLogger
from bn_inspect.cost_advice import CostAdvisor
from bn_inspect.distribution import is_writing_process, replica_strategy
from bn_inspect.guard import BatchNormInspectorWarning, skipped_on_error, warn
from bn_inspect.layers import FoundLayer, find_batchnorm_layers, has_training_noise, layer_config
from bn_inspect.population import PopulationStatistics
from bn_inspect.probe import Probe, ReplicaProbe, sample_count
from bn_inspect.probe_data import UnusableDataError, as_probe_batch
from bn_inspect.reader import last_logged_step
from bn_inspect.run_config import RunConfig
from bn_inspect.steps import StepCounter
from bn_inspect.transfer import VariableTransfer
from bn_inspect.writer import SummaryWriter

__all__ = ["BatchNormInspector", "BatchNormInspectorWarning"]

# Population statistics cost one inference pass over reference_data per trainable BN layer.
# Once they add more than this share of the training time, and at least
# POPULATION_COST_FLOOR_SECONDS per logged step, the inspector says once which
# reference_every would bring them under it.
POPULATION_COST_SHARE = 0.1
POPULATION_COST_FLOOR_SECONDS = 1.0
# Within-epoch logging (log_every_n_batches): the same advice, naming log_every_n_batches, once
# it takes more than this share of an epoch's training time and at least the floor per epoch.
BATCH_LOGGING_COST_SHARE = 0.1
BATCH_LOGGING_COST_FLOOR_SECONDS = 0.1


def _to_int(value: Any) -> int:
    return int(np.asarray(keras.ops.convert_to_numpy(value)).reshape(-1)[0])


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

    Logs go to a local directory or any fsspec URL (``s3://``, ``gs://``, ``memory://``;
    see docs/storage.md). In multi-process training only one process writes: process 0
    under ``keras.distribution`` (JAX), the chief under a ``tf.distribute`` strategy. With several replicas the
    probe also runs split across them, to show how far apart their batch statistics are
    (``synchronized=True`` layers: ~0). Whatever fails while logging is reported as a
    :class:`BatchNormInspectorWarning` and skipped; training goes on unchanged.

    Args:
        log_dir: Directory of this run's event files (one run = one directory; compare runs
            by giving each its own sub-directory of a common ``--logdir``): a local path or
            an fsspec URL such as ``"s3://bucket/exp/run1"`` (``pip install
            "bn-inspect[s3]"``; ``[gcs]`` for ``gs://``). Credentials never go in the URL.
        probe_data: Fixed batch for the training-vs-inference probe: an array, an
            ``(x, y)`` tuple, a list/dict of arrays, or a dataset of batches (taken up to
            ``max_probe_samples``). Use at least a few dozen samples. Defaults to `None`
            (probe off).
        log_every_n_batches: Also log the variables every N training steps, on the global
            step, for within-epoch curves (read as the next step begins, so Keras keeps its
            batch-end hooks asynchronous; see :mod:`bn_inspect.batch_logging`). Defaults to
            `None` (epoch ends only).
        max_probe_samples: Largest probe batch accepted. Defaults to `1024`.
        batch_size: Training batch size to record in the run config (``bn-inspect doctor``
            checks it against BatchNormalization's needs). Keras does not tell callbacks the
            batch size, so pass the one given to ``fit``. Defaults to `None` (unknown).
        reference_data: Data for population statistics: arrays, an ``(x, y)`` tuple, or a
            re-iterable dataset of batches (``tf.data.Dataset``, ``keras.utils.PyDataset``),
            streamed batch by batch, once per trainable BN layer at every logged step; a
            few thousand training samples are plenty. Defaults to `None` (off).
        reference_every: Compute them at step 0 and at every epoch that is a multiple of
            this. Defaults to `1`.
        reference_batch_size: Batch size for array ``reference_data`` (speed and memory
            only; the statistics do not depend on it). Defaults to `256`.
        storage_options: Options for the fsspec filesystem of a URL ``log_dir``, e.g.
            ``{"endpoint_url": "http://minio:9000"}`` for s3fs; fsspec also reads
            ``FSSPEC_<PROTOCOL>_<OPTION>`` environment variables. Never logged. Defaults to
            `None`.

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
        storage_options: dict | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(log_dir, (str, os.PathLike)) or not str(log_dir):
            raise ValueError(f"log_dir must be a directory path or URL; got {log_dir!r}.")
        if log_every_n_batches is not None and (not isinstance(log_every_n_batches, int) or log_every_n_batches < 1):
            raise ValueError(f"log_every_n_batches must be a positive int or None; got {log_every_n_batches!r}.")
        if not isinstance(max_probe_samples, int) or max_probe_samples < 1:
            raise ValueError(f"max_probe_samples must be a positive int; got {max_probe_samples!r}.")
        if not isinstance(reference_every, int) or reference_every < 1:
            raise ValueError(f"reference_every must be a positive int (epochs); got {reference_every!r}.")
        if not isinstance(reference_batch_size, int) or reference_batch_size < 1:
            raise ValueError(f"reference_batch_size must be a positive int; got {reference_batch_size!r}.")
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive int or None; got {batch_size!r}.")
        self.log_dir = os.fspath(log_dir)
        self.storage_options = storage_options
        self.probe_data = probe_data
        self.log_every_n_batches = log_every_n_batches
        self.max_probe_samples = max_probe_samples
        self.batch_size = batch_size
        self.reference_data = reference_data
        self.reference_every = reference_every
        self.reference_batch_size = reference_batch_size
        self._steps = StepCounter()
        self._reset()

    def _reset(self) -> None:
        self._writer: SummaryWriter | None = None
        self._layers: list[FoundLayer] = []
        self._probe: Probe | None = None
        self._replica_probe: ReplicaProbe | None = None
        self._strategy: Any = None  # a tf.distribute strategy with several replicas, if any
        self._population: PopulationStatistics | None = None
        self._transfer: VariableTransfer | None = None
        self._batch_logger: BatchLogger | None = None  # with log_every_n_batches
        self._config: dict | None = None
        self._fit_start: summaries.Values | None = None  # moving statistics at the fit's first step
        self._initial_statistics: dict[str, tuple[float | None, float | None]] = {}  # initializers' constants
        self._epoch_started: float | None = None  # perf_counter when the current epoch's training began
        self._costs = CostAdvisor()

    @property
    def layers(self) -> list[FoundLayer]:
        """The BatchNormalization layers found at the start of the current fit."""
        return list(self._layers)

    @property
    def _iterations_at_begin(self) -> int:
        return self._steps.iterations_at_begin

    # --- hooks: each delegates ------------------------------------------------------------
    def on_train_begin(self, logs: dict | None = None) -> None:
        self._close()
        self._reset()
        self._layers = find_batchnorm_layers(self.model)
        if not self._layers:
            warn(f"bn-inspect: model {self.model.name!r} has no BatchNormalization layer; nothing to log.")
            return
        if not is_writing_process(self.model):
            self._layers = []
            return
        self._prepare()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        writer = self._writer
        if writer is not None and self._steps.start(epoch):
            with skipped_on_error("logging skipped this time"):
                self._log_epoch_state(writer, self._steps.epoch_step(epoch), include_config=True)
        self._epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        steps_per_execution = int(getattr(self.model, "steps_per_execution", 1) or 1)
        steps = self._steps.epoch_ended(steps_per_execution, (self.params or {}).get("steps"))
        if self._batch_logger is not None:
            if self._batch_logger.due(steps):
                self._batch_logger.read(self._steps.global_step)
            self._batch_logger.finish()
        trained = time.perf_counter() - self._epoch_started if self._epoch_started is not None else None
        writer = self._writer
        if writer is None:
            return
        with skipped_on_error("logging skipped this time"):
            self._log_epoch_state(writer, self._steps.epoch_step(epoch + 1))
        if trained is not None:
            with skipped_on_error("logging skipped this time"):
                self._tell_costs(trained, steps)

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        # Counts the steps BN layers update in; optimizer.iterations misses those a loss-scale
        # optimizer skips (mixed precision). Keras runs this hook synchronously in any case, and
        # within-epoch logging reads here, not in on_train_batch_end (see batch_logging.py).
        self._steps.batch_begun(batch)
        if self._batch_logger is not None and self._batch_logger.due(batch):
            self._batch_logger.read(self._steps.global_step_at(batch))

    def on_train_end(self, logs: dict | None = None) -> None:
        self._close()

    # --- setup --------------------------------------------------------------------------------
    def _prepare(self) -> None:
        """Open the writer, build the probe and population statistics, count the steps so far."""
        model = self.model
        location = storage.locate(self.log_dir, self.storage_options)
        existing_step = last_logged_step(location) if storage.is_directory(location) else None
        self._open_writer(location)
        self._strategy = replica_strategy(model)
        self._transfer = VariableTransfer(model, self._layers)
        self._prepare_probe()
        if self.reference_data is not None:
            self._population = PopulationStatistics(
                model, self.reference_data, layers=self._layers, batch_size=self.reference_batch_size
            )
        iterations = self._iterations()
        self._steps.begin(iterations, {found.path: bool(found.layer.trainable) for found in self._layers})
        if self.log_every_n_batches is not None:
            self._batch_logger = BatchLogger(
                self._writer, self._transfer, self.log_every_n_batches, self._momentum_updates, self._costs
            )
        self._config = self._run_config()
        self._initial_statistics = {
            layer.path: layer.initial_statistics for layer in RunConfig.from_record(self._config).layers
        }
        if self._steps.last_step is None and existing_step is not None:
            if iterations > 0:
                self._steps.last_step = existing_step  # a trained model resumes: continue the steps
            else:
                warn(
                    f"bn-inspect: {str(location)!r} already holds bn-inspect data and this model "
                    "has not trained yet, so two runs will be mixed in one series. Give each run its "
                    "own log_dir."
                )

    def _open_writer(self, location: storage.Location) -> None:
        """Open the writer; :class:`bn_inspect.storage.StorageError` (a ``ValueError`` naming the
        fix) when ``log_dir`` is a file or cannot be written."""
        if storage.exists(location) and not storage.is_directory(location):
            raise storage.StorageError(f"bn-inspect: log_dir {str(location)!r} is a file; pass a directory path.")
        self._writer = SummaryWriter(location)

    def _prepare_probe(self) -> None:
        if self.probe_data is None:
            warn(
                "bn-inspect: probe off. Pass probe_data=x[:64] (a fixed batch of training inputs) to "
                "compare training-mode and inference-mode outputs and batch vs moving statistics."
            )
            return
        x = as_probe_batch(self.probe_data, self.max_probe_samples)
        samples = sample_count(x)
        if samples < 2:
            warn(
                f"bn-inspect: probe_data has {samples} sample; in training mode every BatchNormalization "
                "output then equals beta (the batch variance is 0). Use a probe of a few dozen samples."
            )
        noisy = has_training_noise(self.model)
        if noisy:
            warn(
                f"bn-inspect: layers {noisy} add random noise in training mode, so part of the "
                "training-vs-inference output gap on the probe is noise, not BatchNormalization."
            )
        try:
            probe = Probe(self.model, self._layers, x)
            probe.run()
        except Exception as exc:
            expected = getattr(self.model, "input_shape", None)
            got = keras.tree.map_structure(lambda a: f"{a.dtype} {tuple(a.shape)}", x)
            raise UnusableDataError(
                f"bn-inspect: the model cannot run on probe_data (inputs: {got}); the model "
                f"expects inputs of shape {expected}. Pass a batch of training inputs. ({exc})"
            ) from exc
        self._probe = probe
        if self._strategy is not None:  # split the probe across the replicas; off on any failure
            with skipped_on_error("per-replica batch statistics off"):
                replica_probe = ReplicaProbe(probe, self._strategy)
                replica_probe.run()
                self._replica_probe = replica_probe

    def _iterations(self) -> int:
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None:
            return 0
        return _to_int(optimizer.iterations)

    def _run_config(self) -> dict:
        model = self.model
        policy = keras.config.dtype_policy()
        strategy = getattr(model, "distribute_strategy", None)
        return RunConfig(
            schema_version=schema.SCHEMA_VERSION,
            model_name=model.name,
            keras_version=keras.__version__,
            backend=keras.backend.backend(),
            global_dtype_policy=getattr(policy, "name", str(policy)),
            batch_size=self.batch_size,
            steps_per_epoch=(self.params or {}).get("steps"),
            epochs=(self.params or {}).get("epochs"),
            momentum_steps_at_begin=self._iterations_at_begin,
            probe_samples=self._probe.samples if self._probe else 0,
            probe_has_dropout=bool(has_training_noise(model)) if self._probe else False,
            replicas=int(getattr(strategy, "num_replicas_in_sync", 1) or 1),
            replica_probe_shards=self._replica_probe.shard_sizes if self._replica_probe else [],
            layers=tuple(layer_config(found) for found in self._layers),
        ).to_record()

    # --- logging ----------------------------------------------------------------------------
    def _log_epoch_state(self, writer: SummaryWriter, step: int, include_config: bool = False) -> None:
        if include_config and self._config is not None:
            writer.add_config(self._config)
        momentum_updates = self._momentum_updates(self._steps.global_step)
        values = self._add_variables(writer, momentum_updates)
        if include_config or self._fit_start is None:
            self._fit_start = summaries.moving_statistics(values)
        summaries.add_moving_figures(writer, values, self._fit_start, self._initial_statistics)
        momenta, updates = (np.array(column, dtype=np.float64) for column in zip(*momentum_updates.values()))
        writer.add_scalar(schema.SCALAR_MEAN_RESIDUAL, float(np.mean(stats.residual_init_weight(momenta, updates))))
        if self._probe is not None:  # a failing probe must not cost the epoch its variables
            with skipped_on_error(f"probe skipped at step {step}"):
                self._add_probe(writer, values)
        if self._population is not None and step % self.reference_every == 0:
            with skipped_on_error(f"population statistics skipped at step {step}"):
                self._add_population(writer, values)
        writer.write_step(step)
        self._steps.last_step = step

    def _momentum_updates(self, global_step: int) -> dict[str, tuple[float, int]]:
        """Each layer's momentum and the updates it has had at ``global_step``."""
        return {
            found.path: (found.layer.momentum, self._steps.updates(found.path, global_step)) for found in self._layers
        }

    def _add_variables(self, writer: SummaryWriter, momentum_updates: dict[str, tuple[float, int]]) -> summaries.Values:
        assert self._transfer is not None
        snapshot = self._transfer.fetch()
        summaries.add_variables(writer, snapshot, momentum_updates, schema.TIMELINE_EPOCH)
        nonfinite = snapshot.nonfinite
        for found in self._layers:
            if self._strategy is not None:  # an extra: never cost the epoch its variables
                with skipped_on_error(f"replica copies of {found.path!r} unreadable"):
                    summaries.add_replica_copies(writer, found, self._strategy)
            if nonfinite[found.path]:
                warn(
                    f"bn-inspect: layer {found.path!r} has {nonfinite[found.path]} channel(s) with NaN/inf "
                    "or negative moving statistics."
                )
        return snapshot.values

    def _add_probe(self, writer: SummaryWriter, values: summaries.Values) -> None:
        assert self._probe is not None
        result = self._probe.run()
        summaries.add_probe(writer, self._layers, result, values)
        if self._replica_probe is not None:  # an extra: never cost the probe its values
            with skipped_on_error("per-replica batch statistics skipped"):
                summaries.add_replica_batch_stats(writer, self._layers, self._replica_probe.run(), result)

    def _add_population(self, writer: SummaryWriter, values: summaries.Values) -> None:
        assert self._population is not None
        start = time.perf_counter()
        populations = self._population.compute()
        self._costs.population_seconds = time.perf_counter() - start
        summaries.add_population(writer, self._population.order, populations, values)

    def _tell_costs(self, epoch_seconds: float, steps: int) -> None:
        """Warn once each when population statistics or within-epoch logging take a large share
        of training time, naming the ``reference_every`` / ``log_every_n_batches`` that keeps
        them under ``POPULATION_COST_SHARE`` / ``BATCH_LOGGING_COST_SHARE``."""
        advice = []
        if self._population is not None:
            advice.append(
                self._costs.population_advice(
                    epoch_seconds,
                    self._population.passes,
                    self.reference_every,
                    POPULATION_COST_SHARE,
                    POPULATION_COST_FLOOR_SECONDS,
                )
            )
        if self.log_every_n_batches is not None:
            advice.append(
                self._costs.batch_logging_advice(
                    epoch_seconds,
                    steps,
                    self.log_every_n_batches,
                    BATCH_LOGGING_COST_SHARE,
                    BATCH_LOGGING_COST_FLOOR_SECONDS,
                )
            )
        for message in advice:
            if message is not None:
                warn(message)

    def _close(self) -> None:
        if getattr(self, "_batch_logger", None) is not None:
            self._batch_logger.finish()
            self._batch_logger = None
        if getattr(self, "_writer", None) is not None:
            self._writer.close()
            self._writer = None
