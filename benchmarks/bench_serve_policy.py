"""The shipped page policy served over HTTP: latency and throughput against a FastAPI
hello-world, the cost of each step in process, and the simulator driving the real service.

Run: ``.venv/bin/python benchmarks/bench_serve_policy.py`` (needs ``wrk``). It trains a
:class:`reelpick.page.PagePolicy` (candidate sources + LightGBM ranker + Thompson artwork
bandit + epsilon exploration, 10 rows x 20 titles) on a simulated log of the ``default`` world
(2,000 titles, 20,000 members, pages of 10 x 20), publishes it as a model directory, and measures:

1. in process: compose one page, 16 pages at a time, render the JSON;
2. uvicorn on 127.0.0.1 (1 BLAS thread): interleaved closed-loop runs of hello-world and
   ``GET /v1/homepage`` (every page logged durably before the answer) at each of
   ``--connections`` (default 16 and 64: a server that composes the requests in flight
   together needs enough of them to reach its maximum rate; the maximum load is the count
   with the homepage's highest median rate), members' first pages each at an hour of its own,
   then the homepage paced at half its maximum rate (p50/p99);
3. the page store: another 5,000 members' first pages composed by ``reelpick precompute
   --model-dir --store`` in its own process (the serving process spends nothing on them),
   then served by a fresh server reading that store (1 process, and ``--workers 2`` against a
   2-worker hello-world), closed loop and at half load;
4. the closed loop through the service: simulated members request ``--loop-visits`` pages
   over HTTP (:class:`reelpick.world.service.ServicePolicy`) and post their plays; the plays
   per visit are compared with the same policy simulated in process on the same visits.

Writes the ``serve-policy`` section of BENCHMARKS.md and ``benchmarks/results/serve_policy.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import header, pin_threads, write_section  # noqa: E402

pin_threads(1)

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from bench_serve import (  # noqa: E402
    HOMEPAGE_LUA,
    KEY,
    RANDOM_PAUSE_LUA,
    Server,
    build_policy,
    calibrate_delay,
    wrk,
)

#: Connections of the half-load run, each pausing a random (exponential) time between
#: requests: together nearly a Poisson stream of requests.
HALF_CONN = 32

ROOT = Path(__file__).resolve().parents[1]

#: :data:`HOMEPAGE_LUA` at another hour (``% (seed, members, hour)``): a context no other run
#: asks for, so that a member's first request of the run is a first page (composed).
FIRST_LUA = HOMEPAGE_LUA.replace("hour=20", "hour=%d")
#: The hours of those runs (20 is the other runs' hour).
FIRST_HOURS = [h for h in range(24) if h != 20]


def breakdown(model_dir: Path, members: list[str], n: int) -> dict[str, float]:
    """Microseconds per page in this process: compose alone, 16 at a time, render."""
    from reelpick.serve.bundle import load_bundle, prepared
    from reelpick.serve.provider import PageContext
    from reelpick.serve.settings import Settings

    bundle = prepared(load_bundle(Settings(model_dir=model_dir, data_dir=Path(
        tempfile.mkdtemp(prefix="reelpick-bench-")))))
    prov, rnd = bundle.provider, bundle.renderer
    rng = np.random.default_rng(0)
    now = int(time.time())
    ctx = PageContext("tv", "US", 20, 3, now)
    cdict = {"device": "tv", "country": "US", "hour": 20, "day_of_week": 3, "timestamp": now}
    ms = [members[i % len(members)] for i in range(n)]
    out: dict[str, float] = {}
    t = time.perf_counter()
    pages = [prov.compose(m, ctx, rng) for m in ms]
    out["compose_us"] = 1e6 * (time.perf_counter() - t) / n
    t = time.perf_counter()
    for i in range(0, n, 16):
        prov.compose_many([(m, ctx) for m in ms[i:i + 16]], rng)
    out["compose_batch16_us"] = 1e6 * (time.perf_counter() - t) / n
    asked = set(members)
    fresh = [m for m in (f"m{i}" for i in range(100_000)) if m not in asked][:n]  # first pages
    t = time.perf_counter()
    for i in range(0, n, 16):
        prov.compose_many([(m, ctx) for m in fresh[i:i + 16]], rng)
    out["compose_batch16_cold_us"] = 1e6 * (time.perf_counter() - t) / n
    t = time.perf_counter()
    for i, page in enumerate(pages):
        rnd.render(f"{i:032d}", ms[i], page, cdict)
    out["render_us"] = 1e6 * (time.perf_counter() - t) / n
    out["titles_per_page"] = float(np.mean([len(p.title_ids) for p in pages]))
    out["rows_per_page"] = float(np.mean([len(p.row_labels) for p in pages]))
    return out


def _page_cache(srv: Any) -> dict[str, float]:
    """The served policy's page cache (pages, hits, misses) from ``GET /metrics``."""
    text = httpx.get(srv.url + "/metrics", timeout=30).text
    out = {}
    for line in text.splitlines():
        if line.startswith("reelpick_page_cache{"):
            what = line.split('what="')[1].split('"')[0]
            out[what] = float(line.rsplit(" ", 1)[1])
    return out


