"""conformance.patterns.helpers.search: the first failing drawn example, or the worst pass, with the count tried."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st

from conformance.patterns import PatternContext
from conformance.patterns.helpers.search import greedy_shrink, search
from conformance.spec import load_specs
from conformance.tolerance import Measurement, Tolerance

SETTINGS = settings(max_examples=30, derandomize=True, deadline=None, database=None)
TOL = Tolerance(atol=10.0, baseline=None, floor=10.0, slack=0.0, factor=1.0, reason=None)


def _ctx() -> PatternContext:
    spec = load_specs()["rmsnorm"]
    return PatternContext(spec, "implementations.rmsnorm:RMSNorm", "cpu", "float32", {}, SETTINGS)


def _measure(n: int) -> Measurement:
    return Measurement(float(n), float(n), TOL, n <= 10, f"n={n}")


def test_a_failure_is_shrunk_and_carries_its_example() -> None:
    m = search(_ctx(), st.integers(0, 1000), _measure, to_example=lambda n: {"n": n})
    assert not m.passed and m.example == {"n": 11}  # shrunk to the smallest failing value
    assert m.detail == "n=11" and m.examples >= 2


def test_without_shrinking_the_first_failure_is_returned() -> None:
    seen: list[int] = []

    def measure(n: int) -> Measurement:
        seen.append(n)
        return _measure(n)

    m = search(_ctx(), st.integers(0, 1000), measure, shrink=False)
    assert not m.passed and m.detail == f"n={seen[-1]}" and seen[-1] > 10
    assert m.example is None  # no to_example: the measurement's own (none here)


def test_a_pass_is_the_worst_example_and_counts_every_example() -> None:
    seen: list[int] = []

    def measure(n: int) -> Measurement:
        seen.append(n)
        return _measure(n)

    m = search(_ctx(), st.integers(0, 10), measure)
    assert m.passed and m.examples == len(seen) >= 2
    assert m.max_abs_err == max(seen) and m.detail == f"n={max(seen)}"


def test_with_simpler_the_search_shrinks_greedily_within_max_examples_judgements() -> None:
    seen: list[int] = []

    def measure(n: int) -> Measurement:
        seen.append(n)
        return _measure(n)

    def simpler(n: int) -> list[int]:  # halfway to 0, then one less
        return [n // 2, n - 1]

    m = search(_ctx(), st.integers(0, 1000), measure, simpler=simpler, to_example=lambda n: {"n": n})
    assert not m.passed and m.example == {"n": 11} and m.detail == "n=11"
    assert not _measure(m.example["n"]).passed  # the reported example fails again
    first = next(i for i, n in enumerate(seen) if n > 10)
    assert m.examples == len(seen) and len(seen) - first - 1 <= SETTINGS.max_examples  # the shrink's judgements are bounded


def test_the_greedy_shrink_stops_at_its_limit_on_a_failing_example() -> None:
    example, m, judged = greedy_shrink(1000, _measure(1000), _measure, lambda n: [n - 1], limit=5)
    assert (example, judged) == (995, 5) and m.detail == "n=995" and not m.passed


def test_a_candidate_that_raises_is_not_taken() -> None:
    def measure(n: int) -> Measurement:
        if n < 900:
            raise ValueError("another failure")
        return _measure(n)

    example, m, judged = greedy_shrink(1000, _measure(1000), measure, lambda n: [n // 2, n - 1], limit=4)
    assert example == 998 and judged == 4 and m.detail == "n=998"
