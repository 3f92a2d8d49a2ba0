"""Open registries: the one place every extension point is registered.

Each extension point is a :class:`Registry` of records of one type, keyed by name:

============================  ===========================  =====================================
registry                      entry-point group            record
============================  ===========================  =====================================
``FUNCTIONS``                 ``conformance.functions``    an expression function
``INVARIANT_KINDS``           ``conformance.invariants``   an invariant kind
``FACT_KINDS``                ``conformance.facts``        a symbolic fact kind
``PATTERN_KINDS``             ``conformance.patterns``     a pattern kind
``REFERENCES``                ``conformance.references``   a float64 reference oracle
``CHECKS``                    ``conformance.checks``       a check definition
============================  ===========================  =====================================

The harness's own records are named by a lazy ``"module:attribute"`` ref (an iterable of records),
imported on first use, so importing this module imports nothing heavy. A user adds records without
editing the package, in one of two ways:

- from code: ``FUNCTIONS.register(record)`` (raises on a name already taken unless ``replace=True``);
- from an installed distribution: an entry point in the registry's group whose object is one record
  or an iterable of records (as pytest's ``pytest11`` and Hypothesis's ``hypothesis`` groups work)::

      [project.entry-points."conformance.invariants"]
      my_kinds = "my_package.kinds:KINDS"

Entry points are loaded once, on the first lookup in that registry. A record is any object with a
``name`` attribute; each registry checks the record type it holds.

>>> registry = Registry("example", group=None, builtins=None, record_type=object)
>>> class R:
...     name = "r"
>>> registry.register(R()) is not None, "r" in registry, registry.names()
(True, True, ('r',))
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable, Iterator
from importlib import metadata
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class RegistryError(ValueError):
    """A record that cannot be registered (wrong type, a name already taken, a broken entry point)."""


class Registry(Generic[T]):
    """Records of one type by name: the harness's own (lazy), then entry points, then ``register`` calls."""

    def __init__(self, what: str, *, group: str | None, builtins: str | None, record_type: type | str) -> None:
        self.what = what
        self.group = group
        self._builtins = builtins
        self._record_type = record_type
        self._records: dict[str, T] = {}
        self._loaded = False
        self._lock = threading.RLock()

    # -- lookup ---------------------------------------------------------------------------
    def get(self, name: str) -> T | None:
        self._load()
        return self._records.get(name)

    def __getitem__(self, name: str) -> T:
        record = self.get(name)
        if record is None:
            raise KeyError(f"unknown {self.what} {name!r}; known: {', '.join(self.names()) or 'none'}")
        return record

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._records

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def names(self) -> tuple[str, ...]:
        self._load()
        return tuple(sorted(self._records))

    def items(self) -> list[tuple[str, T]]:
        self._load()
        return sorted(self._records.items())

    def keys(self) -> tuple[str, ...]:
        return self.names()

    # -- registration ---------------------------------------------------------------------
    def register(self, record: T, *, replace: bool = False) -> T:
        """Add ``record`` under ``record.name``; returns it (usable as a decorator on a record factory's result)."""
        self._load()
        return self._add(record, replace=replace, source="register()")

    def unregister(self, name: str) -> None:
        """Remove a record (tests that add one clean up with this)."""
        with self._lock:
            self._records.pop(name, None)

    def _add(self, record: Any, *, replace: bool, source: str) -> T:
        record_type = self._type()
        if not isinstance(record, record_type):
            raise RegistryError(f"{self.what} from {source}: expected a {record_type.__name__}, got {type(record).__name__}")
        name = getattr(record, "name", None)
        if not isinstance(name, str) or not name:
            raise RegistryError(f"{self.what} from {source}: a record needs a non-empty string 'name'")
        with self._lock:
            if name in self._records and not replace and self._records[name] is not record:
                raise RegistryError(f"{self.what} {name!r} from {source} is already registered (pass replace=True)")
            self._records[name] = record
        return record

    def _type(self) -> type:
        if isinstance(self._record_type, str):
            self._record_type = _import(self._record_type)
        return self._record_type  # type: ignore[return-value]

    def _load(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            self._loaded = True  # before loading: a record module may look names up while it imports
            if self._builtins:
                for record in _records_of(_import(self._builtins)):
                    self._add(record, replace=False, source=self._builtins)
            if self.group:
                for entry in metadata.entry_points(group=self.group):
                    try:
                        loaded = entry.load()
                    except Exception as exc:  # a broken plug-in names itself
                        where = f"entry point {entry.name!r} ({entry.value})"
                        raise RegistryError(f"{self.what}: {where} failed to load: {exc}") from exc
                    for record in _records_of(loaded):
                        self._add(record, replace=False, source=f"entry point {entry.name!r} ({entry.value})")


def _records_of(value: Any) -> Iterable[Any]:
    if hasattr(value, "name"):
        return [value]
    if isinstance(value, dict):
        return list(value.values())
    return list(value)


def _import(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


FUNCTIONS: Registry[Any] = Registry(
    "expression function", group="conformance.functions", builtins="conformance.functions:BUILTIN",
    record_type="conformance.functions:ExprFunction",
)
INVARIANT_KINDS: Registry[Any] = Registry(
    "invariant kind", group="conformance.invariants", builtins="conformance.invariants:BUILTIN",
    record_type="conformance.invariants:InvariantKind",
)
FACT_KINDS: Registry[Any] = Registry(
    "fact kind", group="conformance.facts", builtins="conformance.symbolic:BUILTIN", record_type="conformance.symbolic:FactKind"
)
PATTERN_KINDS: Registry[Any] = Registry(
    "pattern kind", group="conformance.patterns", builtins="conformance.patterns:BUILTIN",
    record_type="conformance.patterns:PatternKind",
)
REFERENCES: Registry[Any] = Registry(
    "reference oracle", group="conformance.references", builtins="conformance.references:BUILTIN",
    record_type="conformance.references:Reference",
)
CHECKS: Registry[Any] = Registry(
    "check", group="conformance.checks", builtins="conformance.check_defs:BUILTIN", record_type="conformance.check_defs:CheckDef"
)
