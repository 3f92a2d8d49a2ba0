"""Loading spec files: bounded YAML, the schema key by key, then the spec's meaning; nothing executed.

:func:`load_specs` reads every ``*.yaml`` spec of some paths (plus the shipped ``specs/``),
:func:`load_file` one file. Each file is read by :mod:`conformance.safe_yaml` (size, aliases,
depth, integer digits, duplicate keys), parsed by :class:`~conformance.loader.parser.SpecParser`
(the schema; kinds from the open registries) and checked by :mod:`conformance.loader.meaning`
(memory budget, satisfiable constraints, oracle shapes). Any problem raises one
:class:`~conformance.validation.SpecError` naming the file, the key path and what was expected.
No implementation is imported: :func:`conformance.refs.resolve_implementations` does that.

>>> specs = load_specs(["specs"])
>>> specs["rmsnorm"].paper.arxiv
'1910.07467'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from conformance.loader.meaning import MAX_EXAMPLE_BYTES, MAX_SIZE_GRID
from conformance.loader.parser import SCHEMA_VERSION, SpecParser, pattern_interface
from conformance.model import EquationSpec, Interface, Unsupported, condition_names
from conformance.safe_yaml import load_yaml, read_text
from conformance.validation import SpecError, Where

__all__ = [
    "MAX_EXAMPLE_BYTES", "MAX_SIZE_GRID", "MAX_SPEC_BYTES", "SCHEMA_VERSION", "implementation_interface",
    "implementation_unsupported", "load_file", "load_specs",
]

MAX_SPEC_BYTES = 256 * 1024
DEFAULT_SPEC_DIR = Path(__file__).resolve().parent.parent.parent / "specs"


def load_specs(paths: Iterable[str | Path] = (), *, default: bool = True) -> dict[str, EquationSpec]:
    """Load every ``*.yaml`` spec under ``paths`` (plus the shipped ``specs/`` when ``default``).

    Raises :class:`SpecError` for the first problem found; duplicate ids across files too.
    """
    files: list[Path] = []
    roots = ([DEFAULT_SPEC_DIR] if default and DEFAULT_SPEC_DIR.is_dir() else []) + [Path(p) for p in paths]
    for root in roots:
        if root.is_file():
            files.append(root)
        elif root.is_dir():
            files.extend(sorted(root.glob("*.yaml")) + sorted(root.glob("*.yml")))
        else:
            raise SpecError(root, "", "expected a spec file or a directory of *.yaml specs; not found")
    specs: dict[str, EquationSpec] = {}
    seen: set[Path] = set()
    for file in files:
        if file.resolve() in seen:
            continue
        seen.add(file.resolve())
        for spec in load_file(file):
            if spec.id in specs:
                raise SpecError(file, f"specs[id={spec.id}]", f"duplicate id, already defined in {specs[spec.id].file}")
            specs[spec.id] = spec
    return dict(sorted(specs.items()))


def load_file(file: str | Path) -> list[EquationSpec]:
    """Load and validate one paper's spec file."""
    file = Path(file)
    document = load_yaml(read_text(file, MAX_SPEC_BYTES), file)
    try:
        return SpecParser(file, document.lines).parse(document.data)
    except RecursionError:
        raise SpecError(file, "", "nested too deeply to validate") from None


def implementation_interface(spec: EquationSpec, declared: Mapping[str, Any], where: str) -> Interface | dict[str, Any]:
    """The interface an implementation is called with: ``spec``'s with the differences ``declared`` (the keys of an
    implementation entry's ``interface``, docs/spec-schema.md, Calling conventions), validated as a spec file's are;
    a problem raises one :class:`SpecError` naming ``where`` (a peer audit's entry, say) and the key.
    """
    iface = spec.interface
    if iface is None:  # a spec of pattern checks only: its pattern kind's calling convention
        return pattern_interface(spec.patterns, dict(declared), Where(where, ("interface",)))
    base: dict[str, Any] = {"kind": iface.kind, "args": list(iface.args), "kwargs": dict(iface.kwargs), "train": iface.train}
    if iface.kind == "module":
        base.update(init={k: str(v) for k, v in iface.init.items()}, state=dict(iface.state))
    shapes = {**{n: i.shape for n, i in spec.inputs.items()}, **{n: o.shape for n, o in spec.outputs.items()}}
    for key, layouts in (("layouts", iface.layouts), ("output_layouts", iface.output_layouts)):
        if layouts:
            base[key] = {n: [str(shapes[n][a]) for a in perm] for n, perm in layouts.items()}
    if iface.values:
        base["values"] = {n: str(e) for n, e in iface.values.items()}
    if iface.constants:
        base["constants"] = dict(iface.constants)
    if iface.returns is not None:
        base["returns"] = list(iface.returns) if len(spec.outputs) > 1 else iface.returns[0]
    parser = SpecParser(Path(where), {})
    parser.string_params = {n for n, p in spec.params.items() if p.is_string}
    scalars = set(spec.symbols) | (set(spec.params) - parser.string_params)
    merged = parser.own_interface(dict(declared), base, ("interface",))
    return parser.interface(merged, ("interface",), spec.inputs, spec.params, spec.symbols, scalars, spec.outputs)


def implementation_unsupported(spec: EquationSpec, declared: Iterable[Mapping[str, Any]], where: str) -> tuple[Unsupported, ...]:
    """An implementation's declared ``unsupported`` regions (``[{when, raises, reason}]``, docs/spec-schema.md,
    Unsupported regions) against ``spec``'s names, validated as a spec file's are; a problem raises one
    :class:`SpecError` naming ``where`` and the key."""
    parser = SpecParser(Path(where), {})
    names = condition_names(spec.symbols, spec.params, spec.inputs) if spec.oracle is not None else None
    return parser.unsupported_list([dict(body) for body in declared], ("unsupported",), names)
