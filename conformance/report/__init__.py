"""Conformance reports: ``conformance.json`` (for tools) and ``conformance.md`` (for reviewers).

The JSON schema is documented in ``docs/report-schema.md`` and versioned by :data:`SCHEMA_VERSION`.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from conformance.model import EquationSpec
from conformance.report.environment import environment
from conformance.report.html import render_html
from conformance.report.junit import render_junit
from conformance.report.markdown import render_markdown
from conformance.report.rows import sort_rows
from conformance.report.specs import spec_summaries
from conformance.results import OUTCOMES, Result

SCHEMA_VERSION = "1.2"


def build_report(
    rows: list[Result] | list[dict[str, Any]],
    *,
    profile: str,
    argv: list[str],
    verdict_only: bool = False,
    specs: Iterable[EquationSpec] = (),
    missing: Iterable[Mapping[str, Any]] = (),
    xfails: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The report document: environment, Hypothesis settings, summary, sorted rows, and where given the
    specs' summaries (statement, ambiguities), the planted cases that produced no row (``missing``: a run
    interrupted, each with why) and the reviewed expected failures in effect with their status (``xfails``).

    ``rows``: results (or their JSON rows); ``argv``: the command that ran, as given.
    """
    from conformance.profiles import settings_for

    rows = sort_rows([r.to_json() if isinstance(r, Result) else dict(r) for r in rows])
    summary = {o: sum(1 for r in rows if r["outcome"] == o) for o in OUTCOMES}
    current = settings_for(profile)
    missing = [dict(m) for m in missing]
    if missing:
        summary["missing"] = len(missing)
    sections: dict[str, Any] = {"specs": spec_summaries(specs)}
    if missing:
        sections["missing"] = missing
    xfails = [dict(x) for x in xfails]
    if xfails:
        sections["xfails"] = xfails
    return {
        "schema": "conformance-report",
        "schema_version": SCHEMA_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": list(argv),
        "environment": environment(),
        "hypothesis": {
            "profile": profile,
            "max_examples": current.max_examples,
            "derandomize": current.derandomize,
            "shrink": not verdict_only,
        },
        "summary": {"rows": len(rows), **summary},
        **sections,
        "results": rows,
    }


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


class ReportError(ValueError):
    """A file that is not a conformance report this version can read."""


def read_report(path: Path) -> tuple[dict[str, Any], list[Result]]:
    """A written ``conformance.json``: its header (everything but the rows) and its rows as results."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: not a readable JSON report ({exc})") from None
    if not isinstance(document, dict) or document.get("schema") != "conformance-report":
        raise ReportError(f'{path}: not a conformance report (expected "schema": "conformance-report")')
    major = str(document.get("schema_version", "")).split(".")[0]
    if major != SCHEMA_VERSION.split(".")[0]:
        raise ReportError(f"{path}: schema version {document.get('schema_version')!r}; this version reads {SCHEMA_VERSION}")
    rows = document.get("results", [])
    header = {k: v for k, v in document.items() if k != "results"}
    return header, [Result.from_json(row) for row in rows]


__all__ = ["SCHEMA_VERSION", "ReportError", "build_report", "read_report", "write_reports", "render_markdown"]
