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

How a cache is built and called is its implementation entry's ``interface:`` (docs/spec-schema.md, Calling
conventions; :func:`validate_interface`): constructor keywords for the sizes, the tested dtype and device; the
update method and literal keywords it takes (``layer_idx: 0``); ``returns: buffer`` with ``length:`` for a cache
that returns its whole buffer and says how much of it is filled (torchtune's ``KVCache``, ``size``);
``capacity: false`` for one that grows without bound (transformers' ``DynamicCache``), where ``overflow`` does
not apply; the reset method; ``to_device: true`` for an ``nn.Module`` built without a device and moved there.

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


SIZES = ("batch_size", "max_seq_len", "n_heads", "head_dim", "device", "dtype")  # what a constructor keyword may take
DEFAULT_INTERFACE: dict[str, Any] = {  # the guide's KVCache(batch_size, max_seq_len, n_heads, head_dim, device)
    "init": {n: n for n in SIZES[:5]},
    "update": "update",
    "constants": {},
    "returns": "contents",
    "length": None,
    "capacity": True,
    "reset": "reset",
    "to_device": False,  # true: an nn.Module whose constructor takes no device, moved with .to(device) once built
}
_KEYS = frozenset(DEFAULT_INTERFACE)


def validate_interface(body: Mapping[str, Any], where: Where) -> dict[str, Any]:
    """An implementation entry's calling convention for a cache: :data:`DEFAULT_INTERFACE` with the keys it gives.

    >>> from conformance.validation import Where
    >>> validate_interface({"returns": "buffer", "length": "size"}, Where("s.yaml", ("interface",)))["length"]
    'size'
    >>> validate_interface({"returns": "buffer"}, Where("s.yaml", ("interface",)))
    Traceback (most recent call last):
    ...
    conformance.validation.SpecError: s.yaml: interface.length: with returns: buffer, name the attribute or method ...
    """
    if not isinstance(body, Mapping):
        raise where.error(f"expected a mapping with keys from {', '.join(sorted(_KEYS))}, got {type(body).__name__}")
    for key in body:
        if key not in _KEYS:
            raise where.at(key).error(f"unknown key; a cache's interface takes {', '.join(sorted(_KEYS))}")
    out = {**DEFAULT_INTERFACE, **body}
    init = out["init"]
    if not isinstance(init, Mapping):
        raise where.at("init").error("expected a mapping constructor keyword -> one of " + ", ".join(SIZES))
    for kw, size in init.items():
        if not (isinstance(kw, str) and kw.isidentifier()):
            raise where.at("init", kw).error("expected an identifier as the keyword")
        if size not in SIZES:
            raise where.at("init", kw).error(f"expected one of {', '.join(SIZES)}, got {size!r}")
    for key in ("update", "reset"):
        if not (isinstance(out[key], str) and out[key].isidentifier()):
            raise where.at(key).error(f"expected the name of the cache's method, got {out[key]!r}")
    constants = out["constants"]
    if not isinstance(constants, Mapping) or not all(
        isinstance(v, (bool, int, float, str)) and isinstance(k, str) and k.isidentifier() for k, v in constants.items()
    ):
        raise where.at("constants").error("expected a mapping keyword -> a literal (true/false, a number, a string)")
    if out["returns"] not in ("contents", "buffer"):
        got = out["returns"]
        raise where.at("returns").error(f"expected 'contents' (what is cached) or 'buffer' (the whole storage), got {got!r}")
    length = out["length"]
    if out["returns"] == "buffer" and not (isinstance(length, str) and length.isidentifier()):
        raise where.at("length").error(
            "with returns: buffer, name the attribute or method (no arguments) that gives the cached length, got "
            f"{length!r}"
        )
    if out["returns"] == "contents" and length is not None:
        raise where.at("length").error("applies to returns: buffer only")
    if not isinstance(out["to_device"], bool):
        raise where.at("to_device").error(f"expected true (moved with .to(device) once built) or false, got {out['to_device']!r}")
    if not isinstance(out["capacity"], bool):
        got = out["capacity"]
        raise where.at("capacity").error(f"expected true (max_seq_len is a capacity) or false (grows without bound), got {got!r}")
    return {**out, "init": dict(init), "constants": dict(constants)}


KIND = PatternKind(
    name="append_cache",
    required=frozenset({"checks"}),
    optional=frozenset({*_RANGES, "max_steps", "special_values", "attention"}),
    validate=validate,
    run="conformance.patterns.runs.kv_cache_model:run",
    compares_numbers=True,
    dtypes=DTYPES,
    devices=("cpu", "cuda"),
    interface=validate_interface,
)
