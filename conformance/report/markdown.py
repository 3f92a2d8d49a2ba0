"""``conformance.md``: a summary a reviewer reads in a minute (and the CI job summary).

The verdict first — counts, and the regressions against a baseline report when one is given — then the
planned checks that produced no row, the reviewed expected failures that need review, every failure with its
message, falsifying example and reproduction, then per paper and equation a folded matrix of outcomes (rows:
implementation × check; columns: device × dtype; a spec with a failure is unfolded), then skip reasons.

It stays under :data:`MAX_BYTES` whatever the suite's size: failures are detailed while the detail budget
lasts, then listed one line each; matrices past their budget are summarized one line per spec. The JSON and
HTML reports always hold everything.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any

SYMBOL = {"passed": "✅", "failed": "❌", "error": "💥", "skipped": "⏭️", "xfailed": "🟡"}
_DTYPES = ("exact", "float64", "float32", "bfloat16", "float16")
MAX_BYTES = 1024 * 1024 - 64 * 1024  # GitHub's job summary takes 1 MiB; keep a margin
DETAIL_BUDGET = 320 * 1024  # failures shown in full up to this many bytes, then one line each
LIST_BUDGET = 160 * 1024  # one-line failures (and missing rows, regressions) up to this many bytes each
MATRIX_BUDGET = MAX_BYTES - DETAIL_BUDGET - 3 * LIST_BUDGET - 32 * 1024


def render_markdown(report: dict[str, Any], comparison: Any = None) -> str:
    """The Markdown of ``report``; ``comparison``: a :class:`conformance.report.compare.Diff` against a baseline."""
    rows = report["results"]
    lines = _header(report, comparison)
    lines += _regressions(comparison) + _missing(report.get("missing", [])) + _xfails(report.get("xfails", []))
    lines += _failures(rows) + _environment(report)
    lines += _matrices(rows, report.get("specs", {})) + _skips(rows)
    return "\n".join(lines).rstrip() + "\n"


def _matrices(rows: list[dict[str, Any]], specs: dict[str, Any]) -> list[str]:
    """Per paper, per spec: its folded matrix while the budget lasts, then one line per remaining spec."""
    by_paper: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        source = f"arXiv {row['arxiv']}" if row.get("arxiv") else row.get("url") or "no arXiv id"
        by_paper[f"{row['paper']} ({source})"].append(row)
    lines: list[str] = []
    used = 0
    for paper, paper_rows in by_paper.items():
        lines += [f"## {paper}", ""]
        by_spec: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in paper_rows:
            by_spec[row["spec"]].append(row)
        for spec_rows in by_spec.values():
            section = _spec_section(spec_rows, specs.get(spec_rows[0]["spec"]))
            size = sum(len(s.encode()) + 1 for s in section)
            if used + size > MATRIX_BUDGET:
                section = [_spec_line_summary(spec_rows), ""]
                size = sum(len(s.encode()) + 1 for s in section)
            used += size
            lines += section
    return lines


def _counts(rows: list[dict[str, Any]]) -> str:
    counts = Counter(r["outcome"] for r in rows)
    return " · ".join(f"{SYMBOL[o]} {counts[o]}" for o in SYMBOL if counts[o])


def _spec_line_summary(rows: list[dict[str, Any]]) -> str:
    first = rows[0]
    return f"- `{first['spec']}` — {first['title']} (Eq. {first['equation']}): {_counts(rows)} (matrix in conformance.html)"


def _header(report: dict[str, Any], comparison: Any) -> list[str]:
    summary = report["summary"]
    counts = " · ".join(f"{SYMBOL[o]} {summary.get(o, 0)} {o}" for o in SYMBOL)
    return [
        "# Conformance report",
        "",
        _verdict(summary, comparison),
        "",
        f"**{summary['rows']} checks:** {counts}" + (f" · ⚠️ {summary['missing']} missing" if summary.get("missing") else ""),
        "",
    ]


def _verdict(summary: dict[str, Any], comparison: Any) -> str:
    bad = summary.get("failed", 0) + summary.get("error", 0)
    missing = summary.get("missing", 0)
    against = ""
    if comparison is not None:
        n = len(comparison.regressions)
        against = f"; {n} regression{'s' if n != 1 else ''} against the baseline" if n else "; no regression against the baseline"
    if bad or missing:
        parts = [f"{bad} check{'s' if bad != 1 else ''} fail"] if bad else []
        parts += [f"{missing} planned check{'s' if missing != 1 else ''} produced no row"] if missing else []
        return f"**Verdict: ❌ {', '.join(parts)}{against}.**"
    return f"**Verdict: ✅ every check that ran passes{against}.**"


def _environment(report: dict[str, Any]) -> list[str]:
    env, hyp = report["environment"], report["hypothesis"]
    devices = []
    for d in env["devices"]:
        devices.append(
            f"{d['name']} ({d.get('description', '')})" if d["available"] else f"{d['name']}: skipped — {d.get('skip_reason')}"
        )
    return [
        "## Environment",
        "",
        f"{report['created']} · torch {env['torch']} · Python {env['python']} · Hypothesis profile "
        f"`{hyp['profile']}` ({hyp['max_examples']} examples per check, derandomize={hyp['derandomize']})",
        "",
        f"Devices: {'; '.join(devices)}",
        "",
        "Numbers in the matrices: the worst example's error as a fraction of its derived tolerance (above 1 fails).",
        "",
    ]


def _listed(title: str, intro: str, items: list[str]) -> list[str]:
    """A section of one-line items, cut at :data:`LIST_BUDGET` with a count of what was left out."""
    lines, used = ["## " + title, "", intro, ""], 0
    for i, item in enumerate(items):
        used += len(item.encode()) + 1
        if used > LIST_BUDGET:
            lines.append(f"- … and {len(items) - i} more (conformance.json has them all)")
            break
        lines.append(item)
    return lines + [""]


def _key(r: Any) -> str:
    return f"`{r.spec}` · `{r.implementation}` · {r.device} · {r.dtype} · {r.check}"


def _regressions(comparison: Any) -> list[str]:
    if comparison is None:
        return []
    d = comparison
    intro = (
        f"{len(d.regressions)} regressions, {len(d.fixes)} fixes, {len(d.new)} new rows, {len(d.removed)} removed, "
        f"{len(d.drift)} with error drift (> {d.factor:g}× in units of the tolerance)."
    )
    items = [f"- {_key(b)}: {a.outcome} → **{b.outcome}** — {(b.message or '').splitlines()[0] if b.message else ''}"
             for a, b in d.regressions]
    items += [f"- drift: {_key(b)}: {g:.3g}× the baseline's error" for a, b, g in d.drift]
    return _listed("Against the baseline", intro, items)


def _missing(missing: list[dict[str, Any]]) -> list[str]:
    if not missing:
        return []
    reasons = Counter(m.get("reason") or "no reason recorded" for m in missing)
    intro = f"{len(missing)} planned checks produced no row: " + "; ".join(f"{n} — {r}" for r, n in reasons.most_common())
    items = [f"- `{m['spec']}` · `{m['implementation']}` · {m['device']} · {m['dtype']} · {m['check']}" for m in missing]
    return _listed("Missing rows", intro, items)


def _xfails(entries: list[dict[str, Any]]) -> list[str]:
    if not entries:
        return []
    from conformance.report.xfails import FLAGGED, STATUSES

    flagged = [e for e in entries if e["status"] in FLAGGED]
    entries = sorted(entries, key=lambda e: (STATUSES.index(e["status"]) if e["status"] in STATUSES else 9, e["file"], e["line"]))
    lines = [
        "## Reviewed expected failures",
        "",
        f"{len(entries)} entries in effect; {len(flagged)} flagged for review (an entry that now passes, or matches no row).",
        "",
        "| status | spec | implementation | check | where | reason | recorded at | concerns |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for e in entries:
        mark = "⚠️ " if e["status"] in FLAGGED else ""
        where = " ".join(x for x in (e.get("device"), e.get("dtype")) if x) or "all"
        impl = f"`{e['implementation']}`" if e.get("implementation") else "every"
        lines.append(
            f"| {mark}{e['status']} | `{e['spec']}` | {impl} "
            f"| {e['check']} | {where} | {_cell_text(e['reason'])} | `{e['file']}:{e['line']}` | `{e.get('spec_line') or '—'}` |"
        )
    return lines + [""]


def _cell_text(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _spec_section(rows: list[dict[str, Any]], summary: dict[str, Any] | None = None) -> list[str]:
    """The spec's heading, then its facts and matrix folded under a one-line count (unfolded when a row fails)."""
    first = rows[0]
    failing = any(r["outcome"] in ("failed", "error") for r in rows)
    lines = [
        f"### `{first['spec']}` — {first['title']} (Eq. {first['equation']})",
        "",
        f"Spec: `{first['spec_file']}:{_spec_line(rows)}`",
        "",
        f"<details{' open' if failing else ''}><summary>{len(rows)} checks: {_counts(rows)}</summary>",
        "",
    ]
    if summary and summary.get("ambiguities"):
        for a in summary["ambiguities"]:
            lines.append(f"- Ambiguity: {_cell_text(a['question'])} **Choice:** {_cell_text(a['choice'])}")
        lines.append("")
    facts = [r for r in rows if r.get("family") == "fact"]
    for r in facts:
        lines.append(f"- {SYMBOL[r['outcome']]} **{r['check']}** — {r.get('proof') or r.get('message') or ''}")
    if facts:
        lines.append("")
    matrix = [r for r in rows if r.get("family") != "fact"]
    columns = sorted(
        {(r["device"], r["dtype"]) for r in matrix}, key=lambda c: (c[0], _DTYPES.index(c[1]) if c[1] in _DTYPES else 9)
    )
    cells: dict[tuple[str, str], dict[tuple[str, str], str]] = defaultdict(dict)
    for r in matrix:
        cells[(r["implementation"], r["check"])][(r["device"], r["dtype"])] = _cell(r)
    lines.append("| implementation | check | " + " | ".join(f"{d} {t}" for d, t in columns) + " |")
    lines.append("| --- | --- | " + " | ".join("---" for _ in columns) + " |")
    for (impl, check), by_col in cells.items():
        lines.append(f"| `{impl}` | {check} | " + " | ".join(by_col.get(c, "—") for c in columns) + " |")
    return lines + ["", "</details>", ""]


