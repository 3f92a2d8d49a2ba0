"""conformance.invariants: each kind's plan/relate.

For every kind, an exact float64 function that satisfies the relation gives lhs == rhs bitwise
(the plans use power-of-two factors, permutations and prefix perturbations, which are exact), and
a function that violates it gives lhs != rhs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from conformance.invariants import BUILTIN, INVARIANT_KINDS, InvariantKind
from conformance.model import Output, TensorInput
from conformance.registry import INVARIANT_KINDS as REGISTRY
from conformance.validation import SpecContext, SpecError, Where

Fn = Callable[[dict], np.ndarray]
RNG = np.random.default_rng(2024)


def tensor_inputs(**shapes: tuple) -> dict[str, TensorInput]:
    return {name: TensorInput(name, shape, kind="bool" if name == "mask" else "real") for name, shape in shapes.items()}


WHERE = Where("s.yaml")  # errors name the key below the invariant entry: ``permute``, ``set.q``


def context(inputs: dict, outputs: dict, names: set[str], params: dict | None = None) -> SpecContext:
    """The spec around an invariant: its names include the outputs, as the loader gives them."""
    return SpecContext("s.yaml", "s", {}, params or {}, inputs, outputs, frozenset(names | set(outputs)))


def validated(kind: str, options: dict, inputs: dict, out_shape: tuple, names: set[str] | None = None) -> dict:
    outputs = {"out": Output("out", out_shape)}
    return INVARIANT_KINDS[kind].validate(options, WHERE, context(inputs, outputs, names or set(inputs)))


def at_key(exc: SpecError, key: str) -> bool:
    """Whether the error names ``key`` (or a key below it) of the invariant."""
    return exc.path == key or exc.path.startswith(f"{key}.")


def relate(kind: str, options: dict, env: dict, fn: Fn, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Plan the check, call ``fn`` on both inputs, and return (lhs, rhs) as the harness would."""
    plan = INVARIANT_KINDS[kind].plan(options, env, np.random.default_rng(seed), "out")
    out_a, out_b = fn(plan.env_a), fn(plan.env_b)
    lhs, rhs = plan.relate(out_a, out_b, plan.env_a, plan.env_b)
    return np.asarray(lhs), np.asarray(rhs)


def assert_holds(kind: str, options: dict, env: dict, fn: Fn) -> None:
    for seed in range(5):
        lhs, rhs = relate(kind, options, env, fn, seed)
        assert lhs.shape == rhs.shape
        np.testing.assert_array_equal(lhs, rhs)


def assert_violated(kind: str, options: dict, env: dict, fn: Fn) -> None:
    for seed in range(5):
        lhs, rhs = relate(kind, options, env, fn, seed)
        assert not np.array_equal(lhs, rhs), f"seed {seed}: a violating function passed"


# shared example: per-token squared distance, inputs (B, L, D) -> output (B, L)
TOKENS = tensor_inputs(h=("B", "L", "D"), m=("B", "L", "D"))
TOKEN_ENV = {"h": RNG.uniform(-2, 2, (2, 6, 3)), "m": RNG.uniform(-2, 2, (2, 6, 3)), "B": 2, "L": 6, "D": 3}


def per_token_loss(env: dict) -> np.ndarray:
    return ((env["h"] - env["m"]) ** 2).sum(-1)


def position_weighted_loss(env: dict) -> np.ndarray:
    return per_token_loss(env) * np.arange(1, env["h"].shape[1] + 1)


# -- permutation ---------------------------------------------------------------------------------------
def test_permutation_plan_really_permutes() -> None:
    options = validated("permutation", {"permute": {"h": 1, "m": 1}, "output_axis": 1}, TOKENS, ("B", "L"))
    plan = INVARIANT_KINDS["permutation"].plan(options, TOKEN_ENV, np.random.default_rng(0), "out")
    assert not np.array_equal(plan.env_b["h"], TOKEN_ENV["h"])
    np.testing.assert_array_equal(np.sort(plan.env_b["h"], axis=None), np.sort(TOKEN_ENV["h"], axis=None))
    # h and m are permuted together: the pairs (h, m) per token are kept
    assert {tuple(r) for r in np.concatenate([plan.env_b["h"], plan.env_b["m"]], -1)[0]} == {
        tuple(r) for r in np.concatenate([TOKEN_ENV["h"], TOKEN_ENV["m"]], -1)[0]
    }


