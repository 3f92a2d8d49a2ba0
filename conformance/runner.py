"""Drive one case's check: draw examples with Hypothesis, judge each, keep what the report needs.

The check's record (:mod:`conformance.check_defs`) says how: a check with ``draw`` is a property —
Hypothesis draws examples and ``judge(case, example)`` judges each; the runner keeps the worst
measurement over all examples and, on failure, the shrunk falsifying example and a copy-pasteable
reproduction. A check without ``draw`` (a symbolic fact, a pattern kind) runs whole.

Shrinking is bounded and simplifies sizes and structure, not scale. Where the check's draw gives a
:class:`conformance.strategies.Domain` (every built-in property check), Hypothesis only searches and
the runner shrinks the first failing example itself (:func:`_shrink`): greedily over the domain's
:meth:`~conformance.strategies.Domain.simpler` candidates — magnitudes to their representative
value, each size toward its minimum; seed and params kept — with at most ``max_examples``
judgements, so a failing row costs at most about twice a passing one and no Hypothesis shrinker
calls. Where the draw gives only a strategy, Hypothesis shrinks within
:class:`conformance.strategies.ShrinkBudget`. The reported example is always one judged failing,
so its reproduction snippet fails again. Without Hypothesis's ``shrink`` phase (``--verdict-only``)
nothing is shrunk.

:func:`run_case` raises :class:`conformance.checks.CheckFailure` for a failing check and lets an
implementation's exception through; :mod:`conformance.engine` turns either into a result.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, given, note, reject, settings
from hypothesis.errors import UnsatisfiedAssumption

from conformance.checks import CheckFailure, CheckSkipped
from conformance.diagnosis import with_departures, with_region
from conformance.selection import Case
from conformance.strategies import Domain, Example, ShrinkBudget
from conformance.tolerance import Measurement, worst
from conformance.unsupported import Refusal
from conformance.unsupported import describe as describe_refusals

MAX_SAMPLES = 256  # points per row kept for plots (a profile's examples plus the runner's shrinking)


def _sig(x: float) -> float:
    """``x`` to 3 significant digits: plot points, not measurements (those are the row's own fields)."""
    return float(f"{x:.3g}")


@dataclass
class Tracker:
    examples: int = 0
    worst: Measurement | None = None
    failure: Measurement | None = None
    failing_example: Example | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    refusals: int = 0  # examples in the implementation's declared unsupported region, refused as declared
    refusal: Refusal | None = None  # the first of them
    vacuous: int = 0  # examples whose tolerance reached the output's own magnitude: not judged (tolerance.compare)
    first_vacuous: Measurement | None = None
    samples: list[tuple[float, float]] = field(default_factory=list)  # per judged example: (input magnitude, error/tolerance)

    def observe(self, m: Measurement, example: Example) -> None:
        self.examples += 1
        self._sample(m, example)
        if isinstance(m, Refusal):  # not otherwise judged (conformance.unsupported)
            self.refusals += 1
            self.refusal = self.refusal or m
            return
        if m.vacuous:  # no result could fail it: neither a pass nor a failure
            self.vacuous += 1
            self.first_vacuous = self.first_vacuous or m
            return
        if not m.passed:
            self.failure, self.failing_example = m, example
        else:
            self.worst = m if self.worst is None else worst([self.worst, m])

    def _sample(self, m: Measurement, example: Example) -> None:
        """Keep one point per judged example for the report's plots: the largest drawn magnitude (0 for an
        example without tensors) against the error as a fraction of its tolerance (above 1 fails)."""
        if isinstance(m, Refusal) or m.vacuous or len(self.samples) >= MAX_SAMPLES:
            return
        magnitudes = getattr(example, "magnitudes", None) or {}
        ratio = m.ratio
        self.samples.append((_sig(max(magnitudes.values(), default=0.0)), _sig(ratio) if math.isfinite(ratio) else ratio))


def cuda_skip_reason(device: str) -> str | None:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        return "CUDA not available (torch.cuda.is_available() is False)"
    return None


def run_case(case: Case, record: Callable[[dict[str, Any]], None], hypothesis_settings: settings | None = None) -> None:
    """Run ``case``; ``record`` receives the measured fields whatever the outcome.

    ``hypothesis_settings`` (default: Hypothesis's current profile) sets the examples per check.
    """
    tracker = Tracker()
    start = time.perf_counter()
    definition = case.ref.definition_record()
    try:
        if definition.draw is None:
            _run_whole(case, definition.judge_fn(), tracker, hypothesis_settings or settings())
        else:
            _run_property(case, definition.draw_fn(), definition.judge_fn(), tracker, hypothesis_settings or settings())
            if tracker.refusal is not None and tracker.refusals == tracker.examples:
                raise CheckSkipped(f"every example drawn is in the declared unsupported region: {_refused(tracker)}")
            if tracker.first_vacuous is not None and tracker.vacuous + tracker.refusals == tracker.examples:
                tracker.failure = tracker.first_vacuous
                raise CheckFailure(f"{case.check}: every example judged had a vacuous tolerance: {_vacuous(tracker)}")
    except (CheckFailure, CheckSkipped):
        raise
    except Exception as exc:
        tracker.extra["error"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        record(_fields(case, tracker, time.perf_counter() - start))


def _run_whole(case: Case, judge: Callable[..., Any], tracker: Tracker, hypothesis_settings: settings) -> None:
    """A check that runs whole: one measurement (and, for some, report fields such as a fact's proof)."""
    outcome = judge(case, hypothesis_settings)
    m, fields = outcome if isinstance(outcome, tuple) else (outcome, {})
    tracker.extra.update(fields)
    tracker.examples = max(tracker.examples, m.examples)
    if not m.passed:
        tracker.failure = m
        snippet = f"\nReproduce with:\n{repro(case, m.example)}" if m.example is not None else ""
        raise CheckFailure(f"{case.check} failed: {m.detail}{snippet}")
    tracker.worst = m


def _run_property(case: Case, draw: Callable[..., Any], judge: Callable[..., Any], tracker: Tracker, parent: settings) -> None:
    drawn = draw(case)
    domain = drawn if isinstance(drawn, Domain) else None
    ourselves = domain is not None and Phase.shrink in parent.phases  # we shrink: Hypothesis only searches
    budget = ShrinkBudget(parent.max_examples)
    raised: list[BaseException] = []
    crashes: list[tuple[Example, Exception]] = []  # with a domain: kept while the search looks for the check's failure

    @settings(
        parent,
        phases=[p for p in parent.phases if p != Phase.shrink] if ourselves else parent.phases,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        deadline=None,
        database=None,
        report_multiple_bugs=False,  # one failure per row: the shrunk falsifying example
    )
    @given(example=domain.examples() if domain is not None else drawn)
    def prop(example: Example) -> None:
        if not budget.allows(example):
            return  # the shrink budget is spent: an example not judged counts as passing
        try:
            failure = _judged(case, judge, example, tracker)
        except UnsatisfiedAssumption:  # a rejected example (reject()) is Hypothesis's to handle, not a crash
            raise
        except Exception as exc:
            if domain is not None:  # the check's own failure outranks an exception: search on
                crashes.append((example, exc))
                return
            budget.failed(example)
            note(f"Reproduce with:\n{repro(case, example)}")
            raise
        if failure is not None:
            budget.failed(example)
            raised.append(failure)
            note(f"Reproduce with:\n{repro(case, example)}")
            raise failure

    try:
        prop()
    except Exception as exc:
        if not (ourselves and raised and exc is raised[-1] and tracker.failing_example is not None):
            _name_region(case, judge, tracker, exc)
            raise
        assert domain is not None
        _raise_shrunk(case, judge, domain, tracker, exc, parent.max_examples)
    if crashes:  # no check failure anywhere the search looked: the implementation's exception is the row's
        tracker.failing_example, first = crashes[0]
        if not ourselves:
            _add_repro(case, tracker, first)
            raise first
        assert domain is not None
        _raise_shrunk(case, judge, domain, tracker, first, parent.max_examples)


def _raise_shrunk(
    case: Case, judge: Callable[..., Any], domain: Domain, tracker: Tracker, first: BaseException, limit: int
) -> None:
    """Shrink ``first``'s example within ``limit`` judgements and raise the failure of the example reported."""
    shrunk = _shrink(case, judge, domain, tracker, first, limit)
    _name_region(case, judge, tracker, shrunk)
    _add_repro(case, tracker, shrunk)
    raise shrunk


def _add_repro(case: Case, tracker: Tracker, exc: BaseException) -> None:
    if hasattr(exc, "add_note") and tracker.failing_example is not None:  # Python 3.11+
        exc.add_note(f"Reproduce with:\n{repro(case, tracker.failing_example)}")


def _judged(
    case: Case, judge: Callable[..., Any], example: Example, tracker: Tracker, in_hypothesis: bool = True
) -> CheckFailure | None:
    """Judge one example: the check's failure (to raise), ``None`` if it passes; an implementation's exception
    propagates (the example kept as the failing one). A rejected example rejects the Hypothesis example (outside
    a Hypothesis test — the runner's own shrinking — it raises ``UnsatisfiedAssumption`` itself)."""
    try:
        m: Measurement | None = judge(case, example)
    except Exception:
        tracker.examples += 1
        tracker.failing_example = example  # an implementation that raises: keep the example and repro too
        raise
    if m is None:
        if not in_hypothesis:
            from hypothesis.errors import UnsatisfiedAssumption

            raise UnsatisfiedAssumption()
        reject()
    tracker.observe(m, example)
    if m.passed or m.vacuous:
        return None
    return CheckFailure(f"{case.check} failed: {m.detail}")


def _shrink(
    case: Case, judge: Callable[..., Any], domain: Domain, tracker: Tracker, first: BaseException, limit: int
) -> BaseException:
    """The simplest failure found from ``tracker.failing_example`` within ``limit`` judgements (greedy).

    A candidate replaces the current example when it fails the same way: the check fails, or the
    implementation raises the same exception type. A check failure also replaces an exception (the
    check's own verdict is what the row is for; the exception was one part of the domain), never the
    reverse. ``tracker`` ends on the reported example and its measurement.
    """
    current, failure, measured = tracker.failing_example, first, tracker.failure
    assert current is not None
    judged, progress = 0, True
    while progress and judged < limit:
        progress = False
        for candidate in domain.simpler(current):
            if judged >= limit:
                break
            judged += 1
            outcome = _attempt(case, judge, candidate, tracker)
            if outcome is not None and (isinstance(outcome, CheckFailure) or type(outcome) is type(failure)):
                current, failure, progress = candidate, outcome, True
                measured = tracker.failure if isinstance(outcome, CheckFailure) else None
                break
    tracker.failing_example, tracker.failure = current, measured
    return failure


def _attempt(case: Case, judge: Callable[..., Any], candidate: Example, tracker: Tracker) -> BaseException | None:
    """One shrink candidate's failure (the check's, or the implementation's exception), or ``None``."""
    try:
        return _judged(case, judge, candidate, tracker, in_hypothesis=False)
    except Exception as exc:  # a rejected candidate is no failure
        return None if _is_rejection(exc) else exc


def _is_rejection(exc: BaseException) -> bool:
    from hypothesis.errors import UnsatisfiedAssumption

    return isinstance(exc, UnsatisfiedAssumption)


def _name_region(case: Case, judge: Callable[..., Any], tracker: Tracker, exc: BaseException) -> None:
    """A check failure on the reported example: name the region it is confined to, and the implementation's declared
    departures that cause it, if any."""
    if isinstance(exc, CheckFailure) and tracker.failure is not None and tracker.failing_example is not None:
        tracker.failure = with_region(case, judge, tracker.failing_example, tracker.failure)
        tracker.failure = with_departures(case, judge, tracker.failing_example, tracker.failure)
        exc.args = (f"{case.check} failed: {tracker.failure.detail}",)


def repro(case: Case, example: Example | Mapping[str, Any]) -> str:
    """A Python snippet that re-runs exactly this check on exactly this example (a pattern check's: its dict)."""
    spec_dir = case.spec.file.rsplit("/", 1)[0] if "/" in case.spec.file else "."
    data = example.as_dict() if isinstance(example, Example) else example
    return (
        "from conformance.repro import reproduce\n"
        f"reproduce({case.spec.id!r}, {case.implementation!r}, check={case.check!r}, device={case.device!r},\n"
        f"          dtype={case.dtype!r}, example={data!r},\n"  # a Python literal: True/None, not JSON's true/null
        f"          spec_dirs=[{spec_dir!r}])"
    )


def _vacuous(tracker: Tracker) -> str:
    assert tracker.first_vacuous is not None
    first = tracker.first_vacuous.detail
    return f"{tracker.vacuous} of {tracker.examples} examples not judged, their tolerance vacuous (first: {first})"


def _refused(tracker: Tracker) -> str:
    assert tracker.refusal is not None
    return describe_refusals(tracker.refusal, tracker.refusals)


def _fields(case: Case, tracker: Tracker, seconds: float) -> dict[str, Any]:
    m = tracker.failure or tracker.worst
    fields: dict[str, Any] = {
        "examples": tracker.examples,
        "duration_s": round(seconds, 4),
        "max_abs_err": float(m.max_abs_err) if m else None,  # non-finite values stay floats: Result writes JSON
        "max_rel_err": float(m.max_rel_err) if m else None,
        "tolerance": float(m.tolerance.atol) if m and m.tolerance else None,
        "tolerance_basis": m.tolerance.describe() if m and m.tolerance else None,
        "detail": (m.detail or None) if m else None,
        "samples": [list(p) for p in tracker.samples] or None,
    }
    fields.update(tracker.extra)
    if tracker.refusal is not None:
        fields["detail"] = "; ".join(filter(None, [fields.get("detail"), _refused(tracker)]))
    if tracker.first_vacuous is not None and tracker.failure is not tracker.first_vacuous:
        fields["detail"] = "; ".join(filter(None, [fields.get("detail"), _vacuous(tracker)]))
    if tracker.failing_example is not None:
        fields["falsifying_example"] = tracker.failing_example.as_dict()
        fields["repro"] = repro(case, tracker.failing_example)
    elif tracker.failure is not None and tracker.failure.example is not None:  # a pattern check's own example
        fields["falsifying_example"] = dict(tracker.failure.example)
        fields["repro"] = repro(case, tracker.failure.example)
    return fields

