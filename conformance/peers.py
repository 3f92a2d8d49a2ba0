"""Audits of other libraries' implementations: each runs through the specs, and the report says, per equation,
configuration and option, where it conforms and where it deviates — with the harness's measured evidence, never a
hand-written verdict.

An audit is a :class:`PeerAudit` record (the library, its version, the object wrapped, and its
:class:`PeerEntry` rows), found by ref (``implementations.peers.titans_pytorch:AUDIT``), so a project adds its own
without editing the harness. An entry names a spec, an adapter ref (with the spec's options in brackets, as
``--impl`` takes them) and, where the library supports only part of a spec's domain, ``narrow``: params held to
a sub-range for that entry (``{"start": (0, 0)}``, say), which the report states beside the verdict.

    conformance audit-peers                    # every known audit, into reports/peers/
    conformance audit-peers --audit implementations.peers.titans_pytorch:AUDIT --dtype float64
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance import engine
from conformance.diagnosis import CAUSED_BY, until
from conformance.expr import parse
from conformance.loader import implementation_interface, implementation_unsupported
from conformance.model import Departure
from conformance.refs import resolve
from conformance.report import build_report
from conformance.results import Result
from conformance.selection import build_cases
from conformance.spec import EquationSpec, Param, load_specs

KNOWN_AUDITS = (
    "implementations.peers.titans_pytorch:AUDIT",
    "implementations.peers.torch_nn:AUDIT",
    "implementations.peers.x_transformers:AUDIT",
    "implementations.peers.hf_transformers:AUDIT",
    "implementations.peers.rotary_embedding_torch:AUDIT",
    "implementations.peers.torchtune:AUDIT",
)
DTYPE_ORDER = ("float64", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class PeerEntry:
    """One adapter run through one spec: ``configuration`` names the library's setup (its default, or the
    closest it gets to the paper); ``narrow`` holds params to ``(low, high)`` for this entry only."""

    spec: str
    ref: str
    configuration: str
    narrow: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)
    constraints: tuple[str, ...] = ()  # added to the spec's constraints (the safe parser's language)
    # the calling convention where it differs from the spec's, as a spec's implementation entry declares it
    # (docs/spec-schema.md, Calling conventions): {"init": {"normalized_shape": "D"}, "layouts": {"x": [...]}}
    interface: Mapping[str, Any] = field(default_factory=dict)
    # regions it refuses, as a spec's implementation entry declares them (docs/spec-schema.md, Unsupported regions):
    # ({"when": "is_causal & has_mask", "raises": "RuntimeError", "reason": "..."},); judged to raise there
    unsupported: tuple[Mapping[str, Any], ...] = ()
    # a configuration's departures from the paper, each the adapter with that one alone, and the adapter with none
    # (its ``baseline``): on a failure the harness names those that alone make the example fail (conformance.diagnosis)
    baseline: str | None = None
    departures: tuple[Departure, ...] = ()

    @property
    def variant(self) -> str:
        """The narrowed domain in words (``chunk_size = 1, start = 0, T % chunk_size == 0``), or ``""``."""
        ranges = [f"{k} = {lo}" if lo == hi else f"{k} in {lo}..{hi}" for k, (lo, hi) in self.narrow.items()]
        return ", ".join([*ranges, *self.constraints])


@dataclass(frozen=True)
class PeerAudit:
    """A library's audit: what is wrapped (``wrapped``, at ``version``) and the entries run."""

    library: str
    version: str
    wrapped: str
    entries: tuple[PeerEntry, ...]
    importable: Callable[[], str | None] = lambda: None  # why the library cannot be used here, or None
    notes: tuple[str, ...] = ()


def load_audit(ref: str) -> PeerAudit:
    audit = resolve(ref)
    if not isinstance(audit, PeerAudit):
        raise TypeError(f"{ref} is not a conformance.peers.PeerAudit (got {type(audit).__name__})")
    return audit


