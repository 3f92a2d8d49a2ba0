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

from conformance.patterns import PatternKind
from conformance.patterns.helpers.options import sizes_and_params
from conformance.validation import SpecContext, Where

FALSE_ALARM = 1e-9


def validate(options: Mapping[str, Any], where: Where, context: SpecContext) -> dict:
    """``sizes``, ``params`` (with the dropout probability in (0, 1)), ``dropout_param``, ``min_decisions``."""
    out = sizes_and_params(options, where)
    name = options["dropout_param"]
    p = out["params"].get(name)
    if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0 < p < 1:
        raise where.at("params").error(f"expected params.{name} in (0, 1), the dropout probability to test")
    n = options["min_decisions"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise where.at("min_decisions").error("expected a positive integer")
    if (p * p + (1 - p) ** 2) ** n > FALSE_ALARM:
        message = f"{n} decisions at p={p} leave a false-alarm rate above {FALSE_ALARM:g}; use larger sizes"
        raise where.at("min_decisions").error(message)
    return {**out, "dropout_param": name, "min_decisions": n}


KIND = PatternKind(
    name="dropout_modes",
    required=frozenset({"sizes", "params", "dropout_param", "min_decisions"}),
    optional=frozenset(),
    validate=validate,
    run="conformance.patterns.runs.dropout_modes:run",
    dtypes=("float32",),
)
