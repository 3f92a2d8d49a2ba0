"""The gradient audit's own checks (``conformance/grad_audit_checks.py``): each planted defect of
``tests/grad_audit/planted.py`` is caught by the check named, with a message naming the defect; the shipped
implementations of a few differentiable specs pass every audit check; the records apply where they should.
"""

from __future__ import annotations

from functools import cache

import pytest

from conformance import engine
from conformance.registry import CHECKS
from conformance.results import Result
from conformance.selection import implementation_checks
from conformance.spec import load_specs

PLANTED = "tests/grad_audit/planted.py"
AUDIT_CHECKS = ("grad_options", "autograd_functions", "param_flow", "symbolic_gradient")


@cache
def audit(spec: str, impl: str | None = None) -> tuple[Result, ...]:
    """The gradient audit's CPU rows of ``spec`` (its shipped implementations, or ``impl`` planted in their place)."""
    plan = engine.Plan(
        audit=True, impl=(f"{spec}={impl}",) if impl else (), select=("cpu", f"{spec}-"), profile="conformance-ci"
    )
    return tuple(r for r in engine.run(plan) if r.spec == spec)


def row(rows: tuple[Result, ...], check: str, dtype: str = "float64") -> Result:
    found = [r for r in rows if r.check == check and r.dtype == dtype]
    assert len(found) == 1, f"expected one {check} row at {dtype}, got {[(r.check, r.dtype) for r in rows]}"
    return found[0]


def text(r: Result) -> str:
    return f"{r.message or ''} {r.detail or ''}"


def test_the_audit_checks_are_audit_only_gradient_records() -> None:
    for name in AUDIT_CHECKS:
        assert CHECKS[name].audit and CHECKS[name].family == "gradient", name
    specs = load_specs()
    conformance_run = {r.name for r in implementation_checks(specs["rmsnorm"], "cpu", "float64")}
    audited = {r.name for r in implementation_checks(specs["rmsnorm"], "cpu", "float64", audit=True)}
    assert not conformance_run & set(AUDIT_CHECKS)
    assert set(AUDIT_CHECKS) <= audited
    function_spec = {r.name for r in implementation_checks(specs["surprise"], "cpu", "float64", audit=True)}
    assert "param_flow" not in function_spec and {"grad_options", "autograd_functions", "symbolic_gradient"} <= function_spec
    reference_only = {r.name for r in implementation_checks(specs["memory_linear"], "cpu", "float64", audit=True)}
    assert "symbolic_gradient" not in reference_only, "no SymPy expression to differentiate"
    assert not {r.name for r in implementation_checks(specs["surprise"], "cpu", "float32", audit=True)} & set(AUDIT_CHECKS)


@pytest.mark.parametrize(
    ("defect", "check", "dtype", "fragments"),
    [
        ("wrong_factor", "grad_options", "float64", ("backward (check_undefined_grad", "Jacobian mismatch")),
        ("wrong_factor", "gradient", "float64", ("∂/∂hidden",)),
        ("wrong_factor", "symbolic_gradient", "float64", ("∂/∂hidden against sympy.diff of the oracle",)),
        ("wrong_sign", "symbolic_gradient", "float64", ("∂/∂memory_pred against sympy.diff of the oracle",)),
        ("ignores_grad_output", "symbolic_gradient", "float64", ("against sympy.diff of the oracle",)),
        ("wrong_sign", "grad_options", "float64", ("Jacobian mismatch",)),
        ("wrong_sign", "gradient", "float32", ("∂/∂memory_pred",)),
        ("ignores_grad_output", "grad_options", "float64", ("backward not multiplied by grad_output",)),
        ("ignores_grad_output", "gradcheck", "float64", ("backward not multiplied by grad_output",)),
        ("wrong_gradient_count", "autograd_functions", "float64",
         ("WrongCountFunction.backward returns 1 gradient for the 2 inputs of forward",)),
        ("not_twice_differentiable", "autograd_functions", "float64",
         ("SurpriseFunction.backward is not differentiable: its gradients carry no graph", "second-order gradients")),
        ("not_twice_differentiable", "gradgradcheck", "float64", ("Jacobian mismatch",)),
        ("overflows_in_float16", "gradient", "float16", ("inf",)),
    ],
)
def test_a_planted_defect_is_caught_by_the_check_named(defect: str, check: str, dtype: str, fragments: tuple[str, ...]) -> None:
    r = row(audit("surprise", f"{PLANTED}:{defect}"), check, dtype)
    assert r.outcome == "failed", f"{defect}: {check} at {dtype} is {r.outcome}: {text(r)}"
    for fragment in fragments:
        assert fragment in text(r), f"{defect}: {fragment!r} not in {text(r)!r}"


