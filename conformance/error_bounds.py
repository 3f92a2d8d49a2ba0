"""Magnitude of the terms a gradient is summed from: the scale of its rounding noise.

Where terms cancel (RMSNorm's ∂/∂x at D = 1, attention's ∂/∂Q when one key takes all the
weight), the exact gradient is tiny or zero, but every implementation's rounding error scales
with the terms, not with the result. :class:`AbsBoundBackend` evaluates the oracle expression in
float64 with a backward pass that propagates absolute values (|∂f/∂x|·|g| at every operation), so
the vector-Jacobian product of |cotangent| bounds the sum of the magnitudes of all terms — the
classic running error bound. The gradient check's noise floor is taken at that scale.

>>> import torch
>>> from conformance.evaluate import evaluate
>>> from conformance.expr import parse
>>> x = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
>>> y = evaluate(parse("x**2 - 2*x"), {"x": x}, AbsBoundBackend(torch.float64))
>>> torch.autograd.grad(y, x, torch.ones(1, dtype=torch.float64))[0]  # d/dx = 2x − 2 = 0; terms 2 + 2
tensor([4.], dtype=torch.float64)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from conformance.evaluate_torch import TORCH_FUNCTIONS, TorchBackend
from conformance.functions import ExprFunction


def _unbroadcast(grad: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    return grad.sum_to_size(shape) if grad.shape != shape else grad


class _AbsMul(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = ctx.saved_tensors
        return _unbroadcast(g * b.abs(), a.shape), _unbroadcast(g * a.abs(), b.shape)


class _AbsPow(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        y = torch.pow(x, e)
        ctx.save_for_backward(x, e, y)
        return y

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        x, e, y = ctx.saved_tensors
        gx = _unbroadcast(g * (e * torch.pow(x, e - 1)).abs(), x.shape) if ctx.needs_input_grad[0] else None
        ge = _unbroadcast(g * (y * torch.log(x.abs())).abs(), e.shape) if ctx.needs_input_grad[1] else None  # d x^e/de
        return gx, ge


class _AbsAbs(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.abs()

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        return g  # |d|x|/dx| = 1


class _AbsMatmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = ctx.saved_tensors
        return _unbroadcast(g @ b.abs().transpose(-1, -2), a.shape), _unbroadcast(a.abs().transpose(-1, -2) @ g, b.shape)


class _AbsSoftmax(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, axis: int) -> torch.Tensor:
        y = torch.softmax(x, dim=axis)
        ctx.save_for_backward(y)
        ctx.axis = axis
        return y

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None]:
        (y,) = ctx.saved_tensors
        return y * (g + (y * g).sum(dim=ctx.axis, keepdim=True)), None  # |y (g − Σ y g)| <= y (g + Σ y g)


class _AbsCos(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return torch.cos(x)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return g * torch.sin(x).abs()


class _AbsSin(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return torch.sin(x)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return g * torch.cos(x).abs()


class _AbsUnary(torch.autograd.Function):
    """An elementwise ``fn`` whose backward is ``g · |fn'(x)|`` (``derivative`` computes fn')."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, fn: Callable[..., torch.Tensor], derivative: Callable[..., torch.Tensor]
    ) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.derivative = derivative
        return fn(x)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (x,) = ctx.saved_tensors
        return g * ctx.derivative(x).abs(), None, None


_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_HALF = math.sqrt(0.5)


