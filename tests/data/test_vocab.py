from __future__ import annotations

import numpy as np
import pytest

from reelpick.data import Vocabulary


def test_first_seen_order_and_roundtrip():
    v = Vocabulary(["b", "a", "b", 3])
    assert len(v) == 3 and v.to_list() == ["b", "a", "3"]
    assert v.index(["3", "b"]).tolist() == [2, 0]
    assert v.ids(np.array([[1, 0]])).tolist() == [["a", "b"]]
    assert Vocabulary.from_list(v.to_list()) == v
    assert "a" in v and "z" not in v


def test_unknown_ids():
    v = Vocabulary(["a"])
    with pytest.raises(KeyError, match="unknown id 'z'"):
        v.index(["a", "z"])
    assert v.index(["z", "a"], missing="negative").tolist() == [-1, 0]
    with pytest.raises(ValueError, match="duplicate"):
        Vocabulary.from_list(["a", "a"])
