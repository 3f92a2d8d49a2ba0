"""conformance.error_bounds: the backward pass of absolute values bounds the terms of a gradient.

Where terms cancel, the bound stays at their size while the gradient goes to zero; it is never
below |gradient| (a triangle inequality at every operation), and without cancellation it equals it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings

from conformance.error_bounds import AbsBoundBackend
from conformance.evaluate import TorchBackend, evaluate
from conformance.expr import parse
from conformance.spec import EquationSpec
from conformance.strategies import Example, cotangent, examples, materialize
from tests.spec_helpers import shipped_specs

F64 = torch.float64
FEW = settings(max_examples=15, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def vjp(text: str, values: dict[str, Any], wrt: str, cot: torch.Tensor, backend: type) -> torch.Tensor:
    """The vector-Jacobian product of expression ``text`` with respect to ``wrt``, through ``backend``."""
    scope = {k: v.detach().clone().requires_grad_(True) if k == wrt else v for k, v in values.items()}
    out = evaluate(parse(text), scope, backend(F64))
    (grad,) = torch.autograd.grad(out, scope[wrt], cot)
    return grad


def grad_and_bound(text: str, values: dict[str, Any], wrt: str, cot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return vjp(text, values, wrt, cot, TorchBackend), vjp(text, values, wrt, cot.abs(), AbsBoundBackend)


# -- cancellation ----------------------------------------------------------------------------------
def test_cancelling_terms_keep_their_size_in_the_bound() -> None:
    grad, bound = grad_and_bound("x**2 - 2*x", {"x": torch.tensor([1.0], dtype=F64)}, "x", torch.ones(1, dtype=F64))
    assert grad.tolist() == [0.0]  # 2x - 2 at x = 1
    assert bound.tolist() == [4.0]  # |2x| + |2|


def test_softmax_over_one_key_has_zero_gradient_and_a_nonzero_bound() -> None:
    x = torch.tensor([[0.3], [-1.2], [2.0]], dtype=F64)
    cot = torch.tensor([[1.0], [-2.0], [0.5]], dtype=F64)
    grad, bound = grad_and_bound("softmax(x, -1)", {"x": x}, "x", cot)
    assert torch.equal(grad, torch.zeros_like(x))  # the output is 1 whatever x is
    torch.testing.assert_close(bound, 2 * cot.abs())  # y (|g| + Σ y |g|) with y = 1


def test_attention_with_one_key_has_zero_query_gradient_and_a_nonzero_bound() -> None:
    gen = torch.Generator().manual_seed(1)
    values = {
        "Q": torch.randn(1, 1, 3, 4, generator=gen, dtype=F64),
        "K": torch.randn(1, 1, 1, 4, generator=gen, dtype=F64),
        "V": torch.randn(1, 1, 1, 2, generator=gen, dtype=F64),
        "Dk": 4,
    }
    cot = torch.randn(1, 1, 3, 2, generator=gen, dtype=F64)
    grad, bound = grad_and_bound("softmax(Q @ transpose(K) / sqrt(Dk), -1) @ V", values, "Q", cot)
    assert torch.equal(grad, torch.zeros_like(grad))
    assert bool((bound > 0).all())


# -- no cancellation -------------------------------------------------------------------------------
def test_bound_equals_the_gradient_without_cancellation() -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(3, 5, generator=gen, dtype=F64) + 0.1
    cot = torch.randn(3, generator=gen, dtype=F64)
    grad, bound = grad_and_bound("sum(x**2, -1)", {"x": x}, "x", cot)
    torch.testing.assert_close(bound, grad.abs(), rtol=1e-15, atol=0)
    torch.testing.assert_close(grad, 2 * x * cot[:, None], rtol=1e-15, atol=0)


def test_bound_takes_the_cotangent_magnitude() -> None:
    x = torch.tensor([0.5, -3.0, 2.0], dtype=F64)
    _, bound = grad_and_bound("x * x * x - x", {"x": x}, "x", -torch.ones(3, dtype=F64))
    torch.testing.assert_close(bound, 3 * x**2 + 1)


def test_abs_of_a_negative_value_is_bounded_by_its_magnitude() -> None:
    grad, bound = grad_and_bound("abs(x)", {"x": torch.tensor([-2.0, 3.0], dtype=F64)}, "x", torch.ones(2, dtype=F64))
    assert grad.tolist() == [-1.0, 1.0]
    assert bound.tolist() == [1.0, 1.0]


def test_a_variable_exponent_contributes_to_the_bound() -> None:
    values = {"x": torch.tensor([1.5, -0.5], dtype=F64)}
    grad, bound = grad_and_bound("2**x", values, "x", torch.ones(2, dtype=F64))
    torch.testing.assert_close(grad, 2 ** values["x"] * np.log(2.0))
    torch.testing.assert_close(bound, grad.abs())


# -- the shipped specs: the bound is never below |gradient| ----------------------------------------
def expr_vjps(spec: EquationSpec, env: dict[str, Any], cot: np.ndarray, backend: type) -> list[torch.Tensor]:
    """The VJPs of the spec's oracle expression (its ``let`` bindings first) for every ``grad_wrt`` input."""
    scope: dict[str, Any] = {}
    for name, value in env.items():
        if name in spec.inputs:
            tensor = torch.from_numpy(np.asarray(value))
            scope[name] = tensor.to(F64).requires_grad_(name in spec.grad_wrt) if tensor.dtype != torch.bool else tensor
        else:
            scope[name] = value
    be = backend(F64)
    for name, expr in spec.oracle.let:
        scope[name] = evaluate(expr, scope, be)
    out = evaluate(spec.oracle.expr, scope, be)
    return list(torch.autograd.grad(out, [scope[w] for w in spec.grad_wrt], torch.from_numpy(cot)))


def output_shape(spec: EquationSpec, env: dict[str, Any]) -> tuple[int, ...]:
    (out,) = spec.outputs.values()
    return tuple(env[d] if isinstance(d, str) else d for d in out.shape)


@pytest.mark.parametrize("spec_id", ["attention", "rmsnorm", "surprise"])
def test_bound_is_at_least_the_gradient_on_the_shipped_specs(spec_id: str) -> None:
    spec = shipped_specs()[spec_id]

    @FEW
    @given(example=examples(spec, "float64"))
    def prop(example: Example) -> None:
        env = materialize(spec, example)
        cot = cotangent(output_shape(spec, env), example.seed)
        grads = expr_vjps(spec, env, cot, TorchBackend)
        bounds = expr_vjps(spec, env, np.abs(cot), AbsBoundBackend)
        for name, grad, bound in zip(spec.grad_wrt, grads, bounds):
            slack = 1e-12 * float(bound.abs().max())  # the two are rounded differently
            excess = (grad.abs() - bound).max().item()
            assert excess <= slack, f"∂/∂{name}: |gradient| exceeds its bound by {excess:.3g}"

    prop()
