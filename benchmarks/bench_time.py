"""Personalised models against recency-popularity on time splits (MovieLens-100K).

Each split (the 0.8 time cut-off, a rolling backtest of five cut-offs, and publishing-delay
backtests) is tuned on validation cut-offs strictly inside its own training window, then tested:

* ``pop-30d``: popularity over the last 30 days before the cut-off (the baseline to beat);
* ``als``: ALS (time-decayed confidence, BM25), its configuration tuned on validation;
* ``blend``: :class:`reelpick.models.blend.TrendBlend`, ALS plus a time-decayed popularity prior
  inside the model, ALS configuration, prior weight and half-life tuned jointly on validation
  (:func:`reelpick.evaluation.tune_blend`);
* ``stack`` (``--stack``): :class:`reelpick.models.StackRanker`, LambdaRank over ALS and
  trending candidates trained on label windows inside the training window (its defaults).

Per-member metrics are averaged over seeds and compared with a paired bootstrap over members
(per cut-off) and over cut-offs and members (pooled; :func:`reelpick.evaluation.paired_bootstrap`).

Run: ``python benchmarks/bench_time.py --data ../shared/data/ml-100k``. Writes the
``time-splits`` section of BENCHMARKS.md and ``benchmarks/results/time_splits.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import header, pin_threads, write_section  # noqa: E402

pin_threads(1)

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from typing import Any  # noqa: E402

import pandas as pd  # noqa: E402

from reelpick.data.loaders import load_dataset  # noqa: E402
from reelpick.data.splits import (  # noqa: E402
    TTSplit,
    publishing_delay,
    resolve_cutoff,
    rolling_cutoffs,
    time_cutoff,
)
from reelpick.evaluation import (  # noqa: E402
    paired_bootstrap,
    score_model,
    tune_blend,
    validation_splits,
)
from reelpick.models.base import Recommender, make_model  # noqa: E402
from reelpick.models.blend import TrendBlend  # noqa: E402

METRICS = ("NDCG@10", "Recall@20")
ALS_BASE = {"regularization": 5.0, "alpha": 1.0, "iterations": 20, "weighting": "bm25",
            "num_threads": 1}
ALS_GRID = [{**ALS_BASE, "factors": f, "recency_half_life_days": h}
            for f in (32, 64) for h in (15.0, 60.0)]
POP = {"window_days": 30.0}
DAY = 86400


#: The sequence model as tuned on the 0.8 cut-off's validation folds in the ``sequence`` section
#: (GRU, softmax over all titles, 4 epochs, no holdout, drift features at the end of training).
SEQ = {"encoder": "gru", "hidden": 64, "n_blocks": 2, "max_len": 50, "dropout": 0.5,
       "learning_rate": 1e-3, "batch_size": 128, "max_epochs": 4, "validation": False,
       "exclude_seen": False, "request_time": "end", "num_threads": 1}
#: Item-kNN (no tuning of its own beyond these): neighbours x similarity.
KNN_GRID = [{"neighbors": k, "similarity": sim} for k in (50, 200) for sim in ("cosine", "bm25")]
GRIDS: dict[str, list[dict[str, Any]]] = {"als": ALS_GRID, "seq": [SEQ], "itemknn": KNN_GRID}


def tuned(split: TTSplit, catalogue: list[str], folds: int, seeds: list[int],
          families: list[str]) -> dict[str, Any]:
    """Per base family: tune the blend (and, as its weight-0 trials, the base alone) on
    validation cut-offs inside the training window."""
    val = validation_splits("time-cutoff", split.train, folds)
    out: dict[str, Any] = {"val_cutoffs": [f.cutoff for f in val], "tune_s": 0.0}
    for fam in families:
        t0 = time.perf_counter()
        best, trials = tune_blend(val, catalogue=catalogue, base=fam, base_grid=GRIDS[fam],
                                  metrics=METRICS, seeds=seeds)
        alone = max((t for t in trials if t["params"]["weight"] == 0.0),
                    key=lambda t: t["score"])
        out[fam] = {"blend": best, "alone": alone["params"]["base_params"],
                    "trials": len(trials), "blend_val": max(t["score"] for t in trials),
                    "alone_val": alone["score"]}
        out["tune_s"] += time.perf_counter() - t0
    return out


def fit_models(split: TTSplit, choice: dict[str, Any], catalogue: list[str], seed: int,
               families: list[str], stack: dict[str, Any] | None = None
               ) -> dict[str, Recommender]:
    """pop-30d, per family the base alone and its blend, and (``stack``) the stacked ranker
    with its defaults updated by ``stack``, all fitted on ``split.train``."""
    tr = split.train
    models: dict[str, Recommender] = {
        "pop-30d": make_model("popular", **POP).fit(tr, titles=catalogue)}
    if stack is not None:
        models["stack"] = make_model("stack", **{"random_state": seed, **stack}).fit(
            tr, titles=catalogue)
    for fam in families:
        c = choice[fam]
        rs = {"random_state": seed} if "random_state" in make_model(fam).get_params() else {}
        base = make_model(fam, **{**c["alone"], **rs}).fit(tr, titles=catalogue)
        models[fam] = base
        if c["blend"]["base_params"] == c["alone"]:   # same base: blend around that fit
            models[f"blend({fam})"] = TrendBlend.from_fitted(
                base, tr, weight=c["blend"]["weight"],
                prior_half_life_days=c["blend"]["prior_half_life_days"])
        else:
            params = {**c["blend"], "base_params": {**c["blend"]["base_params"], **rs}}
            models[f"blend({fam})"] = make_model("blend", **params).fit(tr, titles=catalogue)
    return models


def per_member(models: dict[str, Recommender], split: TTSplit,
               exclude: pd.DataFrame | None = None) -> pd.DataFrame:
    frames = [score_model(m, split, ks=(10, 20), exclude=exclude).per_member[list(METRICS)]
              .assign(model=name) for name, m in models.items()]
    return pd.concat(frames).reset_index()


def seed_mean(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(frames).groupby(["model", "member_id"], as_index=False)[list(METRICS)].mean()


def diff(frame: pd.DataFrame, model: str, base: str, metric: str) -> pd.DataFrame:
    """Per (cut-off, member) difference model − base of ``metric``."""
    wide = frame.pivot_table(index=["cut", "member_id"], columns="model", values=metric)
    return (wide[model] - wide[base]).rename("d").reset_index()


def stack_params(args: argparse.Namespace) -> dict[str, Any] | None:
    """The stack's hyperparameters (``--stack-params`` over its defaults), or ``None`` without
    ``--stack``."""
    return json.loads(args.stack_params) if args.stack else None


def run(args: argparse.Namespace) -> dict[str, Any]:
    warnings.simplefilter("ignore", UserWarning)
    ds = load_dataset(args.data)
    inter, catalogue = ds.interactions, ds.title_vocab().to_list()
    seeds = [int(s) for s in args.seeds.split(",")]
    tune_seeds = [int(s) for s in args.tune_seeds.split(",")]
    families = args.families.split(",")
    splits: list[tuple[str, float, TTSplit]] = [("cut-off 0.8", 0.8, time_cutoff(
        inter, quantile=0.8))]
    bt_q = [float(q) for q in args.backtest.split(",")]
    splits += [(f"backtest {q}", q, s) for q, s in zip(bt_q, rolling_cutoffs(
        inter, bt_q, horizon=args.horizon))]
    rows, info, choices = [], [], {}
    stack = stack_params(args)
    for label, q, split in splits:
        key = (q, split.cutoff)
        if key not in choices:
            choices[key] = tuned(split, catalogue, args.folds, tune_seeds, families)
        choice = choices[key]
        frames = []
        t0 = time.perf_counter()
        for s in seeds:
            frames.append(per_member(fit_models(split, choice, catalogue, s, families, stack),
                                     split))
        res = seed_mean(frames).assign(cut=label)
        rows.append(res)
        info.append({"cut": label, "quantile": q, "cutoff": split.cutoff,
                     "n_train": len(split.train), "n_test": len(split.test),
                     "n_members": int(res["member_id"].nunique()),
                     "fit_score_s": time.perf_counter() - t0,
                     **{k: v for k, v in choice.items()}})
        print(label, res.groupby("model")[list(METRICS)].mean().round(4).to_dict(), flush=True)
    frame = pd.concat(rows)

    # publishing delay: train (and tune) at t, serve [t + d, t + d + window)
    delay_rows = []
    ts = inter["timestamp"].to_numpy()
    for q in [float(x) for x in args.delay_cutoffs.split(",") if x]:
        t = resolve_cutoff(inter, quantile=q)
        base_split = time_cutoff(inter, t)
        choice = choices.get((q, t)) or tuned(base_split, catalogue, args.folds, tune_seeds,
                                              families)
        frames_by_d: dict[float, list[pd.DataFrame]] = {}
        for s in seeds:
            models = fit_models(base_split, choice, catalogue, s, families, stack)
            for d in [float(x) for x in args.delays.split(",")]:
                split = publishing_delay(inter, t, delay_days=d, window_days=args.window_days)
                if len(split.test) == 0:
                    continue
                gap = inter[(ts >= t) & (ts < t + d * DAY)][["member_id", "title_id"]]
                upto = inter[ts < t + d * DAY]
                fresh: dict[str, Recommender] = {}
                for fam in families:
                    b = choice[fam]["blend"]
                    m = TrendBlend.from_fitted(
                        models[f"blend({fam})"].base_,  # type: ignore[attr-defined]
                        base_split.train, weight=b["weight"],
                        prior_half_life_days=b["prior_half_life_days"])
                    fresh[f"blend({fam}), prior refreshed at t+d"] = m.refresh_prior(
                        upto, now=t + d * DAY)
                pop_fresh = make_model("popular", **POP).fit(upto, titles=catalogue)
                # scored on the members the stale models know (the same rows for every model)
                f = per_member({**models, **fresh}, split, exclude=gap)
                g = per_member({"pop-30d refit at t+d": pop_fresh},
                               TTSplit(upto, split.test, split.cutoff), exclude=gap)
                frames_by_d.setdefault(d, []).append(pd.concat([f, g]))
        for d, frames in frames_by_d.items():
            delay_rows.append(seed_mean(frames).assign(cut=f"delay {q}", delay=d))
        print("delay", q, flush=True)
    delays = pd.concat(delay_rows) if delay_rows else pd.DataFrame()
    return {"frame": frame, "info": info, "delays": delays, "seeds": seeds,
            "n_rows": len(inter), "families": families, "stack": args.stack,
            "stack_params": json.loads(args.stack_params)}


def ci_cell(frame: pd.DataFrame, model: str, base: str, metric: str, clusters: bool,
            n_boot: int) -> Any:
    d = diff(frame, model, base, metric)
    return paired_bootstrap(d["d"], clusters=d["cut"] if clusters else None, n_boot=n_boot)


POOLED_HEAD = ("| difference | metric | mean (cut-offs + members CI) | members CI | excludes 0 "
               "(two-stage) | excludes 0 (members) |\n|---|---|---|---|---|---|")


def _params(choice: dict[str, Any], model: str) -> str:
    if model == "pop-30d":
        return "window 30 d"
    if model == "stack":
        return "as declared (not tuned per split)"
    fam = model[6:-1] if model.startswith("blend(") else model
    c = choice[fam]
    bp = c["blend"]["base_params"] if model.startswith("blend(") else c["alone"]
    base = (f"factors {bp['factors']}, confidence half-life {bp['recency_half_life_days']:g} d"
            if fam == "als" else f"{bp['neighbors']} neighbours, {bp['similarity']}"
            if fam == "itemknn" else f"{bp.get('encoder')}, {bp.get('max_epochs')} epochs")
    if model.startswith("blend("):
        return (f"w={c['blend']['weight']}, h={c['blend']['prior_half_life_days']:g} d; "
                + base)
    return base


STACK_NOTE = """
`stack` is `reelpick.models.StackRanker`, the same for every split: a LightGBM ranker over
candidates of ALS and of 7-day / 30-day / trending popularity, with member, title and time
features, trained on 8 label windows (each 6% of the rows) inside the split's training window
(`reelpick.models.stack`). Its hyperparameters were chosen on the development cut-offs of the
`time-splits` section (0.8 and backtests 0.5, 0.6, 0.7, 0.9); nothing is tuned per split except,
with `objective="auto"`, the objective (chosen on the newest label window inside the training
window).
"""


def _stack_params_note(args: argparse.Namespace) -> str:
    p = json.loads(args.stack_params)
    return "" if not p else f"In this run the stack's defaults are overridden by `{p}`.\n"


def report(out: dict[str, Any], args: argparse.Namespace) -> str:
    frame, info, delays = out["frame"], out["info"], out["delays"]
    nb = args.n_boot
    fams = out["families"]
    models = ["pop-30d"] + [m for f in fams for m in (f, f"blend({f})")] + (
        ["stack"] if out.get("stack") else [])
    means = frame.groupby(["cut", "model"], sort=False)[list(METRICS)].mean()
    lines = ["| split | members | model | NDCG@10 | Recall@20 | − pop-30d NDCG@10 | "
             "− pop-30d Recall@20 | chosen on validation |", "|---" * 8 + "|"]
    for i in info:
        c = i["cut"]
        sub = frame[frame["cut"] == c]
        for model in models:
            m = means.loc[(c, model)]
            cis = (["", ""] if model == "pop-30d" else
                   [str(ci_cell(sub, model, "pop-30d", k, False, nb)) for k in METRICS])
            lines.append(f"| {c} (t={i['cutoff']}) | {i['n_members']} | {model} | "
                         f"{m['NDCG@10']:.4f} | {m['Recall@20']:.4f} | {cis[0]} | {cis[1]} | "
                         f"{_params(i, model)} |")
    bt = frame[frame["cut"].str.startswith("backtest")]
    n_cuts = bt["cut"].nunique()
    pooled = []
    for model in models[1:]:
        for k in METRICS:
            ci = ci_cell(bt, model, "pop-30d", k, True, nb)
            ci_m = ci_cell(bt, model, "pop-30d", k, False, nb)
            pooled.append(f"| {model} − pop-30d | {k} | {ci} | {ci_m.low:+.4f} … "
                          f"{ci_m.high:+.4f} | {'yes' if ci.excludes_zero else 'no'} | "
                          f"{'yes' if ci_m.excludes_zero else 'no'} |")
    verdict = []
    for model in models[1:]:
        two = [ci_cell(bt, model, "pop-30d", k, True, nb) for k in METRICS]
        mem = [ci_cell(bt, model, "pop-30d", k, False, nb) for k in METRICS]
        tc = means.loc[(info[0]["cut"], model)] - means.loc[(info[0]["cut"], "pop-30d")]
        verdict.append(
            f"- **{model}** − pop-30d: {info[0]['cut']} NDCG@10 {tc['NDCG@10']:+.4f}, "
            f"Recall@20 {tc['Recall@20']:+.4f}; pooled backtest NDCG@10 {two[0].mean:+.4f}, "
            f"Recall@20 {two[1].mean:+.4f}; pooled CI excludes 0 — resampling members: "
            f"{'yes' if mem[0].excludes_zero else 'no'} / "
            f"{'yes' if mem[1].excludes_zero else 'no'}, resampling cut-offs and members: "
            f"{'yes' if two[0].excludes_zero else 'no'} / "
            f"{'yes' if two[1].excludes_zero else 'no'} (NDCG@10 / Recall@20).")
        if args.note_file and model == args.declared_model:  # the check declared
            ok = all(c.low > 0 for c in two)
            verdict.append(
                f"- **Declared check** ({model} − pop-30d, two-stage pooled CI above 0 on "
                f"both metrics): **{'holds' if ok else 'fails'}** — NDCG@10 {two[0]}, "
                f"Recall@20 {two[1]}.")
    per_cut = bt.groupby(["model", "cut"])[list(METRICS)].mean()
    wins = {m: [int((per_cut.loc[m][k] > per_cut.loc["pop-30d"][k]).sum()) for k in METRICS]
            for m in models[1:]}
    bt_mean = per_cut.groupby("model").agg(["mean", "std"])
    mean_lines = ["| model | NDCG@10 mean ± sd over cut-offs | Recall@20 mean ± sd | "
                  "cut-offs above pop-30d (NDCG@10 / Recall@20) |", "|---|---|---|---|"]
    for model in models:
        r = bt_mean.loc[model]
        w = f"{wins[model][0]} / {wins[model][1]} of {n_cuts}" if model in wins else ""
        mean_lines.append(f"| {model} | {r[('NDCG@10', 'mean')]:.4f} ± "
                          f"{r[('NDCG@10', 'std')]:.4f} | {r[('Recall@20', 'mean')]:.4f} ± "
                          f"{r[('Recall@20', 'std')]:.4f} | {w} |")
    delay_lines = []
    if len(delays):
        dm = delays.groupby(["delay", "model"])[list(METRICS)].mean()
        dmodels = models + [f"blend({f}), prior refreshed at t+d" for f in fams] + [
            "pop-30d refit at t+d"]
        delay_lines = ["| delay d | model | NDCG@10 | Recall@20 | − pop-30d (trained at t) "
                       "NDCG@10 | − pop-30d Recall@20 |", "|---" * 6 + "|"]
        for d in sorted(delays["delay"].unique()):
            sub = delays[delays["delay"] == d]
            for model in dmodels:
                cis = (["", ""] if model == "pop-30d" else
                       [str(ci_cell(sub, model, "pop-30d", k, True, nb)) for k in METRICS])
                delay_lines.append(f"| {d:g} days | {model} | {dm.loc[(d, model), 'NDCG@10']:.4f}"
                                   f" | {dm.loc[(d, model), 'Recall@20']:.4f} | {cis[0]} | "
                                   f"{cis[1]} |")
    tune_s = sum(i["tune_s"] for i in info)
    cmd = ("python benchmarks/bench_time.py --seeds " + args.seeds + " --tune-seeds "
           + args.tune_seeds + " --families " + args.families + " --backtest "
           + args.backtest + f" --horizon {args.horizon:g} --delay-cutoffs "
           + (args.delay_cutoffs or '""') + " --delays " + args.delays)
    seq_note = ("""
