"""The engine: cases in, results out, without pytest.

:func:`run_case` runs one case's check (:mod:`conformance.runner`) and decides its outcome; the rules
live here and nowhere else:

- ``skipped``: the case's device is not available (the reason says why), before anything runs; or the
  check found it does not apply to this implementation (``CheckSkipped``, with its reason);
- ``passed``: every example was within its tolerance;
- ``failed``: a check's error exceeded its tolerance (or its contract was broken); the message is the
  measured error against the tolerance. A failure Hypothesis could not replay (a nondeterministic
  implementation fails on one call and passes the next: Hypothesis raises ``FlakyFailure`` around the
  check's own failure) is a failure too, and its message says so;
- ``error``: the implementation or the harness raised; the message is the exception;
- ``xfailed``: the case failed or raised and the spec records a reviewed expected failure for it;
- a reviewed expected failure that passes is ``failed`` ("stale xfail"), so the spec's entry is removed;
  unless the entry is not strict (a failure only some seeds find): then the pass is a pass, and says so.

:func:`run` runs many cases, serially or in ``workers`` processes; each worker rebuilds the same cases
from the same :class:`Plan` and runs its share, so any driver gets the same results in the same order.
"""

from __future__ import annotations

import traceback as _traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conformance.results import Result, make_result
from conformance.selection import Case, build_cases, parse_impl_options, xfail_for

if TYPE_CHECKING:
    from hypothesis import settings

STALE_XFAIL = "stale xfail: the check passes now; remove the spec's xfail entry"


def skip_reason(case: Case) -> str | None:
    """Why ``case`` cannot run here (its device is missing), or ``None``."""
    if case.device != "cuda":
        return None
    import torch

    if not torch.cuda.is_available():
        return "CUDA not available (torch.cuda.is_available() is False)"
    return None


def run_case(case: Case, hypothesis_settings: settings | None = None) -> Result:
    """Run ``case`` and return its result (never raises for a failing or crashing implementation)."""
    from conformance.checks import CheckFailure, CheckSkipped
    from conformance.runner import run_case as run_check

    identity = case.identity()
    reason = skip_reason(case)
    if reason:
        return make_result(identity, outcome="skipped", message=reason)
    _warm_up(case.device)
    measured: dict[str, Any] = {}
    try:
        run_check(case, measured.update, hypothesis_settings)
    except CheckFailure as exc:
        return _judged(case, identity, "failed", measured, exc)
    except CheckSkipped as exc:  # the check does not apply to this implementation
        return make_result(identity, outcome="skipped", message=str(exc), measured=measured)
    except Exception as exc:  # the implementation (or the harness) raised
        failure = _check_failure_in(exc)
        if failure is not None:  # Hypothesis could not replay the check's failure: still a failure
            measured.pop("error", None)
            detail = measured.get("detail") or str(failure)
            measured["detail"] = f"{detail} (not reproducible on replay: the implementation is nondeterministic)"
            return _judged(case, identity, "failed", measured, failure)
        measured["traceback"] = "".join(_traceback.format_exception(exc, limit=-8))[-4000:]
        return _judged(case, identity, "error", measured, exc)
    return _judged(case, identity, "passed", measured, None)


def _check_failure_in(exc: BaseException) -> BaseException | None:
    """The check failure inside an exception group (Hypothesis's ``FlakyFailure``), if there is one."""
    from conformance.checks import CheckFailure

    for inner in getattr(exc, "exceptions", ()):
        if isinstance(inner, CheckFailure):
            return inner
        found = _check_failure_in(inner)
        if found is not None:
            return found
    return None


def _judged(case: Case, identity: Mapping[str, Any], outcome: str, measured: dict[str, Any], exc: BaseException | None) -> Result:
    """The outcome rules: a reviewed xfail turns a failure into ``xfailed`` and a pass into a stale-xfail failure."""
    detail = measured.get("error") or measured.get("detail")
    message = None if outcome == "passed" else (detail or _first_line(exc))
    expected = xfail_for(case)
    if expected is not None:
        if outcome == "passed" and not expected.strict:
            note = f"the recorded expected failure (not strict) did not occur: {expected.reason}"
            return make_result(identity, outcome="passed", message=note, measured=measured)
        if outcome == "passed":
            stale = f"{STALE_XFAIL} (reason given: {expected.reason})"
            return make_result(identity, outcome="failed", message=stale, measured=measured)
        return make_result(
            identity, outcome="xfailed", message=f"expected failure: {expected.reason}" + (f" ({detail})" if detail else ""),
            measured=measured,
        )
    return make_result(identity, outcome=outcome, message=message, measured=measured)


