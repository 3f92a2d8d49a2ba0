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
- ``method="chunk_scan"`` (linear memory only): with every chunk's anchor the memory entering it, a chunk's end
  state is affine in its entering state, so the chunks themselves are a first-order recurrence with
  ``2Dk × 2Dk`` matrices, scanned in log depth; all chunks are then read at once (``_sequence_chunk_scan``).

A partial first chunk (``start % C != 0``) uses the anchor ``A`` given; a partial last chunk just ends the call,
and its anchor is returned so that the next call (``start`` + T) continues it.
"""

from typing import NamedTuple

import torch
from torch import Tensor

from implementations.titans.memory import gelu, gradient_factors, loss_scale, memory_forward, token_gradients
from implementations.titans.scan import decay_matrix, linear_scan

RETRIEVES = ("before", "after")
METHODS = ("factored", "per_token", "chunk_scan")

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


def _batched_coefficients(
    k: Tensor, v: Tensor, q: Tensor, theta: Tensor, alpha: Tensor, eta: Tensor, bounds: list[tuple[int, int]],
    chunk_size: int, retrieve: str,
) -> tuple[_Coefficients, tuple[Tensor, Tensor, Tensor], Tensor]:
    """Every chunk's coefficients at once: nothing here depends on the memory, so it is batched over chunks.

    Each chunk's gates are padded at its end to the longest chunk's length (θ = α = η = 0 there). The transfer matrices are
    lower-triangular and row ``t`` involves only gates ``≤ t``, so a chunk's leading ``(n+1) × (n+1)`` corner is
    exactly its own matrix whatever the padding. Returns the coefficients ``[B, nch, …]`` (``c_w``, ``c_s``
    ``[B, nch, C, 1]``; ``attn``, ``c_u`` ``[B, nch, C, C]``; end scalars ``[B, nch, 1, 1]``; ``end_u``, ``mom_u``
    ``[B, nch, C, 1]``), the padded ``(k, v, q)`` ``[B, nch, C, d]`` and the padding mask ``[nch, C]``.
    """
    batch, steps = theta.shape
    chunks, size = len(bounds), max(i1 - i0 for i0, i1 in bounds)  # padded to the call's longest chunk (≤ C)
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
    co = _Coefficients(  # [B, nch, C] -> [B, nch, C, 1] and end scalars [B, nch] -> [B, nch, 1, 1]
        c_w[..., None], c_s[..., None], attn, c_u, end_w[..., None, None], end_s[..., None, None], end_u[..., None],
        mom_s[..., None, None], mom_u[..., None],
    )
    return co, (padded(k), padded(v), padded(q)), valid


def _coefficients(
    k: Tensor, q: Tensor, theta: Tensor, alpha: Tensor, eta: Tensor, bounds: list[tuple[int, int]], chunk_size: int,
    retrieve: str,
) -> list[_Coefficients]:
    """``_batched_coefficients`` chunk by chunk, cut to each chunk's length ``n`` (``[B, n, 1]``, ``[B, n, n]``)."""
    co, _, _ = _batched_coefficients(k, k[..., :1], q, theta, alpha, eta, bounds, chunk_size, retrieve)
    out = []
    for (i0, i1), parts in zip(bounds, zip(*(t.unbind(1) for t in co), strict=True), strict=True):
        n = i1 - i0
        cw, cs, at, cu, ew, es, eu, ms, mu = parts
        out.append(_Coefficients(cw[:, :n], cs[:, :n], at[:, :n, :n], cu[:, :n, :n], ew, es, eu[:, :n], ms, mu[:, :n]))
    return out


def _affine_scan(T: Tensor, b: Tensor, x0: Tensor) -> Tensor:
    """Every ``x_c = T_c x_{c−1} + b_c`` (matrices ``T_c``), Hillis–Steele over ``c``: ``[B, n, m, m], [B, n, m, d],
    [B, m, d] -> [B, n, m, d]``; ``(T1, b1) then (T2, b2) = (T2 T1, T2 b1 + b2)``."""
    batch, steps, m, _ = T.shape
    eye = torch.eye(m, dtype=T.dtype, device=T.device).expand(batch, 1, m, m)  # [B, 1, m, m]
    offset = 1
    while offset < steps:
        T_prev = torch.cat((eye.expand(batch, offset, m, m), T[:, :-offset]), 1)  # [B, n, m, m]
        b_prev = torch.cat((b.new_zeros(batch, offset, *b.shape[2:]), b[:, :-offset]), 1)  # [B, n, m, d]
        b = torch.baddbmm(b.flatten(0, 1), T.flatten(0, 1), b_prev.flatten(0, 1)).reshape(b.shape)  # T b' + b, [B, n, m, d]
        T = T @ T_prev
        offset *= 2
    return T @ x0.unsqueeze(1) + b  # [B, n, m, d]


