"""Run every example in order, logging into ``logs/`` at the repository root (``make examples``).

Each example empties its own sub-directory of ``logs/`` first, so reruns do not mix data.
Run: ``python examples/run_all.py`` from any directory; then ``tensorboard --logdir logs``.
"""

from __future__ import annotations

import time

import epochs
import frozen_backbone
import initializers
import modes
import recalibrate

# common first: it quiets TensorFlow's start-up logging before Keras imports TensorFlow
from common import LOG_ROOT

EXAMPLES = (epochs, initializers, modes, frozen_backbone, recalibrate)


def main() -> None:
    total = time.perf_counter()
    for example in EXAMPLES:
        print(f"\n===== examples/{example.__name__}.py =====")
        start = time.perf_counter()
        example.main(LOG_ROOT)
        print(f"[{example.__name__}: {time.perf_counter() - start:.1f} s]")
    print(f"\nAll examples done in {time.perf_counter() - total:.1f} s; logs in {LOG_ROOT}.")
    print(f"See them: tensorboard --logdir {LOG_ROOT}   or   bn-inspect summary {LOG_ROOT}")


if __name__ == "__main__":
    main()
