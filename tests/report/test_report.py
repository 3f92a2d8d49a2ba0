"""conformance.report: build_report's document and the files write_reports leaves behind.

The JSON must be strict (no NaN or Infinity tokens: non-finite numbers are the strings "inf"/"nan"),
carry the schema name and version, a summary whose counts match the rows, the Hypothesis profile
used, and the environment with both devices.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import torch

import conformance.report as report_mod
from conformance.report import SCHEMA_VERSION, build_report, render_markdown, write_reports
from conformance.report.rows import OUTCOMES, sort_rows

ARGV = ["conformance", "--impl", "rmsnorm=my_norm.py:MyNorm"]
BASE = {
    "spec": "rmsnorm",
    "title": "RMSNorm",
    "paper": "Root Mean Square Layer Normalization",
    "arxiv": "1910.07467",
    "equation": "4",
    "spec_file": "specs/rmsnorm.yaml",
    "spec_line": 40,
    "implementation": "my_norm.py:MyNorm",
    "message": None,
}


def row(device: str, dtype: str, check: str, outcome: str, **fields: Any) -> dict[str, Any]:
    return {**BASE, "device": device, "dtype": dtype, "check": check, "outcome": outcome, **fields}


ROWS = [
    row("cpu", "float64", "oracle", "passed", max_abs_err=1e-16, tolerance=1e-14, examples=20),
    row("cpu", "float32", "determinism", "passed", max_abs_err=0.0, tolerance=None, examples=20),
    row(
        "cpu",
        "float32",
        "oracle",
        "failed",
        max_abs_err="inf",
        max_rel_err="nan",
        tolerance=1e-6,
        message="max |error| inf > tolerance 1e-06",
        falsifying_example={
            "sizes": {"B": 1, "L": 1, "D": 1},
            "params": {"eps": 1e-8},
            "magnitudes": {},
            "present": {},
            "seed": 0,
        },
        repro="reproduce(...)",
    ),
    row("cpu", "float64", "gradcheck", "error", message="RuntimeError: boom", error="RuntimeError: boom"),
    row("cuda", "float64", "oracle", "skipped", message="CUDA not available (torch.cuda.is_available() is False)"),
    row("cuda", "float32", "oracle", "skipped", message="CUDA not available (torch.cuda.is_available() is False)"),
    row("cpu", "float16", "oracle", "xfailed", message="expected failure: float16 statistics"),
    {**row("cpu", "exact", "fact:unit_rms_without_eps", "passed"), "implementation": "sympy", "proof": "proved for N in [1, 2]"},
]


def refuse_constant(name: str) -> float:
    raise ValueError(f"non-standard JSON constant {name}")


def strict_json(path: Path) -> dict[str, Any]:
    """The file's JSON, refusing NaN, Infinity and -Infinity."""
    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse_constant)


@pytest.fixture
def no_step_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep write_reports away from a real GitHub job summary."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


# -- build_report ----------------------------------------------------------------------------------
def test_build_report_schema_and_summary() -> None:
    report = build_report(list(reversed(ROWS)), profile="conformance-ci", argv=ARGV)
    assert report["schema"] == "conformance-report" and report["schema_version"] == SCHEMA_VERSION == "1.2"
    assert report["command"] == ARGV
    assert report["summary"] == {"rows": 8, "passed": 3, "failed": 1, "error": 1, "skipped": 2, "xfailed": 1}
    assert set(report["summary"]) == {"rows", *OUTCOMES}
    assert report["results"] == sort_rows(ROWS)
    assert dt.datetime.fromisoformat(report["created"]).tzinfo is not None


@pytest.mark.parametrize(
    ("profile", "max_examples", "derandomize"), [("conformance-ci", 20, True), ("conformance-thorough", 200, False)]
)
def test_build_report_records_the_profile_it_was_given(profile: str, max_examples: int, derandomize: bool) -> None:
    report = build_report(ROWS, profile=profile, argv=ARGV)
    assert report["hypothesis"] == {"profile": profile, "max_examples": max_examples, "derandomize": derandomize, "shrink": True}


def test_build_report_environment_names_both_devices() -> None:
    env = build_report(ROWS, profile="conformance-ci", argv=ARGV)["environment"]
    assert env["torch"] == torch.__version__ and env["python"]
    devices = {d["name"]: d for d in env["devices"]}
    assert list(devices) == ["cpu", "cuda"]
    assert devices["cpu"]["available"] is True and devices["cpu"]["threads"] >= 1
    assert devices["cuda"]["available"] is torch.cuda.is_available()
    if torch.cuda.is_available():
        assert devices["cuda"]["description"] and devices["cuda"]["count"] >= 1
    else:
        assert devices["cuda"]["skip_reason"].startswith("CUDA not available")


# -- write_reports ---------------------------------------------------------------------------------
def test_write_reports_writes_strict_json_and_the_markdown(tmp_path: Path, no_step_summary: None) -> None:
    out_dir = tmp_path / "nested" / "out"
    paths = write_reports(ROWS, out_dir, profile="conformance-ci", argv=ARGV)
    names = ["conformance.json", "conformance.md", "conformance.html", "junit.xml"]
    assert paths == [out_dir / name for name in names]
    written = sorted(p.name for p in out_dir.iterdir())
    assert written == ["conformance.html", "conformance.json", "conformance.md", "junit.xml"], "no temporary files left"
    report = strict_json(paths[0])
    assert report["schema"] == "conformance-report" and report["schema_version"] == SCHEMA_VERSION
    assert report["summary"]["rows"] == len(report["results"]) == len(ROWS)
    for outcome in OUTCOMES:
        assert report["summary"][outcome] == sum(r["outcome"] == outcome for r in report["results"])
    assert {d["name"] for d in report["environment"]["devices"]} == {"cpu", "cuda"}
    failed = next(r for r in report["results"] if r["outcome"] == "failed")
    assert failed["max_abs_err"] == "inf" and failed["max_rel_err"] == "nan"
    assert paths[1].read_text(encoding="utf-8") == render_markdown(report)


def test_write_reports_replaces_a_previous_report(tmp_path: Path, no_step_summary: None) -> None:
    write_reports(ROWS, tmp_path, profile="conformance-ci", argv=ARGV)
    json_path, *_ = write_reports(ROWS[:2], tmp_path, profile="conformance-ci", argv=ARGV)
    assert strict_json(json_path)["summary"]["rows"] == 2


def test_strict_json_helper_refuses_nan() -> None:
    with pytest.raises(ValueError, match="NaN"):
        json.loads('{"x": NaN}', parse_constant=refuse_constant)


def test_write_reports_appends_the_markdown_to_the_github_job_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    _, md_path, *_ = write_reports(ROWS, tmp_path / "out", profile="conformance-ci", argv=ARGV)
    assert summary.read_text(encoding="utf-8") == "earlier step\n" + md_path.read_text(encoding="utf-8")


def test_job_summary_is_truncated_to_its_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = tmp_path / "step_summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setattr(report_mod, "_STEP_SUMMARY_LIMIT", 1000)
    _, md_path, *_ = write_reports(ROWS, tmp_path / "out", profile="conformance-ci", argv=ARGV)
    text = summary.read_text(encoding="utf-8")
    assert len(text.encode()) <= 1000 < len(md_path.read_bytes())
    assert text.rstrip().endswith("the full report is conformance.md in the report directory.")
