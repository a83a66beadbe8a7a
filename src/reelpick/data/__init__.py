"""Event schema, ID vocabularies, loaders and time-respecting splits."""

from reelpick.data.dataset import Dataset
from reelpick.data.loaders import (
    load_interactions,
    load_movielens,
    load_table,
    save_table,
)
from reelpick.data.schema import (
    IMPRESSIONS,
    INTERACTIONS,
    MEMBERS,
    OUTCOMES,
    TITLES,
    SchemaError,
    TableSchema,
    join_outcomes,
)
from reelpick.data.splits import TTSplit, leave_last_out, rolling_cutoffs, time_cutoff
from reelpick.data.vocab import Vocabulary

__all__ = [
    "Dataset",
    "IMPRESSIONS",
    "INTERACTIONS",
    "MEMBERS",
    "OUTCOMES",
    "TITLES",
    "SchemaError",
    "TTSplit",
    "TableSchema",
    "Vocabulary",
    "join_outcomes",
    "leave_last_out",
    "load_interactions",
    "load_movielens",
    "load_table",
    "rolling_cutoffs",
    "save_table",
    "time_cutoff",
]
