"""The gradient audit's verdicts and ``grad_audit.md`` (``conformance audit-grads``, ``pytest conformance --grad-audit``).

Everything here is read off the report's rows, generically: a row of the ``gradient`` family (the conformance
run's ``gradient``, ``gradcheck``, ``gradgradcheck`` and the audit's own checks, whatever they are) that failed or
raised is a *defect*. Each defect is put in plain words by :data:`MEANINGS` (a check the table does not know
keeps its name and its message) and ranked by :data:`TIERS`: wrong first-order gradients, then second order,
then low precision, then notes. ``grad_audit.md``'s first line is the one-line answer (:func:`verdict_line`).

A report is a gradient audit's when its header says ``"audit": "gradients"`` (:data:`AUDIT_MARKER`); a conformance
report holds audit rows when one of its checks is registered as an audit check (``CheckDef.audit``).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

AUDIT_MARKER = ("audit", "gradients")  # the header key and value of a gradient audit's report
TIERS = ("wrong first-order gradients", "wrong second-order gradients", "low precision", "notes")
_DEVICES = ("cpu", "cuda")
_DTYPES = ("float64", "float32", "bfloat16", "float16")
SAFE, NOT_SAFE, NOTHING = "Safe to train through", "Not safe to train through", "Nothing audited"


@dataclass(frozen=True)
class Meaning:
    """What a failing check means for training: its tier (an index into :data:`TIERS`) and plain words.
    ``dtypes``: the dtypes it is read this way at (empty: all)."""

    check: str
    tier: int
    words: str
    dtypes: tuple[str, ...] = ()

    def matches(self, row: Mapping[str, Any]) -> bool:
        return row["check"] == self.check and (not self.dtypes or row["dtype"] in self.dtypes)


MEANINGS: tuple[Meaning, ...] = (
    Meaning("gradient", 0, "first-order gradients are wrong (the VJP disagrees with autograd through the float64 oracle)",
            ("float64",)),
    Meaning("symbolic_gradient", 0, "first-order gradients are wrong (the VJP disagrees with the exact derivative: "
            "sympy.diff of the oracle)"),
    Meaning("gradcheck", 0, "first-order gradients are wrong (gradcheck: the Jacobian disagrees with finite differences)"),
    Meaning("param_flow", 0, "a parameter gets no gradient (it would never train)"),
    Meaning("gradgradcheck", 1, "second-order gradients are wrong"),
    # a custom Function's first-order errors are also gradcheck's (tier 0); what this adds is its double backward
    Meaning("autograd_functions", 1, "a custom autograd.Function's backward is unsafe (its gradient count, or no graph for "
            "second order)"),
    Meaning("gradient", 2, "gradients lose too much accuracy at low precision (VJP error above the derived tolerance)",
            ("float32", "bfloat16", "float16")),
    Meaning("grad_options", 3, "gradcheck fails under one of torch's options (a note: the plain gradcheck is separate)"),
)


@dataclass(frozen=True)
class Defect:
    """A failed or raised audit row, in words and ranked."""

    row: Mapping[str, Any]
    tier: int
    words: str

    def sort_key(self) -> tuple:
        r = self.row
        return (self.tier, _meaning_index(r), _check_order(r["check"]), r["spec"], r["implementation"],
                _index(_DEVICES, r["device"]), _index(_DTYPES, r["dtype"]), r["check"])

    def evidence(self, limit: int = 200) -> str:
        """``gradgradcheck (slow mode) on cpu float64: Jacobian mismatch for output 0 with respect to input 0``."""
        r = self.row
        text = first_line(r.get("message") or r.get("error") or r.get("detail") or r["outcome"], limit).rstrip(",;: ")
        label = r["check"]
        if text.startswith(label) and ":" in text:
            label, _, text = text.partition(":")
        if r["outcome"] == "error":
            label += " raised"
        return f"{label.strip()} on {r['device']} {r['dtype']}: {text.strip()}"


def _meaning_index(row: Mapping[str, Any]) -> int:
    """Within a tier, the table's order: a check that names the defect directly (``gradgradcheck``) before one
    that explains it (``autograd_functions``); checks the table does not know last."""
    return next((i for i, m in enumerate(MEANINGS) if m.matches(row)), len(MEANINGS))


def meaning_of(row: Mapping[str, Any]) -> Meaning | None:
    return next((m for m in MEANINGS if m.matches(row)), None)


def defect_of(row: Mapping[str, Any]) -> Defect | None:
    """The row's defect, or None when it passed, was skipped or is a reviewed expected failure."""
    if row["outcome"] not in ("failed", "error"):
        return None
    meaning = meaning_of(row)
    if meaning is None:
        return Defect(row, len(TIERS) - 1, f"{row['check']} failed")
    words = meaning.words if row["outcome"] == "failed" else f"{meaning.words.split(' (')[0]} — or cannot be computed: it raised"
    return Defect(row, meaning.tier, words)


