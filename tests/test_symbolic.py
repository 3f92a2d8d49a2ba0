"""conformance.symbolic: facts a spec claims, proved exactly with SymPy, and false claims refuted."""

from __future__ import annotations

import pytest

from conformance.registry import FACT_KINDS as REGISTRY
from conformance.symbolic import BUILTIN, FACT_KINDS, MAX_SIZE_COMBINATIONS, FactKind, prove
from conformance.validation import SpecContext, SpecError, Where
from tests.spec_helpers import shipped_specs

WHERE = Where("s.yaml")  # errors name the key below the fact entry: ``sizes``, ``where.eps``
CONTEXT = SpecContext("s.yaml")

SHIPPED_FACTS = [(spec.id, fact) for spec in shipped_specs().values() for fact in spec.facts]


def identity(**options) -> dict:
    return FACT_KINDS["identity"].validate(options, WHERE, CONTEXT)


def gradient(**options) -> dict:
    return FACT_KINDS["gradient"].validate(options, WHERE, CONTEXT)


SURPRISE = "sum((hidden - memory_pred)**2, -1)"
SURPRISE_SHAPES = {"hidden": ["T", "D"], "memory_pred": ["T", "D"]}
SURPRISE_SIZES = {"T": [1, 2], "D": [1, 3]}


# -- the shipped facts -------------------------------------------------------------------------------
@pytest.mark.parametrize(("spec_id", "fact"), SHIPPED_FACTS, ids=[f"{s}-{f.id}" for s, f in SHIPPED_FACTS])
def test_every_shipped_fact_proves(spec_id: str, fact) -> None:
    result = prove(fact.kind, fact.options)
    assert result.proved and not result.refuted, result.detail
    assert result.detail.startswith("proved for all real values")


def test_shipped_specs_declare_facts() -> None:
    assert {s for s, _ in SHIPPED_FACTS} == {"attention", "rmsnorm", "surprise", "momentum_step"}


# -- true facts prove, false ones are refuted ---------------------------------------------------------
def test_softmax_rows_sum_to_one_proves() -> None:
    assert prove("identity", identity(lhs="sum(softmax(s, -1), -1)", rhs="1", shapes={"s": ["N"]}, sizes={"N": [1, 2, 3]})).proved


def test_false_identity_softmax_rows_sum_to_two_is_refuted() -> None:
    result = prove("identity", identity(lhs="sum(softmax(s, -1), -1)", rhs="2", shapes={"s": ["N"]}, sizes={"N": [1, 2, 3]}))
    assert not result.proved and result.refuted
    assert result.detail.startswith("refuted at sizes {'N': 1}")


def test_identity_false_only_at_a_larger_size_is_refuted_there() -> None:
    # softmax of a single element is 1, so 'softmax(s) == 1' holds at N=1 and fails from N=2 on
    result = prove("identity", identity(lhs="softmax(s, -1)", rhs="1", shapes={"s": ["N"]}, sizes={"N": [1, 2]}))
    assert result.refuted and "{'N': 2}" in result.detail


def test_correct_gradient_proves() -> None:
    fact = gradient(
        of=SURPRISE,
        wrt="hidden",
        equals="2*(hidden - memory_pred)*unsqueeze(g, -1)",
        shapes=SURPRISE_SHAPES,
        sizes=SURPRISE_SIZES,
    )
    assert prove("gradient", fact).proved


@pytest.mark.parametrize(
    ("wrt", "equals"),
    [
        ("hidden", "(hidden - memory_pred)*unsqueeze(g, -1)"),  # missing factor 2
        ("hidden", "hidden - memory_pred"),  # missing factor 2 and the cotangent
        ("memory_pred", "2*(hidden - memory_pred)*unsqueeze(g, -1)"),  # wrong sign
        ("hidden", "2*(hidden - memory_pred)"),  # the cotangent is ignored
    ],
    ids=["no-factor-2", "no-factor-2-no-cotangent", "wrong-sign", "no-cotangent"],
)
def test_wrong_gradient_is_refuted(wrt: str, equals: str) -> None:
    result = prove("gradient", gradient(of=SURPRISE, wrt=wrt, equals=equals, shapes=SURPRISE_SHAPES, sizes=SURPRISE_SIZES))
    assert not result.proved and result.refuted, result.detail


def test_positive_assumption_is_what_makes_scale_invariance_hold() -> None:
    options = {
        "lhs": "c*a / sqrt(mean((c*a)**2, -1, keepdim=True))",
        "rhs": "a / sqrt(mean(a**2, -1, keepdim=True))",
        "shapes": {"a": ["N"]},
        "sizes": {"N": [1, 2]},
    }
    assert prove("identity", identity(**options, positive=["c"])).proved
    unconstrained = prove("identity", identity(**options))
    assert not unconstrained.proved and unconstrained.refuted  # c < 0 flips the sign


def test_where_substitutes_a_scalar_value() -> None:
    options = {
        "lhs": "mean((a / sqrt(mean(a**2, -1, keepdim=True) + eps))**2, -1)",
        "rhs": "1",
        "shapes": {"a": ["N"]},
        "sizes": {"N": [1, 2, 3]},
    }
    assert prove("identity", identity(**options, where={"eps": 0})).proved
    assert not prove("identity", identity(**options, where={"eps": 0.5})).proved


