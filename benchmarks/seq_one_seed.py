"""One fit of the sequence model on ml-100k leave-last-out, for tuning its settings by the
validation metric: prints one JSON line with the best validation NDCG@10 (each member's
second-last action, inside ``fit``), the test NDCG@10 (last action, the same code as
``bench_sequence.py``), fit wall/CPU seconds, epochs and the 1-minute load average.

Run: ``T=1 python benchmarks/seq_one_seed.py '{"hidden": 96}' 0`` (overrides of
``bench_sequence.SEQ`` as JSON, then the seed; ``T`` = threads, default 1). Several seeds or
candidates can run as separate processes side by side; their wall seconds then include the
waiting, their CPU seconds much less so.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
import torch  # noqa: E402

import bench_sequence as bench  # noqa: E402  (pins 2 threads at import; reset below)
from reelpick.data.loaders import load_dataset  # noqa: E402
from reelpick.data.splits import leave_last_out  # noqa: E402


def main() -> None:
    threads = int(os.environ.get("T", "1"))
    bench.pin_threads(threads)
    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    over = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    data = sys.argv[3] if len(sys.argv) > 3 else "../shared/data/ml-100k"
    ds = load_dataset(data)
    split = leave_last_out(ds.interactions)
    params = {**bench.SEQ, "num_threads": threads, **over, "random_state": seed}
    load0 = os.getloadavg()[0]
    r = bench.run("seq", params, split, ds.title_vocab().to_list())
    h = r["model"].history_
    print(json.dumps({
        "over": over, "seed": seed, "threads": threads, "val_best": float(np.nanmax(h[:, 2])),
        "test_ndcg10": r["summary"]["NDCG@10"], "fit_wall": r["fit_seconds"],
        "fit_cpu": r["fit_cpu_seconds"], "best_epoch": r["best_epoch"], "epochs": r["epochs"],
        "val_curve": [[int(e), round(float(v), 4)] for e, _, v in h if np.isfinite(v)],
        "load_average": [load0, os.getloadavg()[0]]}))


if __name__ == "__main__":
    main()
