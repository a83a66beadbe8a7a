"""The home page service under load on loopback, serving the shipped page policy: homepage vs
hello-world in one process and with ``--workers N``, events with and without group commit, and
optional soak (errors and memory growth) and fuzzing runs.

Run: ``.venv/bin/python benchmarks/bench_serve.py`` (needs ``wrk``: ``apt-get install wrk``).
Each server is one uvicorn process (httptools + uvloop when installed) on 127.0.0.1 with one
BLAS thread; every load run is bounded in time. Writes the ``serve`` section of BENCHMARKS.md
and ``benchmarks/results/serve.json``. The page policy itself (what a page costs in process,
repeat visits, the simulator through the service) is ``bench_serve_policy.py``; this module
also holds the harness both use (servers, wrk runs, pacing, :func:`build_policy`).
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
import re  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import sqlite3  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-key"
PACED_CONN = 16


def hello_app() -> Any:
    """The baseline: a FastAPI hello-world endpoint
    (``uvicorn --factory bench_serve:hello_app``)."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"message": "hello world"}

    return app


# ---------------------------------------------------------------- servers
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its descendants (uvicorn workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in _descendants(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick


class Server:
    def __init__(self, target: str, env: dict[str, str] | None = None,
                 workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.target, self.env, self.workers = target, env or {}, workers
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT / 'benchmarks'}",
               "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", **self.env}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", self.target, "--host", "127.0.0.1",
             "--port", str(self.port), "--log-level", "warning", "--no-access-log"]
            + (["--workers", str(self.workers)] if self.workers > 1 else []),
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        path = "/hello" if "hello" in self.target else "/healthz"
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + path, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.target} did not start")

    def rss_mb(self) -> float:
        """Resident memory of the server and its workers."""
        assert self.proc is not None
        total = 0.0
        for p in _descendants(self.proc.pid):
            try:
                for line in Path(f"/proc/{p}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) / 1024
            except OSError:
                pass
        return total

    def cpu(self) -> float:
        assert self.proc is not None
        return cpu_seconds(self.proc.pid)

    def load(self, *, seconds: int, connections: int, lua: str | None = None,
             path: str = "") -> dict[str, Any]:
        """A wrk run with the machine's load average before it and the server's CPU
        milliseconds per request (robust to other jobs on the machine)."""
        load = os.getloadavg()[0]
        c0 = self.cpu()
        r = wrk(self.url + path, seconds=seconds, connections=connections, lua=lua)
        r["cpu_ms_per_request"] = 1000 * (self.cpu() - c0) / max(r["requests"], 1)
        r["load_before"] = round(load, 2)
        r["load_after"] = round(os.getloadavg()[0], 2)
        return r

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# ---------------------------------------------------------------- load generators
HOMEPAGE_LUA = """
math.randomseed(%d)
local members = {%s}
request = function()
  local m = members[math.random(1, #members)]
  return wrk.format("GET", "/v1/homepage?member=" .. m .. "&device=tv&hour=20&country=US")
end
"""


PACED_LUA = """
function delay()
  return %d
end
"""

#: Pauses drawn from an exponential distribution of mean ``%d`` ms: many connections with
#: random pauses arrive at the server nearly as a Poisson stream (open-loop traffic), where
#: fixed pauses keep connections that were answered together in step (a burst every cycle).
RANDOM_PAUSE_LUA = """
local mean_pause = %d
function delay()
  return math.floor(-mean_pause * math.log(1 - math.random()) + 0.5)
end
"""


def known_members(model_dir: Path, n: int = 5_000) -> list[str]:
    """Members the served policy was trained on (random traffic over all members would be
    mostly cold-start pages)."""
    from reelpick.page import COLD
    from reelpick.serve.model_dir import read_manifest

    header = json.loads((model_dir / read_manifest(model_dir)["path"] / "policy.json")
                        .read_text())
    ids = [m for m in header["members"] if m != COLD]
    rng = np.random.default_rng(0)
    return [str(m) for m in rng.choice(ids, size=min(n, len(ids)), replace=False)]

EVENTS_LUA = """
local decisions = {%s}
local n = 0
local prefix = "%s"
request = function()
  n = n + 1
  local d = decisions[(n %% #decisions) + 1]
  local body = '{"events":[{"event_id":"' .. prefix .. n .. '","decision_id":"' .. d ..
               '","kind":"play"}]}'
  return wrk.format("POST", "/v1/events",
                    {["Content-Type"] = "application/json", ["X-API-Key"] = "%s"}, body)
end
"""


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        return float("nan")
    v = float(m.group(1))
    return {"us": v / 1000, "ms": v, "s": v * 1000}[m.group(2)]


def calibrate_delay(srv: Server, rate: float, lua_members: str, tries: int = 5, *,
                    pause_lua: str = PACED_LUA, connections: int = PACED_CONN,
                    page_lua: str | None = None) -> int:
    """The per-connection pause (ms, wrk's granularity; the mean pause with
    :data:`RANDOM_PAUSE_LUA`) that paces ``connections`` connections to ``rate`` requests/s:
    start from ``C / rate`` and subtract the measured latency, re-measured on short runs until
    the achieved rate is within 5% (or the pause reaches 0). ``page_lua``: the requests'
    script (default :data:`HOMEPAGE_LUA` over ``lua_members``)."""
    base = 1000 * connections / rate
    delay = base
    for _ in range(tries):
        d = max(int(round(delay)), 0)
        r = srv.load(seconds=3, connections=connections,
                     lua=(HOMEPAGE_LUA % (9, lua_members) if page_lua is None else page_lua)
                     + pause_lua % d)
        print(f"calibrate: pause {d} ms -> {r['rps']:.0f} req/s (target {rate:.0f})", flush=True)
        if abs(r["rps"] / rate - 1) < 0.05 or (d == 0 and r["rps"] < rate):
            return d
        latency = max(1000 * connections / max(r["rps"], 1e-9) - d, 0.0)
        delay = max(base - latency, 0.0)
    return max(int(round(delay)), 0)


def wrk(url: str, *, seconds: int, connections: int, lua: str | None = None) -> dict[str, Any]:
    """Closed-loop load with wrk (1 thread): throughput, p50/p99 and non-2xx count."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    script = None
    if lua:
        script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        script.write(lua)
        script.close()
        cmd += ["-s", script.name]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=seconds + 60).stdout
    if script:
        os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errs = re.search(r"Socket errors:.*", out)
    return {"rps": rps, "p50_ms": _ms(lat.get("50", "")), "p99_ms": _ms(lat.get("99", "")),
            "non_2xx": int(bad.group(1)) if bad else 0,
            "socket_errors": errs.group(0) if errs else "", "requests": int(
                re.search(r"(\d+) requests in", out).group(1))}  # type: ignore[union-attr]


# ---------------------------------------------------------------- model
def build_policy(work: Path, visits: int, seed: int = 0, *, preset: str = "default"
                 ) -> tuple[Any, Path, dict[str, Any]]:
    """A :class:`reelpick.page.PagePolicy` (10 rows x 20 titles, epsilon 0.1, Thompson
    artwork) trained on ``visits`` simulated visits of the ``preset`` world logged by an
    exploring popularity policy, published into ``work / "model"``; ``(world, model_dir,
    facts)``."""
    from reelpick.page import PagePolicyConfig, train_page_policy
    from reelpick.policies import PopularPolicy
    from reelpick.serve.model_dir import publish_policy
    from reelpick.world import World, WorldConfig

    world = World(WorldConfig.preset(preset, page_rows=10, page_positions=20), seed=seed)
    t = time.perf_counter()
    log = world.simulate(PopularPolicy(epsilon=0.5, artwork="random"), visits, seed=seed)
    t_sim = time.perf_counter() - t
    t = time.perf_counter()
    policy = train_page_policy(log.impressions(), log.outcomes(), world.titles(),
                               artworks=world.artworks(), interactions=log.interactions(),
                               config=PagePolicyConfig(n_rows=10, n_positions=20, epsilon=0.1,
                                                       seed=seed), name="bench")
    t_train = time.perf_counter() - t
    policy.save(work / "policy")
    model_dir = work / "model"
    manifest = publish_policy(model_dir, work / "policy")
    return world, model_dir, {"simulate_s": t_sim, "train_s": t_train, "visits": visits,
                              "preset": preset, "n_titles": world.config.n_titles,
                              "n_members": world.config.n_members,
                              "version": manifest["version"]}


# ---------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model-dir", type=Path,
                    help="Reuse a model directory serving a page policy (else train one).")
    ap.add_argument("--visits", type=int, default=20_000,
                    help="Simulated visits the page policy is trained on.")
    ap.add_argument("--preset", default="default", help="World preset of the page policy.")
    ap.add_argument("--seconds", type=int, default=8, help="Length of each closed-loop run.")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3,
                    help="Interleaved hello-world / homepage rounds (the machine is shared).")
    ap.add_argument("--workers", type=int, default=2,
                    help="Also measure uvicorn --workers N (0 or 1: skip).")
    ap.add_argument("--soak", type=int, default=0, help="Soak seconds at half load (0: skip).")
    ap.add_argument("--fuzz", type=int, default=0,
                    help="Schemathesis requests against the served OpenAPI document (0: skip).")
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"),
                    help="Markdown file whose serve section is written; the raw results go "
                         "to benchmarks/results/serve.json, or next to any other --out "
                         "(same name, .json).")
    ap.add_argument("--report-only", action="store_true",
                    help="Rewrite the section from benchmarks/results/serve.json (no runs).")
    args = ap.parse_args()
    out_json = (ROOT / "benchmarks" / "results" / "serve.json"
                if Path(args.out).resolve() == (ROOT / "BENCHMARKS.md").resolve()
                else Path(args.out).with_suffix(".json"))
    if args.report_only:
        res = json.loads(out_json.read_text())
        args.seconds, args.connections = res["seconds"], res["connections"]
        args.soak = int(res.get("soak", {}).get("seconds", 0)) if "soak" in res else 0
        args.fuzz = res.get("fuzz_target", 0)
        write_section(args.out, "serve", report(res, args))
        return
    if shutil.which("wrk") is None:
        sys.exit("bench_serve needs wrk on PATH (apt-get install wrk)")

    work = Path(tempfile.mkdtemp(prefix="reelpick-bench-"))
    res: dict[str, Any] = {"seconds": args.seconds, "connections": args.connections,
                           "cores": os.cpu_count(), "fuzz_target": args.fuzz}
    model_dir = args.model_dir
    if model_dir is None:
        _, model_dir, res["model"] = build_policy(work, args.visits, preset=args.preset)
        print("model", res["model"], flush=True)
    env = {"REELPICK_MODEL_DIR": str(model_dir), "REELPICK_API_KEY": KEY}
    members = known_members(model_dir)
    lua_members = ",".join(f'"{m}"' for m in members)
    sec, conn = args.seconds, args.connections

    def rounds(hello: Server, home: Server, n: int, seed: int) -> list[dict[str, Any]]:
        out = []
        for r in range(n):  # interleaved: both see the same machine load
            h = hello.load(seconds=sec, connections=conn, path="/hello")
            p = home.load(seconds=sec, connections=conn, lua=HOMEPAGE_LUA % (seed + r,
                                                                            lua_members))
            out.append({"hello": h, "homepage": p, "ratio": p["rps"] / h["rps"]})
            print(f"round {r}: ratio {out[-1]['ratio']:.3f}", {"hello": h, "homepage": p},
                  flush=True)
        return out

    with Server("bench_serve:hello_app") as hello, Server(
            "reelpick.serve.app:app_from_env",
            {**env, "REELPICK_DATA_DIR": str(work / "data-home")}) as srv:
        wrk(hello.url + "/hello", seconds=2, connections=4)  # warm-up
        wrk(srv.url, seconds=2, connections=4, lua=HOMEPAGE_LUA % (1, lua_members))
        res["rounds"] = rounds(hello, srv, args.rounds, 2)
        half = float(np.median([r["homepage"]["rps"] for r in res["rounds"]])) / 2
        # paced: each of C connections waits d ms after each answer, with d calibrated so that
        # C / (d + latency) reaches the half rate (wrk has no constant-rate mode)
        delay = calibrate_delay(srv, half, lua_members)
        paced = HOMEPAGE_LUA % (3, lua_members) + PACED_LUA % delay
        res["homepage_half"] = srv.load(seconds=sec, connections=PACED_CONN, lua=paced)
        res["homepage_half"].update(rate=half, delay_ms=delay)
        print("homepage at half load", res["homepage_half"], flush=True)
        if args.soak:
            rss0 = srv.rss_mb()
            soak = srv.load(seconds=args.soak, connections=PACED_CONN, lua=paced)
            soak.update(rate=half, rss_start_mb=rss0, rss_end_mb=srv.rss_mb(),
                        seconds=args.soak)
            soak["rss_growth"] = soak["rss_end_mb"] / rss0 - 1
            res["soak"] = soak
            print("soak", soak, flush=True)

    if args.workers > 1:
        with Server("bench_serve:hello_app", workers=args.workers) as hello, Server(
                "reelpick.serve.app:app_from_env",
                {**env, "REELPICK_DATA_DIR": str(work / "data-workers")},
                workers=args.workers) as srv:
            wrk(hello.url + "/hello", seconds=2, connections=4)
            wrk(srv.url, seconds=2, connections=8, lua=HOMEPAGE_LUA % (1, lua_members))
            res["workers"] = {"n": args.workers,
                              "rounds": rounds(hello, srv, max(1, args.rounds - 1), 20)}
            log = sqlite3.connect(work / "data-workers" / "events.sqlite3")
            res["workers"]["pages_logged"] = log.execute(
                "SELECT count(*) FROM pages").fetchone()[0]
            log.close()
            res["workers"]["integrity"] = integrity(work / "data-workers" / "events.sqlite3")

    for mode, flag in (("group", "true"), ("per_request", "false")):
        with Server("reelpick.serve.app:app_from_env",
                    {**env, "REELPICK_DATA_DIR": str(work / f"data-{mode}"),
                     "REELPICK_GROUP_COMMIT": flag}) as srv:
            page = httpx.get(srv.url + "/v1/homepage?member=m1", timeout=30).json()
            ds = [it["decision_id"] for row in page["rows"] for it in row["items"]]
            lua = EVENTS_LUA % (",".join(f'"{d}"' for d in ds), f"{mode}-{time.time_ns()}-",
                                KEY)
            r = srv.load(seconds=sec, connections=64, lua=lua)
            metrics = httpx.get(srv.url + "/metrics", timeout=30).text
            m = re.search(r"reelpick_log_transaction_jobs_count ([\d.e+]+)", metrics)
            s = re.search(r"reelpick_log_transaction_jobs_sum ([\d.e+]+)", metrics)
            if m and s:
                r["transactions"] = int(float(m.group(1)))
                r["jobs_per_transaction"] = float(s.group(1)) / max(float(m.group(1)), 1)
            res[f"events_{mode}"] = r
            print("events", mode, r, flush=True)

    if args.fuzz:
        res["fuzz"] = run_fuzz(env, work, args.fuzz)
        print("fuzz", res["fuzz"], flush=True)
    shutil.rmtree(work, ignore_errors=True)

    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(res, indent=2))
    write_section(args.out, "serve", report(res, args))


def integrity(path: Path) -> str:
    from reelpick.serve.store import integrity_check

    return integrity_check(path)


def run_fuzz(env: dict[str, str], work: Path, n: int) -> dict[str, Any]:
    """Schemathesis (:mod:`reelpick.testing.fuzz`) against a uvicorn process serving the
    benchmark's page policy: about ``n`` generated requests, valid and invalid, every answer
    checked."""
    from reelpick.testing.fuzz import fuzz

    with Server("reelpick.serve.app:app_from_env",
                {**env, "REELPICK_DATA_DIR": str(work / "data-fuzz"),
                 "REELPICK_MAX_BATCH_EVENTS": "50"}) as srv, httpx.Client(
            base_url=srv.url, timeout=120) as client:
        openapi = client.get("/openapi.json").json()
        report = fuzz(client, openapi, per_operation=n // 8 + 50, api_key=KEY, seed=0,
                      limits={"POST /v1/admin/reload": 10})
        alive = client.get("/healthz").status_code == 200
    out = report.summary()
    out["problem_examples"] = report.problems[:5]
    out["healthy_after"] = alive
    return out


def _round_rows(rounds: list[dict[str, Any]], label: str) -> list[str]:
    rows = []
    for i, r in enumerate(rounds):
        h, p = r["hello"], r["homepage"]
        rows.append(
            f"| {label} {i + 1} | {h['load_before']:.1f} / {p['load_before']:.1f} | "
            f"{h['rps']:,.0f} | {h['cpu_ms_per_request']:.3f} | {p['rps']:,.0f} | "
            f"{p['p50_ms']:.1f} | {p['p99_ms']:.1f} | {p['cpu_ms_per_request']:.2f} | "
            f"{p['non_2xx']} | **{r['ratio']:.3f}x** |")
    return rows


def report(res: dict[str, Any], args: argparse.Namespace) -> str:
    half = res["homepage_half"]
    g, p = res["events_group"], res["events_per_request"]
    model = res.get("model", {})
    ratios = [r["ratio"] for r in res["rounds"]]
    cpu_ratio = float(np.median([r["hello"]["cpu_ms_per_request"]
                                 / r["homepage"]["cpu_ms_per_request"] for r in res["rounds"]]))
    cmd = ("python benchmarks/bench_serve.py" + (f" --soak {args.soak}" if args.soak else "")
           + (f" --fuzz {args.fuzz}" if args.fuzz else ""))
    lines = [
        header("Home page service (loopback)", cmd),
        f"Every server is uvicorn (httptools, uvloop) on 127.0.0.1 with 1 BLAS thread; wrk "
        f"1 thread, {args.connections} connections, {args.seconds} s per closed-loop run. "
        "Homepage: the shipped `PagePolicy` (candidate sources -> LightGBM ranker -> rows, "
        "10 x 20 -> epsilon 0.1 exploration -> Thompson artwork bandit) trained on "
        f"{model.get('visits', '?'):,} simulated visits of the `{model.get('preset', '?')}` "
        f"world ({model.get('n_titles', '?'):,} titles, {model.get('n_members', '?'):,} "
        "members), members drawn from those the policy knows, the page logged durably "
        "(group commit, synchronous=FULL) before the answer. What a page costs in process, "
        "and repeat visits, are in the `serve-policy` section. The machine has "
        f"{res['cores']} cores, "
        "shared with wrk and with other jobs, so hello-world and homepage runs are "
        "**interleaved** and each row gives the 1-minute load average before each run "
        "(hello / homepage) and the server's CPU milliseconds per request (user + system, "
        "all its threads and workers; unlike req/s it barely depends on the other jobs).\n",
        "| run | load avg | hello req/s | hello CPU ms/req | homepage req/s | p50 ms | p99 ms "
        "| homepage CPU ms/req | non-2xx | homepage / hello |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *_round_rows(res["rounds"], "1 process, round"),
    ]
    if "workers" in res:
        lines += _round_rows(res["workers"]["rounds"],
                             f"--workers {res['workers']['n']} (both servers), round")
    lines += [
        "",
        f"Homepage / hello world, one process: **{min(ratios):.3f}x - {max(ratios):.3f}x** "
        f"(median {float(np.median(ratios)):.3f}x; target >= 0.15x, as in `serve-policy`). "
        f"By CPU cost per request the ratio is {cpu_ratio:.3f}x (it depends little on the "
        "other jobs). Round 1 "
        "includes the first page of most members in the hour (composed by the ranker); later "
        "rounds find more of them remembered (`CachedPagePolicy`). Each page waits for its "
        "commit (fsync), so a slow disk lowers the homepage's req/s even when the CPU is "
        "idle.",
        f"Half load (paced to {half['rate']:,.0f}/s: {PACED_CONN} connections, each pausing "
        f"{half.get('delay_ms', '?')} ms after an answer, calibrated; load avg "
        f"{half['load_before']:.1f}): {half['rps']:,.0f} req/s, p50 {half['p50_ms']:.1f} ms, "
        f"**p99 {half['p99_ms']:.1f} ms** (target <= 50 ms), {half['non_2xx']} non-2xx.",
    ]
    if "workers" in res:
        w = res["workers"]
        wr = [r["ratio"] for r in w["rounds"]]
        one = float(np.median([r["hello"]["rps"] for r in res["rounds"]]))
        many = float(np.median([r["homepage"]["rps"] for r in w["rounds"]]))
        lines.append(
            f"\n`--workers {w['n']}` (each server, so the baseline is a {w['n']}-worker hello "
            f"world): homepage / hello {min(wr):.3f}x - {max(wr):.3f}x (against the "
            f"one-process hello world above: {many / one:.3f}x); the workers share one "
            f"SQLite log (each its own group-commit writer, serialised by SQLite's write "
            f"lock): {w['pages_logged']:,} pages logged, integrity `{w['integrity']}`.")
    lines += [
        "",
        "| events run | req/s | p50 ms | p99 ms | non-2xx | CPU ms/req |",
        "|---|---:|---:|---:|---:|---:|",
        f"| POST /v1/events, 1 event/request, group commit | {g['rps']:,.0f} | "
        f"{g['p50_ms']:.1f} | {g['p99_ms']:.1f} | {g['non_2xx']} | "
        f"{g['cpu_ms_per_request']:.2f} |",
        f"| POST /v1/events, 1 event/request, one fsync per request | {p['rps']:,.0f} | "
        f"{p['p50_ms']:.1f} | {p['p99_ms']:.1f} | {p['non_2xx']} | "
        f"{p['cpu_ms_per_request']:.2f} |",
        "",
        f"Group commit: {g.get('jobs_per_transaction', float('nan')):.1f} requests per "
        f"transaction, {g['rps'] / max(p['rps'], 1e-9):.1f}x the throughput of one fsync per "
        "request.",
    ]
    if "soak" in res:
        s = res["soak"]
        lines.append(
            f"\nSoak: {s['requests']:,} homepage requests in {args.soak} s (paced to "
            f"{s['rate']:,.0f}/s), {s['non_2xx']} non-2xx, socket errors: "
            f"{s['socket_errors'] or 'none'}, RSS {s['rss_start_mb']:.0f} -> "
            f"{s['rss_end_mb']:.0f} MB "
            f"({100 * s['rss_growth']:+.1f}%, target <= +10%).")
    if "fuzz" in res:
        f = res["fuzz"]
        st = ", ".join(f"{k}: {v:,}" for k, v in f["statuses"].items())
        lines.append(
            f"\nFuzzing (schemathesis {_schemathesis_version()}, `reelpick.testing.fuzz`, "
            f"positive and negative generation over every operation of the served OpenAPI "
            f"document, half the write/admin requests with the valid key): **{f['requests']:,} "
            f"requests, {f['server_errors']} server errors**, {f['problems']} answers off the "
            f"error shape or the response schema, in {f['seconds']:.0f} s. Statuses: {st}.")
    return "\n".join(lines)


def _schemathesis_version() -> str:
    try:
        from importlib.metadata import version

        return version("schemathesis")
    except Exception:  # noqa: BLE001
        return "?"


if __name__ == "__main__":
    main()
