"""The pytest plugin end to end: ``--impl``, ``--spec-dir``, ``--report-dir``, xfails, xdist.

Each test runs the real suite in a subprocess (``pytester``) against small selections, then reads
the report it wrote.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
import torch

SUITE = str(Path(__file__).resolve().parents[1] / "conformance" / "test_conformance.py")

CORRECT_NORM = """
import torch

class MyNorm(torch.nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.ones(dim))

    def forward(self, x):
        h = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        y = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight.to(h.dtype)
        return y.to(x.dtype)
"""

# ε outside the square root: the authors' own code's choice, not this spec's.
WRONG_NORM = CORRECT_NORM.replace(
    "torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)", "1 / (h.pow(2).mean(-1, keepdim=True).sqrt() + self.eps)"
)


def run_suite(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict]:
    result = pytester.runpytest_subprocess(
        SUITE, "-p", "no:cacheprovider", "--report-dir", "rep", "--hypothesis-profile", "conformance-ci", *args
    )
    report_path = pytester.path / "rep" / "conformance.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return result, report


def test_impl_runs_only_the_named_outside_module(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(my_norm=CORRECT_NORM)
    result, report = run_suite(pytester, "--impl", "rmsnorm=my_norm.py:MyNorm", "-k", "cpu and float32")
    assert result.ret == 0, result.stdout.str()[-3000:]
    rows = report["results"]
    assert rows and {r["implementation"] for r in rows} == {"my_norm.py:MyNorm"}
    assert {r["spec"] for r in rows} == {"rmsnorm"}
    assert {r["outcome"] for r in rows} == {"passed"}
    oracle = next(r for r in rows if r["check"] == "oracle")
    assert oracle["max_abs_err"] <= oracle["tolerance"] and oracle["examples"] >= 1
    assert oracle["spec_file"].endswith("specs/rmsnorm.yaml") and oracle["spec_line"] > 0


def test_wrong_implementation_fails_with_readable_reason(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(bad_norm=WRONG_NORM)
    result, report = run_suite(pytester, "--impl", "rmsnorm=bad_norm.py:MyNorm", "-k", "cpu and float64 and oracle")
    assert result.ret == 1
    (row,) = [r for r in report["results"] if r["check"] == "oracle"]
    assert row["outcome"] == "failed"
    assert "max |error|" in row["message"] and "tolerance" in row["message"]
    assert row["max_abs_err"] > row["tolerance"]
    assert set(row["falsifying_example"]) == {"sizes", "params", "magnitudes", "present", "seed"}
    assert "reproduce('rmsnorm', 'bad_norm.py:MyNorm', check='oracle'" in row["repro"]
    result.stdout.fnmatch_lines(["*Reproduce with:*"])
    markdown = (pytester.path / "rep" / "conformance.md").read_text()
    assert "## Failures" in markdown and "bad_norm.py:MyNorm" in markdown and "```python" in markdown


def test_repro_snippet_reproduces_the_failure(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(bad_norm=WRONG_NORM)
    _, report = run_suite(pytester, "--impl", "rmsnorm=bad_norm.py:MyNorm", "-k", "cpu and float64 and oracle")
    (row,) = [r for r in report["results"] if r["check"] == "oracle"]
    script = pytester.makepyfile(repro_script=row["repro"])
    result = pytester.run(sys.executable, str(script))
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*rmsnorm bad_norm.py:MyNorm cpu float64 oracle*FAILED*"])


def test_several_implementations_for_one_spec(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(my_norm=CORRECT_NORM, bad_norm=WRONG_NORM)
    result, report = run_suite(
        pytester,
        "--impl",
        "rmsnorm=my_norm.py:MyNorm",
        "--impl",
        "rmsnorm=bad_norm.py:MyNorm",
        "-k",
        "cpu and float64 and oracle",
    )
    outcomes = {r["implementation"]: r["outcome"] for r in report["results"] if r["check"] == "oracle"}
    assert outcomes == {"my_norm.py:MyNorm": "passed", "bad_norm.py:MyNorm": "failed"}
    assert result.ret == 1


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("nosuch=my_norm.py:MyNorm", "unknown spec id 'nosuch'"),
        ("rmsnorm=missing_module:Thing", "cannot import 'missing_module'"),
        ("rmsnorm=my_norm.py:Nothing", "has no attribute 'Nothing'"),
        ("rmsnorm", "expected SPEC_ID=MODULE:ATTR"),
    ],
)
def test_bad_impl_option_is_a_usage_error(pytester: pytest.Pytester, option: str, message: str) -> None:
    pytester.makepyfile(my_norm=CORRECT_NORM)
    result, report = run_suite(pytester, "--impl", option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str() + result.stdout.str()
    assert report == {}


SCALED_SUM_SPEC = """
schema: 1
paper: {title: A Test Paper, authors: [A. Author], arxiv: "2101.00001", year: 2021}
specs:
  - id: scaled_sum
    title: Scaled sum
    equation: "3"
    statement: 'y = \\sum_i a_i / n'
    symbols: {N: {min: 1, max: 8}}
    inputs: {a: {shape: [N], magnitude: [0.5, 2.0]}}
    outputs: {y: {shape: []}}
    interface: {kind: function, args: [a]}
    oracle: {expr: "mean(a, -1)"}
    implementations:
      - ref: impls.py:good
      - ref: impls.py:wrong
        xfail:
          - {check: oracle, dtype: float64, reason: "divides by n + 1 (kept to show xfail)"}
          - {check: oracle, dtype: float32, reason: "stale on purpose: this entry names a passing check"}
