"""Hypothesis strategies that draw examples from a spec's declared domain.

An :class:`Example` is small and printable: sizes (edge sizes drawn often), params, a magnitude
per drawn real input (log-uniform across the declared range, clipped to what the dtype can hold),
which optional inputs are present, and a seed. :func:`materialize` turns it into float64 arrays
(derived inputs computed from the rest), so a falsifying example is a complete, copy-pasteable
reproduction.

Shrinking simplifies sizes and structure, not scale: a size (and an integer param) shrinks toward the
smallest that still fails, a magnitude (and a log-scaled param) toward its range's
:func:`representative` value — 1.0 where the range holds it, else the range's geometric middle —
never toward an edge, so a shrunk failure reads at a scale a reviewer can weigh (not
"5.8e-25 > 3.1e-32"). The edges are still drawn often, and kept when only they fail.

How far shrinking goes is bounded. A check's :class:`Domain` (its spec, dtype, extra condition and
gradcheck's scale) offers :meth:`Domain.simpler` candidates, which the runner judges greedily within
a fixed number of judgements (no Hypothesis shrinker). Where only a strategy is known (a pattern
kind's search, an extension's draw), Hypothesis shrinks within :class:`ShrinkBudget`.

>>> from conformance.spec import load_specs
>>> spec = load_specs()["surprise"]
>>> ex = Example(sizes={"B": 1, "L": 2, "D": 3}, params={}, magnitudes={"hidden": 1.0, "memory_pred": 1.0},
...              present={}, seed=0)
>>> materialize(spec, ex)["hidden"].shape
(1, 2, 3)
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from hypothesis import strategies as st

from conformance import dtype_helpers
from conformance.evaluate import NumpyBackend, evaluate
from conformance.spec import Dim, EquationSpec, Param, TensorInput

# Finite differences in gradcheck use an absolute step of 1e-6: inputs far from unit scale make the
# numerical Jacobian, not the implementation, inaccurate. Gradient checks draw magnitudes here.
GRADCHECK_MAGNITUDE = (0.25, 4.0)


def gradcheck_range(inp: TensorInput) -> tuple[float, float]:
    """:data:`GRADCHECK_MAGNITUDE` within the input's declared (float64) range: a gradient check stays in the
    spec's domain (Titans' θ ≤ 0.25, where an inner step of 4 would leave it).

    >>> gradcheck_range(TensorInput("x", ("D",))), gradcheck_range(TensorInput("t", ("D",), magnitude=(1e-3, 0.25)))
    ((0.25, 4.0), (0.25, 0.25))
    """
    lo, hi = inp.magnitude
    top = min(GRADCHECK_MAGNITUDE[1], hi)
    return min(max(GRADCHECK_MAGNITUDE[0], lo), top), top


# Gradient checks draw small sizes: slow-mode gradcheck costs one call per input element.
GRADCHECK_MAX_SIZE = 4


@dataclass(frozen=True)
class Example:
    sizes: Mapping[str, int]
    params: Mapping[str, Any]
    magnitudes: Mapping[str, float]
    present: Mapping[str, bool]
    seed: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "sizes": dict(self.sizes),
            "params": dict(self.params),
            "magnitudes": dict(self.magnitudes),
            "present": dict(self.present),
            "seed": self.seed,
        }


def magnitude_range(inp: TensorInput, dtype: str) -> tuple[float, float]:
    """The spec's range for ``inp`` at ``dtype``, clipped to normal numbers and a quarter of the max."""
    lo, hi = inp.magnitude_by_dtype.get(dtype, inp.magnitude)
    lo = max(lo, dtype_helpers.smallest_normal(dtype))
    hi = min(hi, dtype_helpers.max_value(dtype) / 4)
    return min(lo, hi), hi  # a range wholly above what the dtype holds collapses to its top


