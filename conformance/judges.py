"""How each check definition draws its examples and judges one (the ``draw``/``judge`` refs of
:mod:`conformance.check_defs`).

Drawing: a :class:`conformance.strategies.Domain` (its examples and its shrink candidates) over the
spec's symbols, with an invariant's ``when`` and gradcheck's small sizes where they apply (a draw may
also return a plain Hypothesis strategy, which Hypothesis then shrinks). Judging one example returns a
:class:`conformance.tolerance.Measurement` (``None`` rejects the example); checks that run whole (facts,
pattern kinds) get the Hypothesis settings instead and return the one measurement.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from conformance import checks
from conformance.reference_gradient import check_reference_gradient, require_differentiable
from conformance.strategies import Domain, Example
from conformance.tolerance import Measurement
from conformance.unsupported import judge_outside

if TYPE_CHECKING:
    from hypothesis import settings

    from conformance.selection import Case


# -- drawing ---------------------------------------------------------------------------------------
# Each returns the check's Domain (its strategy and its shrink candidates: conformance.runner shrinks).
def draw(case: Case) -> Domain:
    return Domain(case.spec, case.dtype)


def draw_gradient(case: Case) -> Domain:
    """As :func:`draw`; where the oracle is a reference function that takes no ``xp`` (NumPy only), the whole case
    is skipped before any example is drawn, saying why (:func:`conformance.reference_gradient.require_differentiable`)."""
    if case.spec.oracle is not None and not case.spec.oracle.exprs:
        require_differentiable(case.spec)
    return draw(case)


def draw_gradcheck(case: Case) -> Domain:
    return Domain(case.spec, case.dtype, for_gradcheck=True)


def draw_invariant(case: Case) -> Domain:
    """The invariant's domain; where its ``when`` cannot hold for this implementation (the params it is tested at,
    or a domain narrowed to one value, decide it false), the case is skipped before any example is drawn, saying so."""
    invariant = next(i for i in case.spec.invariants if i.id == case.ref.item)
    if invariant.when is not None and _never(invariant.when, case):
        raise checks.CheckSkipped(
            f"its condition when: {invariant.condition} never holds for {case.implementation} "
            f"(params {_held(case)}): the invariant does not apply here"
        )
    return Domain(case.spec, case.dtype, when=invariant.when)


def _held(case: Case) -> dict[str, Any]:
    """The params with one possible value for this implementation: those it fixes, and those the domain holds."""
    held = {name: p.values[0] for name, p in case.spec.params.items() if len(p.values) == 1}
    held.update({name: p.low for name, p in case.spec.params.items() if p.low is not None and p.low == p.high})
    return {**held, **case.spec.fixed_params(case.implementation)}


def _never(when: Any, case: Case) -> bool:
    """Whether ``when`` is false whatever the sizes, given the params :func:`_held` holds."""
    import sympy

    from conformance.evaluate import NumpyBackend, evaluate

    held = {k: v for k, v in _held(case).items() if isinstance(v, (bool, int, float))}
    if {str(s) for s in when.free_symbols} <= set(held):  # decided by the held params alone (not, and, or included)
        return not bool(evaluate(when, held, NumpyBackend()))
    value = when.subs({sympy.Symbol(k): sympy.sympify(v) for k, v in held.items()})
    return value is sympy.false or value == sympy.false


# -- judging one example ---------------------------------------------------------------------------
# An example in a region the implementation declares unsupported (``unsupported`` in its entry) is not
# judged by the check: the implementation must refuse it (:mod:`conformance.unsupported`).
def _trial(case: Case, example: Example) -> checks.Trial:
    return checks.Trial(case.spec, case.implementation, case.device, case.dtype, example)


def _judge(case: Case, example: Example, check: Callable[[checks.Trial], Measurement | None]) -> Measurement | None:
    return judge_outside(case.spec, case.implementation, example, lambda: _trial(case, example), check)


def oracle(case: Case, example: Example) -> Measurement | None:
    return _judge(case, example, checks.check_oracle)


def output_contract(case: Case, example: Example) -> Measurement | None:
    return _judge(case, example, checks.check_output_contract)


def determinism(case: Case, example: Example) -> Measurement | None:
    return _judge(case, example, checks.check_determinism)


def gradient(case: Case, example: Example) -> Measurement | None:
    if case.spec.oracle is not None and not case.spec.oracle.exprs:  # a reference function is the oracle
        return _judge(case, example, check_reference_gradient)
    return _judge(case, example, checks.check_gradient)


def gradcheck(case: Case, example: Example) -> Measurement | None:
    return _judge(case, example, lambda t: checks.check_gradcheck(t, 1))


def gradgradcheck(case: Case, example: Example) -> Measurement | None:
    return _judge(case, example, lambda t: checks.check_gradcheck(t, 2))


def invariant(case: Case, example: Example) -> Measurement | None:
    item = case.ref.item
    assert item is not None
    return _judge(case, example, lambda t: checks.check_invariant(t, item))


def oracle_agreement(case: Case, example: Example) -> Measurement:
    return checks.check_oracle_agreement(case.spec, example)


# -- checks that run whole ---------------------------------------------------------------------------
def fact(case: Case, hypothesis_settings: settings) -> tuple[Measurement, dict[str, Any]]:
    """Prove the fact; the report's ``proof`` field says what SymPy proved, and at which sizes."""
    from conformance.symbolic import prove

    entry = next(f for f in case.spec.facts if f.id == case.ref.item)
    result = prove(entry.kind, entry.options)
    fields = {"proof": result.detail}
    if not result.proved:
        return Measurement(float("nan"), float("nan"), None, False, f"{entry.description}: {result.detail}"), fields
    return Measurement(0.0, 0.0, None, True, result.detail), fields


def pattern(case: Case, hypothesis_settings: settings) -> Measurement:
    from conformance.patterns import PatternContext
    from conformance.registry import PATTERN_KINDS

    entry = next(p for p in case.spec.patterns if p.id == case.ref.item)
    context = PatternContext(case.spec, case.implementation, case.device, case.dtype, entry.options, hypothesis_settings)
    return PATTERN_KINDS[entry.kind].run(context)


def replay(case: Case, example: Any) -> Measurement:
    """Re-run a whole-running check on one example it reported (what reproduction snippets call)."""
    from hypothesis import settings as _settings

    from conformance.patterns import PatternContext
    from conformance.registry import PATTERN_KINDS

    if case.ref.definition != "pattern":
        raise ValueError(f"{case.check} runs whole: re-run the check itself to reproduce it")
    entry = next(p for p in case.spec.patterns if p.id == case.ref.item)
    kind = PATTERN_KINDS[entry.kind]
    if kind.replay is None:
        raise ValueError(f"pattern kind {kind.name!r} has no replay: run the check itself to reproduce it")
    context = PatternContext(case.spec, case.implementation, case.device, case.dtype, entry.options, _settings())
    return kind.replay(context, example)
