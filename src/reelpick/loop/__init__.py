"""The closed loop: serve with exploration, log with propensities, retrain, evaluate offline,
A/B test, ship, repeat — in the simulated world (see ``docs/demo.md``).

>>> from reelpick.loop import LoopConfig
>>> LoopConfig.quick().preset
'small'
"""

from reelpick.loop.config import CANDIDATES, LOOP_WORLD, LoopConfig
from reelpick.loop.pipeline import ARMS, artwork_available, run_loop
from reelpick.loop.policies import ExploringPolicy, PlayCountScorer, PoolExploringPolicy
from reelpick.loop.progress import NullProgress, Progress
from reelpick.loop.simulator import DayLog, DaySimulator, concat_logs, page_truth

__all__ = [
    "ARMS",
    "CANDIDATES",
    "LOOP_WORLD",
    "DayLog",
    "DaySimulator",
    "ExploringPolicy",
    "LoopConfig",
    "NullProgress",
    "PlayCountScorer",
    "PoolExploringPolicy",
    "Progress",
    "artwork_available",
    "concat_logs",
    "page_truth",
    "run_loop",
]
