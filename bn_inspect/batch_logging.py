"""Within-epoch logging (``log_every_n_batches``) that does not hold training up.

Keras runs ``on_train_batch_end`` synchronously as soon as one callback overrides it, and then
converts every step's logs to Python floats, which on JAX makes the host wait for every step
to finish. The inspector therefore reads from ``on_train_batch_begin``: when step ``b`` of an
epoch begins, the variables hold the state after ``b`` steps, so the state after every N-th
step is read there, and the state after the epoch's last step at its end (:meth:`BatchLogger.due`).

On JAX the read is queued behind the running step and its values come back asynchronously;
each is written once it has arrived, at a later logged step, or at the latest at the epoch's
end (:meth:`BatchLogger.finish`), in step order. On TensorFlow it arrives at once. Batch steps
are handed to storage every :data:`FLUSH_SECONDS` and with the epoch's own write at its end, so
an object store gets one object per epoch (or interval), not one per step.

Example:
    >>> import keras, tempfile
    >>> from bn_inspect.cost_advice import CostAdvisor
    >>> from bn_inspect.layers import find_batchnorm_layers
    >>> from bn_inspect.transfer import VariableTransfer
    >>> from bn_inspect.writer import SummaryWriter
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization(name="bn")])
    >>> transfer = VariableTransfer(model, find_batchnorm_layers(model))
    >>> logger = BatchLogger(SummaryWriter(tempfile.mkdtemp()), transfer, 2, lambda step: {"bn": (0.99, step)}, CostAdvisor())
    >>> [logger.due(steps) for steps in (0, 1, 2, 3, 4)]
    [False, False, True, False, True]
    >>> logger.read(global_step=2)
    >>> logger.finish()
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from bn_inspect import schema, summaries
from bn_inspect.cost_advice import CostAdvisor
from bn_inspect.guard import skipped_on_error
from bn_inspect.transfer import PendingSnapshot, VariableTransfer
from bn_inspect.writer import SummaryWriter

# Batch steps reach storage at least this often (and at every epoch's end).
FLUSH_SECONDS = 30.0

MomentumUpdates = Callable[[int], dict[str, tuple[float, int]]]  # global step -> path -> (momentum, updates)


class BatchLogger:
    """Reads the BN variables every ``every`` training steps and writes them on the batch timeline.

    ``momentum_updates(global_step)`` gives each layer's momentum and updates at that step;
    the time spent here goes to ``costs`` (:class:`~bn_inspect.cost_advice.CostAdvisor`).
    """

    def __init__(
        self,
        writer: SummaryWriter,
        transfer: VariableTransfer,
        every: int,
        momentum_updates: MomentumUpdates,
        costs: CostAdvisor,
    ) -> None:
        self.every = every
        self._writer = writer
        self._transfer = transfer
        self._momentum_updates = momentum_updates
        self._costs = costs
        self._on_the_way: deque[tuple[int, PendingSnapshot]] = deque()
        self._flushed = time.monotonic()

    def due(self, steps_in_epoch: int) -> bool:
        """Whether the state after ``steps_in_epoch`` steps of an epoch is logged."""
        return steps_in_epoch > 0 and steps_in_epoch % self.every == 0

    def read(self, global_step: int) -> None:
        """Start reading the state after ``global_step``; write every read that has arrived."""
        start = time.perf_counter()
        with skipped_on_error(f"within-epoch logging skipped at step {global_step}"):
            self._on_the_way.append((global_step, self._transfer.start()))
            while self._on_the_way and self._on_the_way[0][1].ready():
                self._write_oldest()
            if time.monotonic() - self._flushed >= FLUSH_SECONDS:
                self._writer.flush()
                self._flushed = time.monotonic()
        self._costs.batch_logged(time.perf_counter() - start)

    def finish(self) -> None:
        """Write every read still on its way (epoch and fit ends); the next write that flushes, or
        closing the writer, hands them to storage."""
        start = time.perf_counter()
        with skipped_on_error("within-epoch logging skipped"):
            while self._on_the_way:
                self._write_oldest()
        self._costs.batch_logged(time.perf_counter() - start, logs=0)

    def _write_oldest(self) -> None:
        step, pending = self._on_the_way.popleft()
        summaries.add_variables(self._writer, pending.result(), self._momentum_updates(step), schema.TIMELINE_BATCH)
        self._writer.write_step(step, flush=False)
