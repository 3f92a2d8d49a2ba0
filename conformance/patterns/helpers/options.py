"""Option parsing shared by pattern kinds; torch-free, so validating a spec imports no torch.

Every parser takes the :class:`conformance.validation.Where` of the value it reads and raises
``where.error("expected ...")``. Ranges are ``{min, max}`` mappings everywhere; the older list form
``[min, max]`` is refused with the mapping to write instead.

>>> from conformance.validation import Where
>>> parse_params({"n_layers": {"min": 1, "max": 4}}, Where("s.yaml", ("params",)), set())["n_layers"]
Param(name='n_layers', low=1, high=4, values=())
>>> int_range([1, 4], Where("s.yaml", ("steps",)), 0, 32)
Traceback (most recent call last):
...
conformance.validation.SpecError: s.yaml: steps: expected {min, max} (integers 0..32), got [1, 4]; write {min: 1, max: 4}
>>> parse_call({"args": ["n"]}, Where("s.yaml", ("call",)), {"x"})
Traceback (most recent call last):
...
conformance.validation.SpecError: s.yaml: call.args[0]: 'n' is not declared; declared: x
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sympy
from sympy.core.function import AppliedUndef

from conformance.validation import Where, parse_expression

if TYPE_CHECKING:
    from hypothesis import strategies as st
    from torch import nn

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


def is_int(value: Any) -> bool:
    """An integer that is not a boolean."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite number that is not a boolean."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _old_form(value: Any) -> str:
    """The ``{min, max}`` to write for an old ``[min, max]`` list, as a hint."""
    if isinstance(value, list) and len(value) == 2:
        return f"; write {{min: {value[0]}, max: {value[1]}}}"
    return ""


def int_range(value: Any, where: Where, low: int, high: int) -> dict[str, int]:
    """``{min, max}`` integers with ``low <= min <= max <= high``."""
    if not isinstance(value, dict) or set(value) != {"min", "max"}:
        raise where.error(f"expected {{min, max}} (integers {low}..{high}), got {value!r}{_old_form(value)}")
    lo, hi = value["min"], value["max"]
    if not (is_int(lo) and is_int(hi) and low <= lo <= hi <= high):
        raise where.error(f"expected integers {low} <= min <= max <= {high}, got min={lo!r}, max={hi!r}")
    return {"min": lo, "max": hi}


def int_pair(value: Any, where: Where, low: int, high: int) -> tuple[int, int]:
    """:func:`int_range` as a ``(min, max)`` pair."""
    bounds = int_range(value, where, low, high)
    return bounds["min"], bounds["max"]


def number_range(value: Any, where: Where, accept: Callable[[float, float], bool], expected: str) -> dict[str, float]:
    """``{min, max}`` numbers that ``accept(min, max)``; ``expected`` says which, for the message."""
    if not isinstance(value, dict) or set(value) != {"min", "max"}:
        raise where.error(f"expected {{min, max}} with {expected}, got {value!r}{_old_form(value)}")
    lo, hi = value["min"], value["max"]
    if not (is_number(lo) and is_number(hi) and accept(lo, hi)):
        raise where.error(f"expected {{min, max}} with {expected}, got {value!r}")
    return {"min": float(lo), "max": float(hi)}


def integer(value: Any, where: Where, low: int, high: int) -> int:
    """An integer in ``[low, high]``."""
    if not is_int(value) or not low <= value <= high:
        raise where.error(f"expected an integer in [{low}, {high}], got {value!r}")
    return value


def boolean(value: Any, where: Where) -> bool:
    if not isinstance(value, bool):
        raise where.error(f"expected true or false, got {value!r}")
    return value


def subset(value: Any, where: Where, allowed: tuple[str, ...]) -> list[str]:
    """A non-empty list of distinct values from ``allowed``."""
    if not isinstance(value, list) or not value or any(v not in allowed for v in value) or len(set(value)) != len(value):
        raise where.error(f"expected a non-empty list of distinct values from {', '.join(allowed)}, got {value!r}")
    return list(value)


