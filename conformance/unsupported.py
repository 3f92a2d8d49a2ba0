"""Declared unsupported regions: examples an implementation says it refuses, judged as refusals.

An implementation entry may declare ``unsupported: [{when, raises, reason}]``
(:class:`conformance.model.Unsupported`): ``when`` is a condition over the example's sizes, params and
``has_<input>`` (whether optional input ``<input>`` is passed). An example where it holds is not judged
by the check: the implementation must refuse it, raising one of the declared builtin exceptions with a
non-empty message. Returning a result there, or raising anything else, fails the check. Every other
example is judged as usual. The runner counts refusals (:class:`Refusal`) and the row's detail says
how many examples fell in the region and what the implementation raised (:func:`describe`).

>>> import sympy
>>> from conformance.model import Unsupported
>>> region = Unsupported(sympy.Symbol("is_causal"), "is_causal", ("RuntimeError",), "refused")
>>> describe(Refusal(0.0, 0.0, None, True, region=region.when_text, raised="RuntimeError: no"), 3)
'unsupported, raised RuntimeError: no (3 examples in the declared region: is_causal)'
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conformance.evaluate import NumpyBackend, evaluate
from conformance.model import UNSUPPORTED_EXCEPTIONS, EquationSpec, Unsupported, presence_name
from conformance.strategies import Example
from conformance.tolerance import Measurement

MAX_MESSAGE = 200  # characters of the implementation's refusal kept in a row's detail


@dataclass(frozen=True)
class Refusal(Measurement):
    """An example of a declared unsupported region that the implementation refused as declared (a pass)."""

    region: str = ""  # the region's ``when`` as written
    raised: str = ""  # ``ExceptionName: message``


def condition_env(spec: EquationSpec, implementation: str, example: Example) -> dict[str, Any]:
    """What an ``unsupported`` condition is evaluated on: sizes, the params tested (its fixed ones
    included), strings left out, and ``has_<input>`` for every optional input."""
    params = {**example.params, **spec.fixed_params(implementation)}
    env: dict[str, Any] = dict(example.sizes)
    env.update({name: value for name, value in params.items() if not isinstance(value, str)})
    env.update({presence_name(n): bool(example.present.get(n, True)) for n, i in spec.inputs.items() if i.optional})
    return env


def region_for(spec: EquationSpec, implementation: str, example: Example) -> Unsupported | None:
    """The first of the implementation's declared unsupported regions that ``example`` lies in, or ``None``."""
    regions = spec.implementation(implementation).unsupported
    if not regions:
        return None
    env = condition_env(spec, implementation, example)
    return next((r for r in regions if bool(evaluate(r.when, env, NumpyBackend()))), None)


def exception_types(names: tuple[str, ...]) -> tuple[type[BaseException], ...]:
    """The builtin exception classes of ``names`` (only names from the allowlist are looked up)."""
    unknown = [n for n in names if n not in UNSUPPORTED_EXCEPTIONS]
    if unknown:
        raise ValueError(f"not an allowed exception name: {', '.join(unknown)} (allowed: {', '.join(UNSUPPORTED_EXCEPTIONS)})")
    return tuple(getattr(builtins, n) for n in names)


def expect_refusal(call: Callable[[], Any], region: Unsupported) -> Measurement:
    """Call the implementation on an example of ``region``: a :class:`Refusal` if it raises as declared,
    else a failing measurement saying what it did instead."""
    where = f"declared unsupported ({region.when_text}: {region.reason})"
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - what the implementation raised is what is judged
        name, message = type(exc).__name__, str(exc).strip()
        if not isinstance(exc, exception_types(region.raises)):
            return _failed(f"{where} but raised {name}: {_short(message)}, not a declared exception ({', '.join(region.raises)})")
        if not message:
            return _failed(f"{where}: raised {name} with an empty message (a refusal must say why)")
        raised = f"{name}: {_short(message)}"
        return Refusal(0.0, 0.0, None, True, f"unsupported, raised {raised}", region=region.when_text, raised=raised)
    return _failed(f"{where} but returned a result")


def _failed(detail: str) -> Measurement:
    return Measurement(float("nan"), float("nan"), None, False, detail)


def _short(message: str) -> str:
    first = message.splitlines()[0] if message else ""
    return first if len(first) <= MAX_MESSAGE else first[: MAX_MESSAGE - 1] + "…"


def describe(refusal: Refusal, count: int) -> str:
    """The row's account of its refused examples."""
    examples = "example" if count == 1 else "examples"
    return f"unsupported, raised {refusal.raised} ({count} {examples} in the declared region: {refusal.region})"


def judge_outside(
    spec: EquationSpec, implementation: str, example: Example, trial: Callable[[], Any], judge: Callable[[Any], Any]
) -> Any:
    """``judge(trial())`` for an example outside the implementation's declared regions; inside one, the
    implementation (its trial built and called on the example's inputs) must refuse it."""
    region = region_for(spec, implementation, example)
    if region is None:
        return judge(trial())

    def call() -> Any:
        t = trial()  # building a module may be where it refuses
        return t.implementation(t.rounded(t.env64))

    return expect_refusal(call, region)

