"""The model directory the service loads: trained by ``reelpick train``, swapped atomically.

Layout (no pickle anywhere)::

    MODEL_DIR/manifest.json                 {"format": 1, "version": V, "path": "versions/V", ...}
    MODEL_DIR/versions/V/als.npz            ALS factors + vocabularies (reelpick.models format)
    MODEL_DIR/versions/V/context.npz        play counts by device x hour bucket, country, total
    MODEL_DIR/versions/V/catalog.json       titles, artworks, members, countries, genres

A new training run writes a new ``versions/V`` folder and then replaces ``manifest.json`` with
``os.replace`` (atomic), so a service reloading at any moment reads either the old or the new
model, never a mix. The two newest versions are kept.

Context popularity: ``hour`` is bucketed into :data:`HOUR_BUCKETS` buckets of
``24 / HOUR_BUCKETS`` hours; plays are counted per (device, bucket) and per country.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reelpick.data.catalog import catalog_json as _catalog_json
from reelpick.data.schema import DEVICES, INTERACTIONS, MEMBERS, TITLES

FORMAT = 1
MANIFEST = "manifest.json"
HOUR_BUCKETS = 6
KEEP_VERSIONS = 2
#: ``kind`` of a manifest whose versions are saved :class:`reelpick.page.PagePolicy` folders
POLICY_KIND = "reelpick.page-policy"


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of ``reelpick train`` (validated at construction)."""

    factors: int = 64
    iterations: int = 15
    regularization: float = 5.0
    alpha: float = 4.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name, ok in (("factors", self.factors >= 1), ("iterations", self.iterations >= 1),
                         ("regularization", self.regularization >= 0),
                         ("alpha", self.alpha > 0), ("seed", self.seed >= 0)):
            if not ok:
                raise ValueError(f"TrainConfig.{name}: invalid value {getattr(self, name)!r}")


def read_logs(logs: str | Path) -> dict[str, pd.DataFrame]:
    """The tables of a ``reelpick simulate`` folder (or any folder with the same files):
    ``interactions`` and ``titles`` required, ``members`` and ``artworks`` optional. A folder
    without ``interactions.parquet`` is read as a dataset (MovieLens in either layout, or
    ``interactions.csv`` with optional ``titles``/``members``): see
    :func:`reelpick.data.loaders.load_dataset`."""
    logs = Path(logs)
    if not (logs / "interactions.parquet").exists():
        from reelpick.data.loaders import load_dataset

        ds = load_dataset(logs)
        titles = ds.titles if ds.titles is not None else pd.DataFrame(
            {"title_id": pd.unique(ds.interactions["title_id"])})
        tables = {"interactions": ds.interactions, "titles": titles}
        if ds.members is not None:
            tables["members"] = ds.members
        return tables
    out: dict[str, pd.DataFrame] = {}
    for name in ("interactions", "titles", "members", "artworks"):
        path = logs / f"{name}.parquet"
        if path.exists():
            out[name] = pd.read_parquet(path)
        elif name in ("interactions", "titles"):
            raise FileNotFoundError(f"{path}: missing (expected the output of reelpick simulate)")
    return out


def train_model_dir(logs: str | Path, out: str | Path, config: TrainConfig | None = None
                    ) -> dict[str, Any]:
    """Train from a logs folder and publish a new version in ``out``. Returns the manifest."""
    tables = read_logs(logs)
    return publish(out, **tables, config=config or TrainConfig())


