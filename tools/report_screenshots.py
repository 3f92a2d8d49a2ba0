"""Regenerate the HTML report's screenshots in ``docs/img/`` from a run with one planted defect.

The run: the shipped ``surprise`` spec (Titans Eq. 12, a squared L2 norm) against an implementation that
takes the mean over features instead of the sum, on CPU in float64 under the ``conformance-ci`` profile.
Its report is opened from ``file://`` in headless Chromium (Debian's ``/usr/bin/chromium``, through
Playwright) and two screenshots are written:

- ``docs/img/report-overview.png``: the top of the page (verdict, environment, filters, matrix);
- ``docs/img/report-failure.png``: the failing equation's section, filtered to the failing checks.

Usage: ``python tools/report_screenshots.py [--out docs/img] [--keep DIR]``. ``tests/report/test_html_browser.py``
uses the same run (:func:`planted_report`) and browser (:func:`browser`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
# Eq. 12 is a sum over features; this takes the mean, so the oracle and gradient checks fail.
PLANTED = "def f(hidden, memory_pred):\n    return ((hidden - memory_pred) ** 2).mean(-1)  # a mean, not Eq. 12's sum\n"


def planted_report(directory: Path, impl_ref: str | None = None) -> Path:
    """Run ``surprise`` against the planted mean (written to ``directory/surprise_mean.py`` unless ``impl_ref``
    names it) on CPU float64 and write the reports to ``directory/report``; the HTML report's path."""
    from conformance import engine
    from conformance.report import write_reports

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "surprise_mean.py").write_text(PLANTED, encoding="utf-8")
    ref = impl_ref or f"{directory / 'surprise_mean.py'}:f"
    plan = engine.Plan(impl=(f"surprise={ref}",), select=("cpu", "float64"), profile="conformance-ci")
    cases = plan.cases()
    rows = engine.run(plan, cases=cases)
    specs = list({c.spec.id: c.spec for c in cases}.values())
    argv = ["conformance", "run", "--impl", f"surprise={ref}", "-k", "cpu", "-k", "float64"]
    write_reports(rows, directory / "report", profile="conformance-ci", argv=argv, specs=specs)
    return directory / "report" / "conformance.html"


@contextlib.contextmanager
def browser(viewport: dict[str, int] | None = None) -> Iterator[Any]:
    """A fresh headless Chromium context (its own user data dir) whose every non-``file:`` request is
    refused and recorded in ``context.refused``."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport=viewport or {"width": 1280, "height": 900},
        )
        context.refused = []

        def gate(route: Any) -> None:
            if route.request.url.startswith("file://"):
                route.continue_()
            else:
                context.refused.append(route.request.url)
                route.abort()

        context.route("**/*", gate)
        try:
            yield context
        finally:
            context.close()


def screenshots(html: Path, out: Path) -> list[Path]:
    """Write the overview and failure screenshots of the report at ``html`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    overview, failure = out / "report-overview.png", out / "report-failure.png"
    with browser({"width": 1280, "height": 940}) as context:
        page = context.new_page()
        page.goto(html.resolve().as_uri())
        page.screenshot(path=str(overview))
        page.select_option("#f-outcome", "failed")
        page.evaluate("window.scrollTo(0, 0)")  # so the box is in page coordinates, the sticky filter bar at the top
        box = page.locator("section.spec:not([hidden])").first.bounding_box()
        clip = {"x": 0, "y": box["y"] - 8, "width": 1280, "height": box["height"] + 16}
        page.screenshot(path=str(failure), full_page=True, clip=clip)
        if context.refused:
            raise RuntimeError(f"the report requested {context.refused}; it must load nothing")
    return [overview, failure]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "docs" / "img")
    parser.add_argument("--keep", type=Path, help="run in this directory (kept) instead of a temporary one")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = (args.keep or Path(tmp)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        here = Path.cwd()
        os.chdir(work)  # the planted file is named relative to it, as a reviewer would pass it
        try:
            html = planted_report(work, impl_ref="surprise_mean.py:f")
        finally:
            os.chdir(here)
        for path in screenshots(html, args.out):
            print(f"written: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
