"""The pytest driver of the engine (entry point ``pytest11: conformance``).

It stays out of the way of every other test session: importing it imports only pytest, and nothing
else is imported, no Hypothesis profile registered and no CUDA touched unless conformance cases are
collected (a test asking for ``conformance_case``, i.e. ``pytest conformance``). It adds no fixture
an unrelated test could pick up by name; the testing fixtures ``device`` and ``sample_batch`` are
opt-in (``pytest_plugins = ["conformance.fixtures"]``).

- Options: ``--impl SPEC_ID=MODULE:ATTR`` (repeatable), ``--spec-dir DIR``, ``--xfail-file FILE``, ``--report-dir DIR``;
  Hypothesis's ``--hypothesis-profile`` picks one of the ``conformance-*`` profiles. ``--grad-audit`` generates the
  gradient audit's cases instead and writes its reports (:mod:`conformance.grad_audit`).
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
_SUITE_TEST = "::test_conformance["  # the suite's test (conformance/test_conformance.py)
RESULT_KEY = "conformance.result"
PROFILE_PREFIX = "conformance-"
_DEFAULT_REPORT_DIR = "reports/latest"  # with --grad-audit, conformance.grad_audit.REPORT_DIR unless --report-dir is given


class ConformanceSession:
    """Per-run state: the generated cases, the collected results, the written report files."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.results: dict[str, Any] = {}  # nodeid -> Result
        self.identities: dict[str, Any] = {}  # nodeid -> case identity, for every conformance test seen or planned
        self.planned: list[str] = []  # nodeids of the collected conformance tests (this process, or xdist's workers)
        self.complete: set[str] = set()  # nodeids whose test ran to its end (a call phase, a failed setup, a crash)
        self.cases: list | None = None
        self.xfail_entries: list = []
        self.written: list[Path] = []
        self.missing = 0

    @property
    def grad_audit(self) -> bool:
        """``--grad-audit``: the gradient audit's cases and reports (``grad_audit.*``) instead of the conformance run's."""
        return bool(self.config.getoption("grad_audit", False))

    @property
    def profile(self) -> str:
        from conformance import profiles

        return profiles.choose(self.config.getoption("hypothesis_profile", None))

    def cases_for_run(self) -> list:
        if self.cases is None:
            from conformance import profiles
            from conformance.loader.xfail_file import load_xfail_files, registry_files
            from conformance.refs import ImplementationError
            from conformance.selection import build_cases, parse_impl_options
            from conformance.spec import SpecError, load_specs

            profiles.register()
            try:
                specs = load_specs(self.config.getoption("spec_dir"))
                overrides = parse_impl_options(self.config.getoption("impl"), specs)
                root = registry_files(self.config.invocation_params.dir)  # the repository's xfails.yaml
                self.xfail_entries = load_xfail_files([*root, *self.config.getoption("xfail_file")])
                # imports the implementations; with --grad-audit, the gradient audit's cases instead
                self.cases = build_cases(specs, overrides, xfails=self.xfail_entries, audit=self.grad_audit)
            except (SpecError, ImplementationError, ValueError) as exc:
                raise pytest.UsageError(f"conformance: {exc}") from None
        return self.cases

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = dict(report.user_properties)
        identity = props.get(CASE_KEY) or self.identities.get(report.nodeid)  # xdist's crash report carries none
        if identity is None:
            return
        from conformance.report.rows import merge_phase

        self.identities[report.nodeid] = identity
        self.results[report.nodeid] = merge_phase(self.results.get(report.nodeid), report, identity, props.get(RESULT_KEY))
        if report.when != "teardown" and (report.when != "setup" or not report.passed):
            self.complete.add(report.nodeid)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:
            identity = dict(item.user_properties).get(CASE_KEY)
            if identity is not None:
                self.planned.append(item.nodeid)
                self.identities[item.nodeid] = identity

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        """The xdist controller: what the workers collected (the same on each), to name what produced no row."""
        if self.planned or not (self.cases is not None or any(_SUITE_TEST in i for i in ids)):
            return
        by_id = {c.id: c.identity() for c in self.cases_for_run()}
        for nodeid in ids:
            identity = by_id.get(nodeid[nodeid.find("[") + 1 : -1]) if nodeid.endswith("]") else None
            if identity is not None:
                self.planned.append(nodeid)
                self.identities[nodeid] = identity

    def _missing(self, session: pytest.Session, exitstatus: int) -> list[dict[str, Any]]:
        """The planned conformance tests that did not run to their end, each with the reason."""
        stopped = session.shouldstop or session.shouldfail
        if exitstatus == pytest.ExitCode.INTERRUPTED:
            reason = "not run: the run was interrupted"
        elif stopped:
            reason = f"not run: the session stopped early ({stopped})"
        else:
            reason = "not run: the test gave no result (its process may have crashed before reporting)"
        keys = ("spec", "implementation", "device", "dtype", "check")
        nodeids = dict.fromkeys([*self.planned, *self.results])
        return [{**{k: self.identities[n][k] for k in keys}, "reason": reason} for n in nodeids if n not in self.complete]

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if hasattr(self.config, "workerinput") or not (self.results or self.planned):
            return  # an xdist worker (the controller writes the report), or no conformance tests ran
        from conformance.report import write_reports

        missing = self._missing(session, exitstatus)
        self.missing = len(missing)

        out_dir = Path(self.config.invocation_params.dir) / self.config.getoption("report_dir")
        argv = ["pytest", *(str(a) for a in self.config.invocation_params.args)]
        verdict_only = bool(self.config.getoption("verdict_only"))
        baseline = self.config.getoption("conformance_baseline")
        from conformance.report.xfails import xfail_statuses

        cases = self.cases if self.cases is not None else self.cases_for_run()  # under xdist: the controller's own
        specs = list({c.spec.id: c.spec for c in cases}.values())
        rows = [r for n, r in self.results.items() if n in self.complete]
        if self.grad_audit:
            from conformance.grad_audit import REPORT_DIR, write_audit

            given = self.config.getoption("report_dir")
            out_dir = Path(self.config.invocation_params.dir) / (REPORT_DIR if given == _DEFAULT_REPORT_DIR else given)
            self.written = write_audit(rows, out_dir, profile=self.profile, argv=argv, specs=specs, missing=missing)
            return
        self.written = write_reports(
            rows,
            out_dir,
            profile=self.profile,
            argv=argv,
            verdict_only=verdict_only,
            specs=specs,
            missing=missing,
            xfails=xfail_statuses(specs, self.xfail_entries, rows),
            baseline=Path(self.config.invocation_params.dir) / baseline if baseline else None,
        )

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.written:
            return
        counts: dict[str, int] = {}
        rows = [r for n, r in self.results.items() if n in self.complete]
        for result in rows:
            counts[result.outcome] = counts.get(result.outcome, 0) + 1
        terminalreporter.write_sep("-", "conformance report")
        terminalreporter.write_line(f"{len(rows)} rows: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
        if self.missing:
            terminalreporter.write_line(f"{self.missing} planned cases have no row; the report lists them as missing")
        for path in self.written:
            terminalreporter.write_line(f"written: {path}")


_SESSION = pytest.StashKey[ConformanceSession]()
_TIMEOUT = pytest.StashKey[float]()


@pytest.hookimpl(optionalhook=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> bool | None:
    """pytest-timeout's ``--timeout`` (signal method) for a conformance test: the engine's own alarm
    (:func:`conformance.engine.run_case_within`), so the row is an ``error`` "timed out" and the run goes on.
    (pytest-timeout's own signal handler raises pytest's ``Failed``, which Hypothesis takes for a failing
    example and replays: the hang again, with no alarm left.) The thread method is left to pytest-timeout."""
    if CASE_KEY not in dict(item.user_properties) or settings.method != "signal" or not settings.timeout:
        return None
    item.stash[_TIMEOUT] = float(settings.timeout)
    return True


@pytest.hookimpl(optionalhook=True)
def pytest_timeout_cancel_timer(item: pytest.Item) -> bool | None:
    return True if item.stash.get(_TIMEOUT, None) is not None else None


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
        "--grad-audit",
        action="store_true",
        default=False,
        help="the gradient audit (conformance audit-grads) instead of the conformance run: writes grad_audit.json, .md "
        "and .html (default report dir reports/grad_audit)",
    )
    group.addoption(
        "--report-dir",
        default=_DEFAULT_REPORT_DIR,
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
        hypothesis_settings = profiles.settings_for(request.config.stash[_SESSION].profile, verdict_only=verdict_only)
        result = engine.run_case_within(case, hypothesis_settings, request.node.stash.get(_TIMEOUT, None))
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
