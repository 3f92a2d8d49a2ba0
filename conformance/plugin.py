"""The pytest driver of the engine (entry point ``pytest11: conformance``).

It stays out of the way of every other test session: importing it imports only pytest, and nothing
else is imported, no Hypothesis profile registered and no CUDA touched unless conformance cases are
collected (a test asking for ``conformance_case``, i.e. ``pytest conformance``). It adds no fixture
an unrelated test could pick up by name; the testing fixtures ``device`` and ``sample_batch`` are
opt-in (``pytest_plugins = ["conformance.fixtures"]``).

- Options: ``--impl SPEC_ID=MODULE:ATTR`` (repeatable), ``--spec-dir DIR``, ``--xfail-file FILE``, ``--report-dir DIR``;
  Hypothesis's ``--hypothesis-profile`` picks one of the ``conformance-*`` profiles.
- Generates one test per case (:func:`conformance.selection.build_cases`); each runs the case with
  :func:`conformance.engine.run_case` and turns the result's outcome into pytest's.
- Collects each test's :class:`conformance.results.Result` from ``report.user_properties`` (which
  pytest-xdist carries to the controller) and writes ``conformance.json`` and ``conformance.md`` at the
  end of the session, whatever the outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

CASE_KEY = "conformance.case"
RESULT_KEY = "conformance.result"
PROFILE_PREFIX = "conformance-"


class ConformanceSession:
    """Per-run state: the generated cases, the collected results, the written report files."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.results: dict[str, Any] = {}  # nodeid -> Result
        self.cases: list | None = None
        self.written: list[Path] = []

    @property
    def profile(self) -> str:
        from conformance import profiles

        return profiles.choose(self.config.getoption("hypothesis_profile", None))

    def cases_for_run(self) -> list:
        if self.cases is None:
            from conformance import profiles
            from conformance.loader.xfail_file import load_xfail_files
            from conformance.refs import ImplementationError
            from conformance.selection import build_cases, parse_impl_options
            from conformance.spec import SpecError, load_specs

            profiles.register()
            try:
                specs = load_specs(self.config.getoption("spec_dir"))
                overrides = parse_impl_options(self.config.getoption("impl"), specs)
                xfails = load_xfail_files(self.config.getoption("xfail_file"))
                self.cases = build_cases(specs, overrides, xfails=xfails)  # imports the implementations
            except (SpecError, ImplementationError, ValueError) as exc:
                raise pytest.UsageError(f"conformance: {exc}") from None
        return self.cases

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = dict(report.user_properties)
        if CASE_KEY not in props:
            return
        from conformance.report.rows import merge_phase

        self.results[report.nodeid] = merge_phase(self.results.get(report.nodeid), report, props[CASE_KEY], props.get(RESULT_KEY))

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if hasattr(self.config, "workerinput") or not self.results:
            return  # an xdist worker (the controller writes the report), or no conformance tests ran
        from conformance.report import write_reports

        out_dir = Path(self.config.invocation_params.dir) / self.config.getoption("report_dir")
        argv = ["pytest", *(str(a) for a in self.config.invocation_params.args)]
        verdict_only = bool(self.config.getoption("verdict_only"))
        baseline = self.config.getoption("conformance_baseline")
        specs = {c.spec.id: c.spec for c in self.cases or ()}.values()
        self.written = write_reports(
            list(self.results.values()),
            out_dir,
            profile=self.profile,
            argv=argv,
            verdict_only=verdict_only,
            specs=specs,
            baseline=Path(self.config.invocation_params.dir) / baseline if baseline else None,
        )

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.written:
            return
        counts: dict[str, int] = {}
        for result in self.results.values():
            counts[result.outcome] = counts.get(result.outcome, 0) + 1
        terminalreporter.write_sep("-", "conformance report")
        terminalreporter.write_line(f"{len(self.results)} rows: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
        for path in self.written:
            terminalreporter.write_line(f"written: {path}")


_SESSION = pytest.StashKey[ConformanceSession]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance", "paper-to-code conformance")
    group.addoption(
        "--impl",
        action="append",
        default=[],
        metavar="SPEC_ID=MODULE:ATTR",
        help="test only these implementations (module:attr or path/file.py:attr); repeatable",
    )
    group.addoption(
        "--spec-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="also load the *.yaml specs in DIR (or one spec file); repeatable",
    )
    group.addoption(
        "--xfail-file",
        action="append",
        default=[],
        metavar="FILE",
        help="reviewed expected failures of your implementations (YAML: xfail: [{spec, implementation, check, reason}])",
    )
    group.addoption(
        "--verdict-only",
        action="store_true",
        default=False,
        help="no shrinking: a failing check reports its first failing example (fast feedback, same verdicts)",
    )
    group.addoption(
        "--conformance-baseline",
        default=None,
        metavar="REPORT.json",
        help="a report to compare with (e.g. reports/baseline/conformance.json): its regressions lead conformance.md",
    )
    group.addoption(
        "--report-dir",
        default="reports/latest",
        metavar="DIR",
        help="where conformance.json, conformance.md and junit.xml are written (default: reports/latest)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    session = ConformanceSession(config)
    config.stash[_SESSION] = session
    config.pluginmanager.register(session, "conformance-session")
    if str(config.getoption("hypothesis_profile", None) or "").startswith(PROFILE_PREFIX):
        from conformance import profiles

        profiles.register()  # before Hypothesis's own plugin loads the profile named
    if config.getoption("impl") or config.getoption("spec_dir") or config.getoption("xfail_file"):
        session.cases_for_run()  # bad options are usage errors now, before any collection


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "conformance_case" not in metafunc.fixturenames:
        return
    cases = metafunc.config.stash[_SESSION].cases_for_run()
    metafunc.parametrize("conformance_case", [pytest.param(c, id=c.id) for c in cases])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Attach each case's identity to its item, so every phase's report carries it."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "conformance_case" in callspec.params:
            item.user_properties.append((CASE_KEY, callspec.params["conformance_case"].identity()))


@pytest.fixture
def conformance_run(request: pytest.FixtureRequest) -> Callable[[Any], Any]:
    """Run a case through the engine, record its result on the test's report, and give pytest its outcome."""

    def run(case: Any) -> Any:
        from conformance import engine, profiles

        verdict_only = request.config.getoption("verdict_only")
        result = engine.run_case(case, profiles.settings_for(request.config.stash[_SESSION].profile, verdict_only=verdict_only))
        request.node.user_properties.append((RESULT_KEY, result.to_json()))
        _as_pytest_outcome(result)
        return result

    return run


def _as_pytest_outcome(result: Any) -> None:
    if result.outcome == "skipped":
        pytest.skip(result.message or "skipped")
    if result.outcome == "xfailed":
        pytest.xfail(result.message or "expected failure")
    if result.outcome == "failed":
        snippet = f"\nReproduce with:\n{result.repro}" if result.repro else ""
        pytest.fail(f"{result.message or 'failed'}{snippet}", pytrace=False)
    if result.outcome == "error":
        pytest.fail(f"{result.message}\n{result.traceback or ''}".rstrip(), pytrace=False)
