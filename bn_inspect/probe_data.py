"""Turn what users pass as ``probe_data`` into one fixed batch of model inputs.

Accepted: an array, a list/dict of arrays (multi-input models), an ``(x, y)`` or
``(x, y, sample_weight)`` tuple, or an iterable of such batches (``tf.data.Dataset``,
a generator, a ``keras.utils.PyDataset``): batches are taken until ``max_samples``.

Example:
    >>> import numpy as np
    >>> x = as_probe_batch((np.zeros((4, 3)), np.ones(4)), max_samples=64)
    >>> x.shape, x.dtype
    ((4, 3), dtype('float32'))
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np


class UnusableDataError(ValueError):
    """``probe_data`` or ``reference_data`` cannot be used; the message says what to pass."""


ProbeDataError = UnusableDataError  # the former name, kept for code that catches it


def _to_array(value: Any, what: str) -> np.ndarray:
    try:
        array = np.asarray(keras.ops.convert_to_numpy(value))
    except Exception as exc:
        raise UnusableDataError(
            f"{what} must be numeric arrays (numpy, tensors), an (x, y) tuple or a dataset of "
            f"batches; got {type(value).__name__}: {exc}"
        ) from exc
    if array.dtype.kind not in "biuf":  # bool, int, uint, float; not complex, str, object, dates
        raise UnusableDataError(
            f"{what} must hold numbers (bool, integer or float); got dtype {array.dtype}. Pass the "
            "model's numeric inputs."
        )
    if np.issubdtype(array.dtype, np.floating):  # as fit does; integers go in as they are
        array = array.astype(keras.backend.floatx(), copy=False)
    if array.ndim == 0:
        raise UnusableDataError(
            f"{what} must be arrays with a batch dimension; got a scalar. Pass numpy arrays of samples "
            "(np.asarray(...) of a nested list)."
        )
    return array


def _inputs_of(batch: Any) -> Any:
    """The model inputs of a batch: ``x`` of an ``(x, y[, w])`` tuple, else the batch."""
    if isinstance(batch, tuple) and 1 <= len(batch) <= 3:
        return batch[0]
    return batch


def _is_batch_structure(value: Any) -> bool:
    if isinstance(value, dict):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_batch_structure(v) or hasattr(v, "shape") for v in value)
    return hasattr(value, "shape") and hasattr(value, "dtype")


def _structure_to_arrays(x: Any, what: str) -> Any:
    return keras.tree.map_structure(lambda v: _to_array(v, what), x)


def _concat(batches: list, max_samples: int) -> Any:
    def cat(*parts: np.ndarray) -> np.ndarray:
        return np.concatenate(parts, axis=0)[:max_samples]

    return keras.tree.map_structure(cat, *batches)


def as_probe_batch(data: Any, max_samples: int, what: str = "probe_data") -> Any:
    """One batch of model inputs (numpy, floats as ``floatx``) with at most ``max_samples``.

    Raises :class:`UnusableDataError` for unsupported types and for arrays larger than
    ``max_samples`` (the probe runs as one batch in memory).
    """
    if _is_batch_structure(data):
        x = _structure_to_arrays(_inputs_of(data), what)
        samples = {int(a.shape[0]) for a in keras.tree.flatten(x)}
        if len(samples) != 1:
            raise UnusableDataError(f"{what}: all inputs need the same number of samples; got {sorted(samples)}.")
        count = samples.pop()
        if count == 0:
            raise UnusableDataError(f"{what} has no samples; pass a batch of training inputs.")
        if count > max_samples:
            raise UnusableDataError(
                f"{what} has {count} samples, more than max_probe_samples={max_samples}; the probe "
                f"runs them as one batch every epoch. Pass {what}=x[:{max_samples}] or raise "
                "max_probe_samples."
            )
        return x
    if isinstance(data, (str, bytes)) or not hasattr(data, "__iter__"):
        raise UnusableDataError(
            f"{what} of type {type(data).__name__} is not supported; pass an array, an (x, y) "
            "tuple, or a dataset/iterable of such batches."
        )
    batches, taken = [], 0
    try:
        for batch in data:
            x = _structure_to_arrays(_inputs_of(batch), what)
            batches.append(x)
            taken += int(keras.tree.flatten(x)[0].shape[0])
            if taken >= max_samples:
                break
    except UnusableDataError:
        raise
    except Exception as exc:
        raise UnusableDataError(
            f"{what}: reading its batches failed ({type(exc).__name__}: {exc}); pass arrays or a "
            "dataset that yields numeric (x, y) batches."
        ) from exc
    if not batches:
        raise UnusableDataError(f"{what} is an empty dataset; pass at least one batch.")
    return _concat(batches, max_samples)
