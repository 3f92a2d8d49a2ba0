"""conformance.engine: cases in, results out, without pytest; the outcome rules; the same rows as the plugin."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from hypothesis import settings

from conformance import engine
from conformance.selection import Case
from tests.spec_helpers import run_cli, run_suite, shipped_specs

FAST = settings(max_examples=5, derandomize=True, deadline=None, database=None)
SURPRISE = "implementations.surprise:compute_surprise"


def _case(tmp_path: Path, source: str | None, check: str = "oracle", device: str = "cpu", dtype: str = "float64") -> Case:
    spec = shipped_specs()["surprise"]
    ref = SURPRISE
    if source is not None:
        (tmp_path / "impl.py").write_text(source)
        ref = f"{tmp_path / 'impl.py'}:f"
    return Case(spec.with_implementations([ref]), ref, device, dtype, check)


def test_a_passing_case(tmp_path: Path) -> None:
    result = engine.run_case(_case(tmp_path, None), FAST)
    assert result.outcome == "passed" and result.message is None
    assert result.examples == 5 and 0 <= result.max_abs_err <= result.tolerance
    assert result.family == "equation" and result.spec_line > 0


def test_a_failing_case_keeps_its_example_and_repro(tmp_path: Path) -> None:
    result = engine.run_case(_case(tmp_path, "def f(h, m):\n    return ((h - m) ** 2).mean(-1)\n"), FAST)
    assert result.outcome == "failed" and "max |error|" in result.message
    assert result.falsifying_example["sizes"]["D"] >= 2 and "reproduce(" in result.repro


def test_a_raising_implementation_is_an_error(tmp_path: Path) -> None:
    result = engine.run_case(_case(tmp_path, "def f(h, m):\n    raise RuntimeError('kernel exploded')\n"), FAST)
    assert result.outcome == "error" and result.message == "RuntimeError: kernel exploded"
    assert "kernel exploded" in result.traceback and result.falsifying_example


def test_cuda_without_a_gpu_is_skipped_with_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = engine.run_case(_case(tmp_path, None, device="cuda"), FAST)
    assert result.outcome == "skipped" and "CUDA not available" in result.message and result.examples == 0


def _with_xfail(case: Case, check: str, reason: str) -> Case:
    from dataclasses import replace

    from conformance.model import XFail

    impl = replace(case.spec.implementations[0], xfail=(XFail(check, None, None, reason),))
    return Case(replace(case.spec, implementations=(impl,)), case.implementation, case.device, case.dtype, case.ref)


def test_a_reviewed_expected_failure_is_xfailed(tmp_path: Path) -> None:
    case = _with_xfail(_case(tmp_path, "def f(h, m):\n    return ((h - m) ** 2).mean(-1)\n"), "oracle", "a mean, kept on purpose")
    result = engine.run_case(case, FAST)
    assert result.outcome == "xfailed" and result.message.startswith("expected failure: a mean, kept on purpose")


def test_an_expected_failure_that_passes_is_a_stale_xfail(tmp_path: Path) -> None:
    result = engine.run_case(_with_xfail(_case(tmp_path, None), "oracle", "was wrong once"), FAST)
    assert result.outcome == "failed" and result.message.startswith(engine.STALE_XFAIL)


def test_facts_record_the_proof() -> None:
    spec = shipped_specs()["surprise"]
    result = engine.run_case(Case(spec, "sympy", "cpu", "exact", "fact:gradient_hidden"), FAST)
    assert result.outcome == "passed" and result.proof.startswith("proved for all real values") and result.family == "fact"


def test_run_in_workers_gives_the_serial_results() -> None:
    plan = engine.Plan(impl=(f"surprise={SURPRISE}",), profile="conformance-ci", select=("cpu-float32",))
    serial = engine.run(plan)
    parallel = engine.run(plan, workers=2)
    assert len(serial) > 5
    # The same rows with the same verdicts. Not the same measured errors: Hypothesis mixes constants it finds in
    # the loaded local modules into its draws (hypothesis.internal.conjecture.providers._get_local_constants),
    # so this test process, which has imported the test modules, draws other examples than a fresh worker.
    keys = ("key", "outcome")
    assert [tuple(getattr(r, k) for k in keys) for r in serial] == [tuple(getattr(r, k) for k in keys) for r in parallel]
    assert all(r.examples > 0 for r in parallel if r.outcome == "passed")


def _comparable(rows: list[dict]) -> list[tuple]:
    keys = ("spec", "implementation", "device", "dtype", "check", "outcome", "examples", "max_abs_err", "tolerance", "spec_line")
    return sorted(tuple(r.get(k) for k in keys) for r in rows)


def test_the_cli_and_the_pytest_plugin_give_the_same_rows(tmp_path: Path) -> None:
    """Both drivers of the engine: ``conformance run`` (no pytest) and ``pytest conformance``."""
    impl = f"surprise={SURPRISE}"
    cli = run_cli(
        tmp_path,
        "run",
        "--impl",
        impl,
        "--report-dir",
        "cli",
        "-k",
        "cpu-float32-",
        "--hypothesis-profile",
        "conformance-ci",
        "-q",
        timeout=600,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    plugin = run_suite(
        tmp_path,
        "--impl",
        impl,
        "--report-dir",
        "plugin",
        "-k",
        "cpu and float32",
        "--hypothesis-profile",
        "conformance-ci",
        "-q",
        timeout=600,
    )
    assert plugin.returncode == 0, plugin.stdout[-3000:]
    cli_rows = json.loads((tmp_path / "cli" / "conformance.json").read_text())["results"]
    plugin_rows = json.loads((tmp_path / "plugin" / "conformance.json").read_text())["results"]
    assert len(cli_rows) > 5 and _comparable(cli_rows) == _comparable(plugin_rows)
    assert all("nodeid" in r for r in plugin_rows) and not any("nodeid" in r for r in cli_rows)


def test_conformance_run_from_another_directory_with_the_readme_command(tmp_path: Path) -> None:
    """The README's ``conformance run --impl rmsnorm=implementations.rmsnorm:RMSNorm --report-dir out/``."""
    result = run_cli(
        tmp_path,
        "run",
        "--impl",
        "rmsnorm=implementations.rmsnorm:RMSNorm",
        "--report-dir",
        "out/",
        "-k",
        "cpu-float32-o",
        "-q",
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "out" / "conformance.json").read_text())
    checks = {r["check"] for r in report["results"]}
    assert {"oracle", "output_contract"} <= checks and report["command"][:2] == ["conformance", "run"]


