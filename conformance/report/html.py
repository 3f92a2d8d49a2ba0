"""``conformance.html``: one self-contained page a reviewer reads in a minute.

Top to bottom: where the report holds a gradient audit its summary per implementation (``html_grad``), the
verdict (counts, every failure and error linked to its equation's section, the planned
cases that produced no row, the reviewed expected failures and their status), the environment and the
Hypothesis profile, filters, a paper → equation → implementation matrix of outcomes per device and dtype
(the worst error / tolerance in each cell), then a section per equation (``html_sections``).

The page is rendered here, server-side: it reads without its script (which only filters, copies and adds
keyboard shortcuts), a browser's find searches all of it, and the report's data is written once, as markup.
It loads nothing: inline CSS and script (allowed by hash in its Content-Security-Policy, which also forbids
every fetch), inline SVG plots. Every string from the report is escaped.
"""

from __future__ import annotations

import base64
import hashlib
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from conformance.report.html_assets import CSS, JS
from conformance.report.html_grad import grad_audit_section
from conformance.report.html_parts import (
    SEVERITY,
    SYMBOL,
    WORD,
    anchor_ids,
    breakable,
    column_key,
    e,
    equation_label,
    first_line,
    outcome_badge,
    paper_link,
    ratio_text,
    worst_outcome,
    worst_ratio,
)
from conformance.report.html_sections import spec_info, spec_section
from conformance.results import OUTCOMES

_OUTCOME_ORDER = OUTCOMES  # the report's outcome order (conformance.results)


def render_html(report: dict[str, Any]) -> str:
    """The HTML page of ``report`` (the document :func:`conformance.report.build_report` returns)."""
    rows = list(report.get("results") or [])
    indexed = list(enumerate(rows))
    by_spec: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for i, row in indexed:
        by_spec[row["spec"]].append((i, row))
    anchors = anchor_ids(by_spec)
    summaries = report.get("specs") or {}
    infos = {s: spec_info(s, summaries.get(s), spec_rows[0][1]) for s, spec_rows in by_spec.items()}
    body = (
        _verdict(report, indexed, anchors)
        + _environment(report)
        + _filters(rows)
        + _matrix(by_spec, infos, anchors)
        + '<h2 id="equations">Equations</h2>'
        + "".join(spec_section(s, anchors[s], infos[s], spec_rows) for s, spec_rows in by_spec.items())
    )
    return _page(body)


def _page(body: str) -> str:
    """The document around ``body``: the inline style and script, allowed by their hashes only."""
    def digest(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    csp = f"default-src 'none'; style-src {digest(CSS)}; script-src {digest(JS)}; img-src data:; form-action 'none'"
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Conformance report</title><style>{CSS}</style></head><body>"
        '<a class="skip-link" href="#matrix">Skip to the matrix</a><main>'
        f"{body}</main><script>{JS}</script></body></html>\n"
    )


def _verdict(report: Mapping[str, Any], indexed: list[tuple[int, dict[str, Any]]], anchors: Mapping[str, str]) -> str:
    """The top of the page: pass or fail, the counts, and every failure and error linked."""
    summary = report.get("summary") or {}
    counts = {o: int(summary.get(o, sum(1 for _, r in indexed if r["outcome"] == o))) for o in _OUTCOME_ORDER}
    missing = int(summary.get("missing", len(report.get("missing") or [])))
    bad = [(i, r) for i, r in indexed if r["outcome"] in ("failed", "error")]
    stale = [x for x in report.get("xfails") or [] if x.get("status") in ("now passes", "matches nothing")]
    failing = bool(bad or missing)
    head = (f"✗ FAIL — {counts['failed']} failed, {counts['error']} errors" if bad else "✓ PASS — no failures, no errors")
    head += f", {missing} planned cases with no result" if missing else ""
    head += f" · {len(indexed)} checks"
    buttons = "".join(
        f'<li><button type="button" data-outcome="{o}" aria-pressed="false" title="Show only {o} checks">'
        f'<span class="sym o-{o}">{SYMBOL[o]}</span> {counts[o]} {o}</button></li>'
        for o in _OUTCOME_ORDER
    )
    created = f"{e(report.get('created'))} · <code>{e(' '.join(map(str, report.get('command') or [])))}</code>"
    return (
        f'<h1>Conformance report</h1><p class="sub">{created}</p>'
        f"{grad_audit_section(report)}"  # "" unless the report holds a gradient audit
        f'<section id="verdict" class="verdict {"v-fail" if failing else "v-pass"}" aria-labelledby="verdict-h">'
        f'<p class="big" id="verdict-h">{e(head)}</p><ul class="counts" aria-label="Counts per outcome (buttons filter)">'
        f"{buttons}</ul>{_bad_list(bad, anchors)}"
        f"{_stale_note(stale)}"
        f"</section>{_missing(report.get('missing') or [])}{_xfails(report.get('xfails') or [])}"
    )


