"""Between runs: ``diff`` (what changed from a baseline report) and ``merge`` (one report from shards).

A row is identified by :meth:`conformance.results.Result.key` — (spec, implementation, device, dtype, check).

- :func:`diff`: **regressions** (a row that passed, or was an expected failure, now fails or errors), **fixes**
  (the reverse), rows **new** in the head report and **removed** from it, other outcome changes (to or from
  skipped), and **error drift**: a row passing in both whose measured error grew by more than ``drift`` times
  (errors as fractions of their tolerance, so a tolerance that grew with the error is no drift; errors below
  :data:`DRIFT_FLOOR` of the tolerance count as that much). Drift means something between derandomized runs
  (the ``conformance-ci`` profile: the same examples); the Markdown says so when a report was not.
- :func:`merge`: the rows of several reports (xdist workers, a CPU and a CUDA run, several machines); reports of
  another schema major version are refused, and so are two rows of one key with different outcomes, naming both
  files. A key present twice with the same outcome keeps the first row; a skipped row yields to one that ran (a CPU
  run's CUDA rows are skipped: merged with a CUDA run's, the CUDA rows are kept). The shards' spec summaries are
  united, their missing rows kept unless another shard has the row, and each reviewed expected failure keeps its
  most telling status (an entry matched in one shard matched something).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.report.document import ReportError, build_report, read_report
from conformance.results import Result

Key = tuple[str, str, str, str, str]
GOOD = ("passed", "xfailed")
BAD = ("failed", "error")
DRIFT = 4.0  # the default factor: a passing check's error (in units of its tolerance) grew more than 4x
# Errors below this fraction of their tolerance count as this much: 0 → 1e-19 is rounding noise, not drift.
DRIFT_FLOOR = 0.01


@dataclass
class Diff:
    """What changed from ``base`` to ``head``, row by row (each list holds (base row or None, head row or None))."""

    regressions: list[tuple[Result, Result]] = field(default_factory=list)
    fixes: list[tuple[Result, Result]] = field(default_factory=list)
    new: list[Result] = field(default_factory=list)
    removed: list[Result] = field(default_factory=list)
    changed: list[tuple[Result, Result]] = field(default_factory=list)  # other outcome changes (skipped <-> run)
    drift: list[tuple[Result, Result, float]] = field(default_factory=list)  # (base, head, growth factor)
    factor: float = DRIFT

    def exit_status(self, fail_on_drift: bool = False) -> int:
        """1 on regressions (and on drift when asked), else 0."""
        return 1 if self.regressions or (fail_on_drift and self.drift) else 0

    def to_json(self) -> dict[str, Any]:
        def pair(a: Result | None, b: Result | None) -> dict[str, Any]:
            row = (b or a).key  # type: ignore[union-attr]
            out: dict[str, Any] = dict(zip(("spec", "implementation", "device", "dtype", "check"), row))
            out["base"] = None if a is None else {"outcome": a.outcome, "max_abs_err": a.max_abs_err, "tolerance": a.tolerance}
            out["head"] = None if b is None else {
                "outcome": b.outcome, "max_abs_err": b.max_abs_err, "tolerance": b.tolerance, "message": b.message,
                "repro": b.repro,
            }
            return out

        return {
            "regressions": [pair(a, b) for a, b in self.regressions],
            "fixes": [pair(a, b) for a, b in self.fixes],
            "new": [pair(None, b) for b in self.new],
            "removed": [pair(a, None) for a in self.removed],
            "changed": [pair(a, b) for a, b in self.changed],
            "drift": [{**pair(a, b), "growth": g} for a, b, g in self.drift],
            "drift_factor": self.factor,
        }


def _ratio(r: Result) -> float | None:
    if r.max_abs_err is None:
        return None
    if r.tolerance:
        return r.max_abs_err / r.tolerance
    return None


def diff(base: Sequence[Result], head: Sequence[Result], *, drift: float = DRIFT) -> Diff:
    """Row-by-row changes from ``base`` to ``head`` (see the module docstring)."""
    if not drift > 1.0:
        raise ValueError(f"the drift factor must be > 1, got {drift}")
    before = {r.key: r for r in base}
    after = {r.key: r for r in head}
    out = Diff(factor=drift)
    for key, b in after.items():
        a = before.get(key)
        if a is None:
            out.new.append(b)
        elif a.outcome in GOOD and b.outcome in BAD:
            out.regressions.append((a, b))
        elif a.outcome in BAD and b.outcome in GOOD:
            out.fixes.append((a, b))
        elif a.outcome != b.outcome:
            out.changed.append((a, b))
        elif a.outcome == b.outcome == "passed":
            ra, rb = _ratio(a), _ratio(b)
            if ra is not None and rb is not None and rb / max(ra, DRIFT_FLOOR) > drift:
                out.drift.append((a, b, rb / max(ra, DRIFT_FLOOR)))
    out.removed = [a for key, a in before.items() if key not in after]
    return out


def render_diff(d: Diff, base: str, head: str, *, randomized: bool = False) -> str:
    """Markdown for a CI job summary: the verdict first, then each section. ``randomized``: a report's examples
    were not derandomized, so its errors were measured on other examples than the other's."""
    verdict = "**regressions**" if d.regressions else "no regressions"
    lines = [
        f"# Conformance diff: {verdict}",
        "",
        f"`{base}` → `{head}`: {len(d.regressions)} regressions, {len(d.fixes)} fixes, {len(d.new)} new rows, "
        f"{len(d.removed)} removed, {len(d.changed)} other outcome changes, {len(d.drift)} with error drift "
        f"(> {d.factor:g}× the base error, in units of the tolerance).",
    ]
    if randomized:
        lines += ["", "Note: a report was not derandomized (its profile draws other examples each run): error drift "
                  "compares different examples. Compare `conformance-ci` reports."]

    def row(r: Result) -> str:
        return f"`{r.spec}` `{r.implementation}` {r.device} {r.dtype} `{r.check}`"

    def section(title: str, items: list[str]) -> None:
        if items:
            lines.extend(["", f"## {title}", "", *items])

    def first_line(r: Result) -> str:
        return (r.message or "").splitlines()[0] if r.message else ""

    section("Regressions", [f"- {row(b)}: {a.outcome} → **{b.outcome}** — {first_line(b)}" for a, b in d.regressions])
    section("Error drift", [f"- {row(b)}: error {a.max_abs_err:.3g} → {b.max_abs_err:.3g} ({g:.3g}× in units of the tolerance)"
                            for a, b, g in d.drift])
    section("Fixes", [f"- {row(b)}: {a.outcome} → {b.outcome}" for a, b in d.fixes])
    section("New rows", [f"- {row(b)}: {b.outcome}" for b in d.new])
    section("Removed rows", [f"- {row(a)} (was {a.outcome})" for a in d.removed])
    section("Other outcome changes", [f"- {row(b)}: {a.outcome} → {b.outcome}" for a, b in d.changed])
    return "\n".join(lines) + "\n"


