"""Pattern kind ``compile_equivalence``: ``torch.compile(module)`` computes what eager mode does.

The module (built as a user gets it, its parameters then moved off their default initialisation by
seeded noise) runs eagerly and compiled on the same inputs
at the tested dtype, and eagerly in float64 with the same weights as the reference. The compiled
output's max error against the float64 output may be at most ``factor`` × the eager output's error
plus the noise floor — the rule of :mod:`conformance.tolerance`, with eager mode as the
same-precision reference (fused kernels may round differently, not worse). At float64 the eager
module is the expected computation itself (its error is 0 by construction), so the eager module at
float32 stands in, its error scaled by eps(float64)/eps(float32)
(:func:`conformance.tolerance.rescaled_baseline`).

Spec options::

    kind: compile_equivalence
    sizes: {B: 2, L: 5, D: 16}
    params: {eps: 1.0e-6}
    devices: [cpu]          # compilation is slow on CPU: one dtype there, all of them on CUDA
    dtypes: [float32]
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from conformance.dtype_helpers import torch_dtype
from conformance.patterns import PatternContext, PatternKind
from conformance.patterns.module_calls import build_module, call_inputs, validate_sizes
from conformance.tolerance import RESCALED_REFERENCE_DTYPE, Measurement, compare, max_abs, rescaled_baseline


def _validate(options: Mapping[str, Any]) -> dict:
    return validate_sizes(options)


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()


def _perturb_parameters(module: torch.nn.Module, seed: int) -> None:
    """Move every floating parameter off its default initialisation (a gain of ones hides a lot)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.is_floating_point():
                noise = torch.randn(p.shape, generator=generator, dtype=torch.float64).to(p.device, p.dtype)
                p.add_(noise * 0.5 * max(float(p.detach().abs().mean()), 1e-2))


def _run(ctx: PatternContext) -> Measurement:
    torch.manual_seed(0)
    module = build_module(ctx).eval()
    _perturb_parameters(module, seed=1)
    args, kwargs = call_inputs(ctx, seed=0)
    reference = copy.deepcopy(module).to(torch.float64)
    args64 = tuple(a.to(torch.float64) if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)
    kwargs64 = {k: v.to(torch.float64) if isinstance(v, torch.Tensor) and v.is_floating_point() else v for k, v in kwargs.items()}
    with torch.no_grad():
        eager = _outputs(module(*args, **kwargs))
        compiled = _outputs(torch.compile(module)(*args, **kwargs))
        expected = _outputs(reference(*args64, **kwargs64))
        stand_in = _stand_in(module, args64, kwargs64, ctx.dtype)
    worst: Measurement | None = None
    for i, (c, e, x) in enumerate(zip(compiled, eager, expected)):
        label = f"output {i}: " if len(eager) > 1 else ""
        if c.shape != e.shape or c.dtype != e.dtype:
            detail = f"{label}compiled {tuple(c.shape)} {c.dtype} vs eager {tuple(e.shape)} {e.dtype}"
            return Measurement(float("inf"), float("inf"), None, False, detail)
        rule = ctx.spec.tolerance_rule(ctx.dtype)
        if stand_in is None:
            m = compare(_to_numpy(c), _to_numpy(x), dtype=ctx.dtype, rule=rule, reference=_to_numpy(e))
        else:
            error = max_abs(_to_numpy(stand_in[i]), _to_numpy(x))
            baseline = rescaled_baseline(error, RESCALED_REFERENCE_DTYPE[ctx.dtype], ctx.dtype)
            m = compare(_to_numpy(c), _to_numpy(x), dtype=ctx.dtype, rule=rule, baseline=baseline)
        m = Measurement(m.max_abs_err, m.max_rel_err, m.tolerance, m.passed, label + m.detail if m.detail else "")
        if worst is None or m.ratio > worst.ratio:
            worst = m
    if worst is None or len(compiled) != len(eager):
        return Measurement(
            float("inf"), float("inf"), None, False, f"compiled returned {len(compiled)} outputs, eager {len(eager)}"
        )
    note = "compiled vs float64 eager; eager at the tested dtype is the same-precision reference"
    return Measurement(worst.max_abs_err, worst.max_rel_err, worst.tolerance, worst.passed, worst.detail or note)


def _stand_in(module: torch.nn.Module, args64: tuple, kwargs64: dict, dtype: str) -> list[torch.Tensor] | None:
    """Where eager at ``dtype`` is the expected computation itself (float64): eager outputs at float32."""
    if dtype not in RESCALED_REFERENCE_DTYPE:
        return None
    low = torch_dtype(RESCALED_REFERENCE_DTYPE[dtype])
    copy32 = copy.deepcopy(module).to(low)
    args = tuple(a.to(low) if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args64)
    kwargs = {k: v.to(low) if isinstance(v, torch.Tensor) and v.is_floating_point() else v for k, v in kwargs64.items()}
    return _outputs(copy32(*args, **kwargs))


def _outputs(result: Any) -> list[torch.Tensor]:
    """One tensor or a tuple of them, as a list."""
    return list(result) if isinstance(result, (tuple, list)) else [result]


KIND = PatternKind(
    name="compile_equivalence",
    required=frozenset({"sizes"}),
    optional=frozenset({"params"}),
    validate=_validate,
    run=_run,
    dtypes=("float32",),
)
