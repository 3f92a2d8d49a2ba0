"""The ``gradient`` check where a spec's oracle is a reference function, not SymPy expressions.

A reference that takes ``xp`` (its array namespace, :func:`conformance.references.accepts_namespace`) is called
with ``xp=torch`` on float64 tensors and differentiated by autograd:

- the expected vector-Jacobian products: autograd through the float64 reference, the cotangent random (as for
  the expressions, :func:`conformance.strategies.cotangent`);
- the same-precision reference's: :data:`ROUNDING_DRAWS` realizations of the same function at the compute dtype,
  the largest error over them the baseline — run natively in that dtype (torch's own rounding, forward and
  backward, the sums autograd accumulates included), then in float64 with a ``precision`` that rounds the result
  of every operation in the forward pass and every adjoint in the backward pass faithfully (:class:`Rounding`:
  each exact result moved by up to half an ulp before rounding, as in :func:`conformance.checks._rounding_reference`),
  so that two correct evaluation orders' different errors are both within reach;
- at float64 the reference is the oracle itself, so the baseline is measured at the stand-in dtype and rescaled
  (:func:`conformance.tolerance.reference_baselines`);
- the noise floor per element at the summed magnitude of the terms of the float64 reference's backward pass
  (:func:`reference_terms`, :mod:`conformance.gradient_terms`), where the chain rule's terms cancel;
- at every dtype, per element, the reference gradient's spread over inputs moved by a few ulps of the tested dtype
  (its conditioning, :func:`_spread`; at float64 the oracle's own rounding, as :func:`conformance.checks.own_spread`).

The tolerance is then the spec's rule, as for every other comparison (docs/spec-schema.md, Tolerances): 2 × the
baseline plus the noise floor at the terms' magnitude plus 2 × the spread. One output's gradient with respect
to one input whose tolerance is vacuous is left out of the example (:func:`judged`). A reference without ``xp``
(NumPy only) cannot be differentiated: the case is skipped before any example is drawn, saying so
(:func:`require_differentiable`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from conformance import dtype_helpers as dh
from conformance.checks import OWN_DRAWS, OWN_ULPS, CheckSkipped, Trial, _finite_change, _labelled, implementation_vjps, perturbed
from conformance.gradient_terms import UnknownAdjointOp, terms
from conformance.references import accepts_namespace, reference_function
from conformance.tolerance import OWN_BASIS, Measurement, compare, max_abs, reference_baselines, worst

ROUNDING_DRAWS = 4  # as conformance.checks.ROUNDING_DRAWS: draw 0 native in the dtype, the others faithful roundings

Grads = list[list[np.ndarray]]  # [output][wrt input]


class Rounding:
    """``precision`` for a differentiable reference: rounds a float64 tensor to ``dtype`` (and back to float64) in
    the forward pass, and its adjoint the same way in the backward pass. Draw 0 rounds to nearest; a later draw
    first moves each exact value by a uniform factor ``1 + u · eps(dtype)``, ``u`` in [−½, ½] (a faithful rounding,
    as libm's functions and GPU kernels round)."""

    def __init__(self, dtype: str, draw: int = 0) -> None:
        self.dtype, self.draw = dtype, draw
        self.unit = dh.eps(dtype)
        self.generator = torch.Generator().manual_seed(0x7A11 + draw)

    def round(self, a: torch.Tensor) -> torch.Tensor:
        if self.draw:
            u = torch.rand(a.shape, generator=self.generator, dtype=torch.float64) - 0.5
            a = a * (1.0 + u * self.unit)
        return a.to(dh.torch_dtype(self.dtype)).to(torch.float64)

    def __call__(self, a: Any) -> torch.Tensor:
        return _RoundBothWays.apply(torch.as_tensor(a, dtype=torch.float64), self)


class _RoundBothWays(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, rounding: Rounding) -> torch.Tensor:  # type: ignore[override]
        ctx.rounding = rounding
        return rounding.round(a)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return ctx.rounding.round(grad), None


def differentiable(spec: Any) -> bool:
    """Whether the spec's reference function takes ``xp`` (so autograd can run through it)."""
    return spec.oracle is not None and spec.oracle.reference is not None and accepts_namespace(reference_function(spec))


def require_differentiable(spec: Any) -> None:
    """Raise :class:`~conformance.checks.CheckSkipped` (the case's reason) where the reference takes no ``xp``."""
    if not differentiable(spec):
        raise CheckSkipped(
            f"the reference oracle {spec.oracle.reference!r} takes no 'xp' (NumPy only), so no autograd runs "
            "through it: its gradients are checked by gradcheck in float64 only (docs/spec-schema.md, Differentiable references)"
        )


def _forward(
    t: Trial, env: Mapping[str, Any], precision: Rounding | None, dtype: str
) -> tuple[tuple[torch.Tensor, ...], list[torch.Tensor]]:
    """The reference's outputs (a graph through it, ``xp=torch``, on CPU) and the ``wrt`` leaves, at ``dtype``."""
    inputs = t.tensors(env, dtype=dtype, device="cpu", requires_grad=t.spec.grad_wrt)
    result = reference_function(t.spec)(**{**t.scalars_of(env), **inputs}, precision=precision, xp=torch)
    return (result if len(t.outputs) > 1 else (result,)), [inputs[w] for w in t.spec.grad_wrt]


def _per_input(env: Mapping[str, Any], wrt: Sequence[str], grads: Sequence[torch.Tensor | None]) -> list[np.ndarray]:
    """Float64 arrays, zeros where an output does not reach an input."""
    return [np.zeros(np.shape(env[w])) if g is None else dh.to_numpy64(g) for w, g in zip(wrt, grads)]


def reference_vjps(
    t: Trial, env: Mapping[str, Any], cots64: Sequence[np.ndarray], precision: Rounding | None = None, dtype: str = "float64"
) -> Grads:
    """Per output, the vector-Jacobian products of the reference at ``env`` (every ``wrt`` input; zeros where an
    output does not depend on it), on CPU: in float64, exact (``precision`` None) or rounded by ``precision`` both
    ways; or computed natively in ``dtype`` (torch's own rounding, the sums autograd accumulates included)."""
    outs, leaves = _forward(t, env, precision, dtype)
    grads: Grads = []
    for out, cot in zip(outs, cots64):
        cot_t = dh.to_torch(np.asarray(cot, dtype=np.float64), dtype, "cpu")
        if precision is not None:
            cot_t = precision.round(cot_t)
        per: Sequence[torch.Tensor | None] = [None] * len(leaves)
        if out.requires_grad:
            per = torch.autograd.grad(out, leaves, cot_t, allow_unused=True, retain_graph=True)
        grads.append(_per_input(env, t.spec.grad_wrt, per))
    return grads


def reference_terms(t: Trial, env: Mapping[str, Any], cots64: Sequence[np.ndarray]) -> Grads | None:
    """Per output and ``wrt`` input, element by element: the summed magnitude of the terms of the float64 reference's
    vector-Jacobian product (:func:`conformance.gradient_terms.terms`) — the noise floor's scale, as the chain rule's
    term bound is for an expression; ``None`` where its backward pass uses an operation the bound does not know."""
    outs, leaves = _forward(t, env, None, "float64")
    bounds: Grads = []
    try:
        for out, cot in zip(outs, cots64):
            per = terms(out, leaves, torch.as_tensor(cot, dtype=torch.float64)) if out.requires_grad else [None] * len(leaves)
            bounds.append(_per_input(env, t.spec.grad_wrt, per))
    except UnknownAdjointOp:
        return None
    return bounds


def _rounded_error(
    t: Trial, env: Mapping[str, Any], cots64: Sequence[np.ndarray], expected: Grads, at: str, result_dtype: str | None = None
) -> Grads:
    """Per output and input, the largest error of the same-precision reference computing in ``at`` (its gradients
    rounded to ``result_dtype``, by default ``at``) over :data:`ROUNDING_DRAWS` realizations: the reference run
    natively in ``at`` (torch's rounding of every operation and of every sum autograd accumulates in the backward
    pass), then in float64 with every result and adjoint rounded faithfully (:class:`Rounding`, draws 1, 2, …)."""
    errors = [[0.0] * len(row) for row in expected]
    overflowed = [[0] * len(row) for row in expected]
    for draw in range(ROUNDING_DRAWS):
        if draw == 0:
            vjps = reference_vjps(t, env, cots64, dtype=at)
        else:
            vjps = reference_vjps(t, env, cots64, Rounding(at, draw))
        for k, row in enumerate(vjps):
            for j, (r, e) in enumerate(zip(row, expected[k])):
                error = max_abs(dh.round_to(r, result_dtype or at), e)
                # a realization that overflows (an intermediate past the dtype's range in this evaluation order)
                # says nothing of a correct computation's rounding; where every one does, the baseline is inf (none)
                errors[k][j] = max(errors[k][j], error) if math.isfinite(error) else errors[k][j]
                overflowed[k][j] += not math.isfinite(error)
    return [[math.inf if n == ROUNDING_DRAWS else e for e, n in zip(row, ns)] for row, ns in zip(errors, overflowed)]


def _spread(t: Trial, env: Mapping[str, Any], cots64: Sequence[np.ndarray], expected: Grads) -> Grads:
    """Per output and input, element by element: the float64 reference gradient's largest change over inputs moved by
    up to :data:`~conformance.checks.OWN_ULPS` ulps of the tested dtype (:func:`~conformance.checks.perturbed`, its
    :data:`~conformance.checks.OWN_DRAWS` draws) — the gradient's conditioning at that precision.

    Why at every dtype, not only at float64 as for the expressions: the reference computes token by token, and a
    correct implementation in another form (the chunked, factored recurrence) rounds other intermediates; where the
    gradient cancels, their errors differ by more than one realization of the reference's shows, but a backward-stable
    computation's stays within what a few ulps of its inputs change (the forward error is bounded by the conditioning
    times the backward error)."""
    spread = [[np.zeros(np.shape(g)) for g in row] for row in expected]
    for draw in range(OWN_DRAWS):
        moved = reference_vjps(t, perturbed(t.spec, env, t.example.seed, draw, dtype=t.dtype), cots64)
        for k, row in enumerate(moved):
            for j, g in enumerate(row):
                spread[k][j] = np.maximum(spread[k][j], _finite_change(g, expected[k][j]))
    return spread


def check_reference_gradient(t: Trial) -> Measurement:
    """The implementation's vector-Jacobian products (per output, per ``wrt`` input) against autograd through the
    float64 reference; skipped where the reference takes no ``xp``. The reference runs once per rounding draw for
    every output (the expensive part is running it, not comparing)."""
    env = t.rounded(t.env64)
    found = implementation_vjps(t, env)
    if isinstance(found, Measurement):
        return found
    grads, cots64 = found
    expected = reference_vjps(t, env, cots64)
    baselines = _batched_baselines(t, env, cots64, expected)
    own = _spread(t, env, cots64, expected)
    bounds = reference_terms(t, env, cots64)
    basis = OWN_BASIS if t.dtype == "float64" else f"the gradient's change with inputs {OWN_ULPS:g} ulps of {t.dtype} away"
    several = len(t.outputs) > 1
    measurements = []
    for k, name in enumerate(t.outputs):
        for j, w in enumerate(t.spec.grad_wrt):
            e = expected[k][j]
            scale = None if bounds is None else np.maximum(np.abs(e), bounds[k][j])  # per element: its terms' magnitude
            m = compare(dh.to_numpy64(grads[k][j]), e, dtype=t.dtype, rule=t.rule, baseline=baselines[k][j], scale=scale,
                        own=own[k][j], own_basis=basis)
            measurements.append(_labelled(m, f"{name} → ∂/∂{w}" if several else f"∂/∂{w}"))
    return judged(measurements)


def judged(measurements: Sequence[Measurement]) -> Measurement:
    """The worst of the comparisons that could fail: one output's gradient with respect to one input that lies below
    the dtype's resolution (∂S_T/∂S_0 = Π η_t in float16) has a vacuous tolerance and proves nothing, but the
    others of the example still do; the example is not judged only where every comparison is vacuous.

    >>> ok, v = Measurement(1.0, 1.0, None, True), Measurement(0.0, 0.0, None, False, vacuous=True)
    >>> judged([ok, v]) is ok, judged([v, v]) is v
    (True, True)
    """
    informative = [m for m in measurements if not m.vacuous]
    return worst(informative or measurements)


def _batched_baselines(t: Trial, env: Mapping[str, Any], cots64: Sequence[np.ndarray], expected: Grads) -> Grads:
    """:func:`_baselines`, the reference run once per draw for every output (not once per output)."""
    cache: dict[str, Grads] = {}

    def errors(at: str) -> Grads:
        if at not in cache:
            if at == t.dtype:
                cache[at] = _rounded_error(t, env, cots64, expected, t.compute_dtype, t.dtype)
            else:
                low = t.rounded(env, at)
                cots_low = [dh.round_to(c, at) for c in cots64]
                cache[at] = _rounded_error(t, low, cots_low, reference_vjps(t, low, cots_low), at)
        return cache[at]

    return [reference_baselines(t.dtype, lambda at, k=k: errors(at)[k], stand_in=t.stand_in) or [] for k in range(len(expected))]


__all__ = [
    "ROUNDING_DRAWS", "Rounding", "check_reference_gradient", "differentiable", "judged", "reference_terms", "reference_vjps",
    "require_differentiable",
]
