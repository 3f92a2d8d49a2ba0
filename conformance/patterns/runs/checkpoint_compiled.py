"""What runs for the ``compiled`` property of ``checkpoint_equivalence``: ``torch.compile`` of a checkpointed stack.

Eager checkpointing must be bitwise the plain stack (:mod:`conformance.patterns.runs.checkpoint_equivalence`);
a compiled module may fuse and reorder kernels, so it is held to the rule of
:mod:`conformance.tolerance` instead: every result of ``torch.compile(module)`` — output, buffers after
forward (BatchNorm running statistics), the input's gradient and every parameter's gradient — is
compared with the plain stack run in float64 on the same values, and may be off by at most 2 × what
the *eager* module at the tested dtype is off (the same-precision reference: fusion may round
differently, not worse) plus 8 ulps at the result's scale. At float64 the eager module *is* the
expected computation (its error is 0 by construction), so its float32 error, scaled by
eps(float64)/eps(float32), stands in for it (:func:`conformance.tolerance.rescaled_baseline`).

The stacks are fixed, not drawn (each new structure is a new compilation, seconds each on CPU): for
every ``checkpoint_every`` = k of the options, one stack of ``depth.max`` layers cycling through the
option ``layers`` in order, ``width.max`` wide, ``batch.max`` rows, input requiring grad, seed 0.
Dropout is refused for this property: compiled code draws its masks from a different random stream
than eager code, so equal outputs are not to be expected of a correct module.

>>> plan = compiled_plans(
...     {"checkpoint_every": [2], "depth": {"min": 1, "max": 3}, "width": {"min": 1, "max": 4},
...      "batch": {"min": 2, "max": 2}, "layers": ["linear", "layernorm"]})[0]
>>> [layer.kind for layer in plan.layers], plan.checkpoint_every, plan.batch
(['linear', 'layernorm', 'linear'], 2, 2)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import Tensor, nn

from conformance.dtype_helpers import to_numpy64
from conformance.patterns.helpers.checkpoint_stacks import Forward, module_forward, plain_forward, run_results
from conformance.patterns.helpers.compiling import fresh_compile, strict_compiled_calls
from conformance.patterns.helpers.stack_plans import DEFAULT_SCHEME, LayerPlan, StackPlan
from conformance.tolerance import Measurement, compare, max_abs, reference_baselines, stand_in_dtype, worst

if TYPE_CHECKING:
    from conformance.model import ToleranceRule

_ACTIVATIONS = ("gelu", "tanh", "silu", "relu")  # cycled, so several stacks see several activations
_NOTE = (
    "compiled vs the float64 plain stack; the eager module at the tested dtype is the same-precision reference "
    "(at float64: its float32 error, rescaled)"
)


def compiled_plans(options: Mapping[str, Any], scheme: str = DEFAULT_SCHEME) -> list[StackPlan]:
    """The fixed stacks of the ``compiled`` property, one per ``checkpoint_every`` value (module docstring)."""
    kinds, depth, width = options["layers"], options["depth"]["max"], options["width"]["max"]
    layers = []
    for i in range(depth):
        kind = kinds[i % len(kinds)]
        activation = _ACTIVATIONS[i % len(_ACTIVATIONS)] if kind in ("linear", "residual") else None
        layers.append(LayerPlan(kind, width, width, activation))
    batch = options["batch"]["max"]
    return [StackPlan(tuple(layers), k, batch, True, 0, scheme) for k in options["checkpoint_every"]]


def _maker(target: Any, plan: StackPlan, mode: str, compiled: bool) -> Callable[[nn.ModuleList], Forward]:
    """Builds the module under test on given layers, compiled or eager."""

    def make(layers: nn.ModuleList) -> Forward:
        module = module_forward(target, layers, plan, mode)
        return fresh_compile(module) if compiled else module

    return make


def check_compiled(
    target: Any, plan: StackPlan, device: str, dtype: str, modes: list[str], *, rule: ToleranceRule
) -> Measurement:
    """Every result of the compiled module against the float64 plain stack (module docstring), under ``rule``."""
    measurements = []
    for mode in modes:
        expected = run_results(plain_forward, plan, device, "float64", mode)
        eager_dtype = stand_in_dtype(dtype) or dtype
        eager = run_results(_maker(target, plan, mode, compiled=False), plan, device, eager_dtype, mode)
        with strict_compiled_calls():
            actual = run_results(_maker(target, plan, mode, compiled=True), plan, device, dtype, mode)
        for name in [*expected, *(n for n in actual if n not in expected)]:
            results = actual.get(name), expected.get(name), eager.get(name)
            measurements.append(_compare(f"{mode}: {name}", *results, dtype, rule))
    chosen = worst(measurements)  # a stack has at least one layer, so at least its output is compared
    if chosen.passed:
        return Measurement(chosen.max_abs_err, chosen.max_rel_err, chosen.tolerance, True, _NOTE)
    detail = f"{chosen.detail}; stack: {plan.describe()}"
    return Measurement(chosen.max_abs_err, chosen.max_rel_err, chosen.tolerance, False, detail)


def _compare(
    name: str, actual: Tensor | None, expected: Tensor | None, eager: Tensor | None, dtype: str, rule: ToleranceRule
) -> Measurement:
    """One result against the float64 plain stack's; a missing gradient (None) counts as zeros.

    The eager module (run at :func:`conformance.tolerance.stand_in_dtype` where there is one) is the
    same-precision reference; none where it has no such result.
    """
    if actual is None and expected is None:
        return Measurement(0.0, 0.0, None, True, "")
    note = " missing (None)" if actual is None else " present where the plain stack has none" if expected is None else ""
    like = expected if expected is not None else actual
    e, a = _array(expected, like), _array(actual, like)
    baselines = reference_baselines(dtype, lambda at: None if eager is None else [max_abs(to_numpy64(eager), e)])
    m = compare(a, e, dtype=dtype, rule=rule, baseline=None if baselines is None else baselines[0])
    return m if m.passed else Measurement(m.max_abs_err, m.max_rel_err, m.tolerance, False, f"{name}{note}: {m.detail}")


def _array(t: Tensor | None, like: Tensor) -> np.ndarray:
    return to_numpy64(t) if t is not None else np.zeros(tuple(like.shape))
