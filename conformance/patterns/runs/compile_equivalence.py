"""What runs for the pattern kind ``compile_equivalence`` (:mod:`conformance.patterns.compile_equivalence`)."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from conformance.dtype_helpers import torch_dtype
from conformance.patterns import PatternContext
from conformance.patterns.helpers.compiling import fresh_compile, strict_compiled_calls
from conformance.patterns.helpers.module_calls import build_module, call_inputs, outputs_of
from conformance.tolerance import Measurement, compare, max_abs, reference_baselines, stand_in_dtype, worst


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


def run(ctx: PatternContext) -> Measurement:
    torch.manual_seed(0)
    module = build_module(ctx).eval()
    _perturb_parameters(module, seed=1)
    args, kwargs = call_inputs(ctx, seed=0)
    reference = copy.deepcopy(module).to(torch.float64)
    args64 = tuple(a.to(torch.float64) if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)
    kwargs64 = {k: v.to(torch.float64) if isinstance(v, torch.Tensor) and v.is_floating_point() else v for k, v in kwargs.items()}
    with torch.no_grad():
        eager = _outputs(outputs_of(ctx, module(*args, **kwargs)))
        with strict_compiled_calls():
            compiled = _outputs(outputs_of(ctx, fresh_compile(module)(*args, **kwargs)))
        expected = _outputs(outputs_of(ctx, reference(*args64, **kwargs64)))
        stand_in = _stand_in(module, args64, kwargs64, ctx.dtype)
    measurements = []
    for i, (c, e, x) in enumerate(zip(compiled, eager, expected)):
        label = f"output {i}: " if len(eager) > 1 else ""
        if c.shape != e.shape or c.dtype != e.dtype:
            detail = f"{label}compiled {tuple(c.shape)} {c.dtype} vs eager {tuple(e.shape)} {e.dtype}"
            return Measurement(float("inf"), float("inf"), None, False, detail)
        # the same-precision reference: eager at the tested dtype (at float64: eager at float32, rescaled)
        reference = {ctx.dtype: e, **({} if stand_in is None else {stand_in_dtype(ctx.dtype): stand_in[i]})}
        (baseline,) = reference_baselines(ctx.dtype, lambda at, r=reference, x=x: [max_abs(_to_numpy(r[at]), _to_numpy(x))])
        m = compare(_to_numpy(c), _to_numpy(x), dtype=ctx.dtype, rule=ctx.rule, baseline=baseline)
        measurements.append(replace(m, detail=label + m.detail if m.detail else ""))
    if not measurements or len(compiled) != len(eager):
        return Measurement(
            float("inf"), float("inf"), None, False, f"compiled returned {len(compiled)} outputs, eager {len(eager)}"
        )
    note = "compiled vs float64 eager; eager at the tested dtype is the same-precision reference"
    chosen = worst(measurements)
    return Measurement(chosen.max_abs_err, chosen.max_rel_err, chosen.tolerance, chosen.passed, chosen.detail or note)


def _stand_in(module: torch.nn.Module, args64: tuple, kwargs64: dict, dtype: str) -> list[torch.Tensor] | None:
    """Where eager at ``dtype`` is the expected computation itself (float64): eager outputs at float32."""
    at = stand_in_dtype(dtype)
    if at is None:
        return None
    low = torch_dtype(at)
    copy32 = copy.deepcopy(module).to(low)
    args = tuple(a.to(low) if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args64)
    kwargs = {k: v.to(low) if isinstance(v, torch.Tensor) and v.is_floating_point() else v for k, v in kwargs64.items()}
    return _outputs(copy32(*args, **kwargs))


def _outputs(result: Any) -> list[torch.Tensor]:
    """One tensor or a tuple of them, as a list."""
    return list(result) if isinstance(result, (tuple, list)) else [result]
