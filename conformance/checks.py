"""The checks: one example, one (spec, implementation, device, dtype, check) → a Measurement.

Check names (each traceable to a spec line):

- ``oracle`` — the equation: implementation vs the SymPy oracle in float64 (spec ``oracle``).
- ``output_contract`` — output shape (from the spec's symbols), dtype and device (spec ``outputs``).
- ``determinism`` — two calls on the same inputs are bitwise equal.
- ``invariant:<id>`` — a declared invariant (spec ``invariants``).
- ``gradient`` — vector-Jacobian product with a random cotangent vs autograd through the oracle
  expression in float64 (spec ``gradients``), every dtype.
- ``gradcheck`` / ``gradgradcheck`` — finite differences in float64; fast mode first, slow mode
  before a failure is reported.
- ``oracle_agreement`` — per spec: the SymPy oracle vs the plain float64 reference function.

A spec may declare several outputs: the implementation returns a tuple in their order, and every
check measures each output; the worst one decides, and a failure's detail starts with its name.
An implementation id may fix params (``mod:fn[interleaved=true]``, see
:meth:`conformance.spec.EquationSpec.implementation`): every example is run at those values. When
the oracle fails, the spec's ``diagnose`` entries re-evaluate it as alternative readings (params,
bindings, expressions) on the same inputs and say so where the implementation matches one of them
(:mod:`conformance.diagnosis`). Where a spec declares
``oracle.noise_scale`` (an ill-conditioned equation), the oracle's noise floor is taken at that scale.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import sympy
import torch

from conformance import dtype_helpers as dh
from conformance.calling import build_callable, call_interface
from conformance.diagnosis import INDISTINGUISHABLE, READING, reading
from conformance.error_bounds import AbsBoundBackend
from conformance.evaluate import NumpyBackend, TorchBackend, evaluate
from conformance.invariants import INVARIANT_KINDS
from conformance.model import Interface
from conformance.references import accepts_precision, has_reference, reference_function
from conformance.spec import EquationSpec
from conformance.strategies import Example, cotangent, derive_inputs, materialize, shape_of
from conformance.tolerance import Measurement, compare, derive, max_abs, reference_baselines, stand_in_dtype, worst

Outputs = tuple[np.ndarray, ...]


class CheckFailure(AssertionError):
    """A check whose measured error exceeded its tolerance (or whose contract was broken)."""


class CheckSkipped(Exception):
    """A check that does not apply to this implementation (the message says why): the row is ``skipped``.

    For example a trainer with the guide's signature ``Trainer(model, optimizer, use_amp)`` cannot be
    asked for an autocast dtype other than its device's default, so that dtype's row is not its to pass.
    """


class OutputCountError(TypeError):
    """An implementation of a several-output spec that did not return one tensor per output."""


def checks_for(spec: EquationSpec, dtype: str) -> list[str]:
    """The names of the property checks generated for one implementation at ``dtype``, in report order.

    Read from the check definitions (:mod:`conformance.check_defs`); pattern checks are the spec's own list.
    """
    from conformance.selection import implementation_checks

    return [ref.name for ref in implementation_checks(spec, "cpu", dtype) if ref.definition != "pattern"]


def source_line(spec: EquationSpec, check: str) -> int:
    """The spec line the check named ``check`` comes from (its definition says where)."""
    from conformance.selection import find_check

    ref = find_check(spec, check)
    return ref.definition_record().line(spec, ref)


# -- calling an implementation of one or several outputs ------------------------------------------
def outputs_callable(
    spec: EquationSpec,
    ref: str,
    scalars: Mapping[str, Any],
    device: str,
    dtype: str,
    present: Mapping[str, bool],
    interface: Interface | None = None,
) -> Callable[[Mapping[str, torch.Tensor]], tuple[torch.Tensor, ...]]:
    """A function from input tensors (by spec name) to the implementation's outputs, as a tuple.

    One output: :func:`conformance.calling.build_callable`. Several: the same calling convention,
    and the result must be a tuple (or list) of one tensor per output, in the spec's order.
    """
    if len(spec.outputs) == 1:
        single = build_callable(spec, ref, scalars, device, dtype, present, interface)
        return lambda tensors: (single(tensors),)
    call = call_interface(spec, ref, scalars, device, dtype, present, interface)
    names = tuple(spec.outputs)
    return lambda tensors: _tuple_of(call(tensors), ref, names)


def _tuple_of(result: Any, ref: str, names: tuple[str, ...]) -> tuple[torch.Tensor, ...]:
    if isinstance(result, (tuple, list)) and len(result) == len(names) and all(isinstance(r, torch.Tensor) for r in result):
        return tuple(result)
    got = f"{len(result)} values" if isinstance(result, (tuple, list)) else type(result).__name__
    raise OutputCountError(f"{ref} returned {got}; the spec expects a tuple of {len(names)} tensors ({', '.join(names)})")


@dataclass
class Trial:
    """One example of one spec at one device and dtype, for one implementation.

    ``ref`` is the implementation's id; the params it fixes replace the example's drawn ones.
    """

    spec: EquationSpec
    ref: str
    device: str
    dtype: str
    example: Example

    def __post_init__(self) -> None:
        fixed = self.spec.fixed_params(self.ref)
        if any(self.example.params.get(k, object()) != v for k, v in fixed.items()):
            self.example = replace(self.example, params={**self.example.params, **fixed})
        self.impl = self.spec.implementation(self.ref)
        self.outputs = tuple(self.spec.outputs)
        self.scalars = {**self.example.sizes, **self.example.params}
        self.env64 = materialize(self.spec, self.example)
        self.rule = self.spec.tolerance_rule(self.dtype)
        self._callables: dict[tuple, Callable[[Mapping[str, torch.Tensor]], tuple[torch.Tensor, ...]]] = {}
        self.fn = self.callable_for(self.scalars)
        self.compute_dtype = self.spec.oracle.compute_dtype.get(self.dtype, self.dtype)
        # Where the same-precision reference would be the float64 oracle itself (error 0 by construction),
        # it runs at a stand-in dtype and its error is rescaled (tolerance.reference_baselines); not where
        # a declared compute dtype makes the reference another computation anyway.
        self.stand_in = self.compute_dtype == self.dtype

    def callable_for(self, scalars: Mapping[str, Any]) -> Callable[[Mapping[str, torch.Tensor]], tuple[torch.Tensor, ...]]:
        """The implementation called with these sizes and params (an invariant may change a param)."""
        key = tuple(sorted((k, repr(v)) for k, v in scalars.items()))
        if key not in self._callables:
            self._callables[key] = outputs_callable(
                self.spec, self.impl.ref, scalars, self.device, self.dtype, self.example.present, self.impl.interface
            )
        return self._callables[key]

    def scalars_of(self, env: Mapping[str, Any]) -> dict[str, Any]:
        """Sizes and params as ``env`` has them, as Python scalars of the example's types."""
        return {name: _like(env.get(name, value), value) for name, value in self.scalars.items()}

    # -- inputs --------------------------------------------------------------------------------
    def rounded(self, env: Mapping[str, Any], dtype: str | None = None) -> dict[str, Any]:
        """Inputs rounded to the tested dtype (what the implementation sees), still float64."""
        return {k: dh.round_to(v, dtype or self.dtype) if k in self.spec.inputs else v for k, v in env.items()}

    def tensors(
        self, env: Mapping[str, Any], dtype: str | None = None, device: str | None = None, requires_grad: tuple[str, ...] = ()
    ) -> dict[str, torch.Tensor]:
        out = {}
        for name in self.spec.inputs:
            t = dh.to_torch(env[name], dtype or self.dtype, device or self.device)
            out[name] = t.requires_grad_(name in requires_grad)
        return out

    # -- the three evaluators -------------------------------------------------------------------
    def implementation(self, env: Mapping[str, Any]) -> Outputs:
        with torch.no_grad():
            outs = self.callable_for(self.scalars_of(env))(self.tensors(env))
        return tuple(dh.to_numpy64(o) for o in outs)

    def oracle(self, env: Mapping[str, Any]) -> Outputs:
        """The float64 oracle: the spec's SymPy expressions, else its reference function."""
        if not self.spec.oracle.exprs:
            return _reference_outputs(self.spec, env)
        return tuple(np.asarray(v, dtype=np.float64) for v in _expr_values(self.spec, dict(env), NumpyBackend()))

    def reference(
        self, env: Mapping[str, Any], dtype: str | None = None, compute_dtype: str | None = None, definitional: bool | None = None
    ) -> Outputs | None:
        """The same-precision reference: the expressions in the compute dtype, rounded to the dtype
        (``definitional``: see :class:`conformance.evaluate_torch.TorchBackend`)."""
        dtype, compute_dtype = dtype or self.dtype, compute_dtype or self.compute_dtype
        if not self.spec.oracle.exprs:
            return _rounding_reference(self.spec, self.rounded(env, compute_dtype), compute_dtype, dtype)
        with torch.no_grad():
            scope = {**self.scalars_of(env), **self.tensors(env, compute_dtype)}
            backend = TorchBackend(dh.torch_dtype(compute_dtype), self.device, definitional)
            values = _expr_values(self.spec, scope, backend)
            return tuple(dh.to_numpy64(v.to(dh.torch_dtype(dtype))) for v in values)

    def baselines(self, env: Mapping[str, Any], expected: Outputs) -> list[float] | None:
        """Per output, the same-precision reference's error against ``expected`` (the oracle at ``env``).

        Where the reference would be the oracle itself (float64), the same comparison is made at the
        stand-in dtype, on the inputs rounded to it, and that error is rescaled by the ratio of epsilons.
        """

        def error_at(at: str) -> list[float] | None:
            if at == self.dtype:
                reference = self.reference(env)
                return None if reference is None else [max_abs(r, e) for r, e in zip(reference, expected)]
            low = self.rounded(env, at)
            reference = self.reference(low, at, at)
            return None if reference is None else [max_abs(r, e) for r, e in zip(reference, self.oracle(low))]

        found = reference_baselines(self.dtype, error_at, stand_in=self.stand_in)
        if found is not None and self.dtype == "float64" and uses_definitional(self.spec):
            # the float64 reference computing its functions by definition (Φ as ½[1 + erf]) is another
            # computation than the oracle: its error is measured directly, at float64 itself
            reference = self.reference(env, definitional=True)
            if reference is not None:
                found = [max(b, max_abs(r, e)) for b, r, e in zip(found, reference, expected)]
        return found


