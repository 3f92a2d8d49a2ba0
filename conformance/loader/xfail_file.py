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

The file is read like a spec (bounded YAML, keys checked, one keyed error per problem, nothing
executed). Entries apply to the implementation they name; :func:`check_entries` refuses one that
names a spec or a check that does not exist.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from conformance.loader.parser import SpecParser
from conformance.model import EquationSpec, XFailEntry
from conformance.safe_yaml import load_yaml, read_text
from conformance.validation import SpecError

MAX_XFAIL_FILE_BYTES = 256 * 1024


def load_xfail_files(paths: Iterable[str | Path]) -> list[XFailEntry]:
    """Every entry of every file, in order."""
    return [entry for path in paths for entry in load_xfail_file(path)]


def load_xfail_file(path: str | Path) -> list[XFailEntry]:
    """The entries of one ``--xfail-file``."""
    file = Path(path)
    if not file.is_file():
        raise SpecError(file, "", "expected an xfail file (YAML with a list 'xfail'); not found")
    document = load_yaml(read_text(file, MAX_XFAIL_FILE_BYTES), file)
    parser = SpecParser(file, document.lines)
    data = parser.mapping(document.data, (), {"xfail"}, set())
    entries = parser.typed(data["xfail"], ("xfail",), list, "a list of {spec, implementation, check, reason}")
    out = []
    for i, body in enumerate(entries):
        path_i = ("xfail", i)
        xfail = parser.xfail(body, path_i, extra_required=frozenset({"spec", "implementation"}))
        spec = parser.text(body["spec"], path_i + ("spec",))
        implementation = parser.text(body["implementation"], path_i + ("implementation",))
        out.append(XFailEntry(spec, implementation, xfail, str(file), parser.line(path_i)))
    return out


def check_entries(entries: Iterable[XFailEntry], specs: Mapping[str, EquationSpec], check_names: Mapping[str, set[str]]) -> None:
    """Refuse an entry naming a spec that is not loaded or a check its spec does not generate."""
    for entry in entries:
        where = f"xfail (line {entry.line})"
        if entry.spec not in specs:
            raise SpecError(entry.file, where, f"unknown spec {entry.spec!r}; known: {', '.join(sorted(specs))}")
        if entry.xfail.check not in check_names[entry.spec]:
            known = ", ".join(sorted(check_names[entry.spec]))
            raise SpecError(entry.file, where, f"spec {entry.spec!r} has no check {entry.xfail.check!r}; its checks: {known}")
