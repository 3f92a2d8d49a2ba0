"""What a report says of each spec beside its rows: the equation as the paper states it, readably, and
the spec's recorded ambiguities with the choice made (the HTML report's per-equation section)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from conformance.model import EquationSpec


def spec_summaries(specs: Iterable[EquationSpec]) -> dict[str, dict[str, Any]]:
    """``{spec id: summary}`` for the report header (JSON-safe; see docs/report-schema.md, ``specs``)."""
    return {spec.id: spec_summary(spec) for spec in specs}


def spec_summary(spec: EquationSpec) -> dict[str, Any]:
    """One spec's summary: paper, equation number, statement, the oracle's expressions rendered as text,
    shapes, and the ambiguities with their choices; every field read from the loaded spec."""
    paper = spec.paper
    return {
        "title": spec.title,
        "paper": {
            "title": paper.title, "authors": list(paper.authors), "year": paper.year, "arxiv": paper.arxiv, "url": paper.url,
        },
        "equation": spec.equation,
        "section": spec.section,
        "statement": spec.statement,
        "file": spec.file,
        "line": spec.line,
        "expressions": _expressions(spec),
        "reference": spec.oracle.reference if spec.oracle is not None else None,
        "inputs": {name: _shape(inp.shape) for name, inp in spec.inputs.items()},
        "outputs": {name: _shape(out.shape) for name, out in spec.outputs.items()},
        "ambiguities": [{"question": a.question, "choice": a.choice} for a in spec.ambiguities],
    }


def _expressions(spec: EquationSpec) -> list[dict[str, str]]:
    """The oracle's ``let`` bindings and output expressions, each pretty-printed by SymPy (Unicode)."""
    oracle = spec.oracle
    if oracle is None:
        return []
    exprs = dict(oracle.exprs) or ({next(iter(spec.outputs), "out"): oracle.expr} if oracle.expr is not None else {})
    out = [{"name": name, "text": _pretty(value)} for name, value in oracle.let]
    return out + [{"name": name, "text": _pretty(value)} for name, value in exprs.items()]


def _pretty(expr: Any) -> str:
    import sympy

    try:
        return sympy.pretty(expr, use_unicode=True, wrap_line=False)
    except Exception:  # a custom function SymPy cannot lay out: its plain form
        return str(expr)


def _shape(shape: Iterable[Any]) -> list[str]:
    return [str(d) for d in shape]
