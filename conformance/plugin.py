"""The pytest plugin (entry point ``pytest11: conformance``).

- Options: ``--impl SPEC_ID=MODULE:ATTR`` (repeatable), ``--spec-dir DIR``, ``--report-dir DIR``.
- Generates one test per (spec, implementation, device, dtype, check) for the suite's
  ``conformance_case`` parameter, plus per-spec cases (symbolic facts, oracle cross-check).
- Collects each test's row from ``report.user_properties`` (which pytest-xdist carries to the
  controller) and writes ``conformance.json`` and ``conformance.md`` at the end of the session,
  whatever the outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conformance import profiles
from conformance.testing import device, sample_batch  # noqa: F401  (fixtures for users' own tests)

profiles.register()
CASE_KEY = "conformance.case"
RESULT_KEY = "conformance.result"


class ConformanceSession:
    """Per-run state: the generated cases, the collected rows, the written report files."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.rows: dict[str, dict[str, Any]] = {}
        self.cases: list | None = None
        self.written: list[Path] = []
        self.profile = profiles.choose(config.getoption("hypothesis_profile", None))

    def cases_for_run(self) -> list:
        if self.cases is None:
            from conformance.calling import ImplementationError
            from conformance.selection import build_cases, parse_impl_options
            from conformance.spec import SpecError, load_specs

            try:
                specs = load_specs(self.config.getoption("spec_dir"))
                overrides = parse_impl_options(self.config.getoption("impl"), specs)
            except (SpecError, ImplementationError, ValueError) as exc:
                raise pytest.UsageError(f"conformance: {exc}") from None
            self.cases = build_cases(specs, overrides)
        return self.cases

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = dict(report.user_properties)
        if CASE_KEY not in props:
            return
        from conformance.report.rows import merge_phase

        self.rows[report.nodeid] = merge_phase(self.rows.get(report.nodeid), report, props[CASE_KEY], props.get(RESULT_KEY))

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if hasattr(self.config, "workerinput") or not self.rows:
            return  # an xdist worker (the controller writes the report), or no conformance tests ran
        from conformance.report import write_reports

        out_dir = Path(self.config.invocation_params.dir) / self.config.getoption("report_dir")
        self.written = write_reports(
            list(self.rows.values()), out_dir, profile=self.profile, argv=[str(a) for a in self.config.invocation_params.args]
        )

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.written:
            return
        counts: dict[str, int] = {}
        for row in self.rows.values():
            counts[row["outcome"]] = counts.get(row["outcome"], 0) + 1
        terminalreporter.write_sep("-", "conformance report")
        terminalreporter.write_line(f"{len(self.rows)} rows: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
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
        "--report-dir",
        default="reports/latest",
        metavar="DIR",
        help="where conformance.json and conformance.md are written (default: reports/latest)",
    )


def pytest_configure(config: pytest.Config) -> None:
    session = ConformanceSession(config)
    config.stash[_SESSION] = session
    config.pluginmanager.register(session, "conformance-session")
    if config.getoption("impl") or config.getoption("spec_dir"):
        session.cases_for_run()  # bad options are usage errors now, before any collection


def pytest_sessionstart(session: pytest.Session) -> None:
    """Warm CUDA up so the first example does not pay for context creation."""
    import torch

    if torch.cuda.is_available():
        x = torch.randn(64, 64, device="cuda")
        (x @ x).sum().item()
        torch.cuda.synchronize()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "conformance_case" not in metafunc.fixturenames:
        return
    cases = metafunc.config.stash[_SESSION].cases_for_run()
    metafunc.parametrize("conformance_case", [pytest.param(c, id=c.id, marks=_marks(c)) for c in cases])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Attach each case's identity to its item, so every phase's report carries it."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "conformance_case" in callspec.params:
            item.user_properties.append((CASE_KEY, callspec.params["conformance_case"].row()))


@pytest.fixture
def conformance_settings(request: pytest.FixtureRequest) -> Any:
    """The Hypothesis settings of this run's profile (see :mod:`conformance.profiles`)."""
    return profiles.settings_for(request.config.stash[_SESSION].profile)


@pytest.fixture
def conformance_record(request: pytest.FixtureRequest) -> Callable[[dict[str, Any]], None]:
    """Record a case's measured fields on its test's report."""
    return lambda fields: request.node.user_properties.append((RESULT_KEY, fields))


def _marks(case: Any) -> list:
    from conformance.selection import xfail_for

    xf = xfail_for(case)
    return [pytest.mark.xfail(reason=xf.reason, strict=True)] if xf else []
