"""Pattern kind ``config_table``: a configuration class reproduces a paper's hyperparameter table.

The implementation is a configuration class (a dataclass, say) with a constructor classmethod
(``from_paper``) and a ``to_dict`` method. For every variant of the spec's table the check asserts:

- ``[table]``: ``from_paper(variant).to_dict()`` has exactly the table's fields, each with the
  table's value *and type* (``512`` is not ``512.0`` nor ``True``); the values are declared constants,
  so they are compared exactly, with no tolerance;
- ``[derived]``: what the paper states follows from the fields equals the ``derived`` table: an
  expression over the fields (``d_model / n_heads``, evaluated exactly on the config's values), or an
  attribute the implementation is known to compute (a plain name);
- ``[to_dict]``: ``to_dict`` returns a plain ``dict`` of JSON values (``json`` round-trips it), a new
  one on every call, and changing it (every key set to a sentinel, a key added) leaves the config as
  it was — the dict is a copy, not the live ``__dict__``;
- ``[round trip]``: ``Class(**cfg.to_dict()) == cfg``;
- ``[fresh instance]``: setting every field of one ``from_paper(variant)`` result (to a sentinel
  object, or where that is refused to a changed value of the field's type) leaves the next
  ``from_paper(variant)`` unchanged: no shared, mutable preset. An instance that refuses both
  (a frozen dataclass) passes: sharing it is harmless. The probe restores what it changed;

and for every ``rejects`` case, ``[rejects]``: building the config raises the named exception type (or
a subclass) with every message fragment in its text. All problems are reported at once.

Spec options::

    kind: config_table
    constructor: from_paper            # optional, the default
    to_dict: to_dict                   # optional, the default
    table:                             # variant -> every field -> value
      base: {d_model: 512, n_heads: 8, dropout: 0.1}
      big: {d_model: 1024, n_heads: 16, dropout: 0.3}
    derived:                           # optional: variant -> expression over the fields (or attribute) -> value
      base: {"d_model / n_heads": 64}
    rejects:                           # optional
      - variant: xl                    # from_paper("xl")
        error: ValueError              # a built-in exception type
        message: [xl, base, big]       # fragments its message must contain
      - args: {n_heads: 7}             # Class(**{**table[row], **args}), row: the first variant unless given
        row: base
        error: ValueError
        message: [d_model, n_heads, "7"]

A configuration holds no tensors, so the check runs once, on the CPU (one row at float32, torch's
default dtype).
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Mapping
from typing import Any

from conformance.patterns import PatternKind
from conformance.patterns.helpers.options import parse_scalar
from conformance.validation import SpecContext, Where

_NAME = re.compile(r"^[A-Za-z_]\w*$")
_SCALARS = (bool, int, float, str, type(None))
_REJECT_KEYS = frozenset({"args", "variant", "row", "error", "message"})


def validate(options: Mapping[str, Any], where: Where, context: SpecContext) -> dict:
    """The table, its derived attributes, the rejected cases and the method names."""
    table = _validate_table(options["table"], where.at("table"))
    out: dict[str, Any] = {
        "table": table,
        "constructor": _identifier(options.get("constructor", "from_paper"), where.at("constructor")),
        "to_dict": _identifier(options.get("to_dict", "to_dict"), where.at("to_dict")),
        "derived": _validate_derived(options.get("derived", {}), where.at("derived"), table),
        "derived_expressions": _derived_expressions(options.get("derived", {}), where.at("derived"), table),
        "rejects": _validate_rejects(options.get("rejects", []), where.at("rejects"), table),
    }
    return out


def _identifier(value: Any, where: Where) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise where.error(f"expected a Python attribute name, got {value!r}")
    return value


def _scalar_row(row: Any, where: Where, expressions: bool = False) -> dict[str, Any]:
    """A mapping name -> scalar; with ``expressions``, a name may instead be an expression (checked by the caller)."""
    if not isinstance(row, dict) or not row:
        raise where.error(f"expected a non-empty mapping field -> value, got {row!r}")
    for name, value in row.items():
        if not isinstance(name, str) or not (expressions or _NAME.match(name)):
            raise where.error(f"expected field names that are Python identifiers, got {name!r}")
        if not isinstance(value, _SCALARS):
            raise where.at(name).error(f"expected a number, string, boolean or null, got {value!r}")
    return dict(row)


def _validate_table(table: Any, where: Where) -> dict[str, dict[str, Any]]:
    if not isinstance(table, dict) or not table:
        raise where.error("expected a non-empty mapping variant -> {field: value}")
    out: dict[str, dict[str, Any]] = {}
    for variant, row in table.items():
        if not isinstance(variant, str) or not variant:
            raise where.error(f"expected variant names that are non-empty strings, got {variant!r}")
        out[variant] = _scalar_row(row, where.at(variant))
    first, fields = next(iter(out)), set(next(iter(out.values())))
    for variant, row in out.items():
        if set(row) != fields:
            missing, extra = sorted(fields - set(row)), sorted(set(row) - fields)
            message = f"every variant must list the same fields; compared with {first!r}: missing {missing}, extra {extra}"
            raise where.at(variant).error(message)
    return out


def _validate_derived(derived: Any, where: Where, table: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    if not isinstance(derived, dict):
        raise where.error("expected a mapping variant -> {attribute: value}")
    for variant in derived:
        if variant not in table:
            raise where.at(variant).error(f"not a variant of the table ({', '.join(table)})")
    return {variant: _scalar_row(row, where.at(variant), expressions=True) for variant, row in derived.items()}


def _derived_expressions(derived: Mapping[str, Any], where: Where, table: Mapping[str, Any]) -> dict[str, Any]:
    """Every ``derived`` key that is not a plain name, parsed as a scalar expression over the table's fields."""
    fields = {name for row in table.values() for name in row}
    return {
        key: parse_scalar(key, where.at(variant, key), fields)
        for variant, row in derived.items()
        for key in row
        if not _NAME.match(key)
    }


