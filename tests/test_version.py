"""The version is defined once, in ``reelpick.__version__``; the build reads it from there."""

from __future__ import annotations

import re
import tomllib

import reelpick
from tests.conftest import PROJECT


def test_pyproject_reads_the_version_from_the_package():
    meta = tomllib.loads((PROJECT / "pyproject.toml").read_text())
    assert "version" not in meta["project"] and "version" in meta["project"]["dynamic"]
    assert meta["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "reelpick.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.dev\d+)?", reelpick.__version__)


def test_no_other_copy_of_the_version_in_the_package():
    v = re.escape(reelpick.__version__)
    hits = [str(p.relative_to(PROJECT)) for p in (PROJECT / "src" / "reelpick").rglob("*.py")
            if re.search(rf"[\"']{v}[\"']", p.read_text())]
    assert hits == ["src/reelpick/__init__.py"]
