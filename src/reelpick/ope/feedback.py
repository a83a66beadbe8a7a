"""Logged bandit feedback as one typed, validated value, and checks of the arrays estimators take.

Vocabulary (the same in every docstring of :mod:`reelpick.ope`):

``action`` ``(n_rounds,)`` int
    the logged action (title / item index, ``0 <= action < n_actions``).
``reward`` ``(n_rounds,)`` float
    the observed reward of the logged action (a play, a click, watch hours).
``pscore`` ``(n_rounds,)`` float in ``(0, 1]``
    the logging policy's probability of the logged action (at the logged position, if any).
``position`` ``(n_rounds,)`` int
    the slot the action was shown in (``0 <= position < n_positions``); ``None`` for bandits.
``context`` ``(n_rounds, dim_context)`` float
    features of the round (used by reward and propensity models and policy learning).
``action_dist`` ``(n_rounds, n_actions[, n_positions])``
    the *target* policy's action probabilities; sums to one over actions (per position).
``reward_hat`` same shape as ``action_dist``
    a reward model's predictions :math:`\\hat q(x_i, a[, k])`.

A context-free target can be given as ``np.broadcast_to(p, (n_rounds, *p.shape))``: estimators
read one row of a broadcast (stride-0) array, so it costs no memory.

>>> import numpy as np
>>> fb = LoggedFeedback(action=[0, 1, 1], reward=[1.0, 0.0, 1.0], pscore=[0.5, 0.5, 0.5],
...                     n_actions=2)
>>> fb.n_rounds, fb.n_positions
(3, 1)
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

__all__ = [
    "LoggedFeedback",
    "check_action_dist",
    "check_reward_hat",
    "check_shape",
    "is_broadcast_rows",
    "row_cells",
    "scan_action_dist",
    "scan_block",
]


def _as_1d(name: str, value: Any, dtype: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (n_rounds,), got shape {arr.shape}")
    if dtype == "int":
        if arr.size and not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
            if not np.issubdtype(arr.dtype, np.floating) or np.any(arr != np.round(arr)):
                raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
        return arr.astype(np.int64, copy=False)
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite; found NaN or inf")
    return arr


@dataclass(frozen=True, eq=False)
class LoggedFeedback:
    """What a logging policy did and what followed, one row per round (impression).

    Parameters
    ----------
    action : ``(n_rounds,)`` int, ``0 <= action < n_actions``.
    reward : ``(n_rounds,)`` float, finite.
    pscore : ``(n_rounds,)`` float in ``(0, 1]``, the logging policy's probability of ``action``
        (at ``position``), or ``None`` for logs without propensities (estimate them with
        :func:`reelpick.ope.propensity.estimate_pscore`).
    n_actions : number of actions; every ``action_dist`` must have this many columns.
    position : ``(n_rounds,)`` int ``>= 0`` or ``None`` (one slot).
    context : ``(n_rounds, dim_context)`` float or ``None``.
    n_positions : number of slots; defaults to ``position.max() + 1`` (1 without positions).
    slate_id : ``(n_rounds,)`` int or ``None``: rows with the same id belong to one slate
        (page); needed by the slate estimators only.

    All checks run once here and name the field; arrays are converted to ``int64`` /
    ``float64`` (without copying when they already are).
    """

    action: np.ndarray
    reward: np.ndarray
    pscore: np.ndarray | None
    n_actions: int
    position: np.ndarray | None = None
    context: np.ndarray | None = None
    n_positions: int | None = None
    slate_id: np.ndarray | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if isinstance(self.n_actions, bool) or not isinstance(self.n_actions, int | np.integer):
            raise TypeError(f"n_actions must be an int, got {type(self.n_actions).__name__}")
        if self.n_actions < 1:
            raise ValueError(f"n_actions must be >= 1, got {self.n_actions}")
        set_(self, "n_actions", int(self.n_actions))
        action = _as_1d("action", self.action, "int")
        n = action.shape[0]
        if n == 0:
            raise ValueError("action is empty: logged feedback needs at least one round")
        if action.min() < 0 or action.max() >= self.n_actions:
            raise ValueError(
                f"action must lie in [0, n_actions={self.n_actions}), "
                f"got values in [{action.min()}, {action.max()}]")
        set_(self, "action", action)
        reward = _as_1d("reward", self.reward, "float")
        self._check_len("reward", reward, n)
        set_(self, "reward", reward)
        if self.pscore is not None:
            pscore = _as_1d("pscore", self.pscore, "float")
            self._check_len("pscore", pscore, n)
            p_min, p_max = float(pscore.min()), float(pscore.max())
            if p_min <= 0.0 or p_max > 1.0:
                raise ValueError(f"pscore must lie in (0, 1], got values in [{p_min}, {p_max}]")
            set_(self, "pscore", pscore)
            set_(self, "_pscore_range", (p_min, p_max))  # reused by the diagnostics
        if self.position is not None:
            position = _as_1d("position", self.position, "int")
            self._check_len("position", position, n)
            if position.min() < 0:
                raise ValueError(f"position must be >= 0, got {position.min()}")
            set_(self, "position", position)
            top = int(position.max()) + 1
            if self.n_positions is None:
                set_(self, "n_positions", top)
            elif self.n_positions < top:
                raise ValueError(f"n_positions={self.n_positions} but position reaches {top - 1}")
        elif self.n_positions is None:
            set_(self, "n_positions", 1)
        elif self.n_positions != 1:
            raise ValueError("n_positions > 1 needs a position array")
        if self.context is not None:
            context = np.asarray(self.context, dtype=np.float64)
            if context.ndim == 1:
                context = context[:, None]
            if context.ndim != 2 or context.shape[0] != n:
                raise ValueError(
                    f"context must have shape (n_rounds={n}, dim_context), got {context.shape}")
            if not np.all(np.isfinite(context)):
                raise ValueError("context must be finite; found NaN or inf")
            set_(self, "context", context)
        if self.slate_id is not None:
            slate_id = _as_1d("slate_id", self.slate_id, "int")
            self._check_len("slate_id", slate_id, n)
            set_(self, "slate_id", slate_id)

    @staticmethod
    def _check_len(name: str, arr: np.ndarray, n: int) -> None:
        if arr.shape[0] != n:
            raise ValueError(f"{name} has {arr.shape[0]} rounds but action has {n}")

    @property
    def n_rounds(self) -> int:
        return int(self.action.shape[0])

    def __len__(self) -> int:
        return self.n_rounds

    def position_or_zero(self) -> np.ndarray:
        """``position``, or zeros when the feedback has no positions."""
        if self.position is None:
            return np.zeros(self.n_rounds, dtype=np.int64)
        return self.position

    @property
    def pscore_range(self) -> tuple[float, float]:
        """``(min, max)`` of ``pscore`` (computed once, at validation)."""
        if self.pscore is None:
            return (np.nan, np.nan)
        return self._pscore_range  # type: ignore[attr-defined,no-any-return]

    def require_pscore(self, who: str) -> np.ndarray:
        if self.pscore is None:
            raise ValueError(
                f"{who} needs logged propensities (pscore) but the feedback has none; "
                "estimate them with reelpick.ope.estimate_pscore (and read its caveat)")
        return self.pscore

    def rows(self, sl: slice, *, pscore_range: tuple[float, float] | None = None
             ) -> LoggedFeedback:
        """Rounds ``sl`` (a slice) as views, without validating again (they were checked).

        ``pscore_range``: a known bound on the rows' ``(min, max)`` pscore (e.g. the parent's),
        which saves two passes; by default the rows' own range is computed."""
        out = object.__new__(LoggedFeedback)
        d = self.__dict__
        for name in _FIELD_NAMES:
            v = d[name]
            object.__setattr__(out, name, v[sl] if isinstance(v, np.ndarray) else v)
        if out.pscore is not None:
            if pscore_range is None:
                pscore_range = (float(out.pscore.min()), float(out.pscore.max()))
            object.__setattr__(out, "_pscore_range", pscore_range)
        return out

    def take(self, index: np.ndarray | slice) -> LoggedFeedback:
        """The rounds selected by ``index`` (an index array, boolean mask or slice)."""
        kw: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            kw[f.name] = v[index] if isinstance(v, np.ndarray) else v
        return LoggedFeedback(**kw)