def publish(out: str | Path, *, interactions: pd.DataFrame, titles: pd.DataFrame,
            members: pd.DataFrame | None = None, artworks: pd.DataFrame | None = None,
            config: TrainConfig | None = None) -> dict[str, Any]:
    """Train on the given tables and publish them as a new version of model directory ``out``."""
    from reelpick.models import ALS  # the model zoo imports torch: keep it out of the server

    config = config or TrainConfig()
    t0 = time.perf_counter()
    titles = TITLES.validate(titles, source="titles")
    inter = INTERACTIONS.validate(interactions, source="interactions")
    members = MEMBERS.validate(members if members is not None else pd.DataFrame(
        {"member_id": pd.unique(inter["member_id"])}), source="members")
    known = inter["title_id"].isin(set(titles["title_id"]))
    dropped = int((~known).sum())
    inter = inter[known].reset_index(drop=True)
    if len(inter) == 0:
        raise ValueError("interactions: no rows with a title in the catalogue")
    catalog = _catalog_json(titles, members, artworks, inter)
    als = ALS(factors=config.factors, iterations=config.iterations,
              regularization=config.regularization, alpha=config.alpha,
              random_state=config.seed).fit(inter, titles=titles["title_id"].tolist())
    counts: dict[str, Any] = _context_counts(inter, titles["title_id"], catalog["countries"])

    out = Path(out)
    staging = out / "versions" / f".staging-{os.getpid()}-{time.time_ns()}"
    staging.mkdir(parents=True)
    als.save(staging / "als.npz")
    with open(staging / "context.npz", "wb") as fh:
        np.savez_compressed(fh, **counts)
    (staging / "catalog.json").write_text(json.dumps(catalog))
    digest = hashlib.sha256()
    for name in ("als.npz", "context.npz", "catalog.json"):
        digest.update((staging / name).read_bytes())
    version = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + digest.hexdigest()[:8]
    final = out / "versions" / version
    if final.exists():
        shutil.rmtree(staging)
    else:
        os.replace(staging, final)
    manifest = {
        "format": FORMAT, "version": version, "path": f"versions/{version}",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "train": asdict(config), "hour_buckets": HOUR_BUCKETS,
        "n_titles": len(titles), "n_members": int(len(als.member_vocab_)),
        "n_interactions": len(inter), "dropped_interactions": dropped,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    _write_manifest(out, manifest)
    _prune(out, keep=version)
    return manifest


def publish_policy(out: str | Path, policy_dir: str | Path, *, extra: dict[str, Any] | None = None
                   ) -> dict[str, Any]:
    """Publish the saved page policy ``policy_dir`` (:meth:`reelpick.page.PagePolicy.save`) as
    the current version of model directory ``out``: copied to ``versions/<its version>``, then
    ``manifest.json`` replaced atomically, so a service reloading at any moment reads the old
    or the new policy, never a mix. ``extra`` (e.g. the promotion decision) joins the
    manifest. Returns the manifest."""
    src = Path(policy_dir)
    try:
        header = json.loads((src / "policy.json").read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{src / 'policy.json'}: not a saved page policy ({exc})") from None
    if header.get("kind") != POLICY_KIND:
        raise ValueError(f"{src / 'policy.json'}: kind {header.get('kind')!r} is not "
                         f"{POLICY_KIND!r}")
    version = str(header["version"])
    out = Path(out)
    final = out / "versions" / version
    if not final.exists():
        staging = out / "versions" / f".staging-{os.getpid()}-{time.time_ns()}"
        shutil.copytree(src, staging)
        os.replace(staging, final)
    manifest = {
        "format": FORMAT, "kind": POLICY_KIND, "version": version,
        "path": f"versions/{version}", "name": header.get("name"),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "n_titles": len(json.loads((src / "catalog.json").read_text())["titles"]),
        "n_members": len(header.get("members", [])), **(extra or {}),
    }
    _write_manifest(out, manifest)
    _prune(out, keep=version)
    return manifest


def _write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    tmp = out / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2))
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, out / MANIFEST)


def read_manifest(model_dir: str | Path) -> dict[str, Any]:
    """The manifest of a model directory; :class:`ValueError` when absent or unreadable."""
    path = Path(model_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a reelpick model directory ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: model format {manifest.get('format')!r} is not supported")
    return manifest


def _prune(out: Path, keep: str) -> None:
    versions = sorted((p for p in (out / "versions").iterdir()
                       if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)
    for old in versions[:-KEEP_VERSIONS]:
        if old.name != keep:
            shutil.rmtree(old, ignore_errors=True)


def _context_counts(inter: pd.DataFrame, title_ids: pd.Series, countries: list[str]
                    ) -> dict[str, np.ndarray]:
    T = len(title_ids)
    idx = pd.Index(title_ids).get_indexer(inter["title_id"])
    total = np.bincount(idx, minlength=T).astype(np.float64)
    dev_hour = np.zeros((len(DEVICES), HOUR_BUCKETS, T))
    country = np.zeros((len(countries), T))
    if "device" in inter.columns and "hour" in inter.columns:
        d = pd.Index(DEVICES).get_indexer(inter["device"].astype(str))
        h = inter["hour"].to_numpy(dtype=float)
        ok = (d >= 0) & ~np.isnan(h)
        b = (h[ok] * HOUR_BUCKETS // 24).astype(np.int64)
        np.add.at(dev_hour, (d[ok], b, idx[ok]), 1.0)
    if "country" in inter.columns:
        k = pd.Index(countries).get_indexer(inter["country"].astype(str))
        ok = k >= 0
        np.add.at(country, (k[ok], idx[ok]), 1.0)
    return {"total": total, "device_hour": dev_hour, "country": country}
