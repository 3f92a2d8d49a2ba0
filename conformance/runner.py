"""Drive one case's check: draw examples with Hypothesis, judge each, keep what the report needs.

The check's record (:mod:`conformance.check_defs`) says how: a check with ``draw`` is a property —
Hypothesis draws examples and ``judge(case, example)`` judges each; the runner keeps the worst
measurement over all examples and, on failure, the shrunk falsifying example and a copy-pasteable
reproduction. A check without ``draw`` (a symbolic fact, a pattern kind) runs whole.

Shrinking is bounded (:class:`conformance.strategies.ShrinkBudget`): once the first failure is found,
Hypothesis's shrinker may have at most as many examples judged as the search itself could draw
(``max_examples``), so a failing row costs at most about twice a passing one. Hypothesis has no
public shrink budget, so the property enforces it: past the budget an example it has not judged
failing counts as passing without being run, the shrinker stops making progress and Hypothesis
reports (and replays, judged for real) the simplest failure judged so far. What it simplifies is
sizes and structure, not scale: magnitudes shrink toward a representative value
(:func:`conformance.strategies.representative`).

:func:`run_case` raises :class:`conformance.checks.CheckFailure` for a failing check and lets an
implementation's exception through; :mod:`conformance.engine` turns either into a result.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, note, reject, settings

from conformance.checks import CheckFailure, CheckSkipped
from conformance.diagnosis import with_region
from conformance.selection import Case
from conformance.strategies import Example, ShrinkBudget
from conformance.tolerance import Measurement, worst
from conformance.unsupported import Refusal
from conformance.unsupported import describe as describe_refusals


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

    def observe(self, m: Measurement, example: Example) -> None:
        self.examples += 1
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
    budget = ShrinkBudget(parent.max_examples)

    @settings(
        parent,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        deadline=None,
        database=None,
        report_multiple_bugs=False,  # one failure per row: the shrunk falsifying example
    )
    @given(example=draw(case))
    def prop(example: Example) -> None:
        if not budget.allows(example):
            return  # the shrink budget is spent: an example not judged counts as passing
        try:
            m: Measurement | None = judge(case, example)
        except Exception:
            budget.failed(example)
            tracker.failing_example = example  # an implementation that raises: keep the example and repro too
            note(f"Reproduce with:\n{repro(case, example)}")
            raise
        if m is None:
            reject()
        tracker.observe(m, example)
        if not m.passed and not m.vacuous:
            budget.failed(example)
            note(f"Reproduce with:\n{repro(case, example)}")
            raise CheckFailure(f"{case.check} failed: {m.detail}")

    try:
        prop()
    except CheckFailure as exc:  # the shrunk example's failure: name the region it is confined to, if any
        if tracker.failure is not None and tracker.failing_example is not None:
            tracker.failure = with_region(case, judge, tracker.failing_example, tracker.failure)
            exc.args = (f"{case.check} failed: {tracker.failure.detail}",)
        raise


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

