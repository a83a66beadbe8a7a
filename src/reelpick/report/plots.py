"""Matplotlib figures of a loop results object (``reelpick.loop.run_loop``), as PNG bytes.

Only numpy, pandas and matplotlib: the report reads the results object and nothing else.
"""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

COLORS = {"greedy": "#d62728", "explore": "#1f77b4", "uplift": "#2ca02c",
          "production": "#9467bd"}
LABELS = {"greedy": "greedy on its own logs (no exploration)",
          "explore": "same learner + exploration", "uplift": "uplift ranking + exploration",
          "production": "production loop (shipped A/B winners)"}


def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def feedback_loops(results: dict[str, Any]) -> bytes:
    """Coverage, diversity, concentration, true incremental plays (served and learnt policy)
    and true plays per arm over days."""
    df = pd.DataFrame(results["daily"])
    panels = [("coverage_shown", "catalogue coverage: titles shown / available"),
              ("effective_titles_played", "diversity: effective number of titles played"),
              ("top10_share", "share of plays on the 10 most played titles"),
              ("incremental", "TRUE incremental plays / visit (served, exploration incl.)"),
              ("learned_incremental", "TRUE incremental / visit of the learnt policy (end of day)"),
              ("plays", "TRUE plays / visit (organic + caused by the page)")]
    panels = [p for p in panels if p[0] in df.columns]
    ncol = 3
    nrow = -(-len(panels) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(14, 3.6 * nrow), squeeze=False)
    for ax, (col, title) in zip(axes.ravel(), panels):
        for arm, g in df.groupby("arm", sort=False):
            g = g.sort_values("day")
            ax.plot(g["day"] + 1, g[col], marker="o", ms=3, color=COLORS.get(arm),
                    label=LABELS.get(arm, arm))
            se = f"{col}_se"
            if se in g:
                ax.fill_between(g["day"] + 1, g[col] - 1.96 * g[se], g[col] + 1.96 * g[se],
                                color=COLORS.get(arm), alpha=0.15)
        ax.set_title(title, fontsize=9.5)
        ax.set_xlabel("day")
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    for d in (r["day"] for r in results["releases"]):
        for ax in axes.ravel()[:len(panels)]:
            ax.axvline(d + 1.5, color="#999", ls=":", lw=0.8)
    axes[0, 0].legend(fontsize=8, loc="best")
    fig.suptitle("Feedback loops (dotted lines: releases of the production loop; bands: 95% CI)",
                 fontsize=11)
    fig.tight_layout()
    return _png(fig)


def _errorbars(ax, cands: list[dict[str, Any]], keys: list[tuple[str, str, str]],
               truth_key: str, truth_label: str) -> None:
    x = np.arange(len(cands))
    width = 0.8 / (len(keys) + 1)
    for j, (k, label, color) in enumerate(keys):
        vals, lo, hi = [], [], []
        for c in cands:
            e = c["offline"].get(k)
            ok = bool(e) and e["value"] == e["value"]
            vals.append(e["value"] if ok else np.nan)
            lo.append(e["value"] - e["lo"] if ok else np.nan)
            hi.append(e["hi"] - e["value"] if ok else np.nan)
        ax.errorbar(x + (j - len(keys) / 2) * width, vals, yerr=[lo, hi], fmt="o", color=color,
                    capsize=3, label=f"offline {label}")
    truth = [c["online"][truth_key]["value"] for c in cands]
    xt = x + (len(keys) / 2) * width
    if all("truth_logged" in c["offline"] for c in cands):
        logged = [c["offline"]["truth_logged"][truth_key]["value"] for c in cands]
        ax.scatter(xt, logged, marker="*", s=140, color="k", zorder=5,
                   label="TRUE on the logged visits (estimand)")
        ax.scatter(xt, truth, marker="o", s=50, facecolors="none", edgecolors="k", zorder=5,
                   label="TRUE on the next day's visits")
    else:
        ax.scatter(xt, truth, marker="*", s=140, color="k", zorder=5,
                   label=f"online TRUE ({truth_label})")
    ax.set_xticks(x, [c["name"] for c in cands], rotation=20, fontsize=9)
    ax.set_ylabel(truth_label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5)


