"""Reviewed expected failures: spec entries (strict or not), their carry-over under ``--impl``, and ``--xfail-file``."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from hypothesis import settings

from conformance import engine
from conformance.loader.xfail_file import load_xfail_file
from conformance.model import XFail
from conformance.selection import build_cases, xfail_for
from conformance.validation import SpecError
from tests.spec_helpers import load_one, minimal_spec, run_cli, run_suite, shipped_specs, write_spec

FAST = settings(max_examples=5, derandomize=True, deadline=None, database=None)
SURPRISE = "implementations.surprise:compute_surprise"
MEAN = "def f(hidden, memory_pred):\n    return ((hidden - memory_pred) ** 2).mean(-1)\n"  # a mean where Eq. 12 sums


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "known.yaml"
    path.write_text(textwrap.dedent(text))
    return path


# -- the file ---------------------------------------------------------------------------------------
def test_an_xfail_file_is_read_into_entries(tmp_path: Path) -> None:
    (entry,) = load_xfail_file(
        _file(
            tmp_path,
            """
        xfail:
          - {spec: surprise, implementation: my.py:f, check: oracle, dtype: float16, reason: a known bug, strict: false}
    """,
        )
    )
    assert (entry.spec, entry.implementation, entry.line) == ("surprise", "my.py:f", 3)
    assert entry.xfail == XFail("oracle", None, "float16", "a known bug", strict=False)


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ("xfail: [{spec: s, implementation: i, check: oracle}]", "xfail[0]", "missing required key(s): reason"),
        ("xfail: [{spec: s, implementation: i, check: oracle, reason: r, why: x}]", "xfail[0].why", "unknown key"),
        ("xfail: [{spec: s, implementation: i, check: oracle, reason: r, dtype: float8}]", "xfail[0].dtype", "expected one of"),
        (
            "xfail: [{spec: s, implementation: i, check: oracle, reason: r, device: tpu}]",
            "xfail[0].device",
            "expected cpu or cuda",
        ),
        ("xfail: [{spec: s, implementation: i, check: oracle, reason: r, strict: maybe}]", "xfail[0].strict", "true or false"),
        ("xfail: {spec: s}", "xfail", "expected a list"),
        ("known: []", "known", "unknown key"),
        ("xfail: [&a {spec: s}, *a]", "xfail[0]", "anchors are refused"),
    ],
)
def test_a_bad_xfail_file_is_one_keyed_error(tmp_path: Path, text: str, key: str, words: str) -> None:
    path = _file(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_xfail_file(path)
    assert info.value.file == str(path) and info.value.path == key and words in info.value.detail, str(info.value)


def test_an_entry_for_an_unknown_spec_or_check_is_refused(tmp_path: Path) -> None:
    specs = {"surprise": shipped_specs()["surprise"]}
    for text, words in (
        ("xfail: [{spec: nope, implementation: i, check: oracle, reason: r}]", "unknown spec 'nope'"),
        ("xfail: [{spec: surprise, implementation: i, check: oracel, reason: r}]", "has no check 'oracel'"),
    ):
        with pytest.raises(SpecError, match=words):
            build_cases(specs, {}, xfails=load_xfail_file(_file(tmp_path, text)))


# -- applying entries -----------------------------------------------------------------------------------
def test_file_entries_apply_to_the_implementation_they_name(tmp_path: Path) -> None:
    (tmp_path / "mean.py").write_text(MEAN)
    ref = f"{tmp_path / 'mean.py'}:f"
    entries = load_xfail_file(
        _file(
            tmp_path,
            f"""
        xfail:
          - {{spec: surprise, implementation: "{ref}", check: oracle, dtype: float64, reason: sums as a mean}}
    """,
        )
    )
    cases = build_cases({"surprise": shipped_specs()["surprise"]}, {"surprise": [ref]}, xfails=entries)
    (case,) = [c for c in cases if c.check == "oracle" and c.device == "cpu" and c.dtype == "float64"]
    result = engine.run_case(case, FAST)
    assert result.outcome == "xfailed" and result.message.startswith("expected failure: sums as a mean")
    other = next(c for c in cases if c.check == "oracle" and c.device == "cpu" and c.dtype == "float32")
    assert xfail_for(other) is None


def test_spec_xfails_carry_over_under_impl(tmp_path: Path) -> None:
    data = minimal_spec()
    data["specs"][0]["implementations"] = [{"ref": SURPRISE, "xfail": [{"check": "oracle", "dtype": "float16", "reason": "r"}]}]
    spec = load_one(write_spec(tmp_path, data))
    named = build_cases({"toy": spec}, {"toy": [SURPRISE]}, resolve=False)
    assert any(xfail_for(c) is not None for c in named)
    other = build_cases({"toy": spec}, {"toy": ["other_pkg.mod:f"]}, resolve=False)
    assert all(xfail_for(c) is None for c in other)


# -- strict and not strict ----------------------------------------------------------------------------
def _case_with(tmp_path: Path, source: str | None, strict: bool):
    data = minimal_spec()
    ref = SURPRISE
    if source is not None:
        (tmp_path / "impl.py").write_text(source)
        ref = "impl.py:f"
    entry = {"check": "oracle", "dtype": "float64", "reason": "found by some seeds only", "strict": strict}
    data["specs"][0]["implementations"] = [{"ref": ref, "xfail": [entry]}]
    spec = load_one(write_spec(tmp_path, data))
    (case,) = [c for c in build_cases({"toy": spec}, {}) if c.check == "oracle" and c.device == "cpu" and c.dtype == "float64"]
    return case


def test_a_strict_entry_that_passes_is_stale(tmp_path: Path) -> None:
    result = engine.run_case(_case_with(tmp_path, None, strict=True), FAST)
    assert result.outcome == "failed" and result.message.startswith(engine.STALE_XFAIL)


def test_a_non_strict_entry_that_passes_is_a_pass_that_says_so(tmp_path: Path) -> None:
    result = engine.run_case(_case_with(tmp_path, None, strict=False), FAST)
    assert result.outcome == "passed" and "did not occur: found by some seeds only" in result.message


def test_a_non_strict_entry_that_fails_is_xfailed(tmp_path: Path) -> None:
    result = engine.run_case(_case_with(tmp_path, MEAN, strict=False), FAST)
    assert result.outcome == "xfailed"


# -- the drivers ---------------------------------------------------------------------------------------
def test_both_drivers_take_an_xfail_file(tmp_path: Path) -> None:
    (tmp_path / "mean.py").write_text(MEAN)
    _file(
        tmp_path,
        """
        xfail:
          - {spec: surprise, implementation: "mean.py:f", check: oracle, dtype: float64, reason: sums as a mean}
    """,
    )
    common = ["--impl", "surprise=mean.py:f", "--xfail-file", "known.yaml", "--hypothesis-profile", "conformance-ci"]
    cli = run_cli(tmp_path, "run", *common, "--report-dir", "cli", "-k", "cpu-float64-oracle", "-q", timeout=300)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    plugin = run_suite(tmp_path, *common, "--report-dir", "plugin", "-k", "cpu and float64 and oracle", "-q", timeout=300)
    assert plugin.returncode == 0, plugin.stdout[-3000:]
    for folder in ("cli", "plugin"):
        rows = json.loads((tmp_path / folder / "conformance.json").read_text())["results"]
        (row,) = [r for r in rows if r["check"] == "oracle"]
        assert row["outcome"] == "xfailed" and "sums as a mean" in row["message"], folder


def test_a_bad_xfail_file_is_a_usage_error_of_the_plugin(tmp_path: Path) -> None:
    _file(tmp_path, "xfail: [{spec: nope, implementation: i, check: oracle, reason: r}]")
    result = run_suite(tmp_path, "--xfail-file", "known.yaml", "-q", timeout=300)
    assert result.returncode == 4 and "unknown spec 'nope'" in result.stdout + result.stderr
