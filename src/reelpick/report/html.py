"""One offline HTML page (plots embedded as base64 PNG) from a loop results object.

The report is a pure function of the results object: ``render_html(results)`` returns the page,
``write_report(results, out)`` writes ``out/report.html`` and ``out/results.json``.

Example
-------
>>> from reelpick.report.html import fmt_ci
>>> fmt_ci({"value": 1.0, "lo": 0.5, "hi": 1.5})
'1.000 [0.500, 1.500]'
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import pandas as pd

from reelpick.report import plots

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1180px;margin:2em
auto;padding:0 1em;color:#222;line-height:1.45}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #eee;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.88em}
th,td{border:1px solid #ddd;padding:.3em .6em;text-align:right}th{background:#f5f5f5}
td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}
.note{color:#555;font-size:.92em}.win{font-weight:bold;color:#1a7f37}
"""


def fmt_ci(e: dict[str, Any] | None, digits: int = 3) -> str:
    """``value [lo, hi]`` (``—`` when missing)."""
    if not e:
        return "—"
    f = f"{{:.{digits}f}}"
    return f"{f.format(e['value'])} [{f.format(e['lo'])}, {f.format(e['hi'])}]"


def _img(png: bytes, alt: str) -> str:
    b64 = base64.b64encode(png).decode("ascii")
    return f'<img class="plot" alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _table(df: pd.DataFrame, cls: str = "") -> str:
    return df.to_html(index=False, escape=True, classes=cls or None, border=0)


def _covers(e: dict[str, Any] | None, truth: float) -> bool | None:
    if not e or e.get("lo") is None or e["lo"] != e["lo"]:
        return None
    return bool(e["lo"] <= truth <= e["hi"])


def candidates_table(release: dict[str, Any]) -> pd.DataFrame:
    """Offline estimates (with 95% CIs), naive metric and online truth per candidate of one
    release. Whole-page estimators estimate all plays per visit (TRUE plays); per-slot ones the
    plays of titles on the page (TRUE page plays)."""
    ab = {a["name"]: a for a in release["ab"]["arms"]}
    rows = []
    for c in release["candidates"]:
        o, on = c["offline"], c["online"]
        tl = o.get("truth_logged", {})
        cov = _covers(o["dr"], tl["plays"]["value"]) if tl else None
        rows.append({
            "candidate": c["name"] + (" ✔" if c["name"] == release["shipped"] else ""),
            "replay (pool share)": fmt_ci(o.get("replay")),
            "SNIPS": fmt_ci(o["snips"]), "DR": fmt_ci(o["dr"]),
            "DR ESS": f"{o['dr']['ess']:.0f}",
            "TRUE plays, logged visits": fmt_ci(tl.get("plays")),
            "DR covers": {True: "yes", False: "no", None: "—"}[cov],
            "TRUE plays, next day": fmt_ci(on["plays"]),
            "per-slot DR (page plays)": fmt_ci(o.get("slot_dr")),
            "TRUE page plays": fmt_ci(on["page_plays"]),
            "naive hit rate": f"{o['naive_hit_rate']:.3f}",
            "TRUE incremental": fmt_ci(on["incremental"]),
            "A/B plays / visit": fmt_ci(ab[c["name"]]) if c["name"] in ab else "—",
        })
    return pd.DataFrame(rows)


def _spearman(a: list[float], b: list[float]) -> float:
    ra = pd.Series(a).rank().to_numpy()
    rb = pd.Series(b).rank().to_numpy()
    if len(a) < 2 or ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(pd.Series(ra).corr(pd.Series(rb)))