def narrowed(spec: EquationSpec, narrow: Mapping[str, tuple[Any, Any]], constraints: Sequence[str] = ()) -> EquationSpec:
    """``spec`` with each named param drawn only in ``(low, high)`` and ``constraints`` added; a name that is not a
    drawn param is refused, as is a constraint naming anything but the spec's symbols and params."""
    params = dict(spec.params)
    for name, (lo, hi) in narrow.items():
        param = params.get(name)
        if param is None or param.default is not None:
            raise ValueError(f"{spec.id}: cannot narrow {name!r}: not a drawn param of the spec")
        if not (param.allows(lo) and param.allows(hi)):
            raise ValueError(f"{spec.id}: {name} = {lo}..{hi} is outside the spec's domain")
        values = tuple(v for v in param.values if lo <= v <= hi) if param.values else ()
        params[name] = (
            dataclasses.replace(param, values=values) if values else Param(name, low=lo, high=hi, integer=param.integer)
        )
    names = set(spec.symbols) | set(params)
    added = []
    for text in constraints:
        parsed = parse(text)
        unknown = sorted(str(n) for n in parsed.free_symbols if str(n) not in names)
        if unknown:
            raise ValueError(f"{spec.id}: constraint {text!r} names {', '.join(unknown)}, not a symbol or param of the spec")
        added.append((text, parsed))
    return dataclasses.replace(spec, params=params, constraints=(*spec.constraints, *added))


def run_entry(
    entry: PeerEntry,
    specs: Mapping[str, EquationSpec],
    *,
    profile: str,
    dtypes: Sequence[str] = DTYPE_ORDER,
    checks: Sequence[str] = (),
) -> list[Result]:
    """The entry's cases (its spec narrowed, its adapter the only implementation), run by the engine; with
    ``checks``, only the checks of those report names (``oracle``, ``invariant:streaming``)."""
    spec = narrowed(specs[entry.spec], entry.narrow, entry.constraints).with_implementations([entry.ref])
    where = f"peer entry {entry.spec} = {entry.ref} ({entry.configuration})"
    declared: dict[str, Any] = {}  # what the entry declares on its implementation, validated as a spec entry's is
    if entry.interface:
        declared["interface"] = implementation_interface(spec, entry.interface, where)
    if entry.unsupported:
        declared["unsupported"] = implementation_unsupported(spec, entry.unsupported, where)
    if entry.departures:
        if entry.baseline is None:
            raise ValueError(f"{where}: departures need the baseline, the adapter with none of them")
        declared.update(baseline=entry.baseline, departures=tuple(entry.departures))
    if declared:
        spec = dataclasses.replace(spec, implementations=(dataclasses.replace(spec.implementations[0], **declared),))
    cases = [c for c in build_cases({spec.id: spec}, {}) if c.dtype in dtypes]
    cases = [c for c in cases if not checks or c.check in checks]
    results = engine.run(engine.Plan(profile=profile), cases=cases)
    extra = {"configuration": entry.configuration, "variant": entry.variant}
    return [dataclasses.replace(r, extra={**r.extra, "peer": extra}) for r in results]


def run_audit(
    audit: PeerAudit,
    *,
    profile: str = "conformance-ci",
    dtypes: Sequence[str] = DTYPE_ORDER,
    select: Iterable[str] = (),
    spec_dirs: Sequence[str] = (),
    on_entry: Callable[[PeerEntry, list[Result]], None] | None = None,
) -> list[tuple[PeerEntry, list[Result]]]:
    """Every entry whose spec id, ref or configuration contains all of ``select``."""
    specs = load_specs(list(spec_dirs))
    wanted = [e for e in audit.entries if all(s in f"{e.spec} {e.ref} {e.configuration}" for s in select)]
    done = []
    for entry in wanted:
        results = run_entry(entry, specs, profile=profile, dtypes=dtypes)
        done.append((entry, results))
        if on_entry:
            on_entry(entry, results)
    return done


# -- the report -------------------------------------------------------------------------------------
def verdict(rows: Sequence[Result]) -> str:
    """One cell: ``conforms`` (every row passed), ``deviates`` / ``error`` with each failing check's evidence,
    ``cannot be tested`` (every row skipped, with the reason)."""
    judged = [r for r in rows if r.outcome != "skipped"]
    if not judged:
        reasons = sorted({r.message or "skipped" for r in rows})
        return "cannot be tested: " + "; ".join(reasons) if rows else "not run"
    bad = [r for r in judged if r.outcome in ("failed", "error")]
    if not bad:
        return f"conforms ({len(judged)} checks)"
    kind = "deviates" if any(r.outcome == "failed" for r in bad) else "error"
    parts = [f"{r.check}: {_evidence(r)}" for r in bad]
    return f"{kind} — " + "; ".join(parts)


