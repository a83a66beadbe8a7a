"""Docs that run: every docstring example in the package and the README's tour."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re

import pytest

import reelpick
from tests.conftest import PROJECT

MODULES = sorted(m.name for m in pkgutil.walk_packages(reelpick.__path__, "reelpick."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_readme_tour_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = (PROJECT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "README has no python example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
