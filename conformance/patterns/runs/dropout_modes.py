"""What runs for the pattern kind ``dropout_modes`` (:mod:`conformance.patterns.dropout_modes`)."""

from __future__ import annotations

import torch

from conformance.patterns import PatternContext
from conformance.patterns.helpers.module_calls import build_module, call_inputs, outputs_of
from conformance.tolerance import Measurement


def run(ctx: PatternContext) -> Measurement:
    name = ctx.options["dropout_param"]
    torch.manual_seed(0)
    module = build_module(ctx)
    plain = build_module(ctx, {name: 0.0})
    plain.load_state_dict(module.state_dict())
    args, kwargs = call_inputs(ctx, seed=0)
    problems = []
    with torch.no_grad():
        module.eval()
        plain.eval()
        first, second, reference = (outputs_of(ctx, m(*args, **kwargs)) for m in (module, module, plain))
        if not torch.equal(first, second):
            problems.append("eval mode: two calls differ (dropout active in eval mode?)")
        if not torch.equal(first, reference):
            problems.append(f"eval mode: output differs from the same module built with {name}=0")
        module.train()
        plain.train()
        train_a, train_b = outputs_of(ctx, module(*args, **kwargs)), outputs_of(ctx, module(*args, **kwargs))
        if torch.equal(train_a, train_b):
            problems.append("train mode: two calls are identical (dropout not applied in training?)")
        if torch.equal(train_a, first):
            problems.append("train mode: output equals the eval output (dropout not applied in training?)")
        if not torch.equal(outputs_of(ctx, plain(*args, **kwargs)), reference):
            problems.append(f"train mode with {name}=0: output differs from eval mode")
    detail = "; ".join(problems) or "eval mode deterministic and dropout-free; train mode drops; p = 0 is the identity"
    return Measurement(float(len(problems)), float(len(problems)), None, not problems, detail, examples=1)
