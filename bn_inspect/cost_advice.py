"""What the inspector's optional work costs, and the advice it gives once when that is too much.

Two kinds of work grow with a setting: population statistics (one inference pass over
``reference_data`` per trainable BN layer, every ``reference_every`` epochs) and within-epoch
logging (every ``log_every_n_batches`` training steps). :class:`CostAdvisor` times both; at
an epoch's end it returns, once per kind and fit, a message naming the setting that keeps
the work under a share of the training time.

Example:
    >>> advisor = CostAdvisor()
    >>> for _ in range(100):  # a logged step of 1 ms after each of 100 training steps
    ...     advisor.batch_logged(seconds=0.001)
    >>> print(advisor.batch_logging_advice(epoch_seconds=0.6, steps=100, every=1, share=0.1, floor_seconds=0.0))  # doctest: +NORMALIZE_WHITESPACE
    bn-inspect: within-epoch logging took 0.10 s (100 logged step(s), 1.00 ms each), 20% of a 0.50 s
    training epoch of 100 steps, every 1 batch(es). Pass log_every_n_batches=2 to keep it under 10% of
    training time.
"""

from __future__ import annotations

from bn_inspect.stats import interval_for_share


class CostAdvisor:
    """Times population statistics and within-epoch logging over one fit; advises once each."""

    def __init__(self) -> None:
        self.population_seconds: float | None = None  # the latest population statistics' duration
        self._batch_seconds = 0.0  # within-epoch logging in the current epoch
        self._batch_logs = 0
        self._told: set[str] = set()

    def batch_logged(self, seconds: float, logs: int = 1) -> None:
        """Within-epoch logging of ``logs`` step(s) (0: finishing earlier ones) took ``seconds``."""
        self._batch_seconds += seconds
        self._batch_logs += logs

    def population_advice(
        self, epoch_seconds: float, passes: int, every: int, share: float, floor_seconds: float
    ) -> str | None:
        """The advice when the latest population statistics took more than ``share`` of a
        training epoch of ``epoch_seconds`` (and at least ``floor_seconds``), else None."""
        cost = self.population_seconds
        if "population" in self._told or cost is None or epoch_seconds <= 0:
            return None
        needed = interval_for_share(cost, epoch_seconds, share)
        if needed <= every or cost < floor_seconds:
            return None
        self._told.add("population")
        return (
            f"bn-inspect: population statistics took {cost:.1f} s ({passes} inference "
            f"pass(es) over reference_data, one per trainable BN layer), {cost / epoch_seconds:.0%} of a "
            f"{epoch_seconds:.1f} s training epoch, every {every} epoch(s). Pass "
            f"reference_every={needed} (or a smaller reference_data) to keep them under "
            f"{share:.0%} of training time."
        )

    def batch_logging_advice(
        self, epoch_seconds: float, steps: int, every: int, share: float, floor_seconds: float
    ) -> str | None:
        """At an epoch's end (``epoch_seconds`` of wall clock, ``steps`` training steps, logging
        included): the advice when within-epoch logging took more than ``share`` of the
        training time (and at least ``floor_seconds``), else None. Starts the next epoch's count."""
        seconds, logs = self._batch_seconds, self._batch_logs
        self._batch_seconds, self._batch_logs = 0.0, 0
        training = epoch_seconds - seconds
        if "batch" in self._told or logs == 0 or steps <= 0 or training <= 0 or seconds < floor_seconds:
            return None
        per_log = seconds / logs
        needed = interval_for_share(per_log * steps, training, share)  # logging every step costs per_log * steps
        if needed <= every:
            return None
        self._told.add("batch")
        return (
            f"bn-inspect: within-epoch logging took {seconds:.2f} s ({logs} logged step(s), "
            f"{1000 * per_log:.2f} ms each), {seconds / training:.0%} of a {training:.2f} s training epoch of "
            f"{steps} steps, every {every} batch(es). Pass log_every_n_batches={needed} to keep it under "
            f"{share:.0%} of training time."
        )