"""

SCALED_SUM_IMPLS = """
def good(a):
    return a.mean(-1)

def wrong(a):
    return a.sum(-1) / (a.shape[-1] + 1) if a.dtype.is_floating_point and a.dtype.itemsize == 8 else a.mean(-1)
"""


def test_spec_dir_xfail_and_stale_xfail(pytester: pytest.Pytester) -> None:
    specs = pytester.mkdir("myspecs")
    (specs / "scaled_sum.yaml").write_text(textwrap.dedent(SCALED_SUM_SPEC))
    (specs / "impls.py").write_text(textwrap.dedent(SCALED_SUM_IMPLS))
    result, report = run_suite(pytester, "--spec-dir", str(specs), "-k", "scaled_sum and cpu and (float64 or float32) and oracle")
    rows = {(r["implementation"], r["dtype"]): r for r in report["results"] if r["check"] == "oracle"}
    assert rows[("impls.py:good", "float64")]["outcome"] == "passed"
    assert rows[("impls.py:wrong", "float64")]["outcome"] == "xfailed"
    assert "divides by n + 1" in rows[("impls.py:wrong", "float64")]["message"]
    stale = rows[("impls.py:wrong", "float32")]
    assert stale["outcome"] == "failed" and "stale xfail" in stale["message"]
    assert result.ret == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only report")
def test_cuda_rows_are_skipped_with_reason(pytester: pytest.Pytester) -> None:
    result, report = run_suite(
        pytester, "--impl", "surprise=implementations.surprise:compute_surprise", "-k", "float32 and oracle"
    )
    assert result.ret == 0
    cuda = [r for r in report["results"] if r["device"] == "cuda"]
    assert cuda and all(r["outcome"] == "skipped" and "CUDA not available" in r["message"] for r in cuda)
    devices = {d["name"]: d for d in report["environment"]["devices"]}
    assert devices["cuda"]["available"] is False and "CUDA not available" in devices["cuda"]["skip_reason"]


def _comparable(report: dict) -> list[tuple]:
    keys = ("spec", "implementation", "device", "dtype", "check", "outcome", "examples", "max_abs_err", "tolerance")
    return [tuple(r.get(k) for k in keys) for r in report["results"]]


def test_xdist_gives_the_same_rows_as_a_serial_run(pytester: pytest.Pytester) -> None:
    selection = ("--impl", "surprise=implementations.surprise:compute_surprise", "-k", "(cpu or sympy) and not float16")
    serial, serial_report = run_suite(pytester, *selection)
    parallel, parallel_report = run_suite(pytester, *selection, "-n", "2")
    assert serial.ret == parallel.ret == 0
    assert len(serial_report["results"]) > 10
    assert _comparable(serial_report) == _comparable(parallel_report)


def test_report_schema_fields(pytester: pytest.Pytester) -> None:
    _, report = run_suite(
        pytester, "--impl", "surprise=implementations.surprise:compute_surprise", "-k", "(cpu and float64) or sympy"
    )
    assert report["schema"] == "conformance-report" and report["schema_version"] == "1.2"
    assert report["hypothesis"]["profile"] == "conformance-ci" and report["hypothesis"]["derandomize"] is True
    assert {"python", "torch", "devices"} <= set(report["environment"])
    required = {
        "spec",
        "paper",
        "equation",
        "implementation",
        "device",
        "dtype",
        "check",
        "outcome",
        "max_abs_err",
        "max_rel_err",
        "tolerance",
        "examples",
        "spec_file",
        "spec_line",
    }
    for row in report["results"]:
        assert required <= set(row), required - set(row)
    facts = [r for r in report["results"] if r["check"].startswith("fact:")]
    assert facts and all(r["outcome"] == "passed" and "proved" in r["proof"] for r in facts)
    assert report["summary"]["rows"] == len(report["results"])


UNRELATED_TEST = """
import sys

def test_unrelated():
    heavy = sorted(m for m in ("torch", "sympy", "numpy", "hypothesis", "conformance.selection", "conformance.spec")
                   if m in sys.modules)
    assert heavy == [], heavy
"""


def test_an_unrelated_session_imports_nothing_of_the_harness(pytester: pytest.Pytester) -> None:
    """The plugin is loaded (entry point) but imports only pytest until conformance cases are collected."""
    pytester.makepyfile(test_other=UNRELATED_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:benchmark")
    result.assert_outcomes(passed=1)
    assert "conformance" in pytester.runpytest_subprocess("--trace-config", "--co", "-q").stdout.str()


def test_an_unrelated_test_asking_for_device_gets_fixture_not_found(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_other="def test_needs_device(device):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'device' not found*"])


def test_the_testing_fixtures_are_opt_in(pytester: pytest.Pytester) -> None:
    pytester.makeconftest('pytest_plugins = ["conformance.fixtures"]\n')
    pytester.makepyfile(test_other="def test_needs_device(device, sample_batch):\n    assert device.type in ('cpu', 'cuda')\n")
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_hypothesis_profiles_are_not_registered_in_an_unrelated_session(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_other="""
from hypothesis import settings

def test_profiles():
    for name in ("dev", "ci", "thorough", "conformance-dev", "conformance-ci"):
        try:
            settings.get_profile(name)
        except Exception:
            continue
        assert name == "ci", f"profile {name!r} is registered"  # Hypothesis registers its own 'ci'
"""
    )
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
