"""The HTML report's gradient-audit section: present when the report is a gradient audit's (``grad_audit.html``) or
its rows include an audit check's (a merged report, say). The one-line answer, then a row per implementation:
its verdict in plain words, its counts and its worst error as a fraction of tolerance. Everything is read off the
rows by :mod:`conformance.report.grad_markdown`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conformance.report.grad_markdown import (
    NOT_SAFE,
    audit_rows,
    by_implementation,
    defects,
    implementation_verdict,
    verdict_line,
)
from conformance.report.html_parts import breakable, e, ratio_text, worst_ratio
from conformance.results import OUTCOMES

_COUNTED = OUTCOMES  # the report's outcome order (conformance.results)


def grad_audit_section(report: Mapping[str, Any]) -> str:
    """The section's HTML, or ``""`` when the report holds no gradient audit."""
    rows = audit_rows(report)
    if not rows:
        return ""
    answer = verdict_line(rows)
    unsafe = answer.startswith(NOT_SAFE)
    head = "".join(f'<th scope="col">{c}</th>' for c in ("spec", "implementation", "verdict", "first defect", *_COUNTED, "worst"))
    body = "".join(_row(spec, impl, impl_rows) for (spec, impl), impl_rows in by_implementation(rows).items())
    return (
        f'<section id="grad-audit" class="verdict {"v-fail" if unsafe else "v-pass"}" aria-labelledby="grad-audit-h">'
        f'<h2 id="grad-audit-h">Gradient audit</h2><p class="big">{e(answer)}</p>'
        '<p class="sub">Per implementation: every gradient check (VJP at each precision, gradcheck and gradgradcheck in '
        'float64, the audit\'s own checks); the worst error is a fraction of its tolerance (above 1× fails).</p>'
        f'<table class="plain"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></section>'
    )


def _row(spec: str, impl: str, rows: list[Mapping[str, Any]]) -> str:
    status, words = implementation_verdict(rows)
    found = defects(rows)
    first = f"{e(words)} <span class=\"sub\">({e(found[0].evidence(160))})</span>" if found else "—"
    counts = "".join(f"<td>{sum(1 for r in rows if r['outcome'] == o)}</td>" for o in _COUNTED)
    ratios = [x for x in (worst_ratio(r) for r in rows if r["outcome"] in ("passed", "failed")) if x is not None]
    worst = max(ratios, key=lambda x: float("inf") if x != x else x) if ratios else None
    return (
        f'<tr><td><code>{e(spec)}</code></td><td><code>{breakable(impl)}</code></td>'
        f"<td>{e(status)}</td><td>{first}</td>{counts}<td>{e(ratio_text(worst))}</td></tr>"
    )


__all__ = ["grad_audit_section"]
