"""Shared pieces of the benchmarks: result tables, percentiles, CPU accounting, C builds.

Every benchmark returns a :class:`Table` (title, columns, rows, notes); the CLI prints it
with rich and can also write it as JSON. Nothing here asserts a timing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = [
    "BenchError",
    "Table",
    "build_c",
    "cache_dir",
    "cpu_seconds",
    "percentile",
    "pin_self",
    "print_table",
    "python",
    "taskset",
]


class BenchError(RuntimeError):
    """A benchmark cannot run here (missing tool, failed reference); the message says why."""


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict[str, object] = field(default_factory=dict)  # raw numbers, for --json

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)

    def to_markdown(self) -> str:
        lines = [
            "| " + " | ".join(self.columns) + " |",
            "|" + "|".join("---" for _ in self.columns) + "|",
        ]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)


def print_table(table: Table) -> None:
    from rich.console import Console
    from rich.table import Table as RichTable

    rich_table = RichTable(title=table.title)
    for i, column in enumerate(table.columns):
        rich_table.add_column(column, justify="left" if i < 2 else "right")
    for row in table.rows:
        rich_table.add_row(*row)
    console = Console(width=None if sys.stdout.isatty() else 140)
    console.print(rich_table)
    for note in table.notes:
        console.print(f"  - {note}", highlight=False)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process and its threads (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14, 15)


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    path = base / "ztp-bench"
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_c(name: str, source: str, libs: tuple[str, ...] = ()) -> Path:
    """Compile ``source`` once (cached by content hash) and return the executable's path.

    Raises:
        BenchError: no C compiler, or the headers/libraries are missing (the message names
            the Debian packages to install: build-essential, libssl-dev).
    """
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise BenchError("no C compiler: apt-get install build-essential")
    digest = hashlib.sha256(source.encode() + " ".join(libs).encode()).hexdigest()[:16]
    exe = cache_dir() / f"{name}-{digest}"
    if exe.exists():
        return exe
    src = cache_dir() / f"{name}-{digest}.c"
    src.write_text(source)
    cmd = [cc, "-O2", "-Wall", "-o", str(exe), str(src), "-lpthread", *libs]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        hint = " (apt-get install libssl-dev)" if "openssl" in proc.stderr else ""
        if "gnutls" in proc.stderr:
            hint = " (apt-get install libgnutls28-dev)"
        raise BenchError(f"cannot compile {name}{hint}:\n{proc.stderr[-2000:]}")
    return exe


def taskset(cpu: int | None) -> list[str]:
    """Command prefix pinning a child to one CPU (empty when not pinning)."""
    if cpu is None or shutil.which("taskset") is None:
        return []
    return ["taskset", "-c", str(cpu)]


def pin_self(cpu: int | None) -> None:
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})


def python() -> str:
    return sys.executable