_FIELD_NAMES = tuple(f.name for f in fields(LoggedFeedback))


def is_broadcast_rows(arr: np.ndarray) -> bool:
    """True when every round shares one row (axis 0 has stride 0, e.g. ``np.broadcast_to``)."""
    return arr.ndim >= 1 and arr.shape[0] > 1 and arr.strides[0] == 0


def _rows_to_check(arr: np.ndarray) -> np.ndarray:
    return arr[:1] if is_broadcast_rows(arr) else arr


def _sum_actions(arr: np.ndarray) -> np.ndarray:
    """Sum over axis 1 as a matrix-vector product (much faster than a reduction over a short
    contiguous axis)."""
    ones = np.ones(arr.shape[1])
    if arr.ndim == 2:
        return arr @ ones
    return np.einsum("iak,a->ik", arr, ones, optimize=True)


_CHUNK_CELLS = 1 << 16  # cells of action_dist per chunk of the fused scan (in L2)


def check_action_dist(feedback: LoggedFeedback, action_dist: Any, *,
                      name: str = "action_dist", atol: float = 1e-6) -> np.ndarray:
    """Check ``action_dist`` against ``feedback`` and return it as a float array.

    Shape ``(n_rounds, n_actions)`` or ``(n_rounds, n_actions, n_positions)``; non-negative;
    sums to one over actions (per position) within ``atol``. A 3-D ``action_dist`` needs
    ``feedback.position``. Broadcast (stride-0) rows are checked once.
    """
    return scan_action_dist(feedback, action_dist, name=name, atol=atol, gather=False)[0]


