"""Shared bits of the benchmark scripts: thread pinning, machine facts, BENCHMARKS.md sections."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from datetime import date
from pathlib import Path


def pin_threads(n: int = 1) -> None:
    """Set BLAS/OpenMP/torch threads explicitly (call before heavy imports where possible)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:  # pragma: no cover
        pass


def machine() -> str:
    """One line describing this machine: CPU model, cores, memory, Python."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}"


def git_rev() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_section(path: str | Path, name: str, body: str) -> None:
    """Replace (or append) the block between ``<!-- BEGIN name -->`` and ``<!-- END name -->``.

    Each benchmark owns one section of BENCHMARKS.md, so scripts never overwrite each other.
    """
    path = Path(path)
    text = path.read_text() if path.exists() else (
        "# Benchmarks\n\nEvery number here comes from a script in `benchmarks/`; "
        "each section names its date, machine and command.\n")
    block = f"<!-- BEGIN {name} -->\n{body.rstrip()}\n<!-- END {name} -->"
    pattern = re.compile(rf"<!-- BEGIN {re.escape(name)} -->.*?<!-- END {re.escape(name)} -->",
                         re.S)
    text = pattern.sub(lambda _m: block, text) if pattern.search(text) else (
        text.rstrip() + "\n\n" + block + "\n")
    path.write_text(text)


def header(title: str, command: str) -> str:
    return (f"## {title}\n\nDate: {date.today().isoformat()} · commit {git_rev()} · "
            f"machine: {machine()}\n\nCommand: `{command}`\n")
