"""The checks: one example, one (spec, implementation, device, dtype, check) → a Measurement.

Check names (each traceable to a spec line):

- ``oracle`` — the equation: implementation vs the SymPy oracle in float64 (spec ``oracle``).
- ``output_contract`` — output shape (from the spec's symbols), dtype and device (spec ``outputs``).
- ``determinism`` — two calls on the same inputs are bitwise equal.
- ``invariant:<id>`` — a declared invariant (spec ``invariants``).
- ``gradient`` — vector-Jacobian product with a random cotangent vs autograd through the oracle
  expression in float64 (spec ``gradients``), every dtype.
- ``gradcheck`` / ``gradgradcheck`` — finite differences in float64; fast mode first, slow mode
  before a failure is reported.
- ``oracle_agreement`` — per spec: the SymPy oracle vs the plain float64 reference function.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from conformance import dtype_helpers as dh
from conformance.calling import build_callable
from conformance.error_bounds import AbsBoundBackend
from conformance.evaluate import NumpyBackend, TorchBackend, evaluate
from conformance.invariants import INVARIANT_KINDS
from conformance.references import REFERENCES
from conformance.spec import EquationSpec
from conformance.strategies import Example, cotangent, materialize, shape_of
from conformance.tolerance import Measurement, compare, derive, max_abs

BASE_CHECKS = ("oracle", "output_contract", "determinism")


class CheckFailure(AssertionError):
    """A check whose measured error exceeded its tolerance (or whose contract was broken)."""


def checks_for(spec: EquationSpec, dtype: str) -> list[str]:
    """Every check generated for one implementation at ``dtype``, in report order."""
    if spec.oracle is None:
        return []  # a spec of pattern checks only (see conformance.patterns)
    names = list(BASE_CHECKS) + [f"invariant:{inv.id}" for inv in spec.invariants]
    if spec.grad_wrt and spec.oracle.expr is not None:
        names.append("gradient")
    if spec.grad_wrt and dtype == "float64":
        names.append("gradcheck")
        if spec.grad_order >= 2:
            names.append("gradgradcheck")
    return names


def source_line(spec: EquationSpec, check: str) -> int:
    """The spec line a check comes from."""
    if check.startswith("invariant:"):
        return next(inv.line for inv in spec.invariants if inv.id == check.split(":", 1)[1])
    pattern = next((p for p in spec.patterns if p.check == check), None)
    if pattern is not None:
        return pattern.line
    if check in ("oracle", "oracle_agreement", "gradient") and spec.oracle is not None:
        return spec.oracle.line or spec.line
    return spec.line


@dataclass
class Trial:
    """One example of one spec at one device and dtype, for one implementation."""

    spec: EquationSpec
    ref: str
    device: str
    dtype: str
    example: Example

    def __post_init__(self) -> None:
        self.scalars = {**self.example.sizes, **self.example.params}
        self.env64 = materialize(self.spec, self.example)
        self.rule = self.spec.tolerance_rule(self.dtype)
        self.fn = build_callable(self.spec, self.ref, self.scalars, self.device, self.dtype, self.example.present)
        self.compute_dtype = self.spec.oracle.compute_dtype.get(self.dtype, self.dtype)

    # -- inputs --------------------------------------------------------------------------------
    def rounded(self, env: Mapping[str, Any]) -> dict[str, Any]:
        """Inputs rounded to the tested dtype (what the implementation sees), still float64."""
        return {k: dh.round_to(v, self.dtype) if k in self.spec.inputs else v for k, v in env.items()}

    def tensors(
        self, env: Mapping[str, Any], dtype: str | None = None, device: str | None = None, requires_grad: tuple[str, ...] = ()
    ) -> dict[str, torch.Tensor]:
        out = {}
        for name in self.spec.inputs:
            t = dh.to_torch(env[name], dtype or self.dtype, device or self.device)
            out[name] = t.requires_grad_(name in requires_grad)
        return out

    # -- the three evaluators -------------------------------------------------------------------
    def implementation(self, env: Mapping[str, Any]) -> np.ndarray:
        with torch.no_grad():
            return dh.to_numpy64(self.fn(self.tensors(env)))

    def oracle(self, env: Mapping[str, Any]) -> np.ndarray:
        """The float64 oracle: the spec's SymPy expression, else its reference function."""
        if self.spec.oracle.expr is None:
            return np.asarray(REFERENCES[self.spec.oracle.reference](**env), dtype=np.float64)
        return np.asarray(_expr_value(self.spec, dict(env), NumpyBackend()), dtype=np.float64)

    def reference(self, env: Mapping[str, Any]) -> np.ndarray | None:
        """The same-precision reference: the expression in the compute dtype, rounded to the dtype."""
        if self.spec.oracle.expr is None:
            return None
        with torch.no_grad():
            scope = {**self.scalars, **self.tensors(env, self.compute_dtype)}
            value = _expr_value(self.spec, scope, TorchBackend(dh.torch_dtype(self.compute_dtype), self.device))
            return dh.to_numpy64(value.to(dh.torch_dtype(self.dtype)))