def test_fixed_integer_dimensions_in_shapes() -> None:
    fact = identity(lhs="sum(s, -1)", rhs="sum(transpose(s), -2)", shapes={"s": [2, "N"]}, sizes={"N": [1, 3]})
    assert prove("identity", fact).proved


def test_too_many_elements_at_a_listed_size_is_an_error() -> None:
    fact = identity(lhs="sum(s, -1)", rhs="sum(s, -1)", shapes={"s": ["N", "N", "N"]}, sizes={"N": [2, 8]})
    with pytest.raises(ValueError, match=r"512 elements at sizes .*\(at most 64\)"):
        prove("identity", fact)


# -- validation ----------------------------------------------------------------------------------------
def validation_error(kind: str, **options) -> tuple[tuple[str, ...], str]:
    """The (key path, message) that ``validate`` reports, below the fact's entry."""
    with pytest.raises(SpecError) as info:
        FACT_KINDS[kind].validate(options, WHERE, CONTEXT)
    return tuple(info.value.path.split(".")), info.value.detail


BASE = {"lhs": "sum(s, -1)", "rhs": "1", "shapes": {"s": ["N"]}}


@pytest.mark.parametrize(
    "sizes",
    [
        [1, 2, 3],  # not a mapping
        {"N": []},  # empty list
        {"N": 3},  # not a list
        {"N": [0, 1]},  # below 1
        {"N": [1, 9]},  # above 8
        {"N": ["2"]},  # not an integer
        {"N": [1.5]},  # not an integer
    ],
    ids=["list", "empty", "scalar", "zero", "nine", "string", "float"],
)
def test_bad_sizes_are_rejected(sizes) -> None:
    key, message = validation_error("identity", **BASE, sizes=sizes)
    assert key == ("sizes",) and "non-empty list of integers in [1, 8]" in message


def test_too_many_size_combinations_are_rejected() -> None:
    sizes = {name: [1, 2] for name in "ABCDE"}  # 32 combinations
    key, message = validation_error("identity", lhs="s", rhs="s", shapes={"s": list("ABCDE")}, sizes=sizes)
    assert key == ("sizes",) and f"32 size combinations (at most {MAX_SIZE_COMBINATIONS})" in message


def test_shape_naming_an_unknown_size_is_rejected() -> None:
    key, message = validation_error("identity", lhs="s", rhs="s", shapes={"s": ["M"]}, sizes={"N": [1]})
    assert key == ("shapes", "s") and "'M' of 's' is neither an integer in [1, 64] nor a key of 'sizes'" in message


@pytest.mark.parametrize(
    ("options", "key", "words"),
    [
        ({"where": {"eps": "small"}}, ("where",), "mapping scalar name -> number"),
        ({"where": {"eps": True}}, ("where",), "mapping scalar name -> number"),
        ({"positive": "c"}, ("positive",), "list of scalar names"),
        ({"lhs": "__import__('os')"}, ("lhs",), "names must not start with '_'"),
        ({"rhs": ["1"]}, ("rhs",), "expected an expression string"),
    ],
    ids=["where-string", "where-bool", "positive-string", "hostile-lhs", "rhs-list"],
)
def test_bad_options_are_rejected(options: dict, key: tuple, words: str) -> None:
    got_key, message = validation_error("identity", **{**BASE, "sizes": {"N": [1]}, **options})
    assert got_key == key and words in message


def test_gradient_wrt_must_be_a_shaped_tensor() -> None:
    key, message = validation_error(
        "gradient", of=SURPRISE, wrt="target", equals="0", shapes=SURPRISE_SHAPES, sizes=SURPRISE_SIZES
    )
    assert key == ("wrt",) and "'target' is not a tensor named in 'shapes'" in message


# -- values substituted are bounded like expression constants ------------------------------------------------
@pytest.mark.parametrize(
    ("where", "words"),
    [
        ({"eps": 10**12}, "integers are bounded by 1000000000"),
        ({"eps": float("inf")}, "expected a finite number"),
        ({"eps": float("nan")}, "expected a finite number"),
    ],
    ids=["huge-int", "inf", "nan"],
)
def test_where_values_are_bounded(where: dict, words: str) -> None:
    key, message = validation_error("identity", **BASE, sizes={"N": [1]}, where=where)
    assert key == ("where", "eps") and words in message


def test_a_tiny_where_value_is_not_rounded_to_zero() -> None:
    options = {"lhs": "s * eps", "rhs": "0", "shapes": {"s": ["N"]}, "sizes": {"N": [1]}}
    assert not prove("identity", identity(**options, where={"eps": 1e-300})).proved


def test_fixed_dimensions_are_bounded() -> None:
    key, message = validation_error("identity", lhs="s", rhs="s", shapes={"s": [10**6]}, sizes={})
    assert key == ("shapes", "s") and "integer in [1, 64]" in message


def test_builtin_kinds_are_records_in_the_open_registry() -> None:
    assert FACT_KINDS is REGISTRY
    assert all(isinstance(kind, FactKind) for kind in BUILTIN) and {k.name for k in BUILTIN} == {"identity", "gradient"}
    assert prove(REGISTRY["identity"], identity(lhs="s", rhs="s", shapes={"s": ["N"]}, sizes={"N": [2]})).proved
