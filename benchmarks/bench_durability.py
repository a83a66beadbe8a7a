"""Durability of the event log under kill -9: the service's fault tests, run and recorded.

Runs the slow fault tests of the service (``tests/serve/test_durability.py`` and
``tests/serve/test_pg_durability.py``) in a pytest subprocess: under load from 4 client threads,
the server is killed with SIGKILL 20 times at random moments and restarted; afterwards every event
that received a 2xx must be in the log (0 lost) and the log must pass its integrity check
(SQLite ``PRAGMA integrity_check``; PostgreSQL amcheck). The PostgreSQL run then also crashes
the database itself 3 times under load (``pg_ctl stop -m immediate``). The PostgreSQL test
starts a throwaway server on loopback and is skipped when PostgreSQL is not installed.

Run: ``.venv/bin/python benchmarks/bench_durability.py`` (about a minute). Writes the
``durability`` section of BENCHMARKS.md (``--out`` for another file).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import header, write_section  # noqa: E402

TESTS = ["tests/serve/test_durability.py::test_twenty_kills",
         "tests/serve/test_pg_durability.py::test_twenty_kills_and_database_crashes"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-m", "slow",
                           "-p", "no:cacheprovider", *TESTS], cwd=ROOT, capture_output=True,
                          text=True, timeout=1800)
    seconds = time.perf_counter() - t0
    out = proc.stdout + proc.stderr
    lines = re.findall(r"^\.?(20 kills \(.*)$", out, re.M)
    summary = (re.findall(r"^=*\s*(\d+ (?:passed|failed|skipped|error).*?)\s*=*$", out, re.M)
               or ["(no pytest summary)"])[-1]
    print(out[-3000:])
    body = [header("Durability under kill -9 (event log)",
                   "python benchmarks/bench_durability.py"), "",
            "The service's slow fault tests, run by the script: 4 client threads post batches "
            "of 5 play events; the server is killed with SIGKILL 20 times at random moments "
            "(0.2-0.8 s into each run) and restarted; then every event that got a 2xx must be "
            "in the log and the log must pass its integrity check. PostgreSQL: the same, then "
            "3 crashes of the database server itself under load (`pg_ctl stop -m immediate`).",
            "", f"pytest: **{summary}** in {seconds:.0f} s (exit code {proc.returncode}).", ""]
    body += [f"- {line}" for line in lines] or ["- (no result lines: see the pytest output)"]
    write_section(args.out, "durability", "\n".join(body) + "\n")
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
