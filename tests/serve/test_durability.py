"""kill -9 the server under load and restart: every event that got a 2xx is in the log."""

from __future__ import annotations

import random
import sqlite3
import threading
import time

import httpx
import pytest

from reelpick.serve import Settings
from reelpick.serve.store import integrity_check
from tests.serve.conftest import API_KEY, ServerProcess

KEY = {"X-API-Key": API_KEY}


def run_kills(settings: Settings, kills: int, seed: int = 0) -> tuple[set[str], int]:
    rnd = random.Random(seed)
    server = ServerProcess(settings)
    acked: set[str] = set()
    lock = threading.Lock()
    sent = 0
    try:
        for round_ in range(kills):
            server.start()
            with httpx.Client(base_url=server.url, timeout=10) as c:
                page = c.get("/v1/homepage", params={"member": "m1"}).json()
            ds = [it["decision_id"] for row in page["rows"] for it in row["items"]]
            stop = threading.Event()

            def load(worker: int) -> None:
                nonlocal sent
                i = 0
                with httpx.Client(base_url=server.url, timeout=10) as c:
                    while not stop.is_set():
                        ids = [f"r{round_}-w{worker}-{i}-{k}" for k in range(5)]
                        i += 1
                        body = {"events": [{"event_id": e, "decision_id": rnd.choice(ds),
                                            "kind": "play"} for e in ids]}
                        try:
                            r = c.post("/v1/events", json=body, headers=KEY)
                        except httpx.HTTPError:
                            return
                        with lock:
                            sent += 1
                            if r.status_code == 200:
                                acked.update(ids)

            threads = [threading.Thread(target=load, args=(w,)) for w in range(4)]
            for t in threads:
                t.start()
            time.sleep(rnd.uniform(0.2, 0.8))
            server.kill()
            stop.set()
            for t in threads:
                t.join()
    finally:
        server.stop()
    return acked, sent


def check_log(settings: Settings, acked: set[str]) -> None:
    assert integrity_check(settings.db_path) == "ok"
    conn = sqlite3.connect(settings.db_path)
    logged = {e for (e,) in conn.execute("SELECT event_id FROM events")}
    conn.close()
    lost = acked - logged
    assert not lost, f"{len(lost)} acknowledged events lost, e.g. {sorted(lost)[:3]}"


def test_kill_minus_9_loses_no_acknowledged_event(settings: Settings) -> None:
    acked, sent = run_kills(settings, kills=2)
    assert len(acked) > 50 and sent > 10
    check_log(settings, acked)


@pytest.mark.slow
def test_twenty_kills(settings: Settings) -> None:
    acked, sent = run_kills(settings, kills=20, seed=1)
    check_log(settings, acked)
    print(f"20 kills (SQLite): {len(acked)} events acknowledged in {sent} requests; 0 lost; "
          "integrity ok")