@dataclass(frozen=True)
class Domain:
    """Where one check's examples come from: ``spec`` at ``dtype``, an extra condition ``when`` on
    sizes and params (an invariant's), and gradcheck's small sizes and unit-scale magnitudes."""

    spec: EquationSpec
    dtype: str
    when: Any = None
    for_gradcheck: bool = False

    def examples(self) -> st.SearchStrategy[Example]:
        return examples(self.spec, self.dtype, when=self.when, for_gradcheck=self.for_gradcheck)

    def magnitude_range(self, name: str) -> tuple[float, float]:
        inp = self.spec.inputs[name]
        return gradcheck_range(inp) if self.for_gradcheck else magnitude_range(inp, self.dtype)

    def admits(self, example: Example) -> bool:
        """Sizes within their bounds and every constraint (and ``when``) satisfied."""
        bounded = all(self.spec.symbols[n].min <= v <= self.spec.symbols[n].max for n, v in example.sizes.items())
        return bounded and _satisfies(self.spec, example.sizes, example.params, self.when)

    def simpler(self, example: Example) -> Iterator[Example]:
        """Simpler examples than ``example`` in the domain, most promising first; the seed and params are kept.

        Every magnitude at its range's :func:`representative` at once; then each size toward its
        minimum (the minimum, halfway, one less: each the nearest size at or below that the domain
        admits); then each magnitude alone. The scale is made
        representative, never pushed toward an edge; sizes and structure are what shrink.
        """
        typical = {n: representative(*self.magnitude_range(n)) for n in example.magnitudes}
        candidates = [replace(example, magnitudes=typical)]
        for name in [n for n in self.spec.symbols if n in example.sizes]:  # the spec's order, not the draw's
            candidates += [replace(example, sizes={**example.sizes, name: v}) for v in self._smaller(example, name)]
        candidates += [replace(example, magnitudes={**example.magnitudes, n: m}) for n, m in typical.items()]
        seen = {_key(example)}
        for candidate in candidates:
            key = _key(candidate)
            if key not in seen and self.admits(candidate):
                seen.add(key)
                yield candidate


    def _smaller(self, example: Example, name: str) -> list[int]:
        size, low = example.sizes[name], self.spec.symbols[name].min
        found: list[int] = []
        for target in (low, (low + size) // 2, size - 1):
            admitted = (v for v in range(target, low - 1, -1) if self.admits(replace(example, sizes={**example.sizes, name: v})))
            value = next(admitted, None)
            if value is not None and value < size and value not in found:
                found.append(value)
        return found


def examples(spec: EquationSpec, dtype: str, *, when: Any = None, for_gradcheck: bool = False) -> st.SearchStrategy[Example]:
    """Examples of ``spec`` at ``dtype``; ``when`` is an extra condition on sizes and params."""
    scalars = st.fixed_dictionaries(
        {
            "sizes": st.fixed_dictionaries({n: _size(s.min, s.max, for_gradcheck) for n, s in spec.symbols.items()}),
            "params": st.fixed_dictionaries({n: _param(p) for n, p in spec.params.items()}),
        }
    ).filter(lambda d: _satisfies(spec, d["sizes"], d["params"], when))
    real = {n: i for n, i in spec.inputs.items() if i.kind == "real" and i.drawn}
    magnitudes = st.fixed_dictionaries(
        {n: _log_uniform(*(gradcheck_range(i) if for_gradcheck else magnitude_range(i, dtype))) for n, i in real.items()}
    )
    present = st.fixed_dictionaries({n: st.booleans() for n, i in spec.inputs.items() if i.optional})
    return st.builds(
        lambda s, m, p, seed: Example(s["sizes"], s["params"], m, p, seed),
        scalars,
        magnitudes,
        present,
        st.integers(0, 2**32 - 1),
    )


class ShrinkBudget:
    """At most ``limit`` examples judged once a search has found its first failure.

    Hypothesis has no public bound on shrinking, so the property enforces one: ``allows(example)``
    says whether to judge an example. Before the first failure, always; after it, while judgements
    are left; past the budget only an example already judged failing (Hypothesis's final replay of
    the shrunk one): every other counts as passing unjudged, so the shrinker stops making progress
    and reports the simplest failure judged. An example is recognised by its ``repr``; one whose
    ``repr`` names an object's address cannot be, and lifts the bound (a sound run over a fast one).
    """

    def __init__(self, limit: int) -> None:
        self.limit: float = limit
        self.spent = 0
        self.failing: set[str] = set()

    @property
    def exhausted(self) -> bool:
        return bool(self.failing) and self.spent >= self.limit

    def allows(self, example: Any) -> bool:
        if not self.failing:
            return True
        if self.exhausted:
            return _key(example) in self.failing
        self.spent += 1
        return True

    def failed(self, example: Any) -> None:
        key = _key(example)
        if " at 0x" in key:
            self.limit = math.inf
        self.failing.add(key)


def _key(example: Any) -> str:
    return repr(sorted(example.as_dict().items())) if isinstance(example, Example) else repr(example)


def _size(lo: int, hi: int, small: bool) -> st.SearchStrategy[int]:
    if small:
        hi = max(lo, min(hi, GRADCHECK_MAX_SIZE))
    return _integer(lo, hi)


def _integer(lo: int, hi: int) -> st.SearchStrategy[int]:
    """An integer in [lo, hi], edges drawn often, shrinking toward the smallest that still fails.

    The edges come second: Hypothesis shrinks ``one_of`` toward its first branch, and an edge first
    would shrink to ``hi`` whenever ``lo`` breaks a constraint (``D >= 2*H``), not to the next size up.
    """
    return st.one_of(st.integers(lo, hi), st.sampled_from(sorted({lo, hi})))


def _param(p: Param) -> st.SearchStrategy[Any]:
    if p.default is not None:  # an implementation option: fixed, not drawn
        return st.just(p.default)
    if p.values:
        return st.sampled_from(p.values)
    assert p.low is not None and p.high is not None
    if p.integer:
        lo, hi = int(p.low), int(p.high)
        return _integer(lo, hi)
    return _log_uniform(p.low, p.high) if p.log else st.floats(p.low, p.high, allow_nan=False)


def representative(lo: float, hi: float) -> float:
    """The value a log-scaled range's draws shrink toward: 1.0 where ``lo <= 1 <= hi``, else ``sqrt(lo * hi)``.

    Unit scale is where a reader weighs an error at a glance; a range that excludes it (weights in
    [0.01, 0.3], an epsilon in [1e-8, 1e-3]) is represented by its own typical scale, its geometric
    middle, not by the edge nearest to 1 (edges are drawn separately).

    >>> representative(1e-3, 1e3), representative(1e-8, 1e-2), representative(4.0, 4.0)
    (1.0, 1e-05, 4.0)
    """
    if lo <= 1.0 <= hi:
        return 1.0
    middle = 10.0 ** ((math.log10(lo) + math.log10(hi)) / 2)
    return min(max(middle, lo), hi)


def _log_uniform(lo: float, hi: float) -> st.SearchStrategy[float]:
    """Log-uniform on [lo, hi] with both edges drawn often; shrinks toward :func:`representative`.

    Hypothesis shrinks ``one_of`` toward its first branch and a bounded float toward zero, so the
    first branch draws the exponent as an offset from the representative's (an offset that shrinks to
    0, or to the smallest offset that still fails) and the edges come second.
    """
    if lo == hi:
        return st.just(lo)
    middle = representative(lo, hi)
    centre = math.log10(middle)
    offset = st.floats(math.log10(lo) - centre, math.log10(hi) - centre, allow_nan=False)
    spread = offset.map(lambda e: min(max(10.0 ** (centre + e), lo), hi))
    return st.one_of(spread, st.sampled_from([lo, hi]))


def _satisfies(spec: EquationSpec, sizes: Mapping[str, int], params: Mapping[str, Any], when: Any) -> bool:
    env = {**sizes, **params}
    conditions = [c for _, c in spec.constraints] + ([when] if when is not None else [])
    return all(bool(evaluate(c, env, NumpyBackend())) for c in conditions)


def shape_of(shape: tuple[Dim, ...], sizes: Mapping[str, int]) -> tuple[int, ...]:
    """Concrete sizes of a spec shape; a dimension written as an expression (``D // 2``) is evaluated.

    >>> import sympy
    >>> shape_of(("L", sympy.floor(sympy.Symbol("D") / 2), 3), {"L": 4, "D": 6})
    (4, 3, 3)
    """
    return tuple(_dim(d, sizes) for d in shape)


def _dim(dim: Dim, sizes: Mapping[str, int]) -> int:
    if isinstance(dim, str):
        return sizes[dim]
    if isinstance(dim, int):
        return dim
    value = float(evaluate(dim, sizes, NumpyBackend()))
    if not value.is_integer() or value < 1:
        raise ValueError(f"dimension {dim} is {value:g} at sizes {dict(sizes)}: expected a positive integer (add a constraint)")
    return int(value)


def materialize(spec: EquationSpec, example: Example) -> dict[str, Any]:
    """The example's float64 (bool, or int64 for index) inputs, plus its sizes and params, by spec name.

    Index inputs are uniform integers in ``0 .. range - 1``; like every other value they follow from
    the example's seed, so the printed example determines them.

    An absent optional bool input is filled with its ``default`` for the oracle (the
    implementation is not passed it), as is an implementation option (a param with a ``default``) the example
    does not name. Derived inputs are computed after the drawn ones.
    """
    rng = np.random.default_rng(example.seed)
    # an implementation option the example does not give (an example written by hand) is at its default
    options = {n: p.default for n, p in spec.params.items() if p.default is not None and n not in example.params}
    env: dict[str, Any] = {**example.sizes, **options, **example.params}
    for name, inp in spec.inputs.items():
        if not inp.drawn:
            continue
        shape = shape_of(inp.shape, example.sizes)
        if inp.kind == "bool":
            env[name] = _mask(rng, shape, inp) if example.present.get(name, True) else np.full(shape, inp.default)
        elif inp.kind == "index":
            assert inp.index_range is not None
            env[name] = rng.integers(0, _dim(inp.index_range, example.sizes), size=shape, dtype=np.int64)
        else:
            env[name] = rng.uniform(0.0 if inp.nonnegative else -1.0, 1.0, size=shape) * example.magnitudes[name]
    return derive_inputs(spec, env)


def derive_inputs(spec: EquationSpec, env: Mapping[str, Any], keep: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``env`` with every derived input (re)computed in float64, in declaration order.

    ``keep``: an earlier environment; a derived input whose value in ``env`` is still the very
    object it was there has not been replaced (by an invariant's ``set``, say) and is recomputed from
    ``env`` (its params may have changed); one that was replaced is kept as it is.
    """
    out = dict(env)
    for name, inp in spec.inputs.items():
        if inp.derive is None or (keep is not None and name in out and out[name] is not keep.get(name)):
            continue
        sizes = {n: out[n] for n in spec.symbols}
        value = np.asarray(evaluate(inp.derive, out, NumpyBackend()))
        shape = shape_of(inp.shape, sizes)
        try:
            value = np.broadcast_to(value, shape)
        except ValueError:
            raise ValueError(f"derived input {name!r} has shape {value.shape}, which does not broadcast to {shape}") from None
        out[name] = value.astype(bool if inp.kind == "bool" else np.float64)
    return out


def _mask(rng: np.random.Generator, shape: tuple[int, ...], inp: TensorInput) -> np.ndarray:
    mask = rng.random(shape) < 0.7
    if inp.rows_nonempty:
        rows, cols = shape[-2], shape[-1]
        # every row keeps one column <= its own index, so no row is fully masked, causal or not
        keep = np.array([rng.integers(0, min(i, cols - 1) + 1) for i in range(rows)])
        mask[..., np.arange(rows), keep] = True
    return mask


def cotangent(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """A random cotangent for vector-Jacobian products (never only ones)."""
    return np.random.default_rng(seed ^ 0x5EED).standard_normal(shape)
