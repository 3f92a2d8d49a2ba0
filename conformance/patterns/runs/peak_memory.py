"""What runs for the pattern kind ``peak_memory`` (:mod:`conformance.patterns.peak_memory`)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from conformance.patterns import PatternContext
from conformance.patterns.helpers.live_memory import LiveBytes
from conformance.tolerance import Measurement


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


def run(ctx: PatternContext) -> Measurement:
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
