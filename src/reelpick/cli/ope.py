"""``reelpick ope``: estimate a target policy's value from logs, with confidence intervals.

LOGS (``--logs``)
    * an Open Bandit Dataset folder ``.../{random,bts}/{all,men,women}`` (holds
      ``{campaign}.csv`` and ``item_context.csv``);
    * a reelpick log folder with ``impressions`` and ``outcomes`` tables (``.parquet`` or
      ``.csv``; e.g. from ``reelpick simulate``): action = title (indexed by the sorted title
      ids), reward = ``play``, pscore = ``propensity``, position = ``row_index`` x positions per
      row + ``position``, slates = ``page_id``;
    * a feedback Parquet file (``action``, ``reward``, ``pscore`` [, ``position``]), streamed
      batch by batch (``--batch-size``), so it may be larger than memory;
    * a folder of feedback Parquet files (no impressions/outcomes tables): one log, the files
      in sorted order (e.g. one file per hour).

BACKEND (``--backend``)
    ``local`` runs in this process; ``ray`` reads feedback Parquet with Ray Data and reduces
    each block to sufficient statistics on the cluster (``--ray-address``, ``--num-workers``;
    :mod:`reelpick.distributed.ope`), with the same estimates as ``local``. Other logs are
    read into memory and run locally only.

TARGET (``--target``)
    * ``uniform``: every action equally likely (at every position);
    * ``obd:bts`` / ``obd:random`` (optionally ``obd:bts:men``): the Open Bandit Dataset's
      policies (BTS computed exactly), campaign taken from the logs unless given;
    * a file of action probabilities: ``.npy`` / ``.npz`` (key ``action_dist``) holding
      ``(n_actions,)`` or ``(n_actions, n_positions)`` (context-free) or
      ``(n_rounds, n_actions[, n_positions])`` (one row per logged round, memory-mapped for
      ``.npy``); or ``.parquet`` with columns ``action``, ``prob`` and optionally ``position``
      (context-free).

DM, DR, SNDR and Switch-DR need a reward model: in memory it is cross-fitted
(:func:`reelpick.ope.cross_fit_reward_model`, ``--folds``); for a streamed file give
``--reward-hat`` (a ``.npy`` like a per-round target).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import typer
from rich.table import Table

from reelpick.cli._common import (
    BACKEND_HELP,
    NUM_WORKERS_HELP,
    RAY_ADDRESS_HELP,
    check_backend_option,
    console,
    fail,
    find_table,
    parse_list,
)
from reelpick.data.loaders import load_table
from reelpick.data.schema import SchemaError, join_outcomes
from reelpick.ope import (
    ESTIMATORS,
    ArrayTarget,
    ConstantTarget,
    Estimate,
    Estimator,
    LoggedFeedback,
    NpyTarget,
    OPEWarning,
    cross_fit_reward_model,
    estimate_parquet,
    evaluate_policy,
    load_obd,
    obd_bts_action_dist,
)


class SpecError(ValueError):
    """A bad --logs / --target / --estimators value."""


def load_reelpick_logs(folder: Path) -> LoggedFeedback:
    """Impressions + outcomes (reelpick's schema) as :class:`LoggedFeedback`."""
    imp_path, out_path = find_table(folder, "impressions"), find_table(folder, "outcomes")
    if imp_path is None or out_path is None:
        raise SpecError(f"{folder}: expected impressions and outcomes tables (.parquet/.csv)")
    imp = load_table(imp_path, "impressions")
    joined = join_outcomes(imp, load_table(out_path, "outcomes"), source=str(out_path))
    titles = np.unique(joined["title_id"].to_numpy(dtype=str))
    action = np.searchsorted(titles, joined["title_id"].to_numpy(dtype=str))
    per_row = int(joined["position"].max()) + 1
    position = joined["row_index"].to_numpy() * per_row + joined["position"].to_numpy()
    slate = (pd.factorize(joined["page_id"])[0] if "page_id" in joined.columns else None)
    return LoggedFeedback(action=action, reward=joined["play"].to_numpy(dtype=float),
                          pscore=joined["propensity"].to_numpy(dtype=float),
                          n_actions=len(titles), position=position, slate_id=slate)


def _load_array(path: Path) -> np.ndarray:
    if not path.exists():
        raise SpecError(f"{path}: no such file")
    if path.suffix == ".npy":
        return np.load(path, mmap_mode="r")
    if path.suffix == ".npz":
        with np.load(path) as z:
            if "action_dist" not in z:
                raise SpecError(f"{path}: expected an array named 'action_dist', found "
                                f"{sorted(z.files)}")
            return z["action_dist"]
    if path.suffix == ".parquet":
        df = pq.read_table(path).to_pandas()
        if not {"action", "prob"} <= set(df.columns):
            raise SpecError(f"{path}: expected columns 'action' and 'prob' (and optionally "
                            f"'position'), found {list(df.columns)}")
        pos = df["position"].to_numpy(int) if "position" in df.columns else np.zeros(len(df), int)
        out = np.zeros((int(df["action"].max()) + 1, int(pos.max()) + 1))
        out[df["action"].to_numpy(int), pos] = df["prob"].to_numpy(float)
        return out[:, 0] if "position" not in df.columns else out
    raise SpecError(f"{path}: unsupported target file; use .npy, .npz or .parquet")


def _per_round(path: Path, arr: np.ndarray) -> ArrayTarget | NpyTarget:
    """Per-round rows as a batch function: a ``.npy`` file is read batch by batch (bounded
    memory; a memory map would keep every page it touched resident), others from memory."""
    return NpyTarget(path) if path.suffix == ".npy" else ArrayTarget(arr)


def parse_target(spec: str, *, n_actions: int, n_positions: int, campaign: str | None
                 ) -> ConstantTarget | ArrayTarget | NpyTarget:
    """A target spec (see the module) as a batch function."""
    if spec == "uniform":
        return ConstantTarget(np.full((n_actions, n_positions), 1.0 / n_actions)
                              if n_positions > 1 else np.full(n_actions, 1.0 / n_actions))
    if spec.startswith("obd:"):
        parts = spec.split(":")
        if len(parts) not in (2, 3) or parts[1] not in ("bts", "random"):
            raise SpecError(f"--target {spec!r}: expected obd:bts, obd:random or obd:bts:CAMPAIGN")
        camp = parts[2] if len(parts) == 3 else campaign
        if camp not in ("all", "men", "women"):
            raise SpecError(f"--target {spec!r}: campaign must be all, men or women (or load OBD "
                            "logs so it can be inferred)")
        if parts[1] == "random":
            p = np.full((n_actions, n_positions), 1.0 / n_actions)
        else:
            p = obd_bts_action_dist(camp, len_list=n_positions)  # type: ignore[arg-type]
        if p.shape[0] != n_actions:
            raise SpecError(f"--target {spec!r} has {p.shape[0]} actions, the logs {n_actions}")
        return ConstantTarget(p)
    path = Path(spec)
    if not path.suffix:
        raise SpecError(f"--target {spec!r}: expected uniform, obd:bts, obd:random or a "
                        ".npy/.npz/.parquet file")
    arr = _load_array(path)
    if arr.ndim in (1, 2) and arr.shape[0] == n_actions and not (
            arr.ndim == 2 and arr.shape[1] == n_actions):
        return ConstantTarget(np.asarray(arr, float))
    if arr.ndim in (2, 3) and arr.shape[1] == n_actions:
        return _per_round(path, arr)
    raise SpecError(f"--target {path}: shape {arr.shape} fits neither (n_actions={n_actions}"
                    "[, n_positions]) nor (n_rounds, n_actions[, n_positions])")


def _estimators(names: list[str]) -> list[Estimator]:
    return [ESTIMATORS[n]() for n in names]


def _is_feedback_folder(folder: Path) -> bool:
    """A folder of feedback Parquet files: ``*.parquet`` and no OBD or reelpick tables."""
    if (folder / f"{folder.name}.csv").exists() or find_table(folder, "impressions") \
            or find_table(folder, "outcomes"):
        return False
    return any(folder.rglob("*.parquet"))


def run_ope(logs: Path, target: str, names: list[str], *, ci: str = "analytic",
            alpha: float = 0.05, n_bootstrap: int = 1000, seed: int = 0, folds: int = 5,
            batch_size: int = 1_000_000, reward_hat: Path | None = None,
            backend: str = "local", ray_address: str | None = None,
            num_workers: int | None = None) -> tuple[dict[str, Estimate], dict[str, Any]]:
    """The library call behind the command: returns the estimates and facts about the run."""
    ests = _estimators(names)
    needs_q = any(e.needs_reward_hat for e in ests)
    kw: dict[str, Any] = dict(ci=ci, alpha=alpha, n_bootstrap=n_bootstrap, random_state=seed)
    if not logs.exists():
        raise SpecError(f"--logs {logs}: no such file or directory")
    if logs.is_file() or _is_feedback_folder(logs):
        if logs.is_file() and logs.suffix != ".parquet":
            raise SpecError(f"--logs {logs}: a file must be a feedback .parquet")
        from reelpick.distributed._ray import plan_parquet
        from reelpick.ope.streaming import _n_actions_from

        plan = plan_parquet(logs)
        metas = [pq.ParquetFile(f) for f, rows in zip(plan.files, plan.rows) if rows]
        if not metas:
            raise SpecError(f"--logs {logs}: the log has no rows")
        n_actions = (max(_n_actions_from(m, "action") for m in metas)
                     if "action" in plan.columns else 0)
        n_positions = (max(_n_actions_from(m, "position") for m in metas)
                       if "position" in plan.columns else 1)
        tgt = parse_target(target, n_actions=n_actions, n_positions=n_positions, campaign=None)
        model = None
        if needs_q:
            if reward_hat is None:
                raise SpecError("DM/DR/SNDR/Switch-DR on a streamed file need --reward-hat")
            model = _per_round(reward_hat, _load_array(reward_hat))
        if logs.is_file() and backend == "local":
            res = estimate_parquet(logs, ests, tgt, reward_model=model, batch_size=batch_size,
                                   n_actions=n_actions, **kw)
        else:
            from reelpick.distributed.ope import estimate_parquet as estimate_many

            res = estimate_many(logs, ests, tgt, reward_model=model, batch_size=batch_size,
                                n_actions=n_actions, backend=backend, num_workers=num_workers,
                                address=ray_address, **kw)
        return res, {"logs": str(logs), "format": "feedback-parquet", "n_actions": n_actions,
                     "files": len(plan.files), "backend": backend}
    if backend != "local":
        raise SpecError(f"--backend {backend}: reads feedback Parquet (a file or a folder of "
                        f"them); {logs} is read into memory, use --backend local")
    if (logs / f"{logs.name}.csv").exists() and (logs / "item_context.csv").exists():
        log = load_obd(logs.parent.parent, logs.parent.name, logs.name)  # type: ignore[arg-type]
        fb, campaign, fmt = log.feedback, logs.name, "obd"
    else:
        fb, campaign, fmt = load_reelpick_logs(logs), None, "reelpick"
    n_pos = int(fb.n_positions or 1)
    tgt = parse_target(target, n_actions=fb.n_actions, n_positions=n_pos, campaign=campaign)
    dist = tgt(fb, 0)
    if dist.ndim == 2 and fb.position is not None and n_pos > 1:
        dist = np.broadcast_to(dist[:, :, None], (*dist.shape, n_pos))
    q = None
    if needs_q:
        cells = fb.n_rounds * fb.n_actions * n_pos
        if cells > 200_000_000:
            raise SpecError(f"a reward model over {fb.n_rounds} rounds x {fb.n_actions} actions "
                            f"x {n_pos} positions is too large; drop DM/DR-type estimators")
        q = cross_fit_reward_model(fb, n_folds=folds, random_state=seed)
        if q.ndim == 2 and dist.ndim == 3:
            q = q[:, :, None]
    res = evaluate_policy(fb, dist, ests, q, **kw)
    return res, {"logs": str(logs), "format": fmt, "n_actions": fb.n_actions}


def estimates_table(res: dict[str, Estimate], title: str) -> Table:
    first = next(iter(res.values()))
    level = f"{1 - first.alpha:.0%}"
    table = Table(title=title)
    for col in ("estimator", "value", f"{level} CI low", f"{level} CI high", "se", "ESS"):
        table.add_column(col, justify="left" if col == "estimator" else "right")
    for est in res.values():
        table.add_row(est.estimator, f"{est.value:.6g}", f"{est.ci_low:.6g}",
                      f"{est.ci_high:.6g}", f"{est.se:.3g}", f"{est.ess:,.0f}")
    return table


def ope(
    logs: Annotated[Path, typer.Option(help="OBD folder, reelpick log folder (impressions + "
                                       "outcomes) or feedback .parquet")],
    target: Annotated[str | None, typer.Option(help="uniform | obd:bts | obd:random | a .npy/"
                                               ".npz/.parquet file of action probabilities")]
    = None,
    candidates: Annotated[Path | None, typer.Option(
        help="Saved page policies (a policy folder or a folder of them, from `reelpick train "
             "--policy page`): estimate each one's page plays per visit on --logs "
             "(impressions + outcomes) instead of a --target")] = None,
    since: Annotated[int | None, typer.Option(
        help="With --candidates: only the pages served from this Unix time on (e.g. the "
             "current version's traffic)")] = None,
    served: Annotated[Path | None, typer.Option(
        help="With --candidates: the saved page policy that served --logs; when it "
             "reproduces the logged propensities every logged visit is used, else only the "
             "exploration bucket")] = None,
    estimators: Annotated[str, typer.Option(help="Comma-separated: " + ",".join(ESTIMATORS))]
    = "ips,snips,dr",
    ci: Annotated[str, typer.Option(help="analytic or bootstrap")] = "analytic",
    alpha: Annotated[float, typer.Option(help="1 - confidence level", min=1e-6, max=0.5)]
    = 0.05,
    n_bootstrap: Annotated[int, typer.Option(help="Bootstrap replicates", min=2)] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap and the cross-fitting")] = 0,
    folds: Annotated[int, typer.Option(help="Cross-fitting folds of the reward model", min=2)]
    = 5,
    batch_size: Annotated[int, typer.Option(help="Rows per batch when streaming Parquet",
                                            min=1)] = 1_000_000,
    reward_hat: Annotated[Path | None, typer.Option(help="Reward predictions (.npy) for a "
                                                    "streamed file")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the estimates as "
                                                   "JSON")] = None,
    backend: Annotated[str, typer.Option(help=BACKEND_HELP)] = "local",
    ray_address: Annotated[str | None, typer.Option(help=RAY_ADDRESS_HELP)] = None,
    num_workers: Annotated[int | None, typer.Option(help=NUM_WORKERS_HELP, min=1)] = None,
) -> None:
    """Estimate how a target policy (or page policy candidates) would do online, from logs
    alone, with intervals."""
    if candidates is not None:
        ope_candidates(logs, candidates, since=since, json_path=json_path, served=served)
        return
    if target is None:
        fail("give --target (a policy's action probabilities) or --candidates (saved page "
             "policies)")
        return
    names = parse_list(estimators, what="--estimators", allowed=list(ESTIMATORS))
    if ci not in ("analytic", "bootstrap"):
        fail(f"--ci: expected 'analytic' or 'bootstrap', got {ci!r}")
    check_backend_option(backend)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", OPEWarning)
        try:
            res, facts = run_ope(logs, target, names, ci=ci, alpha=alpha,
                                 n_bootstrap=n_bootstrap, seed=seed, folds=folds,
                                 batch_size=batch_size, reward_hat=reward_hat, backend=backend,
                                 ray_address=ray_address, num_workers=num_workers)
        except (SpecError, SchemaError, FileNotFoundError, ValueError, ImportError) as exc:
            fail(str(exc))
    first = next(iter(res.values()))
    console.print(estimates_table(res, f"{target} on {logs.name} ({first.n_rounds:,} rounds, "
                                       f"{ci} intervals)"))
    d = first.diagnostics
    if d is not None:
        console.print(f"pscore {d.pscore_min:.3g}..{d.pscore_max:.3g} · weights mean "
                      f"{d.weight_mean:.3g}, max {d.weight_max:.3g} · ESS {d.ess:,.0f} · "
                      f"target mass outside logging support {d.unsupported_mass:.2%}")
    for w in caught:
        if issubclass(w.category, OPEWarning):
            typer.echo(f"warning: {w.message}", err=True)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        payload = {**facts, "target": target, "ci": ci,
                   "estimates": [e.to_dict() for e in res.values()],
                   "warnings": [str(w.message) for w in caught
                                if issubclass(w.category, OPEWarning)]}
        json_path.write_text(json.dumps(payload, indent=2))
        console.print(f"wrote {json_path}")


def ope_candidates(logs: Path, candidates: Path, *, since: int | None = None,
                   json_path: Path | None = None, served: Path | None = None
                   ) -> dict[str, Any]:
    """``reelpick ope --candidates``: every saved page policy estimated on the logged pages
    (:func:`reelpick.page.evaluate.evaluate_candidates`; ``served`` the saved page policy
    that served them, if known), the served value beside them."""
    from reelpick.cli.page import check_paths, evaluate, read_page_logs, report_table, window

    paths = check_paths(logs, candidates)
    try:
        report = evaluate(window(read_page_logs(logs, paths[0]), since=since), paths,
                          served=served)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
        raise  # unreachable: fail exits; keeps the type checker's flow
    console.print(report_table(report))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2, default=str))
        console.print(f"wrote {json_path}")
    return report
