"""Diagnoses that name the cause of a failure: another reading of the spec, or the region it is confined to.

Three diagnoses, each appended to a failing row's detail and computed only on failure:

- **alternative readings** (a spec's ``diagnose`` entries, :class:`conformance.model.Diagnosis`):
  :func:`reading` is the spec as one entry reads it — its params (``try``), the oracle's ``let``
  bindings and output expressions replaced — and :func:`conformance.checks.check_oracle` judges a
  failing implementation against each reading on the same inputs with the tolerance derived the same
  way, naming the first it matches ("; matches the reading: ε outside the square root ...");
- **the failing region** (:func:`with_region`): the failing example is judged again with each
  optional input toggled absent/present and each param of listed ``values`` set to its other values,
  one at a time (same sizes, seed and magnitudes). Where changing any one of some conditions makes
  the same example pass, the detail says "fails only when mask is given and is_causal = true"; where
  no change makes it pass it says nothing (the failure is not confined). At most
  :data:`MAX_REJUDGEMENTS` judgements, the first of which confirms that the example still fails
  (a nondeterministic failure names no region). A variant the check rejects, that raises, or that an
implementation refuses as declared unsupported (:mod:`conformance.unsupported`) is no evidence.
- **the departures that cause it** (:func:`with_departures`), for an implementation that declares its
  configuration's departures from the paper (:class:`conformance.model.Departure`, a peer audit's library
  default): the failing example is judged again with the implementation's ``baseline`` (none of them) and with
  each departure alone; where the baseline passes (or fails only as a reading of the spec, which it then reads
  as), every departure that alone makes the same example fail (or fail otherwise than that reading) is named:
  "caused by: <departure> and <departure> (each alone fails the same example, which passes without them)".

The module is torch-free and knows checks only as a ``judge(case, example)`` callable (the check
definition's), so :mod:`conformance.runner` calls it with the judge it runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from conformance.evaluate import NumpyBackend, evaluate
from conformance.model import Diagnosis, EquationSpec, Implementation
from conformance.strategies import Example
from conformance.tolerance import Measurement
from conformance.unsupported import Refusal

if TYPE_CHECKING:
    from conformance.selection import Case

MAX_REJUDGEMENTS = 8  # judgements of one failing example's variants, the confirming one included
READING = "matches the reading: "  # how a reading's words start in a failure (the spec's say)
CAUSED_BY = "caused by: "  # how the departures' note starts
INDISTINGUISHABLE = ", or indistinguishable here, "  # between the readings a failure matches (conformance.checks)

Judge = Callable[["Case", Example], "Measurement | None"]


# -- alternative readings -----------------------------------------------------------------------
def reading(spec: EquationSpec, diagnosis: Diagnosis) -> EquationSpec:
    """``spec`` with its oracle as ``diagnosis`` reads it: its ``let`` overrides and output expressions.

    Params (``try``) are the caller's to set on the inputs; a diagnosis of params only is ``spec`` itself.
    """
    oracle = spec.oracle
    if oracle is None or not (diagnosis.let or diagnosis.exprs):
        return spec
    lets = tuple((name, diagnosis.let.get(name, expr)) for name, expr in oracle.let)
    exprs = {name: diagnosis.exprs.get(name, expr) for name, expr in oracle.exprs.items()}
    expr = next(iter(exprs.values())) if oracle.expr is not None else None
    return replace(spec, oracle=replace(oracle, let=lets, exprs=exprs, expr=expr))


# -- the failing region --------------------------------------------------------------------------
def with_region(case: Case, judge: Judge, example: Example, failure: Measurement) -> Measurement:
    """``failure`` with the region it is confined to appended to its detail (unchanged where none is found)."""
    note = region_note(case, judge, example)
    return failure if note is None else replace(failure, detail=f"{failure.detail}; {note}")


def region_note(case: Case, judge: Judge, example: Example) -> str | None:
    """"fails only when ..." where changing any one of those conditions makes ``example`` pass, else ``None``."""
    dimensions = variants(case, example)
    if not dimensions or _fails(case, judge, example) is not True:
        return None
    budget = MAX_REJUDGEMENTS - 1
    confining = []
    for name, others in dimensions:
        if len(others) > budget:
            break
        budget -= len(others)
        if all(_fails(case, judge, other) is False for other in others):
            confining.append(condition(case.spec, name, example))
    if not confining:
        return None
    changed = "changing it" if len(confining) == 1 else "changing any one of them"
    return f"fails only when {' and '.join(confining)} ({changed}, the same example passes)"


def variants(case: Case, example: Example) -> list[tuple[str, list[Example]]]:
    """Per optional input and per drawn param of listed values: ``example`` with each other value of it.

    Only variants the check would draw (the spec's constraints and the check's ``when`` hold).
    """
    spec = case.spec
    out: list[tuple[str, list[Example]]] = []
    for name, present in example.present.items():
        out.append((name, [replace(example, present={**example.present, name: not present})]))
    for name, param in spec.params.items():
        if not param.values or param.default is not None or name not in example.params:
            continue
        others = [replace(example, params={**example.params, name: v}) for v in param.values if v != example.params[name]]
        out.append((name, [e for e in others if _admissible(case, e)]))
    return [(name, others) for name, others in out if others]


def condition(spec: EquationSpec, name: str, example: Example) -> str:
    """The example's value of one varied dimension, in words: ``mask is given``, ``is_causal = true``."""
    if name in example.present:
        return f"{name} is {'given' if example.present[name] else 'absent'}"
    value = example.params[name]
    written = ("true" if value else "false") if isinstance(value, bool) else repr(value)
    return f"{name} = {written}"


