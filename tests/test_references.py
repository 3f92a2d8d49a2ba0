"""conformance.references: each float64 reference function agrees with its spec's expression.

Examples are drawn from the spec (``examples`` + ``materialize``); the expression is evaluated by
the NumPy backend. The same comparison tells a deliberately wrong variant of each reference apart,
on an example where the two formulations differ.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from conformance.evaluate import NumpyBackend, evaluate
from conformance.references import BUILTIN, REFERENCES, Reference, is_ref, reference_function
from conformance.refs import ImplementationError
from conformance.spec import EquationSpec
from conformance.strategies import Example, examples, materialize
from tests.spec_helpers import shipped_specs

FEW = settings(max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def expression_value(spec: EquationSpec, env: dict[str, Any]) -> np.ndarray:
    """The spec's oracle expression (its ``let`` bindings first) in float64 NumPy."""
    scope = dict(env)
    for name, expr in spec.oracle.let:
        scope[name] = evaluate(expr, scope, NumpyBackend())
    return np.asarray(evaluate(spec.oracle.expr, scope, NumpyBackend()), dtype=np.float64)


def agree(actual: np.ndarray, expected: np.ndarray) -> bool:
    """Equal shapes and values within float64 rounding at the result's scale."""
    actual = np.asarray(actual, dtype=np.float64)
    if actual.shape != expected.shape:
        return False
    scale = max(float(np.max(np.abs(expected), initial=0.0)), np.finfo(np.float64).tiny)
    return bool(np.all(np.abs(actual - expected) <= 1e-12 * scale))


def test_every_shipped_spec_names_its_reference() -> None:
    """Every registered reference is used by a shipped spec; the others name a function beside their spec
    (``titans_reference.py:...``), which resolves."""
    named = {spec.oracle.reference for spec in shipped_specs().values() if spec.oracle is not None and spec.oracle.reference}
    assert {n for n in named if not is_ref(n)} == set(REFERENCES)
    for spec in shipped_specs().values():
        if spec.oracle is not None and spec.oracle.reference and is_ref(spec.oracle.reference):
            assert callable(reference_function(spec)), spec.id


@pytest.mark.parametrize("spec_id", ["attention", "rmsnorm", "surprise"])
def test_reference_agrees_with_the_spec_expression(spec_id: str) -> None:
    spec = shipped_specs()[spec_id]
    reference = REFERENCES[spec.oracle.reference]

    @FEW
    @given(example=examples(spec, "float64"))
    def prop(example: Example) -> None:
        env = materialize(spec, example)
        actual, expected = reference(**env), expression_value(spec, env)
        assert agree(actual, expected), f"max |difference| {np.max(np.abs(actual - expected)):.3g}"

    prop()


# -- wrong variants --------------------------------------------------------------------------------
def attention_unscaled(Q: np.ndarray, K: np.ndarray, V: np.ndarray, mask: np.ndarray, is_causal: bool, **_: Any) -> np.ndarray:
    """No 1/sqrt(d_k)."""
    return REFERENCES["attention"](Q * np.sqrt(Q.shape[-1]), K, V, mask, is_causal, Q.shape[-2], K.shape[-2])


def attention_bottom_right(
    Q: np.ndarray, K: np.ndarray, V: np.ndarray, mask: np.ndarray, Lq: int, Lk: int, **_: Any
) -> np.ndarray:
    """Causal mask aligned bottom-right (j <= i + Lk - Lq) instead of top-left."""
    allowed = np.asarray(mask, dtype=bool) & (np.arange(Lk)[None, :] <= np.arange(Lq)[:, None] + (Lk - Lq))
    return REFERENCES["attention"](Q, K, V, allowed, False, Lq, Lk)


def rmsnorm_eps_outside(x: np.ndarray, weight: np.ndarray, eps: float, **_: Any) -> np.ndarray:
    """ε outside the square root."""
    return x * weight / (np.sqrt(np.mean(x**2, axis=-1, keepdims=True)) + eps)


def surprise_mean(hidden: np.ndarray, memory_pred: np.ndarray, **_: Any) -> np.ndarray:
    """A mean over features instead of a sum."""
    return np.mean((hidden - memory_pred) ** 2, axis=-1)


