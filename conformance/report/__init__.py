"""Conformance reports: ``conformance.json`` (for tools), ``conformance.md`` (for reviewers and the CI job
summary), ``conformance.html`` (one self-contained page) and ``junit.xml`` (for CI systems).

The JSON schema is documented in ``docs/report-schema.md`` and versioned by :data:`SCHEMA_VERSION`
(``document.py``); comparing and merging reports is ``compare.py``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from conformance.model import EquationSpec
from conformance.report.document import SCHEMA_VERSION, ReportError, build_report, read_report
from conformance.report.html import render_html
from conformance.report.junit import render_junit
from conformance.report.markdown import render_markdown
from conformance.results import Result


def write_reports(
    rows: list[Result] | list[dict[str, Any]],
    out_dir: Path,
    *,
    profile: str,
    argv: list[str],
    verdict_only: bool = False,
    specs: Iterable[EquationSpec] = (),
    missing: Iterable[Mapping[str, Any]] = (),
    xfails: Iterable[Mapping[str, Any]] = (),
    baseline: Path | None = None,
) -> list[Path]:
    """Write ``conformance.json``, ``conformance.md``, ``conformance.html`` and ``junit.xml`` under ``out_dir``;
    return their paths. ``baseline``: a report to compare with (its regressions lead the Markdown).

    Each file is replaced atomically, so an interrupted run never leaves a half-written report
    over the previous one. Under GitHub Actions the Markdown is also appended to the job summary.
    """
    report = build_report(
        rows, profile=profile, argv=argv, verdict_only=verdict_only, specs=specs, missing=missing, xfails=xfails
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    comparison = _compare_with(baseline, report) if baseline is not None else None
    markdown = render_markdown(report, comparison=comparison)
    json_path = _write_atomic(out_dir / "conformance.json", json.dumps(report, indent=1, allow_nan=False) + "\n")
    md_path = _write_atomic(out_dir / "conformance.md", markdown)
    html_path = _write_atomic(out_dir / "conformance.html", render_html(report))
    junit_path = _write_atomic(out_dir / "junit.xml", render_junit(report["results"]))
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(markdown if len(markdown.encode()) <= _STEP_SUMMARY_LIMIT else _truncated(markdown))
    return [json_path, md_path, html_path, junit_path]


def _compare_with(baseline: Path, report: dict[str, Any]) -> Any:
    """The comparison of this run's rows against the ``baseline`` report (``report diff``'s)."""
    from conformance.report.compare import diff

    _, base_rows = read_report(baseline)
    return diff(base_rows, [Result.from_json(r) for r in report["results"]])


_STEP_SUMMARY_LIMIT = 1024 * 1024 - 1024  # GitHub's job summary takes at most 1 MiB


def _truncated(markdown: str) -> str:
    head = markdown.encode()[: _STEP_SUMMARY_LIMIT - 200].decode(errors="ignore")
    return head + "\n\n… truncated; the full report is conformance.md in the report directory.\n"


def _write_atomic(path: Path, text: str) -> Path:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


__all__ = ["SCHEMA_VERSION", "ReportError", "build_report", "read_report", "write_reports", "render_markdown"]