def test_permutation_with_output_axis_holds_for_a_per_token_function() -> None:
    options = validated("permutation", {"permute": {"h": 1, "m": 1}, "output_axis": 1}, TOKENS, ("B", "L"))
    assert_holds("permutation", options, TOKEN_ENV, per_token_loss)


def test_permutation_with_output_axis_fails_for_a_position_dependent_function() -> None:
    options = validated("permutation", {"permute": {"h": 1, "m": 1}, "output_axis": 1}, TOKENS, ("B", "L"))
    assert_violated("permutation", options, TOKEN_ENV, position_weighted_loss)


def test_permutation_without_output_axis_holds_for_an_order_free_reduction() -> None:
    options = validated("permutation", {"permute": {"h": 1, "m": 1}}, TOKENS, ("B",))
    assert_holds("permutation", options, TOKEN_ENV, lambda env: per_token_loss(env).max(-1))


def test_permutation_without_output_axis_fails_for_an_order_dependent_reduction() -> None:
    options = validated("permutation", {"permute": {"h": 1, "m": 1}}, TOKENS, ("B",))
    assert_violated("permutation", options, TOKEN_ENV, lambda env: position_weighted_loss(env).max(-1))


def test_permuting_only_one_of_two_paired_inputs_breaks_the_relation() -> None:
    options = validated("permutation", {"permute": {"h": 1}, "output_axis": 1}, TOKENS, ("B", "L"))
    assert_violated("permutation", options, TOKEN_ENV, per_token_loss)


# -- homogeneity ---------------------------------------------------------------------------------------
def test_homogeneity_degree_two_holds_for_a_squared_distance() -> None:
    options = validated("homogeneity", {"scale": {"h": 1, "m": 1}, "degree": 2}, TOKENS, ("B", "L"))
    assert_holds("homogeneity", options, TOKEN_ENV, per_token_loss)


def test_homogeneity_degree_two_fails_with_an_offset_or_the_wrong_degree() -> None:
    options = validated("homogeneity", {"scale": {"h": 1, "m": 1}, "degree": 2}, TOKENS, ("B", "L"))
    assert_violated("homogeneity", options, TOKEN_ENV, lambda env: per_token_loss(env) + 1.0)
    assert_violated("homogeneity", options, TOKEN_ENV, lambda env: np.abs(env["h"] - env["m"]).sum(-1))  # degree 1


def test_homogeneity_degree_zero_with_inverse_powers() -> None:
    qk = tensor_inputs(Q=("L", "D"), K=("L", "D"))
    env = {"Q": RNG.uniform(-1, 1, (4, 3)), "K": RNG.uniform(-1, 1, (4, 3))}
    options = validated("homogeneity", {"scale": {"Q": 1, "K": -1}, "degree": 0, "log2_factor": [-2, 2]}, qk, ("L",))
    assert_holds("homogeneity", options, env, lambda e: (e["Q"] * e["K"]).sum(-1))
    assert_violated("homogeneity", options, env, lambda e: (e["Q"] + e["K"]).sum(-1))


def test_homogeneity_factor_is_a_nonzero_power_of_two_in_range() -> None:
    options = validated("homogeneity", {"scale": {"h": 1, "m": 1}, "log2_factor": [-3, 3]}, TOKENS, ("B", "L"))
    for seed in range(20):
        plan = INVARIANT_KINDS["homogeneity"].plan(options, TOKEN_ENV, np.random.default_rng(seed), "out")
        ratio = plan.env_b["h"] / TOKEN_ENV["h"]
        k = np.log2(ratio.flat[0])
        assert np.all(ratio == ratio.flat[0]) and k == round(k) and k != 0 and -3 <= k <= 3


