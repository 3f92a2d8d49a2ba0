"""The gradient audit: is it safe to train through these implementations?

Per differentiable spec × implementation × device × dtype it runs the ``gradient`` family's checks (the VJP at each
precision against autograd through the float64 oracle; ``gradcheck`` and ``gradgradcheck`` in float64) and the
audit's own checks (``CheckDef.audit``), through the engine (:class:`conformance.engine.Plan` with ``audit=True``),
and writes into the report directory (default :data:`REPORT_DIR`):

- ``grad_audit.json`` — the results schema (``docs/report-schema.md``) with ``"audit": "gradients"`` in its header;
- ``grad_audit.md`` — first line the one-line answer (:func:`conformance.report.grad_markdown.verdict_line`), then
  the defects ranked, the words of each check and every row per implementation;
- ``grad_audit.html`` — the HTML report of the same document, its gradient-audit summary at the top.

Two drivers: ``conformance audit-grads`` (:mod:`conformance.cli`) and ``pytest conformance --grad-audit``
(:mod:`conformance.plugin`); both write through :func:`write_audit`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from conformance import engine
from conformance.model import EquationSpec
from conformance.report import build_report
from conformance.report.grad_markdown import AUDIT_MARKER, render_grad_markdown, verdict_line
from conformance.report.html import render_html
from conformance.results import Result

REPORT_DIR = "reports/grad_audit"
FILES = ("grad_audit.json", "grad_audit.md", "grad_audit.html")


def plan(
    impl: Sequence[str] = (),
    spec_dirs: Sequence[str] = (),
    select: Sequence[str] = (),
    *,
    profile: str,
    root: str | None = None,
) -> engine.Plan:
    """The audit's plan: the gradient family's and the audit's checks of the selected implementations."""
    return engine.Plan(tuple(spec_dirs), tuple(impl), profile, tuple(select), root=root, audit=True)


def run_audit(
    audit_plan: engine.Plan,
    *,
    workers: int = 1,
    timeout: float | None = None,
    on_result: Callable[[Result], None] | None = None,
    cases: Sequence[Any] | None = None,
) -> list[Result]:
    """Every case of ``audit_plan`` through the engine (in worker processes with ``workers`` > 1 or a ``timeout``)."""
    if not audit_plan.audit:
        raise ValueError("a gradient audit's plan needs audit=True (conformance.grad_audit.plan builds one)")
    return engine.run(audit_plan, workers=workers, on_result=on_result, cases=cases, timeout=timeout)


def build_audit_report(
    rows: Iterable[Result] | Iterable[Mapping[str, Any]],
    *,
    profile: str,
    argv: Sequence[str],
    specs: Iterable[EquationSpec] = (),
    missing: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The audit's document: :func:`conformance.report.build_report`'s, marked ``"audit": "gradients"``."""
    report = build_report(list(rows), profile=profile, argv=list(argv), specs=specs, missing=missing)  # type: ignore[arg-type]
    key, value = AUDIT_MARKER
    return {**{k: v for k, v in report.items() if k != "results"}, key: value, "results": report["results"]}


def write_audit(
    rows: Iterable[Result] | Iterable[Mapping[str, Any]],
    out_dir: Path,
    *,
    profile: str,
    argv: Sequence[str],
    specs: Iterable[EquationSpec] = (),
    missing: Iterable[Mapping[str, Any]] = (),
) -> list[Path]:
    """Write :data:`FILES` into ``out_dir`` (each replaced atomically); return their paths. Under GitHub Actions the
    Markdown is appended to the job summary too."""
    report = build_audit_report(rows, profile=profile, argv=argv, specs=specs, missing=missing)
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = render_grad_markdown(report)
    texts = (json.dumps(report, indent=1, allow_nan=False) + "\n", markdown, render_html(report))
    written = [_write_atomic(out_dir / name, text) for name, text in zip(FILES, texts)]
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(markdown if len(markdown.encode()) < 900_000 else markdown.splitlines()[0] + "\n\n(see grad_audit.md)\n")
    return written


def answer(rows: Sequence[Result]) -> str:
    """The one-line answer for ``rows`` (``grad_audit.md``'s first line)."""
    return verdict_line([r.to_json() for r in rows])


def failed(rows: Iterable[Result]) -> bool:
    """Whether any audit row failed or raised (the drivers' exit status is then non-zero)."""
    return bool(engine.failed(rows))


def _write_atomic(path: Path, text: str) -> Path:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


__all__ = ["FILES", "REPORT_DIR", "answer", "build_audit_report", "failed", "plan", "run_audit", "write_audit"]
