"""Pieces the HTML report's parts share: escaping, outcome symbols, number formats, the worst ratio, ids."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

from conformance.report.html_plot import number

# Each outcome has a symbol and a word as well as a colour, so a cell reads without colour too.
SYMBOL = {"passed": "✓", "failed": "✗", "error": "!", "skipped": "–", "xfailed": "≈"}
WORD = {"passed": "pass", "failed": "FAIL", "error": "ERROR", "skipped": "skip", "xfailed": "xfail"}
# A cell holding several rows shows the worst of them, in this order.
SEVERITY = ("error", "failed", "xfailed", "passed", "skipped")
DEVICE_ORDER = ("cpu", "cuda")
DTYPE_ORDER = ("exact", "float64", "float32", "bfloat16", "float16")


def e(value: Any) -> str:
    """``value`` as escaped HTML text (quotes included, for attributes); None is the empty string."""
    return "" if value is None else escape(str(value), quote=True)


def outcome_badge(outcome: str) -> str:
    """An outcome's symbol and word, e.g. ``✗ FAIL``, coloured by its class."""
    return f'<span class="sym o-{e(outcome)}">{SYMBOL.get(outcome, "?")}</span> {e(WORD.get(outcome, outcome))}'


def fmt(value: Any) -> str:
    """A measured number for display (3 significant digits); ``—`` when there is none."""
    v = number(value)
    if v is None:
        return "—" if value is None else str(value)
    if v == 0 or not math.isfinite(v):
        return "0" if v == 0 else str(v)
    return f"{v:.3g}"


def worst_ratio(row: Mapping[str, Any]) -> float | None:
    """The row's error as a fraction of its tolerance (its worst example's, or its falsifying example's);
    the largest sample's ratio where the row has no tolerance; None where there is neither."""
    err, tol = number(row.get("max_abs_err")), number(row.get("tolerance"))
    if err is not None and tol is not None and tol > 0:
        return err / tol if not math.isnan(err) else math.nan
    ratios = [number(s[1]) for s in row.get("samples") or () if isinstance(s, (list, tuple)) and len(s) == 2]
    finite = [r for r in ratios if r is not None]
    return max(finite, key=lambda r: math.inf if math.isnan(r) else r) if finite else None


def ratio_text(ratio: float | None) -> str:
    """A ratio for display, e.g. ``0.42×``, ``500×`` or ``9.7e13×``."""
    if ratio is None:
        return ""
    if math.isnan(ratio):
        return "nan×"
    if math.isinf(ratio):
        return "∞×"
    if ratio == 0 or 0.01 <= abs(ratio) < 100:
        return f"{ratio:.2g}×"
    if 100 <= abs(ratio) < 1e4:
        return f"{ratio:.0f}×"
    mantissa, exponent = f"{ratio:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}×"


def worst_outcome(outcomes: Iterable[str]) -> str:
    """The most severe of ``outcomes`` (see :data:`SEVERITY`)."""
    present = set(outcomes)
    return next((o for o in SEVERITY if o in present), next(iter(sorted(present)), "skipped"))


def column_key(column: tuple[str, str]) -> tuple[int, str, int, str]:
    """Sort key of a (device, dtype) column: known devices and dtypes in their usual order first."""
    device, dtype = column
    d = DEVICE_ORDER.index(device) if device in DEVICE_ORDER else len(DEVICE_ORDER)
    t = DTYPE_ORDER.index(dtype) if dtype in DTYPE_ORDER else len(DTYPE_ORDER)
    return (d, device, t, dtype)


def anchor_ids(spec_ids: Iterable[str]) -> dict[str, str]:
    """A unique, safe HTML id per spec id (``spec-<id>`` with other characters replaced)."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for spec_id in spec_ids:
        base = "spec-" + (re.sub(r"[^A-Za-z0-9_-]", "_", spec_id) or "_")
        anchor, n = base, 1
        while anchor in used:
            n += 1
            anchor = f"{base}-{n}"
        used.add(anchor)
        out[spec_id] = anchor
    return out


def paper_link(arxiv: Any, url: Any) -> str:
    """The paper's arXiv abstract as a link (or its ``http(s)`` URL); other URLs are shown as text only."""
    if arxiv:
        return f'<a href="https://arxiv.org/abs/{e(arxiv)}" rel="noreferrer">arXiv:{e(arxiv)}</a>'
    if isinstance(url, str) and re.match(r"https?://", url):
        return f'<a href="{e(url)}" rel="noreferrer">{e(url)}</a>'
    return e(url) if url else "no arXiv id"


def row_attrs(row: Mapping[str, Any]) -> str:
    """The ``data-*`` attributes the filters read off a check row."""
    return (
        f'data-spec="{e(row["spec"])}" data-impl="{e(row["implementation"])}" data-device="{e(row["device"])}" '
        f'data-dtype="{e(row["dtype"])}" data-outcome="{e(row["outcome"])}"'
    )


def first_line(text: Any, limit: int = 240) -> str:
    """The first line of ``text``, at most ``limit`` characters (an ellipsis marks a cut)."""
    line = str(text or "").strip().splitlines()[0] if str(text or "").strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def equation_label(equation: Any) -> str:
    """``Eq. 12`` for a numbered equation; a figure, table or section reference as given (``Fig. 1``)."""
    text = str(equation or "?")
    return f"Eq. {text}" if re.match(r"[0-9(]", text) else text


def breakable(name: Any) -> str:
    """An escaped dotted or path-like name with break opportunities after ``.``, ``:`` and ``/``."""
    return re.sub(r"([.:/])", r"\1<wbr>", e(name))
