"""``reelpick causal``: causal effects from reelpick logs (IV with the experiment cell; uplift).

Examples::

    reelpick simulate --policy promotion --visits 20000 --out runs/promo
    reelpick causal iv --logs runs/promo --treat kind:series --json iv.json
    reelpick simulate --policy uniform --visits 20000 --out runs/explore
    reelpick causal uplift --logs runs/explore --top 10

SGD-IV over Parquet (streamed, or on Ray with ``--backend ray``)::

    reelpick causal design --logs runs/promo --treat kind:series --out runs/design.parquet
    reelpick causal sgd-iv --data runs/design.parquet               # epochs until converged
    reelpick causal sgd-iv --data runs/design.parquet --backend ray --num-workers 2 --epochs 20
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Annotated, Any, cast

import numpy as np
import typer
from rich.table import Table

from reelpick.causal import (
    COV_TYPES,
    ConvergenceWarning,
    WeakInstrumentWarning,
    ols,
    two_stage_least_squares,
)
from reelpick.causal.instruments import Logs, visit_design
from reelpick.causal.iv import CovType, IVResult
from reelpick.causal.uplift import SegmentUpliftModel, offline_hit_rate
from reelpick.cli._common import (
    BACKEND_HELP,
    NUM_WORKERS_HELP,
    RAY_ADDRESS_HELP,
    check_backend_option,
    console,
    fail,
    parse_list,
)
from reelpick.data.schema import SchemaError

app = typer.Typer(help="Causal effects of recommendations: IV (2SLS) and uplift.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def _read(logs: Path) -> Logs:
    try:
        return Logs.read(logs)
    except (FileNotFoundError, SchemaError, ValueError) as exc:
        fail(str(exc))
        raise  # unreachable


def _write_json(path: Path | None, payload: dict) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2))
    console.print(f"wrote {path}")


def _ar_cell(res: IVResult, name: str) -> str:
    """The 95% Anderson-Rubin set of ``name`` as table text ('–' where there is none)."""
    ar = res.ar_ci
    if ar is None or name not in res.endog_names:
        return "–"
    return str(ar) if ar.bounded else f"{ar} ({ar.kind})"


def _estimate_row(res: IVResult, name: str) -> tuple[str, str, str, str]:
    ci = res.conf_int().loc[name]
    return (f"{res.params[name]:.5f}", f"{res.std_errors[name]:.5f}",
            f"[{ci['lower']:.5f}, {ci['upper']:.5f}]", _ar_cell(res, name))


def _first_stage_table(res: IVResult, cov_type: str) -> Table:
    """First-stage diagnostics per endogenous regressor, with a verdict on its strength."""
    fs = res.first_stage
    assert fs is not None
    table = Table(title=f"first-stage F ({fs.n_instruments} instrument(s); weak below "
                        f"{fs.weak_threshold:g})")
    for c in ("regressor", f"F ({cov_type})", "effective F", "F (homoskedastic)",
              "partial R²", "verdict"):
        table.add_column(c, justify="left" if c in ("regressor", "verdict") else "right")
    weak = set(fs.below_threshold().index)
    eff = res.first_stage_f
    assert eff is not None
    for name in fs.f_stat.index:
        verdict = ("[yellow]weak: trust the AR set, not the Wald CI[/yellow]" if name in weak
                   else "strong")
        table.add_row(str(name), f"{fs.f_stat[name]:.1f}", f"{eff[name]:.1f}",
                      f"{fs.f_stat_homoskedastic[name]:.1f}",
                      f"{fs.partial_rsquared[name]:.4f}", verdict)
    return table


@app.command("iv")
def iv(
    logs: Annotated[Path, typer.Option(help="Directory with impressions/outcomes/interactions"
                                       ".parquet (from `reelpick simulate`)")],
    treat: Annotated[str, typer.Option(help="Treated titles: kind:<kind>, genre:<genre> or "
                                       "titles:<id>,<id>")] = "kind:series",
    cov_type: Annotated[str, typer.Option(help=f"One of {', '.join(COV_TYPES)}")] = "CR1",
    instrument: Annotated[str, typer.Option(help="Impressions column with the randomised "
                                            "cell")] = "experiment_cell",
    window: Annotated[int, typer.Option(help="Seconds after a page to attribute organic plays",
                                        min=1)] = 3600,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the result as JSON")]
    = None,
) -> None:
    """Effect of one impression of the treated titles on their plays per visit: naive OLS vs
    2SLS instrumented by the experiment cell (clusters = members)."""
    if cov_type not in COV_TYPES:
        fail(f"--cov-type: use one of {list(COV_TYPES)}, got {cov_type!r}")
    ct = cast(CovType, cov_type)  # checked above
    data = _read(logs)
    try:
        des = visit_design(data, treat=treat, instrument=instrument, window=window)
        y, d, z, w = des.frames()
        cl = des.clusters if cov_type.startswith("CR") else None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", WeakInstrumentWarning)
            res = two_stage_least_squares(y, d, z, w, cov_type=ct, clusters=cl)
        naive = ols(y, d, w, cov_type=ct, clusters=cl)
    except ValueError as exc:
        fail(str(exc))
    weak = [str(c.message) for c in caught if issubclass(c.category, WeakInstrumentWarning)]
    table = Table(title=f"effect of one '{treat}' impression on their plays "
                        f"({res.nobs:,} pages, {cov_type})")
    for c in ("estimator", "estimate", "std err", "95% CI (Wald)", "95% AR set"):
        table.add_column(c, justify="right" if c != "estimator" else "left")
    for name, r in (("OLS (naive)", naive), ("2SLS", res)):
        table.add_row(name, *_estimate_row(r, "exposure"))
    console.print(table)
    console.print(_first_stage_table(res, cov_type))
    console.print(f"instruments: {', '.join(des.instrument_names)}; AR = Anderson-Rubin set, "
                  "valid however weak the instruments")
    for msg in weak:
        console.print(f"[yellow]warning:[/yellow] {msg}")
    _write_json(json_path, {"treat": treat, "iv": res.to_dict(), "ols": naive.to_dict(),
                            "weak_instrument_warnings": weak})


@app.command("uplift")
def uplift(
    logs: Annotated[Path, typer.Option(help="Directory of exploration logs (randomised slots, "
                                       "propensity < 1), e.g. `reelpick simulate --policy "
                                       "uniform`")],
    top: Annotated[int, typer.Option(help="Titles to list by uplift", min=1)] = 10,
    by_device: Annotated[bool, typer.Option("--by-device", help="Segments = top genre x "
                                            "device")] = False,
    prior_strength: Annotated[float, typer.Option(help="Shrinkage pseudo-rows", min=0.0)]
    = 30.0,
    k: Annotated[int, typer.Option(help="Cut-off of the naive offline hit rate", min=1)] = 10,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the result as JSON")]
    = None,
) -> None:
    """Learn p(play | do(show)) - p(play | do(not show)) per member segment and title; list the
    titles with the largest average uplift and the naive offline hit rates of ranking by uplift
    vs by play probability."""
    data = _read(logs)
    try:
        model = SegmentUpliftModel(by_device=by_device, prior_strength=prior_strength).fit(data)
        hr = {s: offline_hit_rate(model, data, score=s, k=k) for s in ("uplift", "play")}
    except ValueError as exc:
        fail(str(exc))
    weight = model.n_treated_.sum(axis=1, keepdims=True) + 1.0
    avg = lambda a: (a * weight).sum(axis=0) / weight.sum()  # noqa: E731
    up, p1, p0 = avg(model.uplift_), avg(model.treated_), avg(model.control_)
    order = np.argsort(-up, kind="stable")[:top]
    table = Table(title=f"top {len(order)} titles by uplift ({len(model.segments_)} segments)")
    for c in ("title", "uplift", "p(play | show)", "p(play | not shown)"):
        table.add_column(c, justify="left" if c == "title" else "right")
    rows = []
    for j in order:
        rows.append({"title_id": str(model.titles_[j]), "uplift": float(up[j]),
                     "p_play_shown": float(p1[j]), "p_play_not_shown": float(p0[j])})
        table.add_row(str(model.titles_[j]), f"{up[j]:.4f}", f"{p1[j]:.4f}", f"{p0[j]:.4f}")
    console.print(table)
    console.print(f"naive offline hit rate@{k} on these logs: rank by uplift {hr['uplift']:.4f}, "
                  f"by play probability {hr['play']:.4f}")
    _write_json(json_path, {"segments": [str(s) for s in model.segments_], "top": rows,
                            "offline_hit_rate": hr, "k": k})


@app.command("design")
def design(
    logs: Annotated[Path, typer.Option(help="Directory with impressions/outcomes/interactions"
                                       ".parquet (from `reelpick simulate`)")],
    out: Annotated[Path, typer.Option(help="Parquet file to write (a folder with --files > 1)")],
    treat: Annotated[str, typer.Option(help="Treated titles: kind:<kind>, genre:<genre> or "
                                       "titles:<id>,<id>")] = "kind:series",
    instrument: Annotated[str, typer.Option(help="Impressions column with the randomised "
                                            "cell")] = "experiment_cell",
    window: Annotated[int, typer.Option(help="Seconds after a page to attribute organic plays",
                                        min=1)] = 3600,
    files: Annotated[int, typer.Option(help="Part files to split the design into", min=1)] = 1,
) -> None:
    """Write the IV design of `causal iv` (one row per page: plays of the treated titles,
    their impressions, experiment-cell dummies, controls, member) as Parquet for `sgd-iv`."""
    from reelpick.distributed.iv import write_design

    data = _read(logs)
    try:
        des = visit_design(data, treat=treat, instrument=instrument, window=window)
        paths = write_design(des, out, files=files)
    except ValueError as exc:
        fail(str(exc))
    console.print(f"wrote {len(des.y):,} pages to {out} ({len(paths)} file(s)): y, "
                  f"{', '.join(des.endog_names)} ~ {', '.join(des.instrument_names)} | "
                  f"{len(des.control_names)} controls, member_id")


def _columns(value: str | None, default: list[str], what: str) -> list[str]:
    return default if value is None else (parse_list(value, what=what) if value else [])


@app.command("sgd-iv")
def sgd_iv(
    data: Annotated[Path, typer.Option(help="Parquet file or folder of them (e.g. from "
                                       "`reelpick causal design`)")],
    y: Annotated[str | None, typer.Option(help="Outcome column (default: from the design)")]
    = None,
    endog: Annotated[str | None, typer.Option(help="Endogenous columns, comma-separated")]
    = None,
    instruments: Annotated[str | None, typer.Option(help="Instrument columns")] = None,
    dense: Annotated[str | None, typer.Option(help="Dense control columns ('' for none)")]
    = None,
    categorical: Annotated[str | None, typer.Option(help="Id columns absorbed as hashed fixed "
                                                    "effects ('' for none)")] = None,
    clusters: Annotated[str | None, typer.Option(help="Cluster column for CR0/CR1")] = None,
    cov_type: Annotated[str, typer.Option(help="HC0, HC1, CR0 or CR1")] = "CR1",
    epochs: Annotated[int | None, typer.Option(
        help="SGD epochs (default: until the nuisance regressions converge; the Ray backend "
             "needs a count)", min=0)] = None,
    batch_size: Annotated[int, typer.Option(help="Rows per SGD minibatch", min=1)] = 4096,
    learning_rate: Annotated[float, typer.Option(help="Adagrad step", min=1e-12)] = 0.5,
    hash_buckets: Annotated[int, typer.Option(help="Hash buckets per id column", min=1)]
    = 1 << 18,
    backend: Annotated[str, typer.Option(help=BACKEND_HELP)] = "local",
    ray_address: Annotated[str | None, typer.Option(help=RAY_ADDRESS_HELP)] = None,
    num_workers: Annotated[int | None, typer.Option(help=NUM_WORKERS_HELP, min=1)] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the result as JSON")]
    = None,
) -> None:
    """Streamed SGD-IV (partially linear IV, SGD-fitted id effects, 2SLS on residuals) over
    Parquet; `--backend ray` runs data-parallel SGD on Ray with the same result."""
    from reelpick.distributed.iv import design_roles, fit_sgdiv

    check_backend_option(backend)
    if backend == "ray" and epochs is None:
        fail("--backend ray: pass --epochs N (running epochs until convergence is done by "
             "the local backend only)")
    try:
        roles = design_roles(data) or {}
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    cols: dict[str, Any] = dict(
        y=y or roles.get("y"),
        endog=_columns(endog, roles.get("endog", []), "--endog"),
        instruments=_columns(instruments, roles.get("instruments", []), "--instruments"),
        dense=_columns(dense, roles.get("dense", []), "--dense"),
        categorical=_columns(categorical, roles.get("categorical", []), "--categorical"),
        clusters=clusters or roles.get("clusters"))
    if not cols["y"] or not cols["endog"] or not cols["instruments"]:
        fail("--y, --endog and --instruments are needed (the file has no design metadata)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", WeakInstrumentWarning)
        warnings.simplefilter("always", ConvergenceWarning)
        try:
            est = fit_sgdiv(data, **cols, cov_type=cov_type, epochs=epochs,
                            batch_size=batch_size, learning_rate=learning_rate,
                            hash_buckets=hash_buckets, backend=backend,
                            num_workers=num_workers, address=ray_address)
        except (FileNotFoundError, ValueError, ImportError) as exc:
            fail(str(exc))
    res = est.result_
    n_epochs = est.n_passes_ - 2
    converged = getattr(est, "converged_", None)   # the Ray backend does not check
    status = "" if converged is None else (", converged" if converged else ", NOT converged")
    table = Table(title=f"SGD-IV ({res.nobs:,} rows, {cov_type}, {n_epochs} epochs{status}, "
                        f"backend {backend})")
    for c in ("regressor", "estimate", "std err", "95% CI (Wald)", "95% AR set"):
        table.add_column(c, justify="right" if c != "regressor" else "left")
    for name in res.params.index:
        table.add_row(str(name), *_estimate_row(res, str(name)))
    console.print(table)
    console.print(_first_stage_table(res, cov_type))
    console.print("nuisance R²: " + ", ".join(f"{k} {v:.3f}"
                                              for k, v in est.nuisance_r2_.items()))
    weak = [str(c.message) for c in caught if issubclass(c.category, WeakInstrumentWarning)]
    unconverged = [str(c.message) for c in caught
                   if issubclass(c.category, ConvergenceWarning)]
    for msg in weak + unconverged:
        console.print(f"[yellow]warning:[/yellow] {msg}")
    _write_json(json_path, {"columns": cols, "backend": backend, "sgdiv": res.to_dict(),
                            "nuisance_r2": est.nuisance_r2_.to_dict(), "epochs": n_epochs,
                            "converged": converged, "weak_instrument_warnings": weak,
                            "convergence_warnings": unconverged})