def _expr_value(spec: EquationSpec, scope: dict[str, Any], backend: Any) -> Any:
    for name, expr in spec.oracle.let:
        scope[name] = evaluate(expr, scope, backend)
    return evaluate(spec.oracle.expr, scope, backend)


# -- the checks -----------------------------------------------------------------------------------
def check_oracle(t: Trial) -> Measurement | None:
    env = t.rounded(t.env64)
    expected = t.oracle(env)
    if not _representable(expected, t.dtype):
        return None
    return compare(t.implementation(env), expected, dtype=t.dtype, rule=t.rule, reference=t.reference(env))


def _representable(values: np.ndarray, dtype: str) -> bool:
    """Whether the exact result fits the dtype; an example whose answer overflows it is out of domain."""
    return bool(np.all(np.abs(values[np.isfinite(values)]) <= dh.max_value(dtype)))


def check_output_contract(t: Trial) -> Measurement:
    with torch.no_grad():
        out = t.fn(t.tensors(t.rounded(t.env64)))
    (spec_out,) = t.spec.outputs.values()
    expected = shape_of(spec_out.shape, t.example.sizes)
    problems = []
    if tuple(out.shape) != expected:
        problems.append(f"shape {tuple(out.shape)} != {expected} ({spec_out.name}: {list(spec_out.shape)})")
    if out.dtype != dh.torch_dtype(t.dtype):
        problems.append(f"dtype {out.dtype} != {dh.torch_dtype(t.dtype)}")
    if out.device.type != torch.device(t.device).type:
        problems.append(f"device {out.device} != {t.device}")
    return Measurement(0.0, 0.0, None, not problems, "; ".join(problems))


def check_determinism(t: Trial) -> Measurement:
    env = t.rounded(t.env64)
    first, second = t.implementation(env), t.implementation(env)
    err = max_abs(first, second)
    same = bool(np.array_equal(first, second, equal_nan=True))
    return Measurement(err, err, None, same, "" if same else f"two calls differ by up to {err:.4g} (bitwise equality expected)")