def noise_scales(spec: EquationSpec, env: Mapping[str, Any]) -> list[np.ndarray | None] | None:
    """The spec's ``oracle.noise_scale`` per output, element by element (|value|, broadcast to the output's
    shape where that works), ``None`` where it declares none."""
    exprs = spec.oracle.noise_scale
    if not exprs:
        return None
    scope = dict(env)
    for name, expr in spec.oracle.let:
        scope[name] = evaluate(expr, scope, NumpyBackend())
    values = {n: np.abs(np.asarray(evaluate(e, scope, NumpyBackend()), dtype=np.float64)) for n, e in exprs.items()}
    return [values.get(name) for name in spec.outputs]


def _in_tested_units(t: Trial, scale: np.ndarray | None) -> np.ndarray | None:
    """A declared noise scale (per element) as a scale at the tested dtype's precision.

    The rounding errors that grow with the noise scale (a rotation angle, the terms of a sum) are made
    where the spec computes: in its compute dtype. Where that is more precise than the tested dtype
    (float32 statistics for float16 inputs), the floor at the noise scale is ``eps(compute) × scale``,
    i.e. ``scale × eps(compute) / eps(dtype)`` in units of the tested dtype's epsilon; the result's own
    rounding to the tested dtype stays at its own magnitude (:func:`_at_least_the_result`).
    """
    if scale is None or t.compute_dtype == t.dtype:
        return scale
    return scale * dh.eps(t.compute_dtype) / dh.eps(t.dtype)