def _cell(row: dict[str, Any]) -> str:
    """The outcome's symbol, then the worst error as a fraction of its tolerance where there is one."""
    err, tol = row.get("max_abs_err"), row.get("tolerance")
    if row["outcome"] in ("passed", "failed") and isinstance(err, float) and isinstance(tol, float) and tol > 0:
        return f"{SYMBOL[row['outcome']]} {err / tol:.2f}"
    return SYMBOL[row["outcome"]]


def _spec_line(rows: list[dict[str, Any]]) -> int:
    return min(r["spec_line"] for r in rows if r.get("spec_line")) if any(r.get("spec_line") for r in rows) else 0


def _failures(rows: list[dict[str, Any]]) -> list[str]:
    bad = [r for r in rows if r["outcome"] in ("failed", "error")]
    if not bad:
        return ["## Failures", "", "None.", ""]
    lines, used = ["## Failures", ""], 0
    for i, r in enumerate(bad):
        block = _failure(r)
        used += sum(len(s.encode()) + 1 for s in block)
        if used > DETAIL_BUDGET:
            rest = [f"- {SYMBOL[x['outcome']]} `{x['spec']}` · `{x['implementation']}` · {x['device']} · {x['dtype']} · "
                    f"{x['check']}: {_first(x)}" for x in bad[i:]]
            return lines + _listed("More failures", f"{len(rest)} more, one line each:", rest)[2:]
        lines += block
    return lines