def test_conformance_run_help_lists_every_harness_option() -> None:
    result = run_cli(Path.cwd(), "run", "--help", timeout=120)
    for option in ("--impl", "--spec-dir", "--report-dir", "--hypothesis-profile", "-n"):
        assert option in result.stdout, option


def test_a_bad_impl_option_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "run", "--impl", "nosuch=x.py:f", timeout=120)
    assert result.returncode == 2 and "unknown spec id 'nosuch'" in result.stderr


def test_a_failing_run_exits_1(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text(
        textwrap.dedent("""
        def f(hidden, memory_pred):
            return ((hidden - memory_pred) ** 2).mean(-1)
    """)
    )
    result = run_cli(tmp_path, "run", "--impl", "surprise=bad.py:f", "-k", "cpu-float64-oracle", "-q", timeout=300)
    assert result.returncode == 1 and "FAILED" in result.stdout


NONDETERMINISTIC = """
import itertools
_calls = itertools.count()

def f(hidden, memory_pred):
    out = ((hidden - memory_pred) ** 2).sum(-1)
    return out + 1.0 if next(_calls) == 0 else out  # wrong on the first call only: Hypothesis cannot replay it
"""


def test_a_failure_hypothesis_cannot_replay_is_still_a_failure(tmp_path: Path) -> None:
    result = engine.run_case(_case(tmp_path, NONDETERMINISTIC), FAST)
    assert result.outcome == "failed" and "not reproducible on replay" in result.message
    assert result.error is None


def test_verdict_only_gives_the_same_verdict_without_shrinking(tmp_path: Path) -> None:
    """``--verdict-only``: the first failing example, unshrunk, and no more examples than a shrinking run."""
    from conformance import profiles

    wrong = "def f(h, m):\n    return ((h - m) ** 2).mean(-1)\n"
    full = profiles.settings_for("conformance-ci")
    quick = profiles.settings_for("conformance-ci", verdict_only=True)
    assert "shrink" in {p.name for p in full.phases} and "shrink" not in {p.name for p in quick.phases}
    shrunk = engine.run_case(_case(tmp_path, wrong), full)
    first = engine.run_case(_case(tmp_path, wrong), quick)
    assert shrunk.outcome == first.outcome == "failed" and first.falsifying_example and first.repro
    assert first.examples <= shrunk.examples
    assert engine.Plan(verdict_only=True).settings().phases == quick.phases


def test_the_report_says_whether_examples_were_shrunk(tmp_path: Path) -> None:
    result = run_cli(
        tmp_path,
        "run",
        "--impl",
        f"surprise={SURPRISE}",
        "-k",
        "cpu-float32-oracle",
        "--verdict-only",
        "--report-dir",
        "out",
        "-q",
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads((tmp_path / "out" / "conformance.json").read_text())["hypothesis"]["shrink"] is False