def _at_least_the_result(scale: np.ndarray | None, expected: np.ndarray) -> np.ndarray | None:
    """A declared noise scale per element, never below the result's own magnitude there (its final
    rounding), broadcast to the result's shape; ``None`` (no declared scale) stays ``None``.

    Where the scale cannot be laid over the result element by element (a shape the spec's noise
    expression does not broadcast to), its largest value serves every element.
    """
    if scale is None:
        return None
    scale = np.asarray(scale, dtype=np.float64)
    try:
        scale = np.broadcast_to(scale, np.shape(expected))
    except ValueError:
        scale = np.full(np.shape(expected), float(np.max(scale, initial=0.0)))
    if not np.all(np.isfinite(expected)):
        return scale
    return np.maximum(scale, np.abs(expected))


def _like(value: Any, example: Any) -> Any:
    """``value`` (possibly a 0-d array set by an invariant) as a Python scalar of ``example``'s type."""
    if isinstance(value, (np.ndarray, np.generic)):
        value = value.item()
    if isinstance(example, bool):
        return bool(value)
    if isinstance(example, int) and float(value).is_integer():
        return int(value)
    return value


def _expr_values(spec: EquationSpec, scope: dict[str, Any], backend: Any, only: Sequence[str] | None = None) -> list[Any]:
    """The oracle's expressions (its ``let`` bindings first), one per output (or per name in ``only``)."""
    for name, expr in spec.oracle.let:
        scope[name] = evaluate(expr, scope, backend)
    return [evaluate(expr, scope, backend) for name, expr in spec.oracle.exprs.items() if only is None or name in only]


def _reference_outputs(spec: EquationSpec, env: Mapping[str, Any]) -> Outputs:
    """The spec's float64 reference function; it returns a tuple where the spec has several outputs."""
    value = reference_function(spec)(**env)
    values = value if len(spec.outputs) > 1 else (value,)
    return tuple(np.asarray(v, dtype=np.float64) for v in values)


ROUNDING_DRAWS = 4  # realizations of the rounding reference (draw 0 rounds to nearest; see _rounding_reference)


def _rounding_reference(spec: EquationSpec, env: Mapping[str, Any], compute_dtype: str, dtype: str) -> Outputs | None:
    """A reference-only oracle at the tested precision: its function called with ``precision``, a callable
    rounding an array to ``compute_dtype``, which it applies to each intermediate result (the standard model of
    floating-point arithmetic: every operation's result rounded); the outputs rounded to ``dtype``. ``None`` where
    the function takes no ``precision`` keyword (the tolerance then falls back to 64 ulps).

    One realization of rounding errors is an estimate, not a bound, of another computation's: where a result
    cancels (a memory whose momentum nearly undoes it), two correct evaluation orders of the same recurrence make
    errors of different sizes. So :data:`ROUNDING_DRAWS` realizations are made — round to nearest, then each
    operation's exact result moved by up to half an ulp before rounding (every operation faithful to one ulp, as
    libm's functions and GPU kernels are) — and per element the one farthest from the float64 value is returned."""
    fn = reference_function(spec)
    if not accepts_precision(fn):
        return None
    several = len(spec.outputs) > 1
    exact = [np.asarray(v, dtype=np.float64) for v in (fn(**env) if several else (fn(**env),))]
    unit = dh.eps(compute_dtype)
    worst = [np.zeros_like(e) for e in exact]
    for draw in range(ROUNDING_DRAWS):
        rng = np.random.default_rng([0x7A11, draw])

        def precision(a: Any, rng: np.random.Generator = rng, draw: int = draw) -> np.ndarray:
            a = np.asarray(a, dtype=np.float64)
            moved = a if draw == 0 else a * (1.0 + rng.uniform(-0.5, 0.5, size=a.shape) * unit)
            return dh.round_to(moved, compute_dtype)

        value = fn(**env, precision=precision)
        for k, v in enumerate(value if several else (value,)):
            dev = np.asarray(v, dtype=np.float64) - exact[k]
            worst[k] = np.where(np.abs(dev) > np.abs(worst[k]), dev, worst[k])
    return tuple(dh.round_to(e + w, dtype) for e, w in zip(exact, worst))


# -- comparing outputs ----------------------------------------------------------------------------
def _labelled(m: Measurement, name: str | None) -> Measurement:
    """A failure's detail, prefixed with the output (or input) it concerns."""
    if m.passed or not name:
        return m
    return replace(m, detail=f"{name}: {m.detail}")


def compare_outputs(
    t: Trial,
    actual: Outputs,
    expected: Outputs,
    baselines: Sequence[float] | None,
    *,
    scales: Sequence[np.ndarray | None] | None = None,
    own: Sequence[np.ndarray] | None = None,
) -> Measurement:
    """Each output against its expected value; with several outputs the failing one is named.

    ``baselines``: per output, the same-precision reference's error (:meth:`Trial.baselines`).
    ``scales``: per output, a noise scale declared by the spec, per element (never below the result's
    magnitude). ``own``: per output, the float64 oracle's own rounding error per element (:func:`own_error`).
    """
    several = len(t.outputs) > 1
    measurements = []
    for k, name in enumerate(t.outputs):
        baseline = None if baselines is None else baselines[k]
        scale = _at_least_the_result(_in_tested_units(t, None if scales is None else scales[k]), expected[k])
        own_k = None if own is None else own[k]
        m = compare(actual[k], expected[k], dtype=t.dtype, rule=t.rule, baseline=baseline, scale=scale, own=own_k)
        measurements.append(_labelled(m, name if several else None))
    return worst(measurements)


# The float64 oracle's own rounding error where its result is ill-conditioned in its inputs (LayerNorm
# at D = 2 with nearly equal inputs; a sum whose terms cancel): a backward-stable float64 computation —
# the oracle's, and a correct implementation's — returns the exact result at inputs a few units of
# roundoff away, so the oracle's spread over inputs perturbed elementwise by up to OWN_ULPS × eps(float64)
# (relative; the largest of OWN_DRAWS draws) bounds what both may be off by. Only at float64: at a lower
# precision the same-precision reference, run on the same inputs, errs 2^29 times more and covers it.
# The first draw alternates ±OWN_ULPS along the last axis (neighbours moved apart: the direction in which a
# normalisation or a difference of neighbours is most sensitive), the others are uniform random.
OWN_ULPS = 4.0
OWN_DRAWS = 3


