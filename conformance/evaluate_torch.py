"""The torch backend of :mod:`conformance.evaluate`, and the torch callables of the builtin functions.

:class:`TorchBackend` evaluates at a chosen dtype and device: the same-precision reference that
tolerances are derived from, and (in float64, with autograd) the gradient oracle. It lives apart
from the NumPy and SymPy backends so that those never import torch.

>>> import torch
>>> from conformance.evaluate import evaluate
>>> from conformance.expr import parse
>>> evaluate(parse("sum(x**2, -1)"), {"x": torch.tensor([[3.0, 4.0]])}, TorchBackend(torch.float32))
tensor([25.])
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from conformance.functions import (
    ROUNDED_FORMATS,
    ExprFunction,
    as_shape,
    check_einsum_shapes,
    check_gather,
    check_indices,
    expr_error,
    reshape_sizes,
)

Array = Any


class TorchBackend:
    """torch tensors at ``dtype`` on ``device``; inputs must already be tensors there.

    ``definitional``: functions computed by their textbook definition, as implementations compute them
    (Φ as ½[1 + erf(x/√2)]), not by the most accurate formula (½ erfc(−x/√2)). The default: below float64
    (the same-precision reference); float64 is the gradient oracle's and the error bounds' precision, and
    accurate unless asked (the float64 reference, :meth:`conformance.checks.Trial.baselines`).
    """

    kind = "torch"

    def __init__(self, dtype: torch.dtype, device: torch.device | str = "cpu", definitional: bool | None = None) -> None:
        self.dtype = dtype
        self.device = torch.device(device)
        self.definitional = dtype != torch.float64 if definitional is None else definitional

    def implementation(self, fn: ExprFunction) -> Callable[..., Array]:
        """The callable that evaluates ``fn`` here: its ``torch`` one."""
        return fn.torch

    def const(self, value: float | bool) -> Array:
        dtype = torch.bool if isinstance(value, bool) else self.dtype
        return torch.tensor(value, dtype=dtype, device=self.device)

    add = staticmethod(torch.add)
    mul = staticmethod(torch.mul)
    mod = staticmethod(torch.remainder)
    floor = staticmethod(torch.floor)

    def power(self, base: Array, exponent: Array) -> Array:
        return torch.pow(base, exponent)

    def compare(self, op: str, a: Array, b: Array) -> Array:
        return {"==": torch.eq, "!=": torch.ne, "<": torch.lt, "<=": torch.le, ">": torch.gt, ">=": torch.ge}[op](a, b)


def _cat(b: TorchBackend, x: Array, y: Array, axis: int) -> Array:
    return torch.cat(torch.broadcast_tensors(x, y) if x.dim() != y.dim() else (x, y), dim=axis)


def _interleave(b: TorchBackend, x: Array, y: Array) -> Array:
    stacked = torch.stack(torch.broadcast_tensors(x, y), dim=-1)  # (..., n, 2)
    return stacked.flatten(-2)  # (..., 2n)


def _split_heads(b: TorchBackend, x: Array, heads: Array) -> Array:
    *lead, length, dim = x.shape
    heads = int(heads)
    return x.reshape(*lead, length, heads, dim // heads).transpose(-2, -3)  # (..., H, L, D/H)


def _merge_heads(b: TorchBackend, x: Array) -> Array:
    *lead, heads, length, dh = x.shape
    return x.transpose(-2, -3).reshape(*lead, length, heads * dh)  # (..., L, H·Dh)


def _tensors(b: TorchBackend, *values: Any) -> list[torch.Tensor]:
    """Python numbers as tensors of the backend's dtype (torch.maximum takes tensors only)."""
    return [v if isinstance(v, torch.Tensor) else torch.as_tensor(v, dtype=b.dtype, device=b.device) for v in values]


def _tril(b: TorchBackend, rows: Array, cols: Array) -> Array:
    return torch.ones(int(rows), int(cols), dtype=torch.bool, device=b.device).tril()


