"""The reviewed expected failures in effect, each with what became of it in this run (the report's ``xfails``).

An entry is recorded in a spec (an implementation's ``xfail``) or in an xfail file (the repository's registry
``xfails.yaml``, or ``--xfail-file``). Its status, read off this run's rows:

- ``expected failure``: the rows it concerns failed as recorded (``xfailed``);
- ``now passes``: a strict entry whose check passes now (the row fails as a stale xfail): remove the entry;
- ``did not fail (not strict)``: a non-strict entry whose check passed this time;
- ``matches nothing``: the run has rows of its spec and implementation but none of its check, device and dtype
  (a check that is never generated there, or was renamed): the entry records nothing;
- ``not in this run``: no row of its spec and implementation ran (a selection, another ``--impl``, CUDA absent).

The first three are what an entry is for; ``now passes`` and ``matches nothing`` are flagged for review.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from conformance.model import EquationSpec, XFail, XFailEntry
from conformance.results import Result

FLAGGED = ("now passes", "matches nothing")
STATUSES = ("now passes", "matches nothing", "expected failure", "did not fail (not strict)", "not run here", "not in this run")


def xfail_statuses(
    specs: Iterable[EquationSpec], entries: Iterable[Any], results: Sequence[Result] | Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """One record per entry in effect: where it is recorded, what it concerns, its status and the rows it matched.

    ``specs``: the run's specs as tested (with file entries merged); ``entries``: the file entries given
    (``--xfail-file``, the registry), so that one naming an implementation the run does not test is listed too.
    """
    rows = [r.to_json() if isinstance(r, Result) else dict(r) for r in results]
    specs = list(specs)
    by_id = {s.id: s for s in specs}
    recorded: dict[tuple[Any, ...], tuple[str, str | None, XFail]] = {}
    for spec in specs:
        for impl in spec.implementations:
            for xf in impl.xfail:
                recorded.setdefault(_key(spec.id, xf), (spec.id, impl.id, xf))
    for entry in entries:
        if isinstance(entry, XFailEntry):  # an implementation-wide entry is recorded once, not once per implementation
            recorded[_key(entry.spec, entry.xfail)] = (entry.spec, entry.implementation, entry.xfail)
    return [_status(spec_id, impl, xf, rows, by_id.get(spec_id)) for spec_id, impl, xf in recorded.values()]


def _key(spec_id: str, xf: XFail) -> tuple[Any, ...]:
    """An entry's identity: where it is recorded and what it says (entries made in code have no file)."""
    return (xf.file, xf.line, spec_id, xf.check, xf.device, xf.dtype, xf.reason)


def _status(spec_id: str, impl: str | None, xf: XFail, rows: list[dict[str, Any]], spec: EquationSpec | None) -> dict[str, Any]:
    mine = [r for r in rows if r["spec"] == spec_id and impl in (None, r["implementation"])]
    matched = [r for r in mine if r["check"] == xf.check and xf.device in (None, r["device"]) and xf.dtype in (None, r["dtype"])]
    outcomes = {o: sum(1 for r in matched if r["outcome"] == o) for o in ("xfailed", "failed", "passed", "skipped", "error")}
    if not mine:
        status = "not in this run"
    elif not matched:
        status = "matches nothing"
    elif outcomes["failed"] and any("stale xfail" in (r.get("message") or "") for r in matched):
        status = "now passes"
    elif outcomes["xfailed"]:
        status = "expected failure"
    elif outcomes["passed"]:
        status = "did not fail (not strict)"
    else:
        status = "not run here"  # every matching row was skipped (CUDA absent)
    lines = [r["spec_line"] for r in matched if r.get("spec_line")]
    spec_line = min(lines) if lines else (spec.line if spec is not None else None)
    spec_file = matched[0].get("spec_file") if matched else (spec.file if spec is not None else None)
    return {
        "file": xf.file,
        "line": xf.line,
        "spec": spec_id,
        "implementation": impl,
        "check": xf.check,
        "device": xf.device,
        "dtype": xf.dtype,
        "reason": xf.reason,
        "strict": xf.strict,
        "spec_line": f"{spec_file}:{spec_line}" if spec_file and spec_line else None,
        "status": status,
        "rows": {o: n for o, n in outcomes.items() if n},
    }
