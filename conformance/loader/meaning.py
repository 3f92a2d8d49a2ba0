"""Validation of a spec's meaning, once its schema holds: nothing of the spec is executed.

Three checks, each a keyed :class:`~conformance.validation.SpecError`:

- **memory budget**: the largest example the symbols allow (every input and output at the symbols'
  max, 8 bytes an element, 1 for a bool) must fit in :data:`MAX_EXAMPLE_BYTES`;
- **satisfiable constraints**: some sizes (and params) within their ranges satisfy every
  constraint. The grid of candidates is searched vectorised, smallest values first, up to
  :data:`MAX_SIZE_GRID` points; where the full grid is larger, an error says so rather than guessing;
- **dimensions**: a dimension written as an expression (``D // 2``) is a positive integer at every
  searched size the constraints allow;
- **oracle shapes**: every oracle expression (and derived input) is evaluated once in float64 with
  NumPy on deterministic inputs at small sizes that satisfy the constraints (distinct sizes where
  possible, so that ``Q @ K`` written for ``Q @ transpose(K)`` cannot pass by coincidence), and
  its shape must be the declared output's; so is every ``diagnose`` reading that rewrites the
  oracle's expressions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from conformance.evaluate import NumpyBackend, evaluate
from conformance.model import Dim, EquationSpec, Param
from conformance.validation import Where

MAX_EXAMPLE_BYTES = 256 * 2**20  # 256 MiB: the largest example (inputs and outputs, float64) a spec may allow
MAX_SIZE_GRID = 250_000  # candidate points of the constraint search
MAX_PARAM_CANDIDATES = 64


def check_meaning(spec: EquationSpec, where: Where) -> None:
    """Every check of this module, for one spec at ``where`` (``specs[i]``)."""
    if spec.oracle is None:
        return
    check_memory(spec, where)
    grid, ok = satisfying_grid(spec, where)
    check_dimensions(spec, where, grid, ok)
    check_oracle_shapes(spec, where, satisfying_point(spec, grid, ok))


# -- memory ---------------------------------------------------------------------------------------
def example_bytes(spec: EquationSpec) -> tuple[int, dict[str, int]]:
    """Bytes of the largest example (symbols at their max), in total and per input and output."""
    sizes = {name: symbol.max for name, symbol in spec.symbols.items()}
    per: dict[str, int] = {}
    for name, inp in spec.inputs.items():
        per[name] = math.prod(_largest_dim(d, sizes) for d in inp.shape) * (1 if inp.kind == "bool" else 8)
    for name, out in spec.outputs.items():
        per[name] = math.prod(_largest_dim(d, sizes) for d in out.shape) * 8
    return sum(per.values()), per


def check_memory(spec: EquationSpec, where: Where) -> None:
    total, per = example_bytes(spec)
    if total <= MAX_EXAMPLE_BYTES:
        return
    at_max = ", ".join(f"{n}={s.max}" for n, s in spec.symbols.items())
    largest = ", ".join(f"{n} {_mib(b)}" for n, b in sorted(per.items(), key=lambda kv: -kv[1])[:3])
    raise where.at("symbols").error(
        f"the largest example the symbols allow ({at_max}) takes {_mib(total)} (largest: {largest}), more than the "
        f"budget of {_mib(MAX_EXAMPLE_BYTES)} (MAX_EXAMPLE_BYTES): lower the symbols' max"
    )


def _largest_dim(dim: Dim, sizes: Mapping[str, int]) -> int:
    if isinstance(dim, str):
        return sizes[dim]
    if isinstance(dim, int):
        return dim
    with np.errstate(all="ignore"):
        value = float(evaluate(dim, sizes, NumpyBackend()))
    return max(1, math.ceil(value)) if math.isfinite(value) else 1


def _mib(count: int) -> str:
    return f"{count / 2**20:,.1f} MiB"


# -- constraints ----------------------------------------------------------------------------------
def satisfying_point(spec: EquationSpec, grid: Mapping[str, np.ndarray], ok: np.ndarray) -> dict[str, Any]:
    """Small sizes and params satisfying every constraint: distinct sizes above 1 where possible, then the smallest."""
    best = _best(spec, grid, ok)
    point = {n: _representative(p) for n, p in spec.params.items()}
    point.update({n: _scalar(v[best]) for n, v in grid.items()})
    return point


def check_dimensions(spec: EquationSpec, where: Where, grid: Mapping[str, np.ndarray], ok: np.ndarray) -> None:
    """Every dimension written as an expression is a positive integer at every searched size the constraints allow."""
    for group, records in (("inputs", spec.inputs), ("outputs", spec.outputs)):
        for name, record in records.items():
            dims = [(("shape", i), dim) for i, dim in enumerate(record.shape)]
            if getattr(record, "index_range", None) is not None:
                dims.append((("range",), record.index_range))
            for key, dim in dims:
                if isinstance(dim, (str, int)):
                    continue
                with np.errstate(all="ignore"):
                    value = np.broadcast_to(np.asarray(evaluate(dim, grid, NumpyBackend()), dtype=np.float64), ok.shape)
                bad = ok & ~((value >= 1) & (value == np.floor(value)))
                if bad.any():
                    k = int(np.argmax(bad))
                    sizes = {n: _scalar(grid[n][k]) for n in spec.symbols}
                    raise where.at(group, name, *key).error(
                        f"{dim} is {value[k]:g} at sizes {sizes}, which the constraints allow: expected a positive "
                        "integer (add a constraint)"
                    )


def satisfying_grid(spec: EquationSpec, where: Where) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The searched grid of sizes (and constrained params), flattened, and which points satisfy every constraint."""
    constrained = set().union(*(c.free_symbols for _, c in spec.constraints)) if spec.constraints else set()
    constrained_names = {s.name for s in constrained}
    axes: dict[str, list[Any]] = {name: list(range(s.min, s.max + 1)) for name, s in spec.symbols.items()}
    for name, param in spec.params.items():
        if name in constrained_names:
            axes[name] = _param_candidates(param)
    full = math.prod(len(v) for v in axes.values())
    searched = _shrink(axes)
    grid = _grid(searched)
    ok = np.ones(math.prod(len(v) for v in searched.values()), dtype=bool)
    env = {**{n: _representative(p) for n, p in spec.params.items()}, **grid}
    for j, (_, constraint) in enumerate(spec.constraints):
        try:
            with np.errstate(all="ignore"):
                value = np.broadcast_to(np.asarray(evaluate(constraint, env, NumpyBackend()), dtype=bool), ok.shape)
        except Exception as exc:  # noqa: BLE001 - a constraint that cannot be evaluated is a spec error
            message = f"cannot be evaluated on the sizes' grid: {type(exc).__name__}: {exc}"
            raise where.at("constraints", j).error(message) from None
        ok &= value
    if not ok.any():
        raise where.at("constraints").error(_unsatisfiable(spec, searched, full))
    return grid, ok


