"""The inspector's never-crash policy in one place: warnings, and a guard that turns a failure
while logging into a warning, so training goes on unchanged.

Example:
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     with skipped_on_error("probe skipped at step 3"):
    ...         raise RuntimeError("out of memory")
    >>> str(caught[0].message)
    'bn-inspect: probe skipped at step 3: RuntimeError: out of memory'
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator


class BatchNormInspectorWarning(UserWarning):
    """Something about the inspected model or data the user should know; training goes on."""


def warn(message: str, stacklevel: int = 3) -> None:
    """Issue ``message`` as a :class:`BatchNormInspectorWarning`."""
    warnings.warn(message, BatchNormInspectorWarning, stacklevel=stacklevel)


@contextlib.contextmanager
def skipped_on_error(what: str) -> Iterator[None]:
    """Run the block; if it raises, warn ``bn-inspect: {what}: {error}`` and go on."""
    try:
        yield
    except Exception as exc:  # the inspector must not break training
        warn(f"bn-inspect: {what}: {type(exc).__name__}: {exc}", stacklevel=4)