# -- causality -----------------------------------------------------------------------------------------
SEQ = tensor_inputs(x=("B", "L", "D"))
SEQ_ENV = {"x": RNG.uniform(-1, 1, (2, 6, 3))}


def test_causality_holds_for_a_prefix_sum() -> None:
    options = validated("causality", {"perturb": {"x": 1}, "output_axis": 1}, SEQ, ("B", "L", "D"))
    assert_holds("causality", options, SEQ_ENV, lambda env: np.cumsum(env["x"], axis=1))


def test_causality_fails_for_a_suffix_sum() -> None:
    options = validated("causality", {"perturb": {"x": 1}, "output_axis": 1}, SEQ, ("B", "L", "D"))
    assert_violated("causality", options, SEQ_ENV, lambda env: np.flip(np.cumsum(np.flip(env["x"], 1), axis=1), 1))


def test_causality_perturbs_only_later_positions() -> None:
    options = validated("causality", {"perturb": {"x": 1}, "output_axis": 1}, SEQ, ("B", "L", "D"))
    for seed in range(10):
        plan = INVARIANT_KINDS["causality"].plan(options, SEQ_ENV, np.random.default_rng(seed), "out")
        changed = np.any(plan.env_b["x"] != SEQ_ENV["x"], axis=(0, 2))
        first = int(np.argmax(changed))
        assert changed.any() and not changed[:first].any() and changed[first:].all()


# -- bounds --------------------------------------------------------------------------------------------
def test_lower_bound_holds_for_a_squared_norm_and_fails_for_a_signed_sum() -> None:
    options = validated("bounds", {"lower": "0"}, TOKENS, ("B", "L"))
    assert_holds("bounds", options, TOKEN_ENV, per_token_loss)
    assert_violated("bounds", options, TOKEN_ENV, lambda env: (env["h"] - env["m"]).sum(-1))


def test_bounds_given_by_expressions_of_the_inputs() -> None:
    values = tensor_inputs(V=("B", "Lk", "Dv"))
    env = {"V": RNG.uniform(-3, 3, (2, 5, 4))}
    hull = {"lower": "min(V, -2, keepdim=True)", "upper": "max(V, -2, keepdim=True)"}
    options = validated("bounds", hull, values, ("B", 1, "Dv"))
    assert_holds("bounds", options, env, lambda e: e["V"][:, 2:3, :])  # one row of V: inside the hull
    assert_violated("bounds", options, env, lambda e: e["V"].max(-2, keepdims=True) + 0.5)
    assert_violated("bounds", options, env, lambda e: e["V"].min(-2, keepdims=True) - 0.5)


def test_bounds_of_an_expression_of_the_output() -> None:
    """``of``: the bounded quantity is computed from the output (and inputs), and the bound may name it too."""
    options = validated("bounds", {"of": "sum((out - m)**2, -1)", "upper": "sum((h - m)**2, -1)"}, TOKENS, ("B", "L", "D"))
    closer = lambda env: env["m"] + 0.5 * (env["h"] - env["m"])  # noqa: E731 - halfway to m: a smaller distance
    assert_holds("bounds", options, TOKEN_ENV, closer)
    assert_violated("bounds", options, TOKEN_ENV, lambda env: env["m"] + 2.0 * (env["h"] - env["m"]))


# -- identity ------------------------------------------------------------------------------------------
def test_identity_symmetry_under_swapped_inputs() -> None:
    options = validated("identity", {"set": {"h": "m", "m": "h"}, "lhs": "out", "rhs": "original"}, TOKENS, ("B", "L"))
    assert_holds("identity", options, TOKEN_ENV, per_token_loss)
    assert_violated("identity", options, TOKEN_ENV, lambda env: (env["h"] ** 2 - env["m"]).sum(-1))