def _index(fn: str, index: Array, size: int) -> Array:
    """An integer-valued index tensor (any dtype but bool) as int64, checked against ``size`` as NumPy's is."""
    if not isinstance(index, torch.Tensor) or index.dtype == torch.bool:
        raise expr_error(f"{fn}(): an index must be an integer-valued tensor, got {index!r}")
    check_indices(fn, index.detach().to("cpu", torch.float64).numpy(), size)
    return index.detach().long()


def _triu(b: TorchBackend, x: Array, k: int) -> Array:
    if x.dim() < 2:
        raise expr_error(f"triu(): x must have at least 2 dimensions, got {x.dim()}")
    return torch.triu(x, k)


def _full(name: str, fill: float) -> Callable[..., Array]:
    return lambda b, *sizes: torch.full(as_shape(name, sizes), fill, dtype=b.dtype, device=b.device)


def _one_hot(b: TorchBackend, index: Array, n: Array) -> Array:
    size = as_shape("one_hot", (n,), 1)[0]
    index = _index("one_hot", index, size)
    as_shape("one_hot", (*index.shape, size))
    return F.one_hot(index, size).to(b.dtype)


def _gather(b: TorchBackend, x: Array, index: Array, axis: int) -> Array:
    axis = check_gather(tuple(x.shape), tuple(index.shape), axis)
    return torch.gather(x, axis, _index("gather", index, x.shape[axis]))


def _einsum(b: TorchBackend, subscripts: str, *operands: Array) -> Array:
    check_einsum_shapes(subscripts, [tuple(o.shape) for o in operands])
    return torch.einsum(subscripts, *operands)


_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _softplus(b: TorchBackend, x: Array) -> Array:
    return torch.logaddexp(x, torch.zeros_like(x))  # exact: F.softplus returns x itself above its threshold 20


def _norm(b: TorchBackend, x: Array, axis: int, keepdim: bool) -> Array:
    """The 2-norm, scaled by max |x| so that x² neither overflows nor underflows (vector_norm's does).

    The scale is detached: the norm is homogeneous of degree 1, so the gradient through it is exactly zero.
    """
    scale = x.detach().abs().amax(dim=axis, keepdim=True)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    out = scale * torch.linalg.vector_norm(x / scale, 2, dim=axis, keepdim=True)
    return out if keepdim else out.squeeze(axis)


# Functions whose torch callable computes differently where the backend is ``definitional``.
DEFINITIONAL = frozenset({"Phi"})


def _Phi(b: Any, x: Array) -> Array:
    """Φ(x): accurately as ½ erfc(−x/√2), or — where the backend is ``definitional`` (the same-precision
    reference) — as the definition ½[1 + erf(x/√2)] that implementations compute (torch's own GELU among
    them): its lower tail cancels, 1 + erf(x/√2) ≈ 0 carrying erf's rounding at magnitude 1, and a reference
    that did not would hold a correct implementation to an accuracy it does not claim.
    """
    if getattr(b, "definitional", False):
        return 0.5 * (1 + torch.special.erf(x * _SQRT_HALF))
    return 0.5 * torch.special.erfc(-x * _SQRT_HALF)


# The ``torch`` callables of conformance.functions.BUILTIN, by function name: fn(backend, *args).
def _rounded_to(b: Any, x: torch.Tensor, *, bits: int, emin: int) -> torch.Tensor:
    """x rounded to ``bits`` significant bits (ties to even), subnormals included, in x's own dtype: the same
    arithmetic as the NumPy form (``conformance.functions``), not a cast (which may round twice, via float32)."""
    _, e = torch.frexp(x)
    e = torch.clamp(e, min=emin)
    return torch.ldexp(torch.round(torch.ldexp(x, bits - e)), e - bits)


