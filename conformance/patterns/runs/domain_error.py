"""What runs for the pattern kind ``domain_error`` (:mod:`conformance.patterns.domain_error`)."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings

from conformance.evaluate import NumpyBackend, evaluate
from conformance.expr import names_in
from conformance.patterns import PatternContext
from conformance.patterns.domain_error import exception_type
from conformance.tolerance import Measurement


def _outside(ctx: PatternContext, example: Any) -> tuple[Any, dict[str, Any]]:
    """The example with ``set`` applied: sizes and params outside the domain."""
    scalars = {**example.sizes, **example.params}
    unknown = sorted(set(ctx.options["set"]) - set(scalars))
    if unknown:
        raise ValueError(f"domain_error set: {', '.join(unknown)} is not a size or param of spec {ctx.spec.id!r}")
    for expr in ctx.options["set"].values():
        missing = sorted(names_in(expr) - set(scalars))
        if missing:
            raise ValueError(f"domain_error set: {', '.join(missing)} is not a size or param of spec {ctx.spec.id!r}")
    moved = {n: _scalar(evaluate(e, scalars, NumpyBackend()), scalars[n]) for n, e in ctx.options["set"].items()}
    sizes = {n: moved.get(n, v) for n, v in example.sizes.items()}
    params = {n: moved.get(n, v) for n, v in example.params.items()}
    return replace(example, sizes=sizes, params=params), moved


def _scalar(value: Any, like: Any) -> Any:
    value = float(value)
    return int(value) if isinstance(like, int) and not isinstance(like, bool) and value.is_integer() else value


def _attempt(ctx: PatternContext, example: Any) -> str | None:
    """``None`` when the implementation refuses the out-of-domain call as the spec says; else what it did."""
    from conformance.checks import Trial

    outside, moved = _outside(ctx, example)
    where = ", ".join(f"{n} = {v}" for n, v in moved.items())
    where += f" (example: sizes={dict(outside.sizes)}, params={dict(outside.params)}, seed={outside.seed})"
    expected = " or ".join(ctx.options["raises"])
    match = ctx.options["match"]
    wanted = f"{expected}" + (f" matching {match!r}" if match else "")
    try:
        t = Trial(ctx.spec, ctx.ref, ctx.device, ctx.dtype, outside)  # builds the implementation
        t.fn(t.tensors(t.rounded(t.env64)))
    except Exception as exc:  # noqa: BLE001 - any error is inspected below
        types = tuple(exception_type(n) for n in ctx.options["raises"])
        if not isinstance(exc, types):  # type: ignore[arg-type]
            return f"at {where}: raised {type(exc).__name__}: {exc} (expected {wanted})"
        if match and not re.search(match, str(exc)):
            return f"at {where}: raised {type(exc).__name__}: {exc} — the message does not match {match!r}"
        return None
    return f"at {where}: returned normally (expected {wanted})"


class _Found(Exception):
    """Stops the search at the first example where the implementation does not refuse."""


def run(ctx: PatternContext) -> Measurement:
    from conformance.strategies import examples

    spec = ctx.spec.for_implementation(ctx.ref)
    found: list[str] = []
    tried = [0]

    @settings(
        ctx.settings,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.reuse, Phase.generate],  # the first counterexample is enough
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(example=examples(spec, ctx.dtype))
    def search(example: Any) -> None:
        tried[0] += 1
        problem = _attempt(ctx, example)
        if problem is not None:
            found.append(problem)
            raise _Found(problem)

    try:
        search()
    except _Found:
        pass
    if found:
        return Measurement(float("nan"), float("nan"), None, False, found[-1], examples=tried[0])
    return Measurement(0.0, 0.0, None, True, f"raised {' or '.join(ctx.options['raises'])} each time", examples=tried[0])