def defects(rows: Iterable[Mapping[str, Any]]) -> list[Defect]:
    """Every defect among ``rows``, most severe first."""
    found = [d for d in (defect_of(r) for r in rows) if d is not None]
    return sorted(found, key=Defect.sort_key)


# -- which rows are the audit's --------------------------------------------------------------------
def is_audit_report(report: Mapping[str, Any]) -> bool:
    key, value = AUDIT_MARKER
    return report.get(key) == value


def audit_checks() -> set[str]:
    """The names of the checks registered as a gradient audit's own (``CheckDef.audit``)."""
    from conformance.registry import CHECKS

    return {name for name, d in CHECKS.items() if getattr(d, "audit", False)}


def audit_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rows a gradient-audit section covers: in an audit's report, all of its gradient rows; in another report,
    its gradient rows when at least one of them is an audit check's (else none: a plain conformance run)."""
    rows = [r for r in report.get("results") or [] if r.get("family") == "gradient" or r["check"] in _known_checks()]
    if is_audit_report(report):
        return rows
    own = audit_checks()
    return rows if any(r["check"] in own for r in rows) else []


def _known_checks() -> set[str]:
    return {m.check for m in MEANINGS} | audit_checks()


# -- verdicts ----------------------------------------------------------------------------------------
def short_name(implementation: str) -> str:
    """A file ref shortened to its attribute (``…guide_saved_diff``); a module ref is kept whole."""
    module, sep, attr = implementation.rpartition(":")
    return f"…{attr}" if sep and ("/" in module or "\\" in module) else implementation


def verdict_line(rows: Sequence[Mapping[str, Any]]) -> str:
    """The one-line answer: safe (with the counts), or the first defect in plain words."""
    found = defects(rows)
    pairs = {(r["spec"], r["implementation"]) for r in rows}
    judged = [r for r in rows if r["outcome"] != "skipped"]
    skipped = len(rows) - len(judged)
    if found:
        first = found[0]
        more = f"; {len(found) - 1} more defect{'s' * (len(found) > 2)} below" if len(found) > 1 else ""
        where = f"{first.row['spec']} · {short_name(first.row['implementation'])}"
        return f"{NOT_SAFE}: {where} — {first.words} ({first.evidence(120)}){more}"
    counts = f"{_n(len(pairs), 'implementation')}, {_n(len(judged), 'check')}"
    counts += f"; {skipped} skipped: {', '.join(skip_reasons(rows))}" if skipped else ""
    if not judged:
        return f"{NOTHING}: every gradient check was skipped ({counts})" if rows else f"{NOTHING}: no gradient rows"
    gaps = low_precision_gaps(rows)
    gap = f"; low-precision gradients not audited for {_n(len(gaps), 'implementation')} (see Coverage)" if gaps else ""
    return f"{SAFE}: every gradient audited passed ({counts}){gap}"


