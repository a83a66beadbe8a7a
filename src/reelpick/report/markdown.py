"""The same tables as the HTML report, in Markdown (for BENCHMARKS.md).

>>> markdown_table([{"a": 1, "b": "x"}])
'| a | b |\\n|---|---|\\n| 1 | x |'
"""

from __future__ import annotations

from typing import Any

from reelpick.report.html import (
    arms_table,
    candidates_table,
    lifts_table,
    ope_accuracy,
    releases_table,
    summary,
)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(none)"
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]).replace("|", "/") for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def markdown_summary(results: dict[str, Any]) -> str:
    """Feedback loops, releases, offline vs online (last release) and lifts as Markdown."""
    out = ["**In short** (sentences generated from the numbers)", ""]
    out += [f"- {line.replace('<b>', '**').replace('</b>', '**')}" for line in summary(results)]
    out += ["", "**Feedback loops** (day 1 → last day; TRUE = world's truth)", "",
           markdown_table(arms_table(results).to_dict("records")), "",
           "**Releases** (offline top candidates by DR go to a split-traffic A/B test)", "",
           markdown_table(releases_table(results).to_dict("records")), ""]
    if results["releases"]:
        rel = results["releases"][-1]
        out += [f"**Offline vs online, release after day {rel['day'] + 1}** (whole-page "
                "estimators: all plays per visit; per-slot DR: plays of the page's titles; "
                "TRUE values on fresh visits)", "",
                markdown_table(candidates_table(rel).to_dict("records")), "",
                "**Offline evaluation accuracy** (every release)", "",
                markdown_table(ope_accuracy(results)), ""]
    out += ["**What context, the sequence model, artwork and uplift add** (paired on the same "
            "fresh visits)", "", markdown_table(lifts_table(results).to_dict("records"))]
    return "\n".join(out)
