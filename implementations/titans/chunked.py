"""The chunked parallel form of the Titans memory (arXiv 2501.00663, Eq. 13–18), exact to the token recurrence.

The recurrence fixed by docs/titans.md, for a token at absolute position ``p = start + i``::

    if p % C == 0: A = W                        # the chunk's anchor (Eq. 16, t')
    S = eta_i * S - theta_i * grad l(A; k_i, v_i)   # Eq. 14
    W = (1 - alpha_i) * W + S                   # Eq. 13
    y_i = M(W before or after the update)(q_i)  # Eq. 15

Within a chunk every gradient is taken at the same anchor, so all of them are computed at once (one batched
forward and backward of the memory over the chunk's tokens), and the momentum (Eq. 18, ``a = η``, ``b = −θ u``)
and the forgetting (Eq. 13, ``a = 1 − α``, ``b = S``) are two first-order linear recurrences over the chunk.
The only Python loop is over chunks.

Two exact evaluations of a chunk:

- ``method="factored"`` (the default): each token's gradient is an outer product ``a_{l−1}^T δ_l`` per layer
  (``memory.gradient_factors``), and both recurrences are linear, so every token's memory is
  ``W_i = D[i,0] W_0 + G[i,0] S_0 − Σ_{r≤i} G[i,r] θ_r a_r^T δ_r`` with ``D`` the forgetting scan's transfer
  matrix, ``F`` the momentum's and ``G = D F`` (``scan.decay_matrix``; no division, so exact at α = 1 or η = 0).
  A row ``z_i`` through that layer is then ``D[i,0] z_i W_0 + G[i,0] z_i S_0 − ((Z a^T) ⊙ Gθ) δ``: a
  decay-masked ``q·k``-style matmul, so per-token weights are never built, at any depth.
- ``method="per_token"``: the per-token gradients ``[B, n, d_in, d_out]`` are formed, scanned with
  ``scan.linear_scan`` (Hillis–Steele), and each token is read with its own weights. Kept as the literal form.

A partial first chunk (``start % C != 0``) uses the anchor ``A`` given; a partial last chunk just ends the call,
and its anchor is returned so that the next call (``start`` + T) continues it.
"""

from typing import NamedTuple

import torch
from torch import Tensor

from implementations.titans.memory import gelu, gradient_factors, loss_scale, memory_forward, token_gradients
from implementations.titans.scan import decay_matrix, linear_scan

RETRIEVES = ("before", "after")
METHODS = ("factored", "per_token")

Weights = tuple[Tensor, ...]


def _validate(
    k: Tensor,
    v: Tensor,
    q: Tensor,
    gates: dict[str, Tensor],
    states: dict[str, Weights],
    start: int,
    chunk_size: int,
    retrieve: str,
    loss: str,
    method: str,
) -> None:
    if k.dim() != 3:
        raise ValueError(f"k must be [B, T, Dk], got shape {tuple(k.shape)}")
    batch, steps, dim_k = k.shape
    if v.dim() != 3 or v.shape[:2] != k.shape[:2]:
        raise ValueError(f"v must be [B, T, Dv] with [B, T] = {(batch, steps)}, got shape {tuple(v.shape)}")
    if q.shape != k.shape:
        raise ValueError(f"q must have k's shape {tuple(k.shape)}, got shape {tuple(q.shape)}")
    for name, gate in gates.items():
        if gate.shape != (batch, steps):
            raise ValueError(f"{name} must be [B, T] = {(batch, steps)}, got shape {tuple(gate.shape)}")
    weights = states["weights"]
    if len(weights) == 0:
        raise ValueError("the memory needs at least one layer (weights is empty)")
    d_in = dim_k
    for layer, w in enumerate(weights):
        if w.dim() != 3 or w.shape[0] != batch or w.shape[1] != d_in:
            raise ValueError(f"weights[{layer}] must be [{batch}, {d_in}, d_out], got shape {tuple(w.shape)}")
        d_in = w.shape[2]
    if d_in != v.shape[2]:
        raise ValueError(f"the last layer's width must be Dv = {v.shape[2]}, got {d_in}")
    for name in ("momentum", "anchor"):
        other = states[name]
        if len(other) != len(weights) or any(o.shape != w.shape for o, w in zip(other, weights, strict=False)):
            shapes = [tuple(o.shape) for o in other]
            raise ValueError(f"{name} must match the weights' shapes {[tuple(w.shape) for w in weights]}, got {shapes}")
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        raise ValueError(f"start must be an int >= 0, got {start!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an int >= 1, got {chunk_size!r}")
    if retrieve not in RETRIEVES:
        raise ValueError(f"retrieve must be one of {RETRIEVES}, got {retrieve!r}")
    loss_scale(loss, v.shape[2])
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def chunk_bounds(start: int, steps: int, chunk_size: int) -> list[tuple[int, int]]:
    """The call's pieces of the absolute chunk grid: ``(i0, i1)`` local token ranges, chunk by chunk.

    >>> chunk_bounds(5, 10, 4)
    [(0, 3), (3, 7), (7, 10)]
    """
    bounds = []
    i0 = 0
    while i0 < steps:
        i1 = min(steps, i0 + chunk_size - (start + i0) % chunk_size)
        bounds.append((i0, i1))
        i0 = i1
    return bounds


