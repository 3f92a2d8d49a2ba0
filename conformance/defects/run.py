"""Run a planted-defect table row and say what the check found: a typed :class:`Verdict`.

``run_planted(row)`` builds the case of a :class:`PlantedDefect` row (spec, defect, device, dtype,
check) the way a run would (``conformance.selection.build_cases``), runs it under a fixed,
derandomized Hypothesis profile (:func:`fixed_settings`) and returns a verdict: ``caught`` (a
``CheckFailure`` of the row's check), ``missed`` (the check passed), ``crashed`` (the implementation
or the harness raised) or ``skipped`` (no such device here), with the engine's result of the case
(its outcome, message and measured fields) and every expectation of the row the run did not meet.
``run_correct`` runs a :class:`Baseline` (a correct implementation must pass the same check),
``run_blind_spot`` a :class:`BlindSpot` (the check must not see the defect). ``score(rows)``
summarises many rows, the figure a mutation score reports.

The one call into the harness that runs a case is :func:`execute` (``conformance.engine.run_case``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cache
from typing import Literal

from hypothesis import HealthCheck, Phase, settings

from conformance import engine
from conformance.defects.records import Baseline, BlindSpot, PlantedDefect
from conformance.results import Result
from conformance.selection import Case, build_cases
from conformance.spec import EquationSpec, load_specs

Finding = Literal["caught", "missed", "crashed", "skipped"]
Row = PlantedDefect | BlindSpot | Baseline
_PART = re.compile(r"\[([a-z][a-z _]*[a-z])\]")  # a check's tag for the part that found a problem


@dataclass(frozen=True)
class Verdict:
    """What one table row's run found, and whether the row's claim holds."""

    row: Row
    finding: Finding
    result: Result  # the engine's result of the case: outcome, message, measured fields
    problems: tuple[str, ...] = ()  # the row's expectations the run did not meet

    @property
    def outcome(self) -> str:
        return self.result.outcome

    @property
    def message(self) -> str:
        return self.result.message or ""

    @property
    def holds(self) -> bool:
        """A planted defect is caught; a blind spot and a correct implementation pass; as the row says."""
        wanted = "caught" if isinstance(self.row, PlantedDefect) else "missed"
        return self.finding == wanted and not self.problems

    def explain(self) -> str:
        lines = [f"{self.row.id}: {self.finding} (outcome {self.outcome})"]
        lines += [f"  unmet: {p}" for p in self.problems]
        lines += [f"  message: {self.message}"] if self.message else []
        measured = ("examples", "max_abs_err", "tolerance_basis", "detail", "falsifying_example")
        lines.append(f"  measured: { {name: getattr(self.result, name) for name in measured} }")
        return "\n".join(lines)


def fixed_settings(max_examples: int, *, shrink: bool = False, all_failures: bool = False) -> settings:
    """A fixed, derandomized Hypothesis profile of ``max_examples`` examples.

    Shrinking is skipped (a falsifying example is enough to show a catch), unless ``shrink`` or
    ``all_failures``: Hypothesis looks for further distinct failures only while it may shrink, which a
    defect that both crashes and computes wrong values needs.
    """
    phases = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if shrink or all_failures else [])
    return settings(
        max_examples=max_examples,
        derandomize=True,
        deadline=None,
        database=None,
        phases=phases,
        report_multiple_bugs=all_failures,
        print_blob=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )


@cache
def shipped_specs() -> Mapping[str, EquationSpec]:
    """The shipped specs, loaded once."""
    return load_specs()


def build_case(spec: EquationSpec, ref: str, check: str, dtype: str, device: str = "cpu", as_option: str | None = None) -> Case:
    """The case a run generates for (``ref``, device, dtype, check) of ``spec``.

    A check run off its spec's declared devices or dtypes (a CUDA check's logic on the CPU) gets the
    same case, built directly. ``as_option`` plants ``ref`` as that option of the check's pattern and
    tests the spec's first shipped implementation instead.
    """
    if as_option is not None:
        spec = _with_pattern_option(spec, check, as_option, ref)
        ref = spec.implementations[0].id
    for case in build_cases({spec.id: spec}, {spec.id: [ref]}):
        if (case.device, case.dtype, case.check) == (device, dtype, check):
            return case
    tested = spec.with_implementations([ref])
    return Case(tested.for_implementation(ref), ref, device, dtype, check)


def _with_pattern_option(spec: EquationSpec, check: str, option: str, value: str) -> EquationSpec:
    if not any(p.check == check for p in spec.patterns):
        raise ValueError(f"spec {spec.id!r} has no pattern check {check!r} to plant option {option!r} in")
    patterns = tuple(replace(p, options={**p.options, option: value}) if p.check == check else p for p in spec.patterns)
    return replace(spec, patterns=patterns)


def execute(case: Case, hypothesis_settings: settings) -> Result:
    """Run one case: the only call into the harness that runs anything (the engine decides the outcome)."""
    return engine.run_case(case, hypothesis_settings)


def finding(result: Result) -> Finding:
    """What the engine's result says of a planted defect.

    A case runs one check, so a failure is that check's (the engine counts one Hypothesis could not
    replay as a failure too). An expected failure (a spec's reviewed xfail) is no catch, and not a pass.
    """
    return _FINDINGS[result.outcome]


_FINDINGS: dict[str, Finding] = {
    "failed": "caught",
    "passed": "missed",
    "error": "crashed",
    "xfailed": "crashed",
    "skipped": "skipped",
}


def run_planted(
    row: PlantedDefect, hypothesis_settings: settings | None = None, specs: Mapping[str, EquationSpec] | None = None
) -> Verdict:
    """Run ``row``'s check on its defect; ``hypothesis_settings`` default to :func:`fixed_settings` of the row."""
    spec = (specs or shipped_specs())[row.spec]
    case = build_case(spec, row.defect, row.check, row.dtype, row.device, row.as_option)
    chosen = hypothesis_settings or fixed_settings(row.max_examples, shrink=row.shrink, all_failures=row.all_failures)
    result = execute(case, chosen)
    found = finding(result)
    problems = _catch_problems(row, case, result) if found == "caught" else ()
    return Verdict(row, found, result, problems)


def run_blind_spot(
    row: BlindSpot, hypothesis_settings: settings | None = None, specs: Mapping[str, EquationSpec] | None = None
) -> Verdict:
    """Run ``row``'s check on its defect: the claim holds when the check passes (finding ``missed``)."""
    spec = (specs or shipped_specs())[row.spec]
    case = build_case(spec, row.defect, row.check, row.dtype, row.device)
    result = execute(case, hypothesis_settings or fixed_settings(row.max_examples))
    return Verdict(row, finding(result), result)


def run_correct(
    row: Baseline, hypothesis_settings: settings | None = None, specs: Mapping[str, EquationSpec] | None = None
) -> Verdict:
    """Run a correct implementation on ``row``'s check: the claim holds when it passes as the row says."""
    spec = (specs or shipped_specs())[row.spec]
    case = build_case(spec, row.implementation, row.check, row.dtype, row.device)
    result = execute(case, hypothesis_settings or fixed_settings(row.max_examples))
    found = finding(result)
    return Verdict(row, found, result, _baseline_problems(row, result) if found == "missed" else ())


def run_row(row: Row, hypothesis_settings: settings | None = None) -> Verdict:
    """Run any table row with the runner its kind needs."""
    if isinstance(row, PlantedDefect):
        return run_planted(row, hypothesis_settings)
    if isinstance(row, BlindSpot):
        return run_blind_spot(row, hypothesis_settings)
    return run_correct(row, hypothesis_settings)


def _catch_problems(row: PlantedDefect, case: Case, result: Result) -> tuple[str, ...]:
    """The row's expectations on a catch that the run did not meet (caught, but not as stated)."""
    message, detail = result.message or "", result.detail or ""
    problems = [f"the failure does not say {s!r}" for s in row.message_has if s not in message]
    problems += [f"the report's detail does not say {s!r}" for s in row.detail_has if s not in detail]
    if row.detail_ends is not None and not detail.endswith(row.detail_ends):
        problems.append(f"the report's detail does not end with {row.detail_ends!r}")
    if row.parts is not None and set(_PART.findall(message)) != set(row.parts):
        problems.append(f"tagged parts {sorted(set(_PART.findall(message)))}, expected {sorted(row.parts)}")
    problems += [f"the report row has no {name}" for name in row.row_fields if not getattr(result, name)]
    if row.examples is not None and result.examples != row.examples:
        problems.append(f"{result.examples} examples, expected {row.examples}")
    is_pattern = any(p.check == case.check for p in case.spec.patterns)
    if not is_pattern and not result.falsifying_example:
        problems.append("the report row must carry the falsifying example")
    return tuple(problems)


def _baseline_problems(row: Baseline, result: Result) -> tuple[str, ...]:
    problems = [f"{result.examples} examples, expected at least {row.min_examples}"] if result.examples < row.min_examples else []
    if row.examples is not None and result.examples != row.examples:
        problems.append(f"{result.examples} examples, expected {row.examples}")
    if row.max_abs_err is not None and result.max_abs_err != row.max_abs_err:
        problems.append(f"max |error| {result.max_abs_err}, expected {row.max_abs_err}")
    problems += [f"the report's detail does not say {s!r}" for s in row.detail_has if s not in (result.detail or "")]
    return tuple(problems)


@dataclass(frozen=True)
class Score:
    """How many planted defects their checks caught: ``caught / (rows - skipped)`` is the score."""

    verdicts: tuple[Verdict, ...]

    def count(self, finding: Finding) -> int:
        return sum(v.finding == finding for v in self.verdicts)

    @property
    def ran(self) -> int:
        return len(self.verdicts) - self.count("skipped")

    @property
    def score(self) -> float:
        return self.count("caught") / self.ran if self.ran else float("nan")

    @property
    def failing(self) -> tuple[Verdict, ...]:
        """The rows whose claim does not hold (skipped ones aside)."""
        return tuple(v for v in self.verdicts if v.finding != "skipped" and not v.holds)

    def summary(self) -> str:
        counts = ", ".join(f"{self.count(f)} {f}" for f in ("caught", "missed", "crashed", "skipped"))
        return f"{len(self.verdicts)} rows: {counts}; score {self.score:.3f}"


def score(rows: Iterable[PlantedDefect], hypothesis_settings: settings | None = None) -> Score:
    """Run every planted row (each under its own fixed profile unless ``hypothesis_settings``)."""
    return Score(tuple(run_planted(row, hypothesis_settings) for row in rows))
