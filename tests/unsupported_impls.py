"""Implementations for tests/test_unsupported.py: attention that refuses (or does not) the declared region."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from implementations.attention import attention_sdpa_documented


def sdpa_wrong_in_region(
    Q: Tensor, K: Tensor, V: Tensor, mask: Tensor | None = None, dropout_p: float = 0.0, is_causal: bool = False
) -> Tensor:
    """Declares mask with is_causal unsupported but silently drops the mask there (wrong values, no error)."""
    if mask is not None and is_causal:
        return F.scaled_dot_product_attention(Q, K, V, dropout_p=dropout_p, is_causal=True)
    return attention_sdpa_documented(Q, K, V, mask, dropout_p, is_causal)


def sdpa_refuses_with_type_error(
    Q: Tensor, K: Tensor, V: Tensor, mask: Tensor | None = None, dropout_p: float = 0.0, is_causal: bool = False
) -> Tensor:
    """Refuses the region, but with an exception the declaration does not name."""
    if mask is not None and is_causal:
        raise TypeError("mask and is_causal together")
    return attention_sdpa_documented(Q, K, V, mask, dropout_p, is_causal)


def sdpa_refuses_silently(
    Q: Tensor, K: Tensor, V: Tensor, mask: Tensor | None = None, dropout_p: float = 0.0, is_causal: bool = False
) -> Tensor:
    """Refuses the region with the declared exception but no message."""
    if mask is not None and is_causal:
        raise RuntimeError()
    return attention_sdpa_documented(Q, K, V, mask, dropout_p, is_causal)


def only_flag_false(x: Tensor, flag: bool = False) -> Tensor:
    """A toy: 2·x, refusing flag=True."""
    if flag:
        raise ValueError("flag=True is not supported")
    return 2 * x


