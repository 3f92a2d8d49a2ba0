"""Single steps of the Titans memory update (arXiv 2501.00663, Eq. 13, 14, 17, 18), linear memory, row vectors.

For the linear memory ``M(k) = k W`` the gradient of Eq. 12 is ``∇_W ℓ(W; k, v) = 2c k^T (k W − v)``
(c = 1 for ``loss="sum"``, ``1/Dv`` for ``"mean"``).
"""

import torch
from torch import Tensor

from implementations.titans.memory import loss_scale
from implementations.titans.scan import linear_scan


def _check(name: str, t: Tensor, shape: tuple[int, ...]) -> None:
    if tuple(t.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(t.shape)}")


def _check_linear(W: Tensor, k: Tensor, v: Tensor) -> None:
    if W.dim() != 3:
        raise ValueError(f"W must be [B, Dk, Dv], got shape {tuple(W.shape)}")
    batch, dim_k, dim_v = W.shape
    _check("k", k, (batch, *k.shape[1:-1], dim_k))
    _check("v", v, (*k.shape[:-1], dim_v))


def momentum_step(S: Tensor, W: Tensor, k: Tensor, v: Tensor, theta: Tensor, eta: Tensor, loss: str = "sum") -> Tensor:
    """Eq. 14 for one token: ``S_t = η_t S_{t−1} − θ_t ∇ℓ(W; k_t, v_t)``.

    ``[B, Dk, Dv], [B, Dk, Dv], [B, Dk], [B, Dv], [B], [B] -> S_t [B, Dk, Dv]``.

    >>> W = torch.zeros(1, 2, 2); k = torch.tensor([[1.0, 0.0]]); v = torch.tensor([[0.0, 1.0]])
    >>> momentum_step(torch.zeros(1, 2, 2), W, k, v, torch.tensor([0.5]), torch.tensor([0.9]))
    tensor([[[0., 1.],
             [0., 0.]]])
    """
    _check_linear(W, k, v)
    if k.dim() != 2:
        raise ValueError(f"k must be [B, Dk], got shape {tuple(k.shape)}")
    batch = W.shape[0]
    _check("S", S, tuple(W.shape))
    _check("theta", theta, (batch,))
    _check("eta", eta, (batch,))
    scale = 2.0 * loss_scale(loss, v.shape[-1])
    error = (k.unsqueeze(1) @ W).squeeze(1) - v  # rows [B, 1, Dk] @ [B, Dk, Dv] -> [B, Dv]
    grad = scale * k.unsqueeze(2) * error.unsqueeze(1)  # k^T e, [B, Dk, Dv]
    return eta.reshape(batch, 1, 1) * S - theta.reshape(batch, 1, 1) * grad  # gates [B] -> [B, 1, 1]


def forget_step(W: Tensor, S: Tensor, alpha: Tensor) -> Tensor:
    """Eq. 13: ``M_t = (1 − α_t) M_{t−1} + S_t``: ``[B, Dk, Dv], [B, Dk, Dv], [B] -> [B, Dk, Dv]``.

    >>> forget_step(torch.ones(1, 1, 1), torch.ones(1, 1, 1), torch.tensor([0.25]))
    tensor([[[1.7500]]])
    """
    if W.dim() != 3:
        raise ValueError(f"W must be [B, Dk, Dv], got shape {tuple(W.shape)}")
    _check("S", S, tuple(W.shape))
    _check("alpha", alpha, (W.shape[0],))
    return (1.0 - alpha).reshape(-1, 1, 1) * W + S  # [B] -> [B, 1, 1]


def chunk_gradient_sum(k: Tensor, v: Tensor, W: Tensor, theta: Tensor, alpha: Tensor, loss: str = "sum") -> Tensor:
    """Eq. 17: ``Σ_i θ_i (β_b/β_i) ∇ℓ(W; k_i, v_i)`` over a chunk of b tokens, ``β_i = Π_{j≤i} (1 − α_j)``, as matmuls.

    ``[B, b, Dk], [B, b, Dv], [B, Dk, Dv], [B, b], [B, b] -> [B, Dk, Dv]``. The ratio ``β_b/β_i = Π_{i<j≤b} (1 − α_j)``
    is a reversed cumulative product (no division, so exact where some ``α_j = 1``); the sum is
    ``2c K^T diag(θ β_b/β) (K W − V)``.
    """
    if k.dim() != 3:
        raise ValueError(f"k must be [B, b, Dk], got shape {tuple(k.shape)}")
    _check_linear(W, k, v)
    _check("theta", theta, tuple(k.shape[:2]))
    _check("alpha", alpha, tuple(k.shape[:2]))
    scale = 2.0 * loss_scale(loss, v.shape[-1])
    keep = 1.0 - alpha  # [B, b]
    later = torch.cat((keep[:, 1:], keep.new_ones(keep.shape[0], 1)), 1)  # (1 − α_{i+1}), last 1, [B, b]
    ratio = later.flip(1).cumprod(1).flip(1)  # β_b/β_i, [B, b]
    error = k @ W - v  # [B, b, Dv]
    return scale * k.transpose(1, 2) @ ((theta * ratio).unsqueeze(-1) * error)  # [B, Dk, Dv]


def momentum_scan(eta: Tensor, theta: Tensor, u: Tensor, S: Tensor) -> Tensor:
    """Eq. 18: every ``S_t = η_t S_{t−1} − θ_t u_t`` as an associative scan from ``S`` (the state before token 0).

    ``[B, T], [B, T], [B, T, N], [B, N] -> [B, T, N]``.

    >>> momentum_scan(torch.tensor([[0.5, 0.5]]), torch.ones(1, 2), torch.ones(1, 2, 1), torch.ones(1, 1))
    tensor([[[-0.5000],
             [-1.2500]]])
    """
    if eta.dim() != 2:
        raise ValueError(f"eta must be [B, T], got shape {tuple(eta.shape)}")
    _check("theta", theta, tuple(eta.shape))
    if u.dim() != 3 or u.shape[:2] != eta.shape:
        raise ValueError(f"u must be [B, T, N] with [B, T] = {tuple(eta.shape)}, got shape {tuple(u.shape)}")
    _check("S", S, (u.shape[0], u.shape[2]))
    return linear_scan(eta, -theta.unsqueeze(-1) * u, S)
