"""Deliberately wrong implementations that the gradient audit (``conformance audit-grads``) must catch.

Spec ``surprise`` (Titans Eq. 12, ``compute_surprise(hidden, memory_pred) = ((hidden - memory_pred)**2).sum(-1)``,
twice differentiable): each custom Function has a right forward and a backward wrong in exactly one way. Spec
``rmsnorm`` (a module): a parameter the forward never uses. Spec ``memory_linear`` (Titans Eq. 13–16, whose
oracle is the reference function ``specs/titans_reference.py:memory_linear``): the shipped recurrence with one
input's gradient wrong at low precision only, through an identity whose backward is wrong. Each docstring says
which check catches it; ``tests/test_grad_audit_checks.py`` and ``tests/test_reference_gradient.py`` assert that
it does, and that its message names the defect.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from implementations.rmsnorm import RMSNorm
from implementations.titans import memory_linear

FLOAT16_PAST_MAX = 1.0e5  # above float16's largest finite value (65504)


class _Eq12(torch.autograd.Function):
    """Eq. 12's forward; the backward ``factor · 2(h − m) · g`` for hidden and ``sign · ...`` for memory_pred, rebuilt
    from the saved inputs (twice differentiable); ``use_grad_output`` false ignores the incoming gradient ``g``."""

    @staticmethod
    def forward(ctx: Any, hidden: Tensor, memory_pred: Tensor, factor: float, sign: float, use_grad_output: bool) -> Tensor:
        ctx.save_for_backward(hidden, memory_pred)
        ctx.factor, ctx.sign, ctx.use_grad_output = factor, sign, use_grad_output
        return (hidden - memory_pred).pow(2).sum(dim=-1)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        hidden, memory_pred = ctx.saved_tensors
        g = grad_output.unsqueeze(-1) if ctx.use_grad_output else torch.ones_like(grad_output).unsqueeze(-1)
        grad_hidden = ctx.factor * 2 * (hidden - memory_pred) * g
        return grad_hidden, ctx.sign * grad_hidden, None, None, None


def wrong_factor(hidden: Tensor, memory_pred: Tensor) -> Tensor:
    """Backward 6(h − m)·g instead of 2(h − m)·g. Caught by: ``gradient``, ``gradcheck``, ``grad_options``."""
    return _Eq12.apply(hidden, memory_pred, 3.0, -1.0, True)


def wrong_sign(hidden: Tensor, memory_pred: Tensor) -> Tensor:
    """Backward +2(h − m)·g for memory_pred (right: −2(h − m)·g). Caught by: ``gradient``, ``gradcheck``, ``grad_options``."""
    return _Eq12.apply(hidden, memory_pred, 1.0, 1.0, True)


def ignores_grad_output(hidden: Tensor, memory_pred: Tensor) -> Tensor:
    """Backward 2(h − m), the incoming gradient g dropped (right for g = 1 only). Caught by: ``gradient``
    (a random cotangent), ``gradcheck`` and ``grad_options`` (torch: "backward not multiplied by grad_output")."""
    return _Eq12.apply(hidden, memory_pred, 1.0, -1.0, False)


class WrongCountFunction(torch.autograd.Function):
    """Eq. 12 whose backward returns one gradient (for hidden) though forward has two inputs."""

    @staticmethod
    def forward(ctx: Any, hidden: Tensor, memory_pred: Tensor) -> Tensor:
        ctx.save_for_backward(hidden, memory_pred)
        return (hidden - memory_pred).pow(2).sum(dim=-1)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> Tensor:
        hidden, memory_pred = ctx.saved_tensors
        return 2 * (hidden - memory_pred) * grad_output.unsqueeze(-1)


def wrong_gradient_count(hidden: Tensor, memory_pred: Tensor) -> Tensor:
    """Backward returns 1 gradient for 2 inputs (torch raises at backward). Caught by: ``autograd_functions``,
    which names the class and both numbers."""
    return WrongCountFunction.apply(hidden, memory_pred)


class SurpriseFunction(torch.autograd.Function):
    """The guide's SurpriseFunction: ``diff`` computed in forward (grad mode off) and saved, so the backward's
    ``2 · diff · g`` has no graph back to the inputs: first derivative right, second derivative 0."""

    @staticmethod
    def forward(ctx: Any, hidden: Tensor, memory_pred: Tensor) -> Tensor:
        diff = hidden - memory_pred
        ctx.save_for_backward(diff)
        return (diff**2).sum(dim=-1)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, Tensor]:
        (diff,) = ctx.saved_tensors
        grad = 2 * diff * grad_output.unsqueeze(-1)
        return grad, -grad


def not_twice_differentiable(hidden: Tensor, memory_pred: Tensor) -> Tensor:
    """The guide's compute_surprise. Caught by: ``gradgradcheck`` and ``autograd_functions`` (spec grad_order 2)."""
    return SurpriseFunction.apply(hidden, memory_pred)


