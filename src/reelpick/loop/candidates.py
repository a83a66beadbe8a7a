"""Training the candidate policies of a release from the logs so far (time-respecting).

Names (:data:`reelpick.loop.config.CANDIDATES`):

* ``popular`` — greedy by the catalogue's observable popularity (no learning);
* ``by-play`` / ``uplift`` — :class:`reelpick.causal.UpliftPolicy` on a
  :class:`~reelpick.causal.SegmentUpliftModel` fitted on the uniform-exploration share, ranking
  by p(play | shown) (correlational) or by uplift (causal);
* ``ranker`` / ``ranker-no-context`` / ``ranker+seq`` — the shipped page policy
  (:class:`reelpick.page.PagePolicy`), trained by :func:`reelpick.page.train_page_policy` on
  the production arm's logged tables (impressions, outcomes, interactions, titles, artworks:
  what ``reelpick train --policy page`` reads) and saved as a policy directory
  (:data:`PAGE_CANDIDATES`: with context features, without them, or with the sequence model
  as an extra source). In the loop a page policy serves its composed pages
  (:class:`ComposedPages`: no exploration of its own, first images), which the production arm
  wraps in its exploration buckets; the saved directory is what the service serves.

Page policies follow :func:`~reelpick.page.train_page_policy`'s protocol: sources and features
come from the history before the latest half of the logged period, the ranker learns from the
impressions in that half, and the served sources are refitted on everything logged.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reelpick.causal import SegmentUpliftModel, UpliftPolicy
from reelpick.causal.instruments import Logs
from reelpick.data.schema import join_outcomes
from reelpick.decision import PageBatch, Policy, VisitBatch
from reelpick.models import available_models
from reelpick.page import BoundPagePolicy, PagePolicy, PagePolicyConfig, train_page_policies
from reelpick.policies import GreedyPolicy, PopularityScorer
from reelpick.world import SimulationLog, World

DAY = 86_400

#: The page-policy candidates: their :class:`~reelpick.page.PagePolicyConfig` changes.
PAGE_CANDIDATES: dict[str, dict[str, Any]] = {
    "ranker": {}, "ranker-no-context": {"context": False}, "ranker+seq": {"sequence": True}}


@dataclass
class Candidate:
    """A trained candidate: its ``policy`` (deterministic pages for the world's visits),
    training seconds, and for page policies the :class:`~reelpick.page.PagePolicy` and the
    directory it is saved in (``None`` otherwise)."""

    name: str
    policy: Policy
    seconds: float
    page: PagePolicy | None = None
    path: Path | None = None
    info: dict = field(default_factory=dict)


class ComposedPages:
    """A page policy's composed pages for the world's visits (``PagePolicy.greedy``: no
    exploration, first images, propensity 1): the deterministic pages the loop's exploring
    loggers and the A/B test take."""

    def __init__(self, bound: BoundPagePolicy, name: str) -> None:
        self.bound, self.name, self.version = bound, name, bound.version

    def choose(self, visits: VisitBatch, rng: np.random.Generator) -> PageBatch:
        return self.bound.greedy(visits, rng)


def explore_logs(log: SimulationLog, explored: np.ndarray, titles: pd.DataFrame) -> Logs:
    """The uniform-exploration share of ``log`` as :class:`reelpick.causal.Logs` (impressions of
    explored visits; all interactions)."""
    imp = join_outcomes(log.impressions(), log.outcomes())
    pages = {f"p{v}" for v in np.flatnonzero(explored)}
    imp = imp[imp["page_id"].isin(pages)].reset_index(drop=True)
    return Logs(imp, log.interactions(), titles)


def seq_available() -> bool:
    return "seq" in available_models()


def train_candidates(world: World, log: SimulationLog, explored: np.ndarray, names: list[str], *,
                     out: Path, trees: int, train_rows: int, seed: int, epsilon: float,
                     artwork: bool, on_done: Callable[[str], None] | None = None
                     ) -> list[Candidate]:
    """Train every candidate in ``names`` on ``log`` (in that order); ``explored
    (n_visits,)`` marks the uniform-exploration visits. The page policies are trained together
    (:func:`~reelpick.page.train_page_policies` on the logged tables) and saved in
    ``out/<name>``, served with ``epsilon`` exploration and the Thompson artwork bandit when
    ``artwork`` (else first images). ``on_done(name)`` after each."""
    titles = world.titles()
    wc = world.config
    done: dict[str, Candidate] = {}
    page_names = [n for n in names if n in PAGE_CANDIDATES
                  and (n != "ranker+seq" or seq_available())]
    if page_names:
        t0 = time.perf_counter()
        configs = {n: PagePolicyConfig(
            n_rows=wc.page_rows, n_positions=wc.page_positions, epsilon=epsilon,
            artwork="thompson" if artwork else "first", trees=trees, train_rows=train_rows,
            seed=seed, **PAGE_CANDIDATES[n]) for n in page_names}
        pols = train_page_policies(log.impressions(), log.outcomes(), titles, configs,
                                   artworks=world.artworks(), interactions=log.interactions())
        seconds = (time.perf_counter() - t0) / len(pols)  # trained together: the average
        for page in pols:
            path = page.save(out / _slug(page.name))
            bound = page.for_members(world.members()["member_id"], wc.countries)
            imp = page.composer.ranker.feature_importance().head(10)
            done[page.name] = Candidate(
                page.name, ComposedPages(bound, page.name), seconds, page, path,
                {"train_rows": page.info["ranker_rows"],
                 "train_plays": page.info["ranker_plays"],
                 "importance": {k: float(v) for k, v in imp.items()},
                 "version": page.version, "path": str(path)})
    uplift_model: SegmentUpliftModel | None = None
    out_list: list[Candidate] = []
    for name in names:
        t0 = time.perf_counter()
        if name == "popular":
            out_list.append(Candidate(name, GreedyPolicy(PopularityScorer(), name="popular"),
                                      0.0))
        elif name in ("by-play", "uplift"):
            if uplift_model is None:
                uplift_model = SegmentUpliftModel(by_device=True).fit(
                    explore_logs(log, explored, titles))
            pol = UpliftPolicy.for_world(uplift_model, world,
                                         score="play" if name == "by-play" else "uplift",
                                         name=name)
            out_list.append(Candidate(name, pol, time.perf_counter() - t0))
        elif name in done:
            out_list.append(done[name])
        if on_done is not None:
            on_done(name)
    return out_list


def write_candidates_json(out: Path, records: list[dict[str, Any]]) -> Path:
    """``out/candidates.json``: every saved page-policy candidate of the run (``name``,
    ``path``, ``version``, ``release`` day, ``shipped``), the format of
    ``reelpick train --policy page``'s record (``reelpick ope --candidates`` reads the
    folder)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "candidates.json"
    path.write_text(json.dumps(records, indent=2))
    return path


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in ".-" else "_" for c in name)
