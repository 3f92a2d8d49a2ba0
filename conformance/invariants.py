"""Invariant kinds: metamorphic relations a spec declares and the harness checks.

Each kind validates its options on load and, for one example, *plans* the check: the inputs of
two calls (``env_a``, ``env_b``) and a ``relate`` function that turns their outputs into
``(lhs, rhs)``, which must agree. The same plan is run on the implementation, on the
same-precision reference and on the float64 oracle, so the tolerance can be derived (see
:mod:`conformance.tolerance`): the oracle's own violation (an ε in the equation, say) is slack,
not a failure.

With several outputs, a plan's ``relate`` is applied to each output in turn (the relation must hold
for every one), unless the plan is ``joint``: then it receives tuples of all outputs, in the spec's
order (``identity`` names them in its expressions). A plan with a ``feed`` chains two calls: the
second call's inputs are outputs of a first call (``composition``: one; ``split``: the carried state, with
the first call's sequence outputs joined before the second's). A plan's ``outputs`` restricts which outputs
the relation compares (``causality`` with ``outputs``: a final state legitimately depends on the future).

The kinds are :class:`InvariantKind` records (:data:`BUILTIN`), looked up through the open
registry :data:`conformance.registry.INVARIANT_KINDS` (re-exported here), where a user adds more.

>>> sorted(kind.name for kind in BUILTIN)
['bounds', 'causality', 'composition', 'homogeneity', 'identity', 'permutation', 'split']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from conformance.evaluate import NumpyBackend, evaluate
from conformance.registry import INVARIANT_KINDS
from conformance.validation import SpecContext, Where

__all__ = ["BUILTIN", "INVARIANT_KINDS", "Feed", "InvariantKind", "Plan", "original_names"]

Env = dict[str, Any]
Relate = Callable[[np.ndarray, np.ndarray, Env, Env], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True, init=False)
class Feed:
    """The ``env_b`` call takes inputs from the outputs of a first call on ``env``: for each pair
    ``(input, output)`` of ``pairs``, that input is that output (rounded to the tested dtype).

    ``join``: ``{output: axis}``, outputs of the first call joined before the ``env_b`` call's along that
    axis (a sequence processed in two calls), so the relation sees the whole sequence's output.

    ``Feed(pairs, env)``; ``Feed(input, output, env)`` is one pair (as before several were allowed).

    >>> Feed("x", "out", {}).pairs, Feed((("h0", "h_T"), ("c0", "c_T")), {}).inputs
    ((('x', 'out'),), ('h0', 'c0'))
    """

    pairs: tuple[tuple[str, str], ...]
    env: Env
    join: Mapping[str, int]

    def __init__(self, *args: Any, pairs: Any = None, env: Env | None = None, join: Mapping[str, int] | None = None) -> None:
        if len(args) == 3 and pairs is None and env is None and isinstance(args[0], str) and isinstance(args[1], str):
            pairs, env = ((args[0], args[1]),), args[2]  # Feed(input, output, env): one pair
        elif len(args) == 2 and pairs is None and env is None:
            pairs, env = args
        elif len(args) == 1 and pairs is None and env is not None:
            (pairs,) = args
        elif args or pairs is None or env is None:
            raise TypeError("expected Feed(pairs, env) or Feed(input, output, env)")
        object.__setattr__(self, "pairs", tuple((str(i), str(o)) for i, o in pairs))
        object.__setattr__(self, "env", env)
        object.__setattr__(self, "join", dict(join or {}))

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(i for i, _ in self.pairs)

    @property
    def input(self) -> str:
        """The fed input of a one-pair feed (``composition``)."""
        return self._single()[0]

    @property
    def output(self) -> str:
        """The feeding output of a one-pair feed (``composition``)."""
        return self._single()[1]

    def _single(self) -> tuple[str, str]:
        if len(self.pairs) != 1:
            raise AttributeError(f"this feed has {len(self.pairs)} pairs: read .pairs")
        return self.pairs[0]


@dataclass
class Plan:
    """Two calls and how their outputs must relate.

    ``joint``: ``relate`` receives tuples of every output (else one output at a time).
    ``feed``: the ``env_b`` call takes inputs from a preceding call's outputs.
    ``outputs``: the outputs the relation compares (``None``: every one); not with ``joint``.
    ``note``: what a failure's detail adds about this plan (``split at s = 3 of T = 7``).
    ``reject``: the example cannot be planned (a sequence of one position cannot be split): rejected.
    """

    env_a: Env
    env_b: Env
    relate: Relate
    joint: bool = False
    feed: Feed | None = None
    outputs: tuple[str, ...] | None = None
    note: str = ""
    reject: bool = False


Validate = Callable[[Mapping[str, Any], Where, SpecContext], dict]
Planner = Callable[[Mapping[str, Any], Env, np.random.Generator, Any], Plan]


@dataclass(frozen=True)
class InvariantKind:
    """A kind of invariant: its option keys, their validation and the plan of one check.

    ``validate(options, where, context)`` returns the normalised options or raises
    ``where.at(key).error(...)``; ``where`` is the invariant entry, ``context`` the spec around it
    (its names include the outputs). ``plan(options, env, rng, output_name)`` plans one example.
    A user adds a kind with ``INVARIANT_KINDS.register(InvariantKind(...))`` or an entry point.

    ``transforms_inputs`` (read by :func:`conformance.checks.check_invariant`): the second call's inputs
    are a function of the first's (scaled, shifted, permuted), so where that function's result must be
    rounded to the tested dtype the relation holds only up to the implementation's sensitivity to that
    rounding. ``False`` where they are fresh values the relation ignores (causality's future inputs).
    """

    name: str
    required: frozenset[str]
    optional: frozenset[str]
    validate: Validate
    plan: Planner
    transforms_inputs: bool = True


def _axis_map(options: Mapping, key: str, where: Where, inputs: Mapping) -> dict[str, int]:
    value = options[key]
    if not isinstance(value, dict) or not value:
        raise where.at(key).error("expected a mapping input name -> axis")
    out = {}
    for name, axis in value.items():
        if name not in inputs:
            raise where.at(key).error(f"{name!r} is not a declared input")
        rank = len(inputs[name].shape)
        if not isinstance(axis, int) or isinstance(axis, bool) or not -rank <= axis < rank:
            raise where.at(key).error(f"axis {axis!r} of {name!r} is out of range for its rank {rank}")
        out[name] = axis % rank
    dims = {inputs[n].shape[a] for n, a in out.items()}
    if len(dims) != 1:
        raise where.at(key).error(f"the permuted/perturbed axes must share one size, got {sorted(map(str, dims))}")
    return out


def _output_axis(options: Mapping, where: Where, outputs: Mapping, required: bool) -> int | None:
    """An axis of every output (several outputs must share its rank)."""
    axis = options.get("output_axis")
    if axis is None and not required:
        return None
    ranks = {len(out.shape) for out in outputs.values()}
    if len(ranks) != 1:
        raise where.at("output_axis").error(
            f"the outputs have different ranks {sorted(ranks)}: one output_axis cannot apply to all"
        )
    (rank,) = ranks
    if not isinstance(axis, int) or isinstance(axis, bool) or not -rank <= axis < rank:
        raise where.at("output_axis").error(f"expected an axis of the output (rank {rank}), got {axis!r}")
    return axis % rank


# -- permutation ----------------------------------------------------------------------------------
def _validate_permutation(options: Mapping, where: Where, context: SpecContext) -> dict:
    return {
        "permute": _axis_map(options, "permute", where, context.inputs),
        "output_axis": _output_axis(options, where, context.outputs, False),
    }


def _plan_permutation(options: Mapping, env: Env, rng: np.random.Generator, out_name: str) -> Plan:
    axes: dict[str, int] = options["permute"]
    n = env[next(iter(axes))].shape[next(iter(axes.values()))]
    perm = rng.permutation(n)
    env_b = dict(env)
    for name, axis in axes.items():
        env_b[name] = np.take(env[name], perm, axis=axis)
    out_axis = options["output_axis"]

    def relate(out_a: np.ndarray, out_b: np.ndarray, *_: Env) -> tuple[np.ndarray, np.ndarray]:
        return out_b, out_a if out_axis is None else np.take(out_a, perm, axis=out_axis)

    return Plan(env, env_b, relate)


# -- homogeneity ----------------------------------------------------------------------------------
MAX_POWER = 8  # of the factor 2**k, |k| <= 16: c**power stays within float64's range


def _validate_homogeneity(options: Mapping, where: Where, context: SpecContext) -> dict:
    inputs = context.inputs
    scale = options["scale"]
    if not isinstance(scale, dict) or not scale or any(n not in inputs or inputs[n].kind != "real" for n in scale):
        raise where.at("scale").error("expected a mapping real input name -> power of the factor")
    if not all(isinstance(p, int) and not isinstance(p, bool) and abs(p) <= MAX_POWER for p in scale.values()):
        raise where.at("scale").error(f"powers must be integers of at most {MAX_POWER} in absolute value")
    degree = options.get("degree", 0)
    if not isinstance(degree, int) or isinstance(degree, bool) or abs(degree) > MAX_POWER:
        raise where.at("degree").error(f"expected an integer of at most {MAX_POWER} in absolute value, got {degree!r}")
    log2 = options.get("log2_factor", [-3, 3])
    ok = isinstance(log2, list) and len(log2) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in log2)
    if not (ok and log2[0] < log2[1] and max(abs(log2[0]), abs(log2[1])) <= 16):
        raise where.at("log2_factor").error(f"expected [low, high] integers, low < high, within [-16, 16], got {log2!r}")
    return {"scale": dict(scale), "degree": degree, "log2_factor": tuple(log2)}


def _plan_homogeneity(options: Mapping, env: Env, rng: np.random.Generator, out_name: str) -> Plan:
    lo, hi = options["log2_factor"]
    k = int(rng.choice([v for v in range(lo, hi + 1) if v != 0]))
    c = 2.0**k  # a power of two: scaling is exact in binary floating point
    env_b = dict(env)
    for name, power in options["scale"].items():
        env_b[name] = env[name] * c**power
    degree = options["degree"]

    def relate(out_a: np.ndarray, out_b: np.ndarray, *_: Env) -> tuple[np.ndarray, np.ndarray]:
        return out_b, out_a * c**degree

    return Plan(env, env_b, relate)


# -- causality ------------------------------------------------------------------------------------
def _selected_outputs(options: Mapping, where: Where, outputs: Mapping) -> tuple[str, ...] | None:
    """``outputs: [names]``: the outputs a relation compares, in the spec's order (``None``: every one)."""
    value = options.get("outputs")
    if value is None:
        return None
    at = where.at("outputs")
    if not isinstance(value, list) or not value or not all(isinstance(n, str) for n in value):
        raise at.error(f"expected a non-empty list of output names ({', '.join(outputs)})")
    unknown = [n for n in value if n not in outputs]
    if unknown:
        raise at.error(f"{unknown[0]!r} is not a declared output ({', '.join(outputs)})")
    if len(set(value)) != len(value):
        raise at.error(f"an output is named twice in {value}")
    return tuple(n for n in outputs if n in value)


def _validate_causality(options: Mapping, where: Where, context: SpecContext) -> dict:
    perturb = _axis_map(options, "perturb", where, context.inputs)
    index = [n for n in perturb if context.inputs[n].kind == "index"]
    if index:
        raise where.at("perturb").error(f"{index[0]!r} is an index input: causality draws fresh real values")
    selected = _selected_outputs(options, where, context.outputs)
    compared = context.outputs if selected is None else {n: context.outputs[n] for n in selected}
    return {
        "perturb": perturb,
        "output_axis": _output_axis(options, where, compared, True),
        "outputs": selected,
    }


def _plan_causality(options: Mapping, env: Env, rng: np.random.Generator, out_name: str) -> Plan:
    axes: dict[str, int] = options["perturb"]
    n = env[next(iter(axes))].shape[next(iter(axes.values()))]
    t = int(rng.integers(0, max(n - 1, 1)))  # positions > t change; outputs <= t must not
    env_b = dict(env)
    for name, axis in axes.items():
        x = env[name]
        fresh = rng.uniform(-1.0, 1.0, size=x.shape) * max(float(np.max(np.abs(x))), 1e-3)
        later = (np.arange(x.shape[axis]) > t).reshape([-1 if d == axis else 1 for d in range(x.ndim)])
        env_b[name] = np.where(later, fresh, x)
    out_axis = options["output_axis"]

    def relate(out_a: np.ndarray, out_b: np.ndarray, *_: Env) -> tuple[np.ndarray, np.ndarray]:
        keep = np.arange(min(t + 1, out_a.shape[out_axis]))
        return np.take(out_b, keep, axis=out_axis), np.take(out_a, keep, axis=out_axis)

    return Plan(env, env_b, relate, outputs=options.get("outputs"))


# -- bounds ---------------------------------------------------------------------------------------
def _validate_bounds(options: Mapping, where: Where, context: SpecContext) -> dict:
    if not ({"lower", "upper"} & set(options)):
        raise where.at("lower").error("expected 'lower' and/or 'upper'")
    return {key: context.expression(options[key], where.at(key)) for key in ("lower", "upper", "of") if key in options}


def _plan_bounds(options: Mapping, env: Env, rng: np.random.Generator, out_name: Any) -> Plan:
    """lower ≤ f ≤ upper for each output; with ``of``, for that expression of the outputs and inputs (a loss
    computed from the retrieval, say), whose bounds may name the outputs too."""
    names = (out_name,) if isinstance(out_name, str) else tuple(out_name)
    of = options.get("of")

    def bounded(value: np.ndarray, scope: Env) -> tuple[np.ndarray, np.ndarray]:
        lower = evaluate(options["lower"], scope, NumpyBackend()) if "lower" in options else -np.inf
        upper = evaluate(options["upper"], scope, NumpyBackend()) if "upper" in options else np.inf
        return value, np.clip(value, lower, upper)  # differ exactly where a bound is violated

    if of is None:
        return Plan(env, env, lambda out_a, _b, env_a, _e: bounded(out_a, env_a))

    def relate_of(outs_a: Any, _b: Any, env_a: Env, _e: Env) -> tuple[np.ndarray, np.ndarray]:
        outs = (outs_a,) if len(names) == 1 else tuple(outs_a)
        scope = {**env_a, **dict(zip(names, outs))}
        return bounded(np.asarray(evaluate(of, scope, NumpyBackend()), dtype=np.float64), scope)

    return Plan(env, env, relate_of, joint=True)


# -- identity -------------------------------------------------------------------------------------
def original_names(outputs: Mapping | tuple[str, ...]) -> dict[str, str]:
    """The names an identity uses for the outputs on the original inputs: ``original_<output>`` for
    each output, and ``original`` too where there is only one.

    >>> original_names(("cos_table", "sin_table"))
    {'original_cos_table': 'cos_table', 'original_sin_table': 'sin_table'}
    """
    names = {f"original_{out}": out for out in outputs}
    if len(names) == 1:
        names["original"] = next(iter(outputs))
    return names


def _validate_identity(options: Mapping, where: Where, context: SpecContext) -> dict:
    originals = tuple(original_names(tuple(context.outputs)))
    return {
        "set": _substitutions(options, "set", where, context),
        "lhs": context.expression(options["lhs"], where.at("lhs"), originals),
        "rhs": context.expression(options["rhs"], where.at("rhs"), originals),
    }


def _substitutions(options: Mapping, key: str, where: Where, context: SpecContext) -> dict:
    """``{input or param: expression}``: values replaced for one call (a derived input follows its params)."""
    subs = options.get(key, {})
    if not isinstance(subs, dict):
        raise where.at(key).error("expected a mapping input name -> expression")
    parsed = {}
    for name, text in subs.items():
        if name not in context.inputs and name not in context.params:
            raise where.at(key, name).error(f"{name!r} is not a declared input or param")
        parsed[name] = context.expression(text, where.at(key, name))
    return parsed


def _substitute(subs: Mapping[str, Any], env: Env) -> Env:
    """``env`` with each substituted value (evaluated on ``env``) shaped and typed like the one it replaces."""
    out = dict(env)
    for name, expr in subs.items():
        value = evaluate(expr, env, NumpyBackend())
        out[name] = np.broadcast_to(value, np.shape(env[name])).astype(np.asarray(env[name]).dtype)
    return out


def _outputs(value: Any) -> tuple[np.ndarray, ...]:
    return value if isinstance(value, tuple) else (value,)


def _plan_identity(options: Mapping, env: Env, rng: np.random.Generator, out_name: str | tuple[str, ...]) -> Plan:
    env_b = _substitute(options["set"], env) if options["set"] else env  # the same call twice: run once
    out_names = (out_name,) if isinstance(out_name, str) else tuple(out_name)
    originals = original_names(out_names)

    def relate(out_a: Any, out_b: Any, _a: Env, env_b_: Env) -> tuple[np.ndarray, np.ndarray]:
        by_name_a = dict(zip(out_names, _outputs(out_a)))
        scope = {**env_b_, **dict(zip(out_names, _outputs(out_b))), **{k: by_name_a[v] for k, v in originals.items()}}
        lhs = evaluate(options["lhs"], scope, NumpyBackend())
        rhs = evaluate(options["rhs"], scope, NumpyBackend())
        return np.broadcast_arrays(np.asarray(lhs, dtype=np.float64), np.asarray(rhs, dtype=np.float64))

    return Plan(env, env_b, relate, joint=True)


# -- composition ----------------------------------------------------------------------------------
def _validate_composition(options: Mapping, where: Where, context: SpecContext) -> dict:
    inputs, outputs, at = context.inputs, context.outputs, where.at("feed")
    feed = options["feed"]
    if not isinstance(feed, dict) or len(feed) != 1:
        raise at.error("expected one pair input name -> output name (the first call's output feeds that input)")
    ((target, source),) = feed.items()
    _check_feed_pair(target, source, at, inputs, outputs)
    return {
        "feed": (target, source),
        "first": _substitutions(options, "first", where, context),
        "second": _substitutions(options, "second", where, context),
    }


def _check_feed_pair(target: Any, source: Any, at: Where, inputs: Mapping, outputs: Mapping) -> None:
    """An output that can feed an input: a declared real input and a declared output of the same shape."""
    if target not in inputs or inputs[target].kind != "real":
        raise at.error(f"{target!r} is not a declared real input")
    if source not in outputs:
        raise at.error(f"{source!r} is not a declared output")
    shapes = [list(map(str, outputs[source].shape)), list(map(str, inputs[target].shape))]
    if shapes[0] != shapes[1]:
        raise at.error(f"output {source!r} {shapes[0]} cannot feed input {target!r} {shapes[1]} (shapes differ)")


def _plan_composition(options: Mapping, env: Env, rng: np.random.Generator, out_name: Any) -> Plan:
    """f(f(inputs with ``first``) → ``feed``, with ``second``) = f(inputs): a group law such as R_a R_b = R_{a+b}."""
    target, source = options["feed"]

    def relate(out_a: np.ndarray, out_b: np.ndarray, *_: Env) -> tuple[np.ndarray, np.ndarray]:
        return out_b, out_a

    feed = Feed(((target, source),), _substitute(options["first"], env))
    return Plan(env, _substitute(options["second"], env), relate, feed=feed)


# -- split ------------------------------------------------------------------------------------------
def _mentions(dim: Any, symbol: str) -> bool:
    """Whether a dimension (a symbol's name, an integer or an expression over symbols) involves ``symbol``."""
    if isinstance(dim, str):
        return dim == symbol
    return symbol in {str(f) for f in getattr(dim, "free_symbols", ())}


def _sequence_axes(options: Mapping, key: str, where: Where, shaped: Mapping, symbol: str | None) -> tuple[dict[str, int], str]:
    """``{name: axis}`` of declared inputs or outputs (``shaped``) whose dimension there is one size symbol:
    the one ``symbol`` names, or (``None``) the one they all share. Returns the axes and the symbol."""
    value, at = options[key], where.at(key)
    what = "input" if key == "axis" else "output"
    if not isinstance(value, dict) or not value:
        raise at.error(f"expected a mapping {what} name -> its sequence axis")
    axes = {}
    for name, axis in value.items():
        if name not in shaped:
            raise at.error(f"{name!r} is not a declared {what}")
        shape = shaped[name].shape
        rank = len(shape)
        if not isinstance(axis, int) or isinstance(axis, bool) or not -rank <= axis < rank:
            raise at.error(f"axis {axis!r} of {name!r} is out of range for its rank {rank}")
        axes[name] = axis % rank
        dim = shape[axes[name]]
        if not isinstance(dim, str):
            raise at.error(f"axis {axis} of {name!r} is {dim}, not a size symbol: the sequence axis must be one symbol's size")
    found = {n: shaped[n].shape[a] for n, a in axes.items()}
    symbol = symbol or next(iter(found.values()))
    other = {n: d for n, d in found.items() if d != symbol}
    if other:
        name, dim = next(iter(other.items()))
        raise at.error(f"the sequence axes must all be of size {symbol}: {name!r} is cut along {dim}")
    return axes, symbol


def _check_sequence_use(key: str, where: Where, shaped: Mapping, axes: Mapping[str, int], symbol: str, what: str) -> None:
    """Every declared input (or output) whose shape involves the sequence size is cut along exactly one axis
    of that size; ``what`` says which option lists them. Derived inputs not listed are recomputed at each
    call's size."""
    for name, item in shaped.items():
        at_axes = [d for d, dim in enumerate(item.shape) if _mentions(dim, symbol)]
        if name not in axes:
            if at_axes and getattr(item, "derive", None) is None:
                raise where.at(key).error(f"{name!r} has the sequence size {symbol} (shape {_written(item.shape)}): {what}")
        elif at_axes != [axes[name]]:
            raise where.at(key).error(
                f"{name!r} has {symbol} at axes {at_axes} (shape {_written(item.shape)}): it cannot be cut along one"
            )


def _written(shape: tuple) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


def _is_integer_param(param: Any) -> bool:
    if getattr(param, "integer", False):
        return True
    values = getattr(param, "values", ())
    return bool(values) and all(isinstance(v, int) and not isinstance(v, bool) for v in values)


def _validate_split(options: Mapping, where: Where, context: SpecContext) -> dict:
    inputs, outputs = context.inputs, context.outputs
    axes, symbol = _sequence_axes(options, "axis", where, inputs, None)
    _check_sequence_use("axis", where, inputs, axes, symbol, "list it in axis (every input of the sequence is cut)")
    if symbol in context.symbols and context.symbols[symbol].max < 2:
        raise where.at("axis").error(f"{symbol} is at most {context.symbols[symbol].max}: no example can be split in two")
    sequence_outputs: dict[str, int] = {}
    if "outputs" in options:
        sequence_outputs, _ = _sequence_axes(options, "outputs", where, outputs, symbol)
    what = "list it in outputs with its sequence axis (compared on the two calls' outputs joined)"
    _check_sequence_use("outputs", where, outputs, sequence_outputs, symbol, what)
    carry = options.get("carry", {})
    at = where.at("carry")
    if not isinstance(carry, dict):
        raise at.error("expected a mapping input name -> output name (the second call's state is the first call's output)")
    for target, source in carry.items():
        _check_feed_pair(target, source, at, inputs, outputs)
        if target in axes:
            raise at.error(f"{target!r} is cut along the sequence (axis): it cannot also be carried")
        if inputs[target].optional:
            raise at.error(f"{target!r} is optional: a carried state must be passed to every call")
    offset = options.get("offset")
    if offset is not None:
        integer = offset in context.params and _is_integer_param(context.params[offset])
        if offset == symbol or not (integer or offset in context.symbols):
            raise where.at("offset").error(
                f"expected an integer param or a size symbol other than {symbol} (the second call's is the first's + s), "
                f"got {offset!r}"
            )
    return {"axis": axes, "symbol": symbol, "carry": dict(carry), "offset": offset, "outputs": sequence_outputs}


def _cut(x: np.ndarray, axis: int, lo: int, hi: int) -> np.ndarray:
    """Positions ``lo .. hi - 1`` of ``x`` along ``axis`` (a slice: no value changes)."""
    return x[(slice(None),) * axis + (slice(lo, hi),)]


def _plan_split(options: Mapping, env: Env, rng: np.random.Generator, out_name: Any) -> Plan:
    """One call on positions ``0 .. n-1`` vs a call on ``0 .. s-1`` followed by one on ``s .. n-1`` given the
    first's ``carry`` outputs (and ``offset`` + s): the second's outputs, the ``outputs`` of the sequence joined
    after the first's, equal the one call's. ``s`` is uniform in 1 .. n-1; a sequence of one position
    (n = 1) cannot be split into two non-empty calls, so that example is rejected."""
    axes: dict[str, int] = options["axis"]
    symbol = options["symbol"]
    name, axis = next(iter(axes.items()))
    n = int(np.shape(env[name])[axis])
    if n < 2:
        return Plan(env, env, lambda a, b, *_: (b, a), note=f"{symbol} = {n} cannot be split", reject=True)
    s = int(rng.integers(1, n))
    first, second = dict(env), dict(env)
    for name, axis in axes.items():
        first[name], second[name] = _cut(env[name], axis, 0, s), _cut(env[name], axis, s, n)
    if symbol in env:
        first[symbol], second[symbol] = s, n - s
    offset = options["offset"]
    if offset is not None:
        second[offset] = env[offset] + s

    def relate(out_a: np.ndarray, out_b: np.ndarray, *_: Env) -> tuple[np.ndarray, np.ndarray]:
        return out_b, out_a

    feed = Feed(tuple(options["carry"].items()), first, join=options["outputs"])
    shifted = f", {offset} + {s} in the second call" if offset is not None else ""
    return Plan(env, second, relate, feed=feed, note=f"split at s = {s} of {symbol} = {n}{shifted}")


def _kind(
    name: str, required: set[str], optional: set[str], validate: Validate, plan: Planner, transforms_inputs: bool = True
) -> InvariantKind:
    return InvariantKind(name, frozenset(required), frozenset(optional), validate, plan, transforms_inputs)


BUILTIN: list[InvariantKind] = [
    _kind("permutation", {"permute"}, {"output_axis"}, _validate_permutation, _plan_permutation),
    _kind("homogeneity", {"scale"}, {"degree", "log2_factor"}, _validate_homogeneity, _plan_homogeneity),
    _kind("causality", {"perturb", "output_axis"}, {"outputs"}, _validate_causality, _plan_causality, transforms_inputs=False),
    _kind("bounds", set(), {"lower", "upper", "of"}, _validate_bounds, _plan_bounds),
    _kind("identity", {"lhs", "rhs"}, {"set"}, _validate_identity, _plan_identity),
    _kind("composition", {"feed"}, {"first", "second"}, _validate_composition, _plan_composition),
    _kind("split", {"axis"}, {"carry", "offset", "outputs"}, _validate_split, _plan_split),
]