class _Coefficients(NamedTuple):
    """One chunk's scalars of the factored form (``n`` tokens; see the module docstring)."""

    c_w: Tensor  # D[i, 0] for the row each token reads, [B, n, 1]
    c_s: Tensor  # G[i, 0], [B, n, 1]
    attn: Tensor  # (q_i · k_r) G[i, r] θ_r: the first layer's decay-masked q·k matrix, [B, n(read), n(source)]
    c_u: Tensor  # G[i, r] θ_r, [B, n, n]
    end_w: Tensor  # D[n, 0], [B, 1, 1]
    end_s: Tensor  # G[n, 0], [B, 1, 1]
    end_u: Tensor  # G[n, r] θ_r, [B, n, 1]
    mom_s: Tensor  # F[n, 0], [B, 1, 1]
    mom_u: Tensor  # F[n, r] θ_r, [B, n, 1]


def _coefficients(
    k: Tensor, q: Tensor, theta: Tensor, alpha: Tensor, eta: Tensor, bounds: list[tuple[int, int]], chunk_size: int,
    retrieve: str,
) -> list[_Coefficients]:
    """Every chunk's coefficients at once: nothing here depends on the memory, so it is batched over chunks.

    Each chunk's gates are padded at its end to ``chunk_size`` (θ = α = η = 0 there). The transfer matrices are
    lower-triangular and row ``t`` involves only gates ``≤ t``, so a chunk's leading ``(n+1) × (n+1)`` corner is
    exactly its own matrix whatever the padding.
    """
    batch, steps = theta.shape
    chunks, size = len(bounds), chunk_size
    device = theta.device
    first = torch.tensor([i0 for i0, _ in bounds], device=device)  # [nch]
    lengths = torch.tensor([i1 - i0 for i0, i1 in bounds], device=device)  # [nch]
    offsets = torch.arange(size, device=device)  # [C]
    valid = offsets < lengths.unsqueeze(1)  # [nch, C]
    index = torch.where(valid, first.unsqueeze(1) + offsets, 0)  # token index of each padded slot, [nch, C]

    def padded(t: Tensor) -> Tensor:  # [B, T, *N] -> [B, nch, C, *N] (zero in the padding)
        mask = valid.reshape(chunks, size, *([1] * (t.dim() - 2)))  # [nch, C] -> [nch, C, 1...]
        return torch.where(mask, t[:, index], 0.0)

    theta_p = padded(theta)  # [B, nch, C]
    ones = theta.new_ones(batch * chunks, 1)
    # [B, nch, C] -> [B*nch, C], a leading 1 for the state entering the chunk -> [B*nch, C+1]
    forget = decay_matrix(torch.cat((ones, 1.0 - padded(alpha).reshape(batch * chunks, size)), 1))
    moment = decay_matrix(torch.cat((ones, padded(eta).reshape(batch * chunks, size)), 1))
    forget = forget.reshape(batch, chunks, size + 1, size + 1)  # D per chunk: [B*nch, C+1, C+1] -> [B, nch, C+1, C+1]
    moment = moment.reshape(batch, chunks, size + 1, size + 1)  # F per chunk: [B*nch, C+1, C+1] -> [B, nch, C+1, C+1]
    mixed = forget[..., 1:] @ moment[..., 1:, :]  # G = D F over s ≥ 1, [B, nch, C+1, C+1]
    rows = slice(1, size + 1) if retrieve == "after" else slice(0, size)  # y_i reads W_i (after) or W_{i-1} (before)
    c_w = forget[:, :, rows, 0]  # [B, nch, C]
    c_s = mixed[:, :, rows, 0]
    c_u = mixed[:, :, rows, 1:] * theta_p.unsqueeze(2)  # [B, nch, C(read), C(source)]
    attn = (padded(q) @ padded(k).transpose(-1, -2)) * c_u  # [B, nch, C, C]
    chunk_index = torch.arange(chunks, device=device)
    end_w = forget[:, chunk_index, lengths, 0]  # row n of each chunk, [B, nch]
    end_s = mixed[:, chunk_index, lengths, 0]
    end_u = mixed[:, chunk_index, lengths, 1:] * theta_p  # [B, nch, C]
    mom_s = moment[:, chunk_index, lengths, 0]
    mom_u = moment[:, chunk_index, lengths, 1:] * theta_p
    out = []
    per_chunk = zip(*(t.unbind(1) for t in (c_w, c_s, c_u, attn, end_w, end_s, end_u, mom_s, mom_u)), strict=True)
    for (i0, i1), (cw, cs, cu, at, ew, es, eu, ms, mu) in zip(bounds, per_chunk, strict=True):
        n = i1 - i0
        # [B, C] -> [B, n, 1], [B, C, C] -> [B, n, n], end scalars [B] -> [B, 1, 1]
        out.append(_Coefficients(
            cw[:, :n, None], cs[:, :n, None], at[:, :n, :n], cu[:, :n, :n], ew.reshape(batch, 1, 1),
            es.reshape(batch, 1, 1), eu[:, :n, None], ms.reshape(batch, 1, 1), mu[:, :n, None],
        ))
    return out