def _evidence(r: Result) -> str:
    text = (r.detail or r.message or r.error or "").strip().splitlines()
    first = text[0] if text else r.outcome
    if r.falsifying_example:
        example = r.falsifying_example
        sizes = example.get("sizes", {})
        params = {k: v for k, v in example.get("params", {}).items()}
        first += f" (at {_kv(sizes)}; {_kv(params)})"
    return first[:400]


def _kv(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())


def render_markdown(audit: PeerAudit, done: Sequence[tuple[PeerEntry, list[Result]]], *, profile: str) -> str:
    """Per spec (equation): a row per configuration × option × variant, a column per dtype (CPU)."""
    lines = [
        f"# {audit.library} {audit.version} against the specs",
        "",
        f"Wrapped: `{audit.wrapped}`. Every verdict below is the harness's (`conformance audit-peers`, profile "
        f"`{profile}`): *conforms* means every check of the spec passed at that dtype on the CPU; *deviates* lists "
        "each failing check with its measured error against the derived tolerance and the falsifying example "
        f"(shrunk); *error* an exception the adapter raised. Rows and repro snippets: `{_slug(audit.library)}.json`.",
        "",
    ]
    lines += [f"- {n}" for n in audit.notes]
    by_spec: dict[str, list[tuple[PeerEntry, list[Result]]]] = {}
    for entry, results in done:
        by_spec.setdefault(entry.spec, []).append((entry, results))
    lines += ["", "## Summary", "", "Read off the rows below: where every check passed at every dtype on the CPU.", ""]
    for spec_id, items in by_spec.items():
        good = [e for e, rs in items if all(verdict(_cpu(rs, d)).startswith("conforms") for d in DTYPE_ORDER if _cpu(rs, d))]
        where = "; ".join(f"{e.configuration} `{e.ref.rsplit(':', 1)[-1]}` on {e.variant or 'the spec’s domain'}" for e in good)
        lines.append(f"- `{spec_id}`: conforms in {len(good)} of {len(items)} cells" + (f" — {where}" if where else ""))
    for spec_id, items in by_spec.items():
        first = next((r for _, rs in items for r in rs), None)
        title = f"{first.title} (Eq. {first.equation})" if first else spec_id
        lines += ["", f"## `{spec_id}`: {title}", "", "| configuration | adapter | domain | " + " | ".join(DTYPE_ORDER) + " |"]
        lines.append("|" + " --- |" * (3 + len(DTYPE_ORDER)))
        for entry, results in items:
            cells = []
            for dtype in DTYPE_ORDER:
                rows = _cpu(results, dtype)
                cells.append(verdict(rows).replace("|", "\\|") if rows else "not run")
            ref = entry.ref.rsplit(":", 1)[-1]
            lines.append(f"| {entry.configuration} | `{ref}` | {entry.variant or 'the spec’s'} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cpu(rows: Sequence[Result], dtype: str) -> list[Result]:
    return [r for r in rows if r.dtype == dtype and r.device == "cpu"]


def _slug(library: str) -> str:
    return library.lower().replace("-", "_").replace(" ", "_")


def write_audit(
    audit: PeerAudit, done: Sequence[tuple[PeerEntry, list[Result]]], out_dir: Path, *, profile: str, argv: list[str]
) -> list[Path]:
    """``<library>.json`` (the results schema: every row, with its entry in ``extra.peer``) and ``<library>.md``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [r for _, results in done for r in results]
    report = build_report(rows, profile=profile, argv=argv)
    report["peer"] = {"library": audit.library, "version": audit.version, "wrapped": audit.wrapped}
    slug = _slug(audit.library)
    json_path, md_path = out_dir / f"{slug}.json", out_dir / f"{slug}.md"
    json_path.write_text(json.dumps(report, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    md_path.write_text(render_markdown(audit, done, profile=profile), encoding="utf-8")
    return [json_path, md_path]


# -- the table over every library ----------------------------------------------------------------------
CAUSES = (  # a failing row's words that name its cause (the diagnoses of conformance.checks), most specific first
    (CAUSED_BY, ";"),  # the declared departures that alone make the example fail (conformance.diagnosis)
    ("matches the reading: ", ";"),
    ("the error is within float32's precision on these inputs: ", ";"),
    ("overflow: ", " — "),  # the append_cache machine's overflow verdict (no capacity error, a bare AssertionError)
)
REFUSED = "NotImplementedError: "  # an adapter's refusal of what its library cannot be asked (its reason follows)
_ONLY_WHEN = re.compile(r"fails only when (.+?) \(changing it")  # the shrinker's one-parameter finding
_OFF_BY = re.compile(r"^(?:(?P<name>[^:|]+): )?max \|error\| (?P<err>\S+) > tolerance .*?\[(?P<ratio>\S+)× the tolerance")
_BROKEN = re.compile(r"^(?P<law>.+?): (?:.*?: )?\|lhs − rhs\| (?P<err>\S+) > tolerance")


def evidence(text: str) -> str:
    """A failing row's measured evidence in a few words, where no diagnosis names a cause: the one parameter the
    failure needs (``fails only when base = 500000``), the error against the tolerance (``y: off by 0.23, 2.1e+14×
    the tolerance``), the law an invariant breaks, else the message's first clause.

    >>> evidence("y: max |error| 0.2253 > tolerance 1e-15 = 2×0 (…) [2.15e+14× the tolerance; 1.2 of …] at element (0,)")
    'y: off by 0.2253, 2.15e+14× the tolerance'
    >>> evidence("sin_table: max |error| 0.013 > tolerance 0.011 [1.17× …]; fails only when base = 500000 (changing it, …)")
    'fails only when base = 500000'
    """
    first = text.strip().splitlines()[0] if text.strip() else ""
    if first.startswith("at ") and "(example: " in first and "): " in first:
        first = first.split("): ", 1)[1]  # the falsifying example's sizes come first in a pattern check's message
    only = _ONLY_WHEN.search(first)
    if only:
        return f"fails only when {only.group(1)}"
    off = _OFF_BY.search(first)
    if off:
        name = f"{off['name']}: " if off["name"] else ""
        return f"{name}off by {off['err']}, {off['ratio']}× the tolerance"
    broken = _BROKEN.search(first)
    if broken:
        return f"breaks {broken['law'][:120]} (by {broken['err']})"
    return first.split(" (at ", 1)[0][:160]


def cause(rows: Sequence[Mapping[str, Any]]) -> str:
    """A cell of the table, read off one (entry, dtype)'s CPU rows: ``conforms``, ``deviates — <cause in words>``
    (the diagnosis a failing row carries, else its measured :func:`evidence`, with the failing checks), ``error —
    <the exception>``, ``cannot be tested — <why>`` for a check the adapter refuses (``NotImplementedError`` with
    its reason, beside the verdict of the others), or ``cannot be tested: <why>`` where every check was skipped."""
    judged = [r for r in rows if r["outcome"] != "skipped"]
    if not judged:
        return "cannot be tested: " + "; ".join(sorted({r.get("message") or "skipped" for r in rows})) if rows else "not run"
    refused = [r for r in judged if r["outcome"] == "error" and _first_line(r).startswith(REFUSED)]
    failed = [r for r in judged if r["outcome"] == "failed"]
    errors = [r for r in judged if r["outcome"] == "error" and r not in refused]
    parts = []
    if not failed and not errors and len(refused) < len(judged):
        parts.append(f"conforms ({len(judged) - len(refused)} checks)")
    if failed:
        parts.append(_deviation(failed))
    if errors:
        parts.append("error — " + _grouped((_first_line(r)[:160], r["check"]) for r in errors))
    if refused:
        parts.append("cannot be tested — " + _grouped((_first_line(r).removeprefix(REFUSED)[:200], r["check"]) for r in refused))
    return "; ".join(parts)


def _deviation(failed: Sequence[Mapping[str, Any]]) -> str:
    """``deviates — <the causes the rows' diagnoses name, else their measured evidence> (<checks>)``."""
    words: list[str] = []
    for r in failed:
        for text in (r.get("detail") or "", r.get("message") or ""):
            found = next((until(text.split(start, 1)[1], end) for start, end in CAUSES if start in text), "")
            said = found.split(" (at ", 1)[0].strip()
            if said:
                if said not in words:
                    words.append(said)
                break
    if not words:  # no diagnosis: the measured evidence of the first two failing checks, the oracle's first
        ordered = sorted(failed, key=lambda r: r["check"] != "oracle")
        found = [evidence(r.get("message") or r.get("detail") or "") for r in ordered]
        words = list(dict.fromkeys(w for w in found if w))[:2]
    checks = ", ".join(sorted({r["check"] for r in failed}))
    return f"deviates — {'; '.join(words)} ({checks})" if words else f"deviates — {checks}"


def _first_line(r: Mapping[str, Any]) -> str:
    return (r.get("message") or r.get("error") or "raised").splitlines()[0].split(" (at ", 1)[0]


def _grouped(items: Iterable[tuple[str, str]]) -> str:
    """``what (check, check); what (check)``: the checks of each distinct text, in first-seen order."""
    by: dict[str, list[str]] = {}
    for what, check in items:
        by.setdefault(what, []).append(check)
    return "; ".join(f"{what} ({', '.join(sorted(set(c)))})" for what, c in by.items())


def render_index(reports: Sequence[Mapping[str, Any]]) -> str:
    """One table over every audited library: library × object × spec, a column per dtype (CPU), each cell the
    harness's verdict with the cause in words (:func:`cause`); the versions tested in the first column."""
    lines = [
        "# Peer implementations against the specs",
        "",
        "Every cell is read off the rows of `<library>.json` beside this file (`conformance audit-peers`): *conforms* — "
        "every check of the spec passed at that dtype on the CPU; *deviates* — with the cause in the harness's words "
        "(the reading of the spec it matches instead, or the precision it computes in) and the failing checks; "
        "*error* — what it raised; *cannot be tested* — why. Details, measured evidence and repros: `<library>.md`.",
        "",
        "| library | object | configuration | spec | " + " | ".join(DTYPE_ORDER) + " |",
        "|" + " --- |" * (4 + len(DTYPE_ORDER)),
    ]
    for report in reports:
        peer = report.get("peer", {})
        library = f"{peer.get('library', '?')} {peer.get('version', '')}".strip()
        if report.get("skipped"):  # a library that cannot be used here: its entries, and why
            why = f"cannot be tested: {report['skipped']}"
            for e in report.get("entries", []):
                row_cells = [library, f"`{str(e.get('ref', '')).rsplit(':', 1)[-1]}`", e.get("configuration", ""),
                             f"`{e.get('spec', '')}`", *[why] * len(DTYPE_ORDER)]
                lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row_cells) + " |")
            continue
        cells: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
        for row in report.get("results", []):
            if row.get("family") in ("fact", "agreement"):
                continue  # the spec's own checks (its facts, its two oracles), not the library's
            entry = row.get("peer") or {}  # the row's PeerEntry (Result.extra, written at the row's top level)
            domain = entry.get("variant") or ""
            key = (row["implementation"], entry.get("configuration", "") + (f" on {domain}" if domain else ""), row["spec"])
            cells.setdefault(key, []).append(row)
        for (impl, configuration, spec_id), rows in cells.items():
            verdicts = [cause([r for r in rows if r["dtype"] == d and r["device"] == "cpu"]) for d in DTYPE_ORDER]
            row_cells = [library, f"`{impl.rsplit(':', 1)[-1]}`", configuration, f"`{spec_id}`", *verdicts]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row_cells) + " |")
    return "\n".join(lines) + "\n"


