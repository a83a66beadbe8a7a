"""The model watch (``REELPICK_WATCH_SECONDS``): every worker process of a real uvicorn comes to
the published version without a reload request, and a broken publication keeps the old model."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelpick.serve.model_dir import MANIFEST, read_manifest
from reelpick.serve.settings import Settings
from tests.serve.conftest import ServerProcess, publish_test_policy


def served_versions(url: str, n: int = 24) -> set[str]:
    """The versions that ``n`` fresh connections are answered with (each may reach another
    worker)."""
    out = set()
    for i in range(n):
        with httpx.Client(base_url=url, timeout=30) as c:
            out.add(c.get("/v1/homepage", params={"member": f"m{i}"}).json()["model_version"])
    return out


def wait_for(url: str, version: str, seconds: float = 60.0) -> set[str]:
    deadline = time.monotonic() + seconds
    seen: set[str] = set()
    while time.monotonic() < deadline:
        seen = served_versions(url)
        if seen == {version}:
            return seen
        time.sleep(0.2)
    return seen


def test_every_worker_picks_up_a_published_version(tmp_path: Path, sim_tables: dict[str, Any]
                                                   ) -> None:
    model = tmp_path / "model"
    first = publish_test_policy(model, sim_tables)["version"]
    settings = Settings(model_dir=model, data_dir=tmp_path / "data")
    srv = ServerProcess(settings, workers=2, env={"REELPICK_WATCH_SECONDS": "0.2"})
    srv.start(timeout=120)
    try:
        assert served_versions(srv.url) == {first}
        second = publish_test_policy(model, sim_tables, seed=5)["version"]
        assert read_manifest(model)["version"] == second
        assert second != first
        assert wait_for(srv.url, second) == {second}  # no POST /v1/admin/reload was sent
        # a publication that cannot load: the old model keeps serving on every worker
        manifest = json.loads((model / MANIFEST).read_text())
        (model / MANIFEST).write_text(json.dumps({**manifest, "version": "broken",
                                                  "path": "versions/missing"}))
        time.sleep(1.0)
        assert served_versions(srv.url) == {second}
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            assert c.get("/healthz").status_code == 200
    finally:
        srv.stop()


def test_watch_setting_is_validated() -> None:
    with pytest.raises(ValueError, match="watch_seconds"):
        Settings(watch_seconds=-1)