def _first_line(exc: BaseException | None) -> str | None:
    if exc is None:
        return None
    return f"{type(exc).__name__}: {exc}" if not isinstance(exc, AssertionError) else str(exc)


_WARM: set[str] = set()


def _warm_up(device: str) -> None:
    """Create the CUDA context once per process, so the first example does not pay for it."""
    if device != "cuda" or device in _WARM:
        return
    import torch

    x = torch.randn(64, 64, device="cuda")
    (x @ x).sum().item()
    torch.cuda.synchronize()
    _WARM.add(device)


# -- many cases --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    """What a run covers: spec dirs (added to the shipped specs), ``--impl`` options, the Hypothesis profile,
    ``--xfail-file`` files of reviewed expected failures, and a selection of case ids."""

    spec_dirs: tuple[str, ...] = ()
    impl: tuple[str, ...] = ()
    profile: str = "conformance-dev"
    select: tuple[str, ...] = field(default_factory=tuple)  # substrings of case ids (like pytest's -k, all must match)
    xfail_files: tuple[str, ...] = ()
    verdict_only: bool = False  # no shrinking: each failing check stops at its first failing example

    def cases(self) -> list[Case]:
        """The plan's cases, in the stable order every driver and worker agrees on."""
        from conformance.loader.xfail_file import load_xfail_files
        from conformance.spec import load_specs

        specs = load_specs(list(self.spec_dirs))
        overrides = parse_impl_options(list(self.impl), specs)
        cases = build_cases(specs, overrides, xfails=load_xfail_files(self.xfail_files))
        if self.select:
            cases = [c for c in cases if all(s in c.id for s in self.select)]
        return cases

    def settings(self) -> settings:
        from conformance import profiles

        return profiles.settings_for(self.profile, verdict_only=self.verdict_only)


def run(
    plan: Plan, *, workers: int = 1, on_result: Callable[[Result], None] | None = None, cases: Sequence[Case] | None = None
) -> list[Result]:
    """Run every case of ``plan`` (in ``workers`` processes when more than one); results in case order."""
    cases = list(plan.cases() if cases is None else cases)
    if workers <= 1 or len(cases) <= 1:
        hypothesis_settings = plan.settings()
        results = []
        for case in cases:
            results.append(run_case(case, hypothesis_settings))
            if on_result:
                on_result(results[-1])
        return results
    return _run_parallel(plan, len(cases), workers, on_result)


def _run_parallel(plan: Plan, count: int, workers: int, on_result: Callable[[Result], None] | None) -> list[Result]:
    import concurrent.futures as cf
    import multiprocessing

    out: list[Result | None] = [None] * count
    context = multiprocessing.get_context("spawn")  # no state (threads, CUDA) copied from this process
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init, initargs=(plan,)) as pool:
        futures = {pool.submit(_worker_run, i): i for i in range(count)}
        for future in cf.as_completed(futures):
            result = Result.from_json(future.result())
            out[futures[future]] = result
            if on_result:
                on_result(result)
    return [r for r in out if r is not None]


_WORKER: dict[str, Any] = {}


def _worker_init(plan: Plan) -> None:
    _WORKER["cases"] = plan.cases()
    _WORKER["settings"] = plan.settings()


def _worker_run(index: int) -> dict[str, Any]:
    return run_case(_WORKER["cases"][index], _WORKER["settings"]).to_json()


def failed(results: Iterable[Result]) -> list[Result]:
    """The results that fail a run (``failed`` and ``error``)."""
    return [r for r in results if not r.ok]


__all__ = ["Plan", "Result", "failed", "run", "run_case", "skip_reason"]