The sequence model is not in this run (`--families als,seq` adds it and its blend).
""" if "seq" not in fams else """
`seq` is the sequence model with the settings the `sequence` section chose on the 0.8 cut-off's
validation folds (GRU, softmax over all titles, 4 epochs, no holdout, drift features taken at
the end of training), 1 thread; only its blend weight and prior half-life are tuned per split
(so for the earlier cut-offs its architecture was chosen on later data).
""")
    wd = f"{args.window_days:g}"
    delay_text = f"""### Publishing delay: train at `t`, serve `[t + d, t + d + {wd} days)`

Cut-offs at quantiles {args.delay_cutoffs} (tuned as above at `t`); means over the pooled
(cut-off, member) pairs, CIs two-stage over cut-offs and members. Every model is frozen at `t`
except the last rows of each delay: the blend with its trending prior recomputed from the plays
before `t + d` (the base still from `t`; the prior is a count a server can refresh at request
time) and popularity refit at `t + d`. Titles a member played in the gap `[t, t + d)` are
excluded for every model; members are those seen before `t`.

{chr(10).join(delay_lines)}
""" if delay_lines else "(Publishing delays not run: no `--delay-cutoffs`.)\n"
    cmd += " --stack" if args.stack else ""
    cmd += f" --stack-params '{args.stack_params}'" if args.stack_params != "{}" else ""
    cmd += (f" --declared-model {args.declared_model}"
            if args.declared_model != "blend(als)" else "")
    cmd += f" --section {args.section}" if args.section != "time-splits" else ""
    cmd += f" --note-file {args.note_file}" if args.note_file else ""
    title = "Time splits: personalised models vs recency-popularity (MovieLens-100K)"
    note = ""
    if args.section != "time-splits":
        title += f", {len(set(bt['cut']))} cut-offs"
    if args.note_file:
        note = "\n" + Path(args.note_file).read_text().strip() + "\n"
    elif args.section != "time-splits":
        note = f"""
