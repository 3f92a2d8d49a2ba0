"""What runs for the pattern kind ``domain_error`` (:mod:`conformance.patterns.domain_error`)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
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


def _attempt(ctx: PatternContext, example: Any) -> tuple[str, str | None]:
    """What the implementation did out of the domain (``error`` or ``correct``), and ``None`` or the problem."""
    from conformance.checks import Trial

    outside, moved = _outside(ctx, example)
    where = ", ".join(f"{n} = {v}" for n, v in moved.items())
    where += f" (example: sizes={dict(outside.sizes)}, params={dict(outside.params)}, seed={outside.seed})"
    wanted = _wanted(ctx.options)
    try:
        t = Trial(ctx.spec, ctx.ref, ctx.device, ctx.dtype, outside)  # builds the implementation
        outputs = t.fn(t.tensors(t.rounded(t.env64)))
    except Exception as exc:  # noqa: BLE001 - any error is inspected below
        return "error", _judge_error(ctx.options, exc, where, wanted)
    if "correct" not in ctx.options["accepts"]:
        return "correct", f"at {where}: returned normally (expected {wanted})"
    return "correct", _judge_result(t, outputs, where)


def _wanted(options: Mapping[str, Any]) -> str:
    """What the spec accepts, in words (for a failure's detail)."""
    error = " or ".join(options["raises"]) + " with a message" + (f" matching {options['match']!r}" if options["match"] else "")
    if "error" not in options["accepts"]:
        return "the oracle's values"
    return error if "correct" not in options["accepts"] else f"{error}, or the oracle's values"


def _judge_error(options: Mapping[str, Any], exc: Exception, where: str, wanted: str) -> str | None:
    """``None`` for a clear error of a declared type; else why it is not."""
    raised = f"at {where}: raised {type(exc).__name__}: {exc}"
    if "error" not in options["accepts"]:
        return f"{raised} (expected {wanted})"
    types = tuple(exception_type(n) for n in options["raises"])
    if not isinstance(exc, types):  # type: ignore[arg-type]
        return f"{raised} (expected {wanted})"
    if not str(exc).strip():
        return f"at {where}: raised {type(exc).__name__} with an empty message (expected {wanted})"
    match = options["match"]
    if match and not re.search(match, str(exc)):
        return f"{raised} — the message does not match {match!r}"
    return None


def _judge_result(t: Any, outputs: tuple[Any, ...], where: str) -> str | None:
    """``None`` where the outputs are the float64 oracle's at the moved sizes (the ``oracle`` check's comparison)."""
    from conformance.checks import check_oracle

    expected = t.oracle(t.rounded(t.env64))
    for name, out, exp in zip(t.outputs, outputs, expected):
        if tuple(out.shape) != np.shape(exp):
            rows = " (fewer rows than asked: silently truncated)" if out.dim() and out.shape[0] < np.shape(exp)[0] else ""
            return f"at {where}: returned {name} of shape {tuple(out.shape)}, the oracle's is {np.shape(exp)}{rows}"
    m = check_oracle(t)
    if m is not None and not m.passed:
        return f"at {where}: returned wrong values: {m.detail}"
    return None


class _Found(Exception):
    """Stops the search at the first example where the implementation does not refuse."""


def run(ctx: PatternContext) -> Measurement:
    from conformance.strategies import examples

    spec = ctx.spec.for_implementation(ctx.ref)
    found: list[str] = []
    tried = [0]
    outcomes: Counter[str] = Counter()

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
        outcome, problem = _attempt(ctx, example)
        outcomes[outcome] += 1
        if problem is not None:
            found.append(problem)
            raise _Found(problem)

    try:
        search()
    except _Found:
        pass
    if found:
        return Measurement(float("nan"), float("nan"), None, False, found[-1], examples=tried[0])
    return Measurement(0.0, 0.0, None, True, _summary(ctx.options, outcomes), examples=tried[0])


def _summary(options: Mapping[str, Any], outcomes: Counter[str]) -> str:
    """What a passing run saw: clear errors and/or the oracle's values, how often."""
    parts = []
    if outcomes["error"]:
        parts.append(f"raised {' or '.join(options['raises'])} with a message {outcomes['error']} time(s)")
    if outcomes["correct"]:
        parts.append(f"returned the oracle's values within the derived tolerance {outcomes['correct']} time(s)")
    return "; ".join(parts) or "no example drawn"
