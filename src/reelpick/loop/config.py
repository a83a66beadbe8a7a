"""The closed loop's settings: one frozen, validated value (:class:`LoopConfig`).

Example
-------
>>> cfg = LoopConfig.quick()
>>> cfg.preset, cfg.days <= 6
('small', True)
>>> LoopConfig(days=0)
Traceback (most recent call last):
...
ValueError: LoopConfig.days: must be >= 2 (got 0)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from reelpick.world import PRESETS, WorldConfig

#: World overrides of the demo (``LoopConfig.quick()``/``full()``): members find popular titles
#: by themselves (organic search concentrated on popularity), the page persuades least for
#: titles everyone searches for, and members search more. Plays of shown titles then include
#: many that would have happened anyway, so a learner that credits every play to the page (the
#: greedy arm) and one that learns the causal effect of showing (the uplift arm) disagree.
#: The same mechanism as :data:`reelpick.causal.MISMATCH_WORLD`, keeping the world's drift,
#: short-term interest and seen penalty (what the sequence model and context-shaped pages use).
LOOP_WORLD: dict[str, float] = dict(organic_popularity_weight=2.0, saturation=1.0,
                                    search_rate=0.5)

#: Candidate policies the loop knows how to train (see :mod:`reelpick.loop.candidates`).
CANDIDATES: tuple[str, ...] = ("popular", "by-play", "uplift", "ranker", "ranker-no-context",
                               "ranker+seq")


@dataclass(frozen=True)
class LoopConfig:
    """Settings of :func:`reelpick.loop.run_loop`.

    ``preset`` (world preset) with ``world_overrides`` (``WorldConfig`` fields); ``days`` of the
    loop (from day 0 of the world's calendar); ``visits_per_day`` served by each arm;
    ``release_every`` days between releases (train candidates, evaluate offline, A/B, ship);
    ``candidates`` (from :data:`CANDIDATES`; ``ranker+seq`` is skipped when the sequence model
    is not installed); ``epsilon`` the share of visits served a uniformly random page (the
    exploration bucket behind uplift, in every exploring arm); ``pool_epsilon`` the share of
    production visits served the page of a uniformly drawn candidate of the next release (the
    candidate-pool bucket behind offline evaluation; uniform before the first candidates
    exist); ``probe_visits`` fresh visits a day on which each arm's learnt policy is scored;
    ``ab_visits`` fresh visits per A/B arm;
    ``ab_arms`` candidates (best offline DR first) that go to the A/B test; ``ope_visits`` most
    logged visits each candidate is scored on offline (a uniform subsample; ``None`` = all);
    ``ranker_trees`` LightGBM rounds; ``train_rows`` most impressions the ranker trains on;
    ``artwork`` train and test the artwork bandit when :mod:`reelpick.artwork` is importable,
    on at most ``artwork_rows`` impressions;
    ``seed`` seeds the world and every random draw of the loop.
    """

    preset: str = "default"
    world_overrides: dict[str, Any] = field(default_factory=dict)
    days: int = 10
    visits_per_day: int = 1_000
    release_every: int = 4
    candidates: tuple[str, ...] = CANDIDATES
    epsilon: float = 0.1
    pool_epsilon: float = 0.3
    probe_visits: int = 300
    ab_visits: int = 600
    ab_arms: int = 2
    ope_visits: int | None = None
    ranker_trees: int = 60
    train_rows: int = 80_000
    artwork: bool = True
    artwork_rows: int = 30_000
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "candidates", tuple(self.candidates))
        object.__setattr__(self, "world_overrides", dict(self.world_overrides))
        checks = [
            ("preset", self.preset in PRESETS, f"unknown preset; use one of {sorted(PRESETS)}"),
            ("days", _int(self.days) and self.days >= 2, "must be >= 2"),
            ("visits_per_day", _int(self.visits_per_day) and self.visits_per_day >= 50,
             "must be >= 50"),
            ("release_every", _int(self.release_every) and 1 <= self.release_every < self.days,
             "must be >= 1 and < days"),
            ("candidates", bool(self.candidates) and set(self.candidates) <= set(CANDIDATES)
             and len(set(self.candidates)) == len(self.candidates),
             f"must be distinct names from {CANDIDATES}"),
            ("epsilon", isinstance(self.epsilon, int | float) and 0 < self.epsilon < 1,
             "must be in (0, 1)"),
            ("pool_epsilon", isinstance(self.pool_epsilon, int | float)
             and 0 <= self.pool_epsilon < 1 - self.epsilon, "must be in [0, 1 - epsilon)"),
            ("probe_visits", _int(self.probe_visits) and self.probe_visits >= 20,
             "must be >= 20"),
            ("ab_visits", _int(self.ab_visits) and self.ab_visits >= 20, "must be >= 20"),
            ("ab_arms", _int(self.ab_arms) and self.ab_arms >= 2, "must be >= 2"),
            ("ope_visits", self.ope_visits is None or (_int(self.ope_visits)
                                                       and self.ope_visits >= 20),
             "must be >= 20 or None"),
            ("ranker_trees", _int(self.ranker_trees) and self.ranker_trees >= 1, "must be >= 1"),
            ("train_rows", _int(self.train_rows) and self.train_rows >= 1_000,
             "must be >= 1000"),
            ("artwork_rows", _int(self.artwork_rows) and self.artwork_rows >= 1_000,
             "must be >= 1000"),
            ("seed", _int(self.seed) and self.seed >= 0, "must be a non-negative integer"),
        ]
        for name, ok, msg in checks:
            if not ok:
                raise ValueError(f"LoopConfig.{name}: {msg} (got {getattr(self, name)!r})")
        wc = self.world_config()  # validates the overrides (errors name the field)
        if self.days > wc.days:
            raise ValueError(f"LoopConfig.days: must be <= the world's {wc.days} days "
                             f"(got {self.days})")

    def world_config(self) -> WorldConfig:
        """The world's configuration: the preset with ``world_overrides``."""
        return WorldConfig.preset(self.preset, **self.world_overrides)

    @property
    def releases(self) -> list[int]:
        """Days at whose end a release happens: every ``release_every`` days, never after day 0
        (nothing to train on) nor after the last day (nothing left to ship to)."""
        return [d for d in range(self.release_every - 1, self.days - 1, self.release_every)
                if d >= 1]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["candidates"] = list(self.candidates)
        return d

    @classmethod
    def quick(cls, **changes: Any) -> LoopConfig:
        """The ``--quick`` demo: the ``small`` world, 6 days (about 30 s on 2 cores)."""
        base: dict[str, Any] = dict(preset="small", world_overrides=dict(LOOP_WORLD), days=6,
                                    visits_per_day=800, release_every=2,
                                    ab_visits=400, ope_visits=None, ranker_trees=40,
                                    train_rows=40_000, epsilon=0.2)
        base.update(changes)
        return cls(**base)

    @classmethod
    def full(cls, **changes: Any) -> LoopConfig:
        """The full demo (``make demo``): the ``default`` world's catalogue, 5,000 members."""
        base: dict[str, Any] = dict(preset="default",
                                    world_overrides={"n_members": 5_000, **LOOP_WORLD})
        base.update(changes)
        return cls(**base)


def _int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)
