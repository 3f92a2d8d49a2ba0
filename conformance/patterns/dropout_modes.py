"""Pattern kind ``dropout_modes``: dropout acts in training mode only.

For a module built with dropout probability p > 0 (``params``) and the same module rebuilt with
p = 0 and the same weights:

- eval mode: two calls are bitwise equal, and equal the p = 0 module's output (no dropout at all);
- train mode: two calls differ (independent masks) and differ from the eval output;
- train mode at p = 0: equals the eval output.

"Two calls differ" could fail by chance only if both draws keep exactly the same elements: with n
independent Bernoulli(p) decisions that has probability (p² + (1 − p)²)^n, which ``sizes`` must make
negligible — the check computes the bound from the attention weights' count ``min_decisions``
(given in the spec) and refuses a spec where it exceeds 1e-9.

Spec options::

    kind: dropout_modes
    sizes: {B: 2, L: 8, D: 16, H: 4}
    params: {dropout: 0.1}
    dropout_param: dropout
    min_decisions: 512     # dropout decisions per call at these sizes (here B·H·L·L)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from conformance.patterns import PatternContext, PatternKind
from conformance.patterns.module_calls import build_module, call_inputs, validate_sizes
from conformance.tolerance import Measurement

FALSE_ALARM = 1e-9


def _validate(options: Mapping[str, Any]) -> dict:
    out = validate_sizes(options)
    name = options["dropout_param"]
    p = out["params"].get(name)
    if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0 < p < 1:
        raise KeyError(("params",), f"expected params.{name} in (0, 1), the dropout probability to test")
    n = options["min_decisions"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise KeyError(("min_decisions",), "expected a positive integer")
    if (p * p + (1 - p) ** 2) ** n > FALSE_ALARM:
        raise KeyError(
            ("min_decisions",), f"{n} decisions at p={p} leave a false-alarm rate above {FALSE_ALARM:g}; use larger sizes"
        )
    return {**out, "dropout_param": name, "min_decisions": n}


def _run(ctx: PatternContext) -> Measurement:
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
        first, second, reference = module(*args, **kwargs), module(*args, **kwargs), plain(*args, **kwargs)
        if not torch.equal(first, second):
            problems.append("eval mode: two calls differ (dropout active in eval mode?)")
        if not torch.equal(first, reference):
            problems.append(f"eval mode: output differs from the same module built with {name}=0")
        module.train()
        plain.train()
        train_a, train_b = module(*args, **kwargs), module(*args, **kwargs)
        if torch.equal(train_a, train_b):
            problems.append("train mode: two calls are identical (dropout not applied in training?)")
        if torch.equal(train_a, first):
            problems.append("train mode: output equals the eval output (dropout not applied in training?)")
        if not torch.equal(plain(*args, **kwargs), reference):
            problems.append(f"train mode with {name}=0: output differs from eval mode")
    detail = "; ".join(problems) or "eval mode deterministic and dropout-free; train mode drops; p = 0 is the identity"
    return Measurement(float(len(problems)), float(len(problems)), None, not problems, detail, examples=1)


KIND = PatternKind(
    name="dropout_modes",
    required=frozenset({"sizes", "params", "dropout_param", "min_decisions"}),
    optional=frozenset(),
    validate=_validate,
    run=_run,
    dtypes=("float32",),
)
