"""The ``conformance`` command: a driver of the engine, as the pytest plugin is another.

- ``conformance run [--impl SPEC=REF]... [--spec-dir DIR]... [--xfail-file FILE]... [--report-dir DIR]
  [--hypothesis-profile NAME] [-n N] [--timeout S] [-k TEXT]`` — run the conformance cases through :mod:`conformance.engine` (no
  pytest), write ``conformance.json`` and ``conformance.md``, exit 1 if any check failed or raised. A case whose worker
  crashes or that runs past ``--timeout`` is an error row and the run goes on; an interrupted run (^C, SIGTERM) writes
  the rows it has, lists the cases without one as ``missing``, and exits 130. Works from any
  directory: the shipped specs are found from the package, relative paths from the working directory.
- ``conformance new-spec FILE --id ID --title T --equation N [--paper-title --authors --year --arxiv]`` —
  scaffold a loadable entry with commented fields (and a stub implementation beside it) into a new or
  existing paper file; asks for missing fields on a terminal; never overwrites without asking.
- ``conformance list [--spec-dir DIR]... [--report-dir DIR]`` — papers, equations and implementations,
  with what the last report in ``--report-dir`` says of each (failing ones first in each line).
- ``conformance audit-peers [--audit REF]... [--report-dir DIR] [--dtype D]... [-k TEXT]...`` — run other libraries'
  implementations through the specs (:mod:`conformance.peers`; default: every known audit) and write
  ``<library>.json`` and ``<library>.md`` per library into ``--report-dir`` (default ``reports/peers``); a library
  that is not installed is skipped with the reason. Exit 0: deviations are findings, not failures.
- ``conformance audit-grads [--impl SPEC=REF]... [--spec-dir DIR]... [--report-dir DIR] [-k TEXT]... [-n N] [--timeout S]
  [--hypothesis-profile NAME]`` — the gradient audit (:mod:`conformance.grad_audit`): writes ``grad_audit.json``,
  ``.md`` (its first line: safe to train through, or the first defect in plain words) and ``.html`` into
  ``--report-dir`` (default ``reports/grad_audit``); exit 1 if any audit check failed or raised.
- ``conformance report diff BASE.json HEAD.json [--drift F] [--fail-on-drift] [--format md|json]`` — regressions,
  fixes, new and removed rows and error drift between two reports (:mod:`conformance.report.compare`); exit 1 on
  regressions (and on drift with ``--fail-on-drift``). ``conformance report merge A.json B.json ... -o OUT.json`` —
  one report from shards, refusing other schema versions and conflicting rows.
- ``conformance validate [PATH...] [--resolve]`` — load and check spec files (default: the shipped
  specs) and print one line per equation; exit 1 with the spec error otherwise. It imports neither torch
  nor any implementation; ``--resolve`` also imports every implementation the specs name.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "run":
        return _run(args, list(sys.argv[1:] if argv is None else argv))
    if args.command == "new-spec":
        return _new_spec(args)
    if args.command == "report":
        return _report(args)
    if args.command == "audit-peers":
        return _audit_peers(args, list(sys.argv[1:] if argv is None else argv))
    if args.command == "audit-grads":
        return _audit_grads(args, list(sys.argv[1:] if argv is None else argv))
    if args.command == "list":
        return _list(args.spec_dir, Path.cwd() / args.report_dir)
    return _validate(args.paths, resolve=args.resolve)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="conformance", description="Paper-to-code conformance harness for PyTorch.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the conformance suite (the engine, without pytest) and write the report")
    run.add_argument(
        "--impl",
        action="append",
        default=[],
        metavar="SPEC_ID=MODULE:ATTR",
        help="test only these implementations (module:attr or path/file.py:attr, [name=value,...]); repeatable",
    )
    run.add_argument(
        "--spec-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="also load the *.yaml specs in DIR (or one spec file); repeatable",
    )
    run.add_argument(
        "--xfail-file",
        action="append",
        default=[],
        metavar="FILE",
        help="reviewed expected failures of your implementations (YAML; see docs/spec-schema.md)",
    )
    run.add_argument(
        "--report-dir",
        default="reports/latest",
        metavar="DIR",
        help="where conformance.json, conformance.md and junit.xml are written (default: reports/latest)",
    )
    run.add_argument(
        "--hypothesis-profile",
        default=None,
        metavar="NAME",
        help="conformance-dev (default), conformance-ci (default when CI is set) or conformance-thorough",
    )
    run.add_argument(
        "--verdict-only",
        action="store_true",
        help="no shrinking: a failing check reports its first failing example (fast feedback, same verdicts)",
    )
    run.add_argument(
        "--baseline",
        metavar="REPORT.json",
        help="a report to compare with (e.g. reports/baseline/conformance.json): its regressions lead conformance.md",
    )
    run.add_argument("-n", "--workers", type=int, default=1, metavar="N", help="run cases in N worker processes (default 1)")
    run.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="S",
        help="seconds a case may run; past it the case is an error row and the run goes on (cases run in worker processes)",
    )
    run.add_argument(
        "-k",
        dest="select",
        action="append",
        default=[],
        metavar="TEXT",
        help="only cases whose id contains TEXT (repeatable: all must match)",
    )
    run.add_argument("-q", "--quiet", action="store_true", help="print only failures and the summary")
    new = sub.add_parser("new-spec", help="scaffold an equation entry (and a stub implementation) into a paper file")
    new.add_argument("file", help="the paper's spec file (created if missing, else the entry is appended)")
    new.add_argument("--id", dest="spec_id", help="the entry's id (lower case, e.g. layer_norm)")
    new.add_argument("--title", help="the equation's title")
    new.add_argument("--equation", help="the paper's own equation number")
    new.add_argument("--paper-title", help="a new file: the paper's title")
    new.add_argument("--authors", help="a new file: the authors, comma-separated")
    new.add_argument("--year", type=int, help="a new file: the year")
    new.add_argument("--arxiv", help="a new file: the arXiv id")
    new.add_argument("--implementation", default="", help="the stub's file name beside the spec (default <id>_impl.py)")
    listing = sub.add_parser("list", help="papers, equations and implementations, with what the last report says of each")
    listing.add_argument("--spec-dir", action="append", default=[], metavar="DIR", help="also list the specs in DIR; repeatable")
    listing.add_argument(
        "--report-dir",
        default="reports/latest",
        metavar="DIR",
        help="where the last conformance.json is (default: reports/latest)",
    )
    report = sub.add_parser("report", help="compare or merge conformance.json reports")
    rsub = report.add_subparsers(dest="report_command", required=True)
    rdiff = rsub.add_parser("diff", help="regressions, fixes, new/removed rows and error drift from BASE to HEAD")
    rdiff.add_argument("base")
    rdiff.add_argument("head")
    rdiff.add_argument("--drift", type=float, default=4.0, help="error growth factor counted as drift (default 4)")
    rdiff.add_argument("--fail-on-drift", action="store_true", help="exit 1 on error drift too")
    rdiff.add_argument("--format", choices=("md", "json"), default="md")
    rmerge = rsub.add_parser("merge", help="one report from several (shards, CPU and CUDA runs)")
    rmerge.add_argument("reports", nargs="+")
    rmerge.add_argument("-o", "--output", required=True, metavar="OUT.json")
    peers = sub.add_parser("audit-peers", help="run other libraries' implementations through the specs; per-library reports")
    peers.add_argument("--audit", action="append", default=[], metavar="REF", help="a PeerAudit ref (default: every known audit)")
    peers.add_argument("--report-dir", default="reports/peers", metavar="DIR", help="where the reports go")
    peers.add_argument("--dtype", action="append", default=[], metavar="D", help="only these dtypes (default: all four)")
    peers.add_argument("-k", dest="select", action="append", default=[], metavar="TEXT", help="only entries matching TEXT")
    peers.add_argument("--hypothesis-profile", default="conformance-ci", metavar="NAME", help="default conformance-ci")
    _audit_grads_parser(sub)
    validate = sub.add_parser("validate", help="check spec files: schema, meaning, limits (imports no implementation)")
    validate.add_argument("paths", nargs="*", help="spec files or directories (default: the shipped specs)")
    validate.add_argument("--resolve", action="store_true", help="also import every implementation the specs name")
    validate.add_argument("--only", action="store_true", help=argparse.SUPPRESS)  # the former flag: now the default
    return parser


def _report(args: argparse.Namespace) -> int:
    import json

    from conformance.report import ReportError, compare, read_report, render_markdown
    from conformance.report.html import render_html

    try:
        if args.report_command == "diff":
            (base_header, base), (head_header, head) = read_report(Path(args.base)), read_report(Path(args.head))
            d = compare.diff(base, head, drift=args.drift)
            randomized = not all(h.get("hypothesis", {}).get("derandomize", False) for h in (base_header, head_header))
            if args.format == "json":
                sys.stdout.write(json.dumps(d.to_json(), indent=1) + "\n")
            else:
                sys.stdout.write(compare.render_diff(d, args.base, args.head, randomized=randomized))
            return d.exit_status(args.fail_on_drift)
        document, _ = compare.merge([Path(p) for p in args.reports])
    except (ReportError, ValueError) as exc:
        print(f"conformance report: {exc}", file=sys.stderr)
        return 2
    out = compare.write_json(document, Path(args.output))
    out.with_suffix(".md").write_text(render_markdown(document), encoding="utf-8")
    out.with_suffix(".html").write_text(render_html(document), encoding="utf-8")
    print(f"written: {out} ({document['summary']['rows']} rows from {len(args.reports)} reports)")
    return 0


def _audit_peers(args: argparse.Namespace, argv: list[str]) -> int:
    from conformance import peers, profiles

    if args.hypothesis_profile not in profiles.PROFILES:
        print(f"conformance audit-peers: unknown profile {args.hypothesis_profile!r}", file=sys.stderr)
        return 2
    dtypes = tuple(args.dtype) or peers.DTYPE_ORDER
    skipped: list[tuple[peers.PeerAudit, str]] = []
    for ref in args.audit or peers.KNOWN_AUDITS:
        audit = peers.load_audit(ref)
        missing = audit.importable()
        if missing:
            print(f"skipped  {audit.library}: {missing}")
            skipped.append((audit, missing))
            continue

        def show(entry: peers.PeerEntry, results: list) -> None:
            cells = {d: peers.verdict([r for r in results if r.dtype == d and r.device == "cpu"]) for d in dtypes}
            print(f"{entry.spec} {entry.ref.rsplit(':', 1)[-1]} {entry.variant}")
            for dtype, cell in cells.items():
                print(f"    {dtype}: {cell[:160]}")

        done = peers.run_audit(audit, profile=args.hypothesis_profile, dtypes=dtypes, select=args.select, on_entry=show)
        for path in peers.write_audit(audit, done, Path.cwd() / args.report_dir, profile=args.hypothesis_profile, argv=argv):
            print(f"written: {path}")
    out = Path.cwd() / args.report_dir
    if out.is_dir():  # some audit ran: the table lists the libraries that could not, and why
        for audit, reason in skipped:
            stub = peers.write_skipped(audit, reason, out)
            if stub:
                print(f"written: {stub}")
        print(f"written: {peers.write_index(out)}")
    return 0


def _audit_grads_parser(sub: Any) -> None:
    """``conformance audit-grads``: its options (those of ``run`` that apply to an audit)."""
    grads = sub.add_parser("audit-grads", help="the gradient audit: is it safe to train through these implementations?")
    grads.add_argument("--impl", action="append", default=[], metavar="SPEC_ID=MODULE:ATTR",
                       help="audit only these implementations (as for run); repeatable")
    grads.add_argument("--spec-dir", action="append", default=[], metavar="DIR", help="also load the specs in DIR; repeatable")
    grads.add_argument("--report-dir", default="reports/grad_audit", metavar="DIR",
                       help="where grad_audit.json, .md and .html are written (default: reports/grad_audit)")
    grads.add_argument("--hypothesis-profile", default=None, metavar="NAME",
                       help="as for run (default: conformance-dev, CI: conformance-ci)")
    grads.add_argument("-n", "--workers", type=int, default=1, metavar="N", help="run cases in N worker processes (default 1)")
    grads.add_argument("--timeout", type=float, default=None, metavar="S", help="seconds a case may run (an error row past it)")
    grads.add_argument("-k", dest="select", action="append", default=[], metavar="TEXT",
                       help="only cases whose id contains TEXT (repeatable: all must match)")
    grads.add_argument("-q", "--quiet", action="store_true", help="print only defects and the answer")


def _audit_grads(args: argparse.Namespace, argv: list[str]) -> int:
    """Plan, run and write the gradient audit; exit 1 if any audit row failed or raised, 2 on bad options."""
    from conformance import grad_audit, profiles
    from conformance.refs import ImplementationError
    from conformance.validation import SpecError

    profile = profiles.choose(args.hypothesis_profile)
    problem = _audit_option_problem(args, profile)
    plan = grad_audit.plan(args.impl, args.spec_dir, args.select, profile=profile, root=str(Path.cwd()))
    try:
        cases = plan.cases() if problem is None else []
    except (SpecError, ImplementationError, ValueError) as exc:
        problem = str(exc)
    if problem is None and not cases:
        problem = "no gradient audit case matches (no differentiable spec among the selected implementations and -k)"
    if problem is not None:
        print(f"conformance audit-grads: {problem}", file=sys.stderr)
        return 2
    results, stopped, missing = _run_printing(
        lambda show: grad_audit.run_audit(plan, workers=args.workers, timeout=args.timeout, on_result=show, cases=cases),
        cases,
        args.quiet,
    )
    specs = list({c.spec.id: c.spec for c in cases}.values())
    written = grad_audit.write_audit(results, Path.cwd() / args.report_dir, profile=profile, argv=["conformance", *argv],
                                     specs=specs, missing=missing)
    print(grad_audit.answer(results))
    for path in written:
        print(f"written: {path}")
    if stopped:
        return 130 if stopped == INTERRUPTED else 2
    return 1 if grad_audit.failed(results) else 0


def _audit_option_problem(args: argparse.Namespace, profile: str) -> str | None:
    from conformance import profiles

    if profile not in profiles.PROFILES:
        return f"unknown profile {profile!r}; known: {', '.join(profiles.PROFILES)}"
    if args.workers < 1:
        return "-n must be at least 1"
    if args.timeout is not None and args.timeout <= 0:
        return f"--timeout must be a positive number of seconds, got {args.timeout:g}"
    return None


def _run(args: argparse.Namespace, argv: list[str]) -> int:
    from conformance import engine, profiles
    from conformance.refs import ImplementationError
    from conformance.report import write_reports
    from conformance.report.xfails import xfail_statuses
    from conformance.validation import SpecError

    profile = profiles.choose(args.hypothesis_profile)
    if profile not in profiles.PROFILES:
        print(f"conformance run: unknown profile {profile!r}; known: {', '.join(profiles.PROFILES)}", file=sys.stderr)
        return 2
    plan = engine.Plan(
        tuple(args.spec_dir), tuple(args.impl), profile, tuple(args.select), tuple(args.xfail_file), args.verdict_only,
        root=str(Path.cwd()),  # its xfails.yaml, the repository's registry, when there is one
    )
    try:
        cases = plan.cases()
        entries = plan.xfail_entries()
    except (SpecError, ImplementationError, ValueError) as exc:
        print(f"conformance run: {exc}", file=sys.stderr)
        return 2
    if args.workers < 1:
        print("conformance run: -n must be at least 1", file=sys.stderr)
        return 2
    if args.timeout is not None and args.timeout <= 0:
        print(f"conformance run: --timeout must be a positive number of seconds, got {args.timeout:g}", file=sys.stderr)
        return 2

    results, stopped, missing = _run_printing(
        lambda show: engine.run(plan, workers=args.workers, on_result=show, cases=cases, timeout=args.timeout),
        cases,
        args.quiet,
    )
    out = Path.cwd() / args.report_dir
    baseline = Path(args.baseline) if args.baseline else None
    specs = list({c.spec.id: c.spec for c in cases}.values())
    written = write_reports(
        results,
        out,
        profile=profile,
        argv=["conformance", *argv],
        verdict_only=args.verdict_only,
        specs=specs,
        missing=missing,
        xfails=xfail_statuses(specs, entries, results),
        baseline=baseline,
    )
    counts = {o: sum(1 for r in results if r.outcome == o) for o in ("passed", "failed", "error", "skipped", "xfailed")}
    print(f"{len(results)} rows: " + ", ".join(f"{n} {o}" for o, n in counts.items() if n))
    if stopped:
        print(f"{len(missing)} of {len(cases)} cases have no row ({stopped}); the report lists them as missing")
    for path in written:
        print(f"written: {path}")
    if stopped:
        return 130 if stopped == INTERRUPTED else 2
    return 1 if engine.failed(results) else 0


INTERRUPTED = "not run: the run was interrupted"


def _run_printing(
    run: Callable[[Callable[[Any], None]], list[Any]], cases: list, quiet: bool
) -> tuple[list[Any], str | None, list[dict[str, str]]]:
    """``run(show)`` with ``show`` printing each row as it arrives (failures always, the rest unless ``quiet``):
    its rows, why it stopped before its last case (^C or SIGTERM, a worker that cannot start) or ``None``, and
    the cases left without a row (the report's ``missing``)."""
    from conformance import engine

    collected: list[Any] = []

    def show(result: Any) -> None:
        collected.append(result)
        if not result.ok or not quiet:
            line = f"{result.outcome.upper():8} {' '.join(result.key)}"
            print(line + (f"\n         {result.message.splitlines()[0]}" if result.message and not result.ok else ""), flush=True)

    stopped = None
    with _sigterm_as_interrupt():
        try:
            results = run(show)
        except KeyboardInterrupt:
            results, stopped = collected, INTERRUPTED
        except engine.WorkerError as exc:
            results, stopped = collected, f"not run: {exc}"
    return results, stopped, (_missing(cases, results, stopped) if stopped else [])


def _missing(cases: list, results: list, reason: str) -> list[dict[str, str]]:
    """The report's ``missing`` entries: the planned cases that produced no row, and why."""
    done = {r.key for r in results}
    keys = ("spec", "implementation", "device", "dtype", "check")
    entries = [{k: c.identity()[k] for k in keys} for c in cases]
    return [{**e, "reason": reason} for e in entries if tuple(e.values()) not in done]


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While running: SIGTERM (a CI runner cancelling the job) stops the run as ^C does, so the report is written."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _new_spec(args: argparse.Namespace) -> int:
    """Scaffold an entry; missing flags are asked for on a terminal, else named in one error."""
    from conformance.scaffold import Request, ScaffoldError, scaffold
    from conformance.validation import SpecError

    interactive = sys.stdin.isatty()
    file = Path(args.file)
    needed = ["spec_id", "title", "equation"] + ([] if file.exists() else ["paper_title", "authors", "year", "arxiv"])
    values = {name: getattr(args, name) for name in needed}
    for name, value in values.items():
        if value in (None, "") and interactive:
            answer = input(f"{name.replace('_', ' ')}: ").strip()
            values[name] = int(answer) if name == "year" and answer.isdigit() else answer
    missing = [f"--{name.replace('_', '-')}".replace("--spec-id", "--id") for name, v in values.items() if v in (None, "")]
    if missing:
        print(f"conformance new-spec: missing {', '.join(missing)}", file=sys.stderr)
        return 2
    authors = tuple(a.strip() for a in str(values.get("authors") or "").split(",") if a.strip())
    request = Request(
        file,
        values["spec_id"],
        values["title"],
        str(values["equation"]),
        values.get("paper_title"),
        authors,
        values.get("year"),
        values.get("arxiv"),
        args.implementation,
    )
    confirm = (lambda question: input(question).strip().lower() in ("y", "yes")) if interactive else None
    try:
        written = scaffold(request, confirm=confirm)
    except (ScaffoldError, SpecError) as exc:
        print(f"conformance new-spec: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"written: {path}")
    print(f"next: edit the entry, then `conformance validate {file}`")
    return 0


def _list(spec_dirs: list[str], report_dir: Path) -> int:
    """Each paper, its equations and their implementations, with the outcomes the last report recorded."""
    from conformance.report import ReportError, read_report
    from conformance.spec import load_specs
    from conformance.validation import SpecError

    try:
        specs = load_specs(spec_dirs)
    except SpecError as exc:
        print(f"invalid spec: {exc}", file=sys.stderr)
        return 1
    report_path = report_dir / "conformance.json"
    outcomes: dict[tuple[str, str], dict[str, int]] = {}
    if report_path.exists():
        try:
            header, results = read_report(report_path)
        except ReportError as exc:
            print(f"conformance list: {exc}", file=sys.stderr)
            return 1
        for r in results:
            counts = outcomes.setdefault((r.spec, r.implementation), {})
            counts[r.outcome] = counts.get(r.outcome, 0) + 1
        print(f"last report: {report_path} ({header.get('created', 'undated')}, {len(results)} rows)")
    else:
        print(f"last report: none in {report_dir}")
    papers: dict[str, list] = {}
    for spec in specs.values():
        papers.setdefault(spec.paper.short, []).append(spec)
    for paper, entries in papers.items():
        print(f"\n{paper}")
        for spec in entries:
            print(f"  {spec.id}: Eq. {spec.equation}: {spec.title} ({_shown(spec.file)}:{spec.line})")
            declared = [impl.id for impl in spec.implementations]
            reported = sorted(i for s, i in outcomes if s == spec.id and i not in declared and not _per_spec(i))
            for impl_id in declared + reported:
                origin = "" if impl_id in declared else " (not in the spec: from the report, e.g. --impl)"
                print(f"    {impl_id}{origin}: {_summary(outcomes.get((spec.id, impl_id)))}")
    return 0


def _per_spec(implementation: str) -> bool:
    """The rows of per-spec checks (facts, the oracle cross-check) name no implementation under test."""
    return implementation == "sympy" or implementation.startswith("reference:")


def _shown(file: str) -> str:
    try:
        return Path(file).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return file


def _summary(counts: dict[str, int] | None) -> str:
    if not counts:
        return "not in the last report"
    order = ("failed", "error", "xfailed", "passed", "skipped")
    text = ", ".join(f"{counts[o]} {o}" for o in order if counts.get(o))
    return ("FAILING: " if counts.get("failed") or counts.get("error") else "") + text


def _validate(paths: list[str], *, resolve: bool) -> int:
    from conformance.spec import load_specs
    from conformance.validation import SpecError

    try:
        specs = load_specs(paths, default=not paths)
        if resolve:
            from conformance.refs import resolve_implementations

            resolve_implementations(list(specs.values()))
    except SpecError as exc:
        print(f"invalid spec: {exc}", file=sys.stderr)
        return 1
    for spec in specs.values():
        impls = ", ".join(i.ref for i in spec.implementations)
        print(
            f"{spec.id}: {spec.paper.title} Eq. {spec.equation} — {len(spec.invariants)} invariants, "
            f"{len(spec.facts)} facts; implementations: {impls} ({spec.file}:{spec.line})"
        )
    print(f"{len(specs)} spec(s) valid" + (" (implementations resolved)" if resolve else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
