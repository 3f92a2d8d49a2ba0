"""conformance.check_defs: checks as records; cases carry a typed reference; nothing parses check names."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.check_defs import FAMILIES, CheckDef, CheckRef
from conformance.registry import CHECKS
from conformance.selection import Case, build_cases, find_check
from tests.spec_helpers import shipped_specs

CONFORMANCE = Path(__file__).resolve().parents[1] / "conformance"


def test_every_definition_is_complete() -> None:
    for name, definition in CHECKS.items():
        assert definition.family in FAMILIES, name
        assert definition.description and definition.judge_fn() is not None
        assert definition.scope in ("implementation", "spec")
        assert (definition.subject is not None) == (definition.scope == "spec")


def test_every_case_of_the_shipped_specs_has_a_line_and_a_family() -> None:
    cases = build_cases(shipped_specs(), {})
    assert len(cases) > 700
    for case in cases:
        identity = case.identity()
        assert identity["spec_line"] > 0 and identity["family"] in FAMILIES
        assert find_check(case.spec, case.check) == case.ref  # the name is looked up, never parsed


def test_check_refs_name_their_entry() -> None:
    assert CheckRef("oracle").name == "oracle"
    assert CheckRef("invariant", "causality").name == "invariant:causality"
    assert CheckRef("fact", "unit_rms").name == "fact:unit_rms"
    assert CheckRef("pattern", "table", kind="config_table").name == "config_table:table"


def test_an_unknown_check_name_is_an_error() -> None:
    with pytest.raises(ValueError, match="has no check 'invariant:nope'"):
        Case(shipped_specs()["rmsnorm"], "implementations.rmsnorm:RMSNorm", "cpu", "float32", "invariant:nope")


def test_a_check_family_added_from_outside_is_generated_and_run(tmp_path: Path) -> None:
    """One record: a check that every equation spec's implementation returns finite outputs."""
    from hypothesis import settings

    from conformance.engine import run_case

    module = tmp_path / "my_checks.py"
    module.write_text(
        "import numpy as np\n"
        "from conformance import checks\n"
        "from conformance.tolerance import Measurement\n"
        "def finite(case, example):\n"
        "    t = checks.Trial(case.spec, case.implementation, case.device, case.dtype, example)\n"
        "    outs = t.implementation(t.rounded(t.env64))\n"
        "    ok = all(np.all(np.isfinite(o)) for o in outs)\n"
        "    return Measurement(0.0, 0.0, None, ok, '' if ok else 'non-finite output')\n"
    )
    import sys

    sys.path.insert(0, str(tmp_path))
    record = CheckDef(
        "finite_outputs", "contract", "outputs are finite", 2,
        applies=lambda spec, device, dtype: [CheckRef("finite_outputs")] if spec.oracle and dtype == "float32" else [],
        line=lambda spec, ref: spec.line, judge="my_checks:finite", draw="conformance.judges:draw",
    )
    CHECKS.register(record)
    try:
        cases = [c for c in build_cases({"rmsnorm": shipped_specs()["rmsnorm"]}, {}) if c.check == "finite_outputs"]
        assert {(c.device, c.dtype) for c in cases} == {("cpu", "float32"), ("cuda", "float32")}
        result = run_case(next(c for c in cases if c.device == "cpu"), settings(max_examples=3, database=None, deadline=None))
        assert result.outcome == "passed" and result.family == "contract" and result.examples == 3
    finally:
        CHECKS.unregister("finite_outputs")
        sys.path.remove(str(tmp_path))


def test_no_module_parses_check_names() -> None:
    """Check names are built from records; no module takes one apart again (``split(":")`` on a check)."""
    offenders = []
    for path in CONFORMANCE.rglob("*.py"):
        text = path.read_text()
        for needle in ('check.startswith("fact:")', 'check.startswith("invariant:")', 'check.split(":"'):
            if needle in text:
                offenders.append(f"{path.name}: {needle}")
    assert offenders == []


def test_a_spec_tolerance_override_reaches_every_check_that_compares_numbers() -> None:
    """Every definition flagged ``compares_numbers`` reports the spec's override (factor 7) in its tolerance.

    Pattern kinds are covered by ``tests/patterns/test_registry.py``; a new numeric definition without
    a case in ``rmsnorm`` fails here.
    """
    from dataclasses import replace

    from hypothesis import settings

    from conformance.engine import run_case
    from conformance.model import ToleranceRule

    spec = shipped_specs()["rmsnorm"]
    rule = ToleranceRule(7.0, 8.0, "an override, to show it is read")
    overridden = replace(spec, tolerances={**spec.tolerances, "float32": rule, "float64": rule})
    numeric = {name for name, d in CHECKS.items() if d.compares_numbers}
    assert {"oracle", "gradient", "invariant", "oracle_agreement"} <= numeric
    fast = settings(max_examples=3, derandomize=True, deadline=None, database=None)
    seen = set()
    cases = build_cases({"rmsnorm": overridden}, {}) + build_cases({"rmsnorm": overridden}, {}, audit=True)
    for case in cases:
        if case.device != "cpu" or case.ref.definition not in numeric or case.ref.definition in seen:
            continue
        float64_only = case.definition.scope == "spec" or case.definition.audit  # the audit's own checks run in float64
        if case.dtype != ("float64" if float64_only else "float32"):
            continue
        result = run_case(case, fast)
        assert result.outcome == "passed", (case.id, result.message)
        basis = result.tolerance_basis
        assert "override: an override" in basis, case.id
        assert basis.startswith("7×") or "same-precision reference" not in basis, case.id  # the factor, where there is a baseline
        seen.add(case.ref.definition)
    assert seen == numeric
