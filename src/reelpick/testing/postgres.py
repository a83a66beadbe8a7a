"""A throwaway PostgreSQL server for tests of the PostgreSQL event log
(:mod:`reelpick.serve.pgstore`): the service tests' fixtures and
``benchmarks/bench_serve_ray.py`` start one.

``initdb`` into a fresh folder under ``/tmp``, ``pg_ctl start`` listening on a free 127.0.0.1
port only, with its unix socket in the same folder, trust authentication for one superuser
(``reelpick``), and ``pg_ctl stop`` + ``rm -rf`` at the end. PostgreSQL refuses to run as root,
so when the tests run as root the server runs as the ``postgres`` system user (``runuser``).

Binaries: ``$REELPICK_PG_BIN`` if set, else the newest ``/usr/lib/postgresql/*/bin`` (Debian's
``postgresql`` package), else ``initdb`` on ``PATH``. :func:`unavailable` says why a server
cannot be started (the fixtures skip with that reason).
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

__all__ = ["PostgresServer", "pg_bin", "unavailable", "wait_ready"]

RUN_AS = "postgres"
SUPERUSER = "reelpick"


def pg_bin() -> Path | None:
    """The folder of ``initdb``/``pg_ctl``/``postgres``, or ``None``."""
    env = os.environ.get("REELPICK_PG_BIN")
    candidates = [Path(env)] if env else []
    candidates += [Path(p).parent for p in sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
        reverse=True)]
    which = shutil.which("initdb")
    if which:
        candidates.append(Path(which).parent)
    for c in candidates:
        if all((c / b).is_file() for b in ("initdb", "pg_ctl", "postgres")):
            return c
    return None


def unavailable() -> str | None:
    """Why a throwaway server cannot be started here (``None``: it can)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install -e '.[ray]')"
    if pg_bin() is None:
        return ("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: "
                "apt-get install postgresql, or set REELPICK_PG_BIN")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(RUN_AS)
        except KeyError:
            return (f"running as root and there is no {RUN_AS!r} user to run PostgreSQL as "
                    f"(useradd --system {RUN_AS})")
        if shutil.which("runuser") is None:
            return "running as root and runuser (util-linux) is missing"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One throwaway cluster. ``start()`` / ``stop()``; :meth:`create_database` gives each test
    its own database; :attr:`url` is the ``postgres`` database's URL."""

    def __init__(self) -> None:
        why = unavailable()
        if why:
            raise RuntimeError(why)
        self.bin = pg_bin()
        assert self.bin is not None
        self.root = Path(tempfile.mkdtemp(prefix="reelpick-pg-", dir="/tmp"))
        self.data = self.root / "data"
        self.logfile = self.root / "server.log"
        self.port = 0
        self._as_root = os.geteuid() == 0
        if self._as_root:
            pw = pwd.getpwnam(RUN_AS)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self.running = False

    # ------------------------------------------------------------------ commands
    def _cmd(self, *args: str) -> list[str]:
        prefix = ["runuser", "-u", RUN_AS, "--"] if self._as_root else []
        return [*prefix, *args]

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self._cmd(*args), cwd=self.root, capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, "LC_ALL": "C.UTF-8"})

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.logfile.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def url_for(self, dbname: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def start(self, tries: int = 3) -> PostgresServer:
        assert self.bin is not None
        if not (self.data / "PG_VERSION").exists():
            r = self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
                          "-A", "trust", "-E", "UTF8", "--no-sync")
            if r.returncode != 0:
                raise RuntimeError(f"initdb failed: {r.stderr[-2000:]}")
        err = ""
        for _ in range(tries):
            self.port = _free_port()
            opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} "
                    f"-c unix_socket_directories={self.root} -c max_connections=60 "
                    "-c shared_buffers=32MB -c fsync=on -c synchronous_commit=on")
            r = self._run(str(self.bin / "pg_ctl"), "start", "-D", str(self.data), "-w",
                          "-t", "60", "-l", str(self.logfile), "-o", opts)
            if r.returncode == 0:
                self.running = True
                atexit.register(self.stop)
                return self
            err = r.stderr + self.log_tail()
        raise RuntimeError(f"pg_ctl start failed: {err[-3000:]}")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``mode="immediate"`` is a crash: no checkpoint, recovery on start)."""
        if not self.running or self.bin is None:
            return
        r = self._run(str(self.bin / "pg_ctl"), "stop", "-D", str(self.data), "-m", mode,
                      "-w", "-t", "60")
        if r.returncode != 0 and mode != "immediate":
            self._run(str(self.bin / "pg_ctl"), "stop", "-D", str(self.data), "-m",
                      "immediate", "-w", "-t", "60")
        self.running = False

    def crash_restart(self) -> None:
        """``pg_ctl stop -m immediate`` (every server process quits without a checkpoint, as
        after a crash) and start again on the same port: only WAL-flushed commits survive."""
        port = self.port
        self.stop("immediate")
        assert self.bin is not None
        opts = (f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={self.root} "
                "-c max_connections=60 -c shared_buffers=32MB -c fsync=on")
        r = self._run(str(self.bin / "pg_ctl"), "start", "-D", str(self.data), "-w", "-t", "60",
                      "-l", str(self.logfile), "-o", opts)
        if r.returncode != 0:
            raise RuntimeError(f"pg_ctl restart failed: {r.stderr}{self.log_tail()}")
        self.running = True

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    # ------------------------------------------------------------------ databases
    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; returns its URL."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def wait_ready(url: str, timeout: float = 30.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(url, connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
