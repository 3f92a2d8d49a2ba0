"""How much longer a spec's run takes against a planted defect than against its correct implementation.

For each shipped spec: every CPU case the spec generates (all its checks and dtypes, as
``conformance.selection.build_cases`` builds them) run through the engine on the ``conformance-ci``
profile, once with the spec's first correct implementation and once with its table's first planted
defect (``tests/meta_tests/tables/<spec>.py``). The figure is the ratio of the two wall times; the goal
is at most :data:`GOAL`. A benchmark, not a timed test: it reports, it does not assert the ratio
(machines differ), only that the defect was caught; rows of the correct run that did not pass are
listed in ``extra_info`` (the planted-defect meta tests own that claim).

Run it alone (it runs every spec twice)::

    pytest benchmarks/test_failing_run.py -p no:randomly --benchmark-columns=min,rounds --benchmark-sort=name

Each spec's ``extra_info`` holds ``correct_s``, ``planted_s``, ``ratio`` and the slowest planted rows.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest

from conformance import engine
from conformance.defects import PlantedDefect, SpecTable, shipped_specs
from conformance.results import Result
from conformance.selection import Case, build_cases
from tests.meta_tests.tables import tables

GOAL = 3.0  # planted / correct wall time, per spec (issue 8)
PROFILE = "conformance-ci"
PLAN = engine.Plan(profile=PROFILE)


def _planted(table: SpecTable) -> PlantedDefect:
    """The table's first planted defect that is a whole wrong implementation run on the CPU."""
    return next(r for r in table.defects if r.device == "cpu" and r.as_option is None)


def _cases(spec_id: str, ref: str) -> list[Case]:
    spec = shipped_specs()[spec_id]
    return [c for c in build_cases({spec_id: spec}, {spec_id: [ref]}) if c.device == "cpu"]


def _run(cases: Sequence[Case]) -> tuple[float, list[Result]]:
    start = time.perf_counter()
    results = engine.run(PLAN, cases=cases)
    return time.perf_counter() - start, results


TABLES = {t.spec: t for t in tables()}


@pytest.fixture(scope="module", autouse=True)
def _warm() -> None:
    """Pay the first imports (torch, the engine, Hypothesis) before anything is timed."""
    engine.run(PLAN, cases=_cases("surprise", TABLES["surprise"].correct[0])[:1])


@pytest.mark.parametrize("spec_id", sorted(TABLES))
def test_planted_defect_run_against_correct_run(benchmark, spec_id: str) -> None:
    table = TABLES[spec_id]
    row = _planted(table)
    correct_s, correct = _run(_cases(spec_id, table.correct[0]))
    planted_cases = _cases(spec_id, row.defect)
    planted = benchmark.pedantic(lambda: _run(planted_cases), rounds=1, iterations=1)[1]
    planted_s = benchmark.stats.stats.min
    slowest = sorted(planted, key=lambda r: -(r.duration_s or 0.0))[:3]
    benchmark.extra_info.update(
        defect=row.defect.rsplit(":", 1)[-1],
        cases=len(planted_cases),
        correct_s=round(correct_s, 2),
        planted_s=round(planted_s, 2),
        ratio=round(planted_s / correct_s, 2),
        slowest=[f"{r.check} {r.dtype} {r.outcome} {r.duration_s:.1f}s ({r.examples} examples)" for r in slowest],
    )
    print(f"\n{spec_id}: correct {correct_s:.1f}s, planted {planted_s:.1f}s, ratio {planted_s / correct_s:.2f}")
    print("  slowest planted rows:", *benchmark.extra_info["slowest"], sep="\n    ")
    not_ok = [f"{r.check} {r.dtype}: {r.outcome}" for r in correct if not r.ok]
    benchmark.extra_info["correct_not_ok"] = not_ok  # reported, not asserted: the meta tests own that claim
    assert any(r.outcome == "failed" for r in planted), f"{row.defect} was not caught"