def precompute(srv: Any, members: list[str], chunk: int = 1_000) -> dict[str, Any]:
    """``POST /v1/admin/precompute`` of ``members``' pages in the load's context (tv, US, 8 pm,
    this hour): wall seconds, the server's CPU seconds and what the cache holds after. Waits
    for the next hour when this one ends within 3 minutes (the pages are for this hour)."""
    bucket = _wait_for_hour(180)
    c0, t0 = srv.cpu(), time.perf_counter()
    composed = 0
    for lo in range(0, len(members), chunk):
        r = httpx.post(srv.url + "/v1/admin/precompute", headers={"X-API-Key": KEY}, timeout=600,
                       json={"members": members[lo:lo + chunk], "device": "tv", "country": "US",
                             "hour": 20})
        r.raise_for_status()
        composed += r.json()["composed"]
    return {"members": len(members), "composed": composed, "bucket": bucket,
            "wall_s": time.perf_counter() - t0, "cpu_s": srv.cpu() - c0,
            "cache": _page_cache(srv)}


def _wait_for_hour(need_s: float) -> int:
    """The hour bucket to precompute for, after waiting for the next hour when this one ends
    within ``need_s`` seconds (precomputed pages are for their hour)."""
    left = 3600 - time.time() % 3600
    if left < need_s:
        print(f"waiting {left:.0f} s for the next hour", flush=True)
        time.sleep(left + 1)
    return int(time.time() // 3600)


def store_job(model_dir: Path, store: Path, members: list[str]) -> dict[str, Any]:
    """``reelpick precompute --model-dir --store`` of ``members`` (tv, US, 8 pm, this hour) in
    a subprocess: wall and CPU seconds, pages stored, the file's size."""
    import resource
    import subprocess

    from reelpick.page.store import PageStore

    cli = Path(sys.executable).with_name("reelpick")
    cmd = [str(cli), "precompute", "--model-dir", str(model_dir), "--store", str(store),
           "--members", ",".join(members), "--device", "tv", "--country", "US", "--hour", "20"]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    ps = PageStore(store)
    pages = len(ps)
    ps.close()
    return {"members": len(members), "wall_s": wall, "stored": pages,
            "cpu_s": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime),
            "mb": sum(f.stat().st_size for f in store.parent.glob(store.name + "*")) / 2**20,
            "said": out.stdout.strip().splitlines()[-1:]}


def store_rounds(hello: Any, model_dir: Path, data: Path, lua_members: str, sec: int,
                 conns: list[int], rounds: int, workers: int, seed: int) -> dict[str, Any]:
    """Closed-loop rounds (and, with 1 worker, the half load) of a fresh server over the page
    store in ``data`` (``REELPICK_DATA_DIR``: its default store is ``pages.sqlite3`` there)."""
    env = {"REELPICK_MODEL_DIR": str(model_dir), "REELPICK_API_KEY": KEY,
           "REELPICK_DATA_DIR": str(data)}
    out: dict[str, Any] = {"workers": workers, "rounds": []}
    with Server("reelpick.serve.app:app_from_env", env, workers=workers) as srv:
        wrk(srv.url, seconds=2, connections=4, lua=HOMEPAGE_LUA % (seed, lua_members))
        before = _page_cache(srv)
        for r in range(rounds):
            runs = closed_loop(hello, srv, conns, sec, HOMEPAGE_LUA % (seed + 1 + r, lua_members))
            for run in runs:
                run["round"] = r
                print(f"store x{workers} round {r}, {run['connections']} connections: ratio "
                      f"{run['ratio']:.3f}", run["hello"], run["homepage"], flush=True)
            out["rounds"] += runs
        out["cache"] = {k: v - before.get(k, 0) for k, v in _page_cache(srv).items()}
        out["batch"] = _batch_pages(srv)
        if workers == 1:
            half = best_level(out["rounds"])[2] / 2
            delay = calibrate_delay(srv, half, lua_members, pause_lua=RANDOM_PAUSE_LUA,
                                    connections=HALF_CONN)
            out["half"] = srv.load(seconds=2 * sec, connections=HALF_CONN,
                                   lua=HOMEPAGE_LUA % (seed + 9, lua_members)
                                   + RANDOM_PAUSE_LUA % delay)
            out["half"].update(rate=half, delay_ms=delay, connections=HALF_CONN)
            print(f"store half load: {out['half']}", flush=True)
    return out