def test_identity_zero_at_match() -> None:
    options = validated("identity", {"set": {"m": "h"}, "lhs": "out", "rhs": "0"}, TOKENS, ("B", "L"))
    assert_holds("identity", options, TOKEN_ENV, per_token_loss)
    assert_violated("identity", options, TOKEN_ENV, lambda env: per_token_loss(env) + 1e-12)


def test_identity_with_a_constant_input_and_an_expression_of_the_output() -> None:
    values = tensor_inputs(V=("B", "Lk", "Dv"))
    env = {"V": RNG.uniform(-3, 3, (2, 5, 4))}
    options = validated("identity", {"set": {"V": "1"}, "lhs": "mean(out**2, -1)", "rhs": "1"}, values, ("B", 1, "Dv"))
    assert_holds("identity", options, env, lambda e: e["V"][:, :1, :])
    assert_violated("identity", options, env, lambda e: e["V"].sum(-2, keepdims=True))


def test_identity_set_keeps_shape_and_dtype_of_the_input() -> None:
    options = validated("identity", {"set": {"m": "1"}, "lhs": "out", "rhs": "out"}, TOKENS, ("B", "L"))
    plan = INVARIANT_KINDS["identity"].plan(options, TOKEN_ENV, np.random.default_rng(0), "out")
    assert plan.env_b["m"].shape == TOKEN_ENV["m"].shape and plan.env_b["m"].dtype == np.float64
    assert np.all(plan.env_b["m"] == 1.0) and plan.env_b["h"] is TOKEN_ENV["h"]


# -- validation ----------------------------------------------------------------------------------------
def validation_error(kind: str, options: dict, inputs: dict, out_shape: tuple) -> SpecError:
    with pytest.raises(SpecError) as info:
        validated(kind, options, inputs, out_shape)
    return info.value


MIXED = tensor_inputs(h=("B", "L", "D"), m=("B", "L", "D"), mask=("L", "L"))


@pytest.mark.parametrize(
    ("kind", "options", "key", "words"),
    [
        ("permutation", {"permute": {"h": 1, "m": 2}}, "permute", "must share one size"),
        ("permutation", {"permute": {"h": 3}}, "permute", "out of range for its rank 3"),
        ("permutation", {"permute": {"z": 0}}, "permute", "'z' is not a declared input"),
        ("permutation", {"permute": {}}, "permute", "mapping input name -> axis"),
        ("permutation", {"permute": {"h": 1}, "output_axis": 2}, "output_axis", "axis of the output (rank 2)"),
        ("permutation", {"permute": {"h": True}}, "permute", "out of range"),
        ("homogeneity", {"scale": {"mask": 1}}, "scale", "real input name"),
        ("homogeneity", {"scale": {"h": 0.5}}, "scale", "powers must be integers"),
        ("homogeneity", {"scale": {"h": 1}, "degree": "2"}, "degree", "expected an integer"),
        ("homogeneity", {"scale": {"h": 1}, "log2_factor": [3, -3]}, "log2_factor", "low < high"),
        ("causality", {"perturb": {"h": 1}}, "output_axis", "axis of the output"),
        ("bounds", {}, "lower", "'lower' and/or 'upper'"),
        ("bounds", {"lower": "__import__('os')"}, "lower", "must not start with '_'"),
        ("bounds", {"upper": "max(q, -1)"}, "upper", "undeclared name(s) q"),
        ("identity", {"set": {"z": "1"}, "lhs": "out", "rhs": "0"}, "set", "'z' is not a declared input"),
        ("identity", {"set": ["h"], "lhs": "out", "rhs": "0"}, "set", "mapping input name -> expression"),
        ("identity", {"lhs": "out2", "rhs": "0"}, "lhs", "undeclared name(s) out2"),
    ],
)
def test_invalid_options_name_the_option(kind: str, options: dict, key: str, words: str) -> None:
    exc = validation_error(kind, options, MIXED, ("B", "L"))
    assert at_key(exc, key) and words in exc.detail, exc