def perturbed(
    spec: EquationSpec,
    env: Mapping[str, Any],
    seed: int,
    draw: int,
    dtype: str = "float64",
    call: int = 0,
    ulps: float = OWN_ULPS,
) -> dict[str, Any]:
    """``env`` with every real input multiplied elementwise by ``1 + u · ulps · eps(dtype)``, ``u`` in [−1, 1],
    and rounded to ``dtype`` (what an implementation at that dtype can be given). Draw 0 alternates ``u = ±1``
    along the last axis (the sign flipped for odd ``call``s), later draws are uniform (seeded by ``call`` too)."""
    rng = np.random.default_rng([seed, 0x0E44, draw, call])
    out = dict(env)
    for name, inp in spec.inputs.items():
        if inp.kind == "real" and name in env:
            value = np.asarray(env[name], dtype=np.float64)
            if draw == 0:
                u = np.where(np.arange(value.shape[-1]) % 2 == call % 2, 1.0, -1.0) if value.ndim else np.array(1.0)
                u = np.broadcast_to(u, value.shape)
            else:
                u = rng.uniform(-1.0, 1.0, size=value.shape)
            moved = value * (1.0 + u * ulps * dh.eps(dtype))
            out[name] = moved if dtype == "float64" else dh.round_to(moved, dtype)
    return out


def own_spread(
    evaluate_at: Callable[[Mapping[str, Any]], Sequence[np.ndarray]],
    spec: EquationSpec,
    env: Mapping[str, Any],
    seed: int,
    expected: Sequence[np.ndarray],
) -> list[np.ndarray] | None:
    """Per result, the largest |change| of the float64 evaluation ``evaluate_at`` over perturbed inputs
    (see :data:`OWN_ULPS`); ``None`` where a perturbed result has another shape. A non-finite change (an
    input at an overflow edge) counts as none."""
    spread = [np.zeros(np.shape(e)) for e in expected]
    for draw in range(OWN_DRAWS):
        for k, (value, e) in enumerate(zip(evaluate_at(perturbed(spec, env, seed, draw)), expected)):
            if np.shape(value) != np.shape(e):
                return None
            spread[k] = np.maximum(spread[k], _finite_change(value, e))
    return spread


def _finite_change(value: np.ndarray, unperturbed: np.ndarray) -> np.ndarray:
    """|value − unperturbed| per element, a non-finite change (an input at an overflow edge) counted as none."""
    with np.errstate(invalid="ignore", over="ignore"):
        change = np.abs(np.asarray(value, dtype=np.float64) - unperturbed)
    return np.where(np.isfinite(change), change, 0.0)


def own_error(t: Trial, env: Mapping[str, Any], expected: Outputs) -> list[np.ndarray] | None:
    """The float64 oracle's own rounding error per output element at float64, ``None`` below (see :data:`OWN_ULPS`)."""
    return own_spread(t.oracle, t.spec, env, t.example.seed, expected) if t.dtype == "float64" else None


# -- the checks -----------------------------------------------------------------------------------
def check_oracle(t: Trial) -> Measurement | None:
    env = t.rounded(t.env64)
    expected = t.oracle(env)
    if not all(_representable(e, t.dtype) for e in expected):
        return None
    actual = t.implementation(env)
    own = own_error(t, env, expected)
    m = compare_outputs(t, actual, expected, t.baselines(env, expected), scales=noise_scales(t.spec, env), own=own)
    if m.passed or m.vacuous:
        return m
    diagnosed = _diagnose(t, env, actual, m)
    return _diagnose_precision(t, env, actual, expected, diagnosed, reading_matched=diagnosed is not m)


# The precision a float64 implementation may have computed in instead, and what the diagnosis says.
LOWER_PRECISION = ("float32", "computed in float32?")


def _diagnose_precision(
    t: Trial, env: Mapping[str, Any], actual: Outputs, expected: Outputs, m: Measurement, *, reading_matched: bool = False
) -> Measurement:
    """A float64 failure whose every error is within what the same computation in float32 makes says so.

    The bound is the harness's own rule at float32 (2 × the float32 same-precision reference's error
    on these inputs + the noise floor), so a float64 implementation that rounds to float32 on the way
    is named as such, while one that is wrong by more than float32's rounding is not. Where the oracle is not
    within it but one of the spec's ``diagnose`` readings is (a convention computed in float32: Gemma's
    ``(1 + g)`` gain, say), the reading is named with the precision.
    """
    low, say = LOWER_PRECISION
    if t.dtype != "float64" or t.compute_dtype != "float64" or not has_reference(t.spec):
        return m
    if _within_float32(t, env, actual, expected):
        return replace(m, detail=f"{m.detail}; the error is within float32's precision on these inputs: {say}")
    if reading_matched:
        return m  # a reading matched at float64 itself: that says more
    for say_reading, read, env_alt in _readings(t, env):
        if _within_float32(read, env_alt, actual, read.oracle(env_alt)):
            return replace(m, detail=f"{m.detail}; {say_reading}, within float32's precision on these inputs: {say}")
    return m


def _within_float32(t: Trial, env: Mapping[str, Any], actual: Outputs, expected: Outputs) -> bool:
    """Whether every output is within the float32 rule against ``expected`` (the float32 same-precision
    reference of ``t``'s oracle the baseline)."""
    low, _ = LOWER_PRECISION
    reference = t.reference(env, low, low)
    if reference is None:
        return False
    scales = noise_scales(t.spec, env) or [None] * len(expected)
    rule = t.spec.tolerance_rule(low)
    for a, e, r, s in zip(actual, expected, reference, scales):
        if np.shape(a) != np.shape(e):
            return False
        if not compare(a, e, dtype=low, rule=rule, reference=r, scale=_at_least_the_result(s, e)).passed:
            return False
    return True




