"""Conformance reports: ``conformance.json`` (for tools) and ``conformance.md`` (for reviewers).

The JSON schema is documented in ``docs/report-schema.md`` and versioned by :data:`SCHEMA_VERSION`.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

from conformance.report.environment import environment
from conformance.report.markdown import render_markdown
from conformance.report.rows import OUTCOMES, sort_rows

SCHEMA_VERSION = "1.0"


def build_report(rows: list[dict[str, Any]], *, profile: str, argv: list[str]) -> dict[str, Any]:
    """The report document: environment, Hypothesis settings, summary and sorted rows."""
    from hypothesis import settings

    rows = sort_rows(rows)
    summary = {o: sum(1 for r in rows if r["outcome"] == o) for o in OUTCOMES}
    current = settings()
    return {
        "schema": "conformance-report",
        "schema_version": SCHEMA_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": ["pytest", *argv],
        "environment": environment(),
        "hypothesis": {"profile": profile, "max_examples": current.max_examples, "derandomize": current.derandomize},
        "summary": {"rows": len(rows), **summary},
        "results": rows,
    }


def write_reports(rows: list[dict[str, Any]], out_dir: Path, *, profile: str, argv: list[str]) -> list[Path]:
    """Write ``conformance.json`` and ``conformance.md`` under ``out_dir``; return their paths."""
    report = build_report(rows, profile=profile, argv=argv)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "conformance.json"
    md_path = out_dir / "conformance.md"
    json_path.write_text(json.dumps(report, indent=1, sort_keys=False, allow_nan=False) + "\n", encoding="utf-8")
    md_path.write_text(render_markdown(report), encoding="utf-8")
    return [json_path, md_path]


__all__ = ["SCHEMA_VERSION", "build_report", "write_reports", "render_markdown"]
