"""A worker that crashes or a case that hangs loses no rows: the report has what was collected and says what is missing.

The planted implementations (``tests/robustness/planted.py``) abort the process (SIGABRT), sleep forever, call
``sys.exit`` or raise ``KeyboardInterrupt``; each run also has a correct one, whose rows must survive.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from conformance import engine
from tests.spec_helpers import run_cli, run_suite

PLANTED = Path(__file__).resolve().parent / "robustness" / "planted.py"
ORACLE = "cpu-float64-oracle"  # the reference's oracle_agreement, then each implementation's oracle


def _impl(*names: str) -> tuple[str, ...]:
    return tuple(f"rmsnorm={PLANTED}:{name}" for name in names)


def _cli_impl(*names: str) -> list[str]:
    return [arg for option in _impl(*names) for arg in ("--impl", option)]


def _by_impl(rows: list) -> dict[str, object]:
    """Rows keyed by the planted implementation's name (the reference's row under ``reference``)."""
    return {(r["implementation"] if isinstance(r, dict) else r.implementation).rsplit(":", 1)[-1]: r for r in rows}


def test_a_crashing_worker_loses_no_rows_and_its_case_names_the_signal() -> None:
    plan = engine.Plan(
        impl=_impl("good_norm", "abort_norm", "exit_norm", "interrupt_norm"), select=(ORACLE,), profile="conformance-ci"
    )
    cases = plan.cases()
    results = engine.run(plan, workers=2, cases=cases)
    assert [r.key for r in results] == [
        tuple(c.identity()[k] for k in ("spec", "implementation", "device", "dtype", "check")) for c in cases
    ]
    rows = _by_impl(results)
    assert rows["good_norm"].outcome == "passed" and rows["good_norm"].examples > 0
    assert rows["rmsnorm"].outcome == "passed"  # the reference's own row
    assert rows["abort_norm"].outcome == "error"
    assert "worker process died while running this case" in rows["abort_norm"].message
    assert "SIGABRT" in rows["abort_norm"].message
    assert rows["exit_norm"].outcome == "error" and rows["exit_norm"].message.startswith("SystemExit(3)")
    assert rows["interrupt_norm"].outcome == "error" and rows["interrupt_norm"].message.startswith("KeyboardInterrupt")


def test_a_hanging_case_times_out_and_the_cli_report_keeps_the_rest(tmp_path: Path) -> None:
    started = time.monotonic()
    done = run_cli(
        tmp_path,
        "run",
        *_cli_impl("hang_norm", "good_norm", "abort_norm"),
        "-k",
        ORACLE,
        "--timeout",
        "3",
        "--hypothesis-profile",
        "conformance-ci",
        "--report-dir",
        "rep",
        timeout=120,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads((tmp_path / "rep" / "conformance.json").read_text())
    rows = _by_impl(report["results"])
    assert set(rows) == {"rmsnorm", "good_norm", "abort_norm", "hang_norm"}
    assert rows["hang_norm"]["outcome"] == "error" and rows["hang_norm"]["message"].startswith("timed out after 3 s")
    assert 3 <= rows["hang_norm"]["duration_s"] < 10
    assert rows["abort_norm"]["outcome"] == "error" and "SIGABRT" in rows["abort_norm"]["message"]
    assert rows["good_norm"]["outcome"] == "passed" and rows["rmsnorm"]["outcome"] == "passed"
    assert not report.get("missing")
    assert elapsed < 60, f"the run took {elapsed:.0f} s: the hang was not cut at 3 s"


@pytest.mark.parametrize(
    ("sent", "extra"), [(signal.SIGINT, []), (signal.SIGTERM, ["--timeout", "60"])], ids=["SIGINT", "SIGTERM"]
)
def test_an_interrupted_cli_run_writes_the_rows_so_far_and_the_missing_cases(tmp_path: Path, sent: int, extra: list[str]) -> None:
    command = [
        sys.executable,
        "-m",
        "conformance",
        "run",
        *_cli_impl("good_norm", "hang_norm"),
        "-k",
        ORACLE,
        *extra,
        "--hypothesis-profile",
        "conformance-ci",
        "--report-dir",
        "rep",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert process.stdout is not None
    seen = []
    for line in process.stdout:  # the good implementation's row, then the hang: interrupt it
        seen.append(line)
        if "good_norm cpu float64 oracle" in line:
            time.sleep(1.0)
            process.send_signal(sent)
            break
    rest = process.communicate(timeout=60)[0]
    assert process.returncode == 130, "".join(seen) + rest
    assert "1 of 3 cases have no row (not run: the run was interrupted)" in rest
    report = json.loads((tmp_path / "rep" / "conformance.json").read_text())
    assert {r["implementation"].rsplit(":", 1)[-1]: r["outcome"] for r in report["results"]} == {
        "rmsnorm": "passed",
        "good_norm": "passed",
    }
    (missing,) = report["missing"]
    assert missing["implementation"].endswith(":hang_norm") and missing["check"] == "oracle"
    assert missing["reason"] == "not run: the run was interrupted" and report["summary"]["missing"] == 1


def test_an_xdist_worker_crash_is_an_error_row_and_the_others_are_kept(tmp_path: Path) -> None:
    args = (*_cli_impl("good_norm", "abort_norm"), "-k", "cpu and float64 and oracle", "-n", "2")
    done = run_suite(tmp_path, *args, "--hypothesis-profile", "conformance-ci", "--report-dir", "rep", timeout=180)
    assert done.returncode == 1, done.stdout[-3000:]
    rows = _by_impl(json.loads((tmp_path / "rep" / "conformance.json").read_text())["results"])
    assert {name: r["outcome"] for name, r in rows.items()} == {"rmsnorm": "passed", "good_norm": "passed", "abort_norm": "error"}
    assert rows["abort_norm"]["message"].startswith("worker 'gw") and "crashed while running" in rows["abort_norm"]["message"]


def test_pytest_timeout_makes_a_hanging_case_an_error_row_and_the_run_goes_on(tmp_path: Path) -> None:
    pytest.importorskip("pytest_timeout")
    started = time.monotonic()
    args = (*_cli_impl("hang_norm", "good_norm"), "-k", "cpu and float64 and oracle", "--timeout", "3")
    done = run_suite(tmp_path, *args, "--hypothesis-profile", "conformance-ci", "--report-dir", "rep", timeout=120)
    assert done.returncode == 1, done.stdout[-3000:]
    rows = _by_impl(json.loads((tmp_path / "rep" / "conformance.json").read_text())["results"])
    assert rows["hang_norm"]["outcome"] == "error" and rows["hang_norm"]["message"].startswith("timed out after 3 s")
    assert rows["good_norm"]["outcome"] == "passed" and rows["rmsnorm"]["outcome"] == "passed"
    assert time.monotonic() - started < 60


def test_a_session_stopped_early_lists_the_tests_without_a_row_as_missing(tmp_path: Path) -> None:
    args = (*_cli_impl("exit_norm", "good_norm"), "-k", "cpu and float64 and oracle", "-x")
    done = run_suite(tmp_path, *args, "--hypothesis-profile", "conformance-ci", "--report-dir", "rep", timeout=120)
    assert done.returncode == 1, done.stdout[-3000:]
    report = json.loads((tmp_path / "rep" / "conformance.json").read_text())
    rows = _by_impl(report["results"])
    assert {name: r["outcome"] for name, r in rows.items()} == {"rmsnorm": "passed", "exit_norm": "error"}
    (missing,) = report["missing"]
    assert missing["implementation"].endswith(":good_norm") and missing["reason"].startswith("not run: the session stopped early")


def test_a_failing_call_phase_without_the_engines_result_is_an_error_not_a_pass() -> None:
    from conformance.report.rows import merge_phase

    identity = {"spec": "s", "implementation": "m:f", "device": "cpu", "dtype": "float64", "check": "oracle"}
    setup = SimpleNamespace(nodeid="t[x]", when="setup", passed=True, failed=False, skipped=False, longrepr=None)
    call = SimpleNamespace(
        nodeid="t[x]",
        when="call",
        passed=False,
        failed=True,
        skipped=False,
        longrepr=None,
        longreprtext="E   Failed: Timeout >3.0s",
    )
    row = merge_phase(merge_phase(None, setup, identity, None), call, identity, None)
    assert row.outcome == "error" and row.message == "Failed: Timeout >3.0s"
