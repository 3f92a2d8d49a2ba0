"""Hypothesis search shared by pattern kinds: run a measurement on drawn examples, keep the first failure.

A kind gives a strategy and a function from one drawn example to a :class:`Measurement`; the search
runs under the run's settings (``ctx.settings``), stops at the first failing example and returns it,
with the number of examples judged and, if ``to_example`` is given, the failing example as data for
the kind's ``replay``. Without a failure it returns the worst pass.

How the first failure is made simpler:

- ``simpler`` given (a function from an example to simpler ones, most promising first): Hypothesis
  only searches (no shrink phase) and the search shrinks itself, greedily as the runner does for
  property checks (:func:`greedy_shrink`): the first candidate that still fails replaces the example,
  within ``max_examples`` judgements more, and only where the settings' phases shrink. Bounded in
  time, not just in judgements: Hypothesis's shrinker goes on drawing candidates after a judgement
  cap (some 200 for one failure), each a property call, and drawing or calling can be what is costly.
- otherwise, ``shrink=True``: Hypothesis's own shrinker, its judgements capped by
  :class:`conformance.strategies.ShrinkBudget` (``max_examples`` more);
- ``shrink=False``: the first failure as drawn.

The reported example is one that was judged failing, so reproducing it fails again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from conformance.patterns import PatternContext
from conformance.strategies import ShrinkBudget
from conformance.tolerance import Measurement, worst

T = TypeVar("T")


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
    simpler: Callable[[Any], Iterable[Any]] | None = None,
    to_example: Callable[[Any], Mapping[str, Any]] | None = None,
) -> Measurement:
    """Run ``measure`` on Hypothesis examples under the run's settings; the first failure (shrunk) or the worst pass."""
    kept: list[Measurement] = []
    count = 0
    ours = shrink and simpler is not None and Phase.shrink in ctx.settings.phases
    # From here ``shrink`` says whether Hypothesis shrinks. The name is kept so that the property's source, from
    # which Hypothesis derives its derandomized draws, is the same with and without ``simpler``.
    shrink = shrink and simpler is None
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
        found, measured, judged = exc.example, exc.measurement, 0
        if ours:
            found, measured, judged = greedy_shrink(found, measured, measure, simpler, ctx.settings.max_examples)
        example = to_example(found) if to_example is not None else measured.example
        return replace(measured, examples=count + judged, example=example)
    return replace(kept[0], examples=count)


def greedy_shrink(
    example: T,
    measured: Measurement,
    measure: Callable[[T], Measurement],
    simpler: Callable[[T], Iterable[T]],
    limit: int,
) -> tuple[T, Measurement, int]:
    """The simplest failing example reached from ``example`` within ``limit`` judgements, its measurement, the judgements.

    Each round tries ``simpler(current)`` in order and moves to the first candidate that fails; it
    stops when no candidate fails or the judgements are spent. A candidate that raises counts as not
    failing: the row reports the check's failure it found, not another.
    """
    judged, progress = 0, True
    while progress and judged < limit:
        progress = False
        for candidate in simpler(example):
            if judged >= limit:
                break
            judged += 1
            try:
                m = measure(candidate)
            except Exception:  # noqa: BLE001 - another failure than the one being shrunk
                continue
            if not m.passed:
                example, measured, progress = candidate, m, True
                break
    return example, measured, judged
