"""Drive one case with Hypothesis and turn what happened into a report row.

A case is one (spec, implementation, device, dtype, check), or a per-spec case (a symbolic fact,
the oracle cross-check). The runner keeps the worst measurement over all examples; on failure it
keeps the shrunk falsifying example and a copy-pasteable reproduction.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from hypothesis import HealthCheck, given, note, reject, settings

from conformance.checks import CheckFailure, check_oracle_agreement, run_check
from conformance.selection import Case
from conformance.strategies import Example, examples
from conformance.symbolic import prove
from conformance.tolerance import Measurement


@dataclass
class Tracker:
    examples: int = 0
    worst: Measurement | None = None
    failure: Measurement | None = None
    failing_example: Example | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def observe(self, m: Measurement, example: Example) -> None:
        self.examples += 1
        if not m.passed:
            self.failure, self.failing_example = m, example
        elif self.worst is None or m.ratio > self.worst.ratio:
            self.worst = m


def cuda_skip_reason(device: str) -> str | None:
    if device == "cuda" and not torch.cuda.is_available():
        return "CUDA not available (torch.cuda.is_available() is False)"
    return None


def run_case(case: Case, record: Callable[[dict[str, Any]], None], hypothesis_settings: settings | None = None) -> None:
    """Run ``case``; ``record`` receives the measured fields whatever the outcome.

    ``hypothesis_settings`` (default: Hypothesis's current profile) sets the examples per check.
    """
    tracker = Tracker()
    start = time.perf_counter()
    try:
        if case.check.startswith("fact:"):
            _run_fact(case, tracker)
        elif any(p.check == case.check for p in case.spec.patterns):
            _run_pattern(case, tracker, hypothesis_settings or settings())
        else:
            _run_property(case, tracker, hypothesis_settings or settings())
    except CheckFailure:
        raise
    except Exception as exc:
        tracker.extra["error"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        record(_fields(case, tracker, time.perf_counter() - start))


def _run_fact(case: Case, tracker: Tracker) -> None:
    fact = next(f for f in case.spec.facts if f.id == case.check.split(":", 1)[1])
    result = prove(fact.kind, fact.options)
    tracker.extra["proof"] = result.detail
    tracker.examples = 1
    if not result.proved:
        tracker.failure = Measurement(float("nan"), float("nan"), None, False, f"{fact.description}: {result.detail}")
        raise CheckFailure(tracker.failure.detail)
    tracker.worst = Measurement(0.0, 0.0, None, True, result.detail)


def _run_pattern(case: Case, tracker: Tracker, hypothesis_settings: settings) -> None:
    from conformance.patterns import PatternContext, kinds

    pattern = next(p for p in case.spec.patterns if p.check == case.check)
    ctx = PatternContext(case.spec, case.implementation, case.device, case.dtype, pattern.options, hypothesis_settings)
    m = kinds()[pattern.kind].run(ctx)
    tracker.examples = max(tracker.examples, m.examples)
    if not m.passed:
        tracker.failure = m
        snippet = f"\nReproduce with:\n{repro(case, m.example)}" if m.example is not None else ""
        raise CheckFailure(f"{case.check} failed: {pattern.description}: {m.detail}{snippet}")
    tracker.worst = m


def _run_property(case: Case, tracker: Tracker, parent: settings) -> None:
    inv_when = None
    if case.check.startswith("invariant:"):
        inv_when = next(i.when for i in case.spec.invariants if i.id == case.check.split(":", 1)[1])
    strategy = examples(case.spec, case.dtype, when=inv_when, for_gradcheck=case.check in ("gradcheck", "gradgradcheck"))

    @settings(
        parent,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        deadline=None,
        database=None,
        report_multiple_bugs=False,  # one failure per row: the shrunk falsifying example
    )
    @given(example=strategy)
    def prop(example: Example) -> None:
        try:
            if case.check == "oracle_agreement":
                m: Measurement | None = check_oracle_agreement(case.spec, example)
            else:
                m = run_check(case.spec, case.implementation, case.device, case.dtype, case.check, example)
        except Exception:
            tracker.failing_example = example  # an implementation that raises: keep the example and repro too
            note(f"Reproduce with:\n{repro(case, example)}")
            raise
        if m is None:
            reject()
        tracker.observe(m, example)
        if not m.passed:
            note(f"Reproduce with:\n{repro(case, example)}")
            raise CheckFailure(f"{case.check} failed: {m.detail}")

    prop()


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


def _fields(case: Case, tracker: Tracker, seconds: float) -> dict[str, Any]:
    m = tracker.failure or tracker.worst
    fields: dict[str, Any] = {
        "examples": tracker.examples,
        "duration_s": round(seconds, 4),
        "max_abs_err": _num(m.max_abs_err) if m else None,
        "max_rel_err": _num(m.max_rel_err) if m else None,
        "tolerance": _num(m.tolerance.atol) if m and m.tolerance else None,
        "tolerance_basis": m.tolerance.describe() if m and m.tolerance else None,
        "detail": (m.detail or None) if m else None,
    }
    fields.update(tracker.extra)
    if tracker.failing_example is not None:
        fields["falsifying_example"] = tracker.failing_example.as_dict()
        fields["repro"] = repro(case, tracker.failing_example)
    elif tracker.failure is not None and tracker.failure.example is not None:  # a pattern check's own example
        fields["falsifying_example"] = dict(tracker.failure.example)
        fields["repro"] = repro(case, tracker.failure.example)
    return fields


def _num(value: float) -> float | str:
    """JSON-safe numbers: non-finite values become strings."""
    value = float(value)
    return value if value == value and abs(value) != float("inf") else str(value)
