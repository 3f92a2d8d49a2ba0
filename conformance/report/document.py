"""The report document: what ``conformance.json`` holds (:func:`build_report`) and reading one back
(:func:`read_report`). Schema: ``docs/report-schema.md``, versioned by :data:`SCHEMA_VERSION`."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from conformance.model import EquationSpec
from conformance.report.environment import environment
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
