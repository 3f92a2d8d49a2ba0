"""Hypothesis search shared by pattern kinds: run a measurement on drawn examples, keep the first failure.

A kind gives a strategy and a function from one drawn example to a :class:`Measurement`; the search
runs under the run's settings (``ctx.settings``), stops at the first failing example (shrunk unless
told not to, within :class:`conformance.strategies.ShrinkBudget`: ``max_examples`` judgements more)
and returns it, with the number of examples tried and, if ``to_example`` is given, the failing
example as data for the kind's ``replay``. Without a failure it returns the worst pass.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from conformance.patterns import PatternContext
from conformance.strategies import ShrinkBudget
from conformance.tolerance import Measurement, worst


class _Violation(Exception):
    def __init__(self, measurement: Measurement, example: Any) -> None:
        super().__init__(measurement.detail)
        self.measurement, self.example = measurement, example


def search(
    ctx: PatternContext,
    strategy: st.SearchStrategy,
    measure: Callable[[Any], Measurement],
    *,
    shrink: bool = True,
    to_example: Callable[[Any], Mapping[str, Any]] | None = None,
) -> Measurement:
    """Run ``measure`` on Hypothesis examples under the run's settings; the first failure (shrunk) or the worst pass."""
    kept: list[Measurement] = []
    count = 0
    budget = ShrinkBudget(ctx.settings.max_examples)

    @settings(
        ctx.settings,
        phases=[p for p in ctx.settings.phases if shrink or p != Phase.shrink],
        deadline=None,
        database=None,
        report_multiple_bugs=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
    @given(example=strategy)
    def prop(example: Any) -> None:
        nonlocal count
        if not budget.allows(example):
            return  # the shrink budget is spent: an example not judged counts as passing
        m = measure(example)
        count += 1
        if not m.passed:
            budget.failed(example)
            raise _Violation(m, example)
        kept[:] = [worst([*kept, m])]

    try:
        prop()
    except _Violation as exc:
        example = to_example(exc.example) if to_example is not None else exc.measurement.example
        return replace(exc.measurement, examples=count, example=example)
    return replace(kept[0], examples=count)
