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
from the same :class:`Plan` and runs the case indices it is handed, so any driver gets the same results in
the same order. Worker processes are isolated: a case whose worker dies (an implementation that aborts or
segfaults) or that runs past ``timeout`` seconds (its worker is killed) is an ``error`` row saying so
(:func:`died_message`, :func:`timed_out_message`); the worker is replaced and the run goes on.
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
    except SystemExit as exc:  # the implementation tried to end the process: its row says so, the run goes on
        measured["traceback"] = "".join(_traceback.format_exception(exc, limit=-8))[-4000:]
        message = f"SystemExit({exc.code!r}) raised by the implementation (a case must not end the run)"
        return make_result(identity, outcome="error", message=message, measured=measured)
    return _judged(case, identity, "passed", measured, None)


class CaseTimedOut(BaseException):
    """Raised in this process by :func:`run_case_within`'s alarm. Not an ``Exception`` (nor what Hypothesis counts as
    a test failure), so neither the runner nor Hypothesis catches it, and no example is replayed."""


def run_case_within(case: Case, hypothesis_settings: settings | None, timeout: float | None) -> Result:
    """:func:`run_case`, interrupted after ``timeout`` seconds by SIGALRM in this process: then an ``error`` row.

    For a driver that runs cases in its own process (the pytest plugin). It stops an implementation that
    loops or sleeps in Python or in an interruptible call; one stuck in native code is not interrupted
    (:func:`run` with a ``timeout`` kills the worker process instead). Without ``timeout``, or off the
    main thread, or where there is no SIGALRM, this is :func:`run_case`.
    """
    import signal
    import threading
    import time

    if timeout is None or not hasattr(signal, "SIGALRM") or threading.current_thread() is not threading.main_thread():
        return run_case(case, hypothesis_settings)

    def alarm(signum: int, frame: object) -> None:
        raise CaseTimedOut()

    started = time.monotonic()
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return run_case(case, hypothesis_settings)
    except CaseTimedOut:
        message = f"timed out after {timeout:g} s; the case was interrupted in the test process"
        return make_result(case.identity(), outcome="error", message=message, measured={"duration_s": time.monotonic() - started})
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


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
    ``--xfail-file`` files of reviewed expected failures (and the ``root``'s registry), and a selection of case ids."""

    spec_dirs: tuple[str, ...] = ()
    impl: tuple[str, ...] = ()
    profile: str = "conformance-dev"
    select: tuple[str, ...] = field(default_factory=tuple)  # substrings of case ids (like pytest's -k, all must match)
    xfail_files: tuple[str, ...] = ()
    verdict_only: bool = False  # no shrinking: each failing check stops at its first failing example
    root: str | None = None  # the directory the run starts from: its ``xfails.yaml`` registry is read, if there is one
    audit: bool = False  # a gradient audit's cases (conformance.selection.build_cases) instead of a conformance run's

    def xfail_entries(self) -> list[Any]:
        """The reviewed expected failures (and unsupported regions) from files: the root's registry, then ``--xfail-file``."""
        from conformance.loader.xfail_file import load_xfail_files, registry_files

        return load_xfail_files([*(registry_files(self.root) if self.root else []), *self.xfail_files])

    def cases(self) -> list[Case]:
        """The plan's cases, in the stable order every driver and worker agrees on."""
        from conformance.spec import load_specs

        specs = load_specs(list(self.spec_dirs))
        overrides = parse_impl_options(list(self.impl), specs)
        cases = build_cases(specs, overrides, xfails=self.xfail_entries(), audit=self.audit)
        if self.select:
            cases = [c for c in cases if all(s in c.id for s in self.select)]
        return cases

    def settings(self) -> settings:
        from conformance import profiles

        return profiles.settings_for(self.profile, verdict_only=self.verdict_only)


def run(
    plan: Plan,
    *,
    workers: int = 1,
    on_result: Callable[[Result], None] | None = None,
    cases: Sequence[Case] | None = None,
    timeout: float | None = None,
) -> list[Result]:
    """Run every case of ``plan``; results in case order, each also given to ``on_result`` as it arrives.

    With ``workers`` > 1 or a ``timeout`` (seconds per case) the cases run in worker processes
    (:class:`_Workers`): a worker that dies while running a case, or runs past the timeout, gives that
    case an ``error`` row, is replaced, and the run goes on. Otherwise they run in this process.
    A ``KeyboardInterrupt`` stops the run (its workers killed) and propagates: the rows given to
    ``on_result`` so far are what the run produced.
    """
    cases = list(plan.cases() if cases is None else cases)
    if timeout is not None and timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout}")
    if timeout is None and (workers <= 1 or len(cases) <= 1):
        hypothesis_settings = plan.settings()
        results = []
        for case in cases:
            results.append(run_case(case, hypothesis_settings))
            if on_result:
                on_result(results[-1])
        return results
    return _run_isolated(plan, cases, max(1, min(workers, len(cases))), timeout, on_result)


