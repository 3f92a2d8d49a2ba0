"""Titans surprise, Behrouz, Zhong & Mirrokni 2024 (arXiv 2501.00663), Eq. 12.

Associative-memory loss per token:

    surprise = ||h - M(k)||_2^2 = sum_d (hidden_d - memory_pred_d)^2

The backward is itself differentiable (Titans' outer loop differentiates
through this gradient): it is rebuilt from the saved inputs with torch ops.
"""

from typing import Any

import torch
from torch import Tensor


class SurpriseFunction(torch.autograd.Function):
    """Eq. 12 with an explicit, twice-differentiable backward.

    >>> h = torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True)
    >>> m = torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True)
    >>> torch.autograd.gradgradcheck(SurpriseFunction.apply, (h, m))
    True
    """

    @staticmethod
    def forward(ctx: Any, hidden: Tensor, memory_pred: Tensor) -> Tensor:
        ctx.save_for_backward(hidden, memory_pred)
        return (hidden - memory_pred).pow(2).sum(dim=-1)  # (...,)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, Tensor | None]:
        hidden, memory_pred = ctx.saved_tensors
        if not any(ctx.needs_input_grad):
            return None, None
        # Recomputed from the saved inputs (not saved from forward, where grad
        # mode is off) so that with create_graph=True it links to the inputs.
        diff = hidden - memory_pred  # (..., D)
        grad_hidden = 2 * diff * grad_output.unsqueeze(-1)  # (..., D)
        return (
            grad_hidden if ctx.needs_input_grad[0] else None,
            -grad_hidden if ctx.needs_input_grad[1] else None,
        )


def compute_surprise(hidden: Tensor, memory_pred: Tensor) -> Tensor:
    """Eq. 12 per token: (..., D), (..., D) -> (...,).

    >>> compute_surprise(torch.ones(2, 3), torch.zeros(2, 3))
    tensor([3., 3.])
    """
    if hidden.shape != memory_pred.shape:
        shapes = f"{tuple(hidden.shape)} vs {tuple(memory_pred.shape)}"
        raise ValueError(f"hidden and memory_pred shapes differ: {shapes}")
    if hidden.dim() == 0:
        raise ValueError("hidden must have at least 1 dim (..., D), got a 0-d tensor")
    return SurpriseFunction.apply(hidden, memory_pred)