# -- several outputs -----------------------------------------------------------------------------------
def validated_many(kind: str, options: dict, inputs: dict, outputs: dict[str, tuple], params: dict | None = None) -> dict:
    outs = {name: Output(name, shape) for name, shape in outputs.items()}
    names = set(inputs) | set(params or {})
    return INVARIANT_KINDS[kind].validate(options, WHERE, context(inputs, outs, names, params))


def polar(env: dict) -> tuple[np.ndarray, np.ndarray]:
    """Two outputs: cos and sin of the per-token distance."""
    r = per_token_loss(env)
    return np.cos(r), np.sin(r)


def test_identity_names_every_output_and_its_original() -> None:
    outputs = {"c": ("B", "L"), "s": ("B", "L")}
    options = validated_many("identity", {"set": {"m": "h"}, "lhs": "c**2 + s**2 + 0*original_c", "rhs": "1"}, TOKENS, outputs)
    plan = INVARIANT_KINDS["identity"].plan(options, TOKEN_ENV, np.random.default_rng(0), ("c", "s"))
    assert plan.joint, "an identity relates all outputs at once"
    lhs, rhs = plan.relate(polar(plan.env_a), polar(plan.env_b), plan.env_a, plan.env_b)
    np.testing.assert_allclose(lhs, rhs, atol=1e-15)
    lhs, rhs = plan.relate(
        polar(plan.env_a), (np.cos(0.5 + per_token_loss(plan.env_b)), np.zeros((2, 6))), plan.env_a, plan.env_b
    )
    assert not np.allclose(lhs, rhs)


def test_identity_refuses_original_with_several_outputs() -> None:
    with pytest.raises(SpecError) as info:
        validated_many("identity", {"lhs": "c", "rhs": "original"}, TOKENS, {"c": ("B",), "s": ("B",)})
    assert info.value.path == "rhs" and info.value.detail.startswith("undeclared name(s) original;")


def test_one_output_axis_needs_outputs_of_one_rank() -> None:
    with pytest.raises(SpecError) as info:
        validated_many("permutation", {"permute": {"h": 1}, "output_axis": 1}, TOKENS, {"c": ("B", "L"), "s": ("B",)})
    assert info.value.path == "output_axis" and "different ranks [1, 2]" in info.value.detail


def test_per_output_kinds_relate_one_output_at_a_time() -> None:
    options = validated_many(
        "permutation", {"permute": {"h": 1, "m": 1}, "output_axis": 1}, TOKENS, {"c": ("B", "L"), "s": ("B", "L")}
    )
    plan = INVARIANT_KINDS["permutation"].plan(options, TOKEN_ENV, np.random.default_rng(0), ("c", "s"))
    assert not plan.joint and plan.feed is None
    for a, b in zip(polar(plan.env_a), polar(plan.env_b)):
        lhs, rhs = plan.relate(a, b, plan.env_a, plan.env_b)
        np.testing.assert_array_equal(lhs, rhs)


# -- params in substitutions -----------------------------------------------------------------------------
def test_identity_may_set_a_param() -> None:
    options = validated_many(
        "identity", {"set": {"k": "k + 2"}, "lhs": "out", "rhs": "original"}, TOKENS, {"out": ("B", "L")}, {"k": None}
    )
    plan = INVARIANT_KINDS["identity"].plan(options, {**TOKEN_ENV, "k": 3}, np.random.default_rng(0), "out")
    assert plan.env_b["k"] == 5 and plan.env_a["k"] == 3
    with pytest.raises(SpecError) as info:
        validated_many("identity", {"set": {"q": "1"}, "lhs": "out", "rhs": "0"}, TOKENS, {"out": ("B", "L")}, {"k": None})
    assert info.value.path == "set.q" and info.value.detail == "'q' is not a declared input or param"


# -- composition -----------------------------------------------------------------------------------------
TURN = tensor_inputs(x=("L", 2), angle=("L",))
TURN_ENV = {"x": RNG.uniform(-1, 1, (5, 2)), "angle": RNG.uniform(-3, 3, 5), "s": 0.75}


