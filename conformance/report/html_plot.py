"""The HTML report's per-check plot: each judged example's error as a fraction of its tolerance, as inline SVG.

A row's ``samples`` are ``[largest input magnitude, error / tolerance]`` pairs (either may be the string
``"inf"`` or ``"nan"``). The plot puts them against the input magnitude (log scale) when the magnitudes span
decades, else in the order judged; the ratio axis is logarithmic when the ratios span two decades or more.
A dashed line marks 1 (the tolerance: above it an example fails); a zero ratio sits on a strip under the axis,
a non-finite one on a strip above it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

WIDTH, HEIGHT = 172, 64
_LEFT, _RIGHT, _TOP, _BOTTOM = 32, 6, 8, 44  # the plot area inside the SVG (pixels)


@dataclass(frozen=True)
class _Axis:
    """A value → pixel map on one axis: ``log`` (base 10) or linear between ``lo`` and ``hi``."""

    lo: float
    hi: float
    log: bool
    start: float  # pixel of lo
    end: float  # pixel of hi

    def at(self, value: float) -> float:
        v = math.log10(value) if self.log else value
        return self.start + (v - self.lo) / (self.hi - self.lo) * (self.end - self.start)

    def label(self, value: float) -> str:
        return _short(10**value if self.log else value)


def number(value: Any) -> float | None:
    """A report number (a float, an int, or ``"inf"``/``"-inf"``/``"nan"``) as a float; None when not one."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value.strip().lower() in ("inf", "+inf", "-inf", "nan"):
        return float(value.strip().lower())
    return None


def _short(value: float) -> str:
    if value == 0:
        return "0"
    if not math.isfinite(value):
        return "nan" if math.isnan(value) else ("∞" if value > 0 else "-∞")
    if 1e-2 <= abs(value) < 1e4:
        return f"{value:.3g}"
    mantissa, exponent = f"{value:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _pairs(samples: Sequence[Any]) -> list[tuple[float, float]]:
    """The samples as (magnitude, ratio) floats, skipping malformed entries."""
    out = []
    for sample in samples:
        if isinstance(sample, (list, tuple)) and len(sample) == 2:
            mag, ratio = number(sample[0]), number(sample[1])
            if mag is not None and ratio is not None:
                out.append((mag, ratio))
    return out


def _x_axis(pairs: list[tuple[float, float]]) -> tuple[_Axis, list[float], str]:
    """The horizontal axis, each point's x value on it, and the axis's caption."""
    mags = [m for m, _ in pairs if math.isfinite(m) and m > 0]
    if len(mags) == len(pairs) and len(set(mags)) * 2 >= len(mags) >= 3 and max(mags) / min(mags) >= 10:
        lo, hi = math.floor(math.log10(min(mags))), math.ceil(math.log10(max(mags)))
        return _Axis(lo, max(hi, lo + 1), True, _LEFT, WIDTH - _RIGHT), [m for m, _ in pairs], "x: largest |input|, log"
    count = max(len(pairs) - 1, 1)
    return _Axis(0, count, False, _LEFT + 3, WIDTH - _RIGHT - 3), [float(i) for i in range(len(pairs))], "x: example"


def _y_axis(ratios: list[float]) -> _Axis:
    """The vertical (error / tolerance) axis; always includes 1, the tolerance."""
    positive = [r for r in ratios if math.isfinite(r) and r > 0] + [1.0]
    if max(positive) / min(positive) >= 100:
        lo, hi = math.floor(math.log10(min(positive))), math.ceil(math.log10(max(positive)))
        return _Axis(lo, max(hi, lo + 1), True, _BOTTOM, _TOP)
    return _Axis(0.0, max(positive) * 1.15, False, _BOTTOM, _TOP)


def _point_y(axis: _Axis, ratio: float) -> float:
    if not math.isfinite(ratio):
        return _TOP - 4
    if ratio <= 0 or (axis.log and ratio < 10**axis.lo):
        return _BOTTOM + 5 if axis.log or ratio < 0 else axis.at(0.0)
    return axis.at(ratio)


def plot_svg(samples: Sequence[Any]) -> str:
    """An inline SVG plot of ``samples`` (empty string when there is nothing to plot)."""
    pairs = _pairs(samples)
    if not pairs:
        return ""
    xaxis, xs, caption = _x_axis(pairs)
    yaxis = _y_axis([r for _, r in pairs])
    good, bad = [], []
    for x, (_, ratio) in zip(xs, pairs):
        dot = f"M{xaxis.at(x):.1f} {_point_y(yaxis, ratio):.1f}h0"
        (good if ratio <= 1 else bad).append(dot)
    worst = max((r for _, r in pairs), key=lambda r: math.inf if math.isnan(r) else r)
    over = sum(1 for _, r in pairs if not r <= 1)
    summary = (
        f"error / tolerance for {len(pairs)} examples ({caption}, {'log' if yaxis.log else 'linear'} scale); "
        f"worst {_short(worst)}; {over} above 1 (the tolerance)"
    )
    tol = yaxis.at(1.0)
    labels = [f'<text x="{_LEFT - 3}" y="{y + 3:.1f}" class="lab">{yaxis.label(v)}</text>'
              for v, y in ((yaxis.hi, float(_TOP)), (yaxis.lo, float(_BOTTOM))) if abs(y - tol) >= 9]
    return (
        f'<svg class="plot" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(summary)}"><title>{escape(summary)}</title>'
        f'<path class="axis" d="M{_LEFT} {_TOP - 6}V{_BOTTOM + 8}H{WIDTH - _RIGHT}"/>'
        f'<path class="tol" d="M{_LEFT} {tol:.1f}H{WIDTH - _RIGHT}"/>'
        + "".join(labels)
        + f'<text x="{_LEFT - 3}" y="{tol + 3:.1f}" class="lab tl">1</text>'
        f'<text x="{WIDTH - _RIGHT}" y="{HEIGHT - 1}" class="lab cap">{caption} · y: {"log" if yaxis.log else "linear"}</text>'
        + (f'<path class="ok" d="{"".join(good)}"/>' if good else "")
        + (f'<path class="bad" d="{"".join(bad)}"/>' if bad else "")
        + "</svg>"
    )