def offline_vs_online(release: dict[str, Any]) -> bytes:
    """Per candidate: whole-page offline estimates (95% CIs) against TRUE plays per visit,
    per-slot estimates against TRUE page plays, and the naive hit rate against TRUE plays."""
    cands = release["candidates"]
    fig, (ax, ax1, ax2) = plt.subplots(1, 3, figsize=(16, 4.6))
    _errorbars(ax, cands, [("replay", "replay (pool share)", "#8c564b"),
                           ("snips", "SNIPS", "#1f77b4"), ("dr", "DR", "#ff7f0e")],
               "plays", "plays per visit")
    ax.set_title(f"Whole page: offline vs online (release after day {release['day'] + 1})",
                 fontsize=10)
    _errorbars(ax1, cands, [("slot_snips", "per-slot SNIPS", "#17becf"),
                            ("slot_dr", "per-slot DR", "#e377c2")],
               "page_plays", "page plays per visit")
    ax1.set_title("Per slot (additive): plays of the page's titles", fontsize=10)
    hr = [c["offline"]["naive_hit_rate"] for c in cands]
    plays = [c["online"]["plays"]["value"] for c in cands]
    err = [1.96 * c["online"]["plays"]["se"] for c in cands]
    ax2.errorbar(hr, plays, yerr=err, fmt="o", color="#2ca02c", capsize=3)
    for c, a, b in zip(cands, hr, plays):
        ax2.annotate(c["name"], (a, b), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax2.set_xlabel("naive offline metric: hit rate on logged plays")
    ax2.set_ylabel("TRUE plays per visit (online)")
    ax2.set_title("The correlational metric vs what the page causes", fontsize=10)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def lifts(results: dict[str, Any]) -> bytes:
    """Paired true differences on fresh visits (context, sequence model, artwork, uplift)."""
    rows = []
    for rel in results["releases"]:
        for key, v in rel["lifts"].items():
            rows.append((rel["day"], key, v))
    fig, ax = plt.subplots(figsize=(11, 3.8))
    if not rows:
        ax.text(0.5, 0.5, "no lifts measured", ha="center")
        return _png(fig)
    keys = list(dict.fromkeys(k for _, k, _ in rows))
    days = list(dict.fromkeys(d for d, _, _ in rows))
    width = 0.8 / max(len(days), 1)
    for j, d in enumerate(days):
        vals, lo, hi = [], [], []
        for k in keys:
            v = next((v for dd, kk, v in rows if dd == d and kk == k), None)
            vals.append(np.nan if v is None else v["value"])
            lo.append(np.nan if v is None else v["value"] - v["lo"])
            hi.append(np.nan if v is None else v["hi"] - v["value"])
        ax.bar(np.arange(len(keys)) + (j - (len(days) - 1) / 2) * width, vals, width,
               yerr=[lo, hi], capsize=3, label=f"release after day {d + 1}")
    names = {"context": "context-shaped pages\n(ranker − no-context)",
             "seq": "sequence model source\n(ranker+seq − ranker)",
             "artwork": "artwork bandit\n(vs random images)",
             "uplift_vs_by_play": "uplift ranking\n(uplift − by-play)"}
    ax.set_xticks(np.arange(len(keys)), [names.get(k, k) for k in keys], fontsize=9)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_ylabel("Δ true plays per visit (95% CI)")
    ax.set_title("What each ingredient adds, paired on the same fresh visits", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return _png(fig)


def ab_tests(results: dict[str, Any]) -> bytes:
    """Each release's A/B test: realised plays per visit per arm, 95% CIs."""
    rels = results["releases"]
    fig, axes = plt.subplots(1, max(len(rels), 1), figsize=(3.6 * max(len(rels), 1), 3.4),
                             squeeze=False)
    for ax, rel in zip(axes[0], rels):
        arms = rel["ab"]["arms"]
        v = [a["value"] for a in arms]
        e = [1.96 * a["se"] for a in arms]
        colors = ["#2ca02c" if a["name"] == rel["ab"]["winner"] else "#7f7f7f" for a in arms]
        ax.bar(range(len(arms)), v, yerr=e, capsize=4, color=colors)
        ax.set_xticks(range(len(arms)), [a["name"] for a in arms], rotation=15, fontsize=8)
        ax.set_ylim(min(v) * 0.8, max(v) * 1.12)
        ax.set_title(f"after day {rel['day'] + 1}: ship {rel['shipped']}", fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].set_ylabel("realised plays per visit")
    fig.tight_layout()
    return _png(fig)