def _phi(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(-0.5 * x * x) * _INV_SQRT_2PI


def _abs_erfc(b: Any, x: torch.Tensor) -> torch.Tensor:
    return _AbsUnary.apply(x, torch.special.erfc, lambda v: _TWO_OVER_SQRT_PI * torch.exp(-v * v))  # |erfc'| = 2/√π e^(−x²)


def _abs_Phi(b: Any, x: torch.Tensor) -> torch.Tensor:
    """Φ's bound: forward, the magnitude of the terms of its definition ½[1 + erf(x/√2)] — the rounding of a
    Φ computed that way is at that size, not at Φ's, deep in the lower tail — and backward |Φ'| = φ."""
    return _AbsUnary.apply(x, lambda v: 0.5 * (1 + torch.special.erf(v * _SQRT_HALF).abs()), _phi)


def _abs_phi(b: Any, x: torch.Tensor) -> torch.Tensor:
    return _AbsUnary.apply(x, _phi, lambda v: v * _phi(v))  # |φ'(x)| = |x| φ(x)


class _AbsLogSoftmax(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, axis: int) -> torch.Tensor:
        y = torch.log_softmax(x, dim=axis)
        ctx.save_for_backward(y)
        ctx.axis = axis
        return y

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None]:
        (y,) = ctx.saved_tensors
        return g + y.exp() * g.sum(dim=ctx.axis, keepdim=True), None  # |g − softmax Σ g| <= g + softmax Σ g


class _AbsCumprod(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, axis: int) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.axis = axis
        return torch.cumprod(x, dim=axis)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        with torch.enable_grad():  # Σ_k g_k Π_{j<=k, j≠i} |x_j|: cumprod's own backward at |x|
            leaf = x.detach().abs().requires_grad_(True)
            (grad,) = torch.autograd.grad(torch.cumprod(leaf, dim=ctx.axis), leaf, g)
        return grad, None


class _AbsEinsum(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, subscripts: str, *operands: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(*operands)
        ctx.subscripts = subscripts
        return TORCH_FUNCTIONS["einsum"](None, subscripts, *operands)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        # Multilinear: the partial in operand k is the einsum of g with the other operands; at their |values|
        # it is Σ |terms|, the same for every value of operand k (einsum's own backward at |operands|).
        with torch.enable_grad():
            leaves = [o.detach().abs().requires_grad_(True) for o in ctx.saved_tensors]
            grads = torch.autograd.grad(torch.einsum(ctx.subscripts, *leaves), leaves, g, allow_unused=True)
        return (None, *(torch.zeros_like(o) if d is None else d for o, d in zip(ctx.saved_tensors, grads)))


class _AbsSaturating(torch.autograd.Function):
    """tanh or sigmoid, whose backward is the magnitude of the *terms* of its derivative formula.

    Autograd computes tanh' as ``1 − y²`` and sigmoid' as ``y (1 − y)`` from the rounded output ``y``;
    where ``y`` saturates (|y| → 1) the difference cancels, and its rounding error is at the size of
    its terms, ``1 + y²`` and ``y (1 + y)``, not of the tiny result (the tanh form of GELU at |x| ≈ 7:
    an error of 9e-15 against a floor taken at |1 − y²|). Both are also bounds of |f'|.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, kind: str) -> torch.Tensor:
        y = torch.tanh(x) if kind == "tanh" else torch.sigmoid(x)
        ctx.save_for_backward(y)
        ctx.kind = kind
        return y

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None]:
        (y,) = ctx.saved_tensors
        terms = 1 + y * y if ctx.kind == "tanh" else y.abs() * (1 + y.abs())
        return g * terms, None


def _abs_tanh(b: Any, x: torch.Tensor) -> torch.Tensor:
    return _AbsSaturating.apply(x, "tanh")


def _abs_sigmoid(b: Any, x: torch.Tensor) -> torch.Tensor:
    return _AbsSaturating.apply(x, "sigmoid")


def _abs_einsum(b: Any, subscripts: str, *operands: torch.Tensor) -> torch.Tensor:
    return _AbsEinsum.apply(subscripts, *operands)


def _abs_log_softmax(b: Any, x: torch.Tensor, axis: int) -> torch.Tensor:
    return _AbsLogSoftmax.apply(x, axis)


def _abs_cumprod(b: Any, x: torch.Tensor, axis: int) -> torch.Tensor:
    return _AbsCumprod.apply(x, axis)


def _abs_var(b: Any, x: torch.Tensor, axis: int, correction: int, keepdim: bool) -> torch.Tensor:
    """Σ (x − mean x)² / (n − correction) through the backend's |partial| operators."""
    d = b.add(x, b.mul(b.const(-1.0), x.mean(dim=axis, keepdim=True)))
    return b.power(d, b.const(2.0)).sum(dim=axis, keepdim=keepdim) / (x.shape[axis] - correction)


def _abs_std(b: Any, x: torch.Tensor, axis: int, correction: int, keepdim: bool) -> torch.Tensor:
    return torch.sqrt(_abs_var(b, x, axis, correction, keepdim))


class _AbsNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, axis: int, keepdim: bool) -> torch.Tensor:
        y = TORCH_FUNCTIONS["norm"](None, x, axis, True)  # scaled: no overflow of x²
        ctx.save_for_backward(x, y)
        ctx.axis, ctx.keepdim = axis, keepdim
        return y if keepdim else y.squeeze(axis)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        x, y = ctx.saved_tensors
        g = g if ctx.keepdim else g.unsqueeze(ctx.axis)
        return g * x.abs() / torch.where(y > 0, y, torch.ones_like(y)), None, None  # |x_i| / ‖x‖ · g


