"""Ray Serve: 2 replicas of the app behind Ray's HTTP proxy on 127.0.0.1, both logging to the
tests' PostgreSQL server. Slow (Ray's start-up and two model loads take ~30-60 s here)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from reelpick.serve import Settings
from reelpick.serve.pgstore import pg_integrity_check
from tests.serve.conftest import API_KEY, SRC, free_port

KEY = {"X-API-Key": API_KEY}

pytest.importorskip("ray.serve", reason="Ray Serve is not installed (pip install -e '.[ray]')")


def wait_healthy(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not healthy after {timeout} s")
        time.sleep(0.2)


def test_build_app_refuses_without_a_shared_log(make_settings: Callable[..., Settings]) -> None:
    from reelpick.serve.ray_app import build_app

    with pytest.raises(ValueError, match="REELPICK_EVENT_LOG"):
        build_app(make_settings())


def test_cli_ray_backend_needs_a_postgres_log(tmp_path) -> None:
    from typer.testing import CliRunner

    from reelpick.cli import app

    env = {k: v for k, v in os.environ.items() if k != "REELPICK_EVENT_LOG"}
    res = CliRunner(env=env).invoke(app, ["serve", "--backend", "ray", "--data-dir",
                                          str(tmp_path)])
    assert res.exit_code == 2 and "--event-log" in res.output


@pytest.mark.slow
def test_two_replicas_log_to_postgres(make_settings: Callable[..., Settings],
                                      pg_url: str) -> None:
    import psycopg

    from reelpick.serve import ray_app

    settings = make_settings(event_log=pg_url, seed=None)
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="rp-ray-", dir="/tmp")  # short: Ray's socket paths
    try:
        url = ray_app.start(settings, replicas=2, port=port, num_cpus=0.5,
                            ray_init={"num_cpus": 2, "_temp_dir": tmp})
        wait_healthy(url)

        def page(i: int) -> list[str]:
            r = httpx.get(url + "/v1/homepage", params={"member": f"m{i % 7}"}, timeout=30)
            assert r.status_code == 200, r.text
            return [it["decision_id"] for row in r.json()["rows"] for it in row["items"]]

        def post(i: int, ds: list[str]) -> dict[str, int]:
            body = {"events": [{"event_id": f"ray-{i}-{k}", "decision_id": ds[k],
                                "kind": "play"} for k in range(3)]}
            r = httpx.post(url + "/v1/events", json=body, headers=KEY, timeout=30)
            assert r.status_code == 200, r.text
            return r.json()

        with ThreadPoolExecutor(8) as pool:
            pages = list(pool.map(page, range(40)))
            results = list(pool.map(post, range(40), pages))
        assert all(r["accepted"] == 3 for r in results)
        again = post(0, pages[0])  # a retry, to whichever replica: duplicates
        assert again["accepted"] == 0 and again["duplicates"] == 3
        with psycopg.connect(pg_url) as conn:
            n_pages = conn.execute("SELECT count(*) FROM pages").fetchone()[0]
            logged = {e for (e,) in conn.execute("SELECT event_id FROM events")}
            writers = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = 'reelpick-log-writer'").fetchone()[0]
        assert n_pages == 40
        assert logged == {f"ray-{i}-{k}" for i in range(40) for k in range(3)}
        assert writers == 2  # one log connection per replica
        assert pg_integrity_check(pg_url) == "ok"
    finally:
        ray_app.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.slow
def test_cli_serve_backend_ray(model_dir, pg_url: str, tmp_path) -> None:
    """``reelpick serve --backend ray --replicas 2``: serves, logs to PostgreSQL, and Ctrl-C
    stops Serve and the local Ray it started."""
    import psycopg

    port = free_port()
    ray_tmp = tempfile.mkdtemp(prefix="rp-ray-", dir="/tmp")
    env = {**os.environ, "PYTHONPATH": str(SRC), "REELPICK_API_KEY": API_KEY,
           "RAY_TMPDIR": ray_tmp}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from reelpick.cli import main; main()", "serve",
         "--backend", "ray", "--replicas", "2", "--replica-cpus", "0.5",
         "--model-dir", str(model_dir), "--data-dir",
         str(tmp_path), "--event-log", pg_url, "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, timeout=150)
        page = httpx.get(url + "/v1/homepage", params={"member": "m1"}, timeout=30).json()
        d = page["rows"][0]["items"][0]["decision_id"]
        r = httpx.post(url + "/v1/events", headers=KEY, timeout=30, json={
            "events": [{"event_id": "cli-1", "decision_id": d, "kind": "play"}]})
        assert r.status_code == 200 and r.json()["accepted"] == 1
        with psycopg.connect(pg_url) as conn:
            assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 1
        proc.send_signal(signal.SIGINT)
        assert proc.wait(90) == 0, proc.stderr.read().decode()[-3000:] if proc.stderr else ""
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        shutil.rmtree(ray_tmp, ignore_errors=True)