def _diagnose(t: Trial, env: Mapping[str, Any], actual: Outputs, m: Measurement) -> Measurement:
    """Append the ``diagnose`` reading (params, bindings, expressions) the implementation matches best.

    Each reading is judged like the oracle: on the same inputs, with its own same-precision reference
    and noise scale, by the same tolerance rule (:mod:`conformance.diagnosis`). Where several match
    (readings the tested precision cannot tell apart on these inputs: a (1 + g) gain and "no ε and a (1 + g)
    gain" in bfloat16 at ε = 1e-6), every one is named, in the spec's order: "<first>, or indistinguishable
    here, <second>" — ranking them by their errors would be ranking rounding noise.
    """
    matched: list[tuple[float, str]] = []
    for say, read, env_alt in _readings(t, env):
        expected = read.oracle(env_alt)
        baselines = read.baselines(env_alt, expected)
        found = compare_outputs(read, actual, expected, baselines, scales=noise_scales(read.spec, env_alt))
        if found.passed:
            matched.append((found.ratio, say))
    if not matched:
        return m
    first, *others = [say for _, say in matched]
    said = INDISTINGUISHABLE.join([first, *(o.removeprefix(READING) for o in others)])
    return replace(m, detail=f"{m.detail}; {said}")


def _readings(t: Trial, env: Mapping[str, Any]) -> Iterator[tuple[str, Trial, dict[str, Any]]]:
    """The spec's oracle readings that apply here (``when_failing: oracle``, their ``when`` true): each one's words,
    the trial with the oracle as it reads it, and the same inputs with its params (``try``) set."""
    scalars = t.scalars_of(env)
    for d in t.spec.diagnoses:
        if d.check != "oracle" or (d.when is not None and not bool(evaluate(d.when, scalars, NumpyBackend()))):
            continue
        alternative = {
            k: e if isinstance(e, str) else _like(evaluate(e, scalars, NumpyBackend()), scalars[k])
            for k, e in d.alternative.items()
        }
        read = copy.copy(t)
        read.spec = reading(t.spec, d)
        yield d.say, read, {**env, **alternative}  # the same inputs: only the oracle's params and expressions change


def _representable(values: np.ndarray, dtype: str) -> bool:
    """Whether the exact result fits the dtype; an example whose answer overflows it is out of domain."""
    return bool(np.all(np.abs(values[np.isfinite(values)]) <= dh.max_value(dtype)))


def check_output_contract(t: Trial) -> Measurement:
    with torch.no_grad():
        try:
            outs = t.fn(t.tensors(t.rounded(t.env64)))
        except OutputCountError as exc:
            return Measurement(0.0, 0.0, None, False, str(exc))
    several = len(t.outputs) > 1
    problems = []
    for out, spec_out in zip(outs, t.spec.outputs.values()):
        prefix = f"{spec_out.name}: " if several else ""
        expected = shape_of(spec_out.shape, t.example.sizes)
        if tuple(out.shape) != expected:
            written = [d if isinstance(d, (str, int)) else str(d) for d in spec_out.shape]
            problems.append(f"{prefix}shape {tuple(out.shape)} != {expected} ({spec_out.name}: {written})")
        if out.dtype != dh.torch_dtype(t.dtype):
            problems.append(f"{prefix}dtype {out.dtype} != {dh.torch_dtype(t.dtype)}")
        if out.device.type != torch.device(t.device).type:
            problems.append(f"{prefix}device {out.device} != {t.device}")
    return Measurement(0.0, 0.0, None, not problems, "; ".join(problems))


def check_determinism(t: Trial) -> Measurement:
    env = t.rounded(t.env64)
    first, second = t.implementation(env), t.implementation(env)
    measurements = []
    for name, a, b in zip(t.outputs, first, second):
        err = max_abs(a, b)
        same = bool(np.array_equal(a, b, equal_nan=True))
        detail = "" if same else f"two calls differ by up to {err:.4g} (bitwise equality expected)"
        measurements.append(_labelled(Measurement(err, err, None, same, detail), name if len(t.outputs) > 1 else None))
    return worst(measurements)


