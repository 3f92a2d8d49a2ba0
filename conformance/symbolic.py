"""Symbolic facts a spec claims, proved once per spec with SymPy.

Tensors are lowered to arrays of independent real SymPy symbols at each listed size, the claim is
evaluated with :class:`conformance.evaluate.SymbolicBackend`, and ``simplify(lhs - rhs) == 0``
must hold for every element. A proof is therefore exact for every real value at the sizes listed
(the report says which). A claim SymPy cannot reduce to zero is tested at random points: a
nonzero difference there *refutes* it; otherwise it is reported as not proved.

The kinds are :class:`FactKind` records (:data:`BUILTIN`), looked up through the open registry
:data:`conformance.registry.FACT_KINDS` (re-exported here).

>>> from conformance.validation import SpecContext, Where
>>> fact = FACT_KINDS["identity"].validate({"lhs": "sum(softmax(s, -1), -1)", "rhs": "1",
...                                          "shapes": {"s": ["N"]}, "sizes": {"N": [1, 2, 3]}},
...                                         Where("s.yaml", ("facts", 0)), SpecContext("s.yaml"))
>>> prove("identity", fact).proved
True
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy

from conformance.evaluate import SymbolicBackend, evaluate
from conformance.expr import MAX_CONSTANT_MAGNITUDE, MAX_INT, names_in
from conformance.registry import FACT_KINDS
from conformance.validation import SpecContext, Where, parse_expression, substitute_lets

__all__ = ["BUILTIN", "FACT_KINDS", "FactKind", "FactResult", "prove"]

MAX_SIZE_COMBINATIONS = 16
MAX_ELEMENTS = 64
MAX_SIZE = 8


@dataclass(frozen=True)
class FactResult:
    proved: bool
    refuted: bool
    detail: str


Pairs = Callable[[Mapping[str, Any], dict[str, Any]], list[tuple[sympy.Basic, sympy.Basic]]]


@dataclass(frozen=True)
class FactKind:
    """A kind of symbolic fact: its option keys, their validation, and the pairs to prove equal.

    ``validate(options, where, context)`` returns the normalised options or raises
    ``where.at(key).error(...)`` (``where`` is the fact entry). ``pairs(fact, env)`` gives, for one
    lowering of the fact's tensors to SymPy symbols, the (lhs, rhs) scalars that must be equal;
    :func:`prove` checks them at every listed size.
    """

    name: str
    required: frozenset[str]
    optional: frozenset[str]
    validate: Callable[[Mapping[str, Any], Where, SpecContext], dict]
    pairs: Pairs


def _expr(options: Mapping, key: str, where: Where) -> sympy.Basic:
    return parse_expression(options[key], where.at(key))


def _validate_common(options: Mapping, keys: tuple[str, ...], where: Where, context: SpecContext) -> dict:
    """The options every fact kind has; its expressions may name the oracle's ``let`` bindings (substituted)."""
    shapes = options["shapes"]
    sizes = options["sizes"]
    if not isinstance(sizes, dict) or not all(
        isinstance(v, list) and v and all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= MAX_SIZE for n in v)
        for v in sizes.values()
    ):
        raise where.at("sizes").error(f"expected a mapping size name -> non-empty list of integers in [1, {MAX_SIZE}]")
    if not isinstance(shapes, dict) or not all(isinstance(s, list) for s in shapes.values()):
        raise where.at("shapes").error("expected a mapping tensor name -> shape (list of size names or integers)")
    for name, shape in shapes.items():
        for dim in shape:
            fixed = isinstance(dim, int) and not isinstance(dim, bool) and 0 < dim <= MAX_ELEMENTS
            if not fixed and (not isinstance(dim, str) or dim not in sizes):
                raise where.at("shapes", name).error(
                    f"dimension {dim!r} of {name!r} is neither an integer in [1, {MAX_ELEMENTS}] nor a key of 'sizes'"
                )
    combos = int(np.prod([len(v) for v in sizes.values()])) if sizes else 1
    if combos > MAX_SIZE_COMBINATIONS:
        raise where.at("sizes").error(f"{combos} size combinations (at most {MAX_SIZE_COMBINATIONS})")
    positive = options.get("positive", [])
    if not isinstance(positive, list) or not all(isinstance(v, str) for v in positive):
        raise where.at("positive").error("expected a list of scalar names")
    out = {"shapes": shapes, "sizes": sizes, "where": _values(options.get("where", {}), where.at("where")), "positive": positive}
    out.update({k: substitute_lets(_expr(options, k, where), context.lets) for k in keys})
    return out


def _values(values: Any, where: Where) -> dict[str, int | float]:
    """``where``: scalar name -> number, bounded as constants in expressions are (:mod:`conformance.expr`)."""
    if not isinstance(values, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values.values()):
        raise where.error("expected a mapping scalar name -> number")
    for name, value in values.items():
        if isinstance(value, int) and abs(value) > MAX_INT:
            raise where.at(name).error(f"integers are bounded by {MAX_INT} in absolute value, got {value}")
        if isinstance(value, float) and not (np.isfinite(value) and abs(value) <= MAX_CONSTANT_MAGNITUDE):
            bound = f"{MAX_CONSTANT_MAGNITUDE:g}"
            raise where.at(name).error(f"expected a finite number of at most {bound} in magnitude, got {value}")
    return dict(values)


