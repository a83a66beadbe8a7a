"""WorldConfig: presets, files, and an invalid-input table."""

from __future__ import annotations

import json

import pytest

from reelpick.world import World, WorldConfig


def test_presets_sizes() -> None:
    small, default, large = (WorldConfig.preset(n) for n in ("small", "default", "large"))
    assert small.n_members < default.n_members < large.n_members
    assert large.n_members >= 100_000 and large.n_titles >= 10_000
    assert small.name == "small" and default.name == "default"
    assert WorldConfig.preset("small", n_titles=99).n_titles == 99


def test_from_json_and_toml(tmp_path) -> None:
    j = tmp_path / "w.json"
    j.write_text(json.dumps({"preset": "small", "n_members": 77, "countries": ["US", "GB"],
                             "utc_offsets": [-5, 0]}))
    cfg = WorldConfig.from_file(j)
    assert cfg.n_members == 77 and cfg.countries == ("US", "GB")
    assert cfg.page_rows == WorldConfig.preset("small").page_rows
    t = tmp_path / "w.toml"
    t.write_text('preset = "small"\nn_titles = 120\ndrift = 0.0\n')
    cfg = WorldConfig.from_file(t)
    assert (cfg.n_titles, cfg.drift) == (120, 0.0)


def test_round_trip_to_dict(tmp_path) -> None:
    cfg = WorldConfig.preset("small")
    p = tmp_path / "c.json"
    p.write_text(json.dumps(cfg.to_dict()))
    assert WorldConfig.from_file(p) == cfg


@pytest.mark.parametrize("content, suffix, match", [
    ('{"n_member": 3}', ".json", r"unknown config key\(s\) \['n_member'\]"),
    ('{"preset": "huge"}', ".json", "unknown preset 'huge'"),
    ("n_members = [", ".toml", "cannot parse config"),
    ("n_members: 3", ".yaml", "unsupported config type"),
    ("[1, 2]", ".json", "must be a table/object"),
    ('{"drift": 2.0}', ".json", r"drift: must be in \[0.0, 1.0\]"),
])
def test_bad_files(tmp_path, content: str, suffix: str, match: str) -> None:
    p = tmp_path / f"c{suffix}"
    p.write_text(content)
    with pytest.raises(ValueError, match=match):
        WorldConfig.from_file(p)


def test_missing_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no such config file"):
        WorldConfig.from_file(tmp_path / "none.json")


@pytest.mark.parametrize("changes, match", [
    ({"n_members": 0}, "n_members: must be a positive integer"),
    ({"n_titles": 2.5}, "n_titles: must be a positive integer"),
    ({"n_genres": 13}, "n_genres: at most 12"),
    ({"n_genres": 3}, "n_genres: must be >= 4"),
    ({"countries": ()}, "countries: need a non-empty list"),
    ({"countries": ("US", "US", "GB")}, "countries: need a non-empty list of distinct"),
    ({"utc_offsets": (0,)}, "utc_offsets: need one offset per country"),
    ({"utc_offsets": (0, 0, 20)}, "utc_offsets: whole hours"),
    ({"start": 1_704_067_201}, "start: must be a Unix time at midnight"),
    ({"min_artworks": 5, "max_artworks": 4}, "max_artworks: must be >= min_artworks"),
    ({"hour_weights": (1.0,) * 23}, "hour_weights: need 24"),
    ({"device_short": (0.0, 1.0)}, "device_short: need one value per device"),
    ({"device_short": (0.0, float("inf"), 0.0, 0.0)}, "device_short: values must be finite"),
    ({"new_title_share": 1.0}, r"new_title_share: must be in \[0.0, 1.0\)"),
    ({"availability": -0.1}, "availability: must be in"),
    ({"row_decay": 0.0}, r"row_decay: must be in \(0.0, 1.0\]"),
    ({"position_decay": 1.5}, "position_decay: must be in"),
    ({"recent_half_life_days": 0.0}, "recent_half_life_days: must be in"),
    ({"watch_concentration": -1.0}, "watch_concentration: must be in"),
    ({"taste_scale": float("nan")}, "taste_scale: must be a finite number"),
    ({"seen_penalty": -1.0}, "seen_penalty: must be >= 0"),
    ({"mood_rate": 1.0}, "mood_rate: must be in"),
    ({"cell_share": 1.2}, "cell_share: must be in"),
    ({"batch_size": 0}, "batch_size: must be a positive integer"),
])
def test_invalid_configs(changes: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        WorldConfig.preset("small", **changes)


def test_unknown_preset_and_keyword() -> None:
    with pytest.raises(ValueError, match="preset: unknown preset 'tiny'"):
        WorldConfig.preset("tiny")
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['colour'\]"):
        WorldConfig.from_dict({"colour": "red"})


@pytest.mark.parametrize("args, error, match", [
    (({"n_members": 3},), TypeError, "config: expected a WorldConfig"),
    ((WorldConfig.preset("small"), -1), ValueError, "seed: must be a non-negative integer"),
])
def test_invalid_world(args: tuple, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        World(*args)