# -- isolated worker processes -----------------------------------------------------------------------
class WorkerError(RuntimeError):
    """A worker process could not start (it died while loading the plan): the run cannot go on."""


def died_message(exitcode: int | None) -> str:
    """The ``error`` row's message for a case whose worker process died while running it."""
    return f"the worker process died while running this case ({_how(exitcode)}); it was replaced and the run went on"


def timed_out_message(timeout: float) -> str:
    """The ``error`` row's message for a case that ran past ``timeout`` seconds."""
    return f"timed out after {timeout:g} s; the worker process running it was killed and replaced"


def _how(exitcode: int | None) -> str:
    import signal

    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


@dataclass
class _Worker:
    process: Any
    conn: Any
    ready: bool = False
    index: int | None = None  # the case it is running
    started: float = 0.0  # when it was handed that case (time.monotonic)


class _Workers:
    """Worker processes (spawned: no state copied from this one), each rebuilding the plan's cases once and
    running the case indices it is handed, one at a time; the parent waits on their pipes and sentinels."""

    def __init__(self, plan: Plan, cases: Sequence[Case], size: int, timeout: float | None) -> None:
        import multiprocessing

        self.context = multiprocessing.get_context("spawn")
        self.plan, self.cases, self.size, self.timeout = plan, cases, size, timeout
        self.live: list[_Worker] = []

    def start(self) -> None:
        parent, child = self.context.Pipe()
        process = self.context.Process(target=_worker_main, args=(child, self.plan), daemon=True, name="conformance-worker")
        process.start()
        child.close()
        self.live.append(_Worker(process, parent))

    def dispatch(self, pending: list[int]) -> None:
        """Hand the next pending case to each idle worker; start workers up to what the rest needs."""
        import time

        busy = sum(1 for w in self.live if w.index is not None)
        while len(self.live) < min(self.size, busy + len(pending)):
            self.start()
        for worker in self.live:
            if worker.ready and worker.index is None and pending:
                worker.index, worker.started = pending.pop(0), time.monotonic()
                worker.conn.send(worker.index)

    def busy(self) -> bool:
        return any(w.index is not None for w in self.live)

    def collect(self) -> list[tuple[int, Result]]:
        """Wait for the next event (a row, a worker ready, dead or past its deadline); the rows it settled."""
        import time
        from multiprocessing.connection import wait

        waiting = {w.conn: w for w in self.live} | {w.process.sentinel: w for w in self.live}
        ready = wait(list(waiting), timeout=self._next_deadline())
        rows: list[tuple[int, Result]] = []
        for worker in {id(waiting[r]): waiting[r] for r in ready}.values():
            rows.extend(self._read(worker))
        now = time.monotonic()
        for worker in list(self.live):
            if self.timeout is not None and worker.index is not None and now - worker.started > self.timeout:
                rows.append(self._retire(worker, timed_out_message(self.timeout), now))
        return rows

    def _next_deadline(self) -> float | None:
        import time

        if self.timeout is None or not self.busy():
            return None
        first = min(w.started for w in self.live if w.index is not None)
        return max(0.0, first + self.timeout - time.monotonic()) + 0.01

    def _read(self, worker: _Worker) -> list[tuple[int, Result]]:
        """Everything ``worker`` sent; if it died, its case's error row (or :class:`WorkerError` at start-up)."""
        import time

        rows = []
        try:
            while worker.conn.poll():
                kind, index, row = worker.conn.recv()
                if kind == "ready":
                    worker.ready = True
                else:
                    worker.index = None
                    rows.append((index, Result.from_json(row)))
        except (EOFError, OSError):
            pass  # the pipe closed: the process is gone, its sentinel says how
        if not worker.process.is_alive() and worker in self.live:
            worker.process.join()
            if not worker.ready:
                raise WorkerError(f"a worker process died while loading the plan ({_how(worker.process.exitcode)})")
            if worker.index is not None:
                rows.append(self._retire(worker, died_message(worker.process.exitcode), time.monotonic()))
            else:
                self._forget(worker)
        return rows

    def _retire(self, worker: _Worker, message: str, now: float) -> tuple[int, Result]:
        """Kill ``worker`` (if still alive) and give its case an ``error`` row saying why."""
        index = worker.index
        assert index is not None
        self._forget(worker)
        measured = {"duration_s": now - worker.started}
        row = make_result(self.cases[index].identity(), outcome="error", message=message, measured=measured)
        return index, row

    def _forget(self, worker: _Worker) -> None:
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join()
        worker.conn.close()
        self.live.remove(worker)

    def close(self) -> None:
        """Stop every worker: idle ones are told to exit, busy or slow ones are killed."""
        for worker in self.live:
            try:
                if worker.index is None:
                    worker.conn.send(None)
            except OSError:
                pass
        for worker in list(self.live):
            worker.process.join(timeout=1.0 if worker.index is None else 0)
            self._forget(worker)


