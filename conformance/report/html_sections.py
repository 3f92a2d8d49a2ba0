"""The HTML report's section per equation: the statement and the oracle's expressions, the spec's
ambiguities with the choices made, and a row per check run (outcome, error against tolerance and its basis,
a plot of the examples), each failure followed by its message, falsifying example and repro snippet."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from conformance.report.html_parts import (
    breakable,
    e,
    equation_label,
    fmt,
    outcome_badge,
    paper_link,
    ratio_text,
    row_attrs,
    worst_ratio,
)
from conformance.report.html_plot import plot_svg

_CHECK_COLUMNS = ("outcome", "implementation", "device · dtype", "check", "error / tolerance",
                  "error vs tolerance (basis)", "examples", "plot: error / tolerance per example")


def spec_info(spec_id: str, summary: Mapping[str, Any] | None, first_row: Mapping[str, Any]) -> dict[str, Any]:
    """What the section header says of a spec: its summary from the report, or what its rows carry."""
    if summary:
        return dict(summary)
    return {
        "title": first_row.get("title"),
        "paper": {"title": first_row.get("paper"), "arxiv": first_row.get("arxiv"), "url": first_row.get("url")},
        "equation": first_row.get("equation"),
        "file": first_row.get("spec_file"),
        "line": None,
    }


def spec_section(spec_id: str, anchor: str, info: Mapping[str, Any], rows: list[tuple[int, dict[str, Any]]]) -> str:
    """One equation's ``<section>``; ``rows`` are (row index, row) pairs, the index naming the row's id."""
    paper = info.get("paper") or {}
    where = f"{info.get('file') or ''}{':' + str(info['line']) if info.get('line') else ''}"
    meta = [e(paper.get("title")), paper_link(paper.get("arxiv"), paper.get("url"))]
    meta += [f"§ {e(info['section'])}"] if info.get("section") else []
    meta += [f"spec <code>{e(where)}</code>"] if where else []
    eq = e(equation_label(info.get("equation")))
    return (
        f'<section class="spec" id="{e(anchor)}" data-spec="{e(spec_id)}" aria-labelledby="{e(anchor)}-h">'
        f'<h3 id="{e(anchor)}-h">{eq} — {e(info.get("title"))} <code>{e(spec_id)}</code></h3>'
        f'<p class="meta">{" · ".join(meta)}</p>'
        f"{_equation(info)}{_checks_table(rows)}</section>"
    )


def _equation(info: Mapping[str, Any]) -> str:
    """The statement and oracle expressions (left) beside the ambiguities and their choices (right)."""
    left = []
    if info.get("statement"):
        left.append(f'<h4>Statement (as in the paper)</h4><pre class="wrap stmt">{e(info["statement"])}</pre>')
    for expr in info.get("expressions") or ():
        left.append(f'<h4>Oracle: {e(expr.get("name"))} =</h4><pre class="math">{e(expr.get("text"))}</pre>')
    shapes = _shapes(info)
    if shapes:
        left.append(f'<p class="meta">{shapes}</p>')
    if info.get("reference"):
        left.append(f'<p class="meta">float64 reference: <code>{e(info["reference"])}</code></p>')
    right = _ambiguities(info.get("ambiguities") or [])
    if not left and not right:
        return ""
    return f'<div class="eqgrid"><div>{"".join(left)}</div><div>{right}</div></div>'


def _shapes(info: Mapping[str, Any]) -> str:
    def side(items: Mapping[str, Any]) -> str:
        return ", ".join(f"<code>{e(n)}</code> [{e(', '.join(str(d) for d in shape))}]" for n, shape in items.items())

    ins, outs = info.get("inputs") or {}, info.get("outputs") or {}
    return f"{side(ins)} → {side(outs)}" if ins or outs else ""


def _ambiguities(ambiguities: list[Mapping[str, Any]]) -> str:
    if not ambiguities:
        return ""
    items = "".join(
        f"<dt>{e(a.get('question'))}</dt><dd><b>Choice:</b> {e(a.get('choice'))}</dd>" for a in ambiguities
    )
    return f'<h4>Ambiguities and the choices made</h4><dl class="amb">{items}</dl>'


def _checks_table(rows: list[tuple[int, dict[str, Any]]]) -> str:
    head = "".join(f'<th scope="col">{c}</th>' for c in _CHECK_COLUMNS)
    body = "".join(check_row(i, row) for i, row in rows)
    cols = "".join(f'<col class="c-{c}">' for c in "oidcrbnp")
    return (f'<h4>Checks run</h4><table class="checks"><colgroup>{cols}</colgroup>'
            f'<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')


def check_row(index: int, row: Mapping[str, Any]) -> str:
    """A check's table row, and for a failure or error the detail row under it."""
    outcome = row["outcome"]
    note = row.get("message") if outcome != "passed" else row.get("detail")
    if row.get("proof"):
        note = row["proof"]
    note_html = f'<span class="msg">{e(note)}</span>' if note and outcome not in ("failed", "error") else ""
    error = ""
    if row.get("max_abs_err") is not None or row.get("tolerance") is not None:
        error = f"|error| {fmt(row.get('max_abs_err'))} vs tolerance {fmt(row.get('tolerance'))}"
    basis = f'<span class="basis">{e(row.get("tolerance_basis"))}</span>' if row.get("tolerance_basis") else ""
    cells = (
        f"<td>{outcome_badge(outcome)}</td><td class=\"impl\"><code>{breakable(row['implementation'])}</code></td>"
        f"<td>{e(row['device'])} {e(row['dtype'])}</td><td><code>{e(row['check'])}</code>{note_html}</td>"
        f'<td class="ratio">{ratio_text(worst_ratio(row))}</td><td>{error}{basis}</td>'
        f"<td>{e(row.get('examples'))}</td><td>{plot_svg(row.get('samples') or ())}</td>"
    )
    main = f'<tr id="r{index}" class="o-{e(outcome)}" data-row {row_attrs(row)}>{cells}</tr>'
    return main + (failure_detail(index, row) if outcome in ("failed", "error") else "")