def write_skipped(audit: PeerAudit, reason: str, out_dir: Path) -> Path | None:
    """Where ``audit``'s library cannot be used here: ``<library>.json`` saying why (its entries listed), for the
    table — unless a report of it is already there, which is kept (a machine without the library loses nothing)."""
    path = out_dir / f"{_slug(audit.library)}.json"
    if path.exists():
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = [{"spec": e.spec, "ref": e.ref, "configuration": e.configuration} for e in audit.entries]
    stub = {"peer": {"library": audit.library, "version": audit.version, "wrapped": audit.wrapped}, "skipped": reason,
            "entries": entries, "results": []}
    path.write_text(json.dumps(stub, indent=1) + "\n", encoding="utf-8")
    return path


def write_index(out_dir: Path) -> Path:
    """``README.md`` in ``out_dir``: :func:`render_index` over every ``<library>.json`` there."""
    reports = []
    for path in sorted(out_dir.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and "peer" in data:
            reports.append(data)
    index = out_dir / "README.md"
    index.write_text(render_index(reports), encoding="utf-8")
    return index


__all__ = [
    "CAUSES", "KNOWN_AUDITS", "Departure", "PeerAudit", "PeerEntry", "cause", "evidence", "load_audit", "narrowed",
    "render_index", "render_markdown", "run_audit", "verdict", "write_audit", "write_index", "write_skipped",
]
