"""World simulator throughput: impressions per minute on one core.

Runs the ``default`` preset under the uniform policy (simulation alone, then writing the logs as
Parquet), and one batch of the ``large`` preset, and writes the ``world`` section of
BENCHMARKS.md. Usage::

    .venv/bin/python benchmarks/bench_world.py [--visits 200000] [--out BENCHMARKS.md]
"""

from __future__ import annotations

import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import header, pin_threads, write_section  # noqa: E402

pin_threads(1)

from reelpick.policies import UniformPolicy  # noqa: E402
from reelpick.world import World, WorldConfig  # noqa: E402
from reelpick.world.log import WRITE_CHUNK_ROWS  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--visits", type=int, default=200_000)
    ap.add_argument("--out", default="BENCHMARKS.md")
    args = ap.parse_args()
    rows = []

    t0 = time.perf_counter()
    world = World(WorldConfig.preset("default"), seed=0)
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    log = world.simulate(UniformPolicy(), args.visits)
    t_sim = time.perf_counter() - t0
    n = log.n_impressions
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        log.write(tmp)
        t_write = time.perf_counter() - t0
    t_total = time.perf_counter() - T_START
    cpu_total = time.process_time()  # user + system time of the whole process so far
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    rows.append(("default, uniform: simulate (arrays, truth included)", n, t_sim))
    rows.append(("default, uniform: simulate + write Parquet (3 logs)", n, t_sim + t_write))
    rows.append(("default, uniform: whole process (start, imports, world, sim, write)", n,
                 t_total))
    print(f"default: build {t_build:.2f}s sim {t_sim:.2f}s write {t_write:.2f}s "
          f"total {t_total:.2f}s (CPU {cpu_total:.2f}s, peak {peak_gib:.2f} GiB) for {n:,} "
          "impressions", flush=True)
    del log

    # large preset over a one-day horizon: a few batches (UTC days -1, 0, 1 for the time zones)
    t0 = time.perf_counter()
    large = World(WorldConfig.preset("large", days=1), seed=0)
    t_build_large = time.perf_counter() - t0
    t0 = time.perf_counter()
    large.dynamics.tables(0)
    t_tables = time.perf_counter() - t0
    batch = large.config.batch_size
    t0 = time.perf_counter()
    log_l = large.simulate(UniformPolicy(), 4 * batch)
    t_large = time.perf_counter() - t0
    rows.append((f"large (days=1), uniform: {4 * batch:,} visits, 3 day tables built",
                 log_l.n_impressions, t_large))
    print(f"large: build {t_build_large:.2f}s, day tables {t_tables:.2f}s, "
          f"{log_l.n_impressions:,} impressions in {t_large:.2f}s", flush=True)

    table = ["| case | impressions | seconds | M impressions / min |", "|---|---:|---:|---:|"]
    for name, k, t in rows:
        table.append(f"| {name} | {k:,} | {t:.2f} | {k / t * 60 / 1e6:.1f} |")
    note = (f"\nOne thread (`pin_threads(1)`). World build: default {t_build:.2f} s, large "
            f"{t_build_large:.2f} s; large day tables (built once per simulated day) "
            f"{t_tables:.2f} s. Whole process up to the written default logs: CPU time (user + "
            f"system) {cpu_total:.2f} s, peak memory {peak_gib:.2f} GiB (the arrays of the log "
            f"are kept in RAM; Parquet is written in chunks of {WRITE_CHUNK_ROWS:,} impressions). "
            "Target: >= 10 M impressions / min for the default preset "
            "under the uniform policy, whole process included.\n")
    body = header("World simulator",
                  f"{_python()} benchmarks/bench_world.py "
                  f"--visits {args.visits}")
    write_section(args.out, "world", body + "\n" + "\n".join(table) + "\n" + note)
    print("\n".join(table))


def _python() -> str:
    """The interpreter as a reader would type it: relative to the project when inside it."""
    root = Path(__file__).resolve().parents[1]
    try:
        return str(Path(sys.executable).relative_to(root))
    except ValueError:
        return "python"


if __name__ == "__main__":
    main()