def check_invariant(t: Trial, invariant_id: str) -> Measurement | None:
    """``None`` when the transformed inputs are not representable in the dtype (example rejected)."""
    inv = next(i for i in t.spec.invariants if i.id == invariant_id)
    kind = INVARIANT_KINDS[inv.kind]
    rng = np.random.default_rng([t.example.seed, sum(map(ord, inv.id))])
    plan = kind.plan(inv.options, t.env64, rng, t.outputs[0] if len(t.outputs) == 1 else t.outputs)
    env_a = t.rounded(derive_inputs(t.spec, plan.env_a, keep=t.env64))
    env_b = env_a if plan.env_b is plan.env_a else t.rounded(derive_inputs(t.spec, plan.env_b, keep=t.env64))
    if plan.reject:  # the plan cannot apply to this example (split's one-position sequence)
        return None
    first = t.rounded(derive_inputs(t.spec, plan.feed.env, keep=t.env64)) if plan.feed else None
    reals = [n for n, i in t.spec.inputs.items() if i.kind == "real"]
    if not all(np.all(np.isfinite(e[n])) for e in (env_b, first) if e is not None for n in reals):
        return None

    def run(
        f: Callable[[Mapping[str, Any]], Outputs], draw: int | None = None, dtype: str = "float64", ulps: float = OWN_ULPS
    ) -> tuple[Outputs, Outputs, dict[str, Any]]:
        """The two calls (the second fed by a first one where the plan chains them: its fed inputs rounded
        to the tested dtype, and its ``join`` outputs joined after the first call's); with ``draw``, each
        call's inputs perturbed independently at ``dtype`` (:func:`perturbed`) to measure a computation's
        own sensitivity to rounding."""

        def at(env: Mapping[str, Any], call: int) -> Mapping[str, Any]:
            return env if draw is None else perturbed(t.spec, env, t.example.seed, draw, dtype, call, ulps)

        if plan.env_b is plan.env_a and plan.feed is None:  # one call related to itself (an identity without set)
            outs = f(at(env_a, 0))
            return outs, outs, env_a
        env, before = env_b, None
        if plan.feed is not None and first is not None:
            before = f(at(first, 2))
            env = dict(env_b)
            for target, source in plan.feed.pairs:
                fed = before[t.outputs.index(source)]
                if not np.all(np.isfinite(fed)):
                    raise _Unrepresentable
                env[target] = dh.round_to(fed, t.dtype)
        outs_a, outs_b = f(at(env_a, 0)), f(at(env, 1))
        if before is not None and plan.feed is not None and plan.feed.join:
            join = plan.feed.join
            outs_b = tuple(
                np.concatenate([b, o], axis=join[name]) if name in join else o for name, b, o in zip(t.outputs, before, outs_b)
            )
        return outs_a, outs_b, env

    try:
        oracle_runs = run(t.oracle)
    except _Unrepresentable:
        return None
    if not all(_representable(o, t.dtype) for outs in oracle_runs[:2] for o in outs):
        return None
    o_pairs = _related(plan, oracle_runs, env_a, t.outputs)
    implementation_runs = run(t.implementation)
    i_pairs = _related(plan, implementation_runs, env_a, t.outputs)
    r_pairs = _related(plan, run(t.reference), env_a, t.outputs) if has_reference(t.spec) else None  # type: ignore[arg-type]
    own = _spread_of_violation(plan, lambda d: run(t.oracle, d), env_a, t, o_pairs) if t.dtype == "float64" else None
    # Where the transformed inputs had to be rounded to the tested dtype (x + 1, not a permutation or a
    # power-of-two scaling), the relation holds for the implementation only up to that rounding, amplified
    # by its own conditioning (ε outside LayerNorm's root divides by a smaller number than the spec's): how
    # far its violation moves when its inputs move by one ulp is judged as noise. A relation between two of
    # its outputs is so judged at its own scale, not only at the spec formula's.
    mine = [0.0] * len(i_pairs)
    if kind.transforms_inputs and _transform_rounds(t, kind, inv):
        mine = _spread_of_violation(plan, lambda d: run(t.implementation, d, t.dtype, 1.0), env_a, t, i_pairs)
    # the terms a relation is computed from include the outputs themselves (an identity "f(x) − f(−x) − x"
    # against "0" is small next to them): of both calls, the oracle's and the implementation's (finite ones)
    # (only the outputs the relation compares: a final state left out by causality's ``outputs`` is no term)
    compared = [k for k, name in enumerate(t.outputs) if plan.outputs is None or name in plan.outputs]
    terms = max(_largest_finite(outs[k]) for runs in (oracle_runs, implementation_runs) for outs in runs[:2] for k in compared)
    measurements = []
    for k, (name, (o_lhs, o_rhs)) in enumerate(o_pairs):
        slack = max_abs(o_lhs, o_rhs)
        baseline = None if r_pairs is None else max_abs(*r_pairs[k][1])
        # The relation is judged at the larger of the oracle's scale and the implementation's own (finite)
        # scale: an implementation wrong in magnitude fails the oracle, not a relation it keeps exactly.
        scale = max(terms, _largest_finite(o_lhs), _largest_finite(o_rhs), *map(_largest_finite, i_pairs[k][1]))
        slack = slack if np.isfinite(slack) else 0.0
        extra = t.rule.factor * ((own[k] if own else 0.0) + mine[k])
        tol = derive(t.dtype, baseline=baseline, scale=scale, rule=t.rule, slack=slack + extra)
        tol = replace(tol, slack=slack, own=own[k] if own else 0.0, sensitivity=mine[k])
        err = max_abs(*i_pairs[k][1])
        passed = err <= tol.atol
        where = f"{name}: " if name else ""
        where += f"{plan.note}: " if plan.note else ""
        if scale > 0 and tol.atol >= scale:  # the oracle itself breaks the relation by as much as its terms
            detail = (
                f"{inv.description}: {where}vacuous tolerance: {tol.atol:.4g} = {tol.describe()} reaches the relation's "
                f"terms ({scale:.4g}): the equation as written does not keep it on this example (not counted as a pass)"
            )
            measurements.append(Measurement(err, err / scale, tol, False, detail, vacuous=True))
            continue
        detail = f"{inv.description}: {where}|lhs − rhs| {err:.4g} > tolerance {tol.atol:.4g} = {tol.describe()}"
        detail = "" if passed else detail
        measurements.append(Measurement(err, err / scale if scale > 0 else err, tol, passed, detail))
    return worst(measurements)


def _transform_rounds(t: Trial, kind: Any, inv: Any) -> bool:
    """Whether the invariant's second call, planned on the inputs as rounded to the tested dtype, changes a
    real input to values that dtype cannot hold exactly (so they are rounded once more).

    At float64 the plan's own float64 arithmetic has already rounded (x + 1), so the question is asked at
    the float32 stand-in instead: on float32 inputs, float64 arithmetic is exact for such a transformation,
    and whether float32 holds its result says whether the transformation rounds.
    """
    at = stand_in_dtype(t.dtype) or t.dtype
    rounded = t.rounded(t.env64, at)
    rng = np.random.default_rng([t.example.seed, sum(map(ord, inv.id))])
    replan = kind.plan(inv.options, rounded, rng, t.outputs[0] if len(t.outputs) == 1 else t.outputs)
    if replan.env_b is replan.env_a or replan.reject:
        return False
    raw = replan.env_b  # the inputs the plan replaced (derived ones follow their params like the first call's)
    for name, inp in t.spec.inputs.items():
        if inp.kind != "real" or inp.derive is not None or name not in raw or raw[name] is replan.env_a.get(name):
            continue
        if np.shape(raw[name]) != np.shape(rounded[name]):
            continue
        value = np.asarray(raw[name], dtype=np.float64)
        if not np.array_equal(value, rounded[name]) and not np.array_equal(value, dh.round_to(value, at), equal_nan=True):
            return True
    return False


