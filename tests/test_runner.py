"""run_case: what a row records for passing, failing and crashing checks, and for facts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import settings

from conformance import runner
from conformance.checks import CheckFailure
from conformance.runner import Tracker, cuda_skip_reason, repro, run_case
from conformance.selection import Case
from conformance.spec import load_specs
from conformance.strategies import Domain, Example, ShrinkBudget
from conformance.tolerance import Measurement
from tests.spec_helpers import REPO_ROOT

FAST = settings(max_examples=8, derandomize=True, deadline=None, database=None)


def _case(tmp_path: Path, source: str | None, check: str, dtype: str = "float64") -> Case:
    spec = load_specs()["surprise"]
    if source is None:
        ref = "implementations.surprise:compute_surprise"
    else:
        path = tmp_path / "impl.py"
        path.write_text(source)
        ref = f"{path}:f"
    return Case(spec.with_implementations([ref]), ref, "cpu", dtype, check)


def test_a_passing_check_records_its_worst_error_and_tolerance(tmp_path: Path) -> None:
    rows: list[dict] = []
    run_case(_case(tmp_path, None, "oracle"), rows.append, FAST)
    (row,) = rows
    assert row["examples"] == FAST.max_examples
    assert 0 <= row["max_abs_err"] <= row["tolerance"]
    assert "same-precision reference" in row["tolerance_basis"]
    assert "falsifying_example" not in row


def test_a_failing_check_records_the_shrunk_example_and_a_repro(tmp_path: Path) -> None:
    rows: list[dict] = []
    case = _case(tmp_path, "def f(h, m):\n    return ((h - m) ** 2).mean(-1)\n", "oracle")
    with pytest.raises(CheckFailure, match="oracle failed: max \\|error\\|"):
        run_case(case, rows.append, FAST)
    (row,) = rows
    assert row["max_abs_err"] > row["tolerance"]
    example = row["falsifying_example"]
    assert example["sizes"]["D"] >= 2  # a mean equals the sum only when D == 1
    assert row["repro"].startswith("from conformance.repro import reproduce")


MEAN_NOT_SUM = "def f(h, m):\n    return ((h - m) ** 2).mean(-1)\n"


def _failing_row(case: Case, hypothesis_settings: settings) -> dict:
    rows: list[dict] = []
    with pytest.raises(CheckFailure):
        run_case(case, rows.append, hypothesis_settings)
    return rows[0]


def test_shrinking_is_bounded_and_its_example_reproduces_at_a_representative_scale(tmp_path: Path) -> None:
    """At most ``max_examples`` judgements after the first failure (plus Hypothesis's replay); the
    shrunk example sits at unit magnitudes and its snippet fails again when run."""
    case = _case(tmp_path, MEAN_NOT_SUM, "oracle")
    row = _failing_row(case, FAST)
    assert row["examples"] <= 2 * FAST.max_examples + 2
    assert row["falsifying_example"]["magnitudes"] == {"hidden": 1.0, "memory_pred": 1.0}
    assert row["falsifying_example"]["sizes"]["D"] >= 2
    with pytest.raises(CheckFailure, match="max \\|error\\|"):
        exec(row["repro"].replace("spec_dirs=", "quiet=True, spec_dirs="), {})


def _counting_judge(fails: Callable[[Example], bool | Exception], calls: list[Example]) -> Callable[..., Measurement]:
    def judge(case: Case, example: Example) -> Measurement:
        calls.append(example)
        verdict = fails(example)
        if isinstance(verdict, Exception):
            raise verdict
        return Measurement(1.0 if verdict else 0.0, 0.0, None, not verdict, "wrong" if verdict else "")

    return judge


def _shrunk(fails: Callable[[Example], bool | Exception], start: Example, limit: int) -> tuple[BaseException, Tracker, list]:
    spec = load_specs()["surprise"]
    case = Case(spec, "implementations.surprise:compute_surprise", "cpu", "float64", "oracle")
    calls: list[Example] = []
    judge = _counting_judge(fails, calls)
    tracker = Tracker(failing_example=start)
    try:
        tracker.observe(judge(case, start), start)
        first: BaseException = CheckFailure("first")
    except RuntimeError as exc:
        first = exc
    failure = runner._shrink(case, judge, Domain(spec, "float64"), tracker, first, limit)
    return failure, tracker, calls[1:]


BIG = Example({"B": 2, "L": 8, "D": 32}, {}, {"hidden": 300.0, "memory_pred": 0.002}, {}, 7)


def test_own_shrink_judges_at_most_its_limit_and_reports_a_judged_failure() -> None:
    failure, tracker, calls = _shrunk(lambda ex: True, BIG, limit=3)
    assert len(calls) == 3, "every candidate fails, so only the limit stops it"
    assert tracker.failing_example == calls[-1] and isinstance(failure, CheckFailure)
    assert tracker.failure is not None and not tracker.failure.passed


def test_own_shrink_makes_magnitudes_representative_and_sizes_small_keeping_the_seed() -> None:
    _, tracker, calls = _shrunk(lambda ex: ex.sizes["D"] >= 3, BIG, limit=40)
    assert tracker.failing_example == Example({"B": 1, "L": 1, "D": 3}, {}, {"hidden": 1.0, "memory_pred": 1.0}, {}, 7)
    assert len(calls) <= 40


def test_own_shrink_keeps_an_exception_and_prefers_the_checks_failure() -> None:
    crash = RuntimeError("does not broadcast")
    failure, tracker, _ = _shrunk(lambda ex: crash if ex.sizes["L"] > 1 else False, BIG, limit=40)
    assert failure is crash and tracker.failing_example.sizes["L"] == 2, "the same exception type, as small as it goes"
    failure, tracker, _ = _shrunk(lambda ex: crash if ex.sizes["L"] > 4 else ex.sizes["L"] > 1, BIG, limit=40)
    assert isinstance(failure, CheckFailure) and tracker.failing_example.sizes["L"] == 2, "a check failure replaces it"


def test_verdict_only_reports_the_first_failing_example_unshrunk(tmp_path: Path) -> None:
    from conformance.profiles import VERDICT_ONLY_PHASES

    row = _failing_row(_case(tmp_path, MEAN_NOT_SUM, "oracle"), settings(FAST, phases=VERDICT_ONLY_PHASES))
    assert row["examples"] <= FAST.max_examples + 1  # the search and Hypothesis's replay of the failure, nothing more
    with pytest.raises(CheckFailure):
        exec(row["repro"].replace("spec_dirs=", "quiet=True, spec_dirs="), {})


def test_shrink_budget_judges_only_known_failures_once_spent() -> None:
    budget = ShrinkBudget(2)
    first, other = (Example({"D": d}, {}, {}, {}, 0) for d in (3, 4))
    assert budget.allows(first) and budget.allows(other), "before any failure every example is judged"
    budget.failed(first)
    assert budget.allows(other) and budget.allows(other) and not budget.allows(other), "two judgements, then none"
    assert budget.exhausted and budget.allows(first), "a known failure is still judged (Hypothesis's final replay)"


def test_shrink_budget_is_lifted_for_examples_it_cannot_recognise() -> None:
    budget = ShrinkBudget(0)
    budget.failed(object())  # its repr names an address: a replay of it could not be told apart
    assert not budget.exhausted and budget.allows(object())


def test_an_implementation_that_raises_is_an_error_with_its_example(tmp_path: Path) -> None:
    rows: list[dict] = []
    case = _case(tmp_path, "def f(h, m):\n    raise RuntimeError('kernel exploded')\n", "oracle")
    with pytest.raises(RuntimeError, match="kernel exploded"):
        run_case(case, rows.append, FAST)
    (row,) = rows
    assert row["error"] == "RuntimeError: kernel exploded"
    assert row["falsifying_example"] and "reproduce(" in row["repro"]


def test_facts_record_the_proof() -> None:
    spec = load_specs()["surprise"]
    rows: list[dict] = []
    run_case(Case(spec, "sympy", "cpu", "exact", "fact:gradient_hidden"), rows.append)
    assert rows[0]["proof"].startswith("proved for all real values")


def test_repro_names_everything_needed() -> None:
    spec = load_specs()["surprise"]
    case = Case(spec, "x.py:f", "cpu", "float16", "invariant:symmetry")
    example = Example({"B": 1, "L": 1, "D": 2}, {}, {"hidden": 1.0, "memory_pred": 2.0}, {}, 5)
    text = repro(case, example)
    for part in ("'surprise'", "'x.py:f'", "check='invariant:symmetry'", "device='cpu'", "dtype='float16'", "'seed': 5"):
        assert part in text


def test_repro_snippet_runs_for_an_example_with_a_mask() -> None:
    """The example is written as a Python literal (True/None), so the snippet runs as printed."""
    ref = f"{REPO_ROOT}/tests/meta_tests/defects/attention_defects.py:mask_inverted"
    case = Case(load_specs()["attention"].with_implementations([ref]), ref, "cpu", "float64", "oracle")
    rows: list[dict] = []
    with pytest.raises(CheckFailure):
        run_case(case, rows.append, FAST)
    assert rows[0]["falsifying_example"]["present"] == {"mask": True}
    with pytest.raises(CheckFailure):
        exec(rows[0]["repro"], {})


def test_cuda_skip_reason_only_for_cuda_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cuda_skip_reason("cpu") is None
    assert "CUDA not available" in cuda_skip_reason("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert cuda_skip_reason("cuda") is None
