"""The simulated streaming world: visits, pages, plays, logs and the ground truth.

Example
-------
>>> from reelpick.world import World, WorldConfig
>>> from reelpick.policies import UniformPolicy
>>> world = World(WorldConfig.preset("small"), seed=7)
>>> log = world.simulate(UniformPolicy(), n_visits=200)
>>> log.n_impressions == 200 * world.config.n_slots
True
>>> v = world.policy_value(UniformPolicy(), n_visits=200)
>>> v.method, 0 < v.incremental_plays < v.plays
('exact', True)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from reelpick.data.schema import DEVICES, THEMES
from reelpick.world.config import AGE_BANDS, KINDS, WorldConfig
from reelpick.world.dynamics import DAY, Dynamics, MemberState, VisitFeatures, sigmoid
from reelpick.world.entities import Entities, draw_entities
from reelpick.world.log import ImpressionBuffer, ImpressionLog, SimulationLog, VisitLog
from reelpick.world.policy import ExactPolicy, Policy, VisitBatch, WorldVisits


@dataclass(frozen=True)
class PolicyValue:
    """A policy's true value per visit, with the standard error over the visits drawn.

    ``plays``: expected plays per visit (page and organic); ``watch_seconds``: expected watch
    time per visit; ``incremental_plays``: plays caused by the page, i.e. ``plays`` minus the
    plays had the page shown nothing. ``method`` is ``"exact"`` (expectation over the policy's
    randomness and all outcomes, from :meth:`ExactPolicy.marginals`) or ``"monte_carlo"``
    (pages sampled, outcomes integrated exactly). In both cases the visits are a sample, so each
    value has a standard error ``*_se``.
    """

    plays: float
    plays_se: float
    watch_seconds: float
    watch_seconds_se: float
    incremental_plays: float
    incremental_plays_se: float
    n_visits: int
    method: str

    def to_dict(self) -> dict[str, float | int | str]:
        return dict(self.__dict__)


class World:
    """A seeded simulated streaming service. Same ``config`` and ``seed`` -> same world and logs.

    Parameters
    ----------
    config : WorldConfig
    seed : int
        Seeds the entities (``[seed, 0]``) and, by default, :meth:`simulate` and
        :meth:`policy_value` (visits ``[seed, 1]``, policy ``[seed, 2]``, outcomes ``[seed, 3]``).

    Attributes
    ----------
    entities : Entities, the members, titles and artworks (latent attributes included).
    dynamics : Dynamics, the equations (``docs/world.md``).
    """

    def __init__(self, config: WorldConfig, seed: int = 0) -> None:
        if not isinstance(config, WorldConfig):
            raise TypeError(f"config: expected a WorldConfig, got {type(config).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed: must be a non-negative integer, got {seed!r}")
        self.config, self.seed = config, int(seed)
        self.entities: Entities = draw_entities(config, np.random.default_rng([self.seed, 0]))
        self.dynamics = Dynamics(config, self.entities)
        ent = self.entities
        self._artwork_rank = np.arange(ent.n_artworks) - ent.art_offset[ent.art_title]
        self._start_dow = (config.start // DAY + 3) % 7

    # ------------------------------------------------------------------ state and visits
    def initial_state(self) -> MemberState:
        """Member state at the start: no recent plays."""
        cfg = self.config
        return MemberState.empty(cfg.n_members, cfg.n_genres, cfg.seen_memory, cfg.start)

    def _seeds(self, seed: int | None) -> tuple[np.random.Generator, ...]:
        s = self.seed if seed is None else int(seed)
        return tuple(np.random.default_rng([s, i]) for i in (1, 2, 3))

    def draw_visits(self, n_visits: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """``n_visits`` visits spread over the horizon, sorted by time (arrays by name).

        Member uniform; country = the member's; device ~ the member's device mix; local day
        uniform; local hour ~ ``hour_weights``; mood ~ Bernoulli(``mood_rate``); promotion
        cell ~ Bernoulli(``cell_share``), independently (the instrument).
        """
        if isinstance(n_visits, bool) or not isinstance(n_visits, (int, np.integer)) \
                or n_visits < 1:
            raise ValueError(f"n_visits: must be a positive integer, got {n_visits!r}")
        cfg, ent = self.config, self.entities
        n = int(n_visits)
        member = rng.integers(0, cfg.n_members, n)
        country = ent.member_country[member]
        cdf = np.cumsum(ent.device_probs[member], axis=1)
        device = (cdf < rng.random(n)[:, None] * cdf[:, -1:]).sum(axis=1)
        device = np.minimum(device, len(DEVICES) - 1)
        day = rng.integers(0, cfg.days, n)
        w = np.asarray(cfg.hour_weights, dtype=float)
        hour = rng.choice(24, size=n, p=w / w.sum())
        second = rng.integers(0, 3600, n)
        offset = np.asarray(cfg.utc_offsets)[country]
        ts = cfg.start + day * DAY + hour * 3600 + second - offset * 3600
        mood = (rng.random(n) < cfg.mood_rate).astype(np.int8)
        cell = (rng.random(n) < cfg.cell_share).astype(np.int8)
        order = np.argsort(ts, kind="stable")
        return {"member": member[order], "timestamp": ts[order].astype(np.int64),
                "device": device[order], "country": country[order], "hour": hour[order],
                "day_of_week": ((self._start_dow + day) % 7)[order],
                "cell": cell[order], "mood": mood[order]}

    def batches(self, visits: dict[str, np.ndarray]) -> Iterator[tuple[slice, VisitBatch]]:
        """Split time-sorted visits into batches within one UTC day, at most ``batch_size``."""
        cfg = self.config
        day = np.floor_divide(visits["timestamp"] - cfg.start, DAY)
        cuts = np.flatnonzero(np.diff(day)) + 1
        bounds = np.concatenate([[0], cuts, [len(day)]])
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            for s in range(lo, hi, cfg.batch_size):
                sl = slice(int(s), int(min(s + cfg.batch_size, hi)))
                yield sl, self._batch({k: v[sl] for k, v in visits.items()}, int(day[lo]))

    def _batch(self, v: dict[str, np.ndarray], day: int) -> WorldVisits:
        tab = self.dynamics.tables(day)
        return WorldVisits(
            member=v["member"], timestamp=v["timestamp"], device=v["device"],
            country=v["country"], hour=v["hour"], day_of_week=v["day_of_week"], cell=v["cell"],
            mood=v["mood"], day=day, available=tab.available, catalog=tab.catalog,
            n_rows=self.config.page_rows, n_positions=self.config.page_positions)

    def make_visits(self, member: Sequence[int] | np.ndarray, timestamp: int | np.ndarray, *,
                    device: str | Sequence[str] | np.ndarray = "tv",
                    hour: int | np.ndarray | None = None,
                    day_of_week: int | np.ndarray | None = None,
                    mood: int | np.ndarray = 0, cell: int | np.ndarray = 0) -> WorldVisits:
        """Visits for truth queries. ``timestamp`` must fall on one simulated (UTC) day; the
        country is the member's; ``hour``/``day_of_week`` default to the local clock."""
        cfg = self.config
        member = np.atleast_1d(np.asarray(member, dtype=np.int64))
        n = member.size
        if ((member < 0) | (member >= cfg.n_members)).any():
            raise ValueError(f"member: indices must lie in 0..{cfg.n_members - 1}")
        ts = np.broadcast_to(np.asarray(timestamp, dtype=np.int64), (n,)).copy()
        day = np.unique(np.floor_divide(ts - cfg.start, DAY))
        if day.size != 1:
            raise ValueError("timestamp: all visits of a batch must fall on one simulated day")
        dev = np.broadcast_to(np.asarray(device), (n,))
        if dev.dtype.kind in "US":
            bad = ~np.isin(dev, DEVICES)
            if bad.any():
                raise ValueError(f"device: unknown device {str(dev[bad][0])!r}; "
                                 f"use one of {DEVICES}")
            dev = np.array([DEVICES.index(str(d)) for d in dev])
        country = self.entities.member_country[member]
        local = ts + np.asarray(cfg.utc_offsets)[country] * 3600
        h = local // 3600 % 24 if hour is None else np.broadcast_to(np.asarray(hour), (n,))
        dow = (local // DAY + 3) % 7 if day_of_week is None else np.broadcast_to(
            np.asarray(day_of_week), (n,))
        return self._batch({"member": member, "timestamp": ts, "device": dev.astype(np.int64),
                            "country": country, "hour": np.asarray(h, dtype=np.int64),
                            "day_of_week": np.asarray(dow, dtype=np.int64),
                            "cell": np.broadcast_to(np.asarray(cell, dtype=np.int8), (n,)),
                            "mood": np.broadcast_to(np.asarray(mood, dtype=np.int8), (n,))},
                           int(day[0]))

    def logged_action_dist(self, policy: ExactPolicy, log: SimulationLog) -> np.ndarray:
        """``action_dist (n_visits, T, S)`` of ``policy`` for every visit of ``log`` (made by
        this world, same visit order): P(title ``t`` in slot ``s`` | visit), from the policy's
        exact :meth:`~reelpick.decision.ExactPolicy.marginals` with its current state, as if
        it had served each logged visit."""
        if not isinstance(policy, ExactPolicy):
            raise TypeError(f"policy: {type(policy).__name__} has no marginals(); its action "
                            "distribution is not known exactly")
        v = log.visits
        arrays = {k: getattr(v, k) for k in WorldVisits.PER_VISIT}
        return np.concatenate([policy.marginals(vb).title_slot
                               for _, vb in self.batches(arrays)])

    # ------------------------------------------------------------------ simulation
    def simulate(self, policy: Policy, n_visits: int, *, seed: int | None = None,
                 check: bool = True, progress: Callable[[int], None] | None = None
                 ) -> SimulationLog:
        """Run ``policy`` for ``n_visits`` visits over the horizon and return the logs.

        Within a batch the member state is fixed; plays update it between batches. ``check``
        validates every page (:meth:`PageBatch.check`). ``progress(k)`` is called with the number
        of visits done after each batch.
        """
        vrng, prng, orng = self._seeds(seed)
        visits = self.draw_visits(n_visits, vrng)
        return self.simulate_visits(policy, visits, self.initial_state(), prng, orng,
                                    check=check, progress=progress)

    def simulate_visits(self, policy: Policy, visits: dict[str, np.ndarray],
                        state: MemberState, prng: np.random.Generator,
                        orng: np.random.Generator, *, check: bool = True, commit: bool = True,
                        progress: Callable[[int], None] | None = None) -> SimulationLog:
        """:meth:`simulate` over given ``visits`` (arrays as :meth:`draw_visits` returns) from a
        given member ``state``, drawing pages with ``prng`` and outcomes with ``orng``.

        ``commit=False`` leaves ``state`` untouched (what-if runs on fresh visits); otherwise
        plays update it between batches, as in :meth:`simulate`."""
        if not isinstance(policy, Policy):
            raise TypeError(f"policy: {type(policy).__name__} lacks name/choose of the Policy "
                            f"protocol")
        cfg, ent, dyn = self.config, self.entities, self.dynamics
        n_visits = len(visits["member"])
        if n_visits == 0:
            raise ValueError("visits: no visits to simulate")
        organic = np.full(n_visits, -1, dtype=np.int64)
        buf = ImpressionBuffer(n_visits * cfg.n_slots)  # grows if a policy shows more slots
        org_parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        labels: dict[str, int] = {}
        sources: dict[str, int] = {}
        for sl, vb in self.batches(visits):
            page = policy.choose(vb, prng)
            if check:
                page.check(vb)
            vf = dyn.features(vb, state)
            titles = page.titles
            n, S = titles.shape
            shown = titles >= 0
            t0 = np.where(shown, titles, 0)
            art = ent.art_offset[t0] + page.artworks
            p0, up, mu = dyn.pair(vb, vf, state, titles, art)
            e = dyn.examination(page.row_index, page.position)
            org = dyn.sample_organic(vb, vf, orng)
            organic[sl] = org
            hit = (titles == org[:, None]) | (orng.random(titles.shape) < e * up)
            play = shown & hit
            # per slot (n, S); the buffer keeps the shown slots, row-major as np.nonzero
            watch = np.zeros(titles.shape)
            if play.any():
                m = np.clip(mu[play], 1e-6, 1 - 1e-6)
                k = cfg.watch_concentration
                watch[play] = orng.beta(m * k, (1 - m) * k) * ent.duration[titles[play]]
            if page.slot_label is not None:
                row_code = np.zeros(titles.shape, dtype=np.int64)
                row_code[shown] = _codes(labels, np.asarray(page.slot_label)[shown])
            else:
                codes = np.array([labels.setdefault(lb, len(labels)) for lb in page.row_labels])
                row_code = codes[page.row_index]
            cols: dict[str, np.ndarray | None] = dict(
                visit=np.arange(sl.start, sl.stop, dtype=np.int64)[:, None],
                slot=np.arange(S, dtype=np.int64)[None, :], row_code=row_code,
                row_index=page.row_index, position=page.position, title=titles, artwork=art,
                propensity=page.propensity, artwork_propensity=page.artwork_propensity,
                play=play, watch_seconds=watch, p_organic=p0,
                p_play=p0 + (1 - p0) * e * up, source_code=None)  # None: maker not recorded
            if page.source is not None:  # codes of the pages with a shown slot, in order
                has = shown.any(axis=1)
                src = np.full(n, -1, dtype=np.int64)
                src[has] = _codes(sources, np.asarray(page.source)[has])
                cols["source_code"] = src[:, None]
            buf.append(shown, cols)
            # organic plays of titles that were not on the page
            off = np.flatnonzero((org >= 0) & ~(titles == org[:, None]).any(axis=1))
            ow = np.zeros(off.size)
            if off.size:
                _, _, omu = dyn.pair(vb.subset(off), _sub(vf, off), state, org[off, None], None)
                m = np.clip(omu[:, 0], 1e-6, 1 - 1e-6)
                k = cfg.watch_concentration
                ow = orng.beta(m * k, (1 - m) * k) * ent.duration[org[off]]
            org_parts.append((off + sl.start, org[off], ow))
            if commit:  # member state: page plays and organic plays, in time order
                pi, pj = np.nonzero(play)
                pm = np.concatenate([vb.member[pi], vb.member[off]])
                pt = np.concatenate([titles[pi, pj], org[off]])
                pts = np.concatenate([vb.timestamp[pi] + 60 + 10 * pj,
                                      vb.timestamp[off] + 30])
                o = np.argsort(pts, kind="stable")
                at = float(pts.max()) if pts.size else float(vb.timestamp.max())
                dyn.update(state, pm[o], pt[o], pts[o].astype(float), at)
            if progress is not None:
                progress(sl.stop - sl.start)
        return SimulationLog(
            policy=str(policy.name), model_version=str(getattr(policy, "version", "v0")),
            visits=VisitLog(**{f: visits[f] for f in VisitLog.__dataclass_fields__
                               if f != "organic"}, organic=organic),
            shown=ImpressionLog(**buf.finish()),
            organic_visit=np.concatenate([p[0] for p in org_parts]),
            organic_title=np.concatenate([p[1] for p in org_parts]),
            organic_watch=np.concatenate([p[2] for p in org_parts]),
            row_labels=tuple(labels), countries=self.config.countries,
            artwork_rank=self._artwork_rank, sources=tuple(sources))

    # ------------------------------------------------------------------ ground truth
    def organic_probability(self, visits: VisitBatch, titles: np.ndarray,
                            state: MemberState | None = None) -> np.ndarray:
        """P(member plays the title this visit without the page), ``titles (n, k)``."""
        state = state or self.initial_state()
        vf = self.dynamics.features(visits, state)
        return self.dynamics.pair(visits, vf, state, np.asarray(titles), None)[0]

    def play_probability(self, visits: VisitBatch, titles: np.ndarray,
                         artworks: np.ndarray | None = None, *, row: int | np.ndarray = 0,
                         position: int | np.ndarray = 0, state: MemberState | None = None
                         ) -> np.ndarray:
        """P(play | title shown in slot (row, position) with variant ``artworks``), ``(n, k)``.

        ``artworks`` are variant numbers within each title; ``None`` averages over the title's
        variants (a uniformly random artwork).
        """
        p0, up = self._p0_up(visits, titles, artworks, state)
        e = self.dynamics.examination(row, position)
        return p0 + (1 - p0) * e * up

    def uplift(self, visits: VisitBatch, titles: np.ndarray, artworks: np.ndarray | None = None,
               *, row: int | np.ndarray = 0, position: int | np.ndarray = 0,
               state: MemberState | None = None) -> np.ndarray:
        """The causal effect of showing: ``play_probability - organic_probability``."""
        p0, up = self._p0_up(visits, titles, artworks, state)
        return (1 - p0) * self.dynamics.examination(row, position) * up

    def _p0_up(self, visits: VisitBatch, titles: np.ndarray, artworks: np.ndarray | None,
               state: MemberState | None) -> tuple[np.ndarray, np.ndarray]:
        state = state or self.initial_state()
        ent, dyn = self.entities, self.dynamics
        titles = np.asarray(titles)
        vf = dyn.features(visits, state)
        t0 = np.where(titles >= 0, titles, 0)
        nv = ent.n_variants[t0]
        if artworks is not None:
            art = ent.art_offset[t0] + np.asarray(artworks)
            p0, up, _ = dyn.pair(visits, vf, state, titles, art)
            return p0, up
        up = np.zeros(titles.shape)
        p0 = np.zeros(titles.shape)
        for k in range(int(nv.max())):
            art = ent.art_offset[t0] + np.minimum(k, nv - 1)
            p0, upk, _ = dyn.pair(visits, vf, state, titles, art)
            up += np.where(k < nv, upk, 0.0) / nv
        return p0, up

    def policy_value(self, policy: Policy, n_visits: int = 2000, *, seed: int | None = None,
                     method: str = "auto", state: MemberState | None = None) -> PolicyValue:
        """The true value of ``policy`` per visit, over ``n_visits`` visits drawn as in
        :meth:`simulate` with the same seed (same visits), with member state ``state`` held fixed
        (default: the initial state).

        ``method="exact"`` needs :meth:`ExactPolicy.marginals`; ``"monte_carlo"`` samples one
        page per visit and integrates outcomes exactly; ``"auto"`` picks exact when available.
        """
        if method not in ("auto", "exact", "monte_carlo"):
            raise ValueError(f"method: use 'auto', 'exact' or 'monte_carlo', got {method!r}")
        exact = isinstance(policy, ExactPolicy) and method != "monte_carlo"
        if method == "exact" and not exact:
            raise ValueError(f"method='exact': {type(policy).__name__} has no marginals()")
        vrng, prng, _ = self._seeds(seed)
        state = state or self.initial_state()
        visits = self.draw_visits(n_visits, vrng)
        plays, watch, inc = (np.zeros(n_visits) for _ in range(3))
        for sl, vb in self.batches(visits):
            p, w, i = (self._exact_value(policy, vb, state) if exact  # type: ignore[arg-type]
                       else self._sampled_value(policy, vb, state, prng))
            plays[sl], watch[sl], inc[sl] = p, w, i
        se = lambda x: float(x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else float("nan")  # noqa: E731
        return PolicyValue(float(plays.mean()), se(plays), float(watch.mean()), se(watch),
                           float(inc.mean()), se(inc), int(n_visits),
                           "exact" if exact else "monte_carlo")

    def _organic_value(self, vb: VisitBatch, vf: VisitFeatures
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p0_all, mu_all = self.dynamics.organic_all(vb, vf)
        watch = (p0_all * mu_all * self.entities.duration).sum(axis=1)
        return p0_all, mu_all, watch

    def _sampled_value(self, policy: Policy, vb: VisitBatch, state: MemberState,
                       rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        ent, dyn = self.entities, self.dynamics
        page = policy.choose(vb, rng)
        page.check(vb)
        vf = dyn.features(vb, state)
        _, _, org_watch = self._organic_value(vb, vf)
        t0 = np.where(page.titles >= 0, page.titles, 0)
        p0, up, mu = dyn.pair(vb, vf, state, page.titles, ent.art_offset[t0] + page.artworks)
        gain = (1 - p0) * dyn.examination(page.row_index, page.position) * up
        inc = gain.sum(axis=1)
        return vf.search + inc, org_watch + (gain * mu * ent.duration[t0]).sum(axis=1), inc

    def _exact_value(self, policy: ExactPolicy, vb: VisitBatch, state: MemberState
                     ) -> tuple[np.ndarray, ...]:
        cfg, ent, dyn = self.config, self.entities, self.dynamics
        n = len(vb)
        budget = 4_000_000
        per_visit = max(ent.n_titles * cfg.n_slots, ent.n_artworks * cfg.n_genres)
        step = max(1, budget // per_visit)
        out = np.zeros((3, n))
        for lo in range(0, n, step):
            idx = np.arange(lo, min(lo + step, n))
            sub = vb.subset(idx)
            marg = policy.marginals(sub)
            vf = dyn.features(sub, state)
            p0_all, mu_all, org_watch = self._organic_value(sub, vf)
            exposure = marg.title_slot @ dyn.examination(marg.slot_row, marg.slot_position)
            gain_t = self._gain_all(sub, vf, state, p0_all, marg.artwork)
            inc = (exposure * gain_t).sum(axis=1)
            out[0, idx] = vf.search + inc
            out[1, idx] = org_watch + (exposure * gain_t * mu_all * ent.duration).sum(axis=1)
            out[2, idx] = inc
        return out[0], out[1], out[2]

    def _gain_all(self, vb: VisitBatch, vf: VisitFeatures, state: MemberState,
                  p0_all: np.ndarray, art_prob: np.ndarray) -> np.ndarray:
        """``sum_a P(a | t) (1 - p0) sigma(x(v, t, a))`` for every title, ``(n, T)``."""
        cfg, ent, dyn = self.config, self.entities, self.dynamics
        tab = dyn.tables(vb.day)
        x_t = cfg.uplift_bias + vf.eta @ ent.genre_mean.T + tab.base[vf.key]
        if cfg.saturation:
            x_t = x_t + tab.shift[None, :]
        if cfg.seen_penalty:
            seen = np.zeros(x_t.shape, dtype=bool)
            buf = state.seen[vb.member]
            r, c = np.nonzero(buf >= 0)
            seen[r, buf[r, c]] = True
            x_t = x_t - cfg.seen_penalty * seen
        x_a = (x_t[:, ent.art_title]
               + cfg.theme_weight * ent.theme_taste[vb.member][:, ent.art_theme]
               + cfg.quality_weight * ent.art_quality[None, :])
        g = np.add.reduceat(sigmoid(x_a) * art_prob, ent.art_offset[:-1], axis=1)
        avail = tab.available[vb.country]
        return np.where(avail, (1 - p0_all) * g, 0.0)

    # ------------------------------------------------------------------ tables
    def titles(self) -> pd.DataFrame:
        """Titles table (schema ``TITLES``) plus ``countries`` (``|``-separated licences),
        ``n_artworks`` and ``popularity`` (observable, at the start)."""
        cfg, ent = self.config, self.entities
        genres = np.asarray(cfg.genres)
        gl = ["|".join(genres[row > 0]) for row in ent.genre_onehot]
        cl = ["|".join(np.asarray(cfg.countries)[col]) for col in ent.licensed.T]
        release = cfg.start + ent.release_day * DAY
        return pd.DataFrame({
            "title_id": [f"t{i}" for i in range(ent.n_titles)],
            "name": list(ent.names), "genres": gl,
            "year": pd.to_datetime(release, unit="s").year.astype("int64"),
            "duration_seconds": ent.duration.astype(float),
            "kind": np.asarray(KINDS)[ent.is_series.astype(int)],
            "release_ts": release.astype(np.int64),
            "countries": cl, "n_artworks": ent.n_variants.astype(np.int64),
            "popularity": self.dynamics.popularity(0, observed=True),
        })

    def members(self) -> pd.DataFrame:
        """Members table (schema ``MEMBERS``): country and age band."""
        ent = self.entities
        return pd.DataFrame({
            "member_id": [f"m{i}" for i in range(ent.n_members)],
            "country": np.asarray(self.config.countries)[ent.member_country],
            "age_band": np.asarray(AGE_BANDS)[ent.member_age],
        })

    def artworks(self) -> pd.DataFrame:
        """Artworks: ``artwork_id``, ``title_id``, ``theme``, ``quality``."""
        ent = self.entities
        return pd.DataFrame({
            "artwork_id": [f"t{t}-a{k}" for t, k in zip(ent.art_title, self._artwork_rank)],
            "title_id": [f"t{t}" for t in ent.art_title],
            "theme": np.asarray(THEMES)[ent.art_theme], "quality": ent.art_quality,
        })


def _sub(vf: VisitFeatures, idx: np.ndarray) -> VisitFeatures:
    return VisitFeatures(vf.key[idx], vf.eta[idx], vf.genre_p[idx], vf.ratio[idx],
                         vf.search[idx])


def _codes(vocab: dict[str, int], values: np.ndarray) -> np.ndarray:
    """Integer codes of string ``values``, extending ``vocab`` (label -> code) as needed."""
    uniq, inverse = np.unique(values.astype(str), return_inverse=True)
    return np.array([vocab.setdefault(str(u), len(vocab)) for u in uniq],
                    dtype=np.int64)[inverse]