def _spread_of_violation(
    plan: Any,
    run_perturbed: Callable[[int], tuple[Outputs, Outputs, dict[str, Any]]],
    env_a: Mapping[str, Any],
    t: Trial,
    o_pairs: list[tuple[str | None, tuple[np.ndarray, np.ndarray]]],
) -> list[float]:
    """Per relation, how much a computation's violation (``o_pairs``, unperturbed) moves over its runs on
    perturbed inputs (``run_perturbed(draw)``, see :data:`OWN_ULPS`)."""
    own = [0.0] * len(o_pairs)
    for draw in range(OWN_DRAWS):
        try:
            pairs = _related(plan, run_perturbed(draw), env_a, t.outputs)
        except _Unrepresentable:
            continue
        for k, ((_, (lhs, rhs)), (_, (o_lhs, o_rhs))) in enumerate(zip(pairs, o_pairs)):
            with np.errstate(invalid="ignore", over="ignore"):
                violation, unperturbed = np.asarray(lhs) - rhs, np.asarray(o_lhs) - o_rhs
            own[k] = max(own[k], float(np.max(_finite_change(violation, unperturbed), initial=0.0)))
    return own


def _largest_finite(values: np.ndarray) -> float:
    """max |values| over the finite elements (0 if none): a scale that a non-finite value cannot inflate."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    return float(np.max(np.abs(finite), initial=0.0))


class _Unrepresentable(Exception):
    """A chained call's intermediate output is not finite: the example is out of the dtype's domain."""


def _related(
    plan: Any, runs: tuple[Outputs, Outputs, dict[str, Any]], env_a: Mapping[str, Any], names: tuple[str, ...]
) -> list[tuple[str | None, tuple[np.ndarray, np.ndarray]]]:
    """``(output name or None, (lhs, rhs))``: one pair per output, or one for a joint relation."""
    outs_a, outs_b, env_b = runs
    if plan.joint or len(names) == 1:
        a, b = (outs_a, outs_b) if len(names) > 1 else (outs_a[0], outs_b[0])
        return [(None, plan.relate(a, b, env_a, env_b))]
    compared = [(n, a, b) for n, a, b in zip(names, outs_a, outs_b) if plan.outputs is None or n in plan.outputs]
    return [(name, plan.relate(a, b, env_a, env_b)) for name, a, b in compared]


def implementation_vjps(t: Trial, env: Mapping[str, Any]) -> tuple[list[list[torch.Tensor]], list[np.ndarray]] | Measurement:
    """The implementation's vector-Jacobian products at the tested dtype, per output and ``wrt`` input (zeros
    where an output does not reach an input), with the random cotangents (float64 values, rounded to the
    dtype); or the failure where some ``wrt`` input receives no gradient from any output."""
    wrt = t.spec.grad_wrt
    inputs = t.tensors(env, requires_grad=wrt)
    outs = t.fn(inputs)
    cots64 = [dh.round_to(cotangent(tuple(o.shape), t.example.seed + k), t.dtype) for k, o in enumerate(outs)]
    cots = [dh.to_torch(c, t.dtype, t.device) for c in cots64]
    leaves = [inputs[w] for w in wrt]
    live = [k for k, o in enumerate(outs) if o.requires_grad]  # a detached output has no graph at all
    grads: Sequence[torch.Tensor | None] = [None] * len(leaves)
    if live:
        live_outs, live_cots = [outs[k] for k in live], [cots[k] for k in live]
        grads = torch.autograd.grad(live_outs, leaves, live_cots, allow_unused=True, retain_graph=True)
    missing = [w for w, g in zip(wrt, grads) if g is None]
    if missing:
        return Measurement(float("inf"), float("inf"), None, False, f"no gradient reaches {', '.join(missing)}")
    if len(outs) == 1:
        return [list(grads)], cots64  # type: ignore[list-item]
    per_output = []
    for k in range(len(outs)):  # one output at a time, so a failure names its output
        one: Sequence[torch.Tensor | None] = [None] * len(leaves)
        if k in live:
            one = torch.autograd.grad(outs[k], leaves, cots[k], allow_unused=True, retain_graph=True)
        per_output.append([torch.zeros_like(x) if g is None else g for x, g in zip(leaves, one)])
    return per_output, cots64


def check_gradient(t: Trial) -> Measurement:
    """The implementation's VJPs against autograd through the spec's oracle expressions, output by output (a
    reference-only oracle: :func:`conformance.reference_gradient.check_reference_gradient`)."""
    env = t.rounded(t.env64)
    found = implementation_vjps(t, env)
    if isinstance(found, Measurement):
        return found
    grads, cots64 = found
    if len(grads) == 1:
        return _compare_grads(t, env, grads[0], cots64[0], None)
    return worst([_compare_grads(t, env, g, c, name) for g, c, name in zip(grads, cots64, t.outputs)])


def _compare_grads(
    t: Trial, env: Mapping[str, Any], grads: Sequence[torch.Tensor], cot64: np.ndarray, output: str | None
) -> Measurement:
    """One output's vector-Jacobian products against the oracle's, for every ``wrt`` input."""
    only = None if output is None else (output,)
    expected = _expr_grads(t, env, cot64, "float64", "cpu", only=only)
    # the noise floor's scale: the summed magnitude of the terms (see conformance.error_bounds)
    bounds = _expr_grads(t, env, np.abs(cot64), "float64", "cpu", backend=AbsBoundBackend, only=only)
    # at float64, the oracle gradient's own rounding (its spread over perturbed inputs, see OWN_ULPS)
    own = None
    if t.dtype == "float64":
        own = own_spread(lambda e: _expr_grads(t, e, cot64, "float64", "cpu", only=only), t.spec, env, t.example.seed, expected)
    owns = own or [None] * len(expected)
    measurements = []
    baselines = _grad_baselines(t, env, cot64, expected, only)
    for w, g, e, baseline, b, o in zip(t.spec.grad_wrt, grads, expected, baselines, bounds, owns):
        scale = np.maximum(np.abs(e), b)  # per element: the summed magnitude of that element's terms
        m = compare(dh.to_numpy64(g), e, dtype=t.dtype, rule=t.rule, baseline=baseline, scale=scale, own=o)
        measurements.append(_labelled(m, f"∂/∂{w}" if output is None else f"{output} → ∂/∂{w}"))
    return worst(measurements)


def _grad_baselines(
    t: Trial, env: Mapping[str, Any], cot64: np.ndarray, expected: list[np.ndarray], only: Sequence[str] | None
) -> list[float]:
    """The same-precision reference's error per ``wrt`` input (at float64: the stand-in's, rescaled; see Trial)."""

    def error_at(at: str) -> list[float]:
        if at == t.dtype:
            reference = _expr_grads(t, env, cot64, t.compute_dtype, t.device, only=only)
            return [max_abs(dh.round_to(r, t.dtype), e) for r, e in zip(reference, expected)]
        low, cot_low = t.rounded(env, at), dh.round_to(cot64, at)
        expected_low = _expr_grads(t, low, cot_low, "float64", "cpu", only=only)
        reference = _expr_grads(t, low, cot_low, at, t.device, only=only)
        return [max_abs(r, e) for r, e in zip(reference, expected_low)]

    found = reference_baselines(t.dtype, error_at, stand_in=t.stand_in) or []
    if found and t.dtype == "float64" and uses_definitional(t.spec):  # as in Trial.baselines
        reference = _expr_grads(t, env, cot64, "float64", t.device, only=only, definitional=True)
        found = [max(b, max_abs(r, e)) for b, r, e in zip(found, reference, expected)]
    return found


def uses_definitional(spec: EquationSpec) -> bool:
    """Whether the oracle calls a function the same-precision reference computes by its definition
    (:data:`conformance.evaluate_torch.DEFINITIONAL`)."""
    from conformance.evaluate_torch import DEFINITIONAL

    exprs = [e for _, e in spec.oracle.let] + list(spec.oracle.exprs.values())
    return any(getattr(f.func, "__name__", "") in DEFINITIONAL for e in exprs for f in e.atoms(sympy.Function))


def _expr_grads(
    t: Trial,
    env: Mapping[str, Any],
    cot64: np.ndarray,
    dtype: str,
    device: str,
    *,
    backend: type = TorchBackend,
    only: Sequence[str] | None = None,
    definitional: bool | None = None,
) -> list[np.ndarray]:
    """Vector-Jacobian products of the oracle expression (autograd through the evaluator)."""
    wrt = t.spec.grad_wrt
    inputs = t.tensors(env, dtype=dtype, device=device, requires_grad=wrt)
    evaluator = backend(dh.torch_dtype(dtype), device, definitional)
    (out,) = _expr_values(t.spec, {**t.scalars, **inputs}, evaluator, only=only or t.outputs[:1])
    grads = torch.autograd.grad(out, [inputs[w] for w in wrt], dh.to_torch(cot64, dtype, device), allow_unused=True)
    return [dh.to_numpy64(g) if g is not None else np.zeros(np.shape(env[w])) for w, g in zip(wrt, grads)]


def check_gradcheck(t: Trial, order: int) -> Measurement:
    env = t.rounded(t.env64)
    base = t.tensors(env, dtype="float64")
    wrt = t.spec.grad_wrt
    leaves = tuple(base[w].detach().requires_grad_(True) for w in wrt)

    def f(*xs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        outs = t.fn({**base, **dict(zip(wrt, xs))})
        return outs[0] if len(outs) == 1 else outs

    check = torch.autograd.gradcheck if order == 1 else torch.autograd.gradgradcheck
    if check(f, leaves, fast_mode=True, raise_exception=False):
        return Measurement(0.0, 0.0, None, True)
    try:  # fast mode has had false failures: confirm in slow mode before reporting
        check(f, leaves, fast_mode=False, raise_exception=True)
    except Exception as exc:  # gradcheck raises GradcheckError (a RuntimeError) with the Jacobians
        outputs = "" if len(t.outputs) == 1 else f" (outputs {', '.join(f'{k} = {n}' for k, n in enumerate(t.outputs))})"
        return Measurement(
            float("nan"), float("nan"), None, False, f"{'grad' if order == 1 else 'gradgrad'}check (slow mode){outputs}: {exc}"
        )
    return Measurement(0.0, 0.0, None, True, "fast mode failed, slow mode passed")


def run_check(spec: EquationSpec, ref: str, device: str, dtype: str, check: str, example: Example) -> Measurement | None:
    """Judge one example by the check named ``check`` (its definition's ``judge``); ``None`` rejects the example.

    ``ref`` is the implementation's id: a reference, optionally with fixed params in brackets.
    """
    from conformance.selection import Case

    try:
        case = Case(spec, ref, device, dtype, check)
    except ValueError:
        raise ValueError(f"unknown check {check!r} for spec {spec.id!r}") from None
    definition = case.definition
    if definition.draw is None:
        raise ValueError(f"{check!r} runs whole, not one example at a time")
    return definition.judge_fn()(case, example)


def check_oracle_agreement(spec: EquationSpec, example: Example) -> Measurement:
    """The SymPy oracle vs the spec's float64 reference function, both in float64."""
    env = materialize(spec, example)
    expected = [np.asarray(v, dtype=np.float64) for v in _expr_values(spec, dict(env), NumpyBackend())]
    actual = _reference_outputs(spec, env)
    rule = spec.tolerance_rule("float64")
    several = len(spec.outputs) > 1
    scales = noise_scales(spec, env) or [None] * len(expected)
    # both sides compute in float64: the SymPy oracle's own rounding counts (see OWN_ULPS)
    own = own_spread(lambda e: _expr_values(spec, dict(e), NumpyBackend()), spec, env, example.seed, expected)
    owns = own or [None] * len(expected)
    measurements = [
        compare(a, e, dtype="float64", rule=rule, scale=_at_least_the_result(s, e), own=o)
        for a, e, s, o in zip(actual, expected, scales, owns)
    ]
    return worst([_labelled(m, name if several else None) for name, m in zip(spec.outputs, measurements)])
