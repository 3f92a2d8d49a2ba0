"""Pattern checks: conformance properties that are not one equation against an oracle.

Some patterns of the implementation guide are judged by behaviour rather than by a formula: a
configuration table, the statistics of an initialisation, a stateful cache, a training step. A spec
lists them under ``patterns``; each entry names a *kind* implemented by a module of this package,
which validates its options on load and runs the check for one (implementation, device, dtype).

A kind module defines ``KIND = PatternKind(...)``; every module here is discovered, so adding a
kind is adding a file. A kind's ``run`` returns a :class:`conformance.tolerance.Measurement` whose
``detail`` says, on failure, what was expected and what was found.

>>> sorted(kinds())  # doctest: +ELLIPSIS
[...]
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hypothesis import settings

    from conformance.spec import EquationSpec
    from conformance.tolerance import Measurement


@dataclass(frozen=True)
class PatternContext:
    """Everything one run of a pattern check gets."""

    spec: EquationSpec
    ref: str
    device: str
    dtype: str
    options: Mapping[str, Any]
    settings: settings

    def target(self) -> Any:
        """The implementation under test (class, function or module attribute)."""
        from conformance.calling import resolve

        return resolve(self.ref, Path(self.spec.file).parent)


@dataclass(frozen=True)
class PatternKind:
    """A kind of pattern check: its option keys, their validation, and the check itself.

    ``validate`` returns the normalised options or raises ``KeyError((key,), message)`` for a bad
    option (the loader turns it into a :class:`conformance.spec.SpecError` naming the key).
    """

    name: str
    required: frozenset[str]
    optional: frozenset[str]
    validate: Callable[[Mapping[str, Any]], dict]
    run: Callable[[PatternContext], Measurement]
    dtypes: tuple[str, ...] = ("float32",)
    devices: tuple[str, ...] = ("cpu", "cuda")
    # Re-runs the check on one failing example (``Measurement.example``); what reproduction snippets call.
    replay: Callable[[PatternContext, Mapping[str, Any]], Measurement] | None = None


@functools.cache
def kinds() -> dict[str, PatternKind]:
    """Every kind defined by a module of this package, by name."""
    found: dict[str, PatternKind] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        kind = getattr(module, "KIND", None)
        if isinstance(kind, PatternKind):
            found[kind.name] = kind
    return found
