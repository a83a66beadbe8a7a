"""Against a real uvicorn on 127.0.0.1: group commit, reload under load, export."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from reelpick.data.schema import IMPRESSIONS, OUTCOMES, join_outcomes
from reelpick.serve.export import export_logs
from reelpick.serve.model_dir import read_manifest
from tests.serve.conftest import API_KEY, LiveServer, publish_test_policy

KEY = {"X-API-Key": API_KEY}


def decisions(c: httpx.Client, n_pages: int = 3) -> list[str]:
    out = []
    for i in range(n_pages):
        page = c.get("/v1/homepage", params={"member": f"m{i}", "hour": 9}).json()
        out += [it["decision_id"] for row in page["rows"] for it in row["items"]]
    return out


def test_concurrent_posts_are_group_committed(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url, timeout=30) as c:
        ds = decisions(c)
    store = live_server.state.store
    before = store.transactions
    n_requests = 120

    def post(i: int) -> int:
        with httpx.Client(base_url=live_server.url, timeout=30) as c:
            body = {"events": [{"event_id": f"g{i}", "decision_id": ds[i % len(ds)],
                                "kind": "play"}]}
            return c.post("/v1/events", json=body, headers=KEY).status_code

    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(post, range(n_requests)))
    assert codes == [200] * n_requests
    used = store.transactions - before
    assert used < n_requests, f"{used} transactions for {n_requests} requests"
    assert store.jobs_committed >= n_requests


def test_reload_under_concurrent_requests(live_server: LiveServer, model_dir: Path,
                                          sim_tables: dict[str, Any]) -> None:
    old = read_manifest(model_dir)["version"]
    stop = threading.Event()
    codes: list[int] = []
    versions: set[str] = set()

    def hammer() -> None:
        with httpx.Client(base_url=live_server.url, timeout=30) as c:
            while not stop.is_set():
                r = c.get("/v1/homepage", params={"member": "m3"})
                codes.append(r.status_code)
                if r.status_code == 200:
                    versions.add(r.json()["model_version"])

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        publish_test_policy(model_dir, sim_tables, seed=9)
        with httpx.Client(base_url=live_server.url, timeout=60) as c:
            r = c.post("/v1/admin/reload", headers=KEY)
            assert r.status_code == 200, r.text
            new = r.json()["model_version"]
            after = c.get("/v1/homepage", params={"member": "m3"}).json()["model_version"]
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert new != old and after == new
    assert codes and set(codes) == {200}
    assert new in versions


def test_export_validates_and_joins(live_server: LiveServer, tmp_path: Path) -> None:
    with httpx.Client(base_url=live_server.url, timeout=30) as c:
        ds = decisions(c, 4)
        events = [{"event_id": f"x{i}", "decision_id": d, "kind": "play"}
                  for i, d in enumerate(ds[:10])]
        events += [{"event_id": f"w{i}", "decision_id": d, "kind": "watch",
                    "watch_seconds": 30.0} for i, d in enumerate(ds[:5])]
        events += [{"event_id": f"v{i}", "decision_id": d, "kind": "impression"}
                   for i, d in enumerate(ds[:20])]
        assert c.post("/v1/events", json={"events": events}, headers=KEY).status_code == 200
    res = export_logs(live_server.state.settings.db_path, tmp_path / "out")
    imp = pd.read_parquet(res.impressions_path)
    out = pd.read_parquet(res.outcomes_path)
    IMPRESSIONS.validate(imp, source="impressions")
    OUTCOMES.validate(out, source="outcomes")
    assert len(imp) == len(ds) == res.impressions and res.outcomes == 10
    assert set(imp["decision_id"]) == set(ds)
    assert imp["viewed"].sum() == 20
    joined = join_outcomes(imp, out)
    assert joined["play"].sum() == 10 and joined["watch_seconds"].sum() == 150.0
    assert ((imp["propensity"] > 0) & (imp["propensity"] <= 1)).all()
    served = live_server.state.bundle
    assert served.provider.name == "test-policy"  # the published page policy's own name
    assert (imp["policy"] == "test-policy").all()
    assert (imp["model_version"] == served.version).all()
