"""What runs for the pattern kind ``parameter_gradients`` (:mod:`conformance.patterns.parameter_gradients`)."""

from __future__ import annotations

import torch

from conformance.patterns import PatternContext
from conformance.patterns.helpers.module_calls import build_module, call_inputs, outputs_of
from conformance.tolerance import Measurement


def run(ctx: PatternContext) -> Measurement:
    problems: dict[str, str] = {}
    checked: list[str] = []
    for seed in range(ctx.options["seeds"]):
        torch.manual_seed(seed)
        module = build_module(ctx).train(ctx.options["train"])
        args, kwargs = call_inputs(ctx, seed)
        out = outputs_of(ctx, module(*args, **kwargs))
        cotangent = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
        (out * cotangent.to(out.device, out.dtype)).sum().backward()
        checked = [name for name, p in module.named_parameters() if p.requires_grad]
        for name, p in module.named_parameters():
            if not p.requires_grad or name in problems:
                continue
            if p.grad is None:
                problems[name] = "no gradient (unused in forward, or detached)"
            elif not torch.isfinite(p.grad).all():
                problems[name] = "non-finite gradient"
            elif not p.grad.abs().sum() > 0:
                problems[name] = "gradient identically zero"
    if not checked:
        return Measurement(0.0, 0.0, None, False, "the module has no trainable parameters", examples=ctx.options["seeds"])
    if problems:
        listed = "; ".join(f"{name}: {why}" for name, why in sorted(problems.items()))
        return Measurement(float(len(problems)), float(len(problems)), None, False, listed, examples=ctx.options["seeds"])
    detail = f"all {len(checked)} parameters receive finite, nonzero gradients: {', '.join(checked)}"
    return Measurement(0.0, 0.0, None, True, detail, examples=ctx.options["seeds"])
