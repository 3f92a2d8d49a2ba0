"""``conformance.md``: a summary a reviewer reads in a minute.

Per paper and equation, a matrix of outcomes (rows: implementation × check; columns: device ×
dtype), then every failure with its message, falsifying example and reproduction, then skip reasons.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any

SYMBOL = {"passed": "✅", "failed": "❌", "error": "💥", "skipped": "⏭️", "xfailed": "🟡"}
_DTYPES = ("exact", "float64", "float32", "bfloat16", "float16")


def render_markdown(report: dict[str, Any], comparison: Any = None) -> str:
    rows = report["results"]
    lines = _header(report)
    by_paper: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        source = f"arXiv {row['arxiv']}" if row.get("arxiv") else row.get("url") or "no arXiv id"
        by_paper[f"{row['paper']} ({source})"].append(row)
    for paper, paper_rows in by_paper.items():
        lines += [f"## {paper}", ""]
        by_spec: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in paper_rows:
            by_spec[row["spec"]].append(row)
        for spec_rows in by_spec.values():
            lines += _spec_section(spec_rows)
    lines += _failures(rows) + _skips(rows)
    return "\n".join(lines).rstrip() + "\n"


def _header(report: dict[str, Any]) -> list[str]:
    env, hyp, summary = report["environment"], report["hypothesis"], report["summary"]
    devices = []
    for d in env["devices"]:
        devices.append(
            f"{d['name']} ({d.get('description', '')})" if d["available"] else f"{d['name']}: skipped — {d.get('skip_reason')}"
        )
    counts = " · ".join(f"{SYMBOL[o]} {summary[o]} {o}" for o in SYMBOL)
    return [
        "# Conformance report",
        "",
        f"{report['created']} · torch {env['torch']} · Python {env['python']} · Hypothesis profile "
        f"`{hyp['profile']}` ({hyp['max_examples']} examples per check, derandomize={hyp['derandomize']})",
        "",
        f"Devices: {'; '.join(devices)}",
        "",
        f"**{summary['rows']} checks:** {counts}",
        "",
        "Numbers in the matrices: the worst example's error as a fraction of its derived tolerance (above 1 fails).",
        "",
    ]


def _spec_section(rows: list[dict[str, Any]]) -> list[str]:
    first = rows[0]
    lines = [
        f"### `{first['spec']}` — {first['title']} (Eq. {first['equation']})",
        "",
        f"Spec: `{first['spec_file']}:{_spec_line(rows)}`",
        "",
    ]
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
    return lines + [""]


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
    lines = ["## Failures", ""]
    for r in bad:
        lines += [
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
