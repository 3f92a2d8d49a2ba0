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

import numpy as np
import torch

from conformance.patterns import PatternContext, PatternKind
from conformance.patterns.live_memory import LiveBytes
from conformance.tolerance import Measurement


def _bad(key: str, message: str) -> KeyError:
    return KeyError((key,), message)


def _validate(options: Mapping[str, Any]) -> dict:
    sizes, vary, params = options.get("sizes", {}), options["vary"], options.get("params", {})
    if not isinstance(sizes, dict) or not all(isinstance(v, int) and v > 0 for v in sizes.values()):
        raise _bad("sizes", "expected a mapping symbol -> positive integer")
    lengths = {len(v) for v in vary.values()} if isinstance(vary, dict) and vary else set()
    if (
        len(lengths) != 1
        or min(lengths) < 2
        or not all(
            all(isinstance(n, int) and n > 0 for n in values) and list(values) == sorted(values) for values in vary.values()
        )
    ):
        raise _bad("vary", "expected a mapping symbol -> increasing list of at least 2 sizes, all lists of one length")
    if not isinstance(params, dict):
        raise _bad("params", "expected a mapping param -> value")
    exponent = options["max_growth_exponent"]
    if isinstance(exponent, bool) or not isinstance(exponent, (int, float)) or not 0 < exponent <= 4:
        raise _bad("max_growth_exponent", f"expected a number in (0, 4], got {exponent!r}")
    if not isinstance(options["reason"], str) or not options["reason"].strip():
        raise _bad("reason", "expected the reason for the threshold")
    return {
        "sizes": dict(sizes),
        "vary": {k: list(v) for k, v in vary.items()},
        "params": dict(params),
        "max_growth_exponent": float(exponent),
        "reason": options["reason"],
    }


def _peak_bytes(ctx: PatternContext, sizes: Mapping[str, int]) -> int:
    from conformance.calling import build_callable
    from conformance.dtype_helpers import torch_dtype
    from conformance.strategies import shape_of

    spec = ctx.spec
    if spec.interface is None:
        raise ValueError(f"spec {spec.id!r} has no interface to call")
    scalars = {**sizes, **ctx.options["params"]}
    missing = sorted(n for i in spec.inputs.values() for n in i.shape if isinstance(n, str) and n not in sizes)
    if missing:
        raise ValueError(f"sizes/vary do not give {', '.join(missing)}")
    generator = torch.Generator().manual_seed(0)
    tensors = {
        name: torch.randn(shape_of(inp.shape, sizes), generator=generator, dtype=torch.float64).to(
            ctx.device, torch_dtype(ctx.dtype)
        )
        for name, inp in spec.inputs.items()
        if inp.kind == "real" and not inp.optional
    }
    present = {name: False for name, inp in spec.inputs.items() if inp.optional}
    fn = build_callable(spec, ctx.ref, scalars, ctx.device, ctx.dtype, present)
    with torch.no_grad(), LiveBytes(exclude=tensors.values()) as meter:
        fn(tensors)
    return meter.peak


def _run(ctx: PatternContext) -> Measurement:
    options = ctx.options
    vary = options["vary"]
    first = next(iter(vary))
    points = []
    for i in range(len(vary[first])):
        sizes = {**options["sizes"], **{name: values[i] for name, values in vary.items()}}
        points.append((vary[first][i], _peak_bytes(ctx, sizes)))
    xs = np.log([p[0] for p in points])
    ys = np.log([max(p[1], 1) for p in points])
    slope = float(np.polyfit(xs, ys, 1)[0])
    limit = options["max_growth_exponent"]
    measured = ", ".join(f"{first}={n}: {b} B" for n, b in points)
    passed = slope <= limit
    verdict = "within" if passed else "exceeds"
    detail = f"peak bytes grow as {first}^{slope:.2f} ({verdict} {first}^{limit:g}: {options['reason']}); measured {measured}"
    return Measurement(slope, slope, None, passed, detail, examples=len(points))


KIND = PatternKind(
    name="peak_memory",
    required=frozenset({"vary", "max_growth_exponent", "reason"}),
    optional=frozenset({"sizes", "params"}),
    validate=_validate,
    run=_run,
    dtypes=("float32",),
)
