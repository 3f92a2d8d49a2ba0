"""One ``Result`` per case: what a report row says, made in one place (:func:`make_result`).

A result is identified by its key (spec, implementation, device, dtype, check), traces back to a
spec line, and carries the measured errors with the tolerance and its basis, the outcome and why,
and for a failure the falsifying example and a reproduction snippet. ``to_json`` / ``from_json`` are
a lossless round trip (non-finite numbers are written as the strings ``"inf"``, ``"-inf"``, ``"nan"``,
as the report schema says). Every driver (the pytest plugin, the ``conformance run`` command) and the
reports use this type; nothing else builds a row.

>>> r = make_result({"spec": "s", "implementation": "m:f", "device": "cpu", "dtype": "float32", "check": "oracle"},
...                 outcome="passed", measured={"max_abs_err": float("inf")})
>>> r.key, r.to_json()["max_abs_err"], Result.from_json(r.to_json()) == r
(('s', 'm:f', 'cpu', 'float32', 'oracle'), 'inf', True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed")
KEY_FIELDS = ("spec", "implementation", "device", "dtype", "check")
# Written only when set (the report schema lists them as present for some rows only).
_OPTIONAL = ("family", "proof", "error", "traceback", "falsifying_example", "repro", "nodeid", "samples")
_NUMBERS = ("max_abs_err", "max_rel_err", "tolerance", "duration_s")


class ResultError(ValueError):
    """A row that is not a valid result (a missing key field, an unknown outcome)."""


@dataclass(frozen=True)
class Result:
    """One report row. Field order is the JSON's."""

    spec: str
    implementation: str
    device: str
    dtype: str
    check: str
    outcome: str
    title: str | None = None
    paper: str | None = None
    arxiv: str | None = None
    url: str | None = None
    equation: str | None = None
    spec_file: str | None = None
    spec_line: int | None = None
    family: str | None = None  # the check's family (conformance.check_defs): equation, invariant, fact, pattern, ...
    message: str | None = None
    examples: int = 0
    duration_s: float = 0.0
    max_abs_err: float | None = None
    max_rel_err: float | None = None
    tolerance: float | None = None
    tolerance_basis: str | None = None
    detail: str | None = None
    proof: str | None = None
    error: str | None = None
    traceback: str | None = None
    falsifying_example: Mapping[str, Any] | None = None
    repro: str | None = None
    nodeid: str | None = None  # set by the pytest driver
    # per judged example, [largest input magnitude, error / tolerance] (3 significant digits), for the HTML plots
    samples: tuple[tuple[float, float], ...] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # fields a newer writer added; kept, written back

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        """The row's identity: (spec, implementation, device, dtype, check)."""
        return (self.spec, self.implementation, self.device, self.dtype, self.check)

    @property
    def ok(self) -> bool:
        """Whether the row lets a run pass (failed and error rows do not)."""
        return self.outcome not in ("failed", "error")

    def with_nodeid(self, nodeid: str) -> Result:
        return replace(self, nodeid=nodeid)

    def to_json(self) -> dict[str, Any]:
        """The report row (JSON-safe: non-finite numbers as strings; unset optional fields left out)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if f.name in _OPTIONAL and value is None:
                continue
            if f.name == "samples":
                value = [[_json_number(v) for v in point] for point in value]
            out[f.name] = _json_number(value) if f.name in _NUMBERS else _plain(value)
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> Result:
        """The result a row was written from (fields it does not know are kept in ``extra``)."""
        missing = [k for k in (*KEY_FIELDS, "outcome") if k not in row]
        if missing:
            raise ResultError(f"a result row needs {', '.join(missing)}; got keys {', '.join(row)}")
        if row["outcome"] not in OUTCOMES:
            raise ResultError(f"outcome must be one of {', '.join(OUTCOMES)}, got {row['outcome']!r}")
        known = {f.name for f in fields(cls)} - {"extra"}
        values = {k: (_number(v) if k in _NUMBERS else v) for k, v in row.items() if k in known}
        values["samples"] = _points(values.get("samples"))
        return cls(**values, extra={k: v for k, v in row.items() if k not in known})


def make_result(
    identity: Mapping[str, Any],
    *,
    outcome: str,
    message: str | None = None,
    measured: Mapping[str, Any] | None = None,
) -> Result:
    """The one constructor of results: a case's identity, its outcome and why, what was measured.

    ``identity``: the key fields and where the check comes from (``Case.identity()``); ``measured``:
    what the runner recorded (examples, errors, tolerance and basis, detail, proof, error, example, repro).
    """
    if outcome not in OUTCOMES:
        raise ResultError(f"outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
    known = {f.name for f in fields(Result)} - {"extra"}
    data = {**{k: v for k, v in identity.items() if k in known}, **{k: v for k, v in (measured or {}).items() if k in known}}
    extra = {k: v for k, v in (measured or {}).items() if k not in known}
    for name in _NUMBERS:
        if data.get(name) is not None:
            data[name] = _number(data[name])
    data["samples"] = _points(data.get("samples"))
    return Result(**{**data, "outcome": outcome, "message": message}, extra=extra)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    return float(value)  # float("inf"), float("nan") read the strings back


def _points(value: Any) -> tuple[tuple[float, ...], ...] | None:
    """Plot points as tuples of floats (the JSON's lists and ``"inf"`` strings read back)."""
    if not value:
        return None
    return tuple(tuple(float(v) for v in point) for point in value)


def _json_number(value: Any) -> Any:
    if value is None:
        return None
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def _plain(value: Any) -> Any:
    """Mappings as plain dicts (a falsifying example may arrive as a read-only mapping)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def results_equal(a: Result, b: Result) -> bool:
    """Equality that treats NaN errors as equal (a failing row's error may be NaN)."""
    return a.to_json() == b.to_json()
