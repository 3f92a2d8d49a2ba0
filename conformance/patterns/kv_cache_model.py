"""Pattern kind ``append_cache``: a key-value cache against a model that concatenates.

A KV cache (Pope et al. 2022, arXiv 2211.05102) appends each decoding step's keys and values
and returns everything since the last reset, so attention (Vaswani et al. 2017, Eq. 1, with causal
masking) of the new queries can run over all earlier positions. The check is a Hypothesis
``RuleBasedStateMachine`` (run with ``run_state_machine_as_test``): any sequence of updates of
drawn lengths, resets and, for ``overflow``, updates past capacity, against a model that keeps the
list of updates and concatenates it. After every step it verifies the checks the spec entry lists:

- ``contents`` — the returned (K, V) equal the concatenation of every update since the last reset,
  bitwise (a cache copies, it does not compute), in shape too; compared in the input's dtype and
  device, so a storage dtype that loses no value is left to ``dtype_device``.
- ``history`` — tensors returned earlier (views allowed) are not changed by later updates or by a
  refused one, until the next reset.
- ``overflow`` — an update past capacity raises ``ValueError`` (or an exception class of the
  implementation's own) whose message names the capacity and the requested length, and loses
  nothing: the next update returns exactly what the last one did, plus what it appends.
- ``dtype_device`` — the returned tensors have the dtype and device of the inputs.
- ``decoding`` — queries of each update attend through the cache, with the spec's ``attention``
  callable ``(q, K, V) -> out``; the result equals full causal attention over the whole sequence
  since the reset (query at absolute position p attends keys 0..p: bottom-right alignment for the
  chunk) in float64, within a tolerance derived from the same computation at the tested dtype.

A failure's detail carries the violated property and the step sequence Hypothesis printed.

>>> from conformance.validation import SpecContext, Where
>>> sorted(validate({"checks": ["contents"]}, Where("s.yaml"), SpecContext("s.yaml")))  # doctest: +NORMALIZE_WHITESPACE
['batch_size', 'checks', 'head_dim', 'max_seq_len', 'max_steps', 'n_heads', 'special_values', 'update_length']
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from conformance.dtype_names import DTYPES
from conformance.patterns import PatternKind
from conformance.patterns.helpers.options import boolean, int_pair, integer
from conformance.validation import SpecContext, Where

CHECKS = ("contents", "history", "overflow", "dtype_device", "decoding")
_RANGES = {  # option -> (default {min, max}, smallest allowed, largest allowed)
    "batch_size": ((1, 2), 1, 16),
    "n_heads": ((1, 3), 1, 16),
    "head_dim": ((1, 8), 1, 64),
    "max_seq_len": ((1, 12), 1, 256),
    "update_length": ((0, 4), 0, 64),
}
_REF_RE = re.compile(r"^(?:[A-Za-z_][\w.]*|[^:]+\.py):[A-Za-z_]\w*$")


def validate(options: Mapping[str, Any], where: Where, context: SpecContext) -> dict:
    """Normalised options (ranges as ``(min, max)`` pairs), or an error at the bad key."""
    checks = options["checks"]
    if not isinstance(checks, list) or not checks:
        raise where.at("checks").error(f"expected a non-empty list from {', '.join(CHECKS)}, got {checks!r}")
    for i, name in enumerate(checks):
        if name not in CHECKS:
            raise where.at("checks", i).error(f"unknown check {name!r}; known: {', '.join(CHECKS)}")
    if len(set(checks)) != len(checks):
        raise where.at("checks").error(f"each check at most once, got {checks}")
    out: dict[str, Any] = {"checks": tuple(checks)}
    for key, ((low, high), lo, hi) in _RANGES.items():
        out[key] = int_pair(options.get(key, {"min": low, "max": high}), where.at(key), lo, hi)
    out["max_steps"] = integer(options.get("max_steps", 20), where.at("max_steps"), 1, 100)
    decoding = "decoding" in checks
    special = boolean(options.get("special_values", not decoding), where.at("special_values"))
    if special and decoding:
        raise where.at("special_values").error("cannot be true with the decoding check: attention of inf/NaN has no reference")
    out["special_values"] = special
    if decoding:
        if "attention" not in options:
            raise where.at("attention").error("the decoding check needs 'attention': a (q, K, V) -> out callable, module:attr")
        ref = options["attention"]
        if not isinstance(ref, str) or not _REF_RE.match(ref):
            raise where.at("attention").error(f"expected 'package.module:attribute' or 'path/file.py:attribute', got {ref!r}")
        out["attention"] = ref
    elif "attention" in options:
        raise where.at("attention").error("only the decoding check uses 'attention'; add decoding to checks or remove it")
    return out


KIND = PatternKind(
    name="append_cache",
    required=frozenset({"checks"}),
    optional=frozenset({*_RANGES, "max_steps", "special_values", "attention"}),
    validate=validate,
    run="conformance.patterns.runs.kv_cache_model:run",
    compares_numbers=True,
    dtypes=DTYPES,
    devices=("cpu", "cuda"),
)
