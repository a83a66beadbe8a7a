r"""The torch module behind :class:`reelpick.models.sequence.SequenceRecommender`.

A next-play network over contextual action sequences. Action :math:`i` of a member is the token

.. math::

    x_i = E_{t_i} + P_i + \sum_f F^{(f)}_{c_{i,f}}

(title embedding :math:`E`, shared with the output layer; learned position :math:`P`; one embedding
table :math:`F^{(f)}` per feature: log-bucket of the gap to the next action, hour, weekday, device,
country, watch-fraction bucket; code 0 of every feature is "unknown"). A causal encoder
(SASRec-style pre-norm transformer blocks, Kang & McAuley, ICDM 2018, or a GRU, Hidasi et al.,
ICLR 2016) gives :math:`h_i` from :math:`x_{\le i}`. The query adds the context of the request it
answers (the action :math:`i+1`'s device, hour, weekday, country),
:math:`q_i = h_i + W_c [F_{c_{i+1}}]`, and the scores over the whole catalogue are

.. math::

    s_{i,j} = q_i^\top E_j + b_j + g(\phi_j(\tau_i)),

where :math:`\phi_j(\tau)` are the title's drift features at the time of the last action
(time-decayed popularity, recency, age; see :mod:`reelpick.models.sequence`) and :math:`g` a small
MLP. Training minimises the full softmax cross-entropy of the next title at every position, or a
sampled softmax with the logQ correction (Yi et al., RecSys 2019) for large catalogues.

Example
-------
>>> import torch
>>> net = SeqNet(n_titles=5, hidden=8, n_blocks=1, n_heads=1, max_len=4, dropout=0.0,
...              feature_sizes=(3, 25), n_drift=0)
>>> titles = torch.tensor([[1, 2, 3, 0]])
>>> feats = torch.zeros(1, 4, 2, dtype=torch.long)
>>> net.encode(titles, feats).shape
torch.Size([1, 4, 8])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import nn


class SeqNet(nn.Module):
    """Causal encoder over action tokens plus a context-aware, drift-aware catalogue scorer.

    Parameters
    ----------
    n_titles : catalogue size; title index ``j`` is token ``j + 1`` (0 is padding).
    hidden, n_blocks, n_heads, max_len, dropout : encoder shape.
    feature_sizes : cardinality (unknown code 0 included) of each per-action feature column.
    context_sizes : cardinality of each request-context column (empty: no context query).
    n_drift : number of drift features per (time bucket, title); 0 disables the drift term.
    encoder : ``"transformer"`` or ``"gru"``.
    n_side : width of dense title side features added to the title embedding (0: none).
    """

    # buffers (registered in __init__; typed here, nn.Module's __getattr__ is not)
    side: torch.Tensor
    drift_table: torch.Tensor

    def __init__(
        self,
        n_titles: int,
        *,
        hidden: int = 64,
        n_blocks: int = 2,
        n_heads: int = 1,
        max_len: int = 200,
        dropout: float = 0.2,
        feature_sizes: Sequence[int] = (),
        context_sizes: Sequence[int] = (),
        n_drift: int = 0,
        encoder: str = "transformer",
        n_side: int = 0,
    ) -> None:
        super().__init__()
        self.n_titles, self.hidden, self.max_len = n_titles, hidden, max_len
        self.encoder_kind = encoder
        self.title_emb = nn.Embedding(n_titles + 1, hidden, padding_idx=0)
        self.title_bias = nn.Parameter(torch.zeros(n_titles))
        self.pos_emb = nn.Embedding(max_len, hidden)
        self.features = nn.ModuleList(nn.Embedding(n, hidden) for n in feature_sizes)
        self.context = nn.ModuleList(nn.Embedding(n, hidden) for n in context_sizes)
        self.context_proj = (nn.Linear(hidden * len(context_sizes), hidden)
                             if context_sizes else None)
        self.side_proj = nn.Linear(n_side, hidden, bias=False) if n_side else None
        self.drift = (nn.Sequential(nn.Linear(n_drift, 16), nn.GELU(), nn.Linear(16, 1))
                      if n_drift else None)
        self.in_norm = nn.LayerNorm(hidden)
        self.in_drop = nn.Dropout(dropout)
        if encoder == "transformer":
            self.blocks: nn.Module = nn.ModuleList(
                _Block(hidden, n_heads, dropout) for _ in range(n_blocks))
        elif encoder == "gru":
            self.blocks = nn.GRU(hidden, hidden, num_layers=n_blocks, batch_first=True,
                                 dropout=dropout if n_blocks > 1 else 0.0)
        else:
            raise ValueError(f"encoder must be 'transformer' or 'gru', got {encoder!r}")
        self.out_norm = nn.LayerNorm(hidden)
        self.register_buffer("side", torch.zeros(n_titles + 1, max(n_side, 1)), persistent=False)
        self.register_buffer("drift_table", torch.zeros(1, n_titles, max(n_drift, 1)),
                             persistent=False)
        self._init()

    def _init(self) -> None:
        for emb in [self.title_emb, self.pos_emb, *self.features, *self.context]:
            nn.init.normal_(emb.weight, std=0.02)
        with torch.no_grad():
            self.title_emb.weight[0].zero_()

    # ------------------------------------------------------------------ pieces
    def title_vectors(self) -> torch.Tensor:
        """``(n_titles + 1, hidden)`` title embeddings (side features added); row 0 is padding."""
        w = self.title_emb.weight
        if self.side_proj is not None:
            w = w + self.side_proj(self.side)
        return w

    def encode(self, titles: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        """Hidden states ``(B, L, hidden)``; position ``i`` sees tokens ``<= i`` only.

        ``titles`` ``(B, L)`` int64 title tokens (0 = padding, right-padded); ``feats``
        ``(B, L, n_features)`` int64 feature codes.
        """
        length = titles.shape[1]
        if length > self.max_len:
            raise ValueError(f"sequence length {length} > max_len {self.max_len}")
        x = self.title_vectors()[titles] + self.pos_emb.weight[:length]
        for f, emb in enumerate(self.features):
            x = x + emb(feats[..., f])
        x = self.in_drop(self.in_norm(x))
        if self.encoder_kind == "transformer":
            h = x
            for block in cast(nn.ModuleList, self.blocks):
                h = block(h)
        else:
            h, _ = self.blocks(x)
        return self.out_norm(h)

    def query(self, h: torch.Tensor, ctx: torch.Tensor | None) -> torch.Tensor:
        """Add the request context ``ctx`` (``(..., n_context)`` codes) to hidden states."""
        if self.context_proj is None or ctx is None:
            return h
        parts = [emb(ctx[..., c]) for c, emb in enumerate(self.context)]
        return h + self.context_proj(torch.cat(parts, dim=-1))

    def drift_bias(self, bucket: torch.Tensor, titles: torch.Tensor | None = None
                   ) -> torch.Tensor | None:
        """``(N, n_titles)`` (or ``(N, K)``) drift logits for time buckets ``bucket`` ``(N,)``;
        the MLP runs once per distinct bucket, not once per query."""
        if self.drift is None:
            return None
        uniq, inverse = torch.unique(bucket, return_inverse=True)
        table = self.drift_table[uniq]
        if titles is not None:
            table = table[:, titles]
        return torch.index_select(self.drift(table).squeeze(-1), 0, inverse)

    def logits(self, q: torch.Tensor, bucket: torch.Tensor | None = None,
               titles: torch.Tensor | None = None) -> torch.Tensor:
        """Scores ``(N, n_titles)`` for queries ``q`` ``(N, hidden)`` (or ``(N, K)`` for a subset
        of title indices ``titles`` ``(K,)``, shared by every query)."""
        w = self.title_vectors()[1:]
        b: torch.Tensor = self.title_bias
        if titles is not None:
            w, b = w[titles], b[titles]
        if bucket is None or self.drift is None:
            return torch.addmm(b, q, w.T)
        # the title bias joins the drift logits once per distinct bucket, and the product adds
        # onto them in place (addmm): one (N, n_titles) pass, not three
        uniq, inverse = torch.unique(bucket, return_inverse=True)
        table = self.drift_table[uniq]
        if titles is not None:
            table = table[:, titles]
        bias = torch.index_select(self.drift(table).squeeze(-1) + b, 0, inverse)
        return torch.addmm(bias, q, w.T)


class _Block(nn.Module):
    """Pre-norm transformer block with causal scaled-dot-product attention (no attention
    dropout: on CPU the mask sampling over ``(B, heads, L, L)`` costs more than it helps)."""

    def __init__(self, hidden: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.norm1, self.norm2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.ffn = nn.Sequential(nn.Linear(hidden, 4 * hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(4 * hidden, hidden))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.n_heads, d // self.n_heads
                                               ).permute(2, 0, 3, 1, 4)
        a = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(b, n, d)))
        return x + self.drop(self.ffn(self.norm2(x)))


class _MaskOut(torch.autograd.Function):
    """``x.masked_fill_(mask, -inf)`` whose backward passes the gradient through unchanged."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        ctx.mark_dirty(x)
        return x.masked_fill_(mask, float("-inf"))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


def mask_out(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``logits`` with the ``mask`` entries set to ``-inf``, in place, for a softmax (log-softmax,
    cross-entropy) taken next: the softmax's gradient at a ``-inf`` entry is already zero, so
    the backward skips the copy that zeroes it again (one ``(N, n_titles)`` pass).
    ``logits`` must be an intermediate result whose own backward does not need it (e.g. the
    output of :meth:`SeqNet.logits`).

    >>> x = torch.zeros(1, 3, requires_grad=True)
    >>> y = mask_out(x * 1.0, torch.tensor([[False, True, False]]))
    >>> torch.nn.functional.cross_entropy(y, torch.tensor([0])).backward()
    >>> x.grad.tolist()
    [[-0.5, 0.0, 0.5]]
    """
    out: torch.Tensor = _MaskOut.apply(logits, mask)
    return out
