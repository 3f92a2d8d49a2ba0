"""Pattern kind ``parameter_gradients``: every trainable parameter receives a gradient.

The module is built as a user gets it (its own initialisation), called in the chosen mode on
random inputs, and a random cotangent is back-propagated. Every parameter with ``requires_grad``
must then have a gradient that is present, finite and not identically zero — a layer created but
never used in ``forward`` (the implementation guide's module template creates a LayerNorm it never
calls) fails here, as does a detached path.

Spec options::

    kind: parameter_gradients
    sizes: {B: 2, L: 5, D: 16, H: 4}
    params: {dropout: 0.1}
    train: true        # the mode to call the module in
    seeds: 3           # independent draws of inputs and cotangents
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from conformance.patterns import PatternContext, PatternKind
from conformance.patterns.module_calls import build_module, call_inputs, validate_sizes
from conformance.tolerance import Measurement


def _validate(options: Mapping[str, Any]) -> dict:
    out = validate_sizes(options)
    train, seeds = options.get("train", True), options.get("seeds", 3)
    if not isinstance(train, bool):
        raise KeyError(("train",), "expected true or false")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= 100:
        raise KeyError(("seeds",), f"expected an integer in [1, 100], got {seeds!r}")
    return {**out, "train": train, "seeds": seeds}


def _run(ctx: PatternContext) -> Measurement:
    problems: dict[str, str] = {}
    checked: list[str] = []
    for seed in range(ctx.options["seeds"]):
        torch.manual_seed(seed)
        module = build_module(ctx).train(ctx.options["train"])
        args, kwargs = call_inputs(ctx, seed)
        out = module(*args, **kwargs)
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


KIND = PatternKind(
    name="parameter_gradients",
    required=frozenset({"sizes"}),
    optional=frozenset({"params", "train", "seeds"}),
    validate=_validate,
    run=_run,
    dtypes=("float64", "float32"),
)
