"""Titans' projections (arXiv 2501.00663, Eq. 11 and 15) and retrieval, in row-vector form (docs/titans.md).

Eq. 11: ``k_t = x_t W_K``, ``v_t = x_t W_V``; Eq. 15: ``q_t = x_t W_Q``, ``y_t = M*(q_t)`` — a forward pass of the
memory with no update.
"""

from torch import Tensor

from implementations.titans.memory import memory_forward


def _check_x(x: Tensor, name: str, w: Tensor) -> None:
    if x.dim() != 3:
        raise ValueError(f"x must be [B, T, D], got shape {tuple(x.shape)}")
    if w.dim() != 2 or w.shape[0] != x.shape[-1]:
        raise ValueError(f"{name} must be [D, d] with D = {x.shape[-1]}, got shape {tuple(w.shape)}")


def keys_values(x: Tensor, W_K: Tensor, W_V: Tensor) -> tuple[Tensor, Tensor]:
    """Eq. 11: ``[B, T, D], [D, Dk], [D, Dv] -> (k [B, T, Dk], v [B, T, Dv])``.

    >>> import torch
    >>> k, v = keys_values(torch.ones(1, 2, 3), torch.ones(3, 4), torch.ones(3, 5))
    >>> k.shape, v.shape
    (torch.Size([1, 2, 4]), torch.Size([1, 2, 5]))
    """
    _check_x(x, "W_K", W_K)
    _check_x(x, "W_V", W_V)
    return x @ W_K, x @ W_V


def _check_memory(q: Tensor, weights: tuple[Tensor, ...]) -> None:
    d_in = q.shape[-1]
    for layer, w in enumerate(weights):
        if w.dim() != 3 or w.shape[0] != q.shape[0] or w.shape[1] != d_in:
            expected = f"[{q.shape[0]}, {d_in}, d_out]"
            raise ValueError(f"memory weight {layer + 1} must be {expected}, got shape {tuple(w.shape)}")
        d_in = w.shape[2]


def retrieve(x: Tensor, W_Q: Tensor, weights: tuple[Tensor, ...]) -> Tensor:
    """Eq. 15 for a memory of any depth: ``q = x @ W_Q``, ``y = M(q)`` with weights ``[B, d_in, d_out]`` per layer."""
    _check_x(x, "W_Q", W_Q)
    q = x @ W_Q  # [B, T, Dk]
    _check_memory(q, weights)
    return memory_forward(q, weights)


def retrieve_linear(x: Tensor, W_Q: Tensor, W: Tensor) -> Tensor:
    """Eq. 15, linear memory: ``[B, T, D], [D, Dk], [B, Dk, Dv] -> y = (x W_Q) W  [B, T, Dv]``.

    >>> import torch
    >>> retrieve_linear(torch.ones(2, 3, 4), torch.ones(4, 5), torch.ones(2, 5, 6)).shape
    torch.Size([2, 3, 6])
    """
    return retrieve(x, W_Q, (W,))


def retrieve_mlp(x: Tensor, W_Q: Tensor, W1: Tensor, W2: Tensor) -> Tensor:
    """Eq. 15, two-layer MLP memory: ``y = gelu((x W_Q) W1) W2``, ``W1 [B, Dk, H]``, ``W2 [B, H, Dv]``."""
    return retrieve(x, W_Q, (W1, W2))