def check_shape(feedback: LoggedFeedback, arr: np.ndarray, *, name: str = "action_dist"
                ) -> None:
    """``(n_rounds, n_actions[, n_positions])`` matching ``feedback``."""
    n, a = feedback.n_rounds, feedback.n_actions
    if arr.ndim not in (2, 3):
        raise ValueError(f"{name} must be 2-D (n_rounds, n_actions) or 3-D "
                         f"(n_rounds, n_actions, n_positions), got shape {arr.shape}")
    if arr.shape[0] != n or arr.shape[1] != a:
        raise ValueError(f"{name} must have shape (n_rounds={n}, n_actions={a}[, n_positions]), "
                         f"got {arr.shape}")
    if arr.ndim == 3:
        if feedback.position is None and arr.shape[2] != 1:
            raise ValueError(f"a 3-D {name} needs feedback.position")
        n_positions = feedback.n_positions or 1
        if arr.shape[2] < n_positions:
            raise ValueError(f"{name} has {arr.shape[2]} positions but feedback.position "
                             f"reaches {n_positions - 1}")


def scan_action_dist(feedback: LoggedFeedback, action_dist: Any, *, name: str = "action_dist",
                     atol: float = 1e-6, gather: bool = True
                     ) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`check_action_dist` and, in the same pass over memory, the target's probability of
    each logged action ``pi_logged[i] = action_dist[i, action[i][, position[i]]]``.

    The array is read once, in chunks that stay in cache: minimum, per-row sums and the gather
    of the logged cell are done chunk by chunk (the (n_rounds, n_actions) array is never
    copied or converted when it is already floating point).
    """
    arr = np.asarray(action_dist)
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    check_shape(feedback, arr, name=name)
    n = feedback.n_rounds
    action = feedback.action
    position = feedback.position_or_zero() if arr.ndim == 3 else None
    if is_broadcast_rows(arr):
        _check_rows(arr[:1], name, atol)
        if not gather:
            return arr, None
        row = arr[0]
        pi = row[action] if arr.ndim == 2 else row[action, position]
        return arr, np.asarray(pi, dtype=np.float64)
    cells = int(np.prod(arr.shape[1:]))
    flat = arr.reshape(n, cells) if arr.flags.c_contiguous else None
    pi = np.empty(n, dtype=np.float64) if gather else None
    step = max(1, _CHUNK_CELLS // max(cells, 1))
    base = np.arange(min(step, n), dtype=np.int64) * cells
    ones = np.ones(arr.shape[1])
    exact_dtype = arr.dtype == np.float64
    for lo in range(0, n, step):
        hi = min(lo + step, n)
        ch = arr[lo:hi]
        _check_chunk(ch, ones, name, atol)
        if pi is not None:
            if flat is not None:
                idx = base[:hi - lo] + (action[lo:hi] if position is None else
                                        action[lo:hi] * arr.shape[2] + position[lo:hi])
                if exact_dtype:
                    np.take(flat[lo:hi].reshape(-1), idx, out=pi[lo:hi])
                else:
                    pi[lo:hi] = np.take(flat[lo:hi].reshape(-1), idx)
            elif position is None:
                pi[lo:hi] = ch[np.arange(hi - lo), action[lo:hi]]
            else:
                pi[lo:hi] = ch[np.arange(hi - lo), action[lo:hi], position[lo:hi]]
    return arr, pi


def row_cells(dist: np.ndarray, action: np.ndarray, position: np.ndarray | None) -> np.ndarray:
    """Index of each round's logged cell within its row of ``dist`` flattened:
    ``action`` (2-D) or ``action * n_positions + position`` (3-D)."""
    if dist.ndim == 2:
        return action
    return action * dist.shape[2] + position


def scan_block(block: np.ndarray, cell: np.ndarray, ones: np.ndarray, row_start: np.ndarray,
               *, name: str = "action_dist", atol: float = 1e-6, broadcast: bool = False,
               sub_rows: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """One cache-sized block of an ``action_dist`` whose shape was checked: check its values
    (as :func:`check_action_dist`) and gather the logged cells (``cell`` from
    :func:`row_cells`) while the block sits in cache. ``row_start`` = ``arange(>= k) * cells``
    (the first flat index of each row). Returns ``(pi_logged, flat_index)``, ``flat_index``
    into ``block.reshape(-1)`` (``None`` when the block is broadcast or not C-contiguous).
    Broadcast rows are not checked here (check the one row once). ``sub_rows``: check and
    gather in sub-blocks of that many rows (each one read while it is in cache)."""
    if broadcast:
        return np.take(block[0].reshape(-1), cell, mode="clip"), None
    k = block.shape[0]
    step = k if sub_rows is None else max(int(sub_rows), 1)
    if block.flags.c_contiguous:
        idx = row_start[:k] + cell
        flat = block.reshape(-1)
        if step >= k:
            _check_chunk(block, ones, name, atol)
            # indices are valid by construction (action < n_actions, position <
            # n_positions): mode="clip" skips numpy's per-element bounds check
            return np.take(flat, idx, mode="clip"), idx
        pi = np.empty(k, dtype=block.dtype)
        for lo in range(0, k, step):
            hi = min(lo + step, k)
            _check_chunk(block[lo:hi], ones, name, atol)
            np.take(flat, idx[lo:hi], out=pi[lo:hi], mode="clip")
        return pi, idx
    for lo in range(0, k, step):
        _check_chunk(block[lo:lo + step], ones, name, atol)
    rows = np.arange(k)
    if block.ndim == 2:
        return block[rows, cell], None
    n_pos = block.shape[2]
    return block[rows, cell // n_pos, cell % n_pos], None


def _check_rows(rows: np.ndarray, name: str, atol: float) -> None:
    _check_chunk(rows, np.ones(rows.shape[1]), name, atol)


def _check_chunk(ch: np.ndarray, ones: np.ndarray, name: str, atol: float) -> None:
    """Non-negative, finite and summing to one over actions (NaN fails every comparison)."""
    if not ch.min() >= 0.0:
        raise ValueError(f"{name} must hold finite probabilities >= 0")
    sums = ch @ ones if ch.ndim == 2 else np.matmul(ones, ch)
    lo, hi = sums.min(), sums.max()
    if not (lo >= 1.0 - atol and hi <= 1.0 + atol):
        worst = float(np.max(np.abs(sums - 1.0)))
        raise ValueError(f"{name} must sum to 1 over actions (axis 1); off by up to {worst:.3g}")


def check_reward_hat(action_dist: np.ndarray, reward_hat: Any, *, who: str) -> np.ndarray:
    """Check that ``reward_hat`` has ``action_dist``'s shape and is finite."""
    if reward_hat is None:
        raise ValueError(f"{who} needs reward_hat (a reward model's predictions) of shape "
                         f"{action_dist.shape}; see reelpick.ope.cross_fit_reward_model")
    arr = np.asarray(reward_hat)
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    if arr.shape != action_dist.shape:
        raise ValueError(f"reward_hat must have the shape of action_dist {action_dist.shape}, "
                         f"got {arr.shape}")
    if not np.all(np.isfinite(_rows_to_check(arr))):
        raise ValueError("reward_hat must be finite; found NaN or inf")
    return arr
