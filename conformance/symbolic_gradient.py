"""The gradient audit's ``symbolic_gradient`` check: the implementation's float64 vector-Jacobian product against
the *exact* derivative of the spec's SymPy oracle (``sympy.diff``), not only finite differences.

On a few small examples drawn like gradcheck's, the inputs a spec differentiates (``grad_wrt``) become arrays of
SymPy symbols, the other inputs exact rationals (their float64 values), and the oracle's expressions are evaluated
with :class:`conformance.evaluate.SymbolicBackend`. With a random cotangent ``c`` (the ``gradient`` check's), the
scalar ``L = Σ c · out`` is differentiated by SymPy with respect to every symbol and evaluated at the example to
:data:`DIGITS` significant digits: the exact vector-Jacobian product, rounded once.

The tolerance is derived as every other one is (:func:`conformance.tolerance.compare`): the same-precision
reference is the float64 oracle differentiated by autograd (what the ``gradient`` check takes as expected), whose
error against the exact derivative is measured here; plus the noise floor at the summed magnitude of each
element's terms (:class:`conformance.error_bounds.AbsBoundBackend`). A spec whose oracle uses a function without
a symbolic form does not get the check (``conformance.check_defs``); one whose examples all exceed
:data:`MAX_SYMBOLS` elements is skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import sympy
import torch

from conformance import checks
from conformance import dtype_helpers as dh
from conformance.error_bounds import AbsBoundBackend
from conformance.evaluate import SymbolicBackend
from conformance.strategies import Domain, Example, cotangent, materialize
from conformance.tolerance import Measurement, compare, max_abs, worst

if TYPE_CHECKING:
    from hypothesis import settings

    from conformance.selection import Case

EXAMPLES = 3  # examples per case: each costs one symbolic differentiation per input element
MAX_SYMBOLS = 48  # input elements differentiated at most (an example above it is not drawn for this check)
DIGITS = 30  # significant digits the exact derivative is evaluated to (then rounded once to float64)


def symbolic_gradient(case: Case, settings_: settings) -> Measurement:
    """Judge (runs whole): the worst of :data:`EXAMPLES` examples' comparisons with the exact derivative."""
    from conformance.checks import CheckSkipped

    examples = _examples(case, settings_)
    if not examples:
        raise CheckSkipped(f"no example drawn had at most {MAX_SYMBOLS} elements to differentiate symbolically")
    measurements = [check_symbolic_gradient(checks.Trial(case.spec, case.implementation, case.device, "float64", e))
                    for e in examples]
    return replace(worst(measurements), examples=len(examples))


def _examples(case: Case, settings_: settings) -> list[Example]:
    from hypothesis import HealthCheck, Phase, given
    from hypothesis import settings as hsettings

    drawn: list[Example] = []

    @hsettings(settings_, max_examples=max(settings_.max_examples, EXAMPLES), phases=[Phase.generate], database=None,
               deadline=None, suppress_health_check=list(HealthCheck))
    @given(example=Domain(case.spec, "float64", for_gradcheck=True).examples())
    def collect(example: Example) -> None:
        if len(drawn) < EXAMPLES and _symbols(case.spec, example) <= MAX_SYMBOLS:
            drawn.append(example)

    collect()
    return drawn


def _symbols(spec: Any, example: Example) -> int:
    env = materialize(spec, example)
    return sum(int(np.size(env[w])) for w in spec.grad_wrt)


def check_symbolic_gradient(t: checks.Trial) -> Measurement:
    """One example: per ``grad_wrt`` input, the implementation's VJP against SymPy's exact one."""
    env = t.rounded(t.env64)
    wrt = t.spec.grad_wrt
    inputs = t.tensors(env, dtype="float64", requires_grad=wrt)
    outs = t.fn(inputs)
    cots = [cotangent(tuple(o.shape), t.example.seed + k) for k, o in enumerate(outs)]
    live = [(o, dh.to_torch(c, "float64", t.device)) for o, c in zip(outs, cots) if o.requires_grad]
    leaves = [inputs[w] for w in wrt]
    grads: Any = [None] * len(leaves)
    if live:
        grads = torch.autograd.grad([o for o, _ in live], leaves, [c for _, c in live], allow_unused=True)
    actual = [np.zeros(np.shape(env[w])) if g is None else dh.to_numpy64(g) for w, g in zip(wrt, grads)]
    exact = exact_vjp(t, env, cots)
    oracle = _summed(t, env, cots, backend=None)  # the float64 oracle differentiated by autograd
    bounds = _summed(t, env, [np.abs(c) for c in cots], backend=AbsBoundBackend)
    measurements = []
    for w, a, e, o, b in zip(wrt, actual, exact, oracle, bounds):
        scale = np.maximum(np.abs(e), b)
        m = compare(a, e, dtype="float64", rule=t.rule, baseline=max_abs(o, e), scale=scale)
        measurements.append(replace(m, detail=f"∂/∂{w} against sympy.diff of the oracle" + (f": {m.detail}" if m.detail else "")))
    return worst(measurements)


def _summed(t: checks.Trial, env: Mapping[str, Any], cots: list[np.ndarray], backend: Any) -> list[np.ndarray]:
    """The oracle's VJPs (autograd through its float64 evaluation, or the term-magnitude bound), summed over outputs."""
    total: list[np.ndarray] | None = None
    for name, c in zip(t.outputs, cots):
        kw = {} if backend is None else {"backend": backend}
        part = checks._expr_grads(t, env, c, "float64", "cpu", only=(name,), **kw)
        total = part if total is None else [x + y for x, y in zip(total, part)]
    return total or []


def exact_vjp(t: checks.Trial, env: Mapping[str, Any], cots: list[np.ndarray]) -> list[np.ndarray]:
    """``∂(Σ c · out)/∂x`` for every ``grad_wrt`` input ``x``, by ``sympy.diff``, evaluated at ``env``."""
    wrt = t.spec.grad_wrt
    scope: dict[str, Any] = {k: _exact_scalar(v) for k, v in t.scalars_of(env).items()}
    values: dict[sympy.Symbol, sympy.Rational] = {}
    symbols: dict[str, np.ndarray] = {}
    for name in t.spec.inputs:
        array = np.asarray(env[name])
        if name in wrt:
            flat = [sympy.Symbol(f"{name}_{i}", real=True) for i in range(array.size)]
            values.update({s: sympy.Rational(float(v)) for s, v in zip(flat, array.ravel())})
            symbols[name] = np.array(flat, dtype=object).reshape(array.shape)
            scope[name] = symbols[name]
        elif array.dtype.kind in "iub":
            scope[name] = array
        else:
            scope[name] = np.vectorize(lambda v: sympy.Rational(float(v)), otypes=[object])(array) if array.size else array
    outs = checks._expr_values(t.spec, scope, SymbolicBackend())
    loss = sympy.Integer(0)
    for out, c in zip(outs, cots):
        out = np.broadcast_to(np.asarray(out, dtype=object), np.shape(c))
        loss += sum((sympy.Rational(float(ci)) * oi for ci, oi in zip(np.ravel(c), out.ravel())), sympy.Integer(0))
    result = []
    for name in wrt:
        grads = [float(sympy.diff(loss, s).evalf(DIGITS, subs=values)) for s in symbols[name].ravel()]
        result.append(np.asarray(grads, dtype=np.float64).reshape(symbols[name].shape))
    return result


def _exact_scalar(value: Any) -> Any:
    if isinstance(value, bool) or isinstance(value, str):
        return value
    if isinstance(value, float):
        return np.asarray(sympy.Rational(value), dtype=object)
    return value
