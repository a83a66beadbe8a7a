"""Helpers shared by CLI subcommands: data paths, error reporting, tables."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

console = Console(width=None if Console().is_terminal else 160)

#: Where the shared data sets live relative to the project root (``../shared/data``).
DEFAULT_DATA_ROOT = Path(__file__).resolve().parents[3].parent / "shared" / "data"


def find_table(folder: Path, name: str) -> Path | None:
    """``folder/name.parquet`` or ``folder/name.csv``, whichever exists first (else None)."""
    for ext in (".parquet", ".csv"):
        if (folder / f"{name}{ext}").exists():
            return folder / f"{name}{ext}"
    return None


def fail(message: str, code: int = 2) -> None:
    """Print a one-line error and exit non-zero (no traceback)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def parse_list(value: str, *, what: str, allowed: list[str] | None = None) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        fail(f"{what}: give at least one value")
    if allowed is not None:
        bad = [v for v in items if v not in allowed]
        if bad:
            fail(f"{what}: unknown value(s) {bad}; choose from {allowed}")
    return items


def parse_ks(value: str) -> list[int]:
    try:
        ks = [int(v) for v in parse_list(value, what="--k")]
    except ValueError:
        fail(f"--k: expected comma-separated positive integers, got {value!r}")
    if any(k < 1 for k in ks):
        fail(f"--k: every k must be >= 1, got {value!r}")
    return ks


#: ``--backend``, ``--ray-address`` and ``--num-workers`` of the commands that run on Ray.
BACKEND_HELP = "local (this process) or ray (reelpick.distributed; needs reelpick[ray])"
RAY_ADDRESS_HELP = ("Ray cluster for --backend ray: 'auto' (the cluster of `ray start` on "
                    "this machine), 'host:6379' or 'ray://host:10001'; default: RAY_ADDRESS, "
                    "else a private local Ray for this command")
NUM_WORKERS_HELP = "Ray workers (default: the cluster's CPUs)"


def check_backend_option(backend: str) -> None:
    """Exit with a clear message unless ``backend`` is ``local`` or ``ray``."""
    if backend not in ("local", "ray"):
        fail(f"--backend: expected 'local' or 'ray', got {backend!r}")
