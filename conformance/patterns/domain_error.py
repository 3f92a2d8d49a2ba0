"""Pattern kind ``domain_error``: called outside its declared domain, an implementation raises a clear error.

Examples are drawn from the spec as for every check; ``set`` then moves sizes or params out of the
domain on purpose (expressions over the drawn sizes and params, breaking the spec's constraints),
the inputs are drawn at those sizes, and the implementation is built and called the way its
``interface`` says. It must raise one of the ``raises`` exception types, with a message that
contains ``match`` (a regular expression) — returning normally, or failing with another error, is
the defect (a cache sliced past its end silently returns fewer rows, say).

Spec options::

    kind: domain_error
    set: {L: "M + 1"}          # sizes/params: expressions over the drawn ones
    raises: [ValueError]       # built-in exception types (default: ValueError)
    match: max_seq_len         # optional: a regular expression the message must contain

>>> from conformance.validation import SpecContext, Where
>>> KIND.validate({"set": {"L": "M + 1"}, "match": "max_seq_len"}, Where("s.yaml"), SpecContext("s.yaml"))["raises"]
('ValueError',)
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Mapping
from typing import Any

import sympy

from conformance.expr import ExprError, parse
from conformance.patterns import PatternKind
from conformance.validation import SpecContext, Where


def validate(options: Mapping[str, Any], where: Where, context: SpecContext) -> dict:
    """``set`` (parsed expressions), ``raises`` (built-in exception names) and ``match`` (a regular expression)."""
    subs = options["set"]
    if not isinstance(subs, dict) or not subs:
        raise where.at("set").error("expected a mapping size or param name -> expression over the drawn sizes and params")
    parsed: dict[str, sympy.Basic] = {}
    for name, text in subs.items():
        if not isinstance(name, str) or not re.match(r"^[A-Za-z]\w*$", name):
            raise where.at("set").error(f"expected a size or param name, got {name!r}")
        try:
            parsed[name] = parse(repr(text) if isinstance(text, (int, float)) and not isinstance(text, bool) else text)
        except ExprError as exc:
            raise where.at("set").error(f"{name}: {exc}") from None
    raises = options.get("raises", ["ValueError"])
    if not isinstance(raises, list) or not raises or not all(exception_type(n) for n in raises):
        message = f"expected a non-empty list of built-in exception names (ValueError, IndexError, ...), got {raises!r}"
        raise where.at("raises").error(message)
    match = options.get("match")
    if match is not None:
        if not isinstance(match, str) or not match:
            raise where.at("match").error(f"expected a regular expression, got {match!r}")
        try:
            re.compile(match)
        except re.error as exc:
            raise where.at("match").error(f"not a regular expression: {exc}") from None
    return {"set": parsed, "raises": tuple(raises), "match": match}


def exception_type(name: Any) -> type[BaseException] | None:
    value = getattr(builtins, name, None) if isinstance(name, str) else None
    return value if isinstance(value, type) and issubclass(value, Exception) else None


KIND = PatternKind(
    name="domain_error",
    required=frozenset({"set"}),
    optional=frozenset({"raises", "match"}),
    validate=validate,
    run="conformance.patterns.runs.domain_error:run",
)
