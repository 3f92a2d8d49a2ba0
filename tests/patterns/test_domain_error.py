"""The ``domain_error`` pattern kind: option validation on load, and the check on small implementations.

Validation goes through the real loader (a bad option fails on load with the key's path). The check
runs on a toy spec whose implementation must refuse sizes past a bound, with implementations written
here: one that refuses as the spec says, one that returns normally, one that raises the wrong type,
one whose message does not match, one with an empty message. The shipped ``rope_cache`` check
(``accepts: [error, correct]``) runs on rotary tables written here: computed on the fly (right past
max_seq_len: passes), a clear error (passes), the guide's slice, a repeated last row and an empty
message (fail). The shipped spec's planted defects are in ``tests/meta_tests/tables/rope_cache.py``.
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


def silent(hidden, memory_pred, limit):
    if hidden.shape[-1] > limit:
        raise ValueError("  ")
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
        ("returns", "returned normally (expected ValueError with a message matching 'exceeds limit')"),
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


def test_accepts_defaults_to_error_and_is_validated(tmp_path: Path) -> None:
    assert validated(KIND.validate, {"set": {"L": "M + 1"}})["accepts"] == ("error",)
    spec = load_one(write_spec(tmp_path, toy(tmp_path, accepts=["correct", "error"])))
    assert spec.patterns[0].options["accepts"] == ("correct", "error")


@pytest.mark.parametrize(
    ("accepts", "words"),
    [
        ([], "non-empty list of distinct values from error, correct"),
        (["error", "error"], "non-empty list of distinct values"),
        ("error", "non-empty list"),
        (["right"], "expected values from error, correct; got 'right'"),
    ],
)
def test_bad_accepts_fails_on_load_naming_the_key(tmp_path: Path, accepts: object, words: str) -> None:
    error = load_error(write_spec(tmp_path, toy(tmp_path, accepts=accepts)))
    assert error.path == "specs[0].patterns[0].accepts" and words in str(error), str(error)


def test_correct_needs_an_oracle(tmp_path: Path) -> None:
    from tests.spec_helpers import pattern_spec

    data = pattern_spec("domain_error", {"set": {"L": "1"}, "accepts": ["correct"]}, "implementations.rope:RotaryEmbedding")
    error = load_error(write_spec(tmp_path, data))
    assert error.path == "specs[0].patterns[0].accepts" and "needs the spec's oracle" in str(error), str(error)


def test_an_empty_message_is_unclear(spec: EquationSpec) -> None:
    m = run(spec, "silent")
    assert not m.passed and "raised ValueError with an empty message (expected ValueError with a message" in m.detail


# -- rotary positions past max_seq_len (spec rope_cache: accepts error or correct) ---------------------------
ROPE = '''
import torch
from implementations.rope import RotaryEmbedding


class OnTheFly(torch.nn.Module):
    """Positions computed from seq_len on every call (float64, rounded to x's dtype): no cache, no limit."""

    def __init__(self, dim, max_seq_len=4096, base=10000):
        super().__init__()
        self.dim, self.base = dim, base

    def forward(self, x, seq_len):
        exponent = torch.arange(0, self.dim, 2, dtype=torch.float64) / self.dim
        inv_freq = torch.tensor(float(self.base), dtype=torch.float64) ** -exponent
        angles = torch.outer(torch.arange(seq_len, dtype=torch.float64), inv_freq)
        return angles.cos().to(x.dtype), angles.sin().to(x.dtype)


class GuideSlice(RotaryEmbedding):
    """The guide's cache: past max_seq_len the slice silently returns max_seq_len rows."""

    def forward(self, x, seq_len):
        cos, sin = self._table(x.device, x.dtype)
        return cos[:seq_len], sin[:seq_len]


class RepeatsLastRow(RotaryEmbedding):
    """Past max_seq_len the last cached row is repeated: the right shape, wrong rows."""

    def forward(self, x, seq_len):
        cos, sin = self._table(x.device, x.dtype)
        rows = torch.arange(seq_len).clamp(max=self.max_seq_len - 1)
        return cos[rows], sin[rows]


class ClearError(RotaryEmbedding):
    """Refuses with a ValueError that says why (in its own words)."""

    def forward(self, x, seq_len):
        if seq_len > self.max_seq_len:
            raise ValueError(f"only {self.max_seq_len} positions are cached, {seq_len} asked")
        return super().forward(x, seq_len)


class EmptyMessage(RotaryEmbedding):
    """Refuses with a ValueError and no message."""

    def forward(self, x, seq_len):
        if seq_len > self.max_seq_len:
            raise ValueError()
        return super().forward(x, seq_len)
'''


def _rope(tmp_path: Path, name: str, dtype: str = "float32") -> object:
    from conformance.spec import load_specs

    (tmp_path / "rope_impls.py").write_text(ROPE, encoding="utf-8")
    ref = f"{tmp_path / 'rope_impls.py'}:{name}"
    spec = load_specs()["rope_cache"].with_implementations([ref])
    entry = next(p for p in spec.patterns if p.id == "seq_len_past_max")
    return kinds()["domain_error"].run(PatternContext(spec, ref, "cpu", dtype, entry.options, FEW))


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16"])
def test_rotary_positions_computed_on_the_fly_pass(tmp_path: Path, dtype: str) -> None:
    m = _rope(tmp_path, "OnTheFly", dtype)
    assert m.passed and m.examples >= 1 and "returned the oracle's values within the derived tolerance" in m.detail, m.detail


def test_a_clear_error_passes(tmp_path: Path) -> None:
    m = _rope(tmp_path, "ClearError")
    assert m.passed and "raised ValueError with a message" in m.detail, m.detail


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("GuideSlice", "returned cos_table of shape ("),
        ("RepeatsLastRow", "returned wrong values: sin_table: max |error|"),  # cos is flat near m·θ = 0 for D = 2
        ("EmptyMessage", "raised ValueError with an empty message"),
    ],
)
def test_truncation_wrong_rows_and_unclear_errors_fail(tmp_path: Path, name: str, words: str) -> None:
    m = _rope(tmp_path, name)
    assert not m.passed and words in m.detail and "L = " in m.detail, m.detail
    if name == "GuideSlice":
        assert "(fewer rows than asked: silently truncated)" in m.detail
