"""Pattern kind ``peak_memory``: how the memory a call holds grows with a dimension.

The implementation is called through the spec's own ``interface`` at a series of sizes (``vary``,
zipped, the rest fixed by ``sizes`` and ``params``), under ``torch.no_grad()``, and the peak bytes
of the tensors alive during each call are counted op by op (:mod:`conformance.patterns.live_memory`).
The growth exponent is the least-squares slope of log(peak) against log(size) of the first varied
symbol; it must not exceed ``max_growth_exponent`` (the spec says why).

Spec options::

    kind: peak_memory
    sizes: {B: 1, H: 1, Dk: 16, Dv: 16}
    vary: {Lq: [128, 256, 512], Lk: [128, 256, 512]}
    params: {chunk_size: 32}
    max_growth_exponent: 1.5
    reason: "linear growth has exponent 1, materialising all Lq×Lk scores 2; 1.5 separates them"
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conformance.patterns import PatternKind
from conformance.validation import SpecContext, Where


def validate(options: Mapping[str, Any], where: Where, context: SpecContext) -> dict:
    """``sizes``, ``vary``, ``params``, ``max_growth_exponent`` and its ``reason``."""
    sizes, vary, params = options.get("sizes", {}), options["vary"], options.get("params", {})
    if not isinstance(sizes, dict) or not all(isinstance(v, int) and v > 0 for v in sizes.values()):
        raise where.at("sizes").error("expected a mapping symbol -> positive integer")
    lengths = {len(v) for v in vary.values()} if isinstance(vary, dict) and vary else set()
    if (
        len(lengths) != 1
        or min(lengths) < 2
        or not all(
            all(isinstance(n, int) and n > 0 for n in values) and list(values) == sorted(values) for values in vary.values()
        )
    ):
        raise where.at("vary").error("expected a mapping symbol -> increasing list of at least 2 sizes, all lists of one length")
    if not isinstance(params, dict):
        raise where.at("params").error("expected a mapping param -> value")
    exponent = options["max_growth_exponent"]
    if isinstance(exponent, bool) or not isinstance(exponent, (int, float)) or not 0 < exponent <= 4:
        raise where.at("max_growth_exponent").error(f"expected a number in (0, 4], got {exponent!r}")
    if not isinstance(options["reason"], str) or not options["reason"].strip():
        raise where.at("reason").error("expected the reason for the threshold")
    return {
        "sizes": dict(sizes),
        "vary": {k: list(v) for k, v in vary.items()},
        "params": dict(params),
        "max_growth_exponent": float(exponent),
        "reason": options["reason"],
    }


KIND = PatternKind(
    name="peak_memory",
    required=frozenset({"vary", "max_growth_exponent", "reason"}),
    optional=frozenset({"sizes", "params"}),
    validate=validate,
    run="conformance.patterns.runs.peak_memory:run",
    dtypes=("float32",),
)
