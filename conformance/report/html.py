"""``conformance.html``: one self-contained page (in progress: see issue 10)."""

from __future__ import annotations

import html
from typing import Any


def render_html(report: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(r['spec'])}</td><td>{html.escape(r['implementation'])}</td><td>{r['device']}</td>"
        f"<td>{r['dtype']}</td><td>{html.escape(r['check'])}</td><td>{r['outcome']}</td></tr>"
        for r in report["results"]
    )
    return f"<!doctype html><meta charset=utf-8><title>Conformance report</title><table>{rows}</table>\n"
