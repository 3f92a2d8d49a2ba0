"""First-order linear recurrences as an associative scan (Titans, arXiv 2501.00663, Eq. 18).

``h_t = a_t h_{t-1} + b_t`` over the time axis, with an initial state ``h_{-1}``. The pairs ``(a, b)`` compose
associatively, ``(a1, b1) then (a2, b2) = (a2 a1, a2 b1 + b2)``, so the recurrence is a prefix scan: here the
Hillis–Steele form, ``ceil(log2 T)`` steps, each one elementwise multiply-add over the whole time axis. It serves
the momentum (Eq. 18: ``a_t = η_t``, ``b_t = −θ_t u_t``) and the forgetting (Eq. 13: ``a_t = 1 − α_t``,
``b_t = S_t``). Built from out-of-place torch ops only, so it is differentiable to any order.
"""

import torch
from torch import Tensor


def linear_scan(a: Tensor, b: Tensor, h0: Tensor | None = None) -> Tensor:
    """Every ``h_t = a_t h_{t-1} + b_t`` for t = 0..T-1, with ``h_{-1} = h0`` (zero when None).

    ``a``: ``[B, T]``, ``b``: ``[B, T, *N]``, ``h0``: ``[B, *N]`` -> ``h``: ``[B, T, *N]``.

    >>> a = torch.tensor([[0.5, 2.0, 0.0, 3.0]])
    >>> b = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    >>> linear_scan(a, b, torch.tensor([4.0]))
    tensor([[3., 7., 1., 4.]])
    """
    if a.dim() != 2:
        raise ValueError(f"a must be [B, T], got shape {tuple(a.shape)}")
    if b.dim() < 2 or b.shape[:2] != a.shape:
        raise ValueError(f"b must be [B, T, ...] with [B, T] = {tuple(a.shape)}, got shape {tuple(b.shape)}")
    if h0 is not None and h0.shape != b.shape[:1] + b.shape[2:]:
        raise ValueError(f"h0 must be [B, ...] = {tuple(b.shape[:1] + b.shape[2:])}, got shape {tuple(h0.shape)}")
    batch, steps = a.shape
    trailing = (1,) * (b.dim() - 2)  # coef [B, T] -> [B, T, 1...] to scale b's trailing dims
    coef, acc = a, b  # coef[t] = Π a over the segment ending at t; acc[t] = its h with a zero start
    offset = 1
    while offset < steps:
        coef_prev = torch.cat([coef.new_ones(batch, offset), coef[:, :-offset]], dim=1)  # [B, T]
        acc_prev = torch.cat([acc.new_zeros((batch, offset) + acc.shape[2:]), acc[:, :-offset]], dim=1)  # [B, T, *N]
        acc = coef.reshape(batch, steps, *trailing) * acc_prev + acc  # [B, T, *N]
        coef = coef * coef_prev
        offset *= 2
    if h0 is None:
        return acc
    return acc + coef.reshape(batch, steps, *trailing) * h0.unsqueeze(1)  # [B, T, *N]


def decay_matrix(a: Tensor) -> Tensor:
    """The scan's transfer matrix: ``P[t, s] = Π_{s<j≤t} a_j`` for s ≤ t, 0 above the diagonal.

    ``a``: ``[B, T]`` -> ``[B, T, T]``, with ``h_t = Σ_s P[t, s] b_s`` the scan from a zero state. Computed by
    scanning the identity (no division, so exact where some ``a_j = 0``).

    >>> decay_matrix(torch.tensor([[1.0, 0.5, 0.0]]))
    tensor([[[1.0000, 0.0000, 0.0000],
             [0.5000, 1.0000, 0.0000],
             [0.0000, 0.0000, 1.0000]]])
    """
    batch, steps = a.shape
    eye = torch.eye(steps, dtype=a.dtype, device=a.device).expand(batch, steps, steps)  # [B, T(time), T(source)]
    return linear_scan(a, eye)