def _sequence_chunk_scan(
    k: Tensor, v: Tensor, q: Tensor, theta: Tensor, alpha: Tensor, eta: Tensor, W: Tensor, S: Tensor,
    bounds: list[tuple[int, int]], chunk_size: int, retrieve: str, loss: str,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Linear memory, every chunk aligned to the grid (its anchor is the memory entering it): the chunks at once.

    With ``A = W`` the chunk's error is ``e = 2c(K W − V)``, so its end state is affine in the entering one:
    ``W' = (D[n,0] I − 2c K^T diag(Gθ) K) W + G[n,0] S + 2c K^T diag(Gθ) V`` and
    ``S' = −2c K^T diag(Fθ) K W + F[n,0] S + 2c K^T diag(Fθ) V`` — a first-order recurrence over chunks with
    ``2Dk × 2Dk`` matrices, scanned in ``log2(#chunks)`` steps; then every chunk is read from its entering state
    as in the factored form. Exact in exact arithmetic; more flops than the chunk loop, far fewer steps.
    """
    dim_k = k.shape[2]
    co, (k_p, v_p, q_p), valid = _batched_coefficients(k, v, q, theta, alpha, eta, bounds, chunk_size, retrieve)
    two = 2.0 * loss_scale(loss, v.shape[-1])
    eye = torch.eye(dim_k, dtype=k.dtype, device=k.device)  # [Dk, Dk]
    kg, kf = k_p * co.end_u, k_p * co.mom_u  # diag(Gθ) K, diag(Fθ) K: [B, nch, C, Dk]
    t_ww = co.end_w * eye - two * kg.transpose(-1, -2) @ k_p  # [B, nch, Dk, Dk]
    t_sw = -two * kf.transpose(-1, -2) @ k_p
    t_ws, t_ss = co.end_s * eye, co.mom_s * eye  # [B, nch, Dk, Dk]
    trans = torch.cat((torch.cat((t_ww, t_ws), -1), torch.cat((t_sw, t_ss), -1)), -2)  # [B, nch, 2Dk, 2Dk]
    shift = two * torch.cat((kg.transpose(-1, -2) @ v_p, kf.transpose(-1, -2) @ v_p), -2)  # [B, nch, 2Dk, Dv]
    after = _affine_scan(trans, shift, torch.cat((W, S), -2))  # [W; S] after each chunk, [B, nch, 2Dk, Dv]
    entering = torch.cat((torch.cat((W, S), -2).unsqueeze(1), after[:, :-1]), 1)  # [B, nch, 2Dk, Dv]
    w_in, s_in = entering[..., :dim_k, :], entering[..., dim_k:, :]  # [B, nch, Dk, Dv]
    error = two * (k_p @ w_in - v_p)  # δ at the anchor, [B, nch, C, Dv]
    y_p = co.c_w * (q_p @ w_in) + co.c_s * (q_p @ s_in) - co.attn @ error  # [B, nch, C, Dv]
    y = y_p[:, valid]  # the real tokens in order: [B, nch, C, Dv] -> [B, T, Dv]
    return y, after[:, -1, :dim_k], after[:, -1, dim_k:], w_in[:, -1]


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
    if method == "chunk_scan":
        if len(W) != 1:
            raise ValueError(f"method='chunk_scan' is for the linear memory (depth 1), got depth {len(W)}")
        opts = {"chunk_size": chunk_size, "retrieve": retrieve, "loss": loss}
        if start % chunk_size:  # a partial first chunk reads the given anchor: the chunk loop takes it
            n = bounds[0][1]
            y0, W, S, A = memory_sequence(*(t[:, :n] for t in (k, v, q, theta, alpha, eta)), W, S, A, start=start, **opts)
            if n == k.shape[1]:
                return y0, W, S, A
            y1, W, S, A = memory_sequence(*(t[:, n:] for t in (k, v, q, theta, alpha, eta)), W, S, A,
                                          start=start + n, method=method, **opts)
            return torch.cat((y0, y1), 1), W, S, A
        y, w, s, a = _sequence_chunk_scan(k, v, q, theta, alpha, eta, W[0], S[0], bounds, chunk_size, retrieve, loss)
        return y, (w,), (s,), (a,)
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
