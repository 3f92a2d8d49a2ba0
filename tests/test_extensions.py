"""Extension points end to end: kinds added from outside the package are validated at load and judged by the engine.

Each test writes a module to ``tmp_path`` (as a user's own package would be), registers its record, loads a
spec from ``tmp_path`` that uses it, and runs the case through :func:`conformance.engine.run_case`: a correct
implementation passes and a wrong one fails. (Expression functions and reference oracles:
``tests/test_functions.py``, ``tests/test_references.py``; pattern kinds: ``tests/patterns/test_registry.py``;
check definitions: ``tests/test_check_defs.py``.)
"""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import settings

from conformance.engine import run_case
from conformance.registry import FACT_KINDS, INVARIANT_KINDS
from conformance.selection import build_cases
from tests.spec_helpers import load_one, minimal_spec, write_spec

FAST = settings(max_examples=10, derandomize=True, deadline=None, database=None)
SPEC = ("specs", 0)

EVEN_KIND = '''
"""An invariant kind of a user's own: f(-inputs) = f(inputs) (an even function of the named inputs)."""
from conformance.invariants import InvariantKind, Plan


def validate(options, where, context):
    names = options["negate"]
    if not isinstance(names, list) or not names or any(n not in context.inputs for n in names):
        raise where.at("negate").error(f"expected a list of declared inputs ({', '.join(context.inputs)})")
    return {"negate": tuple(names)}


def plan(options, env, rng, out_name):
    env_b = {k: (-v if k in options["negate"] else v) for k, v in env.items()}
    return Plan(env, env_b, lambda a, b, *_: (b, a))


KIND = InvariantKind("even", frozenset({"negate"}), frozenset(), validate, plan)
'''

ZERO_KIND = '''
"""A fact kind of a user's own: an expression is identically zero."""
import numpy as np
import sympy

from conformance.evaluate import SymbolicBackend, evaluate
from conformance.expr import parse
from conformance.symbolic import FactKind


def validate(options, where, context):
    sizes, shapes = options["sizes"], options["shapes"]
    if not isinstance(sizes, dict) or not isinstance(shapes, dict):
        raise where.error("expected 'sizes' and 'shapes' mappings")
    return {"sizes": sizes, "shapes": shapes, "where": {}, "positive": [], "expr": parse(options["expr"])}


def pairs(fact, env):
    value = np.asarray(evaluate(fact["expr"], env, SymbolicBackend()), dtype=object)
    return [(v, sympy.Integer(0)) for v in value.ravel()]


KIND = FactKind("vanishes", frozenset({"sizes", "shapes", "expr"}), frozenset(), validate, pairs)
'''


def _module(tmp_path: Path, name: str, source: str) -> ModuleType:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def _spec_with(tmp_path: Path, key: str, entries: list, impl: str | None = None, name: str = "spec.yaml"):
    data = minimal_spec()
    data["specs"][0][key] = entries
    if impl is not None:  # one file per implementation: resolved modules are cached by path
        impl_file = f"impl_{name.removesuffix('.yaml')}.py"
        (tmp_path / impl_file).write_text(impl)
        data["specs"][0]["implementations"] = [{"ref": f"{impl_file}:f"}]
    return load_one(write_spec(tmp_path, data, name))


def test_an_invariant_kind_from_outside_is_judged_by_the_engine(tmp_path: Path) -> None:
    INVARIANT_KINDS.register(_module(tmp_path, "user_kinds", EVEN_KIND).KIND)
    try:
        invariant = [
            {"id": "even_in_both", "kind": "even", "description": "ℓ(−h, −m) = ℓ(h, m)", "negate": ["hidden", "memory_pred"]}
        ]
        right = _spec_with(tmp_path, "invariants", invariant, "def f(h, m):\n    return ((h - m) ** 2).sum(-1)\n")
        (case,) = [
            c
            for c in build_cases({"toy": right}, {})
            if c.check == "invariant:even_in_both" and c.device == "cpu" and c.dtype == "float64"
        ]
        passed = run_case(case, FAST)
        assert passed.outcome == "passed" and passed.tolerance is not None and passed.spec_line == right.invariants[0].line
        wrong = _spec_with(tmp_path, "invariants", invariant, "def f(h, m):\n    return ((h - m) ** 3).sum(-1)\n", "wrong.yaml")
        (case,) = [
            c
            for c in build_cases({"toy": wrong}, {})
            if c.check == "invariant:even_in_both" and c.device == "cpu" and c.dtype == "float64"
        ]
        failed = run_case(case, FAST)
        assert failed.outcome == "failed" and "ℓ(−h, −m) = ℓ(h, m)" in failed.message and failed.falsifying_example
    finally:
        INVARIANT_KINDS.unregister("even")


