"""The closed-loop demo's numbers (issue 10): the same pipeline and config as ``reelpick demo``.

Runs :func:`reelpick.loop.run_loop` with :meth:`LoopConfig.full` (``--quick`` for the small
world), saves the results object to ``benchmarks/results/demo.json``, writes the ``demo``
section of BENCHMARKS.md from it (:func:`reelpick.report.markdown_summary`), and renders the
HTML report from the same object (``--report DIR``). The demo's report and this section are
therefore one computation: no hand-made figures.

Run: ``.venv/bin/python benchmarks/bench_demo.py [--quick] [--report runs/bench-demo]``
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import header, pin_threads, write_section  # noqa: E402

pin_threads(1)

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

from reelpick.loop import LoopConfig, run_loop  # noqa: E402
from reelpick.report import markdown_summary, write_report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="the small world (reelpick demo --quick)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"),
                    help="Markdown file whose `demo` section is (re)written")
    ap.add_argument("--report", default=None, help="also write report.html here")
    ap.add_argument("--results", default=None,
                    help="write the section from this saved results.json (e.g. a `reelpick "
                         "demo` run's) instead of running the loop again")
    args = ap.parse_args()
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    if args.results:
        res = json.loads(Path(args.results).read_text())
        c = dict(res["config"])
        c["candidates"] = tuple(c["candidates"])
        cfg = LoopConfig(**c)
        wall = res["timings"]["total"]
    else:
        cfg = (LoopConfig.quick if args.quick else LoopConfig.full)(seed=args.seed)
        t0 = time.perf_counter()
        res = run_loop(cfg)
        wall = time.perf_counter() - t0
    results_dir = ROOT / "benchmarks" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "demo.json").write_text(json.dumps(res, indent=1))
    if args.report:
        write_report(res, args.report)
    cmd = ("reelpick demo --no-serve, then python benchmarks/bench_demo.py --results "
           "runs/demo/results.json" if args.results else
           "python benchmarks/bench_demo.py" + (" --quick" if args.quick else ""))
    w = res["world"]
    t = res["timings"]
    body = "\n".join([
        header("Closed-loop demo (`reelpick demo`)", cmd), "",
        f"World `{w['preset']}` ({w['n_members']:,} members, {w['n_titles']:,} titles, "
        f"{w['page'][0]}x{w['page'][1]} pages), {cfg.days} days x {cfg.visits_per_day:,} visits "
        f"per arm, world overrides {cfg.world_overrides}, uniform exploration epsilon "
        f"{cfg.epsilon} (production also {cfg.pool_epsilon} over the candidate pool), "
        f"releases after days "
        f"{[d + 1 for d in cfg.releases]}, seed {cfg.seed}. Sequence model: "
        f"{'yes' if res['available']['seq'] else 'no'}; artwork bandit: "
        f"{'yes' if res['available']['artwork'] else 'no'}. `reelpick demo` renders its report "
        "from the same results object (`benchmarks/results/demo.json`).", "",
        markdown_summary(res), "",
        f"Loop wall time **{wall:.0f} s** (serve {t.get('serve', 0):.0f} s, train "
        f"{t.get('train', 0):.0f} s, offline {t.get('offline', 0):.0f} s, online + A/B "
        f"{t.get('online', 0):.0f} s, artwork {t.get('artwork', 0):.0f} s, arms' learning "
        f"{t.get('learn_arms', 0):.0f} s, learnt-policy probes {t.get('probe', 0):.0f} s), "
        "one thread, on 2 cores shared with other jobs: "
        "pessimistic. Target: full demo <= 5 min, `--quick` <= 60 s.",
    ])
    write_section(args.out, "demo", body)
    print(body)


if __name__ == "__main__":
    main()
