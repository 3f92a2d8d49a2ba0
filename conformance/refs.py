"""Refs: how a spec names Python code (implementations, reference functions), checked and resolved.

A ref is ``package.module:attribute`` or ``path/to/file.py:attribute`` (a relative path is tried
from the working directory, then from the spec file's directory). Loading a spec checks a ref's
syntax only (:func:`ref_problem`) and imports nothing; :func:`resolve` imports it when a case is
built, and :func:`resolve_implementations` imports every implementation of some specs up front
(``conformance validate --resolve``), each failure a :class:`~conformance.validation.SpecError`
naming the file and key.

Refs into the standard library or builtins are refused, at load and in :func:`resolve`: a spec
must not be able to name ``os:system`` or ``builtins:eval`` as "the implementation under test".

>>> ref_problem("implementations.rmsnorm:RMSNorm") is None
True
>>> ref_problem("os:system")
"refs into the standard library or builtins are refused: 'os' is a standard library module"
>>> ref_problem("implementations.rmsnorm")
"expected 'package.module:attribute' or 'path/file.py:attribute', got 'implementations.rmsnorm'"
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import os
import re
import sys
import sysconfig
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conformance.validation import SpecError

if TYPE_CHECKING:
    from conformance.model import EquationSpec

REF_RE = re.compile(r"^(?:[A-Za-z_][\w.]*|[^:]+\.py):[A-Za-z_]\w*$")
REF_SYNTAX = "'package.module:attribute' or 'path/file.py:attribute'"
# Modules a ref may never name, beyond the standard library's own (sys.stdlib_module_names).
REFUSED_MODULES = frozenset({"builtins", "__main__", "__future__"})


class ImplementationError(ValueError):
    """An implementation reference that cannot be imported or found, or that is refused."""


@dataclass(frozen=True)
class Ref:
    """A parsed ref: a module name or a ``.py`` path, and an attribute."""

    target: str
    attr: str

    @property
    def is_file(self) -> bool:
        return self.target.endswith(".py")

    @property
    def top_module(self) -> str:
        """The top-level package a module ref imports (for a file ref, ``""``)."""
        return "" if self.is_file else self.target.split(".", 1)[0]


def parse_ref(ref: str) -> Ref:
    """``ref`` split into its target and attribute; :class:`ImplementationError` if it is not a ref or is refused."""
    problem = ref_problem(ref)
    if problem is not None:
        raise ImplementationError(problem)
    target, attr = ref.rsplit(":", 1)
    return Ref(target, attr)


def ref_problem(ref: Any) -> str | None:
    """What is wrong with ``ref`` as a ref (its syntax, a refused module), or ``None``; imports nothing."""
    if not isinstance(ref, str) or not REF_RE.match(ref):
        return f"expected {REF_SYNTAX}, got {ref!r}"
    target, attr = ref.rsplit(":", 1)
    if attr.startswith("__"):
        return f"refs to dunder attributes are refused, got {attr!r}"
    if target.endswith(".py"):
        return None
    parts = target.split(".")
    refused = _refused_module(parts[0])
    if refused is None and any(not part or part.startswith("__") for part in parts):
        return f"expected a dotted module name without empty or dunder parts, got {target!r}"
    return refused


def _refused_module(top: str) -> str | None:
    if top in REFUSED_MODULES or top in sys.builtin_module_names:
        return f"refs into the standard library or builtins are refused: {top!r} is a builtin module"
    if top in sys.stdlib_module_names:
        return f"refs into the standard library or builtins are refused: {top!r} is a standard library module"
    return None


def resolve(ref: str, base: Path | None = None) -> Any:
    """Import the object named by ``ref``; a relative ``.py`` path resolves from ``base``, else from the cwd.

    A spec's own refs pass the spec file's folder as ``base``; command-line refs (``--impl``) pass none.
    """
    return _resolve(ref, str(base) if base else None, os.getcwd())


@functools.cache
def _resolve(ref: str, base: str | None, cwd: str) -> Any:  # cwd: part of the cache key only
    if ":" not in ref:
        raise ImplementationError(f"expected 'module:attribute' or 'file.py:attribute', got {ref!r}")
    parsed = parse_ref(ref)
    try:
        module = _import_file(parsed.target, base) if parsed.is_file else importlib.import_module(parsed.target)
    except ImplementationError:
        raise
    except Exception as exc:  # an implementation's own import error, reported, not raised raw
        raise ImplementationError(f"cannot import {parsed.target!r}: {type(exc).__name__}: {exc}") from None
    try:
        return getattr(module, parsed.attr)
    except AttributeError:
        raise ImplementationError(f"module {parsed.target!r} has no attribute {parsed.attr!r}") from None


def _import_file(path_text: str, base: str | None) -> Any:
    path = Path(path_text)
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    if not path.is_file():
        where = f"in {base}" if base is not None and not Path(path_text).is_absolute() else "from the working directory"
        raise ImplementationError(f"file {path_text!r} not found ({where})")
    path = path.resolve()
    if _in_standard_library(path):
        raise ImplementationError(f"refs into the standard library are refused: {path_text!r} is a standard library file")
    name = "conformance_impl_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImplementationError(f"cannot load {path_text!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]  # as importlib does: a failed import leaves nothing half-imported behind
        raise
    return module


def _in_standard_library(path: Path) -> bool:
    """Whether ``path`` is a file of the interpreter's standard library (installed packages are not)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    return path.is_relative_to(stdlib) and not any(part in ("site-packages", "dist-packages") for part in path.parts)


def resolve_implementations(specs: EquationSpec | Iterable[EquationSpec], *, references: bool = True) -> None:
    """Import every implementation of ``specs`` (and every ``oracle.reference`` ref, with ``references``).

    The first that does not resolve raises a :class:`SpecError` naming its file and key
    (``specs[i].implementations[j].ref``); an implementation given on the command line (``--impl``,
    not from the file) is named as ``--impl <spec>=<ref>``.
    """
    from conformance.model import EquationSpec

    for spec in [specs] if isinstance(specs, EquationSpec) else list(specs):
        base = Path(spec.file).parent
        for j, impl in enumerate(spec.implementations):
            try:
                resolve(impl.ref, spec.ref_base(impl.ref))
            except ImplementationError as exc:
                if impl.line:
                    raise SpecError(spec.file, f"specs[{spec.index}].implementations[{j}].ref", str(exc)) from None
                raise SpecError("--impl", f"{spec.id}={impl.id}", str(exc)) from None
        if references and spec.oracle is not None and spec.oracle.reference_is_ref:
            try:
                resolve(spec.oracle.reference, base)  # type: ignore[arg-type]
            except ImplementationError as exc:
                raise SpecError(spec.file, f"specs[{spec.index}].oracle.reference", str(exc)) from None
