"""``reelpick serve`` without a model directory: the demo page policy it builds first."""

from __future__ import annotations

import json

import numpy as np

from reelpick.cli import serve as serve_cli
from reelpick.serve import PageContext, Settings, load_bundle
from reelpick.serve.model_dir import POLICY_KIND, read_manifest


def test_demo_policy_is_built_once_and_served(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(serve_cli, "DEMO_VISITS", 800)  # the shape, not the quality, here
    settings = Settings(data_dir=tmp_path / "data", demo_epsilon=0.2)
    out = serve_cli.demo_policy_dir(settings)
    manifest = read_manifest(out)
    assert out == tmp_path / "data" / "demo-model"
    assert manifest["kind"] == POLICY_KIND and manifest["name"] == "demo"
    header = json.loads((out / manifest["path"] / "policy.json").read_text())
    assert header["config"]["epsilon"] == 0.2  # DEMO_EPSILON
    assert serve_cli.demo_policy_dir(settings) == out  # built once
    assert read_manifest(out)["version"] == manifest["version"]
    bundle = load_bundle(settings.model_copy(update={"model_dir": out}))
    page = bundle.provider.compose("m1", PageContext("tv", bundle.catalog.countries[0], 20, 5,
                                                     1_704_500_000), np.random.default_rng(0))
    page.check()
    assert bundle.provider.name == "demo" and page.n_slots > 0
