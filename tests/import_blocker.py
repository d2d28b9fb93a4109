"""Run Python code in a fresh interpreter where some top-level packages cannot be imported.

Every finder on ``sys.meta_path`` is wrapped so that it does not find the blocked packages:
``import`` then raises the genuine ``ModuleNotFoundError`` and ``importlib.util.find_spec``
returns ``None``, as when the package is not installed, so code that probes for them
(Keras, TensorBoard and PyTorch do, for TensorFlow) takes its "not installed" branch.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterable, Mapping
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent
# Frameworks the reading side (reader, CLI, TensorBoard plugin) must never load.
HEAVY = ("tensorflow", "keras", "jax", "jaxlib", "torch")

_PRELUDE = """
import sys

BLOCKED = frozenset({blocked!r})
assert not [m for m in sys.modules if m.partition(".")[0] in BLOCKED], "blocked package imported at startup"


class _Hiding:  # not a MetaPathFinder subclass: its no-op methods would shadow the finder's
    def __init__(self, finder):
        self._finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            return None
        return self._finder.find_spec(name, path, target)

    def __getattr__(self, attribute):  # invalidate_caches, find_distributions, ...
        return getattr(self._finder, attribute)


sys.meta_path[:] = [_Hiding(finder) for finder in sys.meta_path]
sys.path.insert(0, {tests_dir!r})


def loaded(packages):
    \"\"\"The top-level packages among ``packages`` that are in sys.modules.\"\"\"
    return sorted({{m.partition(".")[0] for m in sys.modules}} & set(packages))
"""


def run_python(
    code: str,
    blocked: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess:
    """Run ``code`` (dedented) in a new interpreter with ``blocked`` packages not importable.

    The code can import the test helpers (``bn_models``) and call ``loaded(packages)``.
    ``env`` entries are added to the current environment.
    """
    prelude = _PRELUDE.format(blocked=sorted(blocked), tests_dir=str(TESTS_DIR))
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=TESTS_DIR.parent,
    )


def check(result: subprocess.CompletedProcess) -> str:
    """``result``'s stdout; fails the test with its output if the process failed."""
    assert result.returncode == 0, f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    return result.stdout
