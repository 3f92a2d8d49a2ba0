"""Validation errors: one error type, and a key-path-aware reporter every validator uses.

A spec problem is one :class:`SpecError` naming the file, the key path and what was expected.
Kinds (invariant, fact and pattern kinds, expression functions) never build that message
themselves: they are handed a :class:`Where` — the file and the key path of what they validate —
and raise ``where.at("key").error("expected ...")``.

>>> where = Where("specs/x.yaml", ("specs", 0, "invariants", 1))
>>> str(where.at("permute", "x").error("expected an axis"))
'specs/x.yaml: specs[0].invariants[1].permute.x: expected an axis'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class SpecError(ValueError):
    """A spec that does not follow the schema: ``file: key.path: expected ..., got ...``."""

    def __init__(self, file: str | Path, path: str, message: str) -> None:
        self.file, self.path, self.detail = str(file), path, message
        where = f"{file}: {path}" if path else str(file)
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Where:
    """A place in a spec file: the file and a key path (keys and list indices)."""

    file: str | Path
    path: tuple[Any, ...] = ()

    def at(self, *keys: Any) -> Where:
        """The place of ``keys`` below this one."""
        return Where(self.file, self.path + tuple(keys))

    def error(self, message: str) -> SpecError:
        """The error to raise for a problem here."""
        return SpecError(self.file, dotted(self.path), message)

    @property
    def dotted(self) -> str:
        return dotted(self.path)


@dataclass(frozen=True)
class SpecContext:
    """What a kind's ``validate(options, where, context)`` may consult: the spec declared around it.

    ``names`` are the names an expression at that place may use (symbols, params and inputs; for an
    invariant the outputs too). The mappings hold :mod:`conformance.model` records by name; a spec
    of pattern checks only has none. :meth:`expression` parses one expression option and checks its
    names, raising a :class:`SpecError` at ``where``. ``lets`` are the oracle's ``let`` bindings (in
    order): an expression may name them, and they are substituted, so what it means is over declared
    names only.

    >>> import sympy
    >>> with_let = SpecContext("s.yaml", names=frozenset({"x"}), lets=(("y", sympy.Symbol("x") ** 2),))
    >>> with_let.expression("y + 1", Where("s.yaml", ("lhs",)))
    x**2 + 1

    >>> context = SpecContext("s.yaml", names=frozenset({"x"}))
    >>> context.expression("x + 1", Where("s.yaml", ("lhs",)))
    x + 1
    >>> context.expression("y", Where("s.yaml", ("lhs",)))
    Traceback (most recent call last):
    ...
    conformance.validation.SpecError: s.yaml: lhs: undeclared name(s) y; declared: x
    """

    file: str | Path
    spec_id: str | None = None
    symbols: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    inputs: Mapping[str, Any] = field(default_factory=dict)
    outputs: Mapping[str, Any] = field(default_factory=dict)
    names: frozenset[str] = frozenset()
    lets: tuple[tuple[str, Any], ...] = ()

    @property
    def base(self) -> Path:
        """The directory of the spec file (relative refs are resolved from there)."""
        return Path(self.file).parent

    def expression(self, value: Any, where: Where, extra: Iterable[str] = ()) -> Any:
        """``value`` parsed as an expression over :attr:`names` (plus ``extra``); YAML numbers and booleans allowed."""
        parsed = parse_expression(value, where, set(self.names) | set(extra) | {n for n, _ in self.lets}, booleans=True)
        return substitute_lets(parsed, self.lets)


def parse_expression(value: Any, where: Where, names: Iterable[str] | None = None, *, booleans: bool = False) -> Any:
    """``value`` parsed by the safe parser (:func:`conformance.expr.parse`), every problem an error at ``where``.

    A YAML number is taken as its text; a YAML boolean as ``True``/``False`` where ``booleans``, else it
    is refused. With ``names``, every free name must be one of them.
    """
    from conformance import expr as expr_mod

    if isinstance(value, bool):
        if not booleans:
            raise where.error("expected an expression string, got a boolean")
        value = "True" if value else "False"
    elif isinstance(value, (int, float)):
        value = repr(value)
    if not isinstance(value, str):
        raise where.error(f"expected an expression string, got {kind_of(value)} {value!r}")
    try:
        parsed = expr_mod.parse(value)
    except expr_mod.ExprError as exc:
        raise where.error(f"{exc}: {value!r}") from None
    if names is not None:
        allowed = set(names)
        unknown = sorted(expr_mod.names_in(parsed) - allowed)
        if unknown:
            raise where.error(f"undeclared name(s) {', '.join(unknown)}; declared: {', '.join(sorted(allowed)) or 'none'}")
    return parsed


def substitute_lets(expr: Any, lets: tuple[tuple[str, Any], ...]) -> Any:
    """``expr`` with every ``let`` name replaced by its expression (later lets may use earlier ones)."""
    import sympy

    for name, value in reversed(lets):
        symbol = sympy.Symbol(name)
        if symbol in expr.free_symbols:
            expr = expr.xreplace({symbol: value})
    return expr


def dotted(path: tuple[Any, ...]) -> str:
    """``("specs", 0, "oracle")`` → ``specs[0].oracle``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def kind_of(value: Any) -> str:
    """How a YAML value is named in messages."""
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        type(None): "nothing",
    }.get(type(value), type(value).__name__)