def _param_candidates(param: Param) -> list[Any]:
    if param.values:
        return list(param.values)[:MAX_PARAM_CANDIDATES]
    assert param.low is not None and param.high is not None
    if param.integer:
        return list(range(int(param.low), int(param.high) + 1))
    middle = math.sqrt(param.low * param.high) if param.log else (param.low + param.high) / 2
    return sorted({param.low, middle, param.high})


def _representative(param: Param) -> Any:
    """The value a param takes in the shape check when no constraint names it."""
    if param.default is not None:
        return param.default
    return param.values[0] if param.values else (int(param.low) if param.integer else param.low)  # type: ignore[arg-type]


def _shrink(axes: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """The smallest values of each axis, halving the longest axis until the grid has at most MAX_SIZE_GRID points."""
    out = {n: list(v) for n, v in axes.items()}
    while math.prod(len(v) for v in out.values()) > MAX_SIZE_GRID:
        longest = max(out, key=lambda n: len(out[n]))
        out[longest] = out[longest][: max(1, len(out[longest]) // 2)]
    return out


def _grid(axes: Mapping[str, list[Any]]) -> dict[str, np.ndarray]:
    if not axes:
        return {}
    arrays = np.meshgrid(*(np.asarray(v) for v in axes.values()), indexing="ij")
    return {name: a.ravel() for name, a in zip(axes, arrays)}


def _best(spec: EquationSpec, grid: Mapping[str, np.ndarray], ok: np.ndarray) -> int:
    """The satisfying point with the fewest sizes at 1 or equal to another, then the smallest sum."""
    sizes = [grid[n] for n in spec.symbols]
    if not sizes:
        return int(np.argmax(ok))
    ties = sum(((s == 1) & (spec.symbols[n].max > 1)).astype(np.int64) for n, s in zip(spec.symbols, sizes))
    for i in range(len(sizes)):
        for j in range(i + 1, len(sizes)):
            ties = ties + (sizes[i] == sizes[j])
    total = sum(s.astype(np.int64) for s in sizes)
    score = np.where(ok, ties * (total.max() + 1) + total, np.iinfo(np.int64).max)
    return int(np.argmin(score))


def _unsatisfiable(spec: EquationSpec, searched: Mapping[str, list[Any]], full: int) -> str:
    texts = ", ".join(repr(text) for text, _ in spec.constraints)
    ranges = ", ".join(f"{n} in [{v[0]}, {v[-1]}]" if n in spec.symbols else f"{n} in {v}" for n, v in searched.items())
    count = math.prod(len(v) for v in searched.values())
    if count == full:
        return f"no sizes within the symbols' ranges satisfy the constraints {texts} (searched all {count}: {ranges})"
    return (
        f"no sizes satisfy the constraints {texts} among the {count} smallest combinations searched ({ranges}); the full "
        f"grid has {full:.3g} combinations, too many to search fully (at most {MAX_SIZE_GRID}): narrow the symbols' ranges"
    )


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


# -- oracle shapes --------------------------------------------------------------------------------
def check_oracle_shapes(spec: EquationSpec, where: Where, point: Mapping[str, Any]) -> None:
    """Evaluate every oracle expression once at ``point`` and compare its shape with the declared output's."""
    assert spec.oracle is not None
    sizes = {n: point[n] for n in spec.symbols}
    env = dict(point)
    for name, inp in spec.inputs.items():
        shape = _shape(inp.shape, sizes, where.at("inputs", name, "shape"))
        if inp.derive is not None:
            value = _evaluate(inp.derive, env, where.at("inputs", name, "derive"), sizes)
            try:
                value = np.broadcast_to(np.asarray(value), shape)
            except ValueError:
                raise where.at("inputs", name, "derive").error(
                    f"at sizes {sizes} the derived value has shape {np.shape(value)}, which does not broadcast to the "
                    f"declared shape {list(map(str, inp.shape))} = {shape}"
                ) from None
            env[name] = value.astype(bool if inp.kind == "bool" else np.float64)
        elif inp.kind == "bool":
            env[name] = np.full(shape, inp.default if inp.optional else True)  # every position may attend
        elif inp.kind == "index":
            count = _shape((inp.index_range,), sizes, where.at("inputs", name, "range"))[0]
            env[name] = (np.arange(math.prod(shape), dtype=np.int64) % count).reshape(shape)  # every value 0 .. range - 1
        else:
            env[name] = 0.25 + 0.125 * (np.arange(math.prod(shape), dtype=np.float64) % 5).reshape(shape)
    oracle = spec.oracle
    inputs = dict(env)
    for name, expr in oracle.let:
        env[name] = _evaluate(expr, env, where.at("oracle", "let", name), sizes)
    many = len(spec.outputs) > 1 or isinstance(oracle.expr_text, dict)
    for name, expr in oracle.exprs.items():
        at = where.at("oracle", "expr", name) if many else where.at("oracle", "expr")
        _check_output_shape(spec, name, _evaluate(expr, env, at, sizes), at, sizes, where)
    for name, expr in oracle.noise_scale.items():
        _evaluate(expr, env, where.at("oracle", "noise_scale", name) if many else where.at("oracle", "noise_scale"), sizes)
    check_reading_shapes(spec, where, inputs, sizes)


def check_reading_shapes(spec: EquationSpec, where: Where, inputs: Mapping[str, Any], sizes: Mapping[str, int]) -> None:
    """Each ``diagnose`` reading that changes expressions, evaluated like the oracle: its shapes must be the outputs'."""
    assert spec.oracle is not None
    many = len(spec.outputs) > 1
    for i, d in enumerate(spec.diagnoses):
        if not d.let and not d.exprs:
            continue
        at = where.at("diagnose", i)
        env = dict(inputs)
        for name, expr in spec.oracle.let:
            key = at.at("let", name) if name in d.let else where.at("oracle", "let", name)
            env[name] = _evaluate(d.let.get(name, expr), env, key, sizes)
        for name, expr in spec.oracle.exprs.items():
            key = (at.at("expr", name) if many else at.at("expr")) if name in d.exprs else at.at("let")
            _check_output_shape(spec, name, _evaluate(d.exprs.get(name, expr), env, key, sizes), key, sizes, where)


def _check_output_shape(spec: EquationSpec, name: str, value: Any, at: Where, sizes: Mapping[str, int], where: Where) -> None:
    """An expression's value (at ``at``) must have the declared shape of output ``name`` (spec at ``where``)."""
    got = np.shape(value)
    declared = spec.outputs[name].shape
    expected = _shape(declared, sizes, where.at("outputs", name, "shape"))
    if got != expected:
        raise at.error(
            f"at sizes {sizes} the expression has shape {got}, but output {name!r} is declared "
            f"{list(map(str, declared))} = {expected}"
        )


def _shape(shape: tuple[Dim, ...], sizes: Mapping[str, int], where: Where) -> tuple[int, ...]:
    dims = []
    for i, dim in enumerate(shape):
        if isinstance(dim, (str, int)):
            dims.append(sizes[dim] if isinstance(dim, str) else dim)
            continue
        value = float(evaluate(dim, sizes, NumpyBackend()))
        if not value.is_integer() or value < 1:
            raise where.at(i).error(f"{dim} is {value:g} at sizes {dict(sizes)}: expected a positive integer (add a constraint)")
        dims.append(int(value))
    return tuple(dims)


def _evaluate(expr: Any, env: Mapping[str, Any], where: Where, sizes: Mapping[str, int]) -> Any:
    try:
        with np.errstate(all="ignore"):
            return evaluate(expr, env, NumpyBackend())
    except RecursionError:
        raise where.error("nested too deeply to evaluate") from None
    except Exception as exc:  # noqa: BLE001 - any failure of the expression is the spec's error, never a traceback
        raise where.error(f"cannot be evaluated at sizes {dict(sizes)}: {type(exc).__name__}: {exc}") from None
