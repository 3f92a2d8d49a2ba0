"""``junit.xml``: one ``testcase`` per report row, so CI systems show the rows natively.

A test suite per spec; a case is named ``implementation device dtype check`` with ``classname`` the spec id. A
failed row carries a ``failure`` (its message; the detail and the repro snippet as text), an error row an
``error``, a skipped row a ``skipped`` with its reason; an expected failure is a pass whose ``system-out`` says so.
The measured error, the tolerance and the spec line are ``properties`` of each case.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Any


def _text(row: Mapping[str, Any]) -> str:
    parts = [row.get("detail") or "", row.get("traceback") or "", "Reproduce with:\n" + row["repro"] if row.get("repro") else ""]
    return "\n\n".join(p for p in parts if p)


def render_junit(rows: Sequence[Mapping[str, Any]]) -> str:
    """The JUnit XML document for report rows (their JSON form)."""
    suites = ET.Element("testsuites", name="conformance")
    by_spec: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_spec.setdefault(row["spec"], []).append(row)
    for spec, items in by_spec.items():
        counts = {o: sum(1 for r in items if r["outcome"] == o) for o in ("failed", "error", "skipped")}
        suite = ET.SubElement(
            suites, "testsuite", name=spec, tests=str(len(items)), failures=str(counts["failed"]),
            errors=str(counts["error"]), skipped=str(counts["skipped"]),
            time=f"{sum(float(r.get('duration_s') or 0.0) for r in items):.3f}",
        )
        for row in items:
            name = f"{row['implementation']} {row['device']} {row['dtype']} {row['check']}"
            case = ET.SubElement(suite, "testcase", classname=spec, name=name, time=f"{float(row.get('duration_s') or 0.0):.3f}")
            props = ET.SubElement(case, "properties")
            for key in ("equation", "spec_file", "spec_line", "max_abs_err", "tolerance", "tolerance_basis", "examples"):
                if row.get(key) is not None:
                    ET.SubElement(props, "property", name=key, value=str(row[key]))
            outcome, message = row["outcome"], (row.get("message") or "").splitlines()
            first = message[0] if message else outcome
            if outcome == "failed":
                ET.SubElement(case, "failure", message=first, type="CheckFailure").text = _text(row) or first
            elif outcome == "error":
                kind = (row.get("error") or "error").split(":")[0]
                ET.SubElement(case, "error", message=first, type=kind).text = _text(row) or first
            elif outcome == "skipped":
                ET.SubElement(case, "skipped", message=first)
            elif outcome == "xfailed":
                ET.SubElement(case, "system-out").text = f"expected failure: {first}"
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


__all__ = ["render_junit"]