def _run_isolated(
    plan: Plan, cases: Sequence[Case], size: int, timeout: float | None, on_result: Callable[[Result], None] | None
) -> list[Result]:
    out: list[Result | None] = [None] * len(cases)
    pending = list(range(len(cases)))
    workers = _Workers(plan, cases, size, timeout)
    try:
        while pending or workers.busy():
            workers.dispatch(pending)
            for index, result in workers.collect():
                out[index] = result
                if on_result:
                    on_result(result)
    finally:
        workers.close()
    return [r for r in out if r is not None]


def _worker_main(conn: Any, plan: Plan) -> None:
    """A worker process: rebuild the plan's cases once, then run each case index received until told to stop."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when the run stops (a terminal's ^C reaches all)
    cases, hypothesis_settings = plan.cases(), plan.settings()
    conn.send(("ready", None, None))
    while True:
        try:
            index = conn.recv()
        except EOFError:  # the parent is gone
            return
        if index is None:
            return
        conn.send(("row", index, _run_in_worker(cases[index], hypothesis_settings).to_json()))


def _run_in_worker(case: Case, hypothesis_settings: settings) -> Result:
    """:func:`run_case`, where a ``KeyboardInterrupt`` can only come from the implementation (SIGINT is ignored)."""
    try:
        return run_case(case, hypothesis_settings)
    except KeyboardInterrupt as exc:
        message = f"{type(exc).__name__} raised by the implementation (a case must not stop the run)"
        return make_result(case.identity(), outcome="error", message=message)


def failed(results: Iterable[Result]) -> list[Result]:
    """The results that fail a run (``failed`` and ``error``)."""
    return [r for r in results if not r.ok]


__all__ = [
    "CaseTimedOut",
    "Plan",
    "Result",
    "WorkerError",
    "died_message",
    "failed",
    "run",
    "run_case",
    "run_case_within",
    "skip_reason",
    "timed_out_message",
]