def check_invariant(t: Trial, invariant_id: str) -> Measurement | None:
    """``None`` when the transformed inputs are not representable in the dtype (example rejected)."""
    inv = next(i for i in t.spec.invariants if i.id == invariant_id)
    kind = INVARIANT_KINDS[inv.kind]
    (out_name,) = t.spec.outputs
    rng = np.random.default_rng([t.example.seed, sum(map(ord, inv.id))])
    plan = kind.plan(inv.options, t.env64, rng, out_name)
    env_a, env_b = t.rounded(plan.env_a), t.rounded(plan.env_b)
    if not all(np.all(np.isfinite(env_b[n])) for n, i in t.spec.inputs.items() if i.kind == "real"):
        return None

    def relation(f: Callable[[Mapping[str, Any]], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return plan.relate(f(env_a), f(env_b), env_a, env_b)

    oracle_a, oracle_b = t.oracle(env_a), t.oracle(env_b)
    if not (_representable(oracle_a, t.dtype) and _representable(oracle_b, t.dtype)):
        return None
    o_lhs, o_rhs = plan.relate(oracle_a, oracle_b, env_a, env_b)
    lhs, rhs = relation(t.implementation)
    slack = max_abs(o_lhs, o_rhs)
    baseline = None
    if t.spec.oracle.expr is not None:
        baseline = max_abs(*relation(t.reference))  # type: ignore[arg-type]
    scale = max(float(np.max(np.abs(o_lhs), initial=0.0)), float(np.max(np.abs(o_rhs), initial=0.0)))
    tol = derive(t.dtype, baseline=baseline, scale=scale, rule=t.rule, slack=slack if np.isfinite(slack) else 0.0)
    err = max_abs(lhs, rhs)
    passed = err <= tol.atol
    detail = "" if passed else f"{inv.description}: |lhs − rhs| {err:.4g} > tolerance {tol.atol:.4g} = {tol.describe()}"
    return Measurement(err, err / scale if scale > 0 else err, tol, passed, detail)


def check_gradient(t: Trial) -> Measurement:
    env = t.rounded(t.env64)
    wrt = t.spec.grad_wrt
    inputs = t.tensors(env, requires_grad=wrt)
    out = t.fn(inputs)
    cot64 = dh.round_to(cotangent(tuple(out.shape), t.example.seed), t.dtype)
    grads = torch.autograd.grad(out, [inputs[w] for w in wrt], dh.to_torch(cot64, t.dtype, t.device), allow_unused=True)
    missing = [w for w, g in zip(wrt, grads) if g is None]
    if missing:
        return Measurement(float("inf"), float("inf"), None, False, f"no gradient reaches {', '.join(missing)}")
    expected = _expr_grads(t, env, cot64, "float64", "cpu")
    reference = _expr_grads(t, env, cot64, t.compute_dtype, t.device)
    # the noise floor's scale: the summed magnitude of the terms (see conformance.error_bounds)
    bounds = _expr_grads(t, env, np.abs(cot64), "float64", "cpu", backend=AbsBoundBackend)
    worst: Measurement | None = None
    for w, g, e, r, b in zip(wrt, grads, expected, reference, bounds):
        scale = max(float(np.max(np.abs(e), initial=0.0)), float(np.max(b, initial=0.0)))
        m = compare(dh.to_numpy64(g), e, dtype=t.dtype, rule=t.rule, reference=dh.round_to(r, t.dtype), scale=scale)
        if not m.passed:
            m = Measurement(m.max_abs_err, m.max_rel_err, m.tolerance, False, f"∂/∂{w}: {m.detail}")
        if worst is None or m.ratio > worst.ratio:
            worst = m
    assert worst is not None
    return worst


def _expr_grads(
    t: Trial, env: Mapping[str, Any], cot64: np.ndarray, dtype: str, device: str, *, backend: type = TorchBackend
) -> list[np.ndarray]:
    """Vector-Jacobian products of the oracle expression (autograd through the evaluator)."""
    wrt = t.spec.grad_wrt
    inputs = t.tensors(env, dtype=dtype, device=device, requires_grad=wrt)
    out = _expr_value(t.spec, {**t.scalars, **inputs}, backend(dh.torch_dtype(dtype), device))
    grads = torch.autograd.grad(out, [inputs[w] for w in wrt], dh.to_torch(cot64, dtype, device), allow_unused=True)
    return [dh.to_numpy64(g) if g is not None else np.zeros(np.shape(env[w])) for w, g in zip(wrt, grads)]


def check_gradcheck(t: Trial, order: int) -> Measurement:
    env = t.rounded(t.env64)
    base = t.tensors(env, dtype="float64")
    wrt = t.spec.grad_wrt
    leaves = tuple(base[w].detach().requires_grad_(True) for w in wrt)

    def f(*xs: torch.Tensor) -> torch.Tensor:
        return t.fn({**base, **dict(zip(wrt, xs))})

    check = torch.autograd.gradcheck if order == 1 else torch.autograd.gradgradcheck
    if check(f, leaves, fast_mode=True, raise_exception=False):
        return Measurement(0.0, 0.0, None, True)
    try:  # fast mode has had false failures: confirm in slow mode before reporting
        check(f, leaves, fast_mode=False, raise_exception=True)
    except Exception as exc:  # gradcheck raises GradcheckError (a RuntimeError) with the Jacobians
        return Measurement(
            float("nan"), float("nan"), None, False, f"{'grad' if order == 1 else 'gradgrad'}check (slow mode): {exc}"
        )
    return Measurement(0.0, 0.0, None, True, "fast mode failed, slow mode passed")


def run_check(spec: EquationSpec, ref: str, device: str, dtype: str, check: str, example: Example) -> Measurement | None:
    """Run one named check on one example; ``None`` rejects the example (not applicable)."""
    t = Trial(spec, ref, device, dtype, example)
    if check == "oracle":
        return check_oracle(t)
    if check == "output_contract":
        return check_output_contract(t)
    if check == "determinism":
        return check_determinism(t)
    if check == "gradient":
        return check_gradient(t)
    if check == "gradcheck":
        return check_gradcheck(t, 1)
    if check == "gradgradcheck":
        return check_gradcheck(t, 2)
    if check.startswith("invariant:"):
        return check_invariant(t, check.split(":", 1)[1])
    raise ValueError(f"unknown check {check!r}")


def check_oracle_agreement(spec: EquationSpec, example: Example) -> Measurement:
    """The SymPy oracle vs the spec's float64 reference function, both in float64."""
    env = materialize(spec, example)
    expected = np.asarray(_expr_value(spec, dict(env), NumpyBackend()), dtype=np.float64)
    actual = np.asarray(REFERENCES[spec.oracle.reference](**env), dtype=np.float64)
    return compare(actual, expected, dtype="float64", rule=spec.tolerance_rule("float64"))
