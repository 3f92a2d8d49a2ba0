"""Scaled dot-product attention, Vaswani et al. 2017 (arXiv 1706.03762), Eq. 1.

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V

Two paths with identical semantics: ``attention_with_flash`` calls
``F.scaled_dot_product_attention`` (SDPA) and ``attention_manual`` writes the
equation out by hand. Boolean masks follow the SDPA convention (True = may
attend); ``is_causal`` is aligned top-left like SDPA (query i may attend key j
iff j <= i), also when Lq != Lk. A row whose keys are all masked out has no
defined result (softmax over only -inf); callers must not pass such rows.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _validate(Q: Tensor, K: Tensor, V: Tensor, mask: Tensor | None, dropout_p: float) -> None:
    """Raise ValueError for inputs that either path would mishandle."""
    if min(Q.dim(), K.dim(), V.dim()) < 2:
        raise ValueError("Q, K, V must have at least 2 dims (..., L, D)")
    if not Q.dtype == K.dtype == V.dtype:
        raise ValueError(f"Q, K, V dtypes differ: {Q.dtype}, {K.dtype}, {V.dtype}")
    if Q.size(-1) != K.size(-1):
        raise ValueError(f"d_k mismatch: Q has {Q.size(-1)}, K has {K.size(-1)}")
    if K.size(-2) != V.size(-2):
        raise ValueError(f"Lk mismatch: K has {K.size(-2)}, V has {V.size(-2)}")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
    if mask is None:
        return
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be bool (True = may attend), got {mask.dtype}")
    batch = torch.broadcast_shapes(Q.shape[:-2], K.shape[:-2])
    target = (*batch, Q.size(-2), K.size(-2))  # (..., Lq, Lk)
    try:
        ok = torch.broadcast_shapes(mask.shape, target) == target
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not broadcast to {target}")


def _effective_mask(Q: Tensor, K: Tensor, mask: Tensor | None, is_causal: bool) -> Tensor | None:
    """Return the boolean mask (True = may attend) combining ``mask`` AND causal."""
    if not is_causal:
        return mask
    Lq, Lk = Q.size(-2), K.size(-2)
    causal = torch.ones(Lq, Lk, dtype=torch.bool, device=Q.device).tril()  # (Lq, Lk)
    return causal if mask is None else mask & causal  # (..., Lq, Lk)


def attention_with_flash(
    Q: Tensor,
    K: Tensor,
    V: Tensor,
    mask: Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
) -> Tensor:
    """Eq. 1 via ``F.scaled_dot_product_attention``.

    Args:
        Q: (..., Lq, Dk) queries.
        K: (..., Lk, Dk) keys.
        V: (..., Lk, Dv) values.
        mask: bool, True = may attend, broadcastable to (..., Lq, Lk).
        dropout_p: dropout on the attention weights, applied exactly as
            given; the caller decides (pass 0.0 at evaluation time).
        is_causal: top-left causal mask (j <= i); ANDed with ``mask``.

    Returns:
        (..., Lq, Dv). Rows with every key masked out are undefined.

    >>> Q, K = torch.randn(2, 4, 5, 8), torch.randn(2, 4, 7, 8)
    >>> V = torch.randn(2, 4, 7, 3)
    >>> attention_with_flash(Q, K, V, is_causal=True).shape
    torch.Size([2, 4, 5, 3])
    """
    _validate(Q, K, V, mask, dropout_p)
    if mask is None:  # SDPA's own is_causal is top-left aligned too, and keeps the fused kernels usable
        return F.scaled_dot_product_attention(Q, K, V, dropout_p=dropout_p, is_causal=is_causal)
    # SDPA raises when given both attn_mask and is_causal, so pass the AND only.
    attn_mask = _effective_mask(Q, K, mask, is_causal)
    return F.scaled_dot_product_attention(Q, K, V, attn_mask=attn_mask, dropout_p=dropout_p)


def attention_manual(
    Q: Tensor,
    K: Tensor,
    V: Tensor,
    mask: Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
) -> Tensor:
    """Eq. 1 written by hand; same semantics as ``attention_with_flash``.

    float16/bfloat16 inputs get their scores and softmax computed in float32,
    the weights cast back to the input dtype before dropout and ``@ V``.
    Rows with every key masked out are undefined (here NaN).

    >>> Q, K = torch.randn(2, 4, 5, 8), torch.randn(2, 4, 7, 8)
    >>> V = torch.randn(2, 4, 7, 3)
    >>> out = attention_manual(Q, K, V)
    >>> torch.allclose(out, attention_with_flash(Q, K, V), atol=1e-5)
    True
    """
    _validate(Q, K, V, mask, dropout_p)
    attn_mask = _effective_mask(Q, K, mask, is_causal)
    compute_dtype = torch.float32 if Q.dtype in _LOW_PRECISION else Q.dtype
    q, k = Q.to(compute_dtype), K.to(compute_dtype)
    k_t = k.transpose(-2, -1)  # (..., Dk, Lk)
    scores = q @ k_t * (1.0 / math.sqrt(Q.size(-1)))  # (..., Lq, Lk)
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf"))  # (..., Lq, Lk)
    attn = torch.softmax(scores, dim=-1).to(Q.dtype)  # (..., Lq, Lk)
    if dropout_p > 0:
        attn = F.dropout(attn, p=dropout_p, training=True)
    return attn @ V  # (..., Lq, Dv)


def attention_sdpa_documented(
    Q: Tensor,
    K: Tensor,
    V: Tensor,
    mask: Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
) -> Tensor:
    """``F.scaled_dot_product_attention`` called as it is, under its documented contract.

    The spec passes the mask as ``mask``; SDPA names it ``attn_mask``: that is the only adaptation.
    SDPA's documentation says "An error is thrown if both attn_mask and is_causal are set", and the
    fused CUDA kernels do raise; some builds (the CPU math path of recent torch) accept the pair and
    AND them instead. This adapter keeps the documented refusal on every build, so the spec's entry
    can declare the combination unsupported (``unsupported`` with ``has_mask & is_causal``).

    >>> Q = torch.randn(1, 1, 3, 4)
    >>> attention_sdpa_documented(Q, Q, Q, mask=torch.ones(3, 3, dtype=torch.bool), is_causal=True)
    Traceback (most recent call last):
    ...
    RuntimeError: scaled_dot_product_attention: attn_mask and is_causal=True cannot both be set (as documented)
    """
    if mask is not None and is_causal:
        raise RuntimeError("scaled_dot_product_attention: attn_mask and is_causal=True cannot both be set (as documented)")
    return F.scaled_dot_product_attention(Q, K, V, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal)
