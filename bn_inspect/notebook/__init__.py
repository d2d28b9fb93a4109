"""bn-inspect in notebooks: :func:`show` (the BN Inspect views as a widget, needs the
``notebook`` extra: anywidget) and :func:`diagnose` (the doctor's findings as a table).

Example:
    >>> import bn_inspect
    >>> bn_inspect.show("logs")        # doctest: +SKIP
    >>> bn_inspect.diagnose("logs")    # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from bn_inspect.notebook.findings import Findings, diagnose

__all__ = ["Findings", "InspectorWidget", "diagnose", "show"]


def __getattr__(name: str) -> Any:
    if name in ("show", "InspectorWidget"):  # anywidget is imported only by whoever shows the widget
        try:
            from bn_inspect.notebook import widget
        except ImportError as error:
            if error.name not in ("anywidget", "traitlets", "ipywidgets"):
                raise
            raise ImportError(
                f'bn_inspect.{name} needs anywidget ({error}); install it with: pip install "bn-inspect[notebook]"'
            ) from error
        return getattr(widget, name)
    raise AttributeError(f"module 'bn_inspect.notebook' has no attribute {name!r}")
