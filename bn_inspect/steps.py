"""Which step a logged state belongs to, and how many updates each BN layer has had.

Two clocks: the *logged step* of epoch-level states (step 0 = before the first epoch, step k =
after epoch k, continued across fits and ``initial_epoch``), and the *global step* (training
steps the model has run: the optimizer's count when the fit began plus the steps of this fit).

Example:
    >>> steps = StepCounter()
    >>> steps.begin(iterations=10, trainable={"bn": True, "frozen_bn": False})
    >>> steps.start(epoch=0)
    True
    >>> steps.batch_begun(0); steps.batch_begun(1); steps.epoch_ended(steps_per_execution=1, planned=2)
    2
    >>> steps.global_step, steps.updates("bn", steps.global_step), steps.updates("frozen_bn", 12)
    (12, 12, 0)
"""

from __future__ import annotations


class StepCounter:
    """Counts the steps of one inspector over its fits; :meth:`begin` starts each fit."""

    def __init__(self) -> None:
        self.last_step: int | None = None  # the latest logged step, kept across fits
        self.begin(0, {})

    def begin(self, iterations: int, trainable: dict[str, bool]) -> None:
        """A fit begins on a model whose optimizer has run ``iterations`` steps; ``trainable``
        says, per layer path, whether that layer updated in them."""
        self.iterations_at_begin = iterations
        self._updates_at_begin = {path: iterations if flag else 0 for path, flag in trainable.items()}
        self._trainable = dict(trainable)
        self._offset = 0  # logged step - epoch index, when a resumed run continues its steps
        self._started = False
        self._steps_done = 0  # training steps of this fit's finished epochs
        self._batch_begun: int | None = None  # in-epoch index of the latest step begun

    def start(self, epoch: int) -> bool:
        """True at the first epoch of the fit (then log step 0); fixes the step offset."""
        if self._started:
            return False
        self._started = True
        if self.last_step is not None and self.last_step > epoch:
            self._offset = self.last_step - epoch
        return True

    def epoch_step(self, epoch: int) -> int:
        """The logged step of the state before epoch ``epoch`` (after epoch ``epoch - 1``)."""
        return epoch + self._offset

    def batch_begun(self, batch: int) -> None:
        """Training step ``batch`` of the current epoch begins."""
        self._batch_begun = batch

    def epoch_ended(self, steps_per_execution: int, planned: int | None) -> int:
        """Add the steps of the epoch that just ended (at most ``planned``, when known); return them."""
        if self._batch_begun is None:
            return 0
        steps = self._batch_begun + max(1, steps_per_execution)
        steps = min(steps, planned) if planned else steps
        self._steps_done += steps
        self._batch_begun = None
        return steps

    @property
    def global_step(self) -> int:
        """Training steps the model has run: before this fit and in its finished epochs."""
        return self.iterations_at_begin + self._steps_done

    def global_step_at(self, batch: int) -> int:
        """The global step when training step ``batch`` (0-based) of the current epoch begins."""
        return self.global_step + batch

    def updates(self, path: str, global_step: int) -> int:
        """Moving-statistics updates layer ``path`` has had at ``global_step`` (frozen: none)."""
        grown = global_step - self.iterations_at_begin if self._trainable[path] else 0
        return self._updates_at_begin[path] + grown
