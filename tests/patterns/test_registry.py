"""conformance.patterns: kinds as records of registry.PATTERN_KINDS, torch-free validation, a user's own kind,
and the spec's tolerance override reaching every kind that compares numbers."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import settings

from conformance.model import ToleranceRule
from conformance.patterns import KIND_MODULES, Lazy, PatternContext, kinds
from conformance.registry import PATTERN_KINDS
from conformance.spec import load_specs
from conformance.validation import SpecError
from tests.spec_helpers import pattern_spec, write_spec


def test_builtin_kinds_are_the_listed_modules_records() -> None:
    import conformance.patterns as patterns

    names = {kind.name for kind in patterns.BUILTIN}
    assert len(patterns.BUILTIN) == len(KIND_MODULES) and names <= set(PATTERN_KINDS.names())
    assert dict(kinds()) == dict(PATTERN_KINDS.items())
    assert all(isinstance(k.run, Lazy) for k in patterns.BUILTIN), "run is a lazy ref: kind modules import no torch"


def test_importing_and_validating_every_kind_imports_no_torch() -> None:
    code = textwrap.dedent(
        """
        import sys
        from conformance.spec import load_specs
        load_specs()  # every shipped spec, every pattern entry validated by its kind
        from conformance.registry import PATTERN_KINDS
        assert PATTERN_KINDS.names()
        heavy = sorted(m for m in ("torch", "hypothesis") if m in sys.modules)
        print(heavy)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[2])
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


USER_KIND = '''
from conformance.patterns import PatternKind
from conformance.tolerance import Measurement


def validate(options, where, context):
    if not isinstance(options.get("answer"), int):
        raise where.at("answer").error(f"expected an integer, got {options.get('answer')!r}")
    return {"answer": options["answer"]}


def run(ctx):
    value = ctx.target()()
    ok = value == ctx.options["answer"]
    return Measurement(0.0 if ok else 1.0, 0.0, None, ok, "" if ok else f"got {value}")


KIND = PatternKind("answers", frozenset({"answer"}), frozenset(), validate, run, dtypes=("float64",), devices=("cpu",))
'''


def test_a_user_registers_a_kind_from_outside_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "user_kinds.py").write_text(USER_KIND, encoding="utf-8")
    (tmp_path / "impl.py").write_text("def answer():\n    return 42\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    import user_kinds

    PATTERN_KINDS.register(user_kinds.KIND)
    try:
        file = write_spec(tmp_path, pattern_spec("answers", {"answer": 42}, "impl.py:answer"), name="s.yaml")
        spec = load_specs([file], default=False)["s"]
        (pattern,) = spec.patterns
        assert (pattern.check, pattern.devices, pattern.dtypes) == ("answers:p", ("cpu",), ("float64",))  # the record's defaults
        m = PATTERN_KINDS["answers"].run(PatternContext(spec, "impl.py:answer", "cpu", "float64", pattern.options, settings()))
        assert m.passed
        bad = write_spec(tmp_path, pattern_spec("answers", {"answer": "many"}, "impl.py:answer", "t"), name="t.yaml")
        with pytest.raises(SpecError, match=r"specs\[0\]\.patterns\[0\]\.answer: expected an integer"):
            load_specs([bad], default=False)
    finally:
        PATTERN_KINDS.unregister("answers")


# --- the spec's tolerance override ---------------------------------------------------------------

OVERRIDE = ToleranceRule(factor=7.0, floor_ulps=8.0, reason="test override")
# a numeric kind's shipped pattern whose run compares numbers under the rule (kind -> how to pick it)
_PICK = {
    "checkpoint_equivalence": lambda options: options["property"] == "compiled",
    "append_cache": lambda options: "decoding" in options["checks"],
}


def _numeric_patterns() -> list[tuple[str, object, object]]:
    """For every kind flagged ``compares_numbers``: a shipped spec and one of its patterns of that kind."""
    specs = load_specs()
    out = []
    for name, kind in PATTERN_KINDS.items():
        if not kind.compares_numbers:
            continue
        pick = _PICK.get(name, lambda options: True)
        found = [(s, p) for s in specs.values() for p in s.patterns if p.kind == name and pick(p.options)]
        assert found, f"numeric pattern kind {name!r} has no shipped pattern to test the tolerance override with"
        out.append((name, *found[0]))
    return out


@pytest.mark.parametrize(("name", "spec", "pattern"), _numeric_patterns(), ids=lambda v: v if isinstance(v, str) else "")
def test_the_spec_tolerance_override_reaches_every_numeric_kind(name: str, spec, pattern) -> None:  # noqa: ANN001
    """The spec's ``tolerances: {float32: {factor, reason}}`` is the rule the kind's comparison uses."""
    spec = dataclasses.replace(spec, tolerances={**spec.tolerances, "float32": OVERRIDE})
    ref = spec.implementations[0].ref
    ctx = PatternContext(spec, ref, "cpu", "float32", pattern.options, settings(max_examples=2, derandomize=True))
    assert ctx.rule is OVERRIDE
    m = PATTERN_KINDS[name].run(ctx)
    assert m.tolerance is not None, f"{name}: the measurement names no tolerance ({m.detail})"
    assert (m.tolerance.factor, m.tolerance.reason) == (OVERRIDE.factor, OVERRIDE.reason), f"{name}: {m.tolerance}"