def closed_loop(hello: Any, srv: Any, conns: list[int], sec: int, lua: str, *,
                cache: bool = False) -> list[dict[str, Any]]:
    """Hello-world then the homepage, closed loop, at each connection count of ``conns``
    (a batching server needs enough requests in flight to reach its maximum rate); with
    ``cache``, the pages the server composed during each run (``misses`` of its page cache)."""
    out = []
    for c in conns:
        h = hello.load(seconds=sec, connections=c, path="/hello")
        before = _page_cache(srv) if cache else {}
        p = srv.load(seconds=sec, connections=c, lua=lua)
        if cache:
            p["composed"] = _page_cache(srv).get("misses", 0) - before.get("misses", 0)
        out.append({"connections": c, "hello": h, "homepage": p, "ratio": p["rps"] / h["rps"]})
    return out


def best_level(runs: list[dict[str, Any]]) -> tuple[int, list[dict[str, Any]], float]:
    """The connection count at which the homepage's median throughput is highest (its
    maximum load), the runs at that count and that median (req/s)."""
    conns = sorted({r["connections"] for r in runs})
    med = {c: float(np.median([r["homepage"]["rps"] for r in runs if r["connections"] == c]))
           for c in conns}
    c = max(conns, key=med.__getitem__)
    return c, [r for r in runs if r["connections"] == c], med[c]