def _validate_rejects(rejects: Any, where: Where, table: Mapping[str, Any]) -> list[dict[str, Any]]:
    if not isinstance(rejects, list):
        raise where.error("expected a list of {variant or args, error, message}")
    return [_validate_reject(case, where.at(i), table) for i, case in enumerate(rejects)]


def _validate_reject(case: Any, where: Where, table: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(case, dict):
        raise where.error("expected a mapping with variant or args, error and message")
    for key in case:
        if key not in _REJECT_KEYS:
            raise where.at(key).error(f"unknown key; expected one of: {', '.join(sorted(_REJECT_KEYS))}")
    if ("args" in case) == ("variant" in case):
        raise where.error("expected exactly one of 'variant' (a name for the constructor) or 'args' (keyword arguments)")
    for key in ("error", "message"):
        if key not in case:
            raise where.error(f"missing required key: {key}")
    out: dict[str, Any] = {"error": _exception_name(case["error"], where.at("error")), "message": _fragments(case, where)}
    if "variant" in case:
        if "row" in case:
            raise where.at("row").error("applies to 'args' cases only")
        if not isinstance(case["variant"], _SCALARS):
            raise where.at("variant").error(f"expected a variant name (a string, number or null), got {case['variant']!r}")
        if case["variant"] in table:
            raise where.at("variant").error(f"{case['variant']!r} is a variant of the table; a rejected one must not be")
        out["variant"] = case["variant"]
        return out
    args = case["args"]
    if not isinstance(args, dict) or not all(isinstance(k, str) and _NAME.match(k) for k in args):
        raise where.at("args").error("expected a mapping keyword -> value")
    row = case.get("row", next(iter(table)))
    if row not in table:
        raise where.at("row").error(f"expected a variant of the table ({', '.join(table)}), got {row!r}")
    return {**out, "args": dict(args), "row": row}


def _exception_name(name: Any, where: Where) -> str:
    error = getattr(builtins, name, None) if isinstance(name, str) else None
    if not (isinstance(error, type) and issubclass(error, Exception)):
        raise where.error(f"expected the name of a built-in exception type (ValueError, TypeError, ...), got {name!r}")
    return name


def _fragments(case: Mapping[str, Any], where: Where) -> tuple[str, ...]:
    message = case["message"]
    message = [message] if isinstance(message, str) else message
    if not isinstance(message, list) or not message or not all(isinstance(m, (str, int)) and str(m) for m in message):
        raise where.at("message").error("expected a non-empty list of message fragments")
    return tuple(str(m) for m in message)


KIND = PatternKind(
    name="config_table",
    required=frozenset({"table"}),
    optional=frozenset({"constructor", "to_dict", "derived", "rejects"}),
    validate=validate,
    run="conformance.patterns.runs.config_table:run",
    dtypes=("float32",),
    devices=("cpu",),
)