def _first(row: dict[str, Any]) -> str:
    return _cell_text(str(row.get("message") or "").strip().splitlines()[0][:300]) if row.get("message") else ""


def _failure(r: dict[str, Any]) -> list[str]:
    """One failure in full: where, the measured error against the tolerance, the message, example and repro."""
    lines = [
        f"### {SYMBOL[r['outcome']]} `{r['spec']}` · `{r['implementation']}` · {r['device']} · {r['dtype']} · {r['check']}",
        "",
        f"Spec line: `{r['spec_file']}:{r['spec_line']}`",
        "",
    ]
    if r.get("max_abs_err") is not None:
        lines += [f"max |error| {r['max_abs_err']} · tolerance {r.get('tolerance')} ({r.get('tolerance_basis')})", ""]
    lines += ["```text", str(r.get("message") or "").strip()[:2000], "```", ""]
    if r.get("falsifying_example"):
        lines += ["Falsifying example:", "", "```json", json.dumps(r["falsifying_example"]), "```", ""]
    if r.get("repro"):
        lines += ["Reproduce:", "", "```python", r["repro"], "```", ""]
    return lines


def _skips(rows: list[dict[str, Any]]) -> list[str]:
    reasons = Counter((r["device"], r.get("message") or "") for r in rows if r["outcome"] == "skipped")
    xfails = Counter(r.get("message") or "" for r in rows if r["outcome"] == "xfailed")
    if not reasons and not xfails:
        return []
    lines = ["## Skipped and expected failures", ""]
    lines += [f"- ⏭️ {n} on {device}: {reason}" for (device, reason), n in sorted(reasons.items())]
    lines += [f"- 🟡 {n}: {reason}" for reason, n in sorted(xfails.items())]
    return lines + [""]
