"""What every benchmark shares: figures with goals, medians, the machine and the versions."""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parent / "out"


@dataclass
class Figure:
    """One measured figure, its goal and whether it meets it (``passed=None``: no goal)."""

    name: str
    value: float
    unit: str = "×"
    goal: str = ""
    passed: bool | None = None
    note: str = ""

    def formatted(self) -> str:
        """The value as RESULTS.md shows it."""
        if self.unit == "×":
            return f"{self.value:.3f}"
        if self.unit == "Δ":
            return f"{self.value:+.3f}"
        if self.unit == "ms":
            return f"{self.value:.1f} ms"
        if self.unit == "s":
            return f"{self.value:.2f} s"
        if self.unit == "MiB":
            return f"{self.value:.0f} MiB"
        return f"{self.value:g} {self.unit}"

    @property
    def verdict(self) -> str:
        return "" if self.passed is None else ("PASS" if self.passed else "MISS")


@dataclass
class Section:
    """The result of one benchmark: its figures, how they were measured, and the details."""

    title: str
    setup: str
    figures: list[Figure] = field(default_factory=list)
    details: list[str] = field(default_factory=list)  # markdown lines (tables, notes)
    limits: list[str] = field(default_factory=list)  # "what limits it" paragraphs
    seconds: float = 0.0

    def to_json(self) -> dict:
        return asdict(self)


def at_most(name: str, value: float, goal: float, unit: str = "×", note: str = "") -> Figure:
    """A figure whose goal is ``value <= goal``."""
    shown = f"{goal:g}" if unit == "×" else f"{goal:g} {unit}"
    return Figure(name, value, unit, f"≤ {shown}", value <= goal, note)


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def directory_bytes(directory: Path) -> int:
    """Bytes of every file under ``directory``."""
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def cpu_seconds() -> tuple[float, float]:
    """CPU seconds used so far by the whole machine (``/proc/stat``) and by this process with
    its finished children: their difference over a run is the other processes' share."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    busy = sum(int(v) for v in fields) - int(fields[3]) - int(fields[4])  # minus idle and iowait
    own = os.times()
    return busy / os.sysconf("SC_CLK_TCK"), own.user + own.system + own.children_user + own.children_system


def machine() -> dict[str, str]:
    """CPU model, cores, memory and OS of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        kib = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        memory = f"{kib / 2**20:.1f} GiB"
    except (OSError, StopIteration):
        memory = "unknown"
    return {"cpu": cpu, "cores": str(os.cpu_count()), "memory": memory, "os": platform.platform()}


def versions() -> dict[str, str]:
    """Versions of Python and of the packages the figures depend on."""
    found = {"python": platform.python_version()}
    for package in (
        "bn-inspect",
        "keras",
        "tensorflow-cpu",
        "tensorflow",
        "tensorboard",
        "tensorboard-data-server",
        "numpy",
        "playwright",
    ):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of a process and all its descendants, in MiB (Linux ``/proc``);
    ``field="VmHWM"`` gives each process's peak instead."""
    total_kib = 0
    for process in [pid, *descendants(pid)]:
        try:
            status = Path(f"/proc/{process}/status").read_text()
        except OSError:
            continue
        total_kib += next((int(line.split()[1]) for line in status.splitlines() if line.startswith(field)), 0)
    return total_kib / 1024


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children, ...)."""
    found, queue = [], [pid]
    while queue:
        parent = queue.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        found += [int(c) for c in children]
        queue += [int(c) for c in children]
    return found