def turn(env: dict) -> np.ndarray:
    """Rotate each row of x by its angle: a group law R_a R_b = R_{a+b}."""
    c, s = np.cos(env["angle"]), np.sin(env["angle"])
    x = env["x"]
    return np.stack([x[:, 0] * c - x[:, 1] * s, x[:, 0] * s + x[:, 1] * c], -1)


def chained(options: dict, env: dict, fn: Fn) -> tuple[np.ndarray, np.ndarray]:
    """Run a composition plan as the harness does: the first call's output feeds the second."""
    plan = INVARIANT_KINDS["composition"].plan(options, env, np.random.default_rng(0), "out")
    assert plan.feed is not None and (plan.feed.input, plan.feed.output) == ("x", "out")
    fed = {**plan.env_b, plan.feed.input: fn(plan.feed.env)}
    return plan.relate(fn(plan.env_a), fn(fed), plan.env_a, fed)


COMPOSE = {"feed": {"x": "out"}, "first": {"angle": "angle - s"}, "second": {"angle": "s + 0*angle"}}


def test_composition_holds_for_a_group_law_and_fails_otherwise() -> None:
    options = validated_many("composition", COMPOSE, TURN, {"out": ("L", 2)}, {"s": None})
    lhs, rhs = chained(options, TURN_ENV, turn)
    np.testing.assert_allclose(lhs, rhs, atol=1e-14)
    lhs, rhs = chained(options, TURN_ENV, lambda env: turn({**env, "angle": env["angle"] ** 2}))  # not additive
    assert not np.allclose(lhs, rhs)


def test_composition_without_substitutions_is_idempotence() -> None:
    options = validated_many("composition", {"feed": {"x": "out"}}, TURN, {"out": ("L", 2)})
    lhs, rhs = chained(options, TURN_ENV, lambda env: np.clip(env["x"], -0.5, 0.5))  # a projection
    np.testing.assert_array_equal(lhs, rhs)
    lhs, rhs = chained(options, TURN_ENV, turn)
    assert not np.allclose(lhs, rhs)


@pytest.mark.parametrize(
    ("options", "key", "words"),
    [
        ({"feed": {"x": "out", "angle": "out"}}, "feed", "one pair input name -> output name"),
        ({"feed": {"z": "out"}}, "feed", "'z' is not a declared real input"),
        ({"feed": {"x": "nope"}}, "feed", "'nope' is not a declared output"),
        ({"feed": {"angle": "out"}}, "feed", "cannot feed input 'angle'"),
        ({"feed": {"x": "out"}, "first": {"q": "1"}}, "first", "'q' is not a declared input or param"),
        ({"feed": {"x": "out"}, "second": ["x"]}, "second", "expected a mapping"),
    ],
)
def test_composition_options_are_validated(options: dict, key: str, words: str) -> None:
    with pytest.raises(SpecError) as info:
        validated_many("composition", options, TURN, {"out": ("L", 2)})
    assert at_key(info.value, key) and words in info.value.detail, info.value


# -- the records -----------------------------------------------------------------------------------------
def test_builtin_kinds_are_records_in_the_open_registry() -> None:
    assert INVARIANT_KINDS is REGISTRY, "the module re-exports the registry"
    assert all(isinstance(kind, InvariantKind) for kind in BUILTIN)
    assert {kind.name for kind in BUILTIN} <= set(REGISTRY.names())
    assert REGISTRY["permutation"] is next(k for k in BUILTIN if k.name == "permutation")


def test_homogeneity_powers_are_bounded() -> None:
    exc = validation_error("homogeneity", {"scale": {"h": 1000}}, MIXED, ("B", "L"))
    assert exc.path == "scale" and "at most 8" in exc.detail
    exc = validation_error("homogeneity", {"scale": {"h": 1}, "log2_factor": [-100, 100]}, MIXED, ("B", "L"))
    assert exc.path == "log2_factor" and "within [-16, 16]" in exc.detail