class _Float16Overflow(torch.autograd.Function):
    """Eq. 12 whose backward scales an intermediate by 1e5 and back: exact in float64, inf in float16."""

    @staticmethod
    def forward(ctx: Any, hidden: Tensor, memory_pred: Tensor) -> Tensor:
        ctx.save_for_backward(hidden, memory_pred)
        return (hidden - memory_pred).pow(2).sum(dim=-1)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, Tensor]:
        hidden, memory_pred = ctx.saved_tensors
        scaled = (hidden - memory_pred) * FLOAT16_PAST_MAX  # past float16's max: inf
        grad = 2 * scaled * grad_output.unsqueeze(-1) / FLOAT16_PAST_MAX
        return grad, -grad


def overflows_in_float16(hidden: Tensor, memory_pred: Tensor) -> Tensor:
    """Right gradient in float64 and float32, inf in float16. Caught by: ``gradient`` at float16 (only)."""
    return _Float16Overflow.apply(hidden, memory_pred)


class UnusedParameter(RMSNorm):
    """RMSNorm with a learned ``bias`` the forward never adds. Caught by: ``param_flow`` ("parameter bias is unused")."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__(dim, eps)
        self.bias = torch.nn.Parameter(torch.zeros(dim))


# -- the Titans memory (a reference-only oracle): right forward, a backward wrong at low precision only -----------
class _Float16OverflowGrad(torch.autograd.Function):
    """The identity, whose backward scales the incoming gradient by 1e5 and back: exact in float64, float32 and
    bfloat16 (whose range holds 1e5), inf in float16 wherever |gradient| > 0.65."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        return x.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return grad * FLOAT16_PAST_MAX / FLOAT16_PAST_MAX


class _Bfloat16Grad(torch.autograd.Function):
    """The identity, whose backward rounds the incoming gradient to bfloat16 (a reduced-precision gradient buffer):
    exact in bfloat16 itself, 8 bits of mantissa in float32 and float64."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        return x.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return grad.to(torch.bfloat16).to(grad.dtype)


def memory_linear_w_grad_overflows(k: Tensor, v: Tensor, q: Tensor, theta: Tensor, *args: Tensor, **kwargs: Any) -> Any:
    """The shipped ``memory_linear``, with the gradient reaching ``W`` (the memory's initial state) through a
    backward that overflows in float16. Caught by: ``gradient`` at float16 (only; ``W_T → ∂/∂W``)."""
    alpha, eta, W, *rest = args
    return memory_linear(k, v, q, theta, alpha, eta, _Float16OverflowGrad.apply(W), *rest, **kwargs)


def memory_linear_k_grad_in_bfloat16(k: Tensor, *args: Tensor, **kwargs: Any) -> Any:
    """The shipped ``memory_linear``, with the gradient reaching the keys ``k`` rounded to bfloat16. Caught by:
    ``gradient`` at float64 and float32 (``→ ∂/∂k``); right in bfloat16 itself, and within float16's tolerance
    (bfloat16 keeps 8 significant bits to float16's 11: a few float16 ulps)."""
    return memory_linear(_Bfloat16Grad.apply(k), *args, **kwargs)