def _stale_note(stale: list[Mapping[str, Any]]) -> str:
    if not stale:
        return ""
    return f'<p class="flag">⚠ {len(stale)} expected failure(s) now pass or match nothing: see <a href="#xfails">below</a>.</p>'


def _bad_list(bad: list[tuple[int, dict[str, Any]]], anchors: Mapping[str, str]) -> str:
    if not bad:
        return ""
    items = "".join(
        f'<li class="o-{e(r["outcome"])}"><a href="#r{i}"><span class="sym">{SYMBOL[r["outcome"]]}</span> '
        f'{e(WORD[r["outcome"]])}: <code>{e(r["spec"])}</code> · <code>{e(r["implementation"])}</code> · '
        f'{e(r["device"])} {e(r["dtype"])} · <code>{e(r["check"])}</code></a> {e(ratio_text(worst_ratio(r)))} — '
        f'{e(first_line(r.get("message") or r.get("error"), 200))} '
        f'(<a href="#{e(anchors[r["spec"]])}">{e(equation_label(r.get("equation")))} section</a>)</li>'
        for i, r in bad
    )
    return f'<h2 id="failures">Failures and errors ({len(bad)})</h2><ol class="badlist">{items}</ol>'


def _table(caption: str, anchor: str, columns: tuple[str, ...], body: list[list[str]]) -> str:
    """A plain table of already-escaped cells under a heading."""
    head = "".join(f'<th scope="col">{c}</th>' for c in columns)
    rows = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>" for cells in body)
    return f'<h2 id="{anchor}">{caption}</h2><table class="plain"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _missing(missing: list[Mapping[str, Any]]) -> str:
    """The planned cases that produced no row (an interrupted run), each with why."""
    if not missing:
        return ""
    body = [[f"<code>{e(m.get(k))}</code>" for k in ("spec", "implementation")] + [e(m.get("device")), e(m.get("dtype")),
             f"<code>{e(m.get('check'))}</code>", e(m.get("reason"))] for m in missing]
    return _table(f"⚠ Missing: {len(missing)} planned cases with no result", "missing",
                  ("spec", "implementation", "device", "dtype", "check", "why"), body)


def _xfails(xfails: list[Mapping[str, Any]]) -> str:
    """The reviewed expected failures in effect, a stale one ("now passes", "matches nothing") flagged."""
    if not xfails:
        return ""
    body = []
    for x in xfails:
        status = str(x.get("status"))
        flag = f'<span class="flag">⚠ {e(status)}</span>' if status in ("now passes", "matches nothing") else e(status)
        target = " · ".join(e(x.get(k) if x.get(k) is not None else "any") for k in ("implementation", "device", "dtype"))
        body.append([flag, f"<code>{e(x.get('spec'))}</code>", target, f"<code>{e(x.get('check'))}</code>", e(x.get("reason")),
                     f"<code>{e(x.get('file'))}:{e(x.get('line'))}</code>", e(x.get("rows"))])
    return _table(f"Expected failures ({len(xfails)})", "xfails",
                  ("status", "spec", "implementation · device · dtype", "check", "reason", "entry", "rows"), body)


def _environment(report: Mapping[str, Any]) -> str:
    """Versions, devices (with why an unavailable one was skipped) and the Hypothesis profile."""
    env, hyp = report.get("environment") or {}, report.get("hypothesis") or {}
    items = [(k, env.get(k)) for k in ("torch", "python", "numpy", "sympy", "hypothesis", "platform") if env.get(k)]
    for d in env.get("devices") or []:
        if d.get("available"):
            extra = [str(d[k]) for k in ("description", "cuda_version") if d.get(k)]
            extra += [f"{d[k]} {k}" for k in ("threads", "count") if d.get(k)]
            items.append((f"device {d.get('name')}", "available · " + ", ".join(extra)))
        else:
            items.append((f"device {d.get('name')}", f"not available — skipped: {d.get('skip_reason')}"))
    profile = (f"{hyp.get('profile')}: {hyp.get('max_examples')} examples per check, derandomize={hyp.get('derandomize')}, "
               f"shrink={hyp.get('shrink')}")
    items.append(("Hypothesis profile", profile))
    rows = "".join(f"<div><dt>{e(k)}</dt> <dd>{e(v)}</dd></div>" for k, v in items)
    return f'<h2 id="environment">Environment</h2><dl class="env">{rows}</dl>'


def _select(key: str, label: str, values: list[str], words: Mapping[str, str] | None = None) -> str:
    options = "".join(f'<option value="{e(v)}">{e((words or {}).get(v, v))}</option>' for v in values)
    return f'<label for="f-{key}">{label}<select id="f-{key}"><option value="">all</option>{options}</select></label>'


