"""Reviewed expected failures kept outside the specs: ``--xfail-file FILE``.

A user testing an implementation of their own records its known failures, each with a reason, in a
YAML file instead of editing a spec::

    xfail:
      - spec: rmsnorm
        implementation: my_norm.py:MyNorm     # exactly as given to --impl
        check: oracle
        dtype: float16                        # optional, as device
        reason: eps outside the square root, tracked in issue 12
        strict: false                         # optional: a failure only some seeds find

The same file may declare regions of the domain an implementation given with ``--impl`` does not
support (as an ``unsupported`` entry of a spec's implementation does, see docs/spec-schema.md)::

    unsupported:
      - spec: attention
        implementation: my_attention.py:sdpa
        when: has_mask & is_causal            # sizes, params, has_<optional input>
        raises: [RuntimeError, ValueError]
        reason: SDPA refuses attn_mask together with is_causal

The file is read like a spec (bounded YAML, keys checked, one keyed error per problem, nothing
executed). Entries apply to the implementation they name; :func:`check_entries` refuses one that
names a spec or a check that does not exist, or a condition naming what its spec does not declare.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from conformance.loader.parser import SpecParser
from conformance.model import EquationSpec, UnsupportedEntry, XFailEntry, condition_names
from conformance.safe_yaml import load_yaml, read_text
from conformance.validation import SpecError

MAX_XFAIL_FILE_BYTES = 256 * 1024


Entry = XFailEntry | UnsupportedEntry
_WHO = frozenset({"spec", "implementation"})
_SPEC = frozenset({"spec"})  # an xfail entry may leave out the implementation: it then concerns every one
REGISTRY = "xfails.yaml"  # the repository's reviewed registry, read from a run's root directory when present


def registry_files(root: str | Path) -> list[Path]:
    """The repository's registry (``xfails.yaml`` in ``root``, the directory a run starts from), if there is one."""
    path = Path(root) / REGISTRY
    return [path] if path.is_file() else []


def load_xfail_files(paths: Iterable[str | Path]) -> list[Entry]:
    """Every entry of every file, in order."""
    return [entry for path in paths for entry in load_xfail_file(path)]


def load_xfail_file(path: str | Path) -> list[Entry]:
    """The entries of one ``--xfail-file``: its ``xfail`` list, then its ``unsupported`` list."""
    file = Path(path)
    if not file.is_file():
        raise SpecError(file, "", "expected an xfail file (YAML with a list 'xfail' and/or 'unsupported'); not found")
    document = load_yaml(read_text(file, MAX_XFAIL_FILE_BYTES), file)
    parser = SpecParser(file, document.lines)
    data = parser.mapping(document.data, (), set(), {"xfail", "unsupported"})
    if not data:
        raise parser.fail((), "expected a list 'xfail' and/or a list 'unsupported'")
    entries = parser.typed(data.get("xfail", []), ("xfail",), list, "a list of {spec, implementation, check, reason}")
    out: list[Entry] = []
    for i, body in enumerate(entries):
        path_i = ("xfail", i)
        xfail = parser.xfail(body, path_i, extra_required=_SPEC, extra_optional=frozenset({"implementation"}))
        spec, implementation = _who(parser, body, path_i)
        out.append(XFailEntry(spec, implementation, xfail, str(file), parser.line(path_i)))
    regions = parser.typed(data.get("unsupported", []), ("unsupported",), list, "a list of {spec, implementation, when, ...}")
    for i, body in enumerate(regions):
        path_i = ("unsupported", i)
        region = parser.unsupported(body, path_i, None, extra=_WHO)  # names checked against the spec: check_entries
        spec, implementation = _who(parser, body, path_i)
        out.append(UnsupportedEntry(spec, implementation, region, str(file), parser.line(path_i)))
    return out


def _who(parser: SpecParser, body: Mapping, path: tuple) -> tuple[str, Any]:
    implementation = body.get("implementation")
    named = None if implementation is None else parser.text(implementation, path + ("implementation",))
    return parser.text(body["spec"], path + ("spec",)), named


def check_entries(entries: Iterable[Entry], specs: Mapping[str, EquationSpec], check_names: Mapping[str, set[str]]) -> None:
    """Refuse an entry naming a spec that is not loaded or a check its spec does not generate, or an
    ``unsupported`` condition naming what its spec does not declare."""
    for entry in entries:
        kind = "unsupported" if isinstance(entry, UnsupportedEntry) else "xfail"
        where = f"{kind} (line {entry.line})"
        if entry.spec not in specs:
            raise SpecError(entry.file, where, f"unknown spec {entry.spec!r}; known: {', '.join(sorted(specs))}")
        if isinstance(entry, UnsupportedEntry):
            _check_condition(entry, specs[entry.spec], where)
            continue
        if entry.xfail.check not in check_names[entry.spec]:
            known = ", ".join(sorted(check_names[entry.spec]))
            raise SpecError(entry.file, where, f"spec {entry.spec!r} has no check {entry.xfail.check!r}; its checks: {known}")


def _check_condition(entry: UnsupportedEntry, spec: EquationSpec, where: str) -> None:
    if spec.interface is None:
        raise SpecError(entry.file, where, f"spec {spec.id!r} has no equation: 'unsupported' does not apply")
    allowed = condition_names(spec.symbols, spec.params, spec.inputs)
    unknown = sorted({s.name for s in entry.unsupported.when.free_symbols} - allowed)
    if unknown:
        raise SpecError(
            entry.file,
            where + " when",
            f"undeclared name(s) {', '.join(unknown)} in spec {spec.id!r}; a condition may name: {', '.join(sorted(allowed))}"
            " (string params cannot appear)",
        )
