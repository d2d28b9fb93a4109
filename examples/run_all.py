"""Run every example in order, logging into ``logs/`` at the repository root (``make examples``).

Each example empties its own sub-directory of ``logs/`` first, so reruns do not mix data.
What each example prints is also saved to ``logs/transcripts/<example>.txt``: the
documentation shows those files, so its outputs are always those of a real run.
Run: ``python examples/run_all.py`` from any directory; then ``tensorboard --logdir logs``.
"""

from __future__ import annotations

import contextlib
import io
import sys
import time
from pathlib import Path

import epochs
import frozen_backbone
import initializers
import modes
import recalibrate

# common first: it quiets TensorFlow's start-up logging before Keras imports TensorFlow
from common import LOG_ROOT

EXAMPLES = (epochs, initializers, modes, frozen_backbone, recalibrate)
TRANSCRIPTS = LOG_ROOT / "transcripts"


class _Tee(io.TextIOBase):
    """A text stream that writes to several streams at once."""

    def __init__(self, *streams: io.TextIOBase) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


def run_example(example, transcript: Path) -> float:
    """Run ``example.main`` into ``LOG_ROOT``, echo its output and save it to ``transcript``.

    Returns the run time in seconds.
    """
    transcript.parent.mkdir(parents=True, exist_ok=True)
    captured = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(_Tee(sys.stdout, captured)):
        example.main(LOG_ROOT)
    seconds = time.perf_counter() - start
    transcript.write_text(captured.getvalue().strip("\n") + "\n", encoding="utf-8")
    return seconds


def main() -> None:
    total = time.perf_counter()
    for example in EXAMPLES:
        print(f"\n===== examples/{example.__name__}.py =====")
        seconds = run_example(example, TRANSCRIPTS / f"{example.__name__}.txt")
        print(f"[{example.__name__}: {seconds:.1f} s]")
    print(f"\nAll examples done in {time.perf_counter() - total:.1f} s; logs in {LOG_ROOT}.")
    print(f"See them: tensorboard --logdir {LOG_ROOT}   or   bn-inspect summary {LOG_ROOT}")


if __name__ == "__main__":
    main()