The same protocol as the `time-splits` section with {len(set(bt['cut']))} backtest cut-offs and
test windows {args.horizon:g} of the rows wide. This run was added after the five-cut-off run
of that section had been seen (more cut-offs: a tighter interval over cut-offs); both are
reported.
"""
    return header(title, cmd) + note + f"""
Every split trains on everything before its cut-off `t` and is tuned on validation cut-offs at
quantiles 0.7, 0.8, 0.9 *of its own training window* (`validation_splits("time-cutoff")`), so no
test row (and nothing at or after `t`) is seen while choosing. The tuning score is the mean of
validation NDCG@10 and Recall@20 (averaged over the folds and seeds {args.tune_seeds}).
`blend(base)` is `TrendBlend` (`reelpick.models.blend`):
`(1 − w)·z(base score) + w·z(log(1 + time-decayed plays, half-life h))`, with `w` ∈
{{0, 0.5, 0.7, 0.8, 0.9, 1}} and `h` ∈ {{7, 15, 30}} days tuned jointly with the base's
configuration (for ALS: {len(ALS_GRID)} configurations, factors {{32, 64}} x confidence half-life
{{15, 60}} days, BM25, alpha 1; one base fit per configuration, fold and seed, the prior swept
over it: `reelpick.evaluation.tune_blend`). The base alone (`als`, `seq`) is the best `w = 0`
trial of the same search. `pop-30d` is `popular(window_days=30)`, untuned. Full-catalogue
ranking, training titles excluded for every model. Per-member metrics are averaged over seeds
{out['seeds']}; differences are paired by member, 95% percentile bootstrap ({nb} replicates,
`reelpick.evaluation.paired_bootstrap`). Tuning took {tune_s:.0f} s in all (1 thread).
{seq_note}{STACK_NOTE + _stack_params_note(args) if out.get("stack") else ""}
Summary (target: the best personalised model above pop-30d on both metrics, with the pooled
backtest CI excluding zero):

