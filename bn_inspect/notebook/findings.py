"""``diagnose(logdir)``: the doctor's findings as a plain sequence that notebooks display as a
table.

Example:
    >>> findings = diagnose("logs")                          # doctest: +SKIP
    >>> [f.id for f in findings if f.severity == "error"]    # doctest: +SKIP
    ['initializer-dominant']
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from bn_inspect import doctor
from bn_inspect.notebook.displays import findings_table
from bn_inspect.reader import load_logdir


class Findings(tuple):
    """The doctor's findings (:class:`bn_inspect.doctor.Finding`), most severe first: a tuple
    in code, a table (severity, run, layer, what, fix) in a notebook. ``runs`` names the runs
    checked."""

    runs: tuple[str, ...]

    def __new__(cls, findings: Iterable[doctor.Finding], runs: Iterable[str]) -> Findings:
        instance = super().__new__(cls, findings)
        instance.runs = tuple(runs)
        return instance

    def _repr_html_(self) -> str:
        return findings_table(self, self.runs)

    def __str__(self) -> str:
        return doctor.format_report(self, self.runs)


def diagnose(logdir: str | os.PathLike) -> Findings:
    """What the doctor finds in every run under ``logdir`` (as ``bn-inspect doctor`` and the
    tab's Findings panel), most severe first.

    Args:
        logdir: the directory holding one subdirectory of event files per run.

    Returns:
        A tuple of :class:`bn_inspect.doctor.Finding`, displayed as a table in notebooks
        (``print`` gives the text report).

    Raises:
        FileNotFoundError: ``logdir`` is not a directory.

    Example:
        >>> findings = diagnose("logs")                           # doctest: +SKIP
        >>> findings[0].severity, findings[0].run                 # doctest: +SKIP
        ('error', 'epochs/5')
    """
    runs = load_logdir(logdir)
    return Findings(doctor.diagnose(runs), runs)
