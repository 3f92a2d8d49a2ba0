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

from dataclasses import dataclass
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
