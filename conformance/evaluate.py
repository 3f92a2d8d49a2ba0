"""Evaluate a parsed spec expression on arrays, by walking the SymPy tree.

One walker, three backends:

- :class:`NumpyBackend` — float64 NumPy, the oracle (independent of torch).
- :class:`TorchBackend` — torch at a chosen dtype and device: the same-precision reference that
  tolerances are derived from, and (in float64, with autograd) the gradient oracle.
- :class:`SymbolicBackend` — NumPy object arrays of SymPy scalars, used to prove symbolic facts.

>>> import numpy as np
>>> from conformance.expr import parse
>>> evaluate(parse("sum(x**2, -1)"), {"x": np.array([[3.0, 4.0]])}, NumpyBackend())
array([25.])
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import reduce
from typing import Any

import numpy as np
import sympy
import torch
from sympy.core.function import AppliedUndef

from conformance.expr import ExprError

Array = Any


class NumpyBackend:
    """float64 NumPy arrays."""

    def const(self, value: float | bool) -> Array:
        return np.asarray(value, dtype=bool if isinstance(value, bool) else np.float64)

    add = staticmethod(np.add)
    mul = staticmethod(np.multiply)
    mod = staticmethod(np.mod)
    floor = staticmethod(np.floor)
    matmul = staticmethod(np.matmul)
    exp = staticmethod(np.exp)
    log = staticmethod(np.log)
    abs = staticmethod(np.abs)
    tanh = staticmethod(np.tanh)
    sqrt = staticmethod(np.sqrt)
    logical_and = staticmethod(np.logical_and)
    logical_or = staticmethod(np.logical_or)
    logical_not = staticmethod(np.logical_not)
    where = staticmethod(np.where)

    def power(self, base: Array, exponent: Array) -> Array:
        return np.power(np.asarray(base, dtype=np.float64), exponent)

    def compare(self, op: str, a: Array, b: Array) -> Array:
        return {"==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}[
            op
        ](a, b)

    def reduce(self, kind: str, x: Array, axis: int, keepdim: bool) -> Array:
        return getattr(np, kind)(np.asarray(x), axis=axis, keepdims=keepdim)

    def softmax(self, x: Array, axis: int) -> Array:
        shifted = x - np.max(x, axis=axis, keepdims=True)
        e = np.exp(shifted)
        return e / np.sum(e, axis=axis, keepdims=True)

    def transpose(self, x: Array) -> Array:
        return np.swapaxes(x, -1, -2)

    def unsqueeze(self, x: Array, axis: int) -> Array:
        return np.expand_dims(x, axis)

    def tril(self, rows: int, cols: int) -> Array:
        return np.tril(np.ones((rows, cols), dtype=bool))

    cos = staticmethod(np.cos)
    sin = staticmethod(np.sin)

    def arange(self, n: int) -> Array:
        return np.arange(n, dtype=np.float64)

    def cat(self, a: Array, b: Array, axis: int) -> Array:
        return np.concatenate(np.broadcast_arrays(a, b) if np.ndim(a) != np.ndim(b) else (a, b), axis=axis)

    def interleave(self, a: Array, b: Array) -> Array:
        stacked = np.stack(np.broadcast_arrays(a, b), axis=-1)  # (..., n, 2)
        return stacked.reshape(*stacked.shape[:-2], -1)  # (..., 2n)

    def split_heads(self, x: Array, heads: int) -> Array:
        *lead, length, dim = np.shape(x)
        return np.swapaxes(np.reshape(x, (*lead, length, heads, dim // heads)), -2, -3)  # (..., H, L, D/H)

    def merge_heads(self, x: Array) -> Array:
        *lead, heads, length, dh = np.shape(x)
        return np.reshape(np.swapaxes(x, -2, -3), (*lead, length, heads * dh))  # (..., L, H·Dh)


class TorchBackend:
    """torch tensors at ``dtype`` on ``device``; inputs must already be tensors there."""

    def __init__(self, dtype: torch.dtype, device: torch.device | str = "cpu") -> None:
        self.dtype = dtype
        self.device = torch.device(device)

    def const(self, value: float | bool) -> Array:
        dtype = torch.bool if isinstance(value, bool) else self.dtype
        return torch.tensor(value, dtype=dtype, device=self.device)

    add = staticmethod(torch.add)
    mul = staticmethod(torch.mul)
    mod = staticmethod(torch.remainder)
    floor = staticmethod(torch.floor)
    matmul = staticmethod(torch.matmul)
    exp = staticmethod(torch.exp)
    log = staticmethod(torch.log)
    abs = staticmethod(torch.abs)
    tanh = staticmethod(torch.tanh)
    sqrt = staticmethod(torch.sqrt)
    logical_and = staticmethod(torch.logical_and)
    logical_or = staticmethod(torch.logical_or)
    logical_not = staticmethod(torch.logical_not)
    where = staticmethod(torch.where)

    def power(self, base: Array, exponent: Array) -> Array:
        return torch.pow(base, exponent)

    def compare(self, op: str, a: Array, b: Array) -> Array:
        return {"==": torch.eq, "!=": torch.ne, "<": torch.lt, "<=": torch.le, ">": torch.gt, ">=": torch.ge}[op](a, b)

    def reduce(self, kind: str, x: Array, axis: int, keepdim: bool) -> Array:
        if kind in ("max", "min"):
            return getattr(torch, "amax" if kind == "max" else "amin")(x, dim=axis, keepdim=keepdim)
        return getattr(torch, kind)(x, dim=axis, keepdim=keepdim)

    def softmax(self, x: Array, axis: int) -> Array:
        return torch.softmax(x, dim=axis)

    def transpose(self, x: Array) -> Array:
        return x.transpose(-1, -2)

    def unsqueeze(self, x: Array, axis: int) -> Array:
        return x.unsqueeze(axis)

    def tril(self, rows: int, cols: int) -> Array:
        return torch.ones(int(rows), int(cols), dtype=torch.bool, device=self.device).tril()

    cos = staticmethod(torch.cos)
    sin = staticmethod(torch.sin)

    def arange(self, n: int) -> Array:
        return torch.arange(n, dtype=self.dtype, device=self.device)

    def cat(self, a: Array, b: Array, axis: int) -> Array:
        return torch.cat(torch.broadcast_tensors(a, b) if a.dim() != b.dim() else (a, b), dim=axis)

    def interleave(self, a: Array, b: Array) -> Array:
        stacked = torch.stack(torch.broadcast_tensors(a, b), dim=-1)  # (..., n, 2)
        return stacked.flatten(-2)  # (..., 2n)

    def split_heads(self, x: Array, heads: int) -> Array:
        *lead, length, dim = x.shape
        return x.reshape(*lead, length, heads, dim // heads).transpose(-2, -3)  # (..., H, L, D/H)

    def merge_heads(self, x: Array) -> Array:
        *lead, heads, length, dh = x.shape
        return x.transpose(-2, -3).reshape(*lead, length, heads * dh)  # (..., L, H·Dh)


class SymbolicBackend(NumpyBackend):
    """NumPy object arrays whose elements are SymPy expressions (exact arithmetic)."""

    def const(self, value: float | bool) -> Array:
        if isinstance(value, bool):
            return np.asarray(value, dtype=bool)
        return np.asarray(sympy.nsimplify(value), dtype=object)

    exp = staticmethod(np.vectorize(sympy.exp, otypes=[object]))
    log = staticmethod(np.vectorize(sympy.log, otypes=[object]))
    abs = staticmethod(np.vectorize(sympy.Abs, otypes=[object]))
    tanh = staticmethod(np.vectorize(sympy.tanh, otypes=[object]))
    sqrt = staticmethod(np.vectorize(sympy.sqrt, otypes=[object]))
    cos = staticmethod(np.vectorize(sympy.cos, otypes=[object]))
    sin = staticmethod(np.vectorize(sympy.sin, otypes=[object]))

    def arange(self, n: int) -> Array:
        return np.array([sympy.Integer(i) for i in range(n)], dtype=object)

    def power(self, base: Array, exponent: Array) -> Array:
        return np.vectorize(lambda b, e: sympy.Pow(b, e), otypes=[object])(base, exponent)

    def reduce(self, kind: str, x: Array, axis: int, keepdim: bool) -> Array:
        x = np.asarray(x, dtype=object)
        if kind in ("sum", "mean"):
            total = np.sum(x, axis=axis, keepdims=keepdim)
            return total / sympy.Integer(x.shape[axis]) if kind == "mean" else total
        fn = sympy.Max if kind == "max" else sympy.Min
        return (
            np.apply_along_axis(lambda v: fn(*v), axis, x)
            if not keepdim
            else np.expand_dims(np.apply_along_axis(lambda v: fn(*v), axis, x), axis)
        )

    def softmax(self, x: Array, axis: int) -> Array:
        e = self.exp(x)
        return e / np.sum(e, axis=axis, keepdims=True)


_COMPARE_OPS = {sympy.Eq: "==", sympy.Ne: "!=", sympy.Lt: "<", sympy.Le: "<=", sympy.Gt: ">", sympy.Ge: ">="}
_ELEMENTWISE = {sympy.exp: "exp", sympy.log: "log", sympy.Abs: "abs", sympy.tanh: "tanh", sympy.cos: "cos", sympy.sin: "sin"}


def evaluate(expr: sympy.Basic, env: Mapping[str, Array], backend: Any) -> Array:
    """Evaluate ``expr`` with names bound by ``env`` on ``backend``.

    Raises :class:`ExprError` for a name that ``env`` does not bind.
    """
    return _Walker(env, backend).walk(expr)


class _Walker:
    def __init__(self, env: Mapping[str, Array], backend: Any) -> None:
        self.env = env
        self.b = backend

    def walk(self, e: sympy.Basic) -> Array:
        b = self.b
        if isinstance(e, sympy.Symbol):
            if e.name not in self.env:
                raise ExprError(f"name {e.name!r} has no value here")
            value = self.env[e.name]
            if isinstance(value, (bool, int, float)):
                return self._scalar(value)
            return value
        if e is sympy.true or e is sympy.false:
            return b.const(bool(e))
        if e is sympy.oo or e is sympy.S.NegativeInfinity:
            return b.const(float("inf") if e is sympy.oo else float("-inf"))
        if e.is_Number or e is sympy.pi or e is sympy.E:
            return np.asarray(e, dtype=object) if isinstance(b, SymbolicBackend) else b.const(float(e))
        if isinstance(e, sympy.Add):
            return reduce(b.add, [self.walk(a) for a in e.args])
        if isinstance(e, sympy.Mul):
            return reduce(b.mul, [self.walk(a) for a in e.args])
        if isinstance(e, sympy.Pow):
            return self._pow(e)
        if type(e) in _COMPARE_OPS:
            return b.compare(_COMPARE_OPS[type(e)], self.walk(e.lhs), self.walk(e.rhs))
        if isinstance(e, sympy.Mod):
            return b.mod(self.walk(e.args[0]), self.walk(e.args[1]))
        if isinstance(e, sympy.floor):
            return b.floor(self.walk(e.args[0]))
        if e.func in _ELEMENTWISE:
            return getattr(b, _ELEMENTWISE[e.func])(self.walk(e.args[0]))
        if isinstance(e, AppliedUndef):
            return self._tensor_fn(e.func.__name__, e.args)
        raise ExprError(f"cannot evaluate {type(e).__name__} ({e})")

    def _scalar(self, value: bool | int | float) -> Array:
        if isinstance(self.b, SymbolicBackend) and not isinstance(value, bool):
            return np.asarray(sympy.nsimplify(value), dtype=object)
        return self.b.const(value if isinstance(value, bool) else float(value))

    def _pow(self, e: sympy.Pow) -> Array:
        base, exponent = e.args
        x = self.walk(base)
        if exponent == sympy.Rational(1, 2):
            return self.b.sqrt(x)
        if exponent == sympy.Rational(-1, 2):
            return self.b.power(self.b.sqrt(x), self.walk(sympy.Integer(-1)))
        return self.b.power(x, self.walk(exponent))

    def _tensor_fn(self, name: str, args: tuple[sympy.Basic, ...]) -> Array:
        b = self.b
        if name in ("sum", "mean", "max", "min"):
            return b.reduce(name, self.walk(args[0]), int(args[1]), bool(args[2]))
        if name == "softmax":
            return b.softmax(self.walk(args[0]), int(args[1]))
        if name == "unsqueeze":
            return b.unsqueeze(self.walk(args[0]), int(args[1]))
        if name == "tril":
            return b.tril(int(self.walk(args[0])), int(self.walk(args[1])))
        if name == "arange":
            return b.arange(int(self.walk(args[0])))
        if name == "split_heads":
            return b.split_heads(self.walk(args[0]), int(self.walk(args[1])))
        if name in ("chunk", "strided"):
            x, first, second = self.walk(args[0]), int(args[1]), int(args[2])
            if name == "strided":  # elements start, start + step, ... of the last axis
                return x[..., first::second]
            size = x.shape[-1] // first  # part ``second`` of ``first`` equal parts of the last axis
            return x[..., second * size : (second + 1) * size]
        if name == "cat":
            return b.cat(self.walk(args[0]), self.walk(args[1]), int(args[2]))
        values = [self.walk(a) for a in args]
        if name == "transpose":
            return b.transpose(values[0])
        if name in ("matmul", "where", "logical_and", "logical_or", "logical_not", "interleave", "merge_heads"):
            return getattr(b, name)(*values)
        raise ExprError(f"unknown function {name!r}")
