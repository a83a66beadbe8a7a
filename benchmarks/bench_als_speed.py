"""ALS fit plus top-10 for every member on MovieLens-100K, with 1 and 2 threads.

Uses the leave-last-out ALS parameters chosen by ``bench_baselines.py`` (read from
``benchmarks/results/baselines.json``; run that first, or ``make bench`` runs both). Writes the
``baselines-speed`` section of BENCHMARKS.md. Run it on a quiet machine: it is a timing.

    .venv/bin/python benchmarks/bench_als_speed.py --data ../shared/data/ml-100k
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import header, pin_threads, write_section  # noqa: E402

pin_threads(2)

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from reelpick.data.loaders import load_dataset  # noqa: E402
from reelpick.models import make_model  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default="../shared/data/ml-100k")
    ap.add_argument("--out", default="BENCHMARKS.md")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    warnings.simplefilter("ignore", UserWarning)
    src = RESULTS / "baselines.json"
    if not src.exists():
        sys.exit(f"{src} is missing: run benchmarks/bench_baselines.py first (make bench)")
    rows = json.loads(src.read_text())["leave_last_out"]
    params = {k: v for k, v in next(r["params"] for r in rows if r["model"] == "als").items()
              if k not in ("num_threads",)}
    ds = load_dataset(args.data)
    inter, catalogue = ds.interactions, ds.title_vocab().to_list()
    result = {}
    for threads in (1, 2):
        times = []
        with threadpool_limits(threads):
            for _ in range(args.repeats + 1):  # the first run warms caches and is dropped
                t0 = time.perf_counter()
                model = make_model("als", **params, num_threads=threads).fit(
                    inter, titles=catalogue)
                model.recommend(model.member_vocab_.id_array, k=10)
                times.append(time.perf_counter() - t0)
        result[threads] = times[1:]
        print(f"{threads} thread(s): best {min(times[1:]):.3f} s, median "
              f"{np.median(times[1:]):.3f} s", flush=True)
    load = os.getloadavg()[0]
    lines = ["| threads | best s | median s | runs |", "|---:|---:|---:|---:|"]
    lines += [f"| {t} | {min(v):.3f} | {float(np.median(v)):.3f} | {len(v)} |"
              for t, v in result.items()]
    shown = ", ".join(f"{k}={v}" for k, v in params.items() if k != "random_state")
    body = header("ALS fit + top-10 on MovieLens-100K",
                  "python benchmarks/bench_als_speed.py") + f"""
ALS with the leave-last-out parameters chosen in the baselines section ({shown}) fit on all
{len(inter):,} ratings, then top-10 for all {inter['member_id'].nunique():,} members (training
titles excluded), after one warm-up run. Load average when it finished: {load:.1f}.
Target: under 1 s on 2 cores.

{chr(10).join(lines)}
"""
    write_section(args.out, "baselines-speed", body)
    (RESULTS / "als_speed.json").write_text(json.dumps(
        {"params": params, "seconds": {str(k): v for k, v in result.items()}}, indent=2))
    print(body)


if __name__ == "__main__":
    main()
