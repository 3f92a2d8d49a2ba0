"""Memory-efficient attention, Attention Is All You Need Eq. 1, evaluated in query chunks.

The scores of ``chunk_size`` queries against all keys are materialised at a time, so the score
memory is O(chunk_size · Lk) instead of O(Lq · Lk); every query row sees every key, so the result
is Eq. 1 exactly (up to rounding), for any length and any chunk size.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def chunked_attention(Q: Tensor, K: Tensor, V: Tensor, chunk_size: int = 1024) -> Tensor:
    """softmax(Q Kᵀ / sqrt(d_k)) V, computed ``chunk_size`` query rows at a time.

    Args:
        Q: (..., Lq, Dk) queries.
        K: (..., Lk, Dk) keys.
        V: (..., Lk, Dv) values.
        chunk_size: query rows per chunk, >= 1; a chunk longer than Lq is one chunk.

    Returns:
        (..., Lq, Dv), in Q's dtype. float16/bfloat16 scores and softmax are computed in float32.

    >>> Q, K, V = torch.randn(1, 2, 5, 4), torch.randn(1, 2, 7, 4), torch.randn(1, 2, 7, 3)
    >>> out = chunked_attention(Q, K, V, chunk_size=2)
    >>> torch.allclose(out, torch.nn.functional.scaled_dot_product_attention(Q, K, V), atol=1e-6)
    True
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if Q.size(-1) != K.size(-1) or K.size(-2) != V.size(-2):
        raise ValueError(f"shapes do not fit: Q {tuple(Q.shape)}, K {tuple(K.shape)}, V {tuple(V.shape)}")
    compute = torch.float32 if Q.dtype in (torch.float16, torch.bfloat16) else Q.dtype
    scale = 1.0 / math.sqrt(Q.size(-1))
    keys_t = K.to(compute).transpose(-2, -1)  # (..., Dk, Lk)
    values = V.to(compute)
    outputs = []
    for start in range(0, Q.size(-2), chunk_size):
        q = Q[..., start : start + chunk_size, :].to(compute)  # (..., c, Dk)
        weights = torch.softmax((q @ keys_t) * scale, dim=-1)  # (..., c, Lk): the only O(c·Lk) tensor
        outputs.append(weights @ values)  # (..., c, Dv)
    if not outputs:  # Lq == 0
        return Q.new_empty((*Q.shape[:-1], V.size(-1)))
    return torch.cat(outputs, dim=-2).to(Q.dtype)  # (..., Lq, Dv)