def low_precision_gaps(rows: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """The (spec, implementation) pairs with no low-precision gradient row (``gradient`` below float64) that ran: a
    spec whose oracle is a reference function taking no ``xp`` (NumPy only) has nothing to differentiate, so its
    ``gradient`` rows are skipped, saying so, and only its float64 gradients were audited. A row skipped for its
    device (CUDA on a machine without one) does not count against a pair that ran on another."""
    rows = list(rows)
    covered = {
        (r["spec"], r["implementation"]) for r in rows
        if r["check"] == "gradient" and r["dtype"] != "float64" and r["outcome"] != "skipped"
    }
    return sorted({(r["spec"], r["implementation"]) for r in rows} - covered)


def _coverage(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    gaps = low_precision_gaps(rows)
    if not gaps:
        return []
    listed = ", ".join(f"`{spec}` · `{_cell(impl)}`" for spec, impl in gaps)
    return [
        "## Coverage",
        "",
        f"Low-precision gradients (float32, bfloat16, float16) are not audited for {_n(len(gaps), 'implementation')}: "
        "no `gradient` row below float64 ran for them (where their spec's oracle is a reference function that takes "
        "no `xp`, nothing can differentiate it: its skipped rows say so), so only their float64 gradients (finite "
        f"differences, second order, the audit's own checks) were audited: {listed}.",
        "",
    ]


def implementation_verdict(rows: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """``(status, words)``: :data:`SAFE` / :data:`NOT_SAFE` / :data:`NOTHING`, and for the unsafe the first defect's words."""
    found = defects(rows)
    if found:
        return NOT_SAFE, found[0].words
    return (SAFE if any(r["outcome"] != "skipped" for r in rows) else NOTHING), ""


def skip_reasons(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """The distinct skip reasons, shortened to their first clause (``CUDA not available``)."""
    out = dict.fromkeys(first_line(r.get("message") or "skipped", 120).split(" (")[0] for r in rows if r["outcome"] == "skipped")
    return list(out)


def by_implementation(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], list[Mapping[str, Any]]]:
    """The rows per (spec, implementation), in report order."""
    out: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        out[(r["spec"], r["implementation"])].append(r)
    return dict(out)


def row_verdict(row: Mapping[str, Any]) -> str:
    """A row's verdict in words: ``ok``, the defect's words, ``expected failure``, ``skipped``."""
    defect = defect_of(row)
    if defect is not None:
        return defect.words
    return {"passed": "ok", "xfailed": "expected failure (reviewed)", "skipped": "skipped"}.get(row["outcome"], row["outcome"])


def jacobian_error(row: Mapping[str, Any]) -> float | None:
    """The largest number in the row's fields named ``*jacobian*`` (a number, or a mapping of numbers: its ``*abs*``
    entries where it has some), if any."""
    values: list[float] = []
    for key, value in row.items():
        if "jacobian" not in key.lower():
            continue
        if isinstance(value, Mapping):
            absolute = [v for k, v in value.items() if "abs" in str(k).lower()]
            candidates = absolute or list(value.values())
        else:
            candidates = [value]
        for v in candidates:
            number = _number(v)
            if number is not None:
                values.append(number)
    return max(values, key=lambda v: math.inf if math.isnan(v) else v) if values else None


# -- grad_audit.md -----------------------------------------------------------------------------------
def render_grad_markdown(report: Mapping[str, Any]) -> str:
    """``grad_audit.md``: the one-line answer, the defects ranked, the words of each check, then per implementation
    every row (errors, tolerance, verdict), each failure's message and repro, and the skip reasons."""
    rows = audit_rows(report) if not is_audit_report(report) else list(report.get("results") or [])
    lines = [verdict_line(rows), "", "# Gradient audit", "", _about(report), ""]
    found = defects(rows)
    lines += _summary(rows) + _coverage(rows) + _defect_table(found) + _meanings(rows)
    for (spec, impl), impl_rows in by_implementation(rows).items():
        lines += _implementation(spec, impl, impl_rows)
    return "\n".join(lines).rstrip() + "\n"


def _about(report: Mapping[str, Any]) -> str:
    hyp = report.get("hypothesis") or {}
    env = report.get("environment") or {}
    command = " ".join(map(str, report.get("command") or []))
    return (
        "Every differentiable spec × implementation × device × dtype: the VJP at each precision against autograd through "
        "the float64 oracle (`gradient`), finite differences in float64 (`gradcheck`, `gradgradcheck`) and the audit's "
        f"own checks. Command `{command}`, {report.get('created', 'undated')}, torch {env.get('torch', '?')}, Hypothesis "
        f"profile `{hyp.get('profile', '?')}` ({hyp.get('max_examples', '?')} examples per check). Rows: `grad_audit.json`."
    )


def _summary(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = ["## Per implementation", "", "| spec | implementation | verdict | passed | failed | error | skipped |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for (spec, impl), impl_rows in by_implementation(rows).items():
        counts = [sum(1 for r in impl_rows if r["outcome"] == o) for o in ("passed", "failed", "error", "skipped")]
        status, words = implementation_verdict(impl_rows)
        verdict = f"{status}: {words}" if words else status
        lines.append(f"| `{spec}` | `{_cell(impl)}` | {_cell(verdict)} | " + " | ".join(map(str, counts)) + " |")
    return [*lines, ""]


def _defect_table(found: Sequence[Defect]) -> list[str]:
    if not found:
        return []
    lines = [f"## Defects, most severe first ({len(found)})", "",
             "| # | severity | spec · implementation | in plain words | evidence |", "| --- | --- | --- | --- | --- |"]
    for i, d in enumerate(found, 1):
        where = f"`{d.row['spec']}` · `{_cell(d.row['implementation'])}`"
        lines.append(f"| {i} | {TIERS[d.tier]} | {where} | {_cell(d.words)} | {_cell(d.evidence())} |")
    return [*lines, ""]


def _meanings(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = ["## What a failing check means", "", "| check | at | severity | in plain words | what it measures |",
             "| --- | --- | --- | --- | --- |"]
    for m in MEANINGS:
        at = ", ".join(m.dtypes) or "every dtype"
        lines.append(f"| `{m.check}` | {at} | {TIERS[m.tier]} | {_cell(m.words)} | {_cell(_description(m.check))} |")
    unknown = sorted({r["check"] for r in rows if meaning_of(r) is None})
    lines += [f"| `{c}` | every dtype | {TIERS[-1]} | not in this table: its name and message | {_cell(_description(c))} |"
              for c in unknown]
    return [*lines, ""]


def _implementation(spec: str, impl: str, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    head = rows[0]
    source = f"{head.get('title') or spec} ({head.get('paper') or 'no paper'}, Eq. {head.get('equation') or '?'})"
    lines = [f"## `{spec}` · `{impl}`", "", f"{verdict_line(rows)}. {source}.", ""]
    judged = [r for r in rows if r["outcome"] != "skipped"]
    jacobian = any(jacobian_error(r) is not None for r in judged)  # a column only where some row has such a field
    if judged:
        columns = ["check", "outcome", "device", "dtype", "max abs err", "max rel err", *["Jacobian err"] * jacobian,
                   "tolerance", "verdict"]
        lines += ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
        for r in judged:
            numbers = [_fmt(r.get(k)) for k in ("max_abs_err", "max_rel_err")]
            numbers += [_fmt(jacobian_error(r))] * jacobian + [_fmt(r.get("tolerance"))]
            lines.append(f"| `{r['check']}` | {r['outcome']} | {r['device']} | {r['dtype']} | " + " | ".join(numbers)
                         + f" | {_cell(row_verdict(r))} |")
        lines.append("")
    for r in rows:
        if r["outcome"] in ("failed", "error"):
            lines += _failure(r)
    return lines + _skipped(rows)


def _failure(row: Mapping[str, Any]) -> list[str]:
    lines = [f"### {row['outcome']}: `{row['check']}` on {row['device']} {row['dtype']} — {row_verdict(row)}", ""]
    text = str(row.get("message") or row.get("error") or "").strip()
    if text:
        lines += ["```text", text[:4000], "```", ""]
    if row.get("falsifying_example"):
        lines += [f"Falsifying example: `{json.dumps(row['falsifying_example'], sort_keys=True)[:2000]}`", ""]
    if row.get("repro"):
        lines += ["Reproduce with:", "", "```python", str(row["repro"]), "```", ""]
    return lines


def _skipped(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    groups: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        if r["outcome"] == "skipped":
            groups[str(r.get("message") or "skipped")].append(f"`{r['check']}` {r['device']} {r['dtype']}")
    if not groups:
        return []
    lines = [f"Skipped ({sum(map(len, groups.values()))}):", ""]
    lines += [f"- {reason}: {len(which)} — {', '.join(which)}" for reason, which in groups.items()]
    return [*lines, ""]


# -- small helpers -----------------------------------------------------------------------------------
def first_line(text: Any, limit: int = 240) -> str:
    """The first non-empty line of ``text``, at most ``limit`` characters (an ellipsis marks a cut)."""
    stripped = str(text or "").strip()
    line = stripped.splitlines()[0] if stripped else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _description(check: str) -> str:
    """The check's registered description (``CheckDef.description``), or ``—`` for a check not registered here."""
    from conformance.registry import CHECKS

    definition = CHECKS.get(check)
    return definition.description if definition is not None else "—"


def _check_order(check: str) -> int:
    from conformance.registry import CHECKS

    definition = CHECKS.get(check)
    return definition.order if definition is not None else 99


def _index(order: Sequence[str], value: str) -> int:
    return order.index(value) if value in order else len(order)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _fmt(value: Any) -> str:
    number = _number(value)
    return "—" if number is None else ("0" if number == 0 else f"{number:.3g}")


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'s' * (count != 1)}"


__all__ = [
    "AUDIT_MARKER", "Defect", "MEANINGS", "Meaning", "NOTHING", "NOT_SAFE", "SAFE", "TIERS", "audit_rows", "by_implementation",
    "defects", "implementation_verdict", "is_audit_report", "render_grad_markdown", "row_verdict", "short_name", "verdict_line",
]
