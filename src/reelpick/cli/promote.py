"""``reelpick promote``: ship the best candidate page policy by a stated rule, or refuse.

Every candidate (``--candidates``: a saved page policy or a folder of them) is estimated on the
served logs (``--logs``, as ``reelpick ope --candidates``; with exact marginals on every
visit when ``--served``, by default ``--model-dir``'s current version, reproduces the logged
propensities, else on the logs' exploration bucket), and
:func:`reelpick.page.evaluate.promotion_decision` applies the rule on ``--estimator`` (default
``pbm_dr``: the page-level position-based DR on the logs' exploration bucket): a candidate
needs a reliable estimate (the logs must mark their exploration bucket), an effective sample
size of at least ``--min-ess`` and ``--min-matched`` matched titles per visit; the best
eligible estimate ships when its 95% lower bound beats the served logs' own value plus
``--margin``. On success the winner is published as the current version of
``--model-dir`` (atomically; the decision is written into the manifest) and, with ``--reload``,
a running service is told to swap it in. On refusal nothing changes and the command exits 3.

Example: ``reelpick promote --logs runs/served --candidates runs/cand --model-dir runs/model``

``--first`` (a first launch, nothing served yet, so no logs to estimate on) publishes the one
candidate given without an estimate, and only into a model directory that serves nothing.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated

import typer

from reelpick.cli._common import console, fail

#: Exit status when the rule refuses to ship (distinct from 2, bad input).
REFUSED = 3


def promote(
    candidates: Annotated[Path, typer.Option(help="A saved page policy or a folder of them "
                                             "(`reelpick train --policy page --out`)")],
    model_dir: Annotated[Path, typer.Option(help="The service's model directory to publish "
                                            "the winner into", file_okay=False)],
    logs: Annotated[Path | None, typer.Option(help="Served logs: impressions + outcomes tables "
                                              "(`reelpick logs export` or `reelpick "
                                              "simulate`); not with --first")] = None,
    first: Annotated[bool, typer.Option("--first", help="First launch: publish the one "
                                        "candidate without an offline estimate (nothing has "
                                        "been served yet, so there are no logs to estimate "
                                        "on); refused when --model-dir already serves a "
                                        "version")] = False,
    min_ess: Annotated[float, typer.Option(help="Least effective sample size", min=0)] = 200.0,
    min_matched: Annotated[float, typer.Option(help="Least matched slots per visit", min=0)]
    = 0.5,
    estimator: Annotated[str, typer.Option(help="The estimate the rule reads: pbm_dr, "
                                           "pbm_sndr, pbm_snips, pbm_ips (page-level page "
                                           "plays), pbm_plays (page-level all plays, organic "
                                           "ones included: needs the logs' interactions) or "
                                           "snips, ips (exact slot match)")] = "pbm_dr",
    margin: Annotated[float, typer.Option(help="How much the winner's lower bound must beat "
                                          "the served value by (plays per visit)")] = 0.0,
    served: Annotated[Path | None, typer.Option(
        help="The saved page policy that served --logs (default: --model-dir's current "
             "version); used when it reproduces the logged propensities")] = None,
    since: Annotated[int | None, typer.Option(help="Only the pages served from this Unix "
                                              "time on")] = None,
    reload: Annotated[str | None, typer.Option(help="Base URL of a running service to reload "
                                               "after publishing, e.g. http://127.0.0.1:8000")]
    = None,
    api_key: Annotated[str | None, typer.Option(envvar="REELPICK_API_KEY",
                                                help="API key for --reload")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the estimates and "
                                                   "the decision as JSON")] = None,
) -> None:
    """Promote the best candidate page policy when the offline estimate supports it."""
    from reelpick.cli.ope import ope_candidates
    from reelpick.page.evaluate import PAGE_ESTIMATORS, PLAYS_ESTIMATORS, promotion_decision
    from reelpick.serve.model_dir import publish_policy

    known = PAGE_ESTIMATORS + PLAYS_ESTIMATORS + ("snips", "ips")
    if estimator not in known:
        fail(f"--estimator {estimator!r}: use one of {list(known)}")
    if first:
        _first_launch(candidates, model_dir, logs, reload, api_key)
        return
    if logs is None:
        fail("--logs: needed to estimate the candidates (on a first launch, --first)")
        return
    if served is None:
        served = _current_version(model_dir)
    report = ope_candidates(logs, candidates, since=since, served=served)
    baseline = report["baseline"]
    if estimator in PLAYS_ESTIMATORS:
        if report.get("baseline_plays") is None:
            fail(f"--estimator {estimator}: the logs have no interactions table, so the "
                 "organic plays (and all plays per visit) are unknown; use pbm_dr")
        baseline = report["baseline_plays"]
    decision = promotion_decision(report["candidates"], baseline, min_ess=min_ess,
                                  min_matched=min_matched, margin=margin, estimator=estimator)
    report["decision"] = decision.to_dict()
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2, default=str))
    console.print(decision.reason)
    if not decision.promote:
        raise typer.Exit(REFUSED)
    winner = next(r for r in report["candidates"] if r["name"] == decision.winner)
    try:
        manifest = publish_policy(model_dir, winner["path"], extra={
            "promotion": {**decision.to_dict(), "estimator": estimator,
                          "estimate": winner[estimator],
                          "baseline": baseline}})
    except (OSError, ValueError) as exc:
        fail(str(exc))
        return
    console.print(f"published {winner['name']} {manifest['version']} to {model_dir}")
    if reload is not None:
        _reload(reload, api_key)


def _first_launch(candidates: Path, model_dir: Path, logs: Path | None, reload: str | None,
                  api_key: str | None) -> None:
    """``--first``: publish the single candidate with no estimate, into a model directory that
    serves nothing yet (the manifest records ``promotion.first_launch``)."""
    from reelpick.cli.page import find_candidates
    from reelpick.serve.model_dir import publish_policy, read_manifest

    if logs is not None:
        fail("--first publishes without an offline estimate: drop --logs (or drop --first to "
             "estimate on them)")
    try:
        read_manifest(model_dir)
    except ValueError:
        pass
    else:
        fail(f"--first: {model_dir} already serves a version; estimate the candidates on its "
             "logs instead (--logs)")
    try:
        found = find_candidates(candidates)
    except FileNotFoundError as exc:
        fail(str(exc))
        return
    if len(found) != 1:
        fail(f"--first: {candidates} holds {len(found)} candidates; with no logs to tell them "
             "apart, give one (a saved page policy folder)")
    try:
        manifest = publish_policy(model_dir, found[0], extra={"promotion": {
            "first_launch": True, "reason": "first launch: published without an offline "
                                            "estimate (no served logs yet)"}})
    except (OSError, ValueError) as exc:
        fail(str(exc))
        return
    console.print(f"published {found[0].name} {manifest['version']} to {model_dir} (first "
                  "launch, no offline estimate)")
    if reload is not None:
        _reload(reload, api_key)


def _current_version(model_dir: Path) -> Path | None:
    """The page policy directory ``model_dir`` serves now (``None`` when it has none)."""
    from reelpick.serve.model_dir import POLICY_KIND, read_manifest

    try:
        manifest = read_manifest(model_dir)
    except ValueError:
        return None
    path = model_dir / str(manifest.get("path", ""))
    if manifest.get("kind") != POLICY_KIND or not (path / "policy.json").exists():
        return None
    return path


def _reload(base_url: str, api_key: str | None) -> None:
    req = urllib.request.Request(base_url.rstrip("/") + "/v1/admin/reload", method="POST",
                                 headers={"X-API-Key": api_key or ""}, data=b"")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            body = json.loads(resp.read() or b"{}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        fail(f"--reload {base_url}: published, but the service did not reload ({exc})")
        return
    console.print(f"{base_url} now serves {body.get('model_version', body)}")
