"""Plain-text tables with aligned columns, for the CLI and the examples.

Example:
    >>> print(format_table(["run", "epochs"], [["a", 5], ["long_name", 50]]))
    run        epochs
    ---------  ------
    a               5
    long_name      50
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

MISSING = "-"


def format_cell(value: Any, digits: int = 4) -> str:
    """A cell as text: floats with ``digits`` significant digits, ``None``/NaN as ``-``.

    Example:
        >>> [format_cell(v) for v in (0.7249803, 1600, None, float("nan"), "x")]
        ['0.725', '1600', '-', '-', 'x']
    """
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:  # NaN
            return MISSING
        return f"{value:.{digits}g}"
    return str(value)


def _is_numeric(value: Any) -> bool:
    """Numbers and pre-formatted number strings (``"0.4610"``) are right-aligned."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 4) -> str:
    """Render ``rows`` under ``headers``; numeric columns are right-aligned, others left.

    Floats get ``digits`` significant digits; pass pre-formatted strings for other formats.
    """
    cells = [[format_cell(v, digits) for v in row] for row in rows]
    numeric = [bool(rows) and all(_is_numeric(row[i]) or row[i] is None for row in rows) for i in range(len(headers))]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(row) for row in cells])