def failure_detail(index: int, row: Mapping[str, Any]) -> str:
    """The row under a failure: its message, falsifying example, repro snippet (with a copy button) and traceback."""
    parts = [f'<h5>Why</h5><pre class="wrap msgfull">{e(row.get("message") or row.get("error"))}</pre>']
    if row.get("detail") and row.get("detail") != row.get("message"):
        parts.append(f'<pre class="wrap">{e(row["detail"])}</pre>')
    if row.get("falsifying_example"):
        example = _example_text(row["falsifying_example"])
        parts.append(f'<h5>Falsifying example</h5><pre class="example">{e(example)}</pre>')
    if row.get("repro"):
        parts.append(
            f'<div class="copyrow"><h5>Reproduce</h5><button type="button" class="copy" data-copy="repro-{index}" '
            f'aria-label="Copy the repro snippet">Copy repro</button><span class="status" role="status" aria-live="polite">'
            f'</span></div><pre class="repro wrap" id="repro-{index}">{e(row["repro"])}</pre>'
        )
    if row.get("traceback"):
        parts.append(f'<h5>Traceback</h5><pre class="wrap">{e(row["traceback"])}</pre>')
    return (
        f'<tr class="detail o-{e(row["outcome"])}" data-row {row_attrs(row)} data-for="r{index}">'
        f'<td colspan="{len(_CHECK_COLUMNS)}">{"".join(parts)}</td></tr>'
    )


def _example_text(example: Any) -> str:
    """A falsifying example, one top-level key per line (``sizes = {"B": 1, ...}``)."""
    if not isinstance(example, Mapping):
        return json.dumps(example, ensure_ascii=False, default=str)
    return "\n".join(f"{k} = {json.dumps(v, ensure_ascii=False, default=str)}" for k, v in example.items())
