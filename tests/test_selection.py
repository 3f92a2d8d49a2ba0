"""conformance.selection: the cases a run generates, ``--impl`` overrides, and reviewed xfails."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from conformance.checks import checks_for
from conformance.dtype_helpers import DTYPES
from conformance.selection import DEVICES, IMPL_SYMPY, Case, build_cases, parse_impl_options, xfail_for
from conformance.spec import EquationSpec, Implementation, XFail
from tests.spec_helpers import REPO_ROOT, shipped_specs

RMSNORM = "implementations.rmsnorm:RMSNorm"
SURPRISE = "implementations.surprise:compute_surprise"


def per_implementation(spec: EquationSpec) -> int:
    """Cases for one implementation: every device × dtype × its checks at that dtype, plus its
    pattern checks on their own devices and dtypes."""
    patterns = sum(len(p.devices) * len(p.dtypes) for p in spec.patterns)
    return len(DEVICES) * sum(len(checks_for(spec, dtype)) for dtype in DTYPES) + patterns


def per_spec(spec: EquationSpec) -> int:
    """Cases run once per spec: its facts and, with both an expression and a reference, the cross-check."""
    cross = int(spec.oracle is not None and bool(spec.oracle.exprs) and bool(spec.oracle.reference))
    return len(spec.facts) + cross


# -- build_cases -----------------------------------------------------------------------------------
def test_case_counts_per_spec() -> None:
    specs = shipped_specs()
    assert DEVICES == ("cpu", "cuda") and len(DTYPES) == 4
    for spec_id, spec in specs.items():
        cases = build_cases({spec_id: spec}, {})
        expected = len(spec.implementations) * per_implementation(spec) + per_spec(spec)
        assert len(cases) == expected, spec_id
    # rmsnorm by hand: 3 base + 5 invariants + gradient = 9 checks, plus gradcheck at float64;
    # (10 + 3 × 9) × 2 devices = 74, plus the compile check (1 on CPU, 4 on CUDA), 2 facts and the
    # oracle cross-check
    assert len(build_cases({"rmsnorm": specs["rmsnorm"]}, {})) == 82


def test_all_shipped_cases() -> None:
    specs = shipped_specs()
    cases = build_cases(specs, {})
    assert len(cases) == sum(len(s.implementations) * per_implementation(s) + per_spec(s) for s in specs.values())
    assert len({c.id for c in cases}) == len(cases), "case ids are unique"


def test_per_spec_cases_come_first_once() -> None:
    spec = shipped_specs()["surprise"]
    cases = build_cases({"surprise": spec}, {})
    facts = [c for c in cases if c.check.startswith("fact:")]
    assert [c.check for c in facts] == [f"fact:{f.id}" for f in spec.facts]
    assert {(c.implementation, c.device, c.dtype) for c in facts} == {(IMPL_SYMPY, "cpu", "exact")}
    (agreement,) = [c for c in cases if c.check == "oracle_agreement"]
    assert (agreement.implementation, agreement.device, agreement.dtype) == ("reference:surprise", "cpu", "float64")
    assert cases[: len(facts) + 1] == [*facts, agreement]


def test_build_cases_order_does_not_depend_on_the_mapping_order() -> None:
    specs = shipped_specs()
    backwards = dict(reversed(list(specs.items())))
    assert [c.id for c in build_cases(backwards, {})] == [c.id for c in build_cases(specs, {})]


def test_impl_override_restricts_to_the_named_specs_and_allows_several() -> None:
    specs = shipped_specs()
    refs = [SURPRISE, "tests/meta_tests/defects/surprise_defects.py:mean_over_features"]
    cases = build_cases(specs, {"surprise": refs})
    assert {c.spec.id for c in cases} == {"surprise"}
    impl_cases = [c for c in cases if c.implementation in refs]
    assert len(impl_cases) == 2 * per_implementation(specs["surprise"])
    assert {c.implementation for c in cases} == {*refs, IMPL_SYMPY, "reference:surprise"}
    assert [i.ref for i in cases[-1].spec.implementations] == refs, "the spec's implementations are the overrides"
    assert len(cases) == 2 * per_implementation(specs["surprise"]) + len(specs["surprise"].facts) + 1


def test_impl_override_drops_the_shipped_implementations() -> None:
    specs = shipped_specs()
    cases = build_cases(specs, {"attention": ["implementations.attention:attention_manual"]})
    assert {c.implementation for c in cases} - {IMPL_SYMPY, "reference:attention"} == {
        "implementations.attention:attention_manual"
    }


def test_a_repeated_impl_option_runs_once() -> None:
    specs = shipped_specs()
    try:
        overrides = parse_impl_options([f"rmsnorm={RMSNORM}", f"rmsnorm={RMSNORM}"], specs)
    except ValueError:
        return  # refusing the repetition would do as well
    cases = build_cases(specs, overrides)
    assert len({c.id for c in cases}) == len(cases)


# -- Case ------------------------------------------------------------------------------------------
def test_case_row_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO_ROOT)
    spec = shipped_specs()["rmsnorm"]
    row = Case(spec, RMSNORM, "cuda", "bfloat16", "invariant:gain_linearity").row()
    inv = next(i for i in spec.invariants if i.id == "gain_linearity")
    assert row == {
        "spec": "rmsnorm",
        "title": "RMSNorm",
        "paper": "Root Mean Square Layer Normalization",
        "arxiv": "1910.07467",
        "url": None,
        "equation": "4",
        "spec_file": "specs/rmsnorm.yaml",
        "spec_line": inv.line,
        "implementation": RMSNORM,
        "device": "cuda",
        "dtype": "bfloat16",
        "check": "invariant:gain_linearity",
        "family": "invariant",
    }


def test_case_spec_file_is_absolute_outside_the_cwd_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    row = Case(shipped_specs()["rmsnorm"], RMSNORM, "cpu", "float64", "oracle").row()
    assert row["spec_file"] == (REPO_ROOT / "specs" / "rmsnorm.yaml").as_posix()


def test_case_line_of_a_fact_points_at_the_fact() -> None:
    spec = shipped_specs()["surprise"]
    for fact in spec.facts:
        line = Case(spec, IMPL_SYMPY, "cpu", "exact", f"fact:{fact.id}").line()
        assert Path(spec.file).read_text(encoding="utf-8").splitlines()[line - 1].strip() == f"- id: {fact.id}"


def test_case_id() -> None:
    case = Case(shipped_specs()["surprise"], SURPRISE, "cpu", "float16", "gradient")
    assert case.id == f"surprise-{SURPRISE}-cpu-float16-gradient"


# -- parse_impl_options ----------------------------------------------------------------------------
def test_parse_impl_options_groups_refs_by_spec() -> None:
    options = [f"surprise={SURPRISE}", f"rmsnorm={RMSNORM}", "surprise=implementations.surprise:SurpriseFunction"]
    assert parse_impl_options(options, shipped_specs()) == {
        "surprise": [SURPRISE, "implementations.surprise:SurpriseFunction"],
        "rmsnorm": [RMSNORM],
    }
    assert parse_impl_options([], shipped_specs()) == {}


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (f"nosuch={SURPRISE}", "--impl 'nosuch=implementations.surprise:compute_surprise': unknown spec id 'nosuch'; known: "),
        ("rmsnorm", "--impl 'rmsnorm': expected SPEC_ID=MODULE:ATTR or SPEC_ID=path/file.py:ATTR"),
        (f"={RMSNORM}", "expected SPEC_ID=MODULE:ATTR"),
        ("rmsnorm=", "expected SPEC_ID=MODULE:ATTR"),
        ("rmsnorm=no_such_module_for_selection:Norm", "--impl 'rmsnorm=no_such_module_for_selection:Norm': cannot import"),
        ("rmsnorm=implementations.rmsnorm:Nope", "has no attribute 'Nope'"),
        ("rmsnorm=missing_selection_file.py:Norm", "file 'missing_selection_file.py' not found"),
        ("rmsnorm=implementations.rmsnorm", "expected 'module:attribute' or 'file.py:attribute'"),
    ],
    ids=["unknown-spec", "no-equals", "no-spec", "no-ref", "no-module", "no-attribute", "no-file", "no-colon"],
)
def test_parse_impl_options_errors(option: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_impl_options([option], shipped_specs())
    assert message in str(info.value)
    if "unknown spec" in message:
        assert str(info.value).endswith("known: " + ", ".join(shipped_specs()))


# -- xfail_for -------------------------------------------------------------------------------------
def with_xfails(*xfails: XFail) -> EquationSpec:
    spec = shipped_specs()["surprise"]
    return dataclasses.replace(spec, implementations=(Implementation(SURPRISE, xfails), Implementation("other.py:f")))


@pytest.mark.parametrize(
    ("xfail", "case", "matches"),
    [
        (XFail("oracle", "cpu", "float16", "r"), ("oracle", "cpu", "float16"), True),
        (XFail("oracle", "cpu", "float16", "r"), ("oracle", "cuda", "float16"), False),
        (XFail("oracle", "cpu", "float16", "r"), ("oracle", "cpu", "float32"), False),
        (XFail("oracle", "cpu", "float16", "r"), ("gradient", "cpu", "float16"), False),
        (XFail("oracle", None, "float16", "r"), ("oracle", "cuda", "float16"), True),
        (XFail("oracle", "cuda", None, "r"), ("oracle", "cuda", "bfloat16"), True),
        (XFail("oracle", "cuda", None, "r"), ("oracle", "cpu", "bfloat16"), False),
        (XFail("invariant:symmetry", None, None, "r"), ("invariant:symmetry", "cpu", "float64"), True),
        (XFail("invariant:symmetry", None, None, "r"), ("invariant:nonnegative", "cpu", "float64"), False),
    ],
)
def test_xfail_for_matches_check_device_dtype(xfail: XFail, case: tuple[str, str, str], matches: bool) -> None:
    check, device, dtype = case
    spec = with_xfails(xfail)
    assert xfail_for(Case(spec, SURPRISE, device, dtype, check)) == (xfail if matches else None)


def test_xfail_for_only_applies_to_its_implementation() -> None:
    xf = XFail("oracle", None, None, "reviewed")
    spec = with_xfails(xf)
    assert xfail_for(Case(spec, SURPRISE, "cpu", "float64", "oracle")) == xf
    assert xfail_for(Case(spec, "other.py:f", "cpu", "float64", "oracle")) is None


def test_xfail_for_returns_the_first_matching_entry() -> None:
    specific, general = XFail("oracle", "cpu", "float16", "specific"), XFail("oracle", None, None, "general")
    spec = with_xfails(specific, general)
    assert xfail_for(Case(spec, SURPRISE, "cpu", "float16", "oracle")) == specific
    assert xfail_for(Case(spec, SURPRISE, "cpu", "float32", "oracle")) == general


# -- implementations with options (a spec's params fixed per implementation) -------------------------
ROPE = "implementations.rope:apply_rotary_emb"
ROPE_INTERLEAVED = "implementations.rope:apply_rotary_emb_interleaved[interleaved=true]"


def test_cases_name_an_implementation_with_its_options_and_fix_them() -> None:
    cases = [c for c in build_cases({"rope_apply": shipped_specs()["rope_apply"]}, {}) if c.check == "oracle"]
    by_impl = {c.implementation: c for c in cases}
    assert set(by_impl) == {ROPE, ROPE_INTERLEAVED}
    assert by_impl[ROPE_INTERLEAVED].id.startswith(f"rope_apply-{ROPE_INTERLEAVED}-")
    assert by_impl[ROPE_INTERLEAVED].spec.params["interleaved"].default is True, "the option is not drawn"
    assert by_impl[ROPE].spec.params["interleaved"].default is False, "the spec's default"
    assert by_impl[ROPE].spec.params["offset"].default is None, "other params are still drawn"


def test_impl_option_accepts_fixed_params_in_brackets() -> None:
    options = ["rope_apply=implementations.rope:apply_rotary_emb_interleaved[interleaved=True]", f"rope_apply={ROPE}"]
    overrides = parse_impl_options(options, shipped_specs())
    assert overrides == {"rope_apply": ["implementations.rope:apply_rotary_emb_interleaved[interleaved=True]", ROPE]}
    cases = build_cases(shipped_specs(), overrides)
    assert {c.implementation for c in cases} == set(overrides["rope_apply"]), "named exactly as given"
    fixed = next(c for c in cases if "[" in c.implementation)
    assert fixed.spec.params["interleaved"].default is True


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (f"rope_apply={ROPE}[layout=half]", "must be true, false, a number or a string in quotes"),
        (f"rope_apply={ROPE}[layout=1]", "'layout' is not a param of spec 'rope_apply'"),
        (f"rope_apply={ROPE}[interleaved=2]", "interleaved=2 is outside the domain of param 'interleaved'"),
        ("rope_apply=implementations.rope:nope[interleaved=true]", "has no attribute 'nope'"),
    ],
)
def test_impl_option_with_bad_fixed_params(option: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_impl_options([option], shipped_specs())
    assert str(info.value).startswith(f"--impl {option!r}: ") and message in str(info.value)


def test_xfail_for_matches_an_implementation_with_options() -> None:
    xf = XFail("oracle", None, None, "reviewed")
    spec = dataclasses.replace(
        shipped_specs()["rope_apply"],
        implementations=(
            Implementation(ROPE),
            Implementation(ROPE_INTERLEAVED.split("[")[0], (xf,), params={"interleaved": True}),
        ),
    )
    assert xfail_for(Case(spec, ROPE_INTERLEAVED, "cpu", "float64", "oracle")) == xf
    assert xfail_for(Case(spec, ROPE, "cpu", "float64", "oracle")) is None