def merge(paths: Sequence[Path]) -> tuple[dict[str, Any], list[Result]]:
    """The merged report document (header of the first report, profile and command of each in ``merged_from``)."""
    if not paths:
        raise ReportError("merge: no reports given")
    rows: dict[Key, tuple[Result, Path]] = {}
    headers = []
    for path in paths:
        header, results = read_report(path)
        headers.append((path, header))
        for r in results:
            seen = rows.get(r.key)
            if seen is None or (seen[0].outcome == "skipped" and r.outcome != "skipped"):
                rows[r.key] = (r, path)  # a row that ran supersedes a skip (a CPU run's CUDA rows, merged with a CUDA run)
            elif r.outcome == "skipped" and seen[0].outcome != "skipped":
                continue
            elif seen[0].outcome != r.outcome:
                raise ReportError(
                    f"merge: {' '.join(r.key)} is {seen[0].outcome} in {seen[1]} but {r.outcome} in {path} (conflicting rows)"
                )
    first = headers[0][1]
    profile = first.get("hypothesis", {}).get("profile", "conformance-dev")
    document = build_report(
        [r for r, _ in rows.values()],
        profile=profile,
        argv=["conformance", "report", "merge"],
        missing=[m for _, h in headers for m in h.get("missing", []) if _row_key(m) not in rows],
        xfails=_merged_xfails([x for _, h in headers for x in h.get("xfails", [])]),
    )
    document["specs"] = {k: v for _, h in headers for k, v in h.get("specs", {}).items()}
    document["environment"] = first.get("environment", document["environment"])
    document["merged_from"] = [
        {"file": str(p), "command": h.get("command"), "created": h.get("created"), "rows": h.get("summary", {}).get("rows")}
        for p, h in headers
    ]
    return document, [r for r, _ in rows.values()]


def _row_key(entry: dict[str, Any]) -> Key:
    return (entry.get("spec", ""), entry.get("implementation", ""), entry.get("device", ""), entry.get("dtype", ""),
            entry.get("check", ""))


# Across shards an entry keeps its most telling status: matched anywhere beats matching nothing in one shard.
_XFAIL_RANK = (
    "now passes", "expected failure", "did not fail (not strict)", "not run here", "matches nothing", "not in this run",
)


def _merged_xfails(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per entry (where it is recorded and what it says): the most telling status, the rows summed."""
    merged: dict[tuple, dict[str, Any]] = {}
    for e in entries:
        key = (e.get("file"), e.get("line"), e.get("spec"), e.get("check"), e.get("device"), e.get("dtype"), e.get("reason"))
        seen = merged.get(key)
        if seen is None:
            merged[key] = dict(e, rows=dict(e.get("rows", {})))
            continue
        for outcome, n in e.get("rows", {}).items():
            seen["rows"][outcome] = seen["rows"].get(outcome, 0) + n
        rank = {s: i for i, s in enumerate(_XFAIL_RANK)}
        if rank.get(e["status"], 9) < rank.get(seen["status"], 9):
            seen["status"] = e["status"]
            seen["spec_line"] = e.get("spec_line") or seen.get("spec_line")
    return list(merged.values())


def write_json(document: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    return path


__all__ = ["DRIFT", "Diff", "diff", "merge", "render_diff", "write_json"]
