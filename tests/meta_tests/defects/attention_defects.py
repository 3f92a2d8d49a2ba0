"""Deliberately wrong scaled dot-product attention (spec ``attention``, specs/attention_is_all_you_need.yaml).

Every function has the signature of ``implementations.attention.attention_manual``
``(Q, K, V, mask=None, dropout_p=0.0, is_causal=False)`` and is wrong in exactly one way (the
guide's fallback in two); each docstring says what is wrong and which spec line / harness check
must catch it. ``tests/meta_tests/test_planted_defects.py`` asserts that it does.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _causal(Lq: int, Lk: int, device: torch.device) -> Tensor:
    """Top-left causal mask, True = may attend (query i sees key j iff j <= i)."""
    return torch.ones(Lq, Lk, dtype=torch.bool, device=device).tril()


def _allowed(Q: Tensor, K: Tensor, mask: Tensor | None, is_causal: bool) -> Tensor | None:
    """The correct effective mask: ``mask AND causal`` (True = may attend)."""
    if not is_causal:
        return mask
    causal = _causal(Q.size(-2), K.size(-2), Q.device)
    return causal if mask is None else mask & causal


def _attend(
    Q: Tensor, K: Tensor, V: Tensor, allowed: Tensor | None, *, scale: float | None = None, softmax_dim: int = -1
) -> Tensor:
    """softmax(Q K^T * scale, masked) @ V, scores in float32 for half inputs (like attention_manual)."""
    compute = torch.float32 if Q.dtype in _LOW_PRECISION else Q.dtype
    scale = 1.0 / math.sqrt(Q.size(-1)) if scale is None else scale
    scores = Q.to(compute) @ K.to(compute).transpose(-2, -1) * scale  # (..., Lq, Lk)
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    attn = torch.softmax(scores, dim=softmax_dim).to(Q.dtype)  # (..., Lq, Lk)
    return attn @ V  # (..., Lq, Dv)


def no_scaling(Q, K, V, mask=None, dropout_p=0.0, is_causal=False):
    """Forgets the 1/sqrt(d_k) of Eq. 1: softmax(Q K^T) V.

    Caught by: ``oracle`` (spec ``oracle.expr``: ``Q @ transpose(K) / sqrt(Dk)``). Equivalent when Dk = 1.
    """
    return _attend(Q, K, V, _allowed(Q, K, mask, is_causal), scale=1.0)


def mask_inverted(Q, K, V, mask=None, dropout_p=0.0, is_causal=False):
    """Reads the boolean mask as True = blocked (nn.MultiheadAttention's convention), not True = may attend.

    Caught by: ``oracle`` (spec ambiguity "True = may attend"; oracle ``let: allowed: mask & ...``).
    """
    blocked = None if mask is None else ~mask
    return _attend(Q, K, V, _allowed(Q, K, blocked, is_causal))


def causal_bottom_right(Q, K, V, mask=None, dropout_p=0.0, is_causal=False):
    """Aligns is_causal bottom-right (query i sees key j iff j <= i + Lk - Lq), the decoding convention.

    Caught by: ``oracle`` (spec ambiguity "Top-left ... tril(ones(Lq, Lk))"; oracle ``tril(Lq, Lk)``).
    Identical to the spec when Lq == Lk, so only examples with Lq != Lk can show it.
    """
    allowed = mask
    if is_causal:
        Lq, Lk = Q.size(-2), K.size(-2)
        causal = torch.ones(Lq, Lk, dtype=torch.bool, device=Q.device).tril(diagonal=Lk - Lq)
        allowed = causal if mask is None else mask & causal
    return _attend(Q, K, V, allowed)


def guide_fallback(Q, K, V, mask=None, dropout_p=0.0, is_causal=False):
    """The guide's manual fallback (pytorch-implementation-patterns.md, pattern 1), verbatim in substance.

    Two bugs: the causal mask is ``triu(ones(L, L), 1)`` with ``L = Q.size(-2)`` (wrong whenever
    Lq != Lk: with Lq = 1 it masks nothing, otherwise it does not even broadcast), and the caller's
    ``mask`` is silently ignored when ``is_causal`` (``if ... elif``).

    Caught by: ``oracle`` (oracle ``let: allowed: mask & (tril(Lq, Lk) | ~is_causal)``).
    """
    d_k = Q.size(-1)
    scores = torch.matmul(Q, K.transpose(-2, -1)) / math.sqrt(d_k)
    if is_causal:
        L = Q.size(-2)
        causal_mask = torch.triu(torch.ones(L, L, device=Q.device), diagonal=1).bool()
        scores = scores.masked_fill(causal_mask, float("-inf"))
    elif mask is not None:
        scores = scores.masked_fill(mask == 0, float("-inf"))
    attn = F.softmax(scores, dim=-1)
    return torch.matmul(attn, V)


def causal_ignores_mask(Q, K, V, mask=None, dropout_p=0.0, is_causal=False):
    """The guide's second fallback bug alone: with is_causal the caller's mask is dropped (causal is right).

    Caught by: ``oracle`` (spec ambiguity "Both apply (their AND)"; oracle ``mask & (tril(Lq, Lk) | ~is_causal)``).
    """
    if is_causal:
        return _attend(Q, K, V, _causal(Q.size(-2), K.size(-2), Q.device))
    return _attend(Q, K, V, mask)


def causal_square_query_mask(Q, K, V, mask=None, dropout_p=0.0, is_causal=False):
    """The guide's first fallback bug alone: causal mask ``triu(ones(L, L), 1)`` with L = Q.size(-2).

    With Lq = 1 and Lk > 1 the (1, 1) mask broadcasts and masks nothing (key 0 only is allowed);
    with 1 < Lq != Lk it does not broadcast against the (Lq, Lk) scores and raises.

    Caught by: ``oracle`` (oracle ``tril(Lq, Lk)``).
    """
    allowed = mask
    if is_causal:
        L = Q.size(-2)
        blocked = torch.triu(torch.ones(L, L, device=Q.device), diagonal=1).bool()
        allowed = ~blocked if mask is None else mask & ~blocked
    return _attend(Q, K, V, allowed)


def softmax_over_queries(Q, K, V, mask=None, dropout_p=0.0, is_causal=False):
    """Softmax over the query axis (dim -2) instead of the key axis (dim -1).

    Caught by: ``oracle`` (``softmax(..., -1)``) and ``invariant:weights_sum_to_one`` (rows of the
    weights no longer sum to 1, so V = 1 does not give ones).
    """
    return _attend(Q, K, V, _allowed(Q, K, mask, is_causal), softmax_dim=-2)


def ignores_is_causal(Q, K, V, mask=None, dropout_p=0.0, is_causal=False):
    """Accepts is_causal and never applies it: every query sees every (unmasked) key.

    Caught by: ``invariant:causality`` (changing keys/values after position t changes outputs <= t);
    the oracle catches it too.
    """
    return _attend(Q, K, V, mask)


def query_position_bias(Q, K, V, mask=None, dropout_p=0.0, is_causal=False):
    """Adds a position-dependent bias to each query (a leaked positional encoding): Q[i] + 0.5 * i.

    The output now depends on where a query sits, so permuting the queries does not permute the output.
    Caught by: ``invariant:query_permutation`` (and the oracle).
    """
    position = torch.arange(Q.size(-2), device=Q.device, dtype=Q.dtype).unsqueeze(-1)  # (Lq, 1)
    return _attend(Q + 0.5 * position, K, V, _allowed(Q, K, mask, is_causal))


def upcast_output(Q, K, V, mask=None, dropout_p=0.0, is_causal=False):
    """Computes float16/bfloat16 inputs in float32 and forgets to cast the output back (returns float32).

    Values are fine, the dtype is not. Caught by: ``output_contract`` at float16 (spec ``outputs``:
    the output has the input dtype).
    """
    compute = torch.float32 if Q.dtype in _LOW_PRECISION else Q.dtype
    return _attend(Q.to(compute), K.to(compute), V.to(compute), _allowed(Q, K, mask, is_causal))


def nondeterministic(Q, K, V, mask=None, dropout_p=0.0, is_causal=False):
    """Adds a few ulps of random noise to the output (think a non-deterministic atomic reduction).

    The values stay close to the oracle, but two calls on the same inputs differ.
    Caught by: ``determinism`` (two calls must be bitwise equal).
    """
    out = _attend(Q, K, V, _allowed(Q, K, mask, is_causal))
    noise = torch.randn(out.shape, dtype=torch.float64, device=out.device) * 2 * torch.finfo(out.dtype).eps
    return out + (noise * out.detach().abs().to(torch.float64).amax()).to(out.dtype)


def detached_values(Q, K, V, mask=None, dropout_p=0.0, is_causal=False):
    """Detaches V (e.g. a stray ``.detach()`` / ``.data``): the forward is right, no gradient reaches V.

    Caught by: ``gradient`` (spec ``gradients: wrt: [Q, K, V]``: "no gradient reaches V").
    """
    return _attend(Q, K, V.detach(), _allowed(Q, K, mask, is_causal))


class _WrongQueryGrad(torch.autograd.Function):
    """Attention with a hand-written backward whose ∂/∂Q drops the softmax Jacobian's correction term.

    Correct: dS = P * (dP - rowsum(P * dP)). Here dQ uses dS = P * dP (the "diagonal only" softmax
    backward); dK and dV are right.
    """

    @staticmethod
    def forward(ctx, Q, K, V, allowed):
        scale = 1.0 / math.sqrt(Q.size(-1))
        scores = Q @ K.transpose(-2, -1) * scale
        if allowed is not None:
            scores = scores.masked_fill(~allowed, float("-inf"))
        P = torch.softmax(scores, dim=-1)
        ctx.save_for_backward(Q, K, V, P)
        ctx.scale = scale
        return P @ V

    @staticmethod
    def backward(ctx, dO):
        Q, K, V, P = ctx.saved_tensors
        dV = P.transpose(-2, -1) @ dO
        dP = dO @ V.transpose(-2, -1)
        dS = P * (dP - (P * dP).sum(-1, keepdim=True))
        dS_wrong = P * dP  # BUG: missing "- rowsum(P * dP)"
        dQ = dS_wrong @ K * ctx.scale
        dK = dS.transpose(-2, -1) @ Q * ctx.scale
        return dQ, dK, dV, None


def wrong_query_backward(Q, K, V, mask=None, dropout_p=0.0, is_causal=False):
    """A custom autograd.Function whose forward is right and whose backward for Q is wrong.

    The backward for Q forgets the ``- rowsum(P ⊙ dP)`` term of the softmax Jacobian.
    Caught by: ``gradient`` (vs autograd through the oracle, spec ``gradients``) and ``gradcheck``
    at float64 (finite differences).
    """
    return _WrongQueryGrad.apply(Q, K, V, _allowed(Q, K, mask, is_causal))


def log_softmax_weights(Q, K, V, mask=None, dropout_p=0.0, is_causal=False):
    """Uses ``log_softmax`` where ``softmax`` was meant: the weights are negative log-probabilities.

    The output leaves the convex hull of the value rows. Caught by: ``invariant:convex_hull`` (and the oracle).
    """
    allowed = _allowed(Q, K, mask, is_causal)
    scores = Q @ K.transpose(-2, -1) / math.sqrt(Q.size(-1))
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    attn = torch.log_softmax(scores, dim=-1).nan_to_num(neginf=0.0)  # masked keys weighted 0, not -inf
    return attn @ V


def key_position_bias(Q, K, V, mask=None, dropout_p=0.0, is_causal=False):
    """Adds a key-position-dependent bias to the scores (a leaked ALiBi-style bias, -0.5 · j for key j).

    Keys and values are no longer a set: permuting them together changes the output.
    Caught by: ``invariant:key_value_permutation`` (and the oracle).
    """
    allowed = _allowed(Q, K, mask, is_causal)
    scores = Q @ K.transpose(-2, -1) / math.sqrt(Q.size(-1))
    scores = scores - 0.5 * torch.arange(K.size(-2), device=Q.device, dtype=scores.dtype)  # (..., Lq, Lk)
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.softmax(scores, dim=-1) @ V


def output_bias(Q, K, V, mask=None, dropout_p=0.0, is_causal=False):
    """Adds a constant bias to the output (an output projection's bias leaking into the core): affine in V.

    Caught by: ``invariant:value_linearity`` (scaling V by c must scale the output by c) and the oracle.
    """
    return _attend(Q, K, V, _allowed(Q, K, mask, is_causal)) + 0.125


def key_only_l2_norm(Q, K, V, mask=None, dropout_p=0.0, is_causal=False):
    """L2-normalises the keys only (half of a QK-norm) before the dot products.

    The scores no longer depend on Q and K only through Q K^T, so scaling Q by c and K by 1/c changes them.
    Caught by: ``invariant:query_key_rescaling`` (and the oracle).
    """
    K_unit = K / K.norm(dim=-1, keepdim=True)
    return _attend(Q, K_unit, V, _allowed(Q, K, mask, is_causal))