def _chunk_factored(
    k: Tensor, v: Tensor, q: Tensor, co: _Coefficients, W: Weights, S: Weights, A: Weights, loss: str,
) -> tuple[Tensor, Weights, Weights]:
    """One chunk (every gradient at anchor ``A``) without per-token weights; see the module docstring."""
    factors = gradient_factors(A, k, v, loss)  # per layer (a_{l-1} [B, n, d_in], δ_l [B, n, d_out]); a_0 = k
    z = q
    for layer, (w, s, (left, right)) in enumerate(zip(W, S, factors, strict=True)):
        if layer == 0:
            masked = co.attn  # (q k^T) ⊙ Gθ, precomputed
        else:
            z = gelu(z)
            masked = (z @ left.transpose(1, 2)) * co.c_u  # [B, n, n]
        z = torch.baddbmm(torch.addcmul(co.c_w * (z @ w), co.c_s, z @ s), masked, right, alpha=-1.0)  # [B, n, d_out]
    # W_n = D[n,0] W + G[n,0] S − a^T (Gθ ⊙ δ) and S_n = F[n,0] S − a^T (Fθ ⊙ δ), fused so that each weight-sized
    # tensor is read and written as few times as possible (addcmul, and baddbmm adding the matmul in place).
    new_w = tuple(
        torch.baddbmm(torch.addcmul(co.end_w * w, co.end_s, s), left.transpose(1, 2), co.end_u * right, alpha=-1.0)
        for w, s, (left, right) in zip(W, S, factors, strict=True)
    )
    new_s = tuple(
        torch.baddbmm(co.mom_s * s, left.transpose(1, 2), co.mom_u * right, alpha=-1.0)
        for s, (left, right) in zip(S, factors, strict=True)
    )
    return z, new_w, new_s


def _chunk_per_token(
    k: Tensor, v: Tensor, q: Tensor, theta: Tensor, alpha: Tensor, eta: Tensor,
    W: Weights, S: Weights, A: Weights, retrieve: str, loss: str,
) -> tuple[Tensor, Weights, Weights]:
    """One chunk with each token's own weights: gradients at ``A``, the two scans, then per-token retrieval."""
    grads = token_gradients(A, k, v, loss)  # per layer [B, n, d_in, d_out]
    theta4 = theta.reshape(*theta.shape, 1, 1)  # [B, n, 1, 1]
    momenta = [linear_scan(eta, -theta4 * g, s) for g, s in zip(grads, S, strict=True)]  # S_i, [B, n, d_in, d_out]
    memories = [linear_scan(1.0 - alpha, m, w) for m, w in zip(momenta, W, strict=True)]  # W_i, [B, n, d_in, d_out]
    if retrieve == "after":
        read = memories
    else:
        read = [torch.cat((w.unsqueeze(1), m[:, :-1]), 1) for w, m in zip(W, memories, strict=True)]  # W_{i-1}
    y = memory_forward(q.unsqueeze(2), tuple(read)).squeeze(2)  # rows [B, n, 1, Dk] -> [B, n, Dv]
    return y, tuple(m[:, -1] for m in memories), tuple(m[:, -1] for m in momenta)