def sizes_and_params(options: Mapping[str, Any], where: Where) -> dict:
    """``sizes`` (symbol -> positive int) and ``params`` (param -> value) options of a module call."""
    sizes, params = options.get("sizes", {}), options.get("params", {})
    if not isinstance(sizes, dict) or not sizes or not all(is_int(v) and v > 0 for v in sizes.values()):
        raise where.at("sizes").error("expected a mapping symbol -> positive integer")
    if not isinstance(params, dict):
        raise where.at("params").error("expected a mapping param -> value")
    return {"sizes": dict(sizes), "params": dict(params)}


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
        from hypothesis import strategies as st

        return st.sampled_from(self.values) if self.values else st.integers(self.low, self.high)


@dataclass(frozen=True)
class Call:
    """How the implementation is called: ``f(module, *args, **kwargs)``, values by name."""

    args: tuple[str, ...] = ()
    kwargs: Mapping[str, str] | None = None

    def invoke(self, target: Callable, module: nn.Module, values: Mapping[str, Any]) -> None:
        target(module, *(values[a] for a in self.args), **{k: values[v] for k, v in (self.kwargs or {}).items()})


def parse_params(value: Any, where: Where, taken: set[str]) -> dict[str, Param]:
    """``params: {NAME: {min, max} | {values: [...]}}``: integers drawn in a range, or values sampled."""
    if not isinstance(value, dict):
        raise where.error(f"expected a mapping name -> {{min, max}} or {{values: [...]}}, got {value!r}")
    out: dict[str, Param] = {}
    for name, body in value.items():
        at = where.at(name)
        if not isinstance(name, str) or not _NAME_RE.match(name) or name in taken:
            raise at.error(f"expected a new plain name (letters, digits, '_'; not one of {sorted(taken)}), got {name!r}")
        if isinstance(body, dict) and set(body) == {"values"}:
            values = body["values"]
            if not isinstance(values, list) or not values or not all(isinstance(v, (str, int, float, bool)) for v in values):
                raise at.at("values").error(f"expected a non-empty list of strings, numbers or booleans, got {values!r}")
            out[name] = Param(name, values=tuple(values))
        else:
            bounds = int_range(body, at, -(10**9), 10**9)
            out[name] = Param(name, low=bounds["min"], high=bounds["max"])
    return out


def parse_call(value: Any, where: Where, names: set[str]) -> Call:
    """``call: {args: [NAME, ...], kwargs: {keyword: NAME}}``; names from ``names``."""
    if not isinstance(value, dict) or not set(value) <= {"args", "kwargs"}:
        raise where.error(f"expected a mapping with keys args and/or kwargs, got {value!r}")
    args = value.get("args", [])
    if not isinstance(args, list):
        raise where.at("args").error(f"expected a list of names, got {args!r}")
    for i, name in enumerate(args):
        if name not in names:
            raise where.at("args", i).error(f"{name!r} is not declared; declared: {', '.join(sorted(names))}")
    kwargs = value.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise where.at("kwargs").error(f"expected a mapping keyword -> name, got {kwargs!r}")
    for kw, name in kwargs.items():
        if not isinstance(kw, str) or not _NAME_RE.match(kw):
            raise where.at("kwargs", kw).error("expected a keyword (letters, digits, '_')")
        if name not in names:
            raise where.at("kwargs", kw).error(f"{name!r} is not declared; declared: {', '.join(sorted(names))}")
    return Call(tuple(args), dict(kwargs))


def parse_scalar(value: Any, where: Where, names: set[str]) -> sympy.Basic:
    """A scalar expression over ``names`` (a number or text for :func:`conformance.expr.parse`)."""
    parsed = parse_expression(value, where, names)
    if not isinstance(parsed, sympy.Expr) or parsed.atoms(AppliedUndef):  # a comparison, or a tensor function
        raise where.error(f"expected a scalar expression (numbers, + - * / **, sqrt, exp, log, abs), got {value!r}")
    return parsed


def evaluate_scalar(parsed: sympy.Basic, values: Mapping[str, Any]) -> float:
    """The float value of a scalar expression at ``values`` (exact SymPy arithmetic, then rounded).

    >>> from conformance.expr import parse
    >>> evaluate_scalar(parse("sqrt(6/(fan_in + fan_out))"), {"fan_in": 1, "fan_out": 5})
    1.0
    """
    value = parsed.subs({s: values[s.name] for s in parsed.free_symbols})
    if not value.is_real:
        raise ValueError(f"{parsed} is {value} at {dict(values)}, not a real number")
    return float(value)
