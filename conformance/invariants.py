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
second call's input is an output of a first call (``composition``).

>>> sorted(INVARIANT_KINDS)
['bounds', 'causality', 'composition', 'homogeneity', 'identity', 'permutation']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from conformance.evaluate import NumpyBackend, evaluate

Env = dict[str, Any]
Relate = Callable[[np.ndarray, np.ndarray, Env, Env], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Feed:
    """Input ``input`` of the ``env_b`` call is output ``output`` of a call on ``env``."""

    input: str
    output: str
    env: Env


@dataclass
class Plan:
    """Two calls and how their outputs must relate.

    ``joint``: ``relate`` receives tuples of every output (else one output at a time).
    ``feed``: the ``env_b`` call takes one input from a preceding call's output.
    """

    env_a: Env
    env_b: Env
    relate: Relate
    joint: bool = False
    feed: Feed | None = None


@dataclass(frozen=True)
class Kind:
    required: frozenset[str]
    optional: frozenset[str]
    validate: Callable[..., dict]
    plan: Callable[[Mapping[str, Any], Env, np.random.Generator, str], Plan]


def _bad(key: str, message: str) -> KeyError:
    """Validation errors carry the key path relative to the invariant and a message."""
    return KeyError((key,), message)


def _axis_map(options: Mapping, key: str, inputs: Mapping) -> dict[str, int]:
    value = options[key]
    if not isinstance(value, dict) or not value:
        raise _bad(key, "expected a mapping input name -> axis")
    out = {}
    for name, axis in value.items():
        if name not in inputs:
            raise _bad(key, f"{name!r} is not a declared input")
        rank = len(inputs[name].shape)
        if not isinstance(axis, int) or isinstance(axis, bool) or not -rank <= axis < rank:
            raise _bad(key, f"axis {axis!r} of {name!r} is out of range for its rank {rank}")
        out[name] = axis % rank
    dims = {inputs[n].shape[a] for n, a in out.items()}
    if len(dims) != 1:
        raise _bad(key, f"the permuted/perturbed axes must share one size, got {sorted(map(str, dims))}")
    return out


def _output_axis(options: Mapping, outputs: Mapping, required: bool) -> int | None:
    """An axis of every output (several outputs must share its rank)."""
    axis = options.get("output_axis")
    if axis is None and not required:
        return None
    ranks = {len(out.shape) for out in outputs.values()}
    if len(ranks) != 1:
        raise _bad("output_axis", f"the outputs have different ranks {sorted(ranks)}: one output_axis cannot apply to all")
    (rank,) = ranks
    if not isinstance(axis, int) or isinstance(axis, bool) or not -rank <= axis < rank:
        raise _bad("output_axis", f"expected an axis of the output (rank {rank}), got {axis!r}")
    return axis % rank


# -- permutation ----------------------------------------------------------------------------------
def _validate_permutation(options: Mapping, *, inputs: Mapping, outputs: Mapping, **_: Any) -> dict:
    return {"permute": _axis_map(options, "permute", inputs), "output_axis": _output_axis(options, outputs, False)}


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
def _validate_homogeneity(options: Mapping, *, inputs: Mapping, **_: Any) -> dict:
    scale = options["scale"]
    if not isinstance(scale, dict) or not scale or any(n not in inputs or inputs[n].kind != "real" for n in scale):
        raise _bad("scale", "expected a mapping real input name -> power of the factor")
    if not all(isinstance(p, int) and not isinstance(p, bool) for p in scale.values()):
        raise _bad("scale", "powers must be integers")
    degree = options.get("degree", 0)
    if not isinstance(degree, int) or isinstance(degree, bool):
        raise _bad("degree", f"expected an integer, got {degree!r}")
    log2 = options.get("log2_factor", [-3, 3])
    if not (isinstance(log2, list) and len(log2) == 2 and all(isinstance(v, int) for v in log2) and log2[0] < log2[1]):
        raise _bad("log2_factor", f"expected [low, high] integers, low < high, got {log2!r}")
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
def _validate_causality(options: Mapping, *, inputs: Mapping, outputs: Mapping, **_: Any) -> dict:
    return {"perturb": _axis_map(options, "perturb", inputs), "output_axis": _output_axis(options, outputs, True)}


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

    return Plan(env, env_b, relate)


# -- bounds ---------------------------------------------------------------------------------------
def _validate_bounds(options: Mapping, *, names: set, parse: Callable, **_: Any) -> dict:
    if not ({"lower", "upper"} & set(options)):
        raise _bad("lower", "expected 'lower' and/or 'upper'")
    out = {}
    for key in ("lower", "upper"):
        if key in options:
            out[key] = _expression(options[key], key, names, parse)
    return out


def _plan_bounds(options: Mapping, env: Env, rng: np.random.Generator, out_name: str) -> Plan:
    def relate(out_a: np.ndarray, _b: np.ndarray, env_a: Env, _e: Env) -> tuple[np.ndarray, np.ndarray]:
        lower = evaluate(options["lower"], env_a, NumpyBackend()) if "lower" in options else -np.inf
        upper = evaluate(options["upper"], env_a, NumpyBackend()) if "upper" in options else np.inf
        return out_a, np.clip(out_a, lower, upper)  # differ exactly where a bound is violated

    return Plan(env, env, relate)


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


def _validate_identity(
    options: Mapping, *, names: set, inputs: Mapping, outputs: Mapping, parse: Callable, params: Mapping | None = None, **_: Any
) -> dict:
    out_names = names | set(outputs) | set(original_names(tuple(outputs)))
    return {
        "set": _substitutions(options, "set", names, inputs, params or {}, parse),
        "lhs": _expression(options["lhs"], "lhs", out_names, parse),
        "rhs": _expression(options["rhs"], "rhs", out_names, parse),
    }


def _substitutions(options: Mapping, key: str, names: set, inputs: Mapping, params: Mapping, parse: Callable) -> dict:
    """``{input or param: expression}``: values replaced for one call (a derived input follows its params)."""
    subs = options.get(key, {})
    if not isinstance(subs, dict):
        raise _bad(key, "expected a mapping input name -> expression")
    parsed = {}
    for name, text in subs.items():
        if name not in inputs and name not in params:
            raise _bad(key, f"{name!r} is not a declared input or param")
        parsed[name] = _expression(text, key, names, parse)
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
def _validate_composition(
    options: Mapping, *, names: set, inputs: Mapping, outputs: Mapping, parse: Callable, params: Mapping | None = None, **_: Any
) -> dict:
    feed = options["feed"]
    if not isinstance(feed, dict) or len(feed) != 1:
        raise _bad("feed", "expected one pair input name -> output name (the first call's output feeds that input)")
    ((target, source),) = feed.items()
    if target not in inputs or inputs[target].kind != "real":
        raise _bad("feed", f"{target!r} is not a declared real input")
    if source not in outputs:
        raise _bad("feed", f"{source!r} is not a declared output")
    shapes = [list(map(str, outputs[source].shape)), list(map(str, inputs[target].shape))]
    if shapes[0] != shapes[1]:
        raise _bad("feed", f"output {source!r} {shapes[0]} cannot feed input {target!r} {shapes[1]} (shapes differ)")
    return {
        "feed": (target, source),
        "first": _substitutions(options, "first", names, inputs, params or {}, parse),
        "second": _substitutions(options, "second", names, inputs, params or {}, parse),
    }


def _plan_composition(options: Mapping, env: Env, rng: np.random.Generator, out_name: Any) -> Plan:
    """f(f(inputs with ``first``) → ``feed``, with ``second``) = f(inputs): a group law such as R_a R_b = R_{a+b}."""
    target, source = options["feed"]

    def relate(out_a: np.ndarray, out_b: np.ndarray, *_: Env) -> tuple[np.ndarray, np.ndarray]:
        return out_b, out_a

    feed = Feed(target, source, _substitute(options["first"], env))
    return Plan(env, _substitute(options["second"], env), relate, feed=feed)


def _expression(text: Any, key: str, names: set, parse: Callable) -> Any:
    from conformance.expr import ExprError, names_in

    if isinstance(text, bool):
        text = "True" if text else "False"
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        text = repr(text)
    if not isinstance(text, str):
        raise _bad(key, f"expected an expression string, got {text!r}")
    try:
        parsed = parse(text)
    except ExprError as exc:
        raise _bad(key, f"{exc}: {text!r}") from None
    unknown = sorted(names_in(parsed) - names)
    if unknown:
        raise _bad(key, f"undeclared name(s) {', '.join(unknown)}")
    return parsed


INVARIANT_KINDS: dict[str, Kind] = {
    "permutation": Kind(frozenset({"permute"}), frozenset({"output_axis"}), _validate_permutation, _plan_permutation),
    "homogeneity": Kind(frozenset({"scale"}), frozenset({"degree", "log2_factor"}), _validate_homogeneity, _plan_homogeneity),
    "causality": Kind(frozenset({"perturb", "output_axis"}), frozenset(), _validate_causality, _plan_causality),
    "bounds": Kind(frozenset(), frozenset({"lower", "upper"}), _validate_bounds, _plan_bounds),
    "identity": Kind(frozenset({"lhs", "rhs"}), frozenset({"set"}), _validate_identity, _plan_identity),
    "composition": Kind(frozenset({"feed"}), frozenset({"first", "second"}), _validate_composition, _plan_composition),
}
