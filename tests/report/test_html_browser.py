"""``conformance.html`` in a real headless browser (Debian's Chromium through Playwright), opened from
``file://``: a report with one planted wrong implementation (a mean where Titans Eq. 12 sums) renders, its
filters hide the passing rows, the failing equation shows its falsifying example, the copy button puts the
repro on the clipboard, and the page logs no error and requests nothing.

The screenshot is written beside the report, or to ``$CONFORMANCE_HTML_ARTIFACTS`` (with the report) when set.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)").expect

from tools.report_screenshots import CHROMIUM, browser, planted_report  # noqa: E402

pytestmark = pytest.mark.skipif(
    not (shutil.which(CHROMIUM) or shutil.which("chromium")), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"
)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The planted-defect run's HTML report (its JSON beside it)."""
    return planted_report(tmp_path_factory.mktemp("planted"))


def _visible(page: Any, selector: str) -> int:
    return page.locator(selector).evaluate_all("els => els.filter(e => e.offsetParent !== null).length")


def test_the_report_works_in_a_browser_from_file_urls(report: Path) -> None:
    rows = json.loads((report.parent / "conformance.json").read_text())["results"]
    failing = [i for i, r in enumerate(rows) if r["outcome"] == "failed"]
    assert failing and any(r["outcome"] == "passed" for r in rows), "the planted defect fails some checks, not all"
    with browser() as context:
        context.grant_permissions(["clipboard-read", "clipboard-write"])
        page = context.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        page.goto(report.as_uri())

        assert page.locator("table.matrix td.cell.o-failed").first.is_visible()
        assert page.locator(f"#r{failing[0]}").is_visible() and _visible(page, 'tr[data-row][data-outcome="passed"]') > 0

        page.select_option("#f-outcome", "failed")
        assert _visible(page, 'tr[data-row][data-outcome="passed"]') == 0
        assert _visible(page, "tr[data-row].o-failed:not(.detail)") == len(failing)
        assert "outcome=failed" in page.evaluate("location.hash")
        assert page.locator("#shown").inner_text() == f"Showing {len(failing)} of {len(rows)} checks"

        page.reload()  # the filter's state is kept in the URL
        assert page.locator("#f-outcome").input_value() == "failed"
        assert _visible(page, 'tr[data-row][data-outcome="passed"]') == 0

        section = page.locator(f'section.spec[data-spec="{rows[failing[0]]["spec"]}"]')
        example = section.locator("pre.example").first
        assert example.is_visible() and f"seed = {rows[failing[0]]['falsifying_example']['seed']}" in example.inner_text()

        page.keyboard.press("n")  # the first failure, by keyboard
        assert page.evaluate("document.activeElement.id") == f"r{failing[0]}"

        section.locator("button.copy").first.click()
        expect(section.locator(".copyrow .status").first).to_have_text("Copied", timeout=3000)
        assert page.evaluate("navigator.clipboard.readText()") == rows[failing[0]]["repro"]

        page.screenshot(path=str(_artifacts(report) / "conformance-html.png"), full_page=True)
        _copy_falls_back_without_the_clipboard_api(context, report, page, rows[failing[-1]]["repro"])
        assert not problems, f"console errors: {problems}"
        assert not context.refused, f"the report requested {context.refused}"


def _copy_falls_back_without_the_clipboard_api(context: Any, report: Path, reader: Any, repro: str) -> None:
    """Where ``navigator.clipboard`` is missing, the copy button copies from a selected textarea instead."""
    page = context.new_page()
    page.add_init_script("Object.defineProperty(Navigator.prototype, 'clipboard', {get: () => undefined})")
    page.goto(report.as_uri())
    assert page.evaluate("navigator.clipboard === undefined")
    page.locator("button.copy").last.click()
    expect(page.locator(".copyrow .status").last).to_have_text("Copied", timeout=3000)
    assert reader.evaluate("navigator.clipboard.readText()") == repro
    page.close()


def _artifacts(report: Path) -> Path:
    """Where the screenshot goes: ``$CONFORMANCE_HTML_ARTIFACTS`` (the report copied there too), or the report dir."""
    target = os.environ.get("CONFORMANCE_HTML_ARTIFACTS")
    if not target:
        return report.parent
    out = Path(target)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(report, out / "conformance.html")
    return out
