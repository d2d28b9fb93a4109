"""Stream the model inputs of ``reference_data`` batch by batch, as often as needed.

Population statistics read the data once per trainable BatchNormalization layer (and again
at every logged epoch), so the data must be re-iterable, and it is never held in memory
whole: arrays are sliced into batches, datasets are read batch by batch as they come.

Accepted: an array, a list/dict of arrays (multi-input models) or an ``(x, y)`` /
``(x, y, sample_weight)`` tuple of them; or a re-iterable dataset of such batches: a
``tf.data.Dataset`` or a ``keras.utils.PyDataset``.

Example:
    >>> import numpy as np
    >>> data = ReferenceData((np.zeros((5, 3)), np.ones(5)), batch_size=2)
    >>> [x.shape[0] for x in data], data.num_batches
    ([2, 2, 1], 3)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import keras
import numpy as np

from bn_inspect.probe_data import UnusableDataError, _inputs_of, _is_batch_structure, _structure_to_arrays


def _samples(x: Any) -> int:
    return int(np.shape(keras.tree.flatten(x)[0])[0])


def _truncate(x: Any, count: int) -> Any:
    return keras.tree.map_structure(lambda a: a[:count], x)


def _infinite(data: Any) -> bool:
    if callable(getattr(data, "cardinality", None)):  # tf.data.Dataset: -1 means infinite
        return int(data.cardinality()) == -1
    if isinstance(data, keras.utils.PyDataset):
        try:
            return data.num_batches is None
        except NotImplementedError:  # no length: PyDataset iterates forever
            return True
    return False


class ReferenceData:
    """Re-iterable stream of model-input batches (numpy, floats as ``floatx``).

    Args:
        data: Arrays (sliced into batches of ``batch_size``) or a re-iterable dataset of
            batches (used as batched; the last batch may be smaller).
        batch_size: Batch size for array data. Defaults to `128`.
        num_samples: Read at most this many samples per pass (the last batch is cut).
            Defaults to `None` (all of ``data``; required for an infinite dataset).
        what: Name of the argument, for error messages. Defaults to `"reference_data"`.
    """

    def __init__(
        self, data: Any, batch_size: int = 128, num_samples: int | None = None, what: str = "reference_data"
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int; got {batch_size!r}.")
        if num_samples is not None and (not isinstance(num_samples, int) or num_samples < 1):
            raise ValueError(f"num_samples must be a positive int or None; got {num_samples!r}.")
        self.batch_size, self.num_samples, self.what = batch_size, num_samples, what
        self._arrays: Any = None
        self._data: Any = None
        if _is_batch_structure(data):
            x = _inputs_of(data)
            counts = {_samples(a) for a in keras.tree.flatten(x)}
            if len(counts) != 1:
                raise UnusableDataError(f"{what}: all inputs need the same number of samples; got {sorted(counts)}.")
            self._arrays = x
            self._array_samples = counts.pop()
            if self._array_samples == 0:
                raise UnusableDataError(f"{what} has no samples; pass at least one.")
        elif isinstance(data, (str, bytes)) or not hasattr(data, "__iter__"):
            raise UnusableDataError(
                f"{what} of type {type(data).__name__} is not supported; pass arrays, an (x, y) tuple, "
                "a tf.data.Dataset or a keras.utils.PyDataset."
            )
        elif iter(data) is data:
            raise UnusableDataError(
                f"{what} is a one-shot iterator ({type(data).__name__}), but it is read once per "
                "BatchNormalization layer; pass a re-iterable: arrays, a tf.data.Dataset (e.g. "
                "tf.data.Dataset.from_generator) or a keras.utils.PyDataset."
            )
        elif num_samples is None and _infinite(data):
            raise UnusableDataError(f"{what} is an infinite dataset; pass num_samples to bound each pass.")
        else:
            self._data = data

    @property
    def num_batches(self) -> int | None:
        """Batches per pass, when known without reading the data."""
        if self._arrays is not None:
            samples = min(self._array_samples, self.num_samples or self._array_samples)
            return -(-samples // self.batch_size)
        try:
            batches = len(self._data)
        except TypeError:
            return None
        return None if self.num_samples is not None else batches

    def __iter__(self) -> Iterator[Any]:
        if self._arrays is not None:
            yield from self._iter_arrays()
        else:
            yield from self._iter_batches()

    def _iter_arrays(self) -> Iterator[Any]:
        end = min(self._array_samples, self.num_samples or self._array_samples)
        for start in range(0, end, self.batch_size):
            stop = min(start + self.batch_size, end)
            yield _structure_to_arrays(
                keras.tree.map_structure(lambda a, start=start, stop=stop: a[start:stop], self._arrays), self.what
            )

    def _iter_batches(self) -> Iterator[Any]:
        taken = 0
        for batch in self._data:
            x = _structure_to_arrays(_inputs_of(batch), self.what)
            count = _samples(x)
            if self.num_samples is not None and taken + count > self.num_samples:
                x, count = _truncate(x, self.num_samples - taken), self.num_samples - taken
            if count:
                yield x
            taken += count
            if self.num_samples is not None and taken >= self.num_samples:
                return
        if taken == 0:
            raise UnusableDataError(f"{self.what} is an empty dataset; pass at least one batch.")