TORCH_FUNCTIONS: dict[str, Callable[..., Array]] = {
    "sqrt": lambda b, x: torch.sqrt(x),
    "exp": lambda b, x: torch.exp(x),
    "log": lambda b, x: torch.log(x),
    "abs": lambda b, x: torch.abs(x),
    "tanh": lambda b, x: torch.tanh(x),
    "cos": lambda b, x: torch.cos(x),
    "sin": lambda b, x: torch.sin(x),
    "erf": lambda b, x: torch.special.erf(x),
    "erfc": lambda b, x: torch.special.erfc(x),
    "Phi": lambda b, x: _Phi(b, x),
    "phi": lambda b, x: torch.exp(-0.5 * x * x) * _INV_SQRT_2PI,
    "sigmoid": lambda b, x: torch.sigmoid(x),
    "logsigmoid": lambda b, x: F.logsigmoid(x),
    "softplus": _softplus,
    "relu": lambda b, x: torch.relu(x),
    "log1p": lambda b, x: torch.log1p(x),
    "expm1": lambda b, x: torch.expm1(x),
    "sign": lambda b, x: torch.sign(x),
    "floor": lambda b, x: torch.floor(x),
    "round": lambda b, x: torch.round(x),
    **{f"to_{fmt}": functools.partial(_rounded_to, bits=n, emin=lo) for fmt, (n, lo) in ROUNDED_FORMATS.items()},
    "maximum": lambda b, x, y: torch.maximum(*_tensors(b, x, y)),
    "minimum": lambda b, x, y: torch.minimum(*_tensors(b, x, y)),
    "clamp": lambda b, x, lo, hi: torch.minimum(torch.maximum(*_tensors(b, x, lo)), _tensors(b, hi)[0]),
    "sum": lambda b, x, axis, keepdim: torch.sum(x, dim=axis, keepdim=keepdim),
    "mean": lambda b, x, axis, keepdim: torch.mean(x, dim=axis, keepdim=keepdim),
    "max": lambda b, x, axis, keepdim: torch.amax(x, dim=axis, keepdim=keepdim),
    "min": lambda b, x, axis, keepdim: torch.amin(x, dim=axis, keepdim=keepdim),
    "softmax": lambda b, x, axis: torch.softmax(x, dim=axis),
    "logsumexp": lambda b, x, axis, keepdim: torch.logsumexp(x, dim=axis, keepdim=keepdim),
    "log_softmax": lambda b, x, axis: torch.log_softmax(x, dim=axis),
    "var": lambda b, x, axis, correction, keepdim: torch.var(x, dim=axis, correction=correction, keepdim=keepdim),
    "std": lambda b, x, axis, correction, keepdim: torch.std(x, dim=axis, correction=correction, keepdim=keepdim),
    "cumsum": lambda b, x, axis: torch.cumsum(x, dim=axis),
    "cumprod": lambda b, x, axis: torch.cumprod(x, dim=axis),
    "norm": _norm,
    "transpose": lambda b, x: x.transpose(-1, -2),
    "unsqueeze": lambda b, x, axis: x.unsqueeze(axis),
    "where": lambda b, c, x, y: torch.where(c, x, y),
    "tril": _tril,
    "triu": _triu,
    "eye": lambda b, n: torch.eye(as_shape("eye", (n, n), 1)[0], dtype=b.dtype, device=b.device),
    "ones": _full("ones", 1.0),
    "zeros": _full("zeros", 0.0),
    "reshape": lambda b, x, *sizes: x.reshape(reshape_sizes(x.numel(), sizes)),
    "one_hot": _one_hot,
    "gather": _gather,
    "einsum": _einsum,
    "arange": lambda b, n: torch.arange(int(n), dtype=b.dtype, device=b.device),
    "cat": _cat,
    "interleave": _interleave,
    "split_heads": _split_heads,
    "merge_heads": _merge_heads,
    "matmul": lambda b, x, y: torch.matmul(x, y),
    "logical_and": lambda b, x, y: torch.logical_and(x, y),
    "logical_or": lambda b, x, y: torch.logical_or(x, y),
    "logical_not": lambda b, x: torch.logical_not(x),
}
