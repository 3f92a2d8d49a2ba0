"""conformance.patterns.helpers.options: ``params``, ``call`` and scalar-expression options, errors naming the key."""

from __future__ import annotations

import pytest

from conformance import expr as expr_mod
from conformance.patterns.helpers.bounds import bound
from conformance.patterns.helpers.options import (
    Param,
    evaluate_scalar,
    int_range,
    number_range,
    parse_call,
    parse_params,
    parse_scalar,
)
from conformance.validation import SpecError, dotted
from tests.patterns.kind_helpers import at


def test_params_are_ranges_or_sampled_values() -> None:
    params = parse_params({"n": {"min": 1, "max": 3}, "method": {"values": ["xavier", "normal"]}}, at("params"), set())
    assert params["n"] == Param("n", low=1, high=3) and params["n"].numeric
    assert params["method"].values == ("xavier", "normal") and not params["method"].numeric


@pytest.mark.parametrize(
    "value, path, fragment",
    [
        ([1, 2], ("params",), "expected a mapping"),
        ({"2bad": {"min": 1, "max": 2}}, ("params", "2bad"), "expected a new plain name"),
        ({"seed": {"min": 1, "max": 2}}, ("params", "seed"), "not one of ['seed']"),
        ({"n": {"values": []}}, ("params", "n", "values"), "non-empty list"),
        ({"n": {"min": 3, "max": 1}}, ("params", "n"), "min <= max"),
    ],
)
def test_bad_params_name_the_key(value: object, path: tuple, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_params(value, at("params"), {"seed"})
    assert info.value.path == dotted(path) and fragment in info.value.detail


def test_call_names_must_be_declared() -> None:
    call = parse_call({"args": ["n"], "kwargs": {"method": "m"}}, at("call"), {"n", "m"})
    assert call.args == ("n",) and call.kwargs == {"method": "m"}
    with pytest.raises(SpecError) as info:
        parse_call({"kwargs": {"method": "x"}}, at("call"), {"n"})
    assert info.value.path == "call.kwargs.method" and "'x' is not declared" in info.value.detail
    with pytest.raises(SpecError, match="args and/or kwargs"):
        parse_call({"positional": []}, at("call"), set())


def test_scalar_expressions_are_parsed_safely_and_checked() -> None:
    parsed = parse_scalar("1/sqrt(2*n)", at("factor"), {"n"})
    assert evaluate_scalar(parsed, {"n": 2}) == 0.5
    assert evaluate_scalar(parse_scalar(0.02, at("std"), set()), {}) == 0.02
    with pytest.raises(SpecError, match="undeclared name"):
        parse_scalar("n + m", at("factor"), {"n"})
    with pytest.raises(SpecError, match="expected a scalar expression"):
        parse_scalar("n < 2", at("factor"), {"n"})
    with pytest.raises(SpecError, match="not allowed|unsupported|forbidden"):
        parse_scalar("__import__('os')", at("factor"), set())


def test_a_non_real_value_is_an_error() -> None:
    with pytest.raises(ValueError, match="not a real number"):
        evaluate_scalar(expr_mod.parse("sqrt(n)"), {"n": -1})


def test_int_range_and_bound() -> None:
    assert int_range({"min": 1, "max": 1}, at("k"), 1, 5) == {"min": 1, "max": 1}
    with pytest.raises(SpecError, match="integers 1 <= min"):
        int_range({"min": 0, "max": 9}, at("k"), 1, 5)
    assert bound(0.5, "a stated bound").describe() == "a stated bound"


def test_a_range_in_the_old_list_form_says_what_to_write() -> None:
    with pytest.raises(SpecError, match=r"write \{min: 1, max: 4\}") as info:
        int_range([1, 4], at("steps"), 0, 32)
    assert info.value.path == "steps"
    with pytest.raises(SpecError, match=r"write \{min: 0.1, max: 0.5\}"):
        number_range([0.1, 0.5], at("p"), lambda lo, hi: 0 < lo <= hi < 1, "0 < min <= max < 1")
    assert number_range({"min": 0.1, "max": 0.5}, at("p"), lambda lo, hi: 0 < lo <= hi < 1, "0 < min <= max < 1") == {
        "min": 0.1,
        "max": 0.5,
    }
