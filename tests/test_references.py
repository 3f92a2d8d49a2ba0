"""conformance.references: each float64 reference function agrees with its spec's expression.

Examples are drawn from the spec (``examples`` + ``materialize``); the expression is evaluated by
the NumPy backend. The same comparison tells a deliberately wrong variant of each reference apart,
on an example where the two formulations differ.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from conformance.evaluate import NumpyBackend, evaluate
from conformance.references import REFERENCES
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
    named = {spec.oracle.reference for spec in shipped_specs().values() if spec.oracle is not None and spec.oracle.reference}
    assert named == set(REFERENCES)


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
