"""Fixtures of the service tests: a small published page policy (once per session), settings,
an in-process client, and a real uvicorn server on a free 127.0.0.1 port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from reelpick.serve import Settings, create_app
from reelpick.serve.model_dir import publish_policy
from reelpick.testing.postgres import PostgresServer, unavailable

with warnings.catch_warnings():  # starlette warns that its TestClient will move to httpx2
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

API_KEY = "test-key-123"
SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the session (skips with the reason when none can
    be started here)."""
    why = unavailable()
    if why:
        pytest.skip(f"PostgreSQL tests skipped: {why}")
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database of the session's server (dropped afterwards)."""
    url = pg_server.create_database()
    yield url
    pg_server.drop_database(url)


@pytest.fixture(scope="session")
def sim_tables() -> dict[str, Any]:
    """A small simulated world's logs (the tables ``reelpick simulate`` writes): the pages an
    exploring popularity policy served, their outcomes, all plays, titles and artworks."""
    from reelpick.policies import PopularPolicy
    from reelpick.world import World, WorldConfig

    world = World(WorldConfig.preset("small"), seed=3)
    log = world.simulate(PopularPolicy(epsilon=0.5, artwork="random"), 1_500, seed=3)
    return {"impressions": log.impressions(), "outcomes": log.outcomes(),
            "interactions": log.interactions(), "titles": world.titles(),
            "artworks": world.artworks()}


#: The test policy's page (4 x 6 slots) and exploration share.
N_ROWS, N_POSITIONS, EPSILON = 4, 6, 0.3


def publish_test_policy(out: Path, tables: dict[str, Any], *, seed: int = 0,
                        name: str = "test-policy", **config: Any) -> dict[str, Any]:
    """Train a small :class:`~reelpick.page.PagePolicy` on ``tables`` (:func:`sim_tables`; 10
    trees, under a second), publish it into model directory ``out`` and return the manifest.
    Another ``seed`` gives another version; ``config`` overrides ``PagePolicyConfig`` fields."""
    from reelpick.page import PagePolicyConfig, train_page_policy

    cfg = PagePolicyConfig(**{"n_rows": N_ROWS, "n_positions": N_POSITIONS, "epsilon": EPSILON,
                              "trees": 10, "train_rows": 20_000, "seed": seed, **config})
    policy = train_page_policy(tables["impressions"], tables["outcomes"], tables["titles"],
                               artworks=tables["artworks"], interactions=tables["interactions"],
                               config=cfg, name=name)
    with tempfile.TemporaryDirectory(prefix="reelpick-test-policy-") as tmp:
        return publish_policy(out, policy.save(Path(tmp) / "policy"))


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory, sim_tables: dict[str, Any]) -> Path:
    """A model directory serving the test policy (:func:`publish_test_policy`)."""
    out = tmp_path_factory.mktemp("model")
    publish_test_policy(out, sim_tables)
    return out


@pytest.fixture(scope="session")
def greedy_model_dir(tmp_path_factory: pytest.TempPathFactory, sim_tables: dict[str, Any]
                     ) -> Path:
    """The test policy without exploration and with first images: deterministic pages."""
    out = tmp_path_factory.mktemp("greedy-model")
    publish_test_policy(out, sim_tables, name="test-greedy", epsilon=0.0, artwork="first")
    return out


@pytest.fixture
def make_settings(model_dir: Path, tmp_path: Path) -> Callable[..., Settings]:
    def make(**kw: Any) -> Settings:
        base: dict[str, Any] = dict(model_dir=model_dir, data_dir=tmp_path / "data",
                                    api_key=API_KEY, seed=11)
        base.update(kw)
        return Settings(**base)
    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


class LiveServer:
    """uvicorn serving ``app`` in a thread on 127.0.0.1 (port chosen by the OS)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0,
                                                    log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)

    @property
    def state(self) -> Any:
        return self.app.state.service


@pytest.fixture
def live_server(settings: Settings) -> Iterator[LiveServer]:
    with LiveServer(create_app(settings)) as srv:
        yield srv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``uvicorn --factory reelpick.serve.app:app_from_env`` in a subprocess (kill -9 tests)."""

    def __init__(self, settings: Settings, *, workers: int = 1,
                 env: dict[str, str] | None = None) -> None:
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "PYTHONPATH": str(SRC),
                    "REELPICK_MODEL_DIR": str(settings.model_dir),
                    "REELPICK_DATA_DIR": str(settings.data_dir),
                    "REELPICK_API_KEY": API_KEY}
        if settings.event_log is not None:
            self.env["REELPICK_EVENT_LOG"] = settings.event_log.get_secret_value()
        self.env.update(env or {})
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "reelpick.serve.app:app_from_env",
             "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
            + (["--workers", str(self.workers)] if self.workers > 1 else []),
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"server exited: {err[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not become healthy")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # SIGKILL: no shutdown hooks
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
