"""Report rows: one per (spec, implementation, device, dtype, check), merged from pytest phases.

Outcomes: ``passed``, ``failed`` (a check's error exceeded its tolerance, or a stale xfail),
``error`` (the implementation or the harness raised), ``skipped`` (with the reason), ``xfailed``
(a reviewed expected failure from the spec).
"""

from __future__ import annotations

from typing import Any

OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed")
ROW_ORDER = ("spec", "implementation", "device", "dtype", "check")
_DTYPE_ORDER = {"exact": 0, "float64": 1, "float32": 2, "bfloat16": 3, "float16": 4}


def merge_phase(row: dict[str, Any] | None, report: Any, case: dict[str, Any], result: dict[str, Any] | None) -> dict[str, Any]:
    """Fold one phase's report (setup, call or teardown) into the row.

    ``message`` says why a row is not a plain pass: the failure's measured error and tolerance,
    the error raised, the skip reason or the xfail's reviewed reason.
    """
    row = dict(row) if row else {**case, "nodeid": report.nodeid, "outcome": "passed", "message": None}
    if result:
        row.update(result)
    outcome = _outcome(report, result)
    if outcome is None or (report.when != "call" and outcome == "passed"):
        return row
    if report.when == "teardown" and row["outcome"] in ("failed", "error"):
        return row  # keep the call's failure; a teardown error after it adds nothing
    row["outcome"] = outcome
    detail = (result or {}).get("error") or (result or {}).get("detail")
    if outcome == "xfailed":
        row["message"] = f"expected failure: {report.wasxfail}" + (f" ({detail})" if detail else "")
    elif outcome in ("failed", "error"):
        longrepr = _reason(report)
        row["message"] = longrepr if "stale xfail" in longrepr else (detail or longrepr)
    elif outcome == "skipped":
        row["message"] = _reason(report)
    return row


def _outcome(report: Any, result: dict[str, Any] | None) -> str | None:
    if report.skipped:  # an expected failure arrives as a skip with ``wasxfail``, in setup too
        return "xfailed" if hasattr(report, "wasxfail") else "skipped"
    if report.when != "call":
        return "error" if report.failed else None
    if report.failed:
        return "error" if result and result.get("error") else "failed"
    return "passed"


def _reason(report: Any) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    text = str(getattr(report, "longreprtext", "") or longrepr or "")
    if "XPASS(strict)" in text:
        return f"stale xfail: the check passes now; remove the spec's xfail entry ({text.strip()})"
    lines = [ln for ln in text.splitlines() if ln.startswith("E ")]
    return "\n".join(ln[2:].strip() for ln in lines[-6:]) or text[-500:]


_CHECK_ORDER = {"oracle": 0, "output_contract": 1, "determinism": 2, "gradient": 3, "gradcheck": 4, "gradgradcheck": 5}


def sort_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stable report order, independent of execution order (serial and xdist agree)."""

    def key(row: dict[str, Any]) -> tuple:
        check = row["check"]
        return (
            row["spec"],
            row["implementation"],
            row["device"],
            _DTYPE_ORDER.get(row["dtype"], 9),
            row["dtype"],
            _CHECK_ORDER.get(check, 6),
            check,
        )

    return sorted(rows, key=key)
