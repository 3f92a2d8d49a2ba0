"""conformance report diff / merge: regressions, fixes, new and removed rows, error drift; merging shards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.report import ReportError, build_report
from conformance.report.compare import diff, merge, render_diff
from conformance.results import Result
from tests.spec_helpers import run_cli


def row(check: str, outcome: str, err: float | None = 1e-7, tol: float | None = 1e-6, **kw: object) -> Result:
    return Result("rmsnorm", "impl:f", kw.pop("device", "cpu"), kw.pop("dtype", "float32"), check, outcome,  # type: ignore[arg-type]
                  max_abs_err=err, tolerance=tol, message=kw.pop("message", None))


def write(tmp: Path, name: str, rows: list[Result], profile: str = "conformance-ci") -> Path:
    path = tmp / name
    path.write_text(json.dumps(build_report(rows, profile=profile, argv=["test"])))
    return path


BASE = [row("oracle", "passed"), row("determinism", "passed"), row("gradient", "failed"), row("invariant:a", "passed"),
        row("invariant:gone", "passed"), row("output_contract", "skipped")]
HEAD = [row("oracle", "failed", err=1.0, message="max |error| 1 > tolerance 1e-6"), row("determinism", "passed"),
        row("gradient", "passed"), row("invariant:a", "passed", err=8e-7), row("invariant:new", "passed"),
        row("output_contract", "passed")]


def test_diff_sorts_every_change() -> None:
    d = diff(BASE, HEAD)
    assert [b.check for _, b in d.regressions] == ["oracle"]
    assert [b.check for _, b in d.fixes] == ["gradient"]
    assert [r.check for r in d.new] == ["invariant:new"] and [r.check for r in d.removed] == ["invariant:gone"]
    assert [b.check for _, b in d.changed] == ["output_contract"]
    assert [(b.check, round(g, 3)) for _, b, g in d.drift] == [("invariant:a", 8.0)], "8x the error at the same tolerance"
    assert d.exit_status() == 1 and d.exit_status(fail_on_drift=True) == 1


def test_drift_is_in_units_of_the_tolerance_and_only_above_the_factor() -> None:
    grew_with_tolerance = [row("oracle", "passed", err=8e-7, tol=8e-6)]
    assert not diff([row("oracle", "passed")], grew_with_tolerance).drift
    assert not diff([row("oracle", "passed")], [row("oracle", "passed", err=3.9e-7)]).drift  # 3.9x < 4
    assert diff([row("oracle", "passed")], [row("oracle", "passed", err=3.9e-7)], drift=2).drift
    only_drift = diff([row("oracle", "passed")], [row("oracle", "passed", err=9e-7)])
    assert only_drift.exit_status() == 0 and only_drift.exit_status(fail_on_drift=True) == 1
    noise = diff([row("oracle", "passed", err=0.0)], [row("oracle", "passed", err=3e-8)])  # 0 -> 3% of the tolerance
    assert not noise.drift, "an error below 1% of its tolerance counts as 1%"
    with pytest.raises(ValueError, match="must be > 1"):
        diff([], [], drift=1.0)


def test_markdown_puts_the_verdict_first() -> None:
    text = render_diff(diff(BASE, HEAD), "base.json", "head.json")
    assert text.startswith("# Conformance diff: **regressions**")
    assert "1 regressions, 1 fixes, 1 new rows, 1 removed" in text
    assert "`oracle`: passed → **failed** — max |error| 1 > tolerance 1e-6" in text
    assert render_diff(diff(BASE, BASE), "a", "b").startswith("# Conformance diff: no regressions")
    assert "compares different examples" in render_diff(diff(BASE, BASE), "a", "b", randomized=True)


def test_report_diff_command(tmp_path: Path) -> None:
    base, head = write(tmp_path, "base.json", BASE), write(tmp_path, "head.json", HEAD)
    done = run_cli(tmp_path, "report", "diff", str(base), str(head))
    assert done.returncode == 1 and "**regressions**" in done.stdout
    done = run_cli(tmp_path, "report", "diff", str(base), str(base), "--format", "json")
    assert done.returncode == 0 and json.loads(done.stdout)["regressions"] == []
    drifting = write(tmp_path, "drift.json", [*BASE[1:], row("oracle", "passed", err=9e-7)])
    assert run_cli(tmp_path, "report", "diff", str(base), str(drifting)).returncode == 0
    assert run_cli(tmp_path, "report", "diff", str(base), str(drifting), "--fail-on-drift").returncode == 1


def test_merge_shards_and_refuse_conflicts(tmp_path: Path) -> None:
    cpu = write(tmp_path, "cpu.json", [row("oracle", "passed"), row("oracle", "skipped", device="cuda")])
    cuda = write(tmp_path, "cuda.json", [row("oracle", "passed", device="cuda"), row("gradient", "passed", device="cuda")])
    document, rows = merge([cpu, cuda])
    assert {(r.device, r.check): r.outcome for r in rows} == {
        ("cpu", "oracle"): "passed", ("cuda", "oracle"): "passed", ("cuda", "gradient"): "passed"
    }, "the CPU run's skipped CUDA row yields to the CUDA run's"
    assert merge([cuda, cpu])[0]["summary"] == document["summary"], "whichever comes first"
    broken = write(tmp_path, "broken.json", [row("oracle", "failed", device="cuda")])
    conflict = r"rmsnorm impl:f cuda float32 oracle is passed in .*cuda.json but failed in .*broken.json"
    with pytest.raises(ReportError, match=conflict):
        merge([cpu, cuda, broken])
    cpu_only = write(tmp_path, "cpu2.json", [row("oracle", "passed")])
    document, rows = merge([cpu_only, cuda, cpu_only])
    assert document["summary"]["rows"] == 3 and len(rows) == 3
    assert [m["file"] for m in document["merged_from"]] == [str(cpu_only), str(cuda), str(cpu_only)]


def test_merge_unites_specs_missing_rows_and_expected_failures(tmp_path: Path) -> None:
    entry = {"file": "xfails.yaml", "line": 2, "spec": "rmsnorm", "implementation": None, "check": "gradient",
             "device": None, "dtype": None, "reason": "r", "spec_line": None}
    gone = {"spec": "rmsnorm", "implementation": "impl:f", "device": "cuda", "dtype": "float32", "check": "gradient",
            "reason": "not run: the run was interrupted"}
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    report_a = build_report([row("oracle", "passed")], profile="conformance-ci", argv=["t"], missing=[gone],
                            xfails=[dict(entry, status="matches nothing", rows={})])
    report_a["specs"] = {"rmsnorm": {"title": "RMSNorm"}}
    report_b = build_report([row("gradient", "xfailed", device="cuda")], profile="conformance-ci", argv=["t"],
                            xfails=[dict(entry, status="expected failure", rows={"xfailed": 1})])
    report_b["specs"] = {"attention": {"title": "Attention"}}
    a.write_text(json.dumps(report_a))
    b.write_text(json.dumps(report_b))
    document, _ = merge([a, b])
    assert set(document["specs"]) == {"rmsnorm", "attention"}
    assert "missing" not in document, "the row missing from one shard is in the other"
    (xfail,) = document["xfails"]
    assert xfail["status"] == "expected failure" and xfail["rows"] == {"xfailed": 1}


def test_merge_refuses_another_schema_version(tmp_path: Path) -> None:
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"schema": "conformance-report", "schema_version": "0.9", "results": []}))
    with pytest.raises(ReportError, match="old.json: schema version '0.9'"):
        merge([old])


def test_report_merge_command(tmp_path: Path) -> None:
    a = write(tmp_path, "a.json", [row("oracle", "passed")])
    b = write(tmp_path, "b.json", [row("gradient", "failed")])
    done = run_cli(tmp_path, "report", "merge", str(a), str(b), "-o", "out/merged.json")
    assert done.returncode == 0, done.stderr
    merged = json.loads((tmp_path / "out" / "merged.json").read_text())
    assert merged["summary"] == {"rows": 2, "passed": 1, "failed": 1, "error": 0, "skipped": 0, "xfailed": 0}
    assert (tmp_path / "out" / "merged.md").exists()
    clash = write(tmp_path, "c.json", [row("oracle", "failed")])
    done = run_cli(tmp_path, "report", "merge", str(a), str(clash), "-o", "x.json")
    assert done.returncode == 2 and "conflicting rows" in done.stderr