def _abs_norm(b: Any, x: torch.Tensor, axis: int, keepdim: bool) -> torch.Tensor:
    return _AbsNorm.apply(x, axis, keepdim)


def _abs_abs(b: Any, x: torch.Tensor) -> torch.Tensor:
    return _AbsAbs.apply(x)


def _abs_cos(b: Any, x: torch.Tensor) -> torch.Tensor:
    return _AbsCos.apply(x)


def _abs_sin(b: Any, x: torch.Tensor) -> torch.Tensor:
    return _AbsSin.apply(x)


def _abs_matmul(b: Any, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return _AbsMatmul.apply(x, y)


def _abs_softmax(b: Any, x: torch.Tensor, axis: int) -> torch.Tensor:
    return _AbsSoftmax.apply(x, axis)


# The ``abs_backward`` callables of conformance.functions.BUILTIN, by function name: fn(backend, *args).
ABS_BACKWARD: dict[str, Callable[..., torch.Tensor]] = {
    "abs": _abs_abs,
    "erfc": _abs_erfc,
    "phi": _abs_phi,
    "Phi": _abs_Phi,
    "cos": _abs_cos,
    "tanh": _abs_tanh,
    "sigmoid": _abs_sigmoid,
    "sin": _abs_sin,
    "matmul": _abs_matmul,
    "softmax": _abs_softmax,
    "log_softmax": _abs_log_softmax,
    "cumprod": _abs_cumprod,
    "var": _abs_var,
    "std": _abs_std,
    "norm": _abs_norm,
    "einsum": _abs_einsum,
}


class AbsBoundBackend(TorchBackend):
    """:class:`TorchBackend` whose backward propagates absolute values of every partial.

    The operators ``*`` and ``**`` are overridden here; a function uses its record's ``abs_backward``
    (:class:`~conformance.functions.ExprFunction`), or its plain ``torch`` callable where it has none:
    those (add, sqrt, exp, sums, means, max/min, where, transposes; erf, logsigmoid,
    softplus, relu, expm1, maximum, minimum, clamp: non-decreasing; logsumexp, cumsum; triu, reshape, gather: 0/1
    selections; sign, floor, round; eye, ones, zeros, one_hot: zero or none) already have
    non-negative backward maps, so a non-negative cotangent stays non-negative (``log`` and ``log1p`` too
    on their domains).
    """

    def implementation(self, fn: ExprFunction) -> Callable[..., Any]:
        """``fn``'s ``abs_backward`` callable, or its ``torch`` one where the plain backward is already a bound."""
        return fn.abs_backward if fn.abs_backward is not None else fn.torch

    def mul(self, a: Any, b: Any) -> Any:
        return _AbsMul.apply(*torch.broadcast_tensors(*self._tensors(a, b)))

    def power(self, base: Any, exponent: Any) -> Any:
        return _AbsPow.apply(*torch.broadcast_tensors(*self._tensors(base, exponent)))

    def _tensors(self, *values: Any) -> list[torch.Tensor]:
        return [v if isinstance(v, torch.Tensor) else torch.as_tensor(v, dtype=self.dtype, device=self.device) for v in values]
