"""Evaluate a parsed spec expression on arrays, by walking the SymPy tree.

One walker, three backends:

- :class:`NumpyBackend` — float64 NumPy, the oracle (independent of torch).
- :class:`TorchBackend` — torch at a chosen dtype and device: the same-precision reference that
  tolerances are derived from, and (in float64, with autograd) the gradient oracle. It lives in
  :mod:`conformance.evaluate_torch` (imported on first use of the name here), so that the NumPy and
  SymPy parts of this module never import torch.
- :class:`SymbolicBackend` — NumPy object arrays of SymPy scalars, used to prove symbolic facts.

A backend implements the operators (``+ * ** % // ==``...) itself; every function (``softmax``, ``exp``,
and ``@``, ``&``, ``|``, ``~``, which build functions) is an :class:`~conformance.functions.ExprFunction`
in :data:`conformance.registry.FUNCTIONS`, and ``backend.implementation(record)`` picks its callable.

>>> import numpy as np
>>> from conformance.expr import parse
>>> evaluate(parse("sum(x**2, -1)"), {"x": np.array([[3.0, 4.0]])}, NumpyBackend())
array([25.])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import reduce
from typing import TYPE_CHECKING, Any

import numpy as np
import sympy

from conformance.expr import ExprError
from conformance.functions import ExprFunction
from conformance.registry import FUNCTIONS

if TYPE_CHECKING:
    from conformance.evaluate_torch import TorchBackend

__all__ = ["NumpyBackend", "SymbolicBackend", "TorchBackend", "evaluate", "function_of"]

Array = Any


def __getattr__(name: str) -> Any:
    """``TorchBackend`` from :mod:`conformance.evaluate_torch`, imported (with torch) on first use."""
    if name == "TorchBackend":
        from conformance.evaluate_torch import TorchBackend

        return TorchBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class NumpyBackend:
    """float64 NumPy arrays."""

    kind = "numpy"

    def implementation(self, fn: ExprFunction) -> Callable[..., Array]:
        """The callable that evaluates ``fn`` here: its ``numpy`` one."""
        return fn.numpy

    def const(self, value: float | bool) -> Array:
        return np.asarray(value, dtype=bool if isinstance(value, bool) else np.float64)

    add = staticmethod(np.add)
    mul = staticmethod(np.multiply)
    mod = staticmethod(np.mod)
    floor = staticmethod(np.floor)

    def power(self, base: Array, exponent: Array) -> Array:
        return np.power(np.asarray(base, dtype=np.float64), exponent)

    def compare(self, op: str, a: Array, b: Array) -> Array:
        return {"==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}[
            op
        ](a, b)


class SymbolicBackend(NumpyBackend):
    """NumPy object arrays whose elements are SymPy expressions (exact arithmetic)."""

    kind = "symbolic"

    def implementation(self, fn: ExprFunction) -> Callable[..., Array]:
        """The callable that evaluates ``fn`` here: its ``symbolic`` one, if it has one."""
        if fn.symbolic is None:
            raise ExprError(f"function {fn.name!r} has no symbolic form (symbolic=None in its ExprFunction): no proof may use it")
        return fn.symbolic

    def const(self, value: float | bool) -> Array:
        if isinstance(value, bool):
            return np.asarray(value, dtype=bool)
        return np.asarray(sympy.nsimplify(value), dtype=object)

    def power(self, base: Array, exponent: Array) -> Array:
        return np.vectorize(lambda b, e: sympy.Pow(b, e), otypes=[object])(base, exponent)


_COMPARE_OPS = {sympy.Eq: "==", sympy.Ne: "!=", sympy.Lt: "<", sympy.Le: "<=", sympy.Gt: ">", sympy.Ge: ">="}


def evaluate(expr: sympy.Basic, env: Mapping[str, Array], backend: Any) -> Array:
    """Evaluate ``expr`` with names bound by ``env`` on ``backend``.

    Raises :class:`ExprError` for a name that ``env`` does not bind, or a function no registered
    :class:`~conformance.functions.ExprFunction` evaluates.

    IEEE float64 arithmetic runs without NumPy's warnings: an intermediate overflowing to ``inf``
    (``1 / (1 + exp(-x))`` at x = -1000 is exactly 0) or a result that is not finite is a value its
    caller judges (a check rejects an oracle its dtype cannot hold), not a warning in a user's run.
    """
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return _Walker(env, backend).walk(expr)


def function_of(func: Any) -> ExprFunction | None:
    """The registered record that builds applied SymPy functions ``func(...)``, or ``None``.

    >>> function_of(sympy.Abs).name, function_of(sympy.Function("softmax")).name
    ('abs', 'softmax')
    """
    name = getattr(func, "__name__", None)
    record = FUNCTIONS.get(name) if isinstance(name, str) else None
    if record is not None and record.builds(func):
        return record
    return next((r for _, r in FUNCTIONS.items() if r.builds(func)), None)  # SymPy's own under another name (Abs)


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
        if isinstance(e, sympy.Function):
            record = function_of(e.func)
            if record is None:
                raise ExprError(f"unknown function {e.func.__name__!r} (no registered ExprFunction builds it)")
            return self._call(record, e.args)
        raise ExprError(f"cannot evaluate {type(e).__name__} ({e})")

    def _scalar(self, value: bool | int | float) -> Array:
        if isinstance(self.b, SymbolicBackend) and not isinstance(value, bool):
            return np.asarray(sympy.nsimplify(value), dtype=object)
        return self.b.const(value if isinstance(value, bool) else float(value))

    def _pow(self, e: sympy.Pow) -> Array:
        base, exponent = e.args
        if exponent == sympy.Rational(1, 2):
            return self._call(FUNCTIONS["sqrt"], (base,))
        if exponent == sympy.Rational(-1, 2):
            return self.b.power(self._call(FUNCTIONS["sqrt"], (base,)), self.walk(sympy.Integer(-1)))
        return self.b.power(self.walk(base), self.walk(exponent))

    def _call(self, record: ExprFunction, args: tuple[sympy.Basic, ...]) -> Array:
        """``record``'s callable on this backend, on the arguments as its calling convention says."""
        last = len(args) - 1
        values = [
            self._argument(
                record, a, integer=i in record.int_args, string=i in record.string_args, keepdim=record.keepdim and i == last
            )
            for i, a in enumerate(args)
        ]
        return self.b.implementation(record)(self.b, *values)

    def _argument(self, record: ExprFunction, a: sympy.Basic, *, integer: bool, string: bool, keepdim: bool) -> Any:
        """One argument as the calling convention passes it: an int, a str, a bool (keepdim) or an evaluated value."""
        if integer:
            return int(a)
        if string:
            return str(a.name)  # a sympy Str the parser built from a checked string constant
        return bool(a) if keepdim else self.walk(a)
