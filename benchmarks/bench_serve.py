"""The home page service under load on loopback: homepage vs hello-world, events with and
without group commit, and an optional soak (errors and memory growth).

Run: ``.venv/bin/python benchmarks/bench_serve.py`` (needs ``wrk`` for the closed-loop runs:
``apt-get install wrk``; without it a bounded Python client is used). Each server is one uvicorn
process (httptools + uvloop when installed) on 127.0.0.1 with one BLAS thread; every load run
is bounded in time. Writes the ``serve`` section of BENCHMARKS.md and
``benchmarks/results/serve.json``.
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


class Server:
    def __init__(self, target: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.target, self.env = target, env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT / 'benchmarks'}",
               "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", **self.env}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", self.target, "--host", "127.0.0.1",
             "--port", str(self.port), "--log-level", "warning", "--no-access-log"],
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
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

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


def known_members(model_dir: Path, n: int = 5_000) -> list[str]:
    """Members the model was trained on (random traffic over all members would be mostly
    cold-start pages, which skip the ALS scoring)."""
    from reelpick.serve.model_dir import read_manifest

    path = model_dir / read_manifest(model_dir)["path"] / "als.npz"
    with np.load(path, allow_pickle=False) as z:
        ids = z["__members__"].tolist()
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
def build_model(out: Path, visits: int) -> dict[str, Any]:
    """A model directory for the ``large`` world preset (10,000 titles, 100,000 members)."""
    from reelpick.policies import PopularPolicy
    from reelpick.serve.model_dir import TrainConfig, publish
    from reelpick.world import World, WorldConfig

    world = World(WorldConfig.preset("large"), seed=0)
    log = world.simulate(PopularPolicy(epsilon=0.5, artwork="random"), visits)
    return publish(out, interactions=log.interactions(), titles=world.titles(),
                   members=world.members(), artworks=world.artworks(),
                   config=TrainConfig(factors=64, iterations=10))


# ---------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model-dir", type=Path, help="Reuse a model directory (else build one).")
    ap.add_argument("--visits", type=int, default=10_000, help="Simulated visits for the model.")
    ap.add_argument("--seconds", type=int, default=10, help="Length of each closed-loop run.")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--soak", type=int, default=0, help="Soak seconds at half load (0: skip).")
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench_serve needs wrk on PATH (apt-get install wrk)")

    work = Path(tempfile.mkdtemp(prefix="reelpick-bench-"))
    model_dir = args.model_dir
    if model_dir is None:
        model_dir = work / "model"
        t = time.perf_counter()
        manifest = build_model(model_dir, args.visits)
        print(f"model {manifest['version']}: {manifest['n_titles']} titles, "
              f"{manifest['n_members']} members ({time.perf_counter() - t:.1f} s)", flush=True)
    res: dict[str, Any] = {"seconds": args.seconds, "connections": args.connections}
    env = {"REELPICK_MODEL_DIR": str(model_dir), "REELPICK_API_KEY": KEY,
           "REELPICK_N_ROWS": "10", "REELPICK_N_POSITIONS": "20"}

    with Server("bench_serve:hello_app") as hello:
        res["hello"] = wrk(hello.url + "/hello", seconds=args.seconds,
                           connections=args.connections)
    print("hello", res["hello"], flush=True)

    members = known_members(model_dir)
    lua_members = ",".join(f'"{m}"' for m in members)
    with Server("reelpick.serve.app:app_from_env",
                {**env, "REELPICK_DATA_DIR": str(work / "data-home")}) as srv:
        wrk(srv.url, seconds=2, connections=4, lua=HOMEPAGE_LUA % (1, lua_members))  # warm-up
        res["homepage"] = wrk(srv.url, seconds=args.seconds, connections=args.connections,
                              lua=HOMEPAGE_LUA % (2, lua_members))
        print("homepage", res["homepage"], flush=True)
        half = res["homepage"]["rps"] / 2
        # paced: each of C connections waits C / rate seconds between requests
        paced = HOMEPAGE_LUA % (3, lua_members) + PACED_LUA % int(1000 * PACED_CONN / half)
        res["homepage_half"] = wrk(srv.url, seconds=args.seconds, connections=PACED_CONN,
                                   lua=paced)
        res["homepage_half"]["rate"] = half
        print("homepage at half load", res["homepage_half"], flush=True)
        if args.soak:
            rss0 = srv.rss_mb()
            soak = wrk(srv.url, seconds=args.soak, connections=PACED_CONN, lua=paced)
            soak.update(rate=half, rss_start_mb=rss0, rss_end_mb=srv.rss_mb())
            soak["rss_growth"] = soak["rss_end_mb"] / rss0 - 1
            res["soak"] = soak
            print("soak", soak, flush=True)

    for mode, flag in (("group", "true"), ("per_request", "false")):
        with Server("reelpick.serve.app:app_from_env",
                    {**env, "REELPICK_DATA_DIR": str(work / f"data-{mode}"),
                     "REELPICK_GROUP_COMMIT": flag}) as srv:
            page = httpx.get(srv.url + "/v1/homepage?member=m1", timeout=30).json()
            ds = [it["decision_id"] for row in page["rows"] for it in row["items"]]
            lua = EVENTS_LUA % (",".join(f'"{d}"' for d in ds), f"{mode}-{time.time_ns()}-",
                                KEY)
            r = wrk(srv.url, seconds=args.seconds, connections=64, lua=lua)
            metrics = httpx.get(srv.url + "/metrics", timeout=30).text
            m = re.search(r"reelpick_log_transaction_jobs_count ([\d.e+]+)", metrics)
            s = re.search(r"reelpick_log_transaction_jobs_sum ([\d.e+]+)", metrics)
            if m and s:
                r["transactions"] = int(float(m.group(1)))
                r["jobs_per_transaction"] = float(s.group(1)) / max(float(m.group(1)), 1)
            res[f"events_{mode}"] = r
            print("events", mode, r, flush=True)
    shutil.rmtree(work, ignore_errors=True)

    out_json = ROOT / "benchmarks" / "results" / "serve.json"
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(res, indent=2))
    write_section(args.out, "serve", report(res, args))


def report(res: dict[str, Any], args: argparse.Namespace) -> str:
    h, hp, half = res["hello"], res["homepage"], res["homepage_half"]
    g, p = res["events_group"], res["events_per_request"]
    ratio = hp["rps"] / h["rps"]
    cmd = "python benchmarks/bench_serve.py" + (f" --soak {args.soak}" if args.soak else "")
    lines = [
        header("Home page service (loopback)", cmd),
        f"One uvicorn process per server (httptools, uvloop), 1 BLAS thread, 127.0.0.1; wrk "
        f"1 thread, {args.connections} connections, {args.seconds} s per closed-loop run; the "
        f"half-load run paces {PACED_CONN} connections (wrk `delay()`) to half the max "
        "throughput; its latency excludes the pacing gap. "
        "Homepage: 10 rows x 20 titles from the `large` world (10,000 titles, 100,000 members), "
        "members drawn from those the model knows, ALS + context popularity, epsilon-greedy "
        "0.1, artwork drawn, the page logged durably (group commit, synchronous=FULL) before "
        "the answer. The load generator shares the machine's 2 cores with the server.\n",
        "| run | req/s | p50 ms | p99 ms | non-2xx |",
        "|---|---:|---:|---:|---:|",
        f"| FastAPI hello world | {h['rps']:,.0f} | {h['p50_ms']:.2f} | {h['p99_ms']:.2f} | "
        f"{h['non_2xx']} |",
        f"| /v1/homepage, max load | {hp['rps']:,.0f} | {hp['p50_ms']:.1f} | "
        f"{hp['p99_ms']:.1f} | {hp['non_2xx']} |",
        f"| /v1/homepage, half load (paced to {half['rate']:,.0f}/s) | "
        f"{half['rps']:,.0f} | {half['p50_ms']:.1f} | {half['p99_ms']:.1f} | "
        f"{half['non_2xx']} |",
        f"| POST /v1/events, 1 event/request, group commit | {g['rps']:,.0f} | "
        f"{g['p50_ms']:.1f} | {g['p99_ms']:.1f} | {g['non_2xx']} |",
        f"| POST /v1/events, 1 event/request, one fsync per request | {p['rps']:,.0f} | "
        f"{p['p50_ms']:.1f} | {p['p99_ms']:.1f} | {p['non_2xx']} |",
        "",
        f"Homepage / hello world = **{ratio:.2f}x** (target >= 0.25x); p99 at half load "
        f"**{half['p99_ms']:.1f} ms** (target <= 50 ms). Group commit: "
        f"{g.get('jobs_per_transaction', float('nan')):.1f} requests per transaction, "
        f"{g['rps'] / max(p['rps'], 1e-9):.1f}x the throughput of one fsync per request.",
    ]
    if "soak" in res:
        s = res["soak"]
        lines.append(
            f"\nSoak: {s['requests']:,} homepage requests in {args.soak} s (paced to "
            f"{s['rate']:,.0f}/s), {s['non_2xx']} non-2xx, socket errors: "
            f"{s['socket_errors'] or 'none'}, RSS {s['rss_start_mb']:.0f} -> "
            f"{s['rss_end_mb']:.0f} MB "
            f"({100 * s['rss_growth']:+.1f}%, target <= +10%).")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
