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


def _chunk_factored(
    k: Tensor, v: Tensor, q: Tensor, theta: Tensor, alpha: Tensor, eta: Tensor,
    W: Weights, S: Weights, A: Weights, retrieve: str, loss: str,
) -> tuple[Tensor, Weights, Weights]:
    """One chunk (every gradient at anchor ``A``) without per-token weights; see the module docstring."""
    batch, n = theta.shape
    factors = gradient_factors(A, k, v, loss)  # per layer (a_{l-1} [B, n, d_in], δ_l [B, n, d_out])
    ones = theta.new_ones(batch, 1)
    forget = decay_matrix(torch.cat((ones, 1.0 - alpha), 1))  # D [B, n+1, n+1]: index 0 is the state entering the chunk
    moment = decay_matrix(torch.cat((ones, eta), 1))  # F [B, n+1, n+1]
    mixed = forget[:, :, 1:] @ moment[:, 1:, :]  # G = D F over s ≥ 1, [B, n+1, n+1]
    rows = slice(1, n + 1) if retrieve == "after" else slice(0, n)  # y_i reads W_i (after) or W_{i-1} (before)
    c_w = forget[:, rows, 0].unsqueeze(-1)  # [B, n, 1]
    c_s = mixed[:, rows, 0].unsqueeze(-1)  # [B, n, 1]
    c_u = mixed[:, rows, 1:] * theta.unsqueeze(1)  # [B, n(read), n(source)]
    z = q
    for layer, (w, s, (left, right)) in enumerate(zip(W, S, factors, strict=True)):
        if layer > 0:
            z = gelu(z)
        z = c_w * (z @ w) + c_s * (z @ s) - ((z @ left.transpose(1, 2)) * c_u) @ right  # [B, n, d_out]
    end_w = forget[:, n, 0].reshape(batch, 1, 1)  # [B, 1, 1]
    end_s = mixed[:, n, 0].reshape(batch, 1, 1)
    end_u = (mixed[:, n, 1:] * theta).unsqueeze(-1)  # [B, n, 1]
    mom_s = moment[:, n, 0].reshape(batch, 1, 1)
    mom_u = (moment[:, n, 1:] * theta).unsqueeze(-1)  # [B, n, 1]
    new_w = tuple(
        end_w * w + end_s * s - left.transpose(1, 2) @ (end_u * right)
        for w, s, (left, right) in zip(W, S, factors, strict=True)
    )
    new_s = tuple(mom_s * s - left.transpose(1, 2) @ (mom_u * right) for s, (left, right) in zip(S, factors, strict=True))
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
    chunk = _chunk_factored if method == "factored" else _chunk_per_token
    W, S, A = tuple(weights), tuple(momentum), tuple(anchor)
    ys = []
    for i0, i1 in chunk_bounds(start, k.shape[1], chunk_size):
        if (start + i0) % chunk_size == 0:
            A = W  # a chunk starts here: its gradients are taken at the memory before it
        y, W, S = chunk(k[:, i0:i1], v[:, i0:i1], q[:, i0:i1], theta[:, i0:i1], alpha[:, i0:i1], eta[:, i0:i1],
                        W, S, A, retrieve, loss)
        ys.append(y)
    if not ys:
        return v.new_zeros(v.shape), W, S, A
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
