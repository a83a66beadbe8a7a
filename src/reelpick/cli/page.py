"""The loop on real logs: ``reelpick train --policy page`` -> ``reelpick ope --candidates`` ->
``reelpick promote`` -> ``reelpick serve``.

LOGS (``--logs``)
    a folder with ``impressions`` and ``outcomes`` tables (``.parquet`` or ``.csv``): the output
    of ``reelpick logs export`` (the service's own log) or of ``reelpick simulate``. Titles and
    artworks come from the same folder, or from ``--catalog`` (a folder with ``titles.parquet``
    [``artworks.parquet``], a saved page policy, or a model directory: its current version),
    and ``interactions.parquet`` (all plays, organic ones too) is used when present.

CANDIDATES (``--candidates``)
    a saved page policy folder (``policy.json`` inside) or a folder of them (the ``--out`` of
    ``reelpick train --policy page``).

Example (the documented round trip, see docs/serve.md)::

    reelpick simulate --out runs/sim --visits 20000
    reelpick train --policy page --logs runs/sim --out runs/cand --set epsilon=0.05,0.2
    reelpick ope --logs runs/sim --candidates runs/cand --json runs/ope.json
    reelpick promote --logs runs/sim --candidates runs/cand --model-dir runs/model
    MODEL_DIR=runs/model reelpick serve
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.table import Table

from reelpick.cli._common import console, fail, find_table
from reelpick.data.loaders import load_table

__all__ = ["candidate_configs", "find_candidates", "read_page_logs", "train_candidates",
           "window"]


def _catalog_folder(path: Path) -> Path:
    """A folder holding ``titles.parquet``: ``path`` itself, or a model directory's current
    version."""
    if (path / "manifest.json").exists():
        from reelpick.serve.model_dir import read_manifest

        return path / read_manifest(path)["path"]
    return path


def read_page_logs(logs: Path, catalog: Path | None = None) -> dict[str, Any]:
    """The tables a page policy trains and is evaluated on (module docstring): ``impressions``,
    ``outcomes``, ``titles``, ``artworks`` (or None), ``interactions`` (or None), read once;
    :func:`window` keeps a time window of them."""
    imp_path, out_path = find_table(logs, "impressions"), find_table(logs, "outcomes")
    if imp_path is None:  # plays only: the policy learns from pseudo-pages (page.implicit)
        return _plays_only(logs, catalog)
    cat = _catalog_folder(catalog if catalog is not None else logs)
    titles_path = find_table(cat, "titles")
    if titles_path is None:
        raise FileNotFoundError(f"{cat}: no titles table; give --catalog (a folder with "
                                "titles.parquet, a saved policy or a model directory)")
    art_path = find_table(cat, "artworks")
    inter_path = find_table(logs, "interactions")
    return {"impressions": load_table(imp_path, "impressions"),
            "outcomes": load_table(out_path, "outcomes") if out_path is not None else None,
            "titles": load_table(titles_path, "titles"),
            "artworks": pd.read_parquet(art_path) if art_path is not None else None,
            "interactions": (load_table(inter_path, "interactions")
                             if inter_path is not None else None)}


def _plays_only(logs: Path, catalog: Path | None) -> dict[str, Any]:
    """The tables of a folder without impressions: its plays (``interactions``, or a dataset
    folder such as MovieLens) and titles; ``impressions`` and ``outcomes`` are ``None``."""
    from reelpick.serve.model_dir import read_logs

    try:
        tables = read_logs(logs)
    except (FileNotFoundError, ValueError) as exc:
        raise FileNotFoundError(f"{logs}: no impressions table (.parquet/.csv) and no plays to "
                                f"learn from ({exc}); expected the output of `reelpick logs "
                                "export` or `reelpick simulate`, or a dataset folder") from None
    titles, artworks = tables["titles"], tables.get("artworks")
    if catalog is not None:
        cat = _catalog_folder(catalog)
        titles_path, art_path = find_table(cat, "titles"), find_table(cat, "artworks")
        if titles_path is not None:
            titles = load_table(titles_path, "titles")
        if art_path is not None:
            artworks = pd.read_parquet(art_path)
    return {"impressions": None, "outcomes": None, "titles": titles, "artworks": artworks,
            "interactions": tables["interactions"]}


def window(tables: dict[str, Any], *, since: int | None = None, until: int | None = None
           ) -> dict[str, Any]:
    """``tables`` (:func:`read_page_logs`) keeping the pages served in ``[since, until)`` (Unix
    seconds), their outcomes, and the interactions before ``until`` (the history: plays before
    ``since`` stay)."""
    if since is None and until is None:
        return tables
    out = dict(tables)
    imp = tables["impressions"]
    if imp is not None:
        ts = imp["timestamp"].to_numpy()
        keep = np.ones(ts.size, dtype=bool)
        if since is not None:
            keep &= ts >= since
        if until is not None:
            keep &= ts < until
        if not keep.any():
            raise ValueError(f"impressions: no impressions in the window [{since}, {until})")
        out["impressions"] = imp.loc[keep].reset_index(drop=True)
        if tables["outcomes"] is not None:
            o = tables["outcomes"]
            out["outcomes"] = o.loc[o["decision_id"].isin(out["impressions"]["decision_id"])
                                    ].reset_index(drop=True)
    inter = tables["interactions"]
    if until is not None and inter is not None:
        out["interactions"] = inter.loc[inter["timestamp"] < until].reset_index(drop=True)
        if imp is None and not len(out["interactions"]):  # plays only: nothing to learn from
            raise ValueError(f"interactions: no plays before {until}")
    return out


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def candidate_configs(settings: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """``--set KEY=V1,V2`` options as the grid of candidate configurations, each with a name
    built from the keys that vary (``"page-policy"`` for a single candidate).

    >>> [n for n, _ in candidate_configs(["epsilon=0.05,0.2", "artwork=thompson"])]
    ['epsilon=0.05', 'epsilon=0.2']
    """
    from reelpick.page import PagePolicyConfig

    grid: dict[str, list[Any]] = {}
    for s in settings:
        key, sep, values = s.partition("=")
        key = key.strip()
        if not sep or not key or not values.strip():
            raise ValueError(f"--set {s!r}: expected KEY=VALUE[,VALUE...]")
        grid[key] = [_value(v.strip()) for v in values.split(",") if v.strip()]
    out = []
    varying = [k for k, v in grid.items() if len(v) > 1]
    for combo in itertools.product(*grid.values()) if grid else [()]:
        cfg = dict(zip(grid, combo, strict=True))
        PagePolicyConfig.from_dict(cfg)  # validates names and values
        name = ",".join(f"{k}={cfg[k]}" for k in varying) or "page-policy"
        out.append((name, cfg))
    return out


def train_candidates(tables: dict[str, Any], out: Path, settings: list[str]
                     ) -> list[dict[str, Any]]:
    """Train every candidate of ``settings`` (:func:`candidate_configs`) on ``tables``
    (:func:`read_page_logs`) and save each in ``out/<i>-<name>``; returns their records. The
    candidates train together (:func:`reelpick.page.train_page_policies`: the logs read once,
    the histories, sources and artwork bandit shared where their settings agree)."""
    from reelpick.page import PagePolicyConfig, train_page_policies

    configs = candidate_configs(settings)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with console.status(f"training {len(configs)} candidate(s)") as status:
        policies = train_page_policies(
            tables["impressions"], tables["outcomes"], tables["titles"],
            {name: PagePolicyConfig.from_dict(cfg) for name, cfg in configs},
            artworks=tables["artworks"], interactions=tables["interactions"],
            progress=lambda step, s=status: s.update(f"{len(configs)} candidate(s): {step}"))
    seconds = round((time.perf_counter() - t0) / max(len(configs), 1), 2)
    records = []
    for i, ((name, cfg), policy) in enumerate(zip(configs, policies, strict=True)):
        folder = out / f"{i:02d}-{_slug(name)}"
        policy.save(folder)
        records.append({"name": name, "path": str(folder), "version": policy.version,
                        "config": cfg, "seconds": seconds, **policy.info})
    (out / "candidates.json").write_text(json.dumps(records, indent=2, default=str))
    return records


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in ".-" else "_" for c in name)


def find_candidates(path: Path) -> list[Path]:
    """The saved page policies at ``path``: the folder itself or its sub-folders."""
    if (path / "policy.json").exists():
        return [path]
    found = sorted(p.parent for p in path.glob("*/policy.json"))
    if not found:
        raise FileNotFoundError(f"{path}: no saved page policy (policy.json) here or in its "
                                "sub-folders")
    return found


def evaluate(tables: dict[str, Any], candidates: list[Path], served: Path | None = None
             ) -> dict[str, Any]:
    """Every candidate estimated on the logged pages (page-level on the logs' exploration
    bucket when they mark it; on every visit when ``served``, the saved policy that served
    them, reproduces the logged propensities), and the served baseline."""
    from reelpick.page import PagePolicy
    from reelpick.page.evaluate import (
        evaluate_candidates,
        explored_pages,
        organic_plays,
        served_value,
    )

    if tables["impressions"] is None:
        raise FileNotFoundError("no impressions table in the logs: off-policy evaluation needs "
                                "the pages a policy served (`reelpick logs export`); on a "
                                "first launch use `reelpick promote --first`")
    policies = [PagePolicy.load(p) for p in candidates]
    pages = policies[0].logged_pages(tables["impressions"], tables["outcomes"])
    explored = explored_pages(tables["impressions"], pages)
    logger = PagePolicy.load(served) if served is not None else None
    inter = tables.get("interactions")
    organic = organic_plays(pages, inter) if inter is not None and len(inter) else None
    results = evaluate_candidates(pages, policies, explored=explored, served=logger,
                                  organic=organic)
    for r, p in zip(results, candidates, strict=True):
        r["path"] = str(p)
    return {"baseline": served_value(pages), "candidates": results,
            "baseline_plays": served_value(pages, organic) if organic is not None else None,
            "organic_plays": 0 if organic is None else int(organic[0].size),
            "served": None if served is None else str(served),
            "n_pages": int(pages.n_pages), "n_impressions": int(len(pages))}


def report_table(report: dict[str, Any]) -> Table:
    b = report["baseline"]
    table = Table(title=f"page plays per visit on {report['n_pages']:,} logged pages "
                  f"(served: {b['value']:.4f} [{b['lo']:.4f}, {b['hi']:.4f}])")
    bp = report.get("baseline_plays")
    cols = ["candidate", "version", "page DR", "95% CI", "page IPS", "ESS", "matched/visit",
            "slot SNIPS", "slot ESS"]
    if bp is not None:
        cols[4:4] = [f"all plays DR (served {bp['value']:.4f})", "all plays CI"]
    for col in cols:
        table.add_column(col, justify="left" if col in ("candidate", "version") else "right")
    for r in report["candidates"]:
        d, i, s = r["pbm_dr"], r["pbm_ips"], r["snips"]
        dr = f"{d['value']:.4f}" if d.get("reliable", True) else "unreliable"
        row = [r["name"], r["version"], dr, f"[{d['lo']:.4f}, {d['hi']:.4f}]",
               f"{i['value']:.4f}", f"{d['ess']:,.0f}", f"{d['matched']:.2f}",
               f"{s['value']:.4f}", f"{s['ess']:,.0f}"]
        if bp is not None:
            a = r.get("pbm_plays", {})
            row[4:4] = ([f"{a['value']:.4f}", f"[{a['lo']:.4f}, {a['hi']:.4f}]"]
                        if a.get("reliable") else ["unreliable", ""])
        table.add_row(*row)
    return table


def check_paths(logs: Path, candidates: Path) -> list[Path]:
    if not logs.is_dir():
        fail(f"--logs {logs}: not a folder")
    try:
        return find_candidates(candidates)
    except FileNotFoundError as exc:
        fail(str(exc))
        raise  # unreachable: fail exits
