"""Plain float64 NumPy reference functions, named by a spec's ``oracle.reference``.

Each is written independently of the spec's ``expr`` (different formulation, no torch), so that
where a spec has both, the cross-check between them means something. A reference receives the
example's values by their spec names (inputs, params, symbols) and returns float64.

>>> import numpy as np
>>> surprise(hidden=np.array([[1.0, 2.0]]), memory_pred=np.array([[0.0, 0.0]]))
array([5.])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Reference = Callable[..., np.ndarray]


def attention(
    Q: np.ndarray, K: np.ndarray, V: np.ndarray, mask: np.ndarray, is_causal: bool, Lq: int, Lk: int, **_: Any
) -> np.ndarray:
    """Attention Is All You Need, Eq. 1, with log-sum-exp normalisation.

    ``mask`` True = may attend; ``is_causal`` keeps key j for query i iff j <= i (top-left).
    """
    allowed = np.broadcast_to(np.asarray(mask, dtype=bool), (Lq, Lk)).copy()
    if is_causal:
        allowed &= np.arange(Lk)[None, :] <= np.arange(Lq)[:, None]  # (Lq, Lk)
    scores = np.einsum("...qd,...kd->...qk", Q, K) / np.sqrt(Q.shape[-1])  # (..., Lq, Lk)
    scores = np.where(allowed, scores, -np.inf)
    lse = np.logaddexp.reduce(scores, axis=-1, keepdims=True)  # (..., Lq, 1)
    return np.einsum("...qk,...kv->...qv", np.exp(scores - lse), V)


def rmsnorm(x: np.ndarray, weight: np.ndarray, eps: float, **_: Any) -> np.ndarray:
    """RMSNorm, Zhang & Sennrich Eq. 4, ε inside the square root: RMS = ‖a‖₂ / sqrt(n)."""
    n = x.shape[-1]
    norm = np.linalg.norm(x, axis=-1, keepdims=True)  # (..., 1)
    return x * weight / np.sqrt(norm**2 / n + eps)


def surprise(hidden: np.ndarray, memory_pred: np.ndarray, **_: Any) -> np.ndarray:
    """Titans Eq. 12 per token: ‖h − M(k)‖²₂ as a sum over features (not a mean)."""
    diff = hidden - memory_pred
    return np.einsum("...d,...d->...", diff, diff)


REFERENCES: dict[str, Reference] = {
    "attention": attention,
    "rmsnorm": rmsnorm,
    "surprise": surprise,
}
