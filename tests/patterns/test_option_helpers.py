"""conformance.patterns.option_helpers: ``params``, ``call`` and scalar-expression options, errors naming the key."""

from __future__ import annotations

import pytest

from conformance import expr as expr_mod
from conformance.patterns.option_helpers import (
    Param,
    bound,
    evaluate_scalar,
    int_range,
    parse_call,
    parse_params,
    parse_scalar,
)


def test_params_are_ranges_or_sampled_values() -> None:
    params = parse_params({"n": {"min": 1, "max": 3}, "method": {"values": ["xavier", "normal"]}}, ("params",), set())
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
    with pytest.raises(KeyError) as info:
        parse_params(value, ("params",), {"seed"})
    assert info.value.args[0] == path and fragment in info.value.args[1]


def test_call_names_must_be_declared() -> None:
    call = parse_call({"args": ["n"], "kwargs": {"method": "m"}}, ("call",), {"n", "m"})
    assert call.args == ("n",) and call.kwargs == {"method": "m"}
    with pytest.raises(KeyError) as info:
        parse_call({"kwargs": {"method": "x"}}, ("call",), {"n"})
    assert info.value.args[0] == ("call", "kwargs", "method") and "'x' is not declared" in info.value.args[1]
    with pytest.raises(KeyError, match="args and/or kwargs"):
        parse_call({"positional": []}, ("call",), set())


def test_scalar_expressions_are_parsed_safely_and_checked() -> None:
    parsed = parse_scalar("1/sqrt(2*n)", ("factor",), {"n"})
    assert evaluate_scalar(parsed, {"n": 2}) == 0.5
    assert evaluate_scalar(parse_scalar(0.02, ("std",), set()), {}) == 0.02
    with pytest.raises(KeyError, match="undeclared name"):
        parse_scalar("n + m", ("factor",), {"n"})
    with pytest.raises(KeyError, match="expected a scalar expression"):
        parse_scalar("n < 2", ("factor",), {"n"})
    with pytest.raises(KeyError, match="not allowed|unsupported|forbidden"):
        parse_scalar("__import__('os')", ("factor",), set())


def test_a_non_real_value_is_an_error() -> None:
    with pytest.raises(ValueError, match="not a real number"):
        evaluate_scalar(expr_mod.parse("sqrt(n)"), {"n": -1})


def test_int_range_and_bound() -> None:
    assert int_range({"min": 1, "max": 1}, ("k",), 1, 5) == (1, 1)
    with pytest.raises(KeyError, match="integers 1 <= min"):
        int_range({"min": 0, "max": 9}, ("k",), 1, 5)
    assert bound(0.5, "a stated bound").describe() == "a stated bound"