{chr(10).join(verdict)}

### Per cut-off (0.8 cut-off: test to the end; backtests: windows {args.horizon:g} of the rows)

CIs here resample members.

{chr(10).join(lines)}

### Rolling backtest, pooled over {n_cuts} cut-offs

{chr(10).join(mean_lines)}

Paired differences over all (cut-off, member) pairs. "cut-offs + members" resamples cut-offs,
then members within each (two-stage bootstrap: it counts how much the gain varies between
cut-offs); "members" resamples the pooled (cut-off, member) pairs.

{POOLED_HEAD}
{chr(10).join(pooled)}

{delay_text}"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default="../shared/data/ml-100k")
    ap.add_argument("--out", default="BENCHMARKS.md")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--tune-seeds", default="0")
    ap.add_argument("--families", default="als", help="base models to blend: als[,seq][,itemknn]")
    ap.add_argument("--stack", action="store_true",
                    help="also fit the stacked ranker (reelpick.models.StackRanker, defaults)")
    ap.add_argument("--stack-params", default="{}",
                    help="JSON of StackRanker hyperparameters over its defaults (with --stack)")
    ap.add_argument("--declared-model", default="blend(als)",
                    help="the model whose pooled CI the --note-file declaration checks")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--backtest", default="0.5,0.6,0.7,0.8,0.9")
    ap.add_argument("--horizon", type=float, default=0.1,
                    help="backtest test window, as a share of the rows")
    ap.add_argument("--delay-cutoffs", default="0.5,0.6,0.7,0.8")
    ap.add_argument("--delays", default="0,7,14")
    ap.add_argument("--window-days", type=float, default=21.0)
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--section", default="time-splits",
                    help="BENCHMARKS.md section (and results JSON) to write")
    ap.add_argument("--note-file", default="",
                    help="markdown printed under the section's header (e.g. a protocol "
                         "declared and committed before the run)")
    args = ap.parse_args()
    out = run(args)
    body = report(out, args)
    write_section(args.out, args.section, body)
    res = (Path(__file__).resolve().parent / "results"
           / f"{args.section.replace('-', '_')}.json")
    res.parent.mkdir(exist_ok=True)
    means = out["frame"].groupby(["cut", "model"])[list(METRICS)].mean().reset_index()
    delays = (out["delays"].groupby(["cut", "delay", "model"])[list(METRICS)].mean()
              .reset_index() if len(out["delays"]) else pd.DataFrame())
    res.write_text(json.dumps({"splits": out["info"], "means": means.to_dict("records"),
                               "delays": delays.to_dict("records")}, indent=2, default=str))
    print(body)


if __name__ == "__main__":
    main()