def _validate_identity(options: Mapping, where: Where, context: SpecContext) -> dict:
    return _validate_common(options, ("lhs", "rhs"), where, context)


def _validate_gradient(options: Mapping, where: Where, context: SpecContext) -> dict:
    out = _validate_common(options, ("of", "equals"), where, context)
    if not isinstance(options["wrt"], str) or options["wrt"] not in options["shapes"]:
        raise where.at("wrt").error(f"{options['wrt']!r} is not a tensor named in 'shapes'")
    cot = options.get("cotangent", "g")
    if not isinstance(cot, str):
        raise where.at("cotangent").error("expected a name")
    out.update({"wrt": options["wrt"], "cotangent": cot})
    return out


def prove(kind: str | FactKind, fact: Mapping[str, Any]) -> FactResult:
    """Prove the fact at every size combination; the first failure is returned as not proved."""
    record = FACT_KINDS[kind] if isinstance(kind, str) else kind
    sizes = fact["sizes"]
    combos = [dict(zip(sizes, values)) for values in itertools.product(*sizes.values())] or [{}]
    for combo in combos:
        env = _lower(fact, combo)
        for lhs, rhs in record.pairs(fact, env):
            if sympy.simplify(lhs - rhs) != 0:
                refuted = _refuted(lhs - rhs)
                verdict = "refuted" if refuted else "not proved (SymPy could not reduce the difference to 0)"
                return FactResult(False, refuted, f"{verdict} at sizes {combo}: {lhs} != {rhs}")
    listed = ", ".join(f"{k} in {v}" for k, v in sizes.items()) or "the given shapes"
    return FactResult(True, False, f"proved for all real values, {listed}")


def _lower(fact: Mapping, combo: Mapping[str, int]) -> dict[str, Any]:
    """Every tensor named in ``shapes`` becomes an array of fresh real symbols."""
    env: dict[str, Any] = {}
    for name, shape in fact["shapes"].items():
        dims = tuple(combo.get(d, d) for d in shape)
        count = int(np.prod(dims)) if dims else 1
        if count > MAX_ELEMENTS:
            raise ValueError(f"{name} has {count} elements at sizes {dict(combo)} (at most {MAX_ELEMENTS})")
        flat = [sympy.Symbol(f"{name}_{i}", real=True) for i in range(count)]
        env[name] = np.array(flat, dtype=object).reshape(dims)
    exprs = [v for v in fact.values() if isinstance(v, sympy.Basic)]
    scalars = set().union(*(names_in(e) for e in exprs)) - set(env) - {fact.get("cotangent", "")}
    for name in scalars:
        if name in fact["where"]:
            env[name] = np.asarray(sympy.Rational(repr(fact["where"][name])), dtype=object)  # exact: 1e-300 is not 0
        else:
            env[name] = np.asarray(sympy.Symbol(name, real=True, positive=name in fact["positive"] or None), dtype=object)
    env.update({k: int(v) for k, v in combo.items()})
    return env


def _identity_pairs(fact: Mapping, env: dict) -> list[tuple[sympy.Basic, sympy.Basic]]:
    lhs = np.asarray(evaluate(fact["lhs"], env, SymbolicBackend()), dtype=object)
    rhs = np.asarray(evaluate(fact["rhs"], env, SymbolicBackend()), dtype=object)
    lhs, rhs = np.broadcast_arrays(lhs, rhs)
    return list(zip(lhs.ravel(), rhs.ravel()))


def _gradient_pairs(fact: Mapping, env: dict) -> list[tuple[sympy.Basic, sympy.Basic]]:
    of = np.asarray(evaluate(fact["of"], env, SymbolicBackend()), dtype=object)
    g = np.array([sympy.Symbol(f"{fact['cotangent']}_{i}", real=True) for i in range(of.size)], dtype=object).reshape(of.shape)
    env = {**env, fact["cotangent"]: g}
    loss = sum((of * g).ravel(), sympy.Integer(0))  # the vector-Jacobian product's scalar
    equals = np.broadcast_to(np.asarray(evaluate(fact["equals"], env, SymbolicBackend()), dtype=object), env[fact["wrt"]].shape)
    return [(sympy.diff(loss, w), e) for w, e in zip(env[fact["wrt"]].ravel(), equals.ravel())]


def _refuted(difference: sympy.Basic, trials: int = 5) -> bool:
    rng = np.random.default_rng(0)
    symbols = sorted(difference.free_symbols, key=str)
    for _ in range(trials):
        point = {s: sympy.Float(rng.uniform(0.5, 2.0) if s.is_positive else rng.uniform(-2, 2)) for s in symbols}
        value = complex(difference.evalf(subs=point))
        if abs(value) > 1e-9:
            return True
    return False


_COMMON = {"shapes", "sizes"}
BUILTIN: list[FactKind] = [
    FactKind(
        "identity", frozenset(_COMMON | {"lhs", "rhs"}), frozenset({"where", "positive"}), _validate_identity, _identity_pairs
    ),
    FactKind(
        "gradient",
        frozenset(_COMMON | {"of", "wrt", "equals"}),
        frozenset({"cotangent", "where", "positive"}),
        _validate_gradient,
        _gradient_pairs,
    ),
]
