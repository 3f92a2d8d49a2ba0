"""Pattern kind ``domain_error``: called outside its declared domain, an implementation raises a clear error.

Examples are drawn from the spec as for every check; ``set`` then moves sizes or params out of the
domain on purpose (expressions over the drawn sizes and params, breaking the spec's constraints),
the inputs are drawn at those sizes, and the implementation is built and called the way its
``interface`` says. It must raise one of the ``raises`` exception types, with a message that
contains ``match`` (a regular expression) — returning normally, or failing with another error, is
the defect (a cache sliced past its end silently returns fewer rows, say).

Spec options::

    kind: domain_error
    set: {L: "M + 1"}          # sizes/params: expressions over the drawn ones
    raises: [ValueError]       # built-in exception types (default: ValueError)
    match: max_seq_len         # optional: a regular expression the message must contain

>>> KIND.validate({"set": {"L": "M + 1"}, "match": "max_seq_len"})["raises"]
('ValueError',)
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import sympy
from hypothesis import HealthCheck, Phase, given, settings

from conformance.evaluate import NumpyBackend, evaluate
from conformance.expr import ExprError, names_in, parse
from conformance.patterns import PatternContext, PatternKind
from conformance.tolerance import Measurement


def _bad(key: str, message: str) -> KeyError:
    return KeyError((key,), message)


def _validate(options: Mapping[str, Any]) -> dict:
    subs = options["set"]
    if not isinstance(subs, dict) or not subs:
        raise _bad("set", "expected a mapping size or param name -> expression over the drawn sizes and params")
    parsed: dict[str, sympy.Basic] = {}
    for name, text in subs.items():
        if not isinstance(name, str) or not re.match(r"^[A-Za-z]\w*$", name):
            raise _bad("set", f"expected a size or param name, got {name!r}")
        try:
            parsed[name] = parse(repr(text) if isinstance(text, (int, float)) and not isinstance(text, bool) else text)
        except ExprError as exc:
            raise _bad("set", f"{name}: {exc}") from None
    raises = options.get("raises", ["ValueError"])
    if not isinstance(raises, list) or not raises or not all(_exception_type(n) for n in raises):
        raise _bad(
            "raises", f"expected a non-empty list of built-in exception names (ValueError, IndexError, ...), got {raises!r}"
        )
    match = options.get("match")
    if match is not None:
        if not isinstance(match, str) or not match:
            raise _bad("match", f"expected a regular expression, got {match!r}")
        try:
            re.compile(match)
        except re.error as exc:
            raise _bad("match", f"not a regular expression: {exc}") from None
    return {"set": parsed, "raises": tuple(raises), "match": match}


def _exception_type(name: Any) -> type[BaseException] | None:
    value = getattr(builtins, name, None) if isinstance(name, str) else None
    return value if isinstance(value, type) and issubclass(value, Exception) else None


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
        types = tuple(_exception_type(n) for n in ctx.options["raises"])
        if not isinstance(exc, types):  # type: ignore[arg-type]
            return f"at {where}: raised {type(exc).__name__}: {exc} (expected {wanted})"
        if match and not re.search(match, str(exc)):
            return f"at {where}: raised {type(exc).__name__}: {exc} — the message does not match {match!r}"
        return None
    return f"at {where}: returned normally (expected {wanted})"


class _Found(Exception):
    """Stops the search at the first example where the implementation does not refuse."""


def _run(ctx: PatternContext) -> Measurement:
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


KIND = PatternKind(
    name="domain_error",
    required=frozenset({"set"}),
    optional=frozenset({"raises", "match"}),
    validate=_validate,
    run=_run,
)