def _batch_pages(srv: Any) -> float:
    """Mean pages per composing pass of the server (``reelpick_homepage_batch_pages``; of the
    worker that answered, with several)."""
    text = httpx.get(srv.url + "/metrics", timeout=30).text
    got = {line.split(" ")[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
           if line.startswith("reelpick_homepage_batch_pages_")}
    n = got.get("reelpick_homepage_batch_pages_count", 0.0)
    return got.get("reelpick_homepage_batch_pages_sum", 0.0) / n if n else float("nan")


def http_loop(world: Any, model_dir: Path, work: Path, visits: int, seed: int
              ) -> dict[str, Any]:
    """Simulated members through the real service vs the same policy in process."""
    from reelpick.page import PagePolicy
    from reelpick.serve.export import export_logs
    from reelpick.serve.model_dir import read_manifest
    from reelpick.world.service import ServicePolicy

    v = world.draw_visits(visits, np.random.default_rng([seed, 91]))
    data = work / "data-loop"
    env = {"REELPICK_MODEL_DIR": str(model_dir), "REELPICK_API_KEY": KEY,
           "REELPICK_DATA_DIR": str(data)}
    with Server("reelpick.serve.app:app_from_env", env) as srv:
        pol = ServicePolicy(srv.url, world.titles(), world.artworks(), world.config.countries,
                            api_key=KEY)
        t = time.perf_counter()
        log_http = world.simulate_visits(pol, v, world.initial_state(),
                                         np.random.default_rng(1), np.random.default_rng(2))
        t_http = time.perf_counter() - t
        accepted = pol.send_plays(log_http)
        pol.close()
    exported = export_logs(data / "events.sqlite3", work / "exported")
    policy = PagePolicy.load(model_dir / read_manifest(model_dir)["path"])
    bound = policy.for_members(world.members()["member_id"], world.config.countries)
    t = time.perf_counter()
    log_mem = world.simulate_visits(bound, v, world.initial_state(), np.random.default_rng(1),
                                    np.random.default_rng(2))
    t_mem = time.perf_counter() - t
    a = np.bincount(log_http.shown.visit, weights=log_http.shown.play, minlength=visits)
    b = np.bincount(log_mem.shown.visit, weights=log_mem.shown.play, minlength=visits)
    se = float(np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size))
    return {"visits": visits, "http_plays": float(a.mean()), "inproc_plays": float(b.mean()),
            "diff_se": se, "z": float((a.mean() - b.mean()) / se), "http_s": t_http,
            "inproc_s": t_mem, "plays_posted": accepted, "exported_pages": exported.pages,
            "exported_outcomes": exported.outcomes}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--visits", type=int, default=20_000, help="Simulated visits to train on.")
    ap.add_argument("--seconds", type=int, default=8, help="Length of each closed-loop run.")
    ap.add_argument("--connections", default="16,64",
                    help="Comma-separated connection counts of the closed-loop runs (each "
                         "measured for hello-world and the homepage; the maximum load is the "
                         "count with the homepage's highest median rate).")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--loop-visits", type=int, default=2_000)
    ap.add_argument("--warm-members", type=int, default=300,
                    help="Members of the warm run (pages cached within the hour).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers2", action=argparse.BooleanOptionalAction, default=True,
                    help="Also serve the page store with --workers 2 (against a 2-worker "
                         "hello-world).")
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"),
                    help="Markdown file whose serve-policy section is written; the raw results "
                         "go to benchmarks/results/serve_policy.json, or next to any other "
                         "--out (same name, .json).")
    args = ap.parse_args()
    try:
        conns = sorted({int(c) for c in str(args.connections).split(",") if c.strip()})
    except ValueError:
        sys.exit(f"--connections: expected comma-separated integers, got {args.connections!r}")
    if not conns or min(conns) < 1:
        sys.exit(f"--connections: expected positive integers, got {args.connections!r}")
    args.connections = conns
    if shutil.which("wrk") is None:
        sys.exit("bench_serve_policy needs wrk on PATH (apt-get install wrk)")
    work = Path(tempfile.mkdtemp(prefix="reelpick-bench-"))
    world, model_dir, res = build_policy(work, args.visits, args.seed)
    print("trained", res, flush=True)
    members = [f"m{i}" for i in np.random.default_rng(0).choice(
        world.config.n_members, 5_000, replace=False)]
    res["breakdown"] = breakdown(model_dir, members, 500)
    print("breakdown", res["breakdown"], flush=True)
    lua_members = ",".join(f'"{m}"' for m in members)
    env = {"REELPICK_MODEL_DIR": str(model_dir), "REELPICK_API_KEY": KEY,
           "REELPICK_DATA_DIR": str(work / "data-home")}
    sec = args.seconds
    res["rounds"] = []
    with Server("bench_serve:hello_app") as hello, Server(
            "reelpick.serve.app:app_from_env", env) as srv:
        wrk(hello.url + "/hello", seconds=2, connections=4)
        wrk(srv.url, seconds=3, connections=4, lua=HOMEPAGE_LUA % (1, lua_members))
        hours = iter(FIRST_HOURS)
        for r in range(args.rounds):
            for c in conns:  # each run in a context of its own: first pages
                hour = next(hours)
                run = closed_loop(hello, srv, [c], sec,
                                  FIRST_LUA % (2 + r, lua_members, hour), cache=True)[0]
                run.update(round=r, hour=hour)
                print(f"round {r}, {c} connections, hour {hour}: ratio {run['ratio']:.3f}",
                      run["hello"], run["homepage"], flush=True)
                res["rounds"].append(run)
        # warm: the same few members again within the hour (their pages and image
        # distributions cached): what repeat visits cost
        few = ",".join(f'"{m}"' for m in members[:args.warm_members])
        wrk(srv.url, seconds=4, connections=4, lua=HOMEPAGE_LUA % (7, few))
        res["warm"] = {"runs": closed_loop(hello, srv, conns, sec, HOMEPAGE_LUA % (8, few)),
                       "members": args.warm_members}
        print("warm", res["warm"], flush=True)
        # precomputed: another 5,000 members' first pages composed ahead (the nearline job),
        # then asked for: every request a member's first page this hour, served remembered
        asked = set(members)
        ahead = [m for m in (f"m{i}" for i in np.random.default_rng(1).permutation(
            world.config.n_members)) if m not in asked][:len(members)]
        pre = precompute(srv, ahead)
        print("precomputed", pre, flush=True)
        lua_ahead = ",".join(f'"{m}"' for m in ahead)
        runs = closed_loop(hello, srv, conns, sec, HOMEPAGE_LUA % (9, lua_ahead))
        pre["after"] = _page_cache(srv)
        pre["same_hour"] = int(time.time() // 3600) == pre["bucket"]
        res["precomputed"] = {"runs": runs, **pre}
        print("precomputed load", res["precomputed"], flush=True)
        half = best_level(res["rounds"])[2] / 2
        delay = calibrate_delay(srv, half, lua_members, pause_lua=RANDOM_PAUSE_LUA,
                                connections=HALF_CONN,
                                page_lua=FIRST_LUA % (9, lua_members, next(hours)))
        hour = next(hours)
        c0 = _page_cache(srv).get("misses", 0)
        res["half"] = srv.load(seconds=2 * sec, connections=HALF_CONN,
                               lua=FIRST_LUA % (3, lua_members, hour) + RANDOM_PAUSE_LUA % delay)
        res["half"].update(rate=half, delay_ms=delay, connections=HALF_CONN, hour=hour,
                           composed=_page_cache(srv).get("misses", 0) - c0)
        print("half load", res["half"], flush=True)
        # the same at half of the precomputed pages' rate (members' pages composed ahead)
        half_pre = best_level(res["precomputed"]["runs"])[2] / 2
        delay = calibrate_delay(srv, half_pre, lua_ahead, pause_lua=RANDOM_PAUSE_LUA,
                                connections=HALF_CONN)
        res["half_precomputed"] = srv.load(
            seconds=2 * sec, connections=HALF_CONN,
            lua=HOMEPAGE_LUA % (4, lua_ahead) + RANDOM_PAUSE_LUA % delay)
        res["half_precomputed"].update(rate=half_pre, delay_ms=delay, connections=HALF_CONN,
                                       same_hour=int(time.time() // 3600) == pre["bucket"])
        print("half load, precomputed", res["half_precomputed"], flush=True)
        # the page store: a third 5,000 members' first pages composed by the nearline job in
        # its own process, then served by fresh servers that read the store
        asked |= set(ahead)
        stored = [m for m in (f"m{i}" for i in np.random.default_rng(2).permutation(
            world.config.n_members)) if m not in asked][:len(members)]
        lua_stored = ",".join(f'"{m}"' for m in stored)
        data = work / "data-store"
        res["store_bucket"] = _wait_for_hour(300)
        res["store_job"] = store_job(model_dir, data / "pages.sqlite3", stored)
        print("store job", res["store_job"], flush=True)
        res["store"] = store_rounds(hello, model_dir, data, lua_stored, sec, conns,
                                    args.rounds, 1, 20)
    if args.workers2:
        with Server("bench_serve:hello_app", workers=2) as hello2:
            wrk(hello2.url + "/hello", seconds=2, connections=4)
            res["store2"] = store_rounds(hello2, model_dir, data, lua_stored, sec, conns,
                                         args.rounds, 2, 40)
    res["store_same_hour"] = int(time.time() // 3600) == res["store_bucket"]
    res["loop"] = http_loop(world, model_dir, work, args.loop_visits, args.seed)
    print("loop", res["loop"], flush=True)
    shutil.rmtree(work, ignore_errors=True)
    out_json = (ROOT / "benchmarks" / "results" / "serve_policy.json"
                if Path(args.out).resolve() == (ROOT / "BENCHMARKS.md").resolve()
                else Path(args.out).with_suffix(".json"))
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(res, indent=2))
    write_section(args.out, "serve-policy", report(res, args))


def _row(name: str, r: dict[str, Any], composed: str = "") -> str:
    p = r["homepage"]
    return (f"| {name} | {r['connections']} | {r['hello']['rps']:,.0f} | {p['rps']:,.0f} | "
            f"{r['ratio']:.3f} | {p['p50_ms']:.1f} | {p['p99_ms']:.1f} | "
            f"{p['cpu_ms_per_request']:.2f} |{composed}")


def _summary(name: str, runs: list[dict[str, Any]], half: dict[str, Any] | None) -> str:
    """One line of the maximum-load table: the runs at the homepage's best connection count."""
    c, best, rps = best_level(runs)
    ratio = float(np.median([r["ratio"] for r in best]))
    cpu = float(np.median([r["homepage"]["cpu_ms_per_request"] for r in best]))
    hcpu = float(np.median([r["hello"]["cpu_ms_per_request"] for r in best]))
    hl = "-" if half is None else (f"{half['p50_ms']:.1f} / **{half['p99_ms']:.1f}** "
                                   f"({half['rps']:,.0f})")
    return (f"| {name} | {c} | {rps:,.0f} | **{ratio:.3f}** | {cpu:.2f} ({hcpu:.3f}) | "
            f"{hcpu / cpu:.3f} | {hl} |")


def report(res: dict[str, Any], args: argparse.Namespace) -> str:
    b, h, lp = res["breakdown"], res["half"], res["loop"]
    conns = ", ".join(str(c) for c in args.connections)
    cmd = "python benchmarks/bench_serve_policy.py" + (
        f" --visits {args.visits}" if args.visits != 20_000 else "")
    wait = os.environ.get("REELPICK_BATCH_WAIT_MS")
    lines = [
        header("Serving the shipped page policy (loopback)", cmd),
        f"`PagePolicy` trained on {res['visits']:,} simulated visits of the `default` world "
        f"({res['n_titles']:,} titles, {res['n_members']:,} members; train "
        f"{res['train_s']:.1f} s): candidate sources (ALS, item-kNN, trending in context, "
        "continue watching, because you watched) -> LightGBM ranker -> context-shaped rows "
        "(10 x 20) -> epsilon = 0.1 exploration -> Thompson artwork bandit, every page logged "
        "durably (SQLite, group commit) before the answer. uvicorn, 1 process, 1 BLAS thread"
        + ("" if wait is None else f", `REELPICK_BATCH_WAIT_MS={wait}`")
        + f"; wrk 1 thread, {args.seconds} s closed-loop runs at {conns} connections, "
        "hello-world and homepage interleaved at each. Pages carry "
        f"{b['titles_per_page']:.0f} titles in {b['rows_per_page']:.1f} rows on average.\n",
        "| in process (1 thread) | µs per page |", "|---|---:|",
        f"| compose one page (member's first page this hour) | {b['compose_us']:,.0f} |",
        f"| compose 16 at a time (first pages) | {b['compose_batch16_cold_us']:,.0f} |",
        f"| compose 16 at a time (same members again: cached) | "
        f"{b['compose_batch16_us']:,.0f} |",
        f"| render JSON | {b['render_us']:,.0f} |", ""]
    pc, st, st2, job = (res.get("precomputed"), res.get("store"), res.get("store2"),
                        res.get("store_job"))
    w = res["warm"]
    lines += [
        "At maximum load (the connection count with the homepage's highest median rate; "
        "the ratio is the median over the runs at that count of homepage / hello-world "
        "req/s, each pair measured back to back; server CPU from `/proc`, hello-world's in "
        "brackets; half load: p50 / p99 ms (req/s achieved) at half of that rate):\n",
        "| pages | connections | homepage req/s | ratio (target >= 0.15) | server CPU ms a "
        "request | CPU ratio | half load p50 / p99 ms (target p99 <= 50) |",
        "|---|---:|---:|---:|---:|---:|---|",
        _summary("composed on request (members' first pages, rounds 0-"
                 f"{args.rounds - 1})", res["rounds"], h),
        _summary(f"repeat pages ({w['members']} members, cached)", w["runs"], None)]
    if pc is not None:
        lines.append(_summary("precomputed in the server (`POST /v1/admin/precompute`)",
                              pc["runs"], res.get("half_precomputed")))
    if st is not None:
        lines.append(_summary("page store, 1 worker (`reelpick precompute --store`)",
                              st["rounds"], st.get("half")))
    if st2 is not None:
        lines.append(_summary("page store, 2 workers (hello-world: 2 workers too)",
                              st2["rounds"], None))
    lines += [
        "", f"Every closed-loop run. Each run of rounds 0-{args.rounds - 1} asks for pages at an "
        "hour no other "
        "run asks for, drawing members from 5,000: a member's first request of the run is a "
        "first page, composed on request (sources, ranker, rows, image probabilities), and "
        "`composed` counts them (the others are the same member again, cached):\n",
        "| run | connections | hello req/s | homepage req/s | ratio | p50 ms | p99 ms | "
        "server CPU ms a request | composed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in res["rounds"]:
        lines.append(_row(f"round {r['round']}", r,
                          f" {r['homepage'].get('composed', float('nan')):,.0f} |"))
    for r in w["runs"]:
        lines.append(_row(f"warm: {w['members']} members, pages cached", r, " |"))
    if pc is not None:
        for r in pc["runs"]:
            lines.append(_row(f"precomputed: {pc['members']:,} other members", r, " |"))
    for s_ in (st, st2):
        if s_ is None:
            continue
        for r in s_["rounds"]:
            lines.append(_row(f"page store, {s_['workers']} worker"
                              f"{'s' if s_['workers'] > 1 else ''}, round {r['round']}", r, " |"))
    lines += ["", f"Half load, first pages (a context of its own, {h['composed']:,.0f} of "
              f"{h['requests']:,} pages composed): {h['rate']:.0f} req/s targeted, "
              f"{h['rps']:.0f} achieved ({h['connections']} connections, each pausing a "
              "random time of mean "
              f"{h['delay_ms']} ms between requests, so that together they arrive nearly as a "
              f"Poisson stream): p50 **{h['p50_ms']:.1f} ms**, p99 **{h['p99_ms']:.1f} ms**, "
              f"{h['non_2xx']} non-2xx. Latency counts from the request leaving wrk, not from a "
              "scheduled time; each page waits for its fsync (synchronous=FULL).", ""]
    if pc is not None:
        per_page = 1000 * pc["cpu_s"] / max(pc["composed"], 1)
        hits = pc["after"].get("hits", 0) - pc["cache"].get("hits", 0)
        misses = pc["after"].get("misses", 0) - pc["cache"].get("misses", 0)
        hour = "" if pc["same_hour"] else "; the hour changed during the run"
        lines += [
            "Precomputed first pages (`POST /v1/admin/precompute`, the nearline job in the "
            f"serving process): the pages of {pc['members']:,} members not asked for before, "
            f"in the load's context and hour, composed ahead in {pc['wall_s']:.1f} s "
            f"({per_page:.2f} ms of server CPU a page, {pc['composed']:,} composed); the load "
            f"then asked for them ({hits:,.0f} cache hits, {misses:,.0f} misses{hour}). A "
            "precomputed page is the page the member would have got: the same titles and "
            "propensities; only the exploration and the images are drawn per request."]
        hp2 = res.get("half_precomputed")
        if hp2 is not None:
            lines[-1] += (
                f" Half load: {hp2['rate']:.0f} req/s targeted, {hp2['rps']:.0f} achieved"
                + ("" if hp2["same_hour"] else " (the hour changed during the run)") + ".")
        lines.append("")
    if st is not None and job is not None:
        c, sh = st["cache"], st["half"]
        hour = "" if res.get("store_same_hour", True) else " (the hour changed during the run)"
        lines += [
            "The page store (`reelpick precompute --model-dir DIR --store FILE`, the nearline "
            f"job in its own process): the first pages of {job['members']:,} members asked "
            f"for by no earlier round, composed in {job['wall_s']:.1f} s ({job['cpu_s']:.1f} s "
            f"of CPU, loading the policy included) into {job['stored']:,} stored pages "
            f"({job['mb']:.0f} MB; members the policy does not know share the cold-start "
            "page); then a fresh server (`REELPICK_DATA_DIR` holding that `pages.sqlite3`) "
            f"served them: {c.get('stored', 0):,.0f} pages found in the store, "
            f"{c.get('misses', 0):,.0f} composed on request{hour}, "
            f"{st['batch']:.1f} pages per composing pass on average. Half load: "
            f"{sh['rate']:.0f} req/s targeted, {sh['rps']:.0f} achieved."
            + ("" if st2 is None else
               f" With `--workers 2` each worker reads the store ({st2['batch']:.1f} pages "
               "per pass in the worker that answered `/metrics`).")]
        lines.append("")
    lines += [
              f"Closed loop through the service: {lp['visits']:,} simulated visits asked the "
              f"running service for pages over HTTP ({lp['http_s']:.1f} s) and posted "
              f"{lp['plays_posted']:,} plays; the export holds {lp['exported_pages']:,} pages "
              f"and {lp['exported_outcomes']:,} outcomes. Plays per visit through HTTP "
              f"{lp['http_plays']:.4f} vs the same policy in process {lp['inproc_plays']:.4f} "
              f"(difference {lp['http_plays'] - lp['inproc_plays']:+.4f}, se "
              f"{lp['diff_se']:.4f}, z = {lp['z']:+.2f}; the service draws its own "
              "exploration, so they agree within noise, not exactly).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
