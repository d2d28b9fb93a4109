"""bn-inspect: see what Keras BatchNormalization layers do, epoch by epoch.

``BatchNormInspector`` (the Keras callback) imports Keras on first use; ``load_logdir`` and
the rest of the reading side never import Keras or TensorFlow; ``show`` (the notebook widget)
imports anywidget on first use.

Example:
    >>> from bn_inspect import load_logdir
    >>> runs = load_logdir("logs")  # doctest: +SKIP
    >>> [slot.name for slot in align(runs).slots]  # BN layers matched across runs  # doctest: +SKIP
    ['sequential/batch_normalization']
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bn_inspect.alignment import Alignment, Slot, align
from bn_inspect.reader import RunData, Series, load_logdir, to_dataframe

if TYPE_CHECKING:  # the lazy names below, for type checkers and the generated API reference
    from bn_inspect.callback import BatchNormInspector, BatchNormInspectorWarning
    from bn_inspect.notebook.findings import diagnose
    from bn_inspect.notebook.widget import show
    from bn_inspect.population import population_statistics
    from bn_inspect.recalibration import recalibrate

__version__ = "0.1.0"
__all__ = [
    "Alignment",
    "BatchNormInspector",
    "BatchNormInspectorWarning",
    "RunData",
    "Series",
    "Slot",
    "align",
    "diagnose",
    "load_logdir",
    "population_statistics",
    "recalibrate",
    "show",
    "to_dataframe",
]

_LAZY = {
    "BatchNormInspector": "bn_inspect.callback",
    "BatchNormInspectorWarning": "bn_inspect.callback",
    "population_statistics": "bn_inspect.population",
    "recalibrate": "bn_inspect.recalibration",
    "diagnose": "bn_inspect.notebook",
    "show": "bn_inspect.notebook",  # needs the notebook extra (anywidget)
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'bn_inspect' has no attribute {name!r}")
