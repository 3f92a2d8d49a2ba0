"""Option parsing shared by pattern kinds that draw call arguments: ``params``, ``call``, scalar expressions.

Used by :mod:`conformance.patterns.init_statistics` and :mod:`conformance.patterns.parameter_scaling`.
A bad option raises ``KeyError(path, message)`` with the key path relative to the pattern entry (the
spec loader turns it into a :class:`conformance.spec.SpecError` naming file and key).

>>> parse_params({"n_layers": {"min": 1, "max": 4}}, ("params",), set())["n_layers"]
Param(name='n_layers', low=1, high=4, values=())
>>> parse_call({"args": ["n"]}, ("call",), {"x"})
Traceback (most recent call last):
...
KeyError: (('call', 'args', 0), "'n' is not declared; declared: x")
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sympy
from hypothesis import strategies as st
from sympy.core.function import AppliedUndef
from torch import nn

from conformance import expr as expr_mod
from conformance.tolerance import Tolerance

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True)
class Param:
    """An argument drawn per example: an integer in ``[low, high]`` or one of ``values``."""

    name: str
    low: int | None = None
    high: int | None = None
    values: tuple[Any, ...] = ()

    @property
    def numeric(self) -> bool:
        """Usable in expressions: integers, or values that are all numbers."""
        return not self.values or all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in self.values)

    def strategy(self) -> st.SearchStrategy:
        return st.sampled_from(self.values) if self.values else st.integers(self.low, self.high)


@dataclass(frozen=True)
class Call:
    """How the implementation is called: ``f(module, *args, **kwargs)``, values by name."""

    args: tuple[str, ...] = ()
    kwargs: Mapping[str, str] | None = None

    def invoke(self, target: Callable, module: nn.Module, values: Mapping[str, Any]) -> None:
        target(module, *(values[a] for a in self.args), **{k: values[v] for k, v in (self.kwargs or {}).items()})


def bad(path: tuple, message: str) -> KeyError:
    """A validation error naming the key path relative to the pattern entry."""
    return KeyError(path, message)


def int_range(value: Any, path: tuple, low: int, high: int) -> tuple[int, int]:
    """``{min, max}`` integers with ``low <= min <= max <= high``."""
    if not isinstance(value, dict) or set(value) != {"min", "max"}:
        raise bad(path, f"expected {{min, max}} (integers {low}..{high}), got {value!r}")
    lo, hi = value["min"], value["max"]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (lo, hi)) or not low <= lo <= hi <= high:
        raise bad(path, f"expected integers {low} <= min <= max <= {high}, got min={lo!r}, max={hi!r}")
    return lo, hi


def parse_params(value: Any, path: tuple, taken: set[str]) -> dict[str, Param]:
    """``params: {NAME: {min, max} | {values: [...]}}``: integers drawn in a range, or values sampled."""
    if not isinstance(value, dict):
        raise bad(path, f"expected a mapping name -> {{min, max}} or {{values: [...]}}, got {value!r}")
    out: dict[str, Param] = {}
    for name, body in value.items():
        p = path + (name,)
        if not isinstance(name, str) or not _NAME_RE.match(name) or name in taken:
            raise bad(p, f"expected a new plain name (letters, digits, '_'; not one of {sorted(taken)}), got {name!r}")
        if isinstance(body, dict) and set(body) == {"values"}:
            values = body["values"]
            if not isinstance(values, list) or not values or not all(isinstance(v, (str, int, float, bool)) for v in values):
                raise bad(p + ("values",), f"expected a non-empty list of strings, numbers or booleans, got {values!r}")
            out[name] = Param(name, values=tuple(values))
        else:
            lo, hi = int_range(body, p, -(10**9), 10**9)
            out[name] = Param(name, low=lo, high=hi)
    return out


def parse_call(value: Any, path: tuple, names: set[str]) -> Call:
    """``call: {args: [NAME, ...], kwargs: {keyword: NAME}}``; names from ``names``."""
    if not isinstance(value, dict) or not set(value) <= {"args", "kwargs"}:
        raise bad(path, f"expected a mapping with keys args and/or kwargs, got {value!r}")
    args = value.get("args", [])
    if not isinstance(args, list):
        raise bad(path + ("args",), f"expected a list of names, got {args!r}")
    for i, name in enumerate(args):
        if name not in names:
            raise bad(path + ("args", i), f"{name!r} is not declared; declared: {', '.join(sorted(names))}")
    kwargs = value.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise bad(path + ("kwargs",), f"expected a mapping keyword -> name, got {kwargs!r}")
    for kw, name in kwargs.items():
        if not isinstance(kw, str) or not _NAME_RE.match(kw):
            raise bad(path + ("kwargs", kw), "expected a keyword (letters, digits, '_')")
        if name not in names:
            raise bad(path + ("kwargs", kw), f"{name!r} is not declared; declared: {', '.join(sorted(names))}")
    return Call(tuple(args), dict(kwargs))


def parse_scalar(value: Any, path: tuple, names: set[str]) -> sympy.Basic:
    """A scalar expression over ``names`` (a number or text for :func:`conformance.expr.parse`)."""
    text = repr(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    if not isinstance(text, str):
        raise bad(path, f"expected a number or an expression string, got {value!r}")
    try:
        parsed = expr_mod.parse(text)
    except expr_mod.ExprError as exc:
        raise bad(path, f"{exc}: {text!r}") from None
    unknown = sorted(expr_mod.names_in(parsed) - names)
    if unknown:
        raise bad(path, f"undeclared name(s) {', '.join(unknown)} in {text!r}; declared: {', '.join(sorted(names))}")
    if not isinstance(parsed, sympy.Expr) or parsed.atoms(AppliedUndef):  # a comparison, or a tensor function
        raise bad(path, f"expected a scalar expression (numbers, + - * / **, sqrt, exp, log, abs), got {text!r}")
    return parsed


def evaluate_scalar(parsed: sympy.Basic, values: Mapping[str, Any]) -> float:
    """The float value of a scalar expression at ``values`` (exact SymPy arithmetic, then rounded).

    >>> evaluate_scalar(expr_mod.parse("sqrt(6/(fan_in + fan_out))"), {"fan_in": 1, "fan_out": 5})
    1.0
    """
    value = parsed.subs({s: values[s.name] for s in parsed.free_symbols})
    if not value.is_real:
        raise ValueError(f"{parsed} is {value} at {dict(values)}, not a real number")
    return float(value)


@dataclass(frozen=True)
class Bound(Tolerance):
    """A tolerance with its own stated basis (a statistical bound, an exact comparison)."""

    basis: str = ""

    def describe(self) -> str:
        return self.basis


def bound(atol: float, basis: str) -> Bound:
    return Bound(atol=atol, baseline=None, floor=0.0, slack=0.0, factor=1.0, reason=None, basis=basis)
