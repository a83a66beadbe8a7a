"""Throughput of the service by event log and deployment: one uvicorn process logging to SQLite
vs to PostgreSQL, and Ray Serve with 1 vs 2 replicas logging to PostgreSQL.

Run: ``.venv/bin/python benchmarks/bench_serve_ray.py [--seconds 8] [--out FILE]`` (needs
``wrk``, the PostgreSQL server binaries and the ``ray`` extra). A throwaway PostgreSQL server
(:mod:`reelpick.testing.postgres`) and a local Ray instance are started and stopped by the
script; all traffic is on 127.0.0.1 and every load run is bounded in time. Results go to a temp
file (JSON + a Markdown table), not to BENCHMARKS.md: the machine is shared, so req/s swings with
other jobs (the load average before each run is recorded).

Workloads (closed loop, wrk with 1 thread): ``homepage`` = ``GET /v1/homepage`` of known members
(a 10 x 20 page of the shipped page policy, :func:`bench_serve.build_policy`, logged durably
before the answer); ``events`` = ``POST /v1/events`` with one
new ``play`` event per request (durable before the 200).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pin_threads  # noqa: E402

pin_threads(1)

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402

from bench_serve import (  # noqa: E402
    EVENTS_LUA,
    HOMEPAGE_LUA,
    KEY,
    build_policy,
    free_port,
    known_members,
)
from bench_serve import wrk as _wrk  # noqa: E402


def wrk(url: str, lua: str, *, seconds: int, connections: int) -> dict[str, Any]:
    """:func:`bench_serve.wrk` with the machine's load average before the run."""
    load = os.getloadavg()[0]
    return {**_wrk(url, seconds=seconds, connections=connections, lua=lua),
            "load_before": round(load, 2)}


def wait_healthy(url: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become healthy")


def build_model(work: Path, preset: str, visits: int) -> tuple[Path, list[str]]:
    """The page policy of :func:`bench_serve.build_policy` for ``preset``, published in
    ``work / "model"``; returns the model directory and some members it knows."""
    _, model_dir, _ = build_policy(work, visits, preset=preset)
    return model_dir, known_members(model_dir, 500)


def run_load(url: str, members: list[str], seconds: int, tag: str) -> dict[str, Any]:
    lua_members = ",".join(f'"{m}"' for m in members)
    wrk(url, HOMEPAGE_LUA % (1, lua_members), seconds=2, connections=4)  # warm-up
    home = wrk(url, HOMEPAGE_LUA % (2, lua_members), seconds=seconds, connections=16)
    ds: list[str] = []
    with httpx.Client(base_url=url, timeout=30) as c:
        for m in members[:5]:
            for _ in range(10):
                r = c.get("/v1/homepage", params={"member": m})
                if r.status_code == 200:
                    break
                print(f"homepage answered {r.status_code}: {r.text[:200]}", flush=True)
                time.sleep(1.0)
            r.raise_for_status()
            ds += [it["decision_id"] for row in r.json()["rows"] for it in row["items"]]
    events = wrk(url, EVENTS_LUA % (",".join(f'"{d}"' for d in ds[:500]), f"{tag}-", KEY),
                 seconds=seconds, connections=32)
    return {"homepage": home, "events": events}


def uvicorn_server(model_dir: Path, data_dir: Path, event_log: str | None
                   ) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "REELPICK_MODEL_DIR": str(model_dir),
           "REELPICK_DATA_DIR": str(data_dir), "REELPICK_API_KEY": KEY,
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    env.pop("REELPICK_EVENT_LOG", None)
    if event_log:
        env["REELPICK_EVENT_LOG"] = event_log
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "reelpick.serve.app:app_from_env",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
         "--no-access-log"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, f"http://127.0.0.1:{port}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=8, help="length of each load run")
    ap.add_argument("--preset", default="default", help="world preset of the model")
    ap.add_argument("--visits", type=int, default=8_000)
    ap.add_argument("--out", type=Path, default=None,
                    help="result file (default: a new temp file)")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("needs wrk on PATH (apt-get install wrk)")
    from reelpick.testing.postgres import PostgresServer, unavailable

    why = unavailable()
    if why:
        sys.exit(f"needs PostgreSQL: {why}")
    from reelpick.serve.settings import Settings

    work = Path(tempfile.mkdtemp(prefix="rp-bench-ray-", dir="/tmp"))
    out = args.out or Path(tempfile.mkstemp(prefix="bench_serve_ray-", suffix=".json")[1])
    results: dict[str, Any] = {"seconds": args.seconds, "preset": args.preset,
                               "cpus": os.cpu_count(), "runs": {}}
    try:
        t0 = time.perf_counter()
        model_dir, members = build_model(work, args.preset, args.visits)
        print(f"model: {time.perf_counter() - t0:.0f} s", flush=True)
        with PostgresServer() as pg:
            for name, event_log in (("uvicorn + SQLite", None),
                                    ("uvicorn + PostgreSQL", pg.create_database("bench"))):
                proc, url = uvicorn_server(model_dir, work / name.split()[-1], event_log)
                try:
                    wait_healthy(url)
                    results["runs"][name] = run_load(url, members, args.seconds,
                                                     name.split()[-1])
                finally:
                    proc.terminate()
                    proc.wait(30)
                print(name, json.dumps(results["runs"][name]), flush=True)
            from reelpick.serve import ray_app

            ray_tmp = tempfile.mkdtemp(prefix="rp-ray-", dir="/tmp")
            try:
                for replicas in (1, 2):
                    name = f"Ray Serve x{replicas} + PostgreSQL"
                    settings = Settings(model_dir=model_dir, data_dir=work / "ray",
                                        api_key=KEY, event_log=pg.create_database("bench"))
                    port = free_port()
                    url = ray_app.start(settings, replicas=replicas, port=port, num_cpus=0.5,
                                        ray_init={"num_cpus": 2, "_temp_dir": ray_tmp})
                    try:
                        wait_healthy(url)
                        results["runs"][name] = run_load(url, members, args.seconds,
                                                         f"ray{replicas}")
                    finally:
                        ray_app.stop()
                    print(name, json.dumps(results["runs"][name]), flush=True)
            finally:
                shutil.rmtree(ray_tmp, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = ["| deployment | homepage req/s | p50 ms | p99 ms | events req/s | p50 ms | "
             "p99 ms | non-2xx |", "|---|---|---|---|---|---|---|---|"]
    for name, r in results["runs"].items():
        h, e = r["homepage"], r["events"]
        lines.append(f"| {name} | {h['rps']:.0f} | {h['p50_ms']:.1f} | {h['p99_ms']:.1f} | "
                     f"{e['rps']:.0f} | {e['p50_ms']:.1f} | {e['p99_ms']:.1f} | "
                     f"{h['non_2xx'] + e['non_2xx']} |")
    results["table"] = "\n".join(lines)
    out.write_text(json.dumps(results, indent=2))
    print(results["table"])
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
