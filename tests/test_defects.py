"""The planted-defect runner (``conformance.defects``): its verdicts, settings and table helpers.

The rows here run a few examples only; the shipped tables run in ``tests/meta_tests``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import Phase

from conformance.defects import (
    Baseline,
    BlindSpot,
    PlantedDefect,
    baselines_for,
    build_case,
    finding,
    fixed_settings,
    run_blind_spot,
    run_correct,
    run_planted,
    run_row,
    score,
    shipped_specs,
)
from conformance.results import make_result

DEFECTS = Path(__file__).resolve().parent / "meta_tests" / "defects"
NO_EPS = f"{DEFECTS / 'rmsnorm_defects.py'}:NoEps"
MEAN_ABS = f"{DEFECTS / 'rmsnorm_defects.py'}:MeanAbs"
RMSNORM = "implementations.rmsnorm:RMSNorm"
EXPLODES = f"{Path(__file__).resolve()}:explodes"


def explodes(hidden: torch.Tensor, memory_pred: torch.Tensor) -> torch.Tensor:
    """A ``surprise`` implementation that raises on every input: a crash, not a check failure."""
    raise RuntimeError("planted crash")


def test_a_caught_defect() -> None:
    verdict = run_planted(PlantedDefect("rmsnorm", NO_EPS, "oracle", max_examples=5))
    assert (verdict.finding, verdict.outcome, verdict.holds) == ("caught", "failed", True), verdict.explain()
    assert verdict.result.check == "oracle" and verdict.message == verdict.result.detail  # the measured error
    assert verdict.result.falsifying_example and verdict.result.repro


def test_a_correct_implementation_listed_as_a_defect_is_missed() -> None:
    verdict = run_planted(PlantedDefect("rmsnorm", RMSNORM, "oracle", max_examples=5))
    assert (verdict.finding, verdict.outcome, verdict.holds) == ("missed", "passed", False), verdict.explain()
    assert "missed" in verdict.explain()


def test_a_crashing_defect_is_crashed_not_caught() -> None:
    verdict = run_planted(PlantedDefect("surprise", EXPLODES, "oracle", max_examples=3))
    assert (verdict.finding, verdict.outcome, verdict.holds) == ("crashed", "error", False), verdict.explain()
    assert verdict.message == "RuntimeError: planted crash"


def test_findings_follow_the_engines_outcomes() -> None:
    """The engine decides outcomes (a failure Hypothesis could not replay is ``failed`` there:
    tests/test_engine.py); a verdict only names them."""
    identity = {"spec": "attention", "implementation": "m:f", "device": "cpu", "dtype": "float64", "check": "determinism"}
    expected = {"failed": "caught", "passed": "missed", "error": "crashed", "xfailed": "crashed", "skipped": "skipped"}
    for outcome, named in expected.items():
        assert finding(make_result(identity, outcome=outcome)) == named


def test_a_catch_for_another_reason_does_not_hold() -> None:
    row = PlantedDefect("rmsnorm", NO_EPS, "oracle", max_examples=5, detail_has=("a fragment no failure says",))
    verdict = run_planted(row)
    assert verdict.finding == "caught" and not verdict.holds
    assert verdict.problems == ("the report's detail does not say 'a fragment no failure says'",)


def test_a_case_on_a_missing_device_is_skipped() -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    verdict = run_planted(PlantedDefect("rmsnorm", NO_EPS, "oracle", device="cuda", max_examples=2))
    assert verdict.finding == "skipped" and not verdict.holds and "CUDA" in verdict.message


def test_a_correct_run_holds_and_its_expectations_are_read() -> None:
    assert run_correct(Baseline("rmsnorm", RMSNORM, "oracle", "float64", max_examples=4, min_examples=4)).holds
    verdict = run_correct(Baseline("rmsnorm", RMSNORM, "oracle", "float64", max_examples=4, examples=5))
    assert verdict.finding == "missed" and verdict.problems == ("4 examples, expected 5",)


def test_a_blind_spot_holds_when_its_check_passes() -> None:
    assert run_blind_spot(
        BlindSpot("rmsnorm", MEAN_ABS, "invariant:input_rescaling", reason="scale invariant", max_examples=5)
    ).holds
    caught = run_row(BlindSpot("rmsnorm", NO_EPS, "oracle", reason="not a blind spot", max_examples=5))
    assert caught.finding == "caught" and not caught.holds


def test_score_counts_the_findings() -> None:
    rows = [
        PlantedDefect("rmsnorm", NO_EPS, "oracle", max_examples=3),
        PlantedDefect("rmsnorm", RMSNORM, "oracle", max_examples=3),
    ]
    result = score(rows)
    assert (result.count("caught"), result.count("missed"), result.score) == (1, 1, 0.5)
    assert [v.row for v in result.failing] == rows[1:]
    assert result.summary() == "2 rows: 1 caught, 1 missed, 0 crashed, 0 skipped; score 0.500"


def test_fixed_settings_are_derandomized_and_shrink_only_when_asked() -> None:
    plain = fixed_settings(7)
    assert (plain.max_examples, plain.derandomize, plain.database, plain.report_multiple_bugs) == (7, True, None, False)
    assert Phase.shrink not in plain.phases
    assert Phase.shrink in fixed_settings(7, shrink=True).phases
    every = fixed_settings(7, all_failures=True)
    assert Phase.shrink in every.phases and every.report_multiple_bugs


def test_build_case_is_the_case_a_run_generates() -> None:
    spec = shipped_specs()["rope_apply"]
    case = build_case(spec, "implementations.rope:apply_rotary_emb_interleaved[interleaved=true]", "oracle", "float64")
    assert case.implementation == "implementations.rope:apply_rotary_emb_interleaved[interleaved=true]"
    assert case.spec.params["interleaved"].default is True  # its fixed param is no longer drawn


def test_build_case_plants_an_option_and_tests_the_shipped_implementation() -> None:
    spec = shipped_specs()["kv_cache"]
    case = build_case(spec, "my.module:attention", "append_cache:causal_decoding", "float32", as_option="attention")
    (pattern,) = [p for p in case.spec.patterns if p.check == "append_cache:causal_decoding"]
    assert pattern.options["attention"] == "my.module:attention"
    assert case.implementation == spec.implementations[0].id
    with pytest.raises(ValueError, match="no pattern check 'oracle'"):
        build_case(spec, "my.module:attention", "oracle", "float32", as_option="attention")


def test_baselines_for_runs_each_cell_once_per_correct_implementation_with_the_most_examples() -> None:
    rows = [
        PlantedDefect("rmsnorm", NO_EPS, "oracle", max_examples=60),
        PlantedDefect("rmsnorm", MEAN_ABS, "oracle"),
        BlindSpot("rmsnorm", MEAN_ABS, "invariant:input_rescaling", reason=""),
    ]
    runs = baselines_for(("a:A", "b:B"), rows, max_examples=40, min_examples=3)
    assert [(b.implementation, b.check, b.max_examples, b.min_examples) for b in runs] == [
        ("a:A", "invariant:input_rescaling", 40, 3),
        ("b:B", "invariant:input_rescaling", 40, 3),
        ("a:A", "oracle", 60, 3),
        ("b:B", "oracle", 60, 3),
    ]


def test_row_ids_name_the_defect_and_its_options() -> None:
    row = PlantedDefect("rope_apply", "/x/rope_defects.py:half[interleaved=true]", "oracle", device="cuda", tag="why")
    assert row.id == "rope_apply-half-interleaved-true-oracle-float64-cuda-why"