def test_a_fact_kind_from_outside_is_proved_or_refuted(tmp_path: Path) -> None:
    FACT_KINDS.register(_module(tmp_path, "user_facts", ZERO_KIND).KIND)
    try:
        fact = {
            "id": "expands",
            "kind": "vanishes",
            "description": "the square expands",
            "sizes": {"N": [1, 2]},
            "shapes": {"a": ["N"], "b": ["N"]},
            "expr": "(a - b)**2 - (a**2 - 2*a*b + b**2)",
        }
        spec = _spec_with(tmp_path, "facts", [fact])
        (case,) = [c for c in build_cases({"toy": spec}, {}) if c.check == "fact:expands"]
        proved = run_case(case, FAST)
        assert proved.outcome == "passed" and proved.proof.startswith("proved") and proved.family == "fact"
        spec = _spec_with(tmp_path, "facts", [{**fact, "expr": "(a - b)**2 - (a**2 + b**2)"}], name="false.yaml")
        (case,) = [c for c in build_cases({"toy": spec}, {}) if c.check == "fact:expands"]
        refuted = run_case(case, FAST)
        assert refuted.outcome == "failed" and "refuted" in refuted.proof
    finally:
        FACT_KINDS.unregister("vanishes")


def test_a_bad_option_of_an_outside_kind_is_one_keyed_error(tmp_path: Path) -> None:
    from conformance.validation import SpecError

    INVARIANT_KINDS.register(_module(tmp_path, "user_kinds_2", EVEN_KIND).KIND)
    try:
        invariant = [{"id": "bad", "kind": "even", "description": "d", "negate": ["nothing"]}]
        with pytest.raises(SpecError, match=r"specs\[0\]\.invariants\[0\]\.negate: expected a list of declared inputs"):
            _spec_with(tmp_path, "invariants", invariant)
    finally:
        INVARIANT_KINDS.unregister("even")


def test_invariants_and_facts_may_name_the_oracles_lets(tmp_path: Path) -> None:
    """``let`` names are substituted into invariant and fact expressions, so a spec says ``d`` once (issue 8)."""
    data = minimal_spec()
    entry = data["specs"][0]
    entry["oracle"] = {"let": {"d": "hidden - memory_pred"}, "expr": "sum(d**2, -1)"}
    entry["invariants"] = [
        {"id": "as_products", "kind": "identity", "description": "ℓ = Σ d·d", "lhs": "loss", "rhs": "sum(d*d, -1)"}
    ]
    entry["facts"] = [
        {
            "id": "expanded",
            "kind": "identity",
            "description": "Σ d² expands",
            "sizes": {"N": [1, 3]},
            "shapes": {"hidden": ["N"], "memory_pred": ["N"]},
            "lhs": "sum(d**2, -1)",
            "rhs": "sum(hidden**2 - 2*hidden*memory_pred + memory_pred**2, -1)",
        }
    ]
    spec = load_one(write_spec(tmp_path, data))
    assert "d" not in {s.name for s in spec.invariants[0].options["rhs"].free_symbols}
    cases = {c.check: c for c in build_cases({"toy": spec}, {}) if c.device == "cpu" and c.dtype in ("float64", "exact")}
    assert run_case(cases["invariant:as_products"], FAST).outcome == "passed"
    fact = run_case(cases["fact:expanded"], FAST)
    assert fact.outcome == "passed" and fact.proof.startswith("proved")
    entry["facts"][0]["rhs"] = "sum(hidden**2 + memory_pred**2, -1)"
    wrong = load_one(write_spec(tmp_path, data, "wrong.yaml"))
    (case,) = [c for c in build_cases({"toy": wrong}, {}) if c.check == "fact:expanded"]
    assert run_case(case, FAST).outcome == "failed"


def test_a_relation_is_judged_at_the_implementations_own_scale(tmp_path: Path) -> None:
    """An implementation wrong only in magnitude (×1e8) fails the oracle, not an invariant it keeps: permuting
    a sum's terms changes its rounding at the implementation's scale, which the oracle's scale would call a
    violation (issue 8: failures attributed to the right property)."""
    data = minimal_spec()
    entry = data["specs"][0]
    entry.update(
        symbols={"N": {"min": 2, "max": 64}},
        inputs={"x": {"shape": ["N"], "magnitude": [0.5, 2.0]}},
        outputs={"total": {"shape": []}},
        interface={"kind": "function", "args": ["x"]},
        oracle={"expr": "sum(x, -1)"},
        invariants=[
            {
                "id": "order_free",
                "kind": "permutation",
                "description": "the order of the terms does not matter",
                "permute": {"x": 0},
            }
        ],
    )
    (tmp_path / "scaled.py").write_text("def f(x):\n    return (x * 1e8 + 0.1).sum(-1)\n")
    entry["implementations"] = [{"ref": "scaled.py:f"}]
    spec = load_one(write_spec(tmp_path, data))
    cases = {c.check: c for c in build_cases({"toy": spec}, {}) if c.device == "cpu" and c.dtype == "float32"}
    assert run_case(cases["oracle"], FAST).outcome == "failed"
    assert run_case(cases["invariant:order_free"], FAST).outcome == "passed"
