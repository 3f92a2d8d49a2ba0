"""The ``domain_error`` pattern kind: option validation on load, and the check on small implementations.

Validation goes through the real loader (a bad option fails on load with the key's path). The check
runs on a toy spec whose implementation must refuse sizes past a bound, with implementations written
here: one that refuses as the spec says, one that returns normally, one that raises the wrong type,
one whose message does not match. The shipped spec's planted defects are in
``tests/meta_tests/tables/rope_cache.py``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import settings

from conformance.patterns import PatternContext, kinds
from conformance.patterns.domain_error import KIND
from conformance.spec import EquationSpec
from tests.patterns.kind_helpers import validated
from tests.spec_helpers import load_error, load_one, minimal_spec, write_spec

FEW = settings(max_examples=8, derandomize=True, deadline=None, database=None)

IMPLEMENTATIONS = """
import torch


def refuses(hidden, memory_pred, limit):
    if hidden.shape[-1] > limit:
        raise ValueError(f"D = {hidden.shape[-1]} exceeds limit {limit}")
    return (hidden - memory_pred).pow(2).sum(-1)


def returns(hidden, memory_pred, limit):
    return (hidden - memory_pred).pow(2).sum(-1)


def wrong_type(hidden, memory_pred, limit):
    if hidden.shape[-1] > limit:
        raise IndexError("index out of range")
    return (hidden - memory_pred).pow(2).sum(-1)


def vague(hidden, memory_pred, limit):
    if hidden.shape[-1] > limit:
        raise ValueError("bad input")
    return (hidden - memory_pred).pow(2).sum(-1)
"""


def pattern(**options: object) -> dict:
    return {"id": "past_limit", "kind": "domain_error", "description": "D past the limit is refused", **options}


def toy(tmp_path: Path, **options: object) -> dict:
    """The minimal spec with a param ``limit`` >= D passed to the implementation, and one domain_error check."""
    data = minimal_spec()
    spec = data["specs"][0]
    spec["params"] = {"limit": {"min": 8, "max": 8, "integer": True}}
    spec["constraints"] = ["D <= limit"]
    spec["interface"] = {"kind": "function", "args": ["hidden", "memory_pred", "limit"]}
    spec["patterns"] = [pattern(**({"set": {"D": "limit + 1"}, "match": "exceeds limit"} | options))]
    (tmp_path / "toy_impls.py").write_text(textwrap.dedent(IMPLEMENTATIONS), encoding="utf-8")
    return data


@pytest.fixture
def spec(tmp_path: Path) -> EquationSpec:
    return load_one(write_spec(tmp_path, toy(tmp_path)))


def run(spec: EquationSpec, name: str) -> object:
    ref = f"{Path(spec.file).parent / 'toy_impls.py'}:{name}"
    ctx = PatternContext(spec.with_implementations([ref]), ref, "cpu", "float32", spec.patterns[0].options, FEW)
    return kinds()["domain_error"].run(ctx)


# -- validation --------------------------------------------------------------------------------------
def test_the_kind_is_discovered_with_its_defaults() -> None:
    assert kinds()["domain_error"] is KIND
    options = validated(KIND.validate, {"set": {"L": "M + 1"}})
    assert options["raises"] == ("ValueError",) and options["match"] is None
    assert str(options["set"]["L"]) == "M + 1"


@pytest.mark.parametrize(
    ("options", "key", "words"),
    [
        ({"set": {}}, "set", "expected a mapping size or param name"),
        ({"set": {"D": "limit +"}}, "set", "not a valid expression"),
        ({"set": {"D": "__import__('os')"}}, "set", "must not start with '_'"),
        ({"raises": ["NoSuchError"]}, "raises", "built-in exception names"),
        ({"raises": ["print"]}, "raises", "built-in exception names"),
        ({"raises": []}, "raises", "non-empty list"),
        ({"match": "("}, "match", "not a regular expression"),
    ],
)
def test_bad_options_fail_on_load_naming_the_key(tmp_path: Path, options: dict, key: str, words: str) -> None:
    file = write_spec(tmp_path, toy(tmp_path, **options))
    error = load_error(file)
    assert error.path == f"specs[0].patterns[0].{key}" and words in str(error), str(error)


# -- the check -----------------------------------------------------------------------------------------
def test_an_implementation_that_refuses_passes(spec: EquationSpec) -> None:
    m = run(spec, "refuses")
    assert m.passed and m.examples >= 1, m.detail


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("returns", "returned normally (expected ValueError matching 'exceeds limit')"),
        ("wrong_type", "raised IndexError: index out of range (expected ValueError"),
        ("vague", "raised ValueError: bad input — the message does not match 'exceeds limit'"),
    ],
)
def test_an_implementation_that_does_not_refuse_as_specified_fails(spec: EquationSpec, name: str, words: str) -> None:
    m = run(spec, name)
    assert not m.passed and words in m.detail, m.detail
    assert m.detail.startswith("at D = 9 (example: sizes={") and "'D': 9" in m.detail


def test_set_naming_an_unknown_size_is_reported(tmp_path: Path) -> None:
    spec = load_one(write_spec(tmp_path, toy(tmp_path, set={"E": "limit + 1"})))
    with pytest.raises(ValueError, match="E is not a size or param of spec 'toy'"):
        run(spec, "refuses")
