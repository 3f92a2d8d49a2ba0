"""Diagnoses that name the cause (conformance/diagnosis.py): alternative readings of the oracle, and the
region of the inputs a failure is confined to, and the declared departures of a configuration that cause it.

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
from conformance.selection import Case
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


# -- the departures that cause a failure --------------------------------------------------------------------
BASE, PRE, RES = "lib:closest", "lib:closest_with_pre_norm", "lib:closest_with_residual"


def _configurable_case(departures: tuple[str, ...] = (PRE, RES)) -> tuple[Any, Example]:
    from conformance.model import Departure

    case, example = _attention_case_and_example()
    impl = replace(case.spec.implementation(case.implementation), baseline=BASE,
                   departures=tuple(Departure(f"the {ref.split('_with_')[1]}", ref) for ref in departures))
    spec = replace(case.spec, implementations=(impl,))
    return Case(spec, impl.id, case.device, case.dtype, case.ref), example


def _judge_by_ref(outcomes: dict[str, Any], calls: list[str] | None = None) -> Any:
    """A judge whose verdict depends on the implementation judged: True passes, a string fails with that detail,
    an exception class raises."""

    def judge(case: Any, example: Example) -> Measurement | None:
        ref = case.spec.implementation(case.implementation).ref
        if calls is not None:
            calls.append(ref)
        outcome = outcomes[ref]
        if isinstance(outcome, type):
            raise outcome("refused")
        return Measurement(1.0, 1.0, None, outcome is True, "" if outcome is True else outcome)

    return judge


def test_the_departures_that_alone_fail_are_named() -> None:
    case, example = _configurable_case()
    calls: list[str] = []
    both = _judge_by_ref({BASE: True, PRE: "wrong", RES: "wrong"}, calls)
    assert diagnosis.departures_note(case, both, example) == (
        "caused by: the pre_norm and the residual (each alone fails the same example, which passes without them)"
    )
    assert calls == [BASE, PRE, RES], "one judgement of the baseline and one per departure"
    one = _judge_by_ref({BASE: True, PRE: True, RES: "wrong"})
    assert diagnosis.departures_note(case, one, example) == (
        "caused by: the residual (alone fails the same example, which passes without it)"
    )


def test_a_baseline_that_fails_as_a_reading_is_read_as_it() -> None:
    case, example = _configurable_case()
    read = "y: max |error| 1; matches the reading: step = chunk (one step; per chunk), or indistinguishable here, loss = mean"
    judge = _judge_by_ref({BASE: read, PRE: read, RES: "y: max |error| 2"})
    assert diagnosis.departures_note(case, judge, example) == (
        "caused by: the residual (alone fails the same example, which without it reads as step = chunk (one step; per chunk))"
    ), "a departure whose failure is the baseline's reading is not a cause"


@pytest.mark.parametrize(
    "outcomes",
    [
        {BASE: "y: max |error| 1", PRE: "wrong", RES: "wrong"},  # the baseline fails as no reading: no claim
        {BASE: RuntimeError, PRE: "wrong", RES: "wrong"},  # the baseline cannot be judged
        {BASE: True, PRE: True, RES: True},  # no departure alone fails: only together
        {BASE: True, PRE: RuntimeError, RES: True},  # a departure that raises is no evidence
    ],
)
def test_no_departure_is_named_without_evidence(outcomes: dict[str, Any]) -> None:
    case, example = _configurable_case()
    assert diagnosis.departures_note(case, _judge_by_ref(outcomes), example) is None


def test_an_implementation_without_departures_is_not_rejudged() -> None:
    case, example = _attention_case_and_example()
    calls: list[str] = []
    assert diagnosis.departures_note(case, _judge_by_ref({}, calls), example) is None and calls == []


def test_a_declared_departure_is_named_in_a_real_run() -> None:
    """An RMSNorm that departs twice — no ε and a (1 + g) gain — with the correct RMSNorm as its baseline: the failing
    oracle row names the departure that alone fails the shrunk example, and the table cell shows that cause."""
    from conformance import peers
    from conformance.model import Departure
    from conformance.spec import load_specs

    entry = peers.PeerEntry(
        "rmsnorm", f"{RMSNORM}:NoEpsGainOffsetFromOne", "both departures",
        baseline="implementations.rmsnorm:RMSNorm",
        departures=(Departure("no ε", f"{RMSNORM}:NoEps"), Departure("a (1 + g) gain", f"{RMSNORM}:GainOffsetFromOne")),
    )
    run = peers.run_entry(entry, load_specs(), profile="conformance-ci", dtypes=["float64"], checks=("oracle",))
    (oracle,) = [r.to_json() for r in run if r.device == "cpu"]
    assert oracle["outcome"] == "failed", oracle
    assert peers.cause([oracle]) == (
        "deviates — no ε and a (1 + g) gain (each alone fails the same example, which passes without them) (oracle)"
    ), "the departures' note is preferred to the reading the row also matches"
    assert "matches the reading: no ε and a (1 + g) gain" in oracle["detail"]
