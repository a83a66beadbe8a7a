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


def candidates_table(release: dict[str, Any]) -> pd.DataFrame:
    """Offline estimates, naive metric and online truth per candidate of one release."""
    ab = {a["name"]: a for a in release["ab"]["arms"]}
    rows = []
    for c in release["candidates"]:
        o, on = c["offline"], c["online"]
        rp = o.get("replay")
        rows.append({
            "candidate": c["name"] + (" ✔" if c["name"] == release["shipped"] else ""),
            "replay (uniform share)": fmt_ci(rp),
            "SNIPS": fmt_ci(o["snips"]), "DR": fmt_ci(o["dr"]),
            "DR ESS": f"{o['dr']['ess']:.0f}",
            "naive hit rate": f"{o['naive_hit_rate']:.3f}",
            "TRUE page plays": fmt_ci(on["page_plays"]),
            "TRUE plays / visit": fmt_ci(on["plays"]),
            "TRUE incremental": fmt_ci(on["incremental"]),
            "A/B plays / visit": fmt_ci(ab[c["name"]]) if c["name"] in ab else "—",
        })
    return pd.DataFrame(rows)


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


def summary(results: dict[str, Any]) -> list[str]:
    """A few sentences drawn from the numbers."""
    df = pd.DataFrame(results["daily"])
    last = df[df["day"] == df["day"].max()].set_index("arm")
    first = df[df["day"] == 0].set_index("arm")
    out = []
    if {"greedy", "explore"} <= set(last.index):
        g, e = last.loc["greedy"], last.loc["explore"]
        out.append(
            f"The greedy recommender retrained on its own logs shows "
            f"{g['coverage_shown']:.0%} of the available catalogue on the last day "
            f"(vs {e['coverage_shown']:.0%} with exploration); members watch an effective "
            f"{g['effective_titles_played']:.0f} titles (vs {e['effective_titles_played']:.0f}).")
    if "production" in last.index:
        p0, p1 = first.loc["production"], last.loc["production"]
        out.append(f"The production loop went from {p0['incremental']:.3f} to "
                   f"{p1['incremental']:.3f} true incremental plays per visit "
                   f"(day 1 → day {int(df['day'].max()) + 1}).")
    for rel in results["releases"]:
        out.append(f"Release after day {rel['day'] + 1}: A/B winner "
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
             f"{cfg['visits_per_day']:,} visits per arm, exploration ε = {cfg['epsilon']}, "
             f"seed {cfg['seed']}. Sequence model: "
             f"{'yes' if results['available']['seq'] else 'not installed'}; artwork bandit: "
             f"{'yes' if results['available']['artwork'] else 'not installed'}. "
             f"Every number below comes from this run's <code>results.json</code>.</p>",
             "<ul>" + "".join(f"<li>{s}</li>" for s in summary(results)) + "</ul>",
             "<h2>1. Feedback loops</h2>",
             "<p class='note'>Four arms serve the same visits. TRUE values come from the "
             "world's known uplift of every impression, not from the logs.</p>",
             _img(plots.feedback_loops(results), "feedback loops"),
             _table(arms_table(results), "arms"),
             "<h2>2. Releases: offline evaluation, A/B test, ship</h2>",
             _table(releases_table(results), "releases"),
             _img(plots.ab_tests(results), "A/B tests")]
    for rel in results["releases"]:
        parts += [f"<h3>Release after day {rel['day'] + 1}</h3>",
                  f"<p class='note'>Offline: {rel['ope_visits']:,} logged visits of day "
                  f"{rel['eval_day'] + 1}, values in page plays per visit, DR reward model "
                  f"{html.escape(rel['reward_model'])}. Online: the world's truth on fresh "
                  f"visits of day {rel['day'] + 2}.</p>",
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