def _admissible(case: Case, example: Example) -> bool:
    """Whether the check could have drawn ``example``: the spec's constraints and an invariant's ``when`` hold."""
    conditions = [c for _, c in case.spec.constraints]
    if case.ref.definition == "invariant":
        conditions += [i.when for i in case.spec.invariants if i.id == case.ref.item and i.when is not None]
    scalars: Mapping[str, Any] = {**example.sizes, **example.params}
    return all(bool(evaluate(c, scalars, NumpyBackend())) for c in conditions)


def _fails(case: Case, judge: Judge, example: Example) -> bool | None:
    """Whether the check fails on ``example``; ``None`` where it cannot say (rejected, raised, or refused
    as declared unsupported: not judged there, so no pass)."""
    try:
        m = judge(case, example)
    except Exception:  # noqa: BLE001 - a variant that raises is no evidence either way
        return None
    return None if m is None or isinstance(m, Refusal) else not m.passed


# -- the departures that cause it ------------------------------------------------------------------
def with_departures(case: Case, judge: Judge, example: Example, failure: Measurement) -> Measurement:
    """``failure`` with the departures that cause it appended to its detail (unchanged where none is found)."""
    note = departures_note(case, judge, example)
    return failure if note is None else replace(failure, detail=f"{failure.detail}; {note}")


def departures_note(case: Case, judge: Judge, example: Example) -> str | None:
    """"caused by: A and B (...)" — the declared departures that alone make ``example`` fail — else ``None``:
    where nothing is declared, the baseline cannot be judged or fails otherwise than as a reading, or no departure
    alone fails. ``1 + len(departures)`` judgements."""
    impl = case.spec.implementation(case.implementation)
    if impl.baseline is None or not impl.departures:
        return None
    base = _judge_as(case, judge, example, impl, impl.baseline)
    if base is None:
        return None
    reading = None if base.passed else reading_of(base.detail)
    if not base.passed and reading is None:
        return None
    causes = []
    for departure in impl.departures:
        m = _judge_as(case, judge, example, impl, departure.ref)
        if m is not None and not m.passed and (reading is None or reading_of(m.detail) != reading):
            causes.append(departure.say)
    if not causes:
        return None
    alone, them = ("alone fails", "it") if len(causes) == 1 else ("each alone fails", "them")
    first = None if reading is None else reading.split(INDISTINGUISHABLE, 1)[0]  # the first reading it matches
    without = f"passes without {them}" if first is None else f"without {them} reads as {first}"
    return f"{CAUSED_BY}{' and '.join(causes)} ({alone} the same example, which {without})"


def reading_of(detail: str) -> str | None:
    """The words of the reading a failure matches (after :data:`READING`, to its first ``;`` outside brackets)."""
    return until(detail.split(READING, 1)[1], ";").strip() if READING in detail else None


def until(text: str, end: str) -> str:
    """``text`` up to the first ``end`` outside parentheses (a reading's words may hold ``;`` in brackets).

    >>> until("retrieve = after (each token reads M_t; the error averaged); gradient: …", ";")
    'retrieve = after (each token reads M_t; the error averaged)'
    """
    depth = 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(depth - 1, 0)
        elif depth == 0 and text.startswith(end, i):
            return text[:i]
    return text


def _judge_as(case: Case, judge: Judge, example: Example, impl: Implementation, ref: str) -> Measurement | None:
    """The same check of ``example`` with ``ref`` in place of the implementation (its params, interface and regions
    kept); ``None`` where that is no evidence (rejected, raised, refused)."""
    from conformance.selection import Case as _Case

    other = replace(impl, ref=ref, label=None, baseline=None, departures=())
    spec = replace(case.spec, implementations=(*case.spec.implementations, other))
    try:
        m = judge(_Case(spec, other.id, case.device, case.dtype, case.ref), example)
    except Exception:  # noqa: BLE001 - a variant that raises is no evidence either way
        return None
    return None if m is None or isinstance(m, Refusal) else m