ATTENTION_CAUSAL = Example(
    {"B": 1, "H": 2, "Lq": 3, "Lk": 5, "Dk": 4, "Dv": 2},
    {"is_causal": True, "dropout_p": 0.0},
    {"Q": 1.0, "K": 1.0, "V": 1.0},
    {"mask": False},
    11,
)
WRONG: list[tuple[str, Callable[..., np.ndarray], Example]] = [
    ("attention", attention_unscaled, ATTENTION_CAUSAL),
    ("attention", attention_bottom_right, ATTENTION_CAUSAL),
    ("rmsnorm", rmsnorm_eps_outside, Example({"B": 1, "L": 2, "D": 8}, {"eps": 1e-3}, {"x": 0.05, "weight": 1.0}, {}, 5)),
    ("surprise", surprise_mean, Example({"B": 2, "L": 2, "D": 3}, {}, {"hidden": 1.0, "memory_pred": 1.0}, {}, 7)),
]


@pytest.mark.parametrize(("spec_id", "wrong", "example"), WRONG, ids=[w.__name__ for _, w, _ in WRONG])
def test_wrong_variant_disagrees_where_the_reference_agrees(
    spec_id: str, wrong: Callable[..., np.ndarray], example: Example
) -> None:
    spec = shipped_specs()[spec_id]
    env = materialize(spec, example)
    expected = expression_value(spec, env)
    assert agree(REFERENCES[spec.oracle.reference](**env), expected)
    assert not agree(wrong(**env), expected)


# -- records and reference_function -------------------------------------------------------------------
def _spec_naming(reference: str, file: Path) -> Any:
    """What reference_function reads of a spec: its id, file and oracle.reference."""
    return SimpleNamespace(id="s", file=str(file), oracle=SimpleNamespace(reference=reference))


def test_builtins_are_reference_records_with_their_citation() -> None:
    assert {r.name for r in BUILTIN} == {"attention", "rmsnorm", "surprise"}
    assert all(isinstance(REFERENCES[r.name], Reference) and r.doc for r in BUILTIN)
    assert "Zhang & Sennrich Eq. 4" in REFERENCES["rmsnorm"].doc


def test_a_registered_name_and_a_ref_beside_the_spec_give_the_function(tmp_path: Path) -> None:
    def doubled(x: np.ndarray, **_: Any) -> np.ndarray:
        """2x."""
        return 2 * x

    record = REFERENCES.register(Reference.of(doubled, "doubled_for_test"))
    try:
        assert reference_function(_spec_naming("doubled_for_test", tmp_path / "s.yaml")) is doubled
    finally:
        REFERENCES.unregister(record.name)
    (tmp_path / "refs_beside.py").write_text(
        "from conformance.references import Reference\n\n\n"
        "def tripled(x, **_):\n    return 3 * x\n\n\n"
        "RECORD = Reference('tripled', tripled, doc='3x')\n"
    )
    spec_file = tmp_path / "s.yaml"
    fn = reference_function(_spec_naming("refs_beside.py:tripled", spec_file))
    assert fn(x=np.array([1.0])).tolist() == [3.0]
    assert reference_function(_spec_naming("refs_beside.py:RECORD", spec_file)) is fn.__globals__["RECORD"].function


@pytest.mark.parametrize(
    ("reference", "error", "message"),
    [
        ("no_such_reference", KeyError, "unknown reference oracle 'no_such_reference'"),
        ("missing.py:fn", ImplementationError, "not found"),
        ("os:system", ImplementationError, "standard library"),
        ("refs_beside.py:VALUE", TypeError, "is not a function \\(got int\\)"),
    ],
)
def test_a_reference_that_cannot_be_used_is_refused(tmp_path: Path, reference: str, error: type, message: str) -> None:
    (tmp_path / "refs_beside.py").write_text("VALUE = 3\n")
    with pytest.raises(error, match=message):
        reference_function(_spec_naming(reference, tmp_path / "s.yaml"))


def test_a_reference_record_checks_its_fields() -> None:
    with pytest.raises(TypeError, match="'function' must be callable"):
        Reference("r", 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="a registered name has no ':'"):
        Reference("a.py:r", lambda **_: 0)
