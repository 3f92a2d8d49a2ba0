"""Run one harness check on one planted defect, deterministically, and say what it found.

Used by ``test_planted_defects.py``. A defect is named ``"<module file>:<attribute>"`` relative to
``tests/meta_tests/defects/``; the harness imports it by path (``conformance.calling.resolve``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, settings

from conformance.checks import CheckFailure
from conformance.runner import run_case
from conformance.selection import Case
from conformance.spec import EquationSpec, load_specs

DEFECTS_DIR = Path(__file__).resolve().parent / "defects"

# Our correct implementations per spec (those the specs ship), run on the same (check, dtype) as the
# defects to show that the check discriminates.
CORRECT = {
    "attention": ("implementations.attention:attention_manual", "implementations.attention:attention_with_flash"),
    "rmsnorm": ("implementations.rmsnorm:RMSNorm",),
    "surprise": ("implementations.surprise:compute_surprise",),
}


def defect_ref(name: str) -> str:
    """``"attention_defects.py:no_scaling"`` → an absolute ``path.py:attr`` reference."""
    module, attr = name.split(":")
    return f"{DEFECTS_DIR / module}:{attr}"


@cache
def specs() -> dict[str, EquationSpec]:
    return load_specs()


@contextlib.contextmanager
def hypothesis_profile(max_examples: int, *, all_failures: bool = False) -> Iterator[None]:
    """A fixed, derandomized Hypothesis profile for the duration; the previous profile is restored.

    Shrinking is skipped (a falsifying example is enough here, its minimal form is not needed),
    unless ``all_failures``: Hypothesis keeps looking for further distinct failures only while it
    may shrink, which a defect that both crashes and computes wrong values needs.
    """
    phases = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if all_failures else [])
    name = f"meta-defects-{max_examples}-{'all' if all_failures else 'first'}"
    settings.register_profile(
        name,
        max_examples=max_examples,
        derandomize=True,
        deadline=None,
        database=None,
        phases=phases,
        report_multiple_bugs=all_failures,
        print_blob=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    previous = settings.get_current_profile_name()
    settings.load_profile(name)
    try:
        yield
    finally:
        settings.load_profile(previous)


@dataclass
class Outcome:
    """What one run of one check found: check failures, other errors (crashes) and the report row."""

    failures: list[CheckFailure] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def caught_by(self, check: str) -> bool:
        return any(str(f).startswith(f"{check} failed:") for f in self.failures)

    def summary(self) -> str:
        lines = [f"check failures: {[str(f).splitlines()[0] for f in self.failures]}"]
        lines += [f"error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}" for e in self.errors]
        lines += [f"row: {row}" for row in self.rows]
        return "\n".join(lines)


def _flatten(exc: BaseException) -> list[BaseException]:
    inner = getattr(exc, "exceptions", None)  # an ExceptionGroup (built in from 3.11, a backport before)
    if isinstance(inner, (tuple, list)):
        return [leaf for sub in inner for leaf in _flatten(sub)]
    return [exc]


def run(spec_id: str, ref: str, check: str, dtype: str) -> Outcome:
    """Run ``check`` on implementation ``ref`` of spec ``spec_id`` at ``dtype`` on the CPU."""
    spec = specs()[spec_id].with_implementations([ref])
    outcome = Outcome()
    try:
        run_case(Case(spec, ref, "cpu", dtype, check), record=outcome.rows.append)
    except Exception as exc:  # CheckFailure, a crash, or Hypothesis's group of several distinct ones
        for leaf in _flatten(exc):
            (outcome.failures if isinstance(leaf, CheckFailure) else outcome.errors).append(leaf)
    return outcome


# The correct implementations run at least this many examples (more than any defect needs).
BASELINE_EXAMPLES = 40


def baseline_examples(defects: Any) -> dict[tuple[str, str, str], int]:
    """(spec, check, dtype) of every planted defect → examples its correct implementations run:
    at least ``BASELINE_EXAMPLES`` and at least what any defect on that cell runs."""
    most: dict[tuple[str, str, str], int] = {}
    for p in defects:
        key = (p.spec, p.check, p.dtype)
        most[key] = max(most.get(key, BASELINE_EXAMPLES), p.max_examples)
    return dict(sorted(most.items()))
