"""Report rows from the pytest driver's phases, and the report's row order.

Each conformance test records its :class:`conformance.results.Result` (made by the engine) on its call
phase's report; :func:`merge_phase` keeps it, and makes the row of a test that never reached the engine
(an error in setup, say) from the case's identity. Outcomes: ``passed``, ``failed`` (a check's error
exceeded its tolerance, or a stale xfail), ``error`` (the implementation or the harness raised),
``skipped`` (with the reason), ``xfailed`` (a reviewed expected failure from the spec).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conformance.results import OUTCOMES, Result, make_result

ROW_ORDER = ("spec", "implementation", "device", "dtype", "check")
_DTYPE_ORDER = {"exact": 0, "float64": 1, "float32": 2, "bfloat16": 3, "float16": 4}


def merge_phase(row: Result | None, report: Any, identity: Mapping[str, Any], result: Mapping[str, Any] | None) -> Result:
    """Fold one phase's report (setup, call or teardown) into the row.

    The call phase carries the engine's result; a failing setup or teardown (a fixture, the harness), a
    failing call phase without the engine's result (something stopped the test inside the engine), or
    pytest-xdist's report of a worker that crashed while running the test, makes or turns the row into
    ``error`` with pytest's reason, unless the row already failed.
    """
    if result is not None:
        row = Result.from_json(result).with_nodeid(report.nodeid)
    if row is None:
        row = make_result(identity, outcome="passed").with_nodeid(report.nodeid)
    if report.when == "call" and result is None and report.failed and row.outcome not in ("failed", "error"):
        return make_result(identity, outcome="error", message=_reason(report)).with_nodeid(report.nodeid)
    if report.when == "call" or not (report.failed or report.skipped) or row.outcome in ("failed", "error"):
        return row
    if report.skipped:
        return make_result(identity, outcome="skipped", message=_reason(report)).with_nodeid(report.nodeid)
    reason = "\n".join(ln for ln in _reason(report).splitlines() if not ln.startswith("[gw"))  # xdist's platform line
    return make_result(identity, outcome="error", message=reason).with_nodeid(report.nodeid)


def _reason(report: Any) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    text = str(getattr(report, "longreprtext", "") or longrepr or "")
    lines = [ln for ln in text.splitlines() if ln.startswith("E ")]
    return "\n".join(ln[2:].strip() for ln in lines[-6:]) or text[-500:]


def _check_order(row: Mapping[str, Any]) -> int:
    from conformance.registry import CHECKS

    definition = CHECKS.get(row["check"])
    return definition.order if definition is not None else 6


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
            _check_order(row),
            check,
        )

    return sorted(rows, key=key)


__all__ = ["OUTCOMES", "ROW_ORDER", "merge_phase", "sort_rows"]