def test_float16_overflow_is_the_only_failure_of_its_defect() -> None:
    """Right in float64, float32 and bfloat16 (whose range holds 1e5): only float16's gradient fails."""
    failed = {(r.check, r.dtype) for r in audit("surprise", f"{PLANTED}:overflows_in_float16") if r.outcome != "passed"}
    assert failed == {("gradient", "float16")}


def test_the_guides_function_passes_first_order_audit_checks() -> None:
    """Not twice differentiable, but its first derivative is right: grad_options passes, with forward AD a note."""
    r = row(audit("surprise", f"{PLANTED}:not_twice_differentiable"), "grad_options")
    assert r.outcome == "passed", text(r)
    assert "forward-mode AD not supported" in (r.detail or "")


def test_an_unused_module_parameter_is_named() -> None:
    r = row(audit("rmsnorm", f"{PLANTED}:UnusedParameter"), "param_flow")
    assert r.outcome == "failed", text(r)
    assert "parameter bias is unused" in text(r)
    assert "parameter weight" not in text(r)


@pytest.mark.parametrize("spec", ["surprise", "rmsnorm"])
def test_the_shipped_implementations_pass_every_audit_check(spec: str) -> None:
    rows = audit(spec)
    assert {r.check for r in rows} >= {"grad_options", "autograd_functions"}
    bad = [(r.implementation, r.check, r.dtype, r.outcome, text(r)) for r in rows if r.outcome != "passed"]
    assert not bad, bad


def test_grad_options_reports_the_jacobian_error() -> None:
    """The row's errors: analytical vs finite-difference Jacobian, near rounding for a right gradient, large for a wrong one."""
    right = row(audit("surprise"), "grad_options")
    wrong = row(audit("surprise", f"{PLANTED}:wrong_factor"), "grad_options")
    assert right.max_abs_err is not None and right.max_abs_err < 1e-6
    assert wrong.max_rel_err is not None and wrong.max_rel_err > 1.0  # a factor 3 for 1: two times the Jacobian's size


def test_autograd_functions_lists_what_it_found() -> None:
    surprise = row(audit("surprise"), "autograd_functions")
    assert "SurpriseFunction (in the graph and in the module; backward returns 2 gradients" in (surprise.detail or "")
    assert "differentiable backward" in (surprise.detail or "")
    rmsnorm = row(audit("rmsnorm"), "autograd_functions")
    assert rmsnorm.detail == "no custom autograd.Function: autograd derives the backward"


def test_param_flow_names_the_configuration_audited() -> None:
    r = row(audit("rmsnorm"), "param_flow")
    assert r.outcome == "passed" and "1 of 1 parameters receive a finite, non-zero gradient" in (r.detail or ""), text(r)


def test_the_exact_vjp_is_eq_12s_closed_form() -> None:
    """sympy.diff of ℓ = Σ_j (h_j − m_j)² with cotangent c: ∂/∂h = 2c(h − m), ∂/∂m = −2c(h − m), worked out by hand."""
    import numpy as np

    from conformance import checks
    from conformance.strategies import cotangent
    from conformance.symbolic_gradient import exact_vjp
    from tests.spec_helpers import shipped_specs

    spec = shipped_specs()["surprise"]
    plan = engine.Plan(audit=True, select=("surprise-", "cpu", "symbolic_gradient"), profile="conformance-ci")
    (case,) = [c for c in plan.cases() if c.implementation == "implementations.surprise:compute_surprise"]
    from conformance.symbolic_gradient import _examples

    (example, *_) = _examples(case, plan.settings())
    t = checks.Trial(spec, case.implementation, "cpu", "float64", example)
    env = t.rounded(t.env64)
    h, m = np.asarray(env["hidden"]), np.asarray(env["memory_pred"])
    c = cotangent(h.shape[:-1], example.seed)
    by_hand = 2 * c[..., None] * (h - m)
    got = dict(zip(spec.grad_wrt, exact_vjp(t, env, [c])))
    np.testing.assert_allclose(got["hidden"], by_hand, rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(got["memory_pred"], -by_hand, rtol=1e-14, atol=1e-300)