def memory_sequence(
    k: Tensor,
    v: Tensor,
    q: Tensor,
    theta: Tensor,
    alpha: Tensor,
    eta: Tensor,
    weights: Weights,
    momentum: Weights,
    anchor: Weights,
    *,
    start: int = 0,
    chunk_size: int = 1,
    retrieve: str = "before",
    loss: str = "sum",
    method: str = "factored",
) -> tuple[Tensor, Weights, Weights, Weights]:
    """Eq. 13–16 over a sequence, chunked, for a memory of any depth: ``-> (y [B, T, Dv], W, S, A)``.

    ``k, q [B, T, Dk]``, ``v [B, T, Dv]``, gates ``[B, T]``; ``weights``, ``momentum``, ``anchor``: one tensor
    ``[B, d_in, d_out]`` per layer. ``start`` is the absolute position of the first token (the chunk grid is
    ``⌊p / chunk_size⌋``), ``retrieve`` ``before``/``after``, ``loss`` ``sum``/``mean`` (docs/titans.md).
    """
    _validate(
        k, v, q, {"theta": theta, "alpha": alpha, "eta": eta},
        {"weights": tuple(weights), "momentum": tuple(momentum), "anchor": tuple(anchor)},
        start, chunk_size, retrieve, loss, method,
    )
    W, S, A = tuple(weights), tuple(momentum), tuple(anchor)
    bounds = chunk_bounds(start, k.shape[1], chunk_size)
    if not bounds:
        return v.new_zeros(v.shape), W, S, A
    sizes = [i1 - i0 for i0, i1 in bounds]
    # One split per input (not a slice per chunk): its backward is one concatenation, not a zero-filled copy per chunk.
    pieces = list(zip(*(t.split(sizes, dim=1) for t in (k, v, q, theta, alpha, eta)), strict=True))
    if method == "factored":
        coefficients = _coefficients(k, q, theta, alpha, eta, bounds, chunk_size, retrieve)
    ys = []
    for c, ((i0, _), piece) in enumerate(zip(bounds, pieces, strict=True)):
        if (start + i0) % chunk_size == 0:
            A = W  # a chunk starts here: its gradients are taken at the memory before it
        if method == "factored":
            y, W, S = _chunk_factored(*piece[:3], coefficients[c], W, S, A, loss)
        else:
            y, W, S = _chunk_per_token(*piece, W, S, A, retrieve, loss)
        ys.append(y)
    return torch.cat(ys, 1), W, S, A


def memory_linear(
    k: Tensor, v: Tensor, q: Tensor, theta: Tensor, alpha: Tensor, eta: Tensor,
    W: Tensor, S: Tensor, A: Tensor,
    *, start: int = 0, chunk_size: int = 1, retrieve: str = "before", loss: str = "sum",
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Eq. 13–16, linear memory ``M(k) = k W`` (``W, S, A: [B, Dk, Dv]``): ``-> (y, W, S, A)``."""
    y, (W,), (S,), (A,) = memory_sequence(k, v, q, theta, alpha, eta, (W,), (S,), (A,), start=start,
                                          chunk_size=chunk_size, retrieve=retrieve, loss=loss)
    return y, W, S, A


def memory_mlp(
    k: Tensor, v: Tensor, q: Tensor, theta: Tensor, alpha: Tensor, eta: Tensor,
    W1: Tensor, W2: Tensor, S1: Tensor, S2: Tensor, A1: Tensor, A2: Tensor,
    *, start: int = 0, chunk_size: int = 1, retrieve: str = "before", loss: str = "sum",
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Eq. 13–16, two-layer MLP memory ``gelu(k W1) W2`` (``W1 [B, Dk, H]``, ``W2 [B, H, Dv]``)."""
    y, (W1, W2), (S1, S2), (A1, A2) = memory_sequence(k, v, q, theta, alpha, eta, (W1, W2), (S1, S2), (A1, A2),
                                                      start=start, chunk_size=chunk_size, retrieve=retrieve, loss=loss)
    return y, W1, W2, S1, S2, A1, A2
