"""Check definitions: every check the harness runs, as a record in :data:`conformance.registry.CHECKS`.

A :class:`CheckDef` says, each field read by one place:

- ``name``, ``family``, ``description`` — what the report calls it and groups it under (report rows, Markdown);
- ``scope`` and ``applies`` — when it applies: once per implementation × device × dtype (``applies(spec,
  device, dtype)`` yields the :class:`CheckRef` of each instance) or once per spec (``scope="spec"``, at
  ``spec_device``/``spec_dtype`` for ``subject(spec)``) — read by :func:`conformance.selection.build_cases`;
- ``line`` — the spec line an instance traces to (``Case.identity``);
- ``order`` — its place in the report (:func:`conformance.report.rows.sort_rows`);
- ``compares_numbers`` — whether it compares numbers against a derived tolerance (a spec's ``tolerances:``
  override must reach it: ``tests/test_check_defs.py``);
- ``audit`` — a check of the gradient audit only (``conformance audit-grads``), not of a conformance run
  (:func:`conformance.selection.build_cases` with ``audit=True`` builds the ``gradient`` family and these);
- ``draw`` and ``judge`` — how its examples are drawn and how one example is judged
  (:mod:`conformance.runner`), as lazy ``"module:function"`` refs so that building cases imports no torch:
  ``draw(case) -> SearchStrategy[Example]``, ``judge(case, example) -> Measurement | None``; a check
  without ``draw`` runs whole: ``judge(case, settings) -> Measurement``.

A case carries a :class:`CheckRef` (the definition's name and the spec entry it checks), never a name
to be parsed. Adding a check family is one record here (or registered from outside with
``CHECKS.register``) plus its tests.

>>> from conformance.registry import CHECKS
>>> [c for c in CHECKS.names() if c.startswith("grad")]
['grad_options', 'gradcheck', 'gradgradcheck', 'gradient']
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conformance.model import EquationSpec

FAMILIES = ("equation", "contract", "invariant", "gradient", "fact", "agreement", "pattern")


@dataclass(frozen=True)
class CheckRef:
    """A case's typed reference to its check: the definition, and the spec entry it checks (if any).

    ``name`` is the report's check name: the definition's name, ``invariant:<id>``, ``fact:<id>`` or,
    for a pattern check, ``<kind>:<id>``.
    """

    definition: str
    item: str | None = None  # an invariant's, fact's or pattern's id
    kind: str | None = None  # a pattern check's kind

    @property
    def name(self) -> str:
        if self.item is None:
            return self.definition
        return f"{self.kind or self.definition}:{self.item}"

    def definition_record(self) -> CheckDef:
        from conformance.registry import CHECKS

        return CHECKS[self.definition]


Applies = Callable[["EquationSpec", str, str], Iterable[CheckRef]]


@dataclass(frozen=True)
class CheckDef:
    """One kind of check (see the module docstring for which code reads each field)."""

    name: str
    family: str
    description: str
    order: int
    applies: Applies
    line: Callable[[EquationSpec, CheckRef], int]
    judge: str
    draw: str | None = None
    scope: str = "implementation"  # implementation | spec
    subject: Callable[[EquationSpec], str] | None = None  # scope "spec": the row's implementation column
    spec_device: str = "cpu"
    spec_dtype: str = "float64"
    compares_numbers: bool = False
    # a gradient audit's own check (``conformance audit-grads``): not part of a conformance run; an audit runs the
    # ``gradient`` family's checks and these (read by :func:`conformance.selection.build_cases`)
    audit: bool = False

    def judge_fn(self) -> Callable[..., Any]:
        return _load(self.judge)

    def draw_fn(self) -> Callable[..., Any] | None:
        return _load(self.draw) if self.draw else None


def _load(ref: str) -> Callable[..., Any]:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


# -- when each applies -----------------------------------------------------------------------------
def _has_equation(spec: EquationSpec) -> bool:
    return spec.oracle is not None


def _base(name: str) -> Applies:
    return lambda spec, device, dtype: [CheckRef(name)] if _has_equation(spec) else []


def _invariants(spec: EquationSpec, device: str, dtype: str) -> list[CheckRef]:
    return [CheckRef("invariant", inv.id) for inv in spec.invariants] if _has_equation(spec) else []


def _gradient(spec: EquationSpec, device: str, dtype: str) -> list[CheckRef]:
    """Every dtype, where the oracle can be differentiated: its expressions, or a reference function (whose judge
    draw skips, saying why, where the function takes no ``xp``: :mod:`conformance.reference_gradient`)."""
    ok = _has_equation(spec) and bool(spec.grad_wrt) and (bool(spec.oracle.exprs) or spec.oracle.reference is not None)
    return [CheckRef("gradient")] if ok else []


def _gradcheck(order: int) -> Applies:
    name = "gradcheck" if order == 1 else "gradgradcheck"

    def applies(spec: EquationSpec, device: str, dtype: str) -> list[CheckRef]:
        ok = _has_equation(spec) and spec.grad_wrt and dtype == "float64" and spec.grad_order >= order
        return [CheckRef(name)] if ok else []

    return applies


def _audit(name: str, *, modules_only: bool = False) -> Applies:
    """A gradient audit check: float64, for a spec with gradients (and, ``modules_only``, a module interface)."""

    def applies(spec: EquationSpec, device: str, dtype: str) -> list[CheckRef]:
        ok = _has_equation(spec) and bool(spec.grad_wrt) and dtype == "float64"
        if modules_only:
            ok = ok and spec.interface is not None and spec.interface.kind == "module"
        return [CheckRef(name)] if ok else []

    return applies


def _symbolic_gradient(spec: EquationSpec, device: str, dtype: str) -> list[CheckRef]:
    """Where the oracle is SymPy expressions whose every function has a symbolic form (float64)."""
    ok = _has_equation(spec) and bool(spec.grad_wrt) and dtype == "float64" and bool(spec.oracle.exprs)
    return [CheckRef("symbolic_gradient")] if ok and _symbolic_functions(spec) else []


def _symbolic_functions(spec: EquationSpec) -> bool:
    import sympy

    from conformance.registry import FUNCTIONS

    exprs = [e for _, e in spec.oracle.let] + list(spec.oracle.exprs.values())
    names = {getattr(f.func, "__name__", "") for e in exprs for f in e.atoms(sympy.Function)}
    return all(name not in FUNCTIONS or FUNCTIONS[name].symbolic is not None for name in names)


def _patterns(spec: EquationSpec, device: str, dtype: str) -> list[CheckRef]:
    return [CheckRef("pattern", p.id, p.kind) for p in spec.patterns if device in p.devices and dtype in p.dtypes]


def _facts(spec: EquationSpec, device: str, dtype: str) -> list[CheckRef]:
    return [CheckRef("fact", f.id) for f in spec.facts]


def _agreement(spec: EquationSpec, device: str, dtype: str) -> list[CheckRef]:
    ok = spec.oracle is not None and bool(spec.oracle.exprs) and bool(spec.oracle.reference)
    return [CheckRef("oracle_agreement")] if ok else []


# -- the spec line each traces to -----------------------------------------------------------------
def _oracle_line(spec: EquationSpec, ref: CheckRef) -> int:
    return (spec.oracle.line if spec.oracle is not None else 0) or spec.line


def _spec_line(spec: EquationSpec, ref: CheckRef) -> int:
    return spec.line


def _invariant_line(spec: EquationSpec, ref: CheckRef) -> int:
    return next(inv.line for inv in spec.invariants if inv.id == ref.item)


def _fact_line(spec: EquationSpec, ref: CheckRef) -> int:
    return next(f.line for f in spec.facts if f.id == ref.item)


def _pattern_line(spec: EquationSpec, ref: CheckRef) -> int:
    return next(p.line for p in spec.patterns if p.id == ref.item)


_J = "conformance.judges"
_GA = "conformance.grad_audit_checks"  # the gradient audit's own checks
BUILTIN: list[CheckDef] = [
    CheckDef("oracle", "equation", "the implementation against the spec's SymPy oracle in float64", 0,
             _base("oracle"), _oracle_line, f"{_J}:oracle", f"{_J}:draw", compares_numbers=True),
    CheckDef("output_contract", "contract", "output shape (from the spec's symbols), dtype and device", 1,
             _base("output_contract"), _spec_line, f"{_J}:output_contract", f"{_J}:draw"),
    CheckDef("determinism", "contract", "two calls on the same inputs are bitwise equal", 2,
             _base("determinism"), _spec_line, f"{_J}:determinism", f"{_J}:draw"),
    CheckDef("gradient", "gradient", "vector-Jacobian product against autograd through the float64 oracle", 3,
             _gradient, _oracle_line, f"{_J}:gradient", f"{_J}:draw_gradient", compares_numbers=True),
    CheckDef("gradcheck", "gradient", "finite differences in float64 (fast mode, slow mode before failing)", 4,
             _gradcheck(1), _spec_line, f"{_J}:gradcheck", f"{_J}:draw_gradcheck"),
    CheckDef("gradgradcheck", "gradient", "second-order finite differences in float64", 5,
             _gradcheck(2), _spec_line, f"{_J}:gradgradcheck", f"{_J}:draw_gradcheck"),
    CheckDef("grad_options", "gradient", "gradcheck with batched gradients, undefined output gradients and forward AD "
             "(float64; fast mode, slow mode before failing)", 5, _audit("grad_options"), _spec_line,
             f"{_GA}:grad_options", f"{_J}:draw_gradcheck", audit=True),
    CheckDef("autograd_functions", "gradient", "the custom autograd.Functions reached: gradient count, second order, "
             "torch.func support", 5, _audit("autograd_functions"), _spec_line, f"{_GA}:autograd_functions", audit=True),
    CheckDef("param_flow", "gradient", "every module parameter receives a finite, non-zero gradient", 5,
             _audit("param_flow", modules_only=True), _spec_line, f"{_GA}:param_flow", audit=True),
    CheckDef("symbolic_gradient", "gradient", "the float64 vector-Jacobian product against sympy.diff of the oracle "
             "(exact derivative)", 5, _symbolic_gradient, _oracle_line, "conformance.symbolic_gradient:symbolic_gradient",
             audit=True, compares_numbers=True),
    CheckDef("invariant", "invariant", "an invariant the spec declares", 6,
             _invariants, _invariant_line, f"{_J}:invariant", f"{_J}:draw_invariant", compares_numbers=True),
    CheckDef("pattern", "pattern", "a behavioural check of a pattern kind", 6,
             _patterns, _pattern_line, f"{_J}:pattern"),
    CheckDef("fact", "fact", "a symbolic fact proved by SymPy", 6,
             _facts, _fact_line, f"{_J}:fact", scope="spec", subject=lambda spec: "sympy", spec_dtype="exact"),
    CheckDef("oracle_agreement", "agreement", "the SymPy oracle against the spec's float64 reference function", 6,
             _agreement, _oracle_line, f"{_J}:oracle_agreement", f"{_J}:draw", scope="spec",
             subject=lambda spec: f"reference:{spec.oracle.reference}", compares_numbers=True),
]

__all__ = ["BUILTIN", "FAMILIES", "CheckDef", "CheckRef"]
