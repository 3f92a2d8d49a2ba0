"""Derived tolerances: how far an implementation may be from the float64 oracle.

The rule (after flash-attention's tests): the implementation's max error against the float64
oracle may be at most ``factor`` times the max error of a *same-precision reference* (the spec's
own equation evaluated in the tested dtype, or in the spec's declared compute dtype and rounded to
the tested dtype), plus a noise floor of ``floor_ulps`` units of the dtype's epsilon at the output's
scale (a pure ratio breaks when the reference happens to be exact). Invariants add *slack*: the
float64 oracle's own violation of the relation (e.g. the ε in RMSNorm breaks exact scale
invariance). Without a same-precision reference the bound is ``fallback_ulps`` epsilons at scale.
At float64 the reference would be the oracle itself (error 0 by construction, leaving only the floor
for computations of any depth), so a float32 stand-in's error, rescaled by the ratio of epsilons,
is the baseline. That rule is written once, :func:`reference_baselines` (and
:func:`reference_tolerance` for one comparison); every check and pattern kind that compares numbers
goes through it. :func:`worst` picks the measurement that decides a row of several.

Defaults: factor 2, floor 8 ulps, fallback 64 ulps. A spec may override factor/floor per dtype
only with a written ``reason``.

>>> from conformance.model import ToleranceRule
>>> tol = derive("float32", baseline=1e-7, scale=1.0, rule=ToleranceRule())
>>> round(tol.atol, 12)  # 2 × 1e-7 + 8 × eps(float32)
1.153674e-06
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from conformance.dtype_helpers import eps, smallest_normal

if TYPE_CHECKING:
    from conformance.model import ToleranceRule

FALLBACK_ULPS = 64.0
OWN_BASIS = "float64 oracle's own rounding"  # what a comparison's ``own`` part is, unless it says otherwise


@dataclass(frozen=True)
class Tolerance:
    """One comparison's tolerance and its parts (where it varies per element: at the deciding element).

    ``own``: the float64 oracle's own rounding error where it is not negligible (see
    :func:`own_error`); it counts ``factor`` times, like the reference error, because the oracle and
    a correct implementation both make it. ``per_element``: whether the noise floor (and ``own``)
    were set element by element, from the scale of each element's terms.
    """

    atol: float
    baseline: float | None
    floor: float
    slack: float
    factor: float
    reason: str | None
    own: float = 0.0
    per_element: bool = False
    sensitivity: float = 0.0  # invariants: how far the implementation's violation moves with its inputs' last bits
    own_basis: str = OWN_BASIS  # what ``own`` measured, in the report's words

    def describe(self) -> str:
        parts = []
        if self.baseline is not None:
            parts.append(f"{self.factor:g}×{self.baseline:.3g} (same-precision reference error)")
        parts.append(f"{self.floor:.3g} (noise floor{', at this element' if self.per_element else ''})")
        if self.own:
            parts.append(f"{self.factor:g}×{self.own:.3g} ({self.own_basis})")
        if self.sensitivity:
            parts.append(f"{self.factor:g}×{self.sensitivity:.3g} (implementation's own sensitivity to its inputs' rounding)")
        if self.slack:
            parts.append(f"{self.slack:.3g} (oracle's own violation)")
        text = " + ".join(parts)
        return text + (f"; override: {self.reason}" if self.reason else "")


@dataclass(frozen=True)
class Measurement:
    """One comparison: errors, the tolerance used, and the verdict."""

    max_abs_err: float
    max_rel_err: float
    tolerance: Tolerance | None
    passed: bool
    detail: str = ""
    examples: int = 1  # how many cases a pattern check tried (property checks count their own)
    example: Mapping[str, Any] | None = None  # a failing pattern check's example, JSON-able, for its kind's replay
    worst_ratio: float | None = None  # where tolerances vary per element: the largest error over its tolerance
    vacuous: bool = False  # the tolerance reached the output's own magnitude: zeros would pass (see compare)

    @property
    def ratio(self) -> float:
        """Error over tolerance: above 1 fails; used to keep the worst example."""
        if self.worst_ratio is not None:
            return self.worst_ratio
        if self.tolerance is None:
            return 0.0 if self.passed else float("inf")
        return (
            self.max_abs_err / self.tolerance.atol
            if self.tolerance.atol > 0
            else (0.0 if self.max_abs_err == 0 else float("inf"))
        )


def smallest_spacing(dtype: str) -> float:
    """The gap between 0 and the smallest positive (subnormal) number of ``dtype``: the absolute rounding
    error of a result far below the normal range is that size, however small its scale (float16's is
    2⁻²⁴ ≈ 6e-8: a float16 output of 1e-7 cannot be nearer than that to the exact one).

    >>> smallest_spacing("float16") == 2.0**-24
    True
    """
    return eps(dtype) * smallest_normal(dtype)


def derive(dtype: str, *, baseline: float | None, scale: float, rule: ToleranceRule, slack: float = 0.0) -> Tolerance:
    """The absolute tolerance for one comparison at ``dtype`` (see the module docstring)."""
    unit = max(eps(dtype) * scale, smallest_spacing(dtype))  # below the normal range: the subnormal spacing
    floor = rule.floor_ulps * unit
    if baseline is None or not np.isfinite(baseline):
        return Tolerance(FALLBACK_ULPS * unit + slack, None, FALLBACK_ULPS * unit, slack, rule.factor, rule.reason)
    return Tolerance(rule.factor * baseline + floor + slack, baseline, floor, slack, rule.factor, rule.reason)


RESCALED_REFERENCE_DTYPE = {"float64": "float32"}  # tested dtype -> where its stand-in reference runs


def rescaled_baseline(error: float, measured_at: str, dtype: str) -> float:
    """A reference's error measured at dtype ``measured_at``, carried to ``dtype`` by the ratio of epsilons.

    Used where the tested dtype is float64 and the float64 expected value is computed the same way as
    the result under test, so a same-precision reference would be exact by construction: the error of
    the same computation at float32 measures its conditioning, and to first order rounding error is
    proportional to the unit roundoff.

    >>> rescaled_baseline(1.0e-6, "float32", "float64") == 1.0e-6 * 2.0**-52 / 2.0**-23
    True
    """
    return error * eps(dtype) / eps(measured_at)


def stand_in_dtype(dtype: str) -> str | None:
    """Where the same-precision reference at ``dtype`` would be the oracle itself: the dtype it runs at instead.

    >>> stand_in_dtype("float64"), stand_in_dtype("float32")
    ('float32', None)
    """
    return RESCALED_REFERENCE_DTYPE.get(dtype)


def reference_baselines(
    dtype: str, error_at: Callable[[str], Sequence[float] | None], *, stand_in: bool = True
) -> list[float] | None:
    """The same-precision reference's error per compared result, at the tested ``dtype``.

    ``error_at(at)`` measures the reference's errors (one per result) with the reference run at dtype
    ``at``, or returns ``None`` where there is no reference. It is called once: at ``dtype`` itself,
    or — where the reference at ``dtype`` would be the expected computation itself (float64) and
    ``stand_in`` allows it — at the stand-in dtype, whose errors are carried to ``dtype`` by the
    ratio of epsilons (:func:`rescaled_baseline`). ``stand_in=False`` where the reference is computed
    differently from the oracle anyway (a declared compute dtype).

    >>> reference_baselines("float64", lambda at: [1.0] if at == "float32" else [0.0]) == [2.0**-29]
    True
    >>> reference_baselines("float32", lambda at: [3e-7])
    [3e-07]
    """
    at = stand_in_dtype(dtype) if stand_in else None
    errors = error_at(at or dtype)
    if errors is None:
        return None
    return [rescaled_baseline(e, at, dtype) for e in errors] if at else [float(e) for e in errors]


def reference_tolerance(
    dtype: str, rule: ToleranceRule, error_at: Callable[[str], float | None], *, scale: float, slack: float = 0.0
) -> Tolerance:
    """The tolerance of one comparison whose same-precision reference's error ``error_at(at)`` measures.

    :func:`reference_baselines` for a single result, then :func:`derive` under the spec's ``rule``.

    >>> from conformance.model import ToleranceRule
    >>> tol = reference_tolerance("float64", ToleranceRule(), lambda at: 2.0**-20, scale=1.0)
    >>> tol.baseline == 2.0**-49
    True
    """
    found = reference_baselines(dtype, lambda at: _one(error_at(at)))
    return derive(dtype, baseline=None if found is None else found[0], scale=scale, rule=rule, slack=slack)


def _one(error: float | None) -> list[float] | None:
    return None if error is None else [error]


def worst(measurements: Iterable[Measurement]) -> Measurement:
    """The measurement that decides a row of several: a failure first, then a vacuous one (which no
    result could fail: the whole is not judged), else the largest error over tolerance.

    Ties keep the first. Raises ``ValueError`` on no measurements.

    >>> a, b = Measurement(1.0, 1.0, None, True), Measurement(2.0, 2.0, None, False)
    >>> worst([a, b]) is b
    True
    >>> v = Measurement(0.0, 0.0, None, False, vacuous=True)
    >>> worst([a, v]) is v, worst([v, b]) is b
    (True, True)
    """
    return max(measurements, key=lambda m: (not m.passed and not m.vacuous, m.vacuous, m.ratio))


def max_abs(a: np.ndarray, b: np.ndarray) -> float:
    """Max |a − b|, where equal infinities count as 0 and a NaN on either side as infinite."""
    return float(np.max(_abs_errors(a, b), initial=0.0))


def compare(
    actual: np.ndarray,
    expected: np.ndarray,
    *,
    dtype: str,
    rule: ToleranceRule,
    reference: np.ndarray | None = None,
    slack: float = 0.0,
    scale: float | np.ndarray | None = None,
    baseline: float | None = None,
    own: np.ndarray | None = None,
    own_basis: str = OWN_BASIS,
) -> Measurement:
    """Compare ``actual`` with the float64 ``expected``; ``reference`` is the same-precision result.

    Without a ``reference``, ``baseline`` (if given) is the same-precision reference's error itself,
    e.g. one carried over from another dtype by :func:`rescaled_baseline`. ``scale`` is the noise
    floor's scale: one number (default: the largest |expected|) or one per element (the magnitude of
    the terms each element is computed from); ``own`` (per element) the float64 oracle's own rounding
    error (:func:`own_error`), or another per-element error a correct result may make, named by ``own_basis``
    in the tolerance's description. With per-element parts each element has its own tolerance, the one
    with the largest error over tolerance decides, and the detail names it.

    A tolerance that reaches the output's own largest magnitude at every element fails as *vacuous*:
    no finite result, zeros included, could fail it, so the example proves nothing (never a pass); an infinite
    or NaN result where the expected one is finite still fails.
    """
    expected = np.asarray(expected, dtype=np.float64)
    if np.shape(actual) != expected.shape:  # never broadcast: a wrong shape fails (it used to raise or pass)
        return Measurement(float("inf"), float("inf"), None, False, f"shape {np.shape(actual)} != expected {expected.shape}")
    finite = bool(expected.size) and bool(np.all(np.isfinite(expected)))
    if scale is None:
        scale = float(np.max(np.abs(expected))) if finite else 1.0
    if reference is not None:
        baseline = max_abs(reference, expected)
    per_element = np.ndim(scale) > 0 or own is not None
    if not per_element:
        tol = derive(dtype, baseline=baseline, scale=float(scale), rule=rule, slack=slack)
        err = max_abs(actual, expected)
        return _verdict(err, err, tol, None, expected, scale=float(scale))
    return _compare_per_element(
        actual, expected, dtype, rule, baseline, np.asarray(scale, dtype=np.float64), own, slack, own_basis
    )


def _compare_per_element(
    actual: np.ndarray,
    expected: np.ndarray,
    dtype: str,
    rule: ToleranceRule,
    baseline: float | None,
    scale: np.ndarray,
    own: np.ndarray | None,
    slack: float,
    own_basis: str = OWN_BASIS,
) -> Measurement:
    """:func:`compare` where the floor (or the oracle's own error) differs from element to element."""
    scales = np.broadcast_to(scale, expected.shape)
    owns = np.zeros(expected.shape) if own is None else np.broadcast_to(np.asarray(own, dtype=np.float64), expected.shape)
    owns = np.where(np.isfinite(owns), owns, 0.0)
    units = np.maximum(eps(dtype) * scales, smallest_spacing(dtype))  # at least the subnormal spacing
    measured = baseline is not None and bool(np.isfinite(baseline))
    ulps = rule.floor_ulps if measured else FALLBACK_ULPS
    with np.errstate(over="ignore"):
        tols = (rule.factor * float(baseline) if measured else 0.0) + ulps * units + rule.factor * owns + slack
        errs = _abs_errors(actual, expected)
        ratios = np.where(errs == 0, 0.0, errs / np.where(tols > 0, tols, np.inf))
    if expected.size == 0:
        return Measurement(0.0, 0.0, derive(dtype, baseline=baseline, scale=1.0, rule=rule, slack=slack), True)
    k = int(np.argmax(errs))  # the element of the largest error decides where it fails, else the worst ratio
    worst_ratio = float(np.max(ratios))
    if not errs.flat[k] > tols.flat[k]:
        k = int(np.argmax(ratios))
    tol = Tolerance(
        float(tols.flat[k]),
        float(baseline) if measured else None,
        float(ulps * units.flat[k]),
        slack,
        rule.factor,
        rule.reason,
        own=float(owns.flat[k]),
        per_element=bool(np.ndim(scale) > 0),
        own_basis=own_basis,
    )
    where = np.unravel_index(k, expected.shape) if expected.ndim else ()
    return _verdict(
        float(np.max(errs)), float(errs.flat[k]), tol, where, expected, scale=float(np.max(scales)), tols=tols, ratio=worst_ratio
    )


def _abs_errors(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a − b| per element, where equal infinities count as 0 and a NaN on either side as infinite."""
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf and overflow are handled here, not warned about
        diff = np.where(a == b, 0.0, np.abs(a - b))  # equal infinities are no error; NaN never equals anything
    return np.where(np.isnan(diff), np.inf, diff)


def _verdict(
    err: float,
    deciding: float,
    tol: Tolerance,
    where: tuple | None,
    expected: np.ndarray,
    *,
    scale: float,
    tols: np.ndarray | None = None,
    ratio: float | None = None,
) -> Measurement:
    """The measurement of one comparison: passed, failed, or failed as vacuous (see :func:`compare`).

    ``deciding`` is the error at the reported element (the largest where it fails), ``ratio`` the largest
    error over tolerance of any element where tolerances vary per element.
    """
    rel = err / scale if scale > 0 else err
    passed = ratio <= 1.0 if ratio is not None else deciding <= tol.atol
    largest = float(np.max(np.abs(expected[np.isfinite(expected)]), initial=0.0))
    smallest_tol = float(np.min(tols)) if tols is not None and tols.size else tol.atol
    if largest > 0 and smallest_tol >= largest and (passed or math.isfinite(deciding)):  # an inf or NaN still fails
        detail = (
            f"vacuous tolerance: {smallest_tol:.4g} ({tol.describe()}) reaches the output's largest |value| {largest:.4g} "
            "at every element, so no result could fail this example (not counted as a pass)"
        )
        return Measurement(err, rel, tol, False, detail, worst_ratio=ratio, vacuous=True)
    detail = ""
    if not passed:
        units = _in_units(deciding, tol.atol, expected)
        at = "" if not where else f" at element {tuple(int(i) for i in where)}"
        if deciding == err:
            detail = f"max |error| {err:.4g} > tolerance {tol.atol:.4g} = {tol.describe()}{units}{at}"
        else:  # the largest error is within its own tolerance; another element is not
            detail = f"|error| {deciding:.4g} > tolerance {tol.atol:.4g} = {tol.describe()}{units}{at} (max |error| {err:.4g})"
    return Measurement(err, rel, tol, passed, detail, worst_ratio=ratio)


def _in_units(err: float, atol: float, expected: np.ndarray) -> str:
    """A failure's error in units a reader weighs at once: of the tolerance, and of the output's own size.

    >>> print(_in_units(0.5, 1e-3, np.array([2.0, -4.0])))
     [500× the tolerance; 0.12 of the output's largest |value| 4]
    """
    times = f"{err / atol:.3g}×" if atol > 0 else "∞×"
    finite = expected[np.isfinite(expected)]
    largest = float(np.max(np.abs(finite))) if finite.size else 0.0
    of_output = f"; {err / largest:.2g} of the output's largest |value| {largest:.3g}" if largest > 0 else ""
    return f" [{times} the tolerance{of_output}]"
