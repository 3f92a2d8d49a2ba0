"""Diagnoses that name the cause (conformance/diagnosis.py): alternative readings of the oracle, and the
region of the inputs a failure is confined to.

Readings are spec ``diagnose`` entries with ``let``/``expr``: loaded and shape-checked like the oracle
(one keyed error per bad entry), and named in a failing oracle row only where the implementation matches
one. The region note re-judges the failing example with one optional input or one listed param changed
at a time, and speaks only where the failure goes away.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from conformance import diagnosis
from conformance.defects.records import Baseline, PlantedDefect
from conformance.defects.run import build_case, run_correct, run_planted, shipped_specs
from conformance.strategies import Example
from conformance.tolerance import Measurement
from tests.spec_helpers import load_error, load_one, minimal_spec, with_key, write_spec

SPEC = ("specs", 0)
RMSNORM = "tests/meta_tests/defects/rmsnorm_defects.py"
ATTENTION = "tests/meta_tests/defects/attention_defects.py"
READING = "matches the reading"
REGION = "fails only when"


# -- loading readings ---------------------------------------------------------------------------------
def with_let() -> dict[str, Any]:
    """The minimal spec with its oracle written through a ``let`` binding."""
    data = minimal_spec()
    data["specs"][0]["oracle"] = {"let": {"diff": "hidden - memory_pred"}, "expr": "sum(diff**2, -1)"}
    return data


def test_a_reading_loads_as_let_overrides_and_expressions(tmp_path: Path) -> None:
    entry = {"let": {"diff": "hidden + memory_pred"}, "expr": "sum(abs(diff), -1)", "say": "matches the L1 reading"}
    spec = load_one(write_spec(tmp_path, with_key(with_let(), (*SPEC, "diagnose"), [entry])))
    (d,) = spec.diagnoses
    assert d.alternative == {} and set(d.let) == {"diff"} and set(d.exprs) == {"loss"} and d.say == "matches the L1 reading"
    read = diagnosis.reading(spec, d)
    assert dict(read.oracle.let)["diff"] == d.let["diff"] and read.oracle.exprs["loss"] == d.exprs["loss"]
    assert read.oracle.expr == d.exprs["loss"] and spec.oracle.expr != read.oracle.expr  # the spec itself is unchanged


def test_the_shipped_rmsnorm_readings_load() -> None:
    says = [d.say for d in shipped_specs()["rmsnorm"].diagnoses]
    assert [s.split(",")[0] for s in says] == [
        "matches the reading: ε outside the square root",
        "matches the reading: no ε",
        "matches the reading: a (1 + g) gain",
        "matches the reading: no ε and a (1 + g) gain",
    ]


@pytest.mark.parametrize(
    ("entry", "error_path", "words"),
    [
        ({"say": "s"}, "specs[0].diagnose[0]", ("'try' (params), 'let' (bindings) and/or 'expr'",)),
        ({"let": {"other": "hidden"}, "say": "s"}, "specs[0].diagnose[0].let.other", ("not a binding of oracle.let (diff)",)),
        ({"expr": "sum(hidden * nothing, -1)", "say": "s"}, "specs[0].diagnose[0].expr", ("undeclared name(s) nothing",)),
        ({"expr": "hidden - memory_pred", "say": "s"}, "specs[0].diagnose[0].expr", ("has shape", "output 'loss' is declared")),
        ({"let": {"diff": "sum(hidden, -1)"}, "say": "s"}, "specs[0].diagnose[0].let", ("has shape", "output 'loss'")),
        ({"expr": {"los": "sum(hidden, -1)"}, "say": "s"}, "specs[0].diagnose[0].expr.los", ("not a declared output (loss)",)),
        ({"expr": "exec('x')", "say": "s"}, "specs[0].diagnose[0].expr", ()),
    ],
)
def test_reading_errors(tmp_path: Path, entry: dict, error_path: str, words: tuple) -> None:
    file = write_spec(tmp_path, with_key(with_let(), (*SPEC, "diagnose"), [entry]))
    error = load_error(file)
    assert error.file == str(file) and error.path == error_path, str(error)
    for word in words:
        assert word in str(error), str(error)


def test_a_reading_needs_the_oracles_expressions(tmp_path: Path) -> None:
    data = with_key(minimal_spec(), (*SPEC, "oracle"), {"reference": "implementations.surprise:compute_surprise"})
    file = write_spec(tmp_path, with_key(data, (*SPEC, "diagnose"), [{"expr": "sum(hidden, -1)", "say": "s"}]))
    error = load_error(file)
    assert error.path == "specs[0].diagnose[0].expr" and "needs the oracle's own 'expr'" in str(error)


# -- readings named on failure --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("defect", "dtype", "named"),
    [
        ("EpsOutsideSqrt", "float64", "ε outside the square root"),
        ("NoEps", "float64", "no ε"),
        ("NoEps", "float16", "no ε"),  # float16 may not tell it from ε outside: then both are named, in the spec's order
        ("GainOffsetFromOne", "float32", "a (1 + g) gain"),
        ("NoEpsGainOffsetFromOne", "float64", "no ε and a (1 + g) gain"),
    ],
)
def test_a_convention_is_named_by_its_reading(defect: str, dtype: str, named: str) -> None:
    verdict = run_planted(PlantedDefect("rmsnorm", f"{RMSNORM}:{defect}", "oracle", dtype))
    detail = verdict.result.detail or ""
    assert verdict.finding == "caught" and detail.count(READING) == 1, detail
    said = detail.split(f"{READING}: ")[1]
    names = [said, *said.split(", or indistinguishable here, ")[1:]]
    assert any(n.startswith(named) for n in names), detail


def test_a_reading_computed_in_float32_is_named_with_the_precision() -> None:
    verdict = run_planted(PlantedDefect("rmsnorm", f"{RMSNORM}:GainOffsetInFloat32", "oracle", "float64"))
    detail = verdict.result.detail or ""
    assert verdict.finding == "caught" and detail.count(READING) == 1, detail
    assert f"{READING}: a (1 + g) gain" in detail and detail.endswith("within float32's precision on these inputs: "
                                                                       "computed in float32?"), detail


@pytest.mark.parametrize("defect", ["MeanAbs", "WeightIgnored", "LayerNormInstead"])
def test_a_defect_matching_no_reading_gets_none(defect: str) -> None:
    verdict = run_planted(PlantedDefect("rmsnorm", f"{RMSNORM}:{defect}", "oracle"))
    assert verdict.finding == "caught" and READING not in (verdict.result.detail or "")


def test_a_correct_implementation_passes_without_a_diagnosis() -> None:
    verdict = run_correct(Baseline("rmsnorm", "implementations.rmsnorm:RMSNorm", "oracle", "float64"))
    assert verdict.finding == "missed" and READING not in (verdict.result.detail or "")


# -- the region of a failure ------------------------------------------------------------------------------
def test_a_failure_confined_to_mask_and_causal_names_that_region() -> None:
    verdict = run_planted(PlantedDefect("attention", f"{ATTENTION}:causal_ignores_mask", "oracle"))
    detail, message = verdict.result.detail or "", verdict.result.message or ""
    assert verdict.finding == "caught", verdict.explain()
    assert "fails only when mask is given and is_causal = true" in detail, detail
    assert REGION in message


def test_a_failure_everywhere_names_no_region() -> None:
    verdict = run_planted(PlantedDefect("attention", f"{ATTENTION}:no_scaling", "oracle"))
    assert verdict.finding == "caught" and REGION not in (verdict.result.detail or "")


def test_a_correct_implementation_passes_without_a_region() -> None:
    verdict = run_correct(Baseline("attention", "implementations.attention:attention_manual", "oracle", "float64"))
    assert verdict.finding == "missed" and REGION not in (verdict.result.detail or "")


def _attention_case_and_example(present: bool = True, causal: bool = True) -> tuple[Any, Example]:
    case = build_case(shipped_specs()["attention"], "implementations.attention:attention_manual", "oracle", "float64")
    sizes = {"B": 1, "H": 1, "Lq": 3, "Lk": 4, "Dk": 2, "Dv": 2}
    example = Example(sizes, {"is_causal": causal, "dropout_p": 0.0}, {"Q": 1.0, "K": 1.0, "V": 1.0}, {"mask": present}, 7)
    return case, example


def _judge_failing_when(condition: Any, calls: list[Example] | None = None) -> Any:
    def judge(case: Any, example: Example) -> Measurement | None:
        if calls is not None:
            calls.append(example)
        return Measurement(1.0, 1.0, None, not condition(example), "wrong")

    return judge


def test_the_region_is_what_every_single_change_removes() -> None:
    case, example = _attention_case_and_example(present=False, causal=True)
    only_causal = _judge_failing_when(lambda e: e.params["is_causal"])
    said = diagnosis.region_note(case, only_causal, example)
    assert said == "fails only when is_causal = true (changing it, the same example passes)"
    no_mask = _judge_failing_when(lambda e: not e.present["mask"])
    assert diagnosis.region_note(case, no_mask, example).startswith("fails only when mask is absent (")
    everywhere = _judge_failing_when(lambda e: True)
    assert diagnosis.region_note(case, everywhere, example) is None


def test_the_region_is_bounded_and_confirmed() -> None:
    case, example = _attention_case_and_example()
    calls: list[Example] = []
    diagnosis.region_note(case, _judge_failing_when(lambda e: True, calls), example)
    assert calls[0] == example and 1 < len(calls) <= diagnosis.MAX_REJUDGEMENTS
    flaky = _judge_failing_when(lambda e: e is not example)  # the example itself no longer fails: no claim
    assert diagnosis.region_note(case, flaky, example) is None


def test_a_variant_that_cannot_be_judged_is_no_evidence() -> None:
    case, example = _attention_case_and_example()

    def raises_elsewhere(case: Any, e: Example) -> Measurement | None:
        if e != example:
            raise RuntimeError("unsupported")
        return Measurement(1.0, 1.0, None, False, "wrong")

    def rejects_elsewhere(case: Any, e: Example) -> Measurement | None:
        return Measurement(1.0, 1.0, None, False, "wrong") if e == example else None

    assert diagnosis.region_note(case, raises_elsewhere, example) is None
    assert diagnosis.region_note(case, rejects_elsewhere, example) is None


def test_variants_change_one_thing_and_skip_fixed_options() -> None:
    case, example = _attention_case_and_example()
    dimensions = dict(diagnosis.variants(case, example))
    assert set(dimensions) == {"mask", "is_causal"}  # dropout_p has one value
    assert dimensions["mask"] == [replace(example, present={"mask": False})]
    assert dimensions["is_causal"] == [replace(example, params={**example.params, "is_causal": False})]
    rope = build_case(shipped_specs()["rope_apply"], "implementations.rope:apply_rotary_emb", "oracle", "float64")
    drawn = Example({}, {"interleaved": False, "shift": 0}, {}, {}, 0)
    assert diagnosis.variants(rope, drawn) == []  # an implementation's option is not the inputs' region
