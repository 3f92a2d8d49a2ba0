"""Pattern kind ``domain_error``: called outside its declared domain, an implementation fails clearly or is right.

Examples are drawn from the spec as for every check; ``set`` then moves sizes or params out of the
domain on purpose (expressions over the drawn sizes and params, breaking the spec's constraints),
the inputs are drawn at those sizes, and the implementation is built and called the way its
``interface`` says. What it may do there is ``accepts``, judged by behaviour:

``error`` (the default)
    raise one of the ``raises`` exception types with a non-empty message that contains ``match``
    (a regular expression, if given).
``correct``
    return what the spec's float64 oracle gives at those sizes, within the spec's derived tolerance
    (the ``oracle`` check's own comparison, on the moved example): a rotary table computed on the
    fly, say, is right past the declared maximum.

With ``accepts: [error, correct]`` either passes. Always a defect: returning normally where
``correct`` is not accepted; returning outputs of other shapes than the oracle's (a cache sliced
past its end silently returns fewer rows) or wrong values (repeated or stale rows); an unclear
error — an exception type outside ``raises``, an empty message, or one that does not match.

Spec options::

    kind: domain_error
    set: {L: "M + 1"}          # sizes/params: expressions over the drawn ones
    accepts: [error, correct]  # what the implementation may do there (default: [error])
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
    return {"set": parsed, "accepts": _accepts(options, where, context), "raises": tuple(raises), "match": match}


ACCEPTS = ("error", "correct")


def _accepts(options: Mapping[str, Any], where: Where, context: SpecContext) -> tuple[str, ...]:
    """``accepts``: a non-empty list of distinct values from :data:`ACCEPTS`; ``correct`` needs an oracle."""
    accepts = options.get("accepts", ["error"])
    if not isinstance(accepts, list) or not accepts or len(set(map(repr, accepts))) != len(accepts):
        raise where.at("accepts").error(f"expected a non-empty list of distinct values from error, correct; got {accepts!r}")
    unknown = [a for a in accepts if a not in ACCEPTS]
    if unknown:
        raise where.at("accepts").error(f"expected values from error, correct; got {unknown[0]!r}")
    if "correct" in accepts and not context.outputs:
        raise where.at("accepts").error("'correct' needs the spec's oracle to judge by (a spec of pattern checks only has none)")
    return tuple(accepts)


def exception_type(name: Any) -> type[BaseException] | None:
    value = getattr(builtins, name, None) if isinstance(name, str) else None
    return value if isinstance(value, type) and issubclass(value, Exception) else None


KIND = PatternKind(
    name="domain_error",
    required=frozenset({"set"}),
    optional=frozenset({"accepts", "raises", "match"}),
    validate=validate,
    run="conformance.patterns.runs.domain_error:run",
)