def _filters(rows: list[dict[str, Any]]) -> str:
    """The filter bar (real form controls, labelled; their state is kept in the URL hash)."""
    def distinct(key: str) -> list[str]:
        return sorted({str(r[key]) for r in rows})

    outcomes = {"bad": "failed or error", **{o: f"{SYMBOL[o]} {o}" for o in SEVERITY}}
    columns = sorted({(r["device"], r["dtype"]) for r in rows}, key=column_key)
    return (
        '<div id="filters" role="search" aria-label="Filter the checks">'
        + _select("outcome", "Outcome", ["bad", *_OUTCOME_ORDER], outcomes)
        + _select("spec", "Spec", distinct("spec"))
        + _select("impl", "Implementation", distinct("implementation"))
        + _select("device", "Device", list(dict.fromkeys(d for d, _ in columns)))
        + _select("dtype", "Dtype", list(dict.fromkeys(t for _, t in sorted(columns, key=lambda c: column_key(("", c[1]))))))
        + '<label for="f-q"><span>Text in check or message (key <kbd class="kbd">/</kbd>)</span><input id="f-q" type="search" '
        'placeholder="e.g. gradient"></label>'
        '<button type="button" id="f-reset">Reset filters</button>'
        '<span id="shown" role="status" aria-live="polite"></span></div>'
    )


def _matrix(by_spec: Mapping[str, list[tuple[int, dict[str, Any]]]], infos: Mapping[str, Mapping[str, Any]],
            anchors: Mapping[str, str]) -> str:
    """Paper → equation → implementation rows, a column per (device, dtype); each cell the worst outcome of
    its checks with the worst error / tolerance among them."""
    columns = sorted({(r["device"], r["dtype"]) for rows in by_spec.values() for _, r in rows}, key=column_key)
    head = "".join(f'<th scope="col">{e(d)}<br>{e(t)}</th>' for d, t in columns)
    by_paper: dict[str, list[str]] = defaultdict(list)
    for spec_id in by_spec:
        by_paper[str((infos[spec_id].get("paper") or {}).get("title") or "(no paper)")].append(spec_id)
    body = []
    for paper, spec_ids in by_paper.items():
        p = infos[spec_ids[0]].get("paper") or {}
        year = f" ({e(p.get('year'))})" if p.get("year") else ""
        body.append(f'<tr class="paper"><th colspan="{len(columns) + 2}">{e(paper)}{year} · '
                    f'{paper_link(p.get("arxiv"), p.get("url"))}</th></tr>')
        for spec_id in spec_ids:
            body += _matrix_rows(spec_id, by_spec[spec_id], infos[spec_id], anchors[spec_id], columns)
    legend = " · ".join(f'<span class="sym o-{o}">{SYMBOL[o]}</span> {WORD[o]}' for o in SEVERITY)
    return (
        '<h2 id="matrix">Matrix: outcome per device and dtype</h2>'
        f'<p class="sub">{legend}. A cell shows the worst outcome of its checks and the worst error as a fraction of its '
        'tolerance (above 1× fails); it links to the equation\'s section.</p>'
        f'<table class="matrix"><thead><tr><th scope="col">Equation</th><th scope="col">Implementation</th>{head}</tr></thead>'
        f'<tbody>{"".join(body)}</tbody></table>'
    )


def _matrix_rows(spec_id: str, rows: list[tuple[int, dict[str, Any]]], info: Mapping[str, Any], anchor: str,
                 columns: list[tuple[str, str]]) -> list[str]:
    by_impl: dict[str, dict[tuple[str, str], list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for _, r in rows:
        by_impl[r["implementation"]][(r["device"], r["dtype"])].append(r)
    eq = e(equation_label(info.get("equation")))
    label = f'<a href="#{e(anchor)}">{eq}</a> {e(info.get("title"))} <code>{e(spec_id)}</code>'
    out = []
    for impl, cells in by_impl.items():
        tds = "".join(_cell(cells.get(c, []), c, anchor) for c in columns)
        out.append(f'<tr data-mrow data-spec="{e(spec_id)}" data-impl="{e(impl)}"><th scope="row">{label}</th>'
                   f'<td class="impl"><code>{breakable(impl)}</code></td>{tds}</tr>')
    return out


def _cell(rows: list[dict[str, Any]], column: tuple[str, str], anchor: str) -> str:
    device, dtype = column
    if not rows:
        return f'<td class="none" data-device="{e(device)}" data-dtype="{e(dtype)}">·</td>'
    outcome = worst_outcome(r["outcome"] for r in rows)
    ratios = [x for x in (worst_ratio(r) for r in rows if r["outcome"] in ("passed", "failed")) if x is not None]
    worst = max(ratios, key=lambda x: float("inf") if x != x else x) if ratios else None
    same = sum(1 for r in rows if r["outcome"] == outcome)
    count = f"{len(rows)} {outcome}" if same == len(rows) else f"{same}/{len(rows)} {outcome}"
    tally = ", ".join(f"{n} {o}" for o in _OUTCOME_ORDER if (n := sum(1 for r in rows if r["outcome"] == o)))
    return (
        f'<td class="cell o-{outcome}" data-device="{e(device)}" data-dtype="{e(dtype)}">'
        f'<a href="#{e(anchor)}" title="{e(device)} {e(dtype)}: {e(tally)}">{outcome_badge(outcome)} '
        f'{e(ratio_text(worst))}<span class="n">{e(count)}</span></a></td>'
    )