def ope_accuracy(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per release and estimator: how many candidates' 95% CIs cover the TRUE value, the mean
    CI width, and the rank correlation (Spearman) of the estimates with the TRUE values.
    TRUE on the logged visits (from the member state at the start of that day) is what the
    estimators estimate; TRUE on the next day's fresh visits is what a release ships to."""
    rows = []
    specs = [("replay", "logged", "plays", "replay (pool share) vs TRUE plays, logged visits"),
             ("snips", "logged", "plays", "SNIPS vs TRUE plays, logged visits"),
             ("dr", "logged", "plays", "DR vs TRUE plays, logged visits"),
             ("sndr", "logged", "plays", "SNDR vs TRUE plays, logged visits"),
             ("slot_dr", "logged", "page_plays", "per-slot DR vs TRUE page plays, logged visits"),
             ("dr", "online", "plays", "DR vs TRUE plays, next day"),
             ("naive_hit_rate", "online", "plays", "naive hit rate vs TRUE plays, next day")]
    for rel in results["releases"]:
        cands = rel["candidates"]
        for key, where, truth_key, label in specs:
            if where == "logged" and any("truth_logged" not in c["offline"] for c in cands):
                continue
            est = [c["offline"].get(key) for c in cands]
            truth = [(c["offline"]["truth_logged"] if where == "logged" else c["online"])
                     [truth_key]["value"] for c in cands]
            if key == "naive_hit_rate":
                vals = [float(e) for e in est]
                cover, width = "—", "—"
            else:
                if any(not e or e["value"] != e["value"] for e in est):
                    continue
                vals = [e["value"] for e in est]
                cov = [_covers(e, t) for e, t in zip(est, truth)]
                cover = f"{sum(bool(x) for x in cov)}/{len(cov)}"
                width = f"{sum(e['hi'] - e['lo'] for e in est) / len(est):.3f}"
            rows.append({"release after day": rel["day"] + 1, "estimator": label,
                         "CIs covering TRUE": cover, "mean CI width": width,
                         "Spearman with TRUE": f"{_spearman(vals, truth):.2f}"})
    return rows


def lifts_table(results: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for rel in results["releases"]:
        for key, v in rel["lifts"].items():
            rows.append({"release after day": rel["day"] + 1, "what": key,
                         "A": v["a"], "B": v["b"], "Δ TRUE plays / visit (A − B)": fmt_ci(v),
                         "visits": v["n"]})
    return pd.DataFrame(rows)


def arms_table(results: dict[str, Any]) -> pd.DataFrame:
    df = pd.DataFrame(results["daily"])
    last = df[df["day"] == df["day"].max()]
    first = df[df["day"] == 0].set_index("arm")
    rows = []
    for _, r in last.iterrows():
        f = first.loc[r["arm"]]
        rows.append({"arm": r["arm"], "policy on the last day": r["policy"],
                     "coverage shown (day 1 → last)":
                         f"{f['coverage_shown']:.3f} → {r['coverage_shown']:.3f}",
                     "effective titles played":
                         f"{f['effective_titles_played']:.1f} → {r['effective_titles_played']:.1f}",
                     "top-10 share of plays": f"{f['top10_share']:.3f} → {r['top10_share']:.3f}",
                     "TRUE incremental / visit": f"{f['incremental']:.3f} → {r['incremental']:.3f}",
                     "learnt policy, TRUE incremental":
                         f"{f['learned_incremental']:.3f} → {r['learned_incremental']:.3f}"
                         if "learned_incremental" in r else "—",
                     "TRUE plays / visit": f"{f['plays']:.3f} → {r['plays']:.3f}"})
    return pd.DataFrame(rows)


def releases_table(results: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for rel in results["releases"]:
        d = rel["ab"]["difference"]
        rows.append({"release after day": rel["day"] + 1,
                     "offline top (DR)": ", ".join(a["name"] for a in rel["ab"]["arms"]),
                     "A/B winner": rel["ab"]["winner"],
                     "Δ winner − runner-up": fmt_ci(d),
                     "significant": "yes" if d["significant"] else "no",
                     "shipped": rel["shipped"], "replaced": rel["shipped_before"] or "—"})
    return pd.DataFrame(rows)


def _late(df: pd.DataFrame, arm: str, col: str, days: int = 3) -> tuple[float, float]:
    """Mean of ``col`` over the arm's last ``days`` days, with its SE when ``col_se`` exists
    (days treated as independent)."""
    g = df[df["arm"] == arm].sort_values("day").tail(days)
    m = float(g[col].mean())
    se_col = f"{col}_se"
    se = float((g[se_col] ** 2).sum() ** 0.5 / len(g)) if se_col in g else float("nan")
    return m, se


def summary(results: dict[str, Any]) -> list[str]:
    """Sentences drawn from the numbers (comparisons state whether their CIs separate)."""
    df = pd.DataFrame(results["daily"])
    arms = set(df["arm"])
    n_days = int(df["day"].max()) + 1
    k = min(3, n_days)
    out = []

    def cmp(a: str, b: str, col: str = "incremental") -> str:
        (ma, sa), (mb, sb) = _late(df, a, col, k), _late(df, b, col, k)
        d = ma - mb
        se = (sa ** 2 + sb ** 2) ** 0.5
        lo, hi = d - 1.96 * se, d + 1.96 * se
        verdict = ("more" if lo > 0 else "fewer" if hi < 0 else "no clear difference in")
        return (f"{a} {ma:.3f} vs {b} {mb:.3f} (Δ {d:+.3f} [{lo:+.3f}, {hi:+.3f}]: "
                f"{verdict}{'' if verdict.startswith('no') else ' incremental plays'})")

    if {"greedy", "explore"} <= arms:
        g = df[df["arm"] == "greedy"].sort_values("day")
        e = df[df["arm"] == "explore"].sort_values("day")
        out.append(
            f"Last {k} days: the greedy recommender retrained on its own logs showed "
            f"{g['coverage_shown'].tail(k).mean():.0%} of the available catalogue "
            f"(with exploration: {e['coverage_shown'].tail(k).mean():.0%}); members watched an "
            f"effective {g['effective_titles_played'].tail(k).mean():.0f} titles (vs "
            f"{e['effective_titles_played'].tail(k).mean():.0f}), the top 10 titles took "
            f"{g['top10_share'].tail(k).mean():.0%} of plays (vs "
            f"{e['top10_share'].tail(k).mean():.0%}).")
        out.append("TRUE incremental plays per visit, last days: " + cmp("greedy", "explore")
                   + (f"; {cmp('uplift', 'greedy')}" if "uplift" in arms else "") + ".")
        first, last = g.iloc[0], g.iloc[-1]
        trend = "rose" if last["incremental"] > first["incremental"] else "fell"
        out.append(f"Greedy's own TRUE incremental plays {trend} from "
                   f"{first['incremental']:.3f} (day 1) to {last['incremental']:.3f} (day "
                   f"{n_days}): it learns from its logs, but only about what it already shows.")
    if "production" in arms:
        p = df[df["arm"] == "production"].sort_values("day")
        out.append(f"The production loop went from {p.iloc[0]['incremental']:.3f} to "
                   f"{p.iloc[-1]['incremental']:.3f} true incremental plays per visit "
                   f"(day 1 → day {n_days}), exploration included.")
    acc = ope_accuracy(results)
    for rel in results["releases"]:
        d = rel["day"] + 1
        a = next((r for r in acc if r["release after day"] == d
                  and r["estimator"] == "DR vs TRUE plays, logged visits"), None)
        b = next(r for r in acc if r["release after day"] == d
                 and r["estimator"] == "DR vs TRUE plays, next day")
        cov = (f"the TRUE value on the logged visits for {a['CIs covering TRUE']} candidates "
               f"(Spearman {a['Spearman with TRUE']}), " if a else "")
        out.append(f"Release after day {d}: offline DR intervals covered {cov}the TRUE value on "
                   f"the next day's visits for {b['CIs covering TRUE']} (Spearman "
                   f"{b['Spearman with TRUE']}); A/B winner "
                   f"<b>{html.escape(rel['shipped'])}</b> shipped.")
    return out


def render_html(results: dict[str, Any]) -> str:
    """The whole report as one HTML string (no external resources)."""
    cfg, w = results["config"], results["world"]
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
             f"<title>reelpick closed-loop demo</title><style>{CSS}</style></head><body>",
             "<h1>reelpick: the closed loop</h1>",
             f"<p class='note'>World <b>{html.escape(w['preset'])}</b> "
             f"({w['n_members']:,} members, {w['n_titles']:,} titles, pages of "
             f"{w['page'][0]}×{w['page'][1]}), {cfg['days']} days × "
             f"{cfg['visits_per_day']:,} visits per arm, uniform exploration ε = {cfg['epsilon']}"
             f" (production: + {cfg.get('pool_epsilon', 0)} candidate-pool exploration), "
             f"seed {cfg['seed']}. Sequence model: "
             f"{'yes' if results['available']['seq'] else 'not installed'}; artwork bandit: "
             f"{'yes' if results['available']['artwork'] else 'not installed'}. "
             f"Every number below comes from this run's <code>results.json</code>.</p>",
             "<ul>" + "".join(f"<li>{s}</li>" for s in summary(results)) + "</ul>",
             "<h2>1. Feedback loops</h2>",
             "<p class='note'>Four arms serve the same visits. TRUE values come from the "
             "world's known uplift of every impression, not from the logs. 'Learnt policy' = "
             "the arm's page without its exploration bucket, scored on fresh visits of the "
             "next day: what its own data taught it.</p>",
             _img(plots.feedback_loops(results), "feedback loops"),
             _table(arms_table(results), "arms"),
             "<h2>2. Releases: offline evaluation, A/B test, ship</h2>",
             _table(releases_table(results), "releases"),
             _img(plots.ab_tests(results), "A/B tests")]
    acc = ope_accuracy(results)
    if acc:
        parts += ["<h3>How good is offline evaluation?</h3>",
                  "<p class='note'>Per release and estimator: candidates whose 95% CI covers "
                  "the TRUE value, mean CI width, and rank agreement (Spearman) with the TRUE "
                  "values. 'Logged visits': the world's truth for each candidate's pages on the "
                  "very visits the estimate used (member state at the start of that day: the "
                  "estimand); 'next day': fresh visits the release ships to. The naive hit rate "
                  "has no CI.</p>", _table(pd.DataFrame(acc), "ope")]
    for rel in results["releases"]:
        parts += [f"<h3>Release after day {rel['day'] + 1}</h3>",
                  f"<p class='note'>Offline: {rel['ope_visits']:,} logged visits of day "
                  f"{rel['eval_day'] + 1} ({rel.get('pooled_visits', 0):,} in the "
                  f"candidate-pool bucket, {rel.get('pool_size', 0)} candidates). Replay, SNIPS "
                  f"and DR treat the whole page as the action and estimate all plays per visit "
                  f"(organic included); per-slot DR estimates plays of the page's titles. DR "
                  f"reward model: {html.escape(rel['reward_model'])}. Online: the world's truth "
                  f"on fresh visits of day {rel['day'] + 2}.</p>",
                  _img(plots.offline_vs_online(rel), f"offline vs online {rel['day']}"),
                  _table(candidates_table(rel), "candidates")]
    parts += ["<h2>3. Time, context, sequence, artwork</h2>",
              _img(plots.lifts(results), "lifts"), _table(lifts_table(results), "lifts"),
              "<h2>4. Run</h2>",
              _table(pd.DataFrame([{"step": k, "seconds": f"{v:.1f}"}
                                   for k, v in results["timings"].items()]), "timings"),
              "<p class='note'>Timings from the machine that ran the loop.</p>",
              "</body></html>"]
    return "\n".join(parts)


def write_report(results: dict[str, Any], out: str | Path) -> Path:
    """Write ``out/results.json`` and ``out/report.html``; returns the report's path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    path = out / "report.html"
    path.write_text(render_html(results), encoding="utf-8")
    return path


def report_from_json(path: str | Path, out: str | Path | None = None) -> Path:
    """Re-render a report from a saved ``results.json``."""
    path = Path(path)
    results = json.loads(path.read_text())
    return write_report(results, out or path.parent)
