"""conformance.checks: which checks exist, and that each passes our implementations and fails a wrong one.

Every check runs once on a fixed example (no Hypothesis): our implementations pass all of them at
every dtype; tiny wrong implementations, written to a temporary file and referenced by path, fail
the check meant to catch them with a detail that says what was measured.
"""

from __future__ import annotations

import dataclasses
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conformance.checks import CheckFailure, check_oracle_agreement, checks_for, run_check, source_line
from conformance.dtype_helpers import DTYPES
from conformance.evaluate import NumpyBackend, evaluate
from conformance.expr import parse
from conformance.spec import EquationSpec
from conformance.strategies import Example
from tests.spec_helpers import load_one, minimal_spec, shipped_specs, write_spec

ATTENTION_SIZES = {"B": 1, "H": 2, "Lq": 3, "Lk": 4, "Dk": 5, "Dv": 3}
EXAMPLES = {
    "attention": [
        Example(ATTENTION_SIZES, {"is_causal": causal, "dropout_p": 0.0}, {"Q": 1.0, "K": 1.0, "V": 1.0}, {"mask": True}, 3)
        for causal in (False, True)
    ],
    "rmsnorm": [Example({"B": 2, "L": 3, "D": 4}, {"eps": 1e-6}, {"x": 1.0, "weight": 1.0}, {}, 5)],
    "surprise": [Example({"B": 2, "L": 3, "D": 4}, {}, {"hidden": 1.0, "memory_pred": 1.0}, {}, 7)],
    "multihead_attention": [
        Example(
            {"B": 2, "L": 3, "H": 2, "D": 4},
            {"dropout": 0.1},
            dict.fromkeys(("x", "Wq", "Wk", "Wv", "Wo"), 0.5),
            {"mask": True},
            17,
        )
    ],
    "chunked_attention": [
        Example({"B": 1, "H": 2, "Lq": 5, "Lk": 4, "Dk": 3, "Dv": 2}, {"chunk_size": 2}, {"Q": 1.0, "K": 1.0, "V": 1.0}, {}, 19)
    ],
    # positions 0..299 of a table with 4096 rows; rows at positions 4000.. rotated, shifted by 3000 more
    "rope_cache": [Example({"L": 300, "M": 4096, "D": 16}, {"base": 10000}, {"x": 1.0}, {}, 11)],
    "rope_apply": [
        Example(
            {"B": 1, "H": 2, "L": 5, "D": 8},
            {"offset": 4000, "base": 10000, "interleaved": False, "shift": 3000},
            {"x": 1.0},
            {},
            13,
        )
    ],
}
_LINEAR = {"B": 2, "T": 5, "Dk": 3, "Dv": 2}
_MEMORY = {"start": 1, "chunk_size": 2, "retrieve": "before", "loss": "sum"}
_SPECIAL = {"start": 0, "retrieve": "after", "loss": "sum"}
_GATES = {"theta": 0.2, "alpha": 0.5, "eta": 0.9}
_STATE = dict.fromkeys(("k", "v", "q", "W", "S", "A"), 0.8)
EXAMPLES |= {
    "keys_values": [Example({"B": 2, "T": 3, "D": 4, "Dk": 3, "Dv": 2}, {}, dict.fromkeys(("x", "W_K", "W_V"), 1.0), {}, 23)],
    "momentum_step": [Example({"B": 2, "Dk": 3, "Dv": 2}, {}, {**dict.fromkeys(("S", "W", "k", "v"), 1.0), **_GATES}, {}, 29)],
    "forget_step": [Example({"B": 2, "Dk": 3, "Dv": 2}, {}, {"W": 1.0, "S": 1.0, "alpha": 0.5}, {}, 31)],
    "retrieval_linear": [Example({"B": 2, "T": 3, "D": 4, "Dk": 3, "Dv": 2}, {}, dict.fromkeys(("x", "W_Q", "W"), 1.0), {}, 37)],
    "retrieval_mlp": [
        Example({"B": 2, "T": 3, "D": 4, "Dk": 3, "H": 4, "Dv": 2}, {}, dict.fromkeys(("x", "W_Q", "W1", "W2"), 1.0), {}, 41)
    ],
    "memory_linear": [Example(_LINEAR, _MEMORY, {**_STATE, **_GATES}, {}, 43)],
    "memory_mlp": [
        Example(
            {"B": 2, "T": 4, "Dk": 2, "H": 3, "Dv": 2},
            _MEMORY,
            {**dict.fromkeys(("k", "v", "q", "W1", "W2", "S1", "S2", "A1", "A2"), 0.8), **_GATES},
            {},
            47,
        )
    ],
    "plain_gradient_descent": [
        Example(_LINEAR, {**_SPECIAL, "chunk_size": 1}, {**_STATE, "theta": 0.2}, {}, 53)
    ],
    "forgetting_only": [
        Example(_LINEAR, {**_SPECIAL, "chunk_size": 16}, {**_STATE, "alpha": 0.5, "eta": 0.9}, {}, 59)
    ],
    "one_chunk_step": [
        Example(_LINEAR, {**_SPECIAL, "chunk_size": 8}, {**_STATE, "theta": 0.2}, {}, 61)
    ],
    "linear_matmul_form": [
        Example({"B": 2, "b": 4, "Dk": 3, "Dv": 2}, {}, {"k": 0.8, "v": 1.0, "W": 0.8, "theta": 0.5, "alpha": 0.5}, {}, 67)
    ],
    "momentum_scan": [Example({"B": 2, "T": 6, "N": 3}, {}, {"eta": 0.9, "theta": 0.5, "u": 1.0, "S": 1.0}, {}, 71)],
    "memory_chunk_gates": [
        Example({"B": 2, "N": 2, "C": 3, "Dk": 2, "Dv": 2}, {"retrieve": "before", "loss": "sum"}, {**_STATE, **_GATES}, {}, 79)
    ],
    "neural_memory": [
        Example(
            {"B": 2, "T": 4, "H": 2, "E": 2, "C": 2},
            {"gates": "input", "return_state": False, "qk_norm": True, "retrieve": "before", "loss": "sum"},
            {**dict.fromkeys(("x", "Wk", "Wv", "Wq", "Wo", "M0"), 0.8), **_GATES},
            {},
            83,
        )
    ],
    "descent_step": [
        Example(
            {"B": 2, "T": 1, "Dk": 3, "Dv": 2},
            {**_SPECIAL, "chunk_size": 1},
            {"k": 0.8, "v": 1.0, "theta": 0.2, "W": 0.8, "A": 0.8},
            {},
            73,
        )
    ],
}
SURPRISE_EXAMPLE = EXAMPLES["surprise"][0]


def example_for(spec: EquationSpec, check: str) -> Example:
    """The first fixed example that satisfies the check's ``when`` (invariants only)."""
    inv = next((i for i in spec.invariants if f"invariant:{i.id}" == check), None)
    options = {n: p.default for n, p in spec.params.items() if p.default is not None}  # implementation options
    for ex in EXAMPLES[spec.id]:
        if inv is None or inv.when is None or bool(evaluate(inv.when, {**options, **ex.sizes, **ex.params}, NumpyBackend())):
            return ex
    raise AssertionError(f"no fixed example satisfies {check}")


# -- checks_for ------------------------------------------------------------------------------------
def test_checks_for_attention_float64() -> None:
    spec = shipped_specs()["attention"]
    invariants = [f"invariant:{inv.id}" for inv in spec.invariants]
    assert len(invariants) == 7
    # The report's order (conformance.check_defs: CheckDef.order): base checks, gradients, then invariants.
    assert checks_for(spec, "float64") == ["oracle", "output_contract", "determinism", "gradient", "gradcheck", *invariants]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_gradcheck_only_at_float64(dtype: str) -> None:
    for spec in shipped_specs().values():
        checks = checks_for(spec, dtype)
        # the vector-Jacobian check differentiates the oracle: its expressions, or its reference function (the
        # Titans recurrences: titans_reference.py takes xp; one that does not has its rows skipped, saying why)
        assert ("gradient" in checks) == bool(spec.grad_wrt and (spec.oracle.exprs or spec.oracle.reference)), spec.id
        assert "gradcheck" not in checks and "gradgradcheck" not in checks


def test_gradgradcheck_only_with_order_two() -> None:
    specs = shipped_specs()
    surprise = [c for c in checks_for(specs["surprise"], "float64") if not c.startswith("invariant:")]
    assert specs["surprise"].grad_order == 2 and surprise[-2:] == ["gradcheck", "gradgradcheck"]
    for spec_id in ("attention", "rmsnorm"):
        assert specs[spec_id].grad_order == 1 and "gradgradcheck" not in checks_for(specs[spec_id], "float64")


def test_a_reference_only_spec_gets_the_gradient_check_at_every_dtype(tmp_path: Path) -> None:
    """The check differentiates the reference; its draw skips the case where the function takes no ``xp``
    (``surprise``, NumPy only: tests/test_reference_gradient.py runs one)."""
    data = minimal_spec()
    data["specs"][0]["oracle"] = {"reference": "surprise"}
    data["specs"][0]["gradients"] = {"wrt": ["hidden"], "order": 2}
    spec = load_one(write_spec(tmp_path, data))
    assert checks_for(spec, "float64") == ["oracle", "output_contract", "determinism", "gradient", "gradcheck", "gradgradcheck"]
    assert checks_for(spec, "float32") == ["oracle", "output_contract", "determinism", "gradient"]


def test_no_gradient_checks_without_gradients(tmp_path: Path) -> None:
    spec = load_one(write_spec(tmp_path, minimal_spec()))
    assert checks_for(spec, "float64") == ["oracle", "output_contract", "determinism"]


# -- source_line -----------------------------------------------------------------------------------
def spec_file_line(spec: EquationSpec, line: int) -> str:
    return Path(spec.file).read_text(encoding="utf-8").splitlines()[line - 1]


@pytest.mark.parametrize("spec_id", ["attention", "rmsnorm", "surprise", "rope_cache", "rope_apply"])
def test_source_line_points_at_the_invariant_in_the_yaml(spec_id: str) -> None:
    spec = shipped_specs()[spec_id]
    for inv in spec.invariants:
        line = spec_file_line(spec, source_line(spec, f"invariant:{inv.id}"))
        assert re.fullmatch(rf"\s*- id: {inv.id}", line), line


@pytest.mark.parametrize("spec_id", ["attention", "rmsnorm", "surprise", "rope_cache", "rope_apply"])
def test_source_line_of_oracle_checks_and_of_the_rest(spec_id: str) -> None:
    spec = shipped_specs()[spec_id]
    generated = set(checks_for(spec, "float64")) | ({"oracle_agreement"} if spec.oracle.reference else set())
    for check in generated & {"oracle", "oracle_agreement", "gradient"}:
        assert spec_file_line(spec, source_line(spec, check)).strip() == "oracle:"
    for check in generated & {"output_contract", "determinism", "gradcheck"}:
        assert spec_file_line(spec, source_line(spec, check)).strip() == f"- id: {spec_id}"
    assert {"oracle", "output_contract"} <= generated


# -- run_check on our implementations --------------------------------------------------------------
def our_cases() -> list[tuple[str, str, str, str]]:
    return [
        (spec.id, impl.id, dtype, check)
        for spec in shipped_specs().values()
        for impl in spec.implementations
        for dtype in DTYPES
        for check in checks_for(spec, dtype)
    ]


@pytest.mark.parametrize(("spec_id", "ref", "dtype", "check"), our_cases(), ids=lambda v: v.rsplit(":", 1)[-1])
def test_our_implementations_pass_every_check(spec_id: str, ref: str, dtype: str, check: str) -> None:
    spec = shipped_specs()[spec_id]
    m = run_check(spec, ref, "cpu", dtype, check, example_for(spec, check))
    assert m is not None, "the fixed example must be applicable"
    assert m.passed, m.detail
    assert m.max_abs_err <= (m.tolerance.atol if m.tolerance else 0.0)


@pytest.mark.parametrize("spec_id", ["attention", "rmsnorm", "surprise"])
def test_oracle_agreement_passes(spec_id: str) -> None:
    spec = shipped_specs()[spec_id]
    m = check_oracle_agreement(spec, EXAMPLES[spec_id][0])
    assert m.passed and m.max_abs_err <= m.tolerance.atol


def test_unknown_check_name() -> None:
    spec = shipped_specs()["surprise"]
    with pytest.raises(ValueError, match="unknown check 'oracles'"):
        run_check(spec, "implementations.surprise:compute_surprise", "cpu", "float64", "oracles", SURPRISE_EXAMPLE)


# -- run_check on planted wrong implementations ----------------------------------------------------
WRONG = """
import torch


def mean_over_features(hidden, memory_pred):
    return (hidden - memory_pred).pow(2).mean(-1)


def sum_over_tokens(hidden, memory_pred):
    return (hidden - memory_pred).pow(2).sum(-2)


def always_float32(hidden, memory_pred):
    return (hidden - memory_pred).pow(2).sum(-1).float()


def noisy(hidden, memory_pred):
    total = (hidden - memory_pred).pow(2).sum(-1)
    return total + torch.rand_like(total) * total.abs() * 1e-9


def difference_of_squares(hidden, memory_pred):
    return (hidden.pow(2) - memory_pred.pow(2)).sum(-1)


def detached_hidden(hidden, memory_pred):
    return (hidden.detach() - memory_pred).pow(2).sum(-1)


class _HalfGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, memory_pred):
        ctx.save_for_backward(hidden, memory_pred)
        return (hidden - memory_pred).pow(2).sum(-1)

    @staticmethod
    def backward(ctx, g):
        hidden, memory_pred = ctx.saved_tensors
        grad = (hidden - memory_pred) * g.unsqueeze(-1)  # missing the factor 2
        return grad, -grad


def half_gradient(hidden, memory_pred):
    return _HalfGradient.apply(hidden, memory_pred)


class _SavedDiff(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, memory_pred):
        diff = hidden - memory_pred
        ctx.save_for_backward(diff)  # computed without a graph: the backward is not differentiable
        return diff.pow(2).sum(-1)

    @staticmethod
    def backward(ctx, g):
        (diff,) = ctx.saved_tensors
        grad = 2 * diff * g.unsqueeze(-1)
        return grad, -grad


def saved_diff(hidden, memory_pred):
    return _SavedDiff.apply(hidden, memory_pred)
"""


@pytest.fixture(scope="module")
def wrong(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wrong") / "wrong_surprise.py"
    path.write_text(textwrap.dedent(WRONG), encoding="utf-8")
    return path


PLANTED = [
    ("mean_over_features", "oracle", "float64", r"^max \|error\| \S+ > tolerance \S+ = .*noise floor"),
    ("mean_over_features", "oracle", "float16", r"^max \|error\| \S+ > tolerance \S+ = .*same-precision reference"),
    ("sum_over_tokens", "output_contract", "float64", r"^shape \(2, 4\) != \(2, 3\) \(surprise: \['B', 'L'\]\)$"),
    ("sum_over_tokens", "oracle", "float64", r"^shape \(2, 4\) != expected \(2, 3\)$"),
    ("always_float32", "output_contract", "float64", r"^dtype torch.float32 != torch.float64$"),
    ("noisy", "determinism", "float64", r"^two calls differ by up to \S+ \(bitwise equality expected\)$"),
    ("difference_of_squares", "invariant:nonnegative", "float64", r"^a squared norm is never negative: \|lhs − rhs\| \S+ >"),
    ("difference_of_squares", "invariant:symmetry", "float32", r"^swapping target and prediction leaves the loss unchanged:"),
    ("detached_hidden", "gradient", "float64", r"^no gradient reaches hidden$"),
    ("half_gradient", "gradient", "float32", r"^∂/∂hidden: max \|error\| \S+ > tolerance"),
    ("half_gradient", "gradcheck", "float64", r"^gradcheck \(slow mode\): .*Jacobian mismatch"),
    ("saved_diff", "gradgradcheck", "float64", r"^gradgradcheck \(slow mode\): .*Jacobian mismatch"),
]


@pytest.mark.parametrize(("name", "check", "dtype", "detail"), PLANTED, ids=[f"{p[0]}-{p[1]}-{p[2]}" for p in PLANTED])
def test_wrong_implementation_fails_the_right_check(wrong: Path, name: str, check: str, dtype: str, detail: str) -> None:
    spec = shipped_specs()["surprise"]
    m = run_check(spec, f"{wrong}:{name}", "cpu", dtype, check, SURPRISE_EXAMPLE)
    assert m is not None and not m.passed
    assert re.search(detail, m.detail, flags=re.DOTALL), m.detail


@pytest.mark.parametrize("name", ["saved_diff", "half_gradient"])
def test_planted_gradient_defects_pass_the_forward_checks(wrong: Path, name: str) -> None:
    spec = shipped_specs()["surprise"]
    for check in ("oracle", "output_contract", "determinism", "invariant:symmetry"):
        m = run_check(spec, f"{wrong}:{name}", "cpu", "float64", check, SURPRISE_EXAMPLE)
        assert m is not None and m.passed, m.detail
    if name == "saved_diff":  # right first derivative, wrong second
        assert run_check(spec, f"{wrong}:{name}", "cpu", "float64", "gradcheck", SURPRISE_EXAMPLE).passed


def test_check_failure_is_an_assertion_error() -> None:
    assert issubclass(CheckFailure, AssertionError)


# -- invariants that cannot be checked in the dtype ------------------------------------------------
@pytest.fixture(scope="module")
def scaled_up(tmp_path_factory: pytest.TempPathFactory) -> EquationSpec:
    """The minimal spec with a homogeneity invariant whose factor is always 2 or 4."""
    data = minimal_spec()
    data["specs"][0]["invariants"] = [
        {
            "id": "quadratic",
            "kind": "homogeneity",
            "description": "scaling both arguments by c scales the loss by c²",
            "scale": {"hidden": 1, "memory_pred": 1},
            "degree": 2,
            "log2_factor": [1, 2],
        }
    ]
    return load_one(write_spec(tmp_path_factory.mktemp("scaled_up"), data))


def test_invariant_rejects_inputs_that_overflow_float16_when_scaled(scaled_up: EquationSpec) -> None:
    big = Example({"B": 2, "D": 8}, {}, {"hidden": 60000.0, "memory_pred": 60000.0}, {}, 1)
    assert run_check(scaled_up, "implementations.surprise:compute_surprise", "cpu", "float16", "invariant:quadratic", big) is None
    m = run_check(scaled_up, "implementations.surprise:compute_surprise", "cpu", "float32", "invariant:quadratic", big)
    assert m is not None and m.passed, "the same example is checked where the scaled inputs fit"


def test_invariant_checks_representable_float16_inputs(scaled_up: EquationSpec) -> None:
    small = Example({"B": 2, "D": 8}, {}, {"hidden": 1.0, "memory_pred": 1.0}, {}, 1)
    m = run_check(scaled_up, "implementations.surprise:compute_surprise", "cpu", "float16", "invariant:quadratic", small)
    assert m is not None and m.passed and m.tolerance is not None


def test_source_line_of_a_written_spec(scaled_up: EquationSpec) -> None:
    line = spec_file_line(scaled_up, source_line(scaled_up, "invariant:quadratic"))
    assert line.strip() == "- id: quadratic"


# -- several outputs -------------------------------------------------------------------------------
PAIR = """
import torch


def pair(hidden, memory_pred):
    diff = hidden - memory_pred
    return diff.pow(2).sum(-1), diff.sum(-1)


def wrong_gap(hidden, memory_pred):
    diff = hidden - memory_pred
    return diff.pow(2).sum(-1), diff.abs().sum(-1)


def one_output(hidden, memory_pred):
    return (hidden - memory_pred).pow(2).sum(-1)


def float32_gap(hidden, memory_pred):
    diff = hidden - memory_pred
    return diff.pow(2).sum(-1), diff.sum(-1).float()


def noisy_gap(hidden, memory_pred):
    loss, gap = pair(hidden, memory_pred)
    return loss, gap + torch.rand_like(gap) * gap.abs() * 1e-9


def rows_mixed_in_gap(hidden, memory_pred):
    loss, gap = pair(hidden, memory_pred)
    return loss, gap.cumsum(0)


def detached_gap(hidden, memory_pred):
    diff = hidden - memory_pred
    return diff.pow(2).sum(-1), diff.detach().sum(-1)


class _HalfGap(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, memory_pred):
        ctx.shape = hidden.shape
        return (hidden - memory_pred).sum(-1)

    @staticmethod
    def backward(ctx, g):
        grad = (0.5 * g.unsqueeze(-1)).expand(ctx.shape)  # should be 1
        return grad, -grad


def half_gap_gradient(hidden, memory_pred):
    return (hidden - memory_pred).pow(2).sum(-1), _HalfGap.apply(hidden, memory_pred)
"""


@pytest.fixture(scope="module")
def pair_spec(tmp_path_factory: pytest.TempPathFactory) -> EquationSpec:
    """Two outputs: the squared distance per row (``loss``) and the summed difference (``gap``)."""
    directory = tmp_path_factory.mktemp("pair")
    (directory / "pair_impls.py").write_text(textwrap.dedent(PAIR), encoding="utf-8")
    data = minimal_spec()
    spec = data["specs"][0]
    spec["outputs"] = {"loss": {"shape": ["B"]}, "gap": {"shape": ["B"]}}
    spec["oracle"] = {"expr": {"loss": "sum((hidden - memory_pred)**2, -1)", "gap": "sum(hidden - memory_pred, -1)"}}
    spec["invariants"] = [
        {
            "id": "zero_at_match",
            "kind": "identity",
            "description": "both outputs vanish where the prediction matches",
            "set": {"memory_pred": "hidden"},
            "lhs": "loss + abs(gap)",
            "rhs": "0",
        },
        {
            "id": "rows",
            "kind": "permutation",
            "description": "rows are independent",
            "permute": {"hidden": 0, "memory_pred": 0},
            "output_axis": 0,
        },
    ]
    spec["gradients"] = {"wrt": ["hidden", "memory_pred"]}
    spec["implementations"] = [{"ref": "pair_impls.py:pair"}]
    return load_one(write_spec(directory, data))


PAIR_EXAMPLE = Example({"B": 3, "D": 4}, {}, {"hidden": 1.0, "memory_pred": 1.0}, {}, 7)


def pair_ref(spec: EquationSpec, name: str) -> str:
    return f"{Path(spec.file).parent / 'pair_impls.py'}:{name}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_several_outputs_pass_every_check(pair_spec: EquationSpec, dtype: str) -> None:
    for check in checks_for(pair_spec, dtype):
        m = run_check(pair_spec, pair_ref(pair_spec, "pair"), "cpu", dtype, check, PAIR_EXAMPLE)
        assert m is not None and m.passed, f"{check}: {m.detail}"


PAIR_PLANTED = [
    ("wrong_gap", "oracle", "float64", r"^gap: max \|error\| \S+ > tolerance"),
    ("one_output", "output_contract", "float64", r"returned Tensor; the spec expects a tuple of 2 tensors \(loss, gap\)$"),
    ("float32_gap", "output_contract", "float64", r"^gap: dtype torch.float32 != torch.float64$"),
    ("noisy_gap", "determinism", "float64", r"^gap: two calls differ by up to \S+ \(bitwise equality expected\)$"),
    ("wrong_gap", "invariant:zero_at_match", "float64", None),  # abs() keeps 0 at a match: not caught (see below)
    ("rows_mixed_in_gap", "invariant:rows", "float64", r"^rows are independent: gap: \|lhs − rhs\| \S+ >"),
    ("detached_gap", "gradient", "float64", r"^gap → ∂/∂hidden: max \|error\|"),
    ("half_gap_gradient", "gradient", "float32", r"^gap → ∂/∂hidden: max \|error\|"),
    ("half_gap_gradient", "gradcheck", "float64", r"^gradcheck \(slow mode\) \(outputs 0 = loss, 1 = gap\): .*Jacobian mismatch"),
]


@pytest.mark.parametrize(("name", "check", "dtype", "detail"), PAIR_PLANTED, ids=[f"{p[0]}-{p[1]}" for p in PAIR_PLANTED])
def test_a_wrong_output_fails_and_is_named(
    pair_spec: EquationSpec, name: str, check: str, dtype: str, detail: str | None
) -> None:
    m = run_check(pair_spec, pair_ref(pair_spec, name), "cpu", dtype, check, PAIR_EXAMPLE)
    assert m is not None
    if detail is None:
        assert m.passed, m.detail
    else:
        assert not m.passed and re.search(detail, m.detail, flags=re.DOTALL), m.detail


def test_an_implementation_returning_one_tensor_for_two_outputs_raises_elsewhere(pair_spec: EquationSpec) -> None:
    with pytest.raises(TypeError, match="expects a tuple of 2 tensors"):
        run_check(pair_spec, pair_ref(pair_spec, "one_output"), "cpu", "float64", "oracle", PAIR_EXAMPLE)


# -- derived inputs, params set by invariants, options and diagnoses ---------------------------------
TABLE = """
import torch


def scaled(hidden, memory_pred, table, k):
    return ((hidden - memory_pred) * table).sum(-1) * k


def flipped(hidden, memory_pred, table, k):
    return -scaled(hidden, memory_pred, table, k)


def ignores_k(hidden, memory_pred, table, k):
    return scaled(hidden, memory_pred, table, 1.0)


def stale_table(hidden, memory_pred, table, k):
    return ((hidden - memory_pred) * torch.cos(torch.arange(table.shape[-1], dtype=hidden.dtype))).sum(-1) * k
"""


@pytest.fixture(scope="module")
def table_spec(tmp_path_factory: pytest.TempPathFactory) -> EquationSpec:
    """A derived table cos(d + offset), a param k passed to the implementation, an option ``flip``."""
    directory = tmp_path_factory.mktemp("table")
    (directory / "table_impls.py").write_text(textwrap.dedent(TABLE), encoding="utf-8")
    data = minimal_spec()
    spec = data["specs"][0]
    spec["params"] = {
        "offset": {"min": 0, "max": 100, "integer": True},
        "k": {"values": [1.5, 3.0]},
        "flip": {"values": [False, True], "default": False},
    }
    spec["inputs"]["table"] = {"shape": ["D"], "derive": "cos(arange(D) + offset)"}
    spec["interface"] = {"kind": "function", "args": ["hidden", "memory_pred", "table", "k"]}
    spec["oracle"] = {"expr": "where(flip, -1, 1) * sum((hidden - memory_pred) * table, -1) * k"}
    spec["diagnose"] = [{"when": "not flip", "try": {"flip": True}, "say": "matches the flipped sign instead"}]
    spec["invariants"] = [
        {
            "id": "linear_in_k",
            "kind": "identity",
            "description": "doubling k doubles the output",
            "set": {"k": "2*k"},
            "lhs": "out",
            "rhs": "2*original",
        },
        {
            "id": "table_follows_offset",
            "kind": "identity",
            "description": "moving the offset re-derives the table",
            "set": {"offset": "offset + 1"},
            "lhs": "out",
            "rhs": "where(flip, -1, 1) * sum((hidden - memory_pred) * cos(arange(D) + offset), -1) * k",
        },
    ]
    spec["outputs"] = {"out": {"shape": ["B"]}}
    spec["implementations"] = [{"ref": "table_impls.py:scaled"}, {"ref": "table_impls.py:flipped", "params": {"flip": True}}]
    return load_one(write_spec(directory, data))


TABLE_EXAMPLE = Example({"B": 2, "D": 5}, {"offset": 40, "k": 1.5, "flip": False}, {"hidden": 1.0, "memory_pred": 1.0}, {}, 3)


def table_ref(spec: EquationSpec, name: str) -> str:
    return f"{Path(spec.file).parent / 'table_impls.py'}:{name}"


@pytest.mark.parametrize("check", ["oracle", "invariant:linear_in_k", "invariant:table_follows_offset"])
def test_options_params_and_derived_inputs_reach_the_implementation(table_spec: EquationSpec, check: str) -> None:
    for impl in table_spec.implementations:
        ref = str(Path(table_spec.file).parent / impl.id)
        m = run_check(table_spec, ref, "cpu", "float64", check, TABLE_EXAMPLE)
        assert m is not None and m.passed, f"{impl.id} {check}: {m.detail}"


def test_a_param_set_by_an_invariant_reaches_the_implementation(table_spec: EquationSpec) -> None:
    m = run_check(table_spec, table_ref(table_spec, "ignores_k"), "cpu", "float64", "invariant:linear_in_k", TABLE_EXAMPLE)
    assert m is not None and not m.passed and "doubling k doubles the output" in m.detail


def test_a_derived_input_follows_a_param_set_by_an_invariant(table_spec: EquationSpec) -> None:
    check = "invariant:table_follows_offset"
    m = run_check(table_spec, table_ref(table_spec, "stale_table"), "cpu", "float64", check, TABLE_EXAMPLE)
    zero = dataclasses.replace(TABLE_EXAMPLE, params={**TABLE_EXAMPLE.params, "offset": 0})
    assert m is not None and not m.passed, "an implementation that ignores the table is caught once it moves"
    assert not run_check(table_spec, table_ref(table_spec, "stale_table"), "cpu", "float64", "oracle", TABLE_EXAMPLE).passed
    assert run_check(table_spec, table_ref(table_spec, "stale_table"), "cpu", "float64", "oracle", zero).passed


def test_the_implementation_option_overrides_the_drawn_value(table_spec: EquationSpec) -> None:
    drawn_true = dataclasses.replace(TABLE_EXAMPLE, params={**TABLE_EXAMPLE.params, "flip": True})
    assert run_check(table_spec, table_ref(table_spec, "scaled"), "cpu", "float64", "oracle", drawn_true).passed
    assert run_check(
        table_spec, table_ref(table_spec, "flipped") + "[flip=true]", "cpu", "float64", "oracle", TABLE_EXAMPLE
    ).passed


@pytest.mark.parametrize(
    ("name", "option", "says"), [("flipped", "", True), ("ignores_k", "", False), ("scaled", "[flip=true]", False)]
)
def test_a_diagnosis_is_appended_where_the_alternative_matches(
    table_spec: EquationSpec, name: str, option: str, says: bool
) -> None:
    m = run_check(table_spec, table_ref(table_spec, name) + option, "cpu", "float64", "oracle", TABLE_EXAMPLE)
    assert m is not None and not m.passed and re.match(r"(max )?\|error\|", m.detail)
    assert m.detail.endswith("; matches the flipped sign instead") == says, m.detail


def test_noise_scale_sets_the_noise_floor(table_spec: EquationSpec) -> None:
    oracle = dataclasses.replace(table_spec.oracle, noise_scale={"out": parse("1000 + 0*k")})
    scaled = dataclasses.replace(table_spec, oracle=oracle)
    plain = run_check(table_spec, table_ref(table_spec, "scaled"), "cpu", "float32", "oracle", TABLE_EXAMPLE)
    wide = run_check(scaled, table_ref(table_spec, "scaled"), "cpu", "float32", "oracle", TABLE_EXAMPLE)
    assert wide.tolerance.floor == pytest.approx(8 * 2.0**-23 * 1000) and wide.tolerance.floor > plain.tolerance.floor


def test_noise_scale_applies_to_the_reference_cross_check_too(tmp_path: Path) -> None:
    data = minimal_spec()
    data["specs"][0]["oracle"] = {
        "expr": "sum((hidden - memory_pred)**2, -1)",
        "reference": "surprise",
        "noise_scale": "1000 + 0*hidden",
    }
    spec = load_one(write_spec(tmp_path, data))
    m = check_oracle_agreement(spec, Example({"B": 2, "D": 3}, {}, {"hidden": 1.0, "memory_pred": 1.0}, {}, 4))
    assert m.passed and m.tolerance.floor == pytest.approx(64 * 2.0**-52 * 1000)


# -- float64: the same-precision reference is the oracle itself, so a float32 stand-in sets the baseline ---------

MHA_SMALL = Example({"B": 1, "L": 8, "H": 1, "D": 1}, {"dropout": 0.0}, dict.fromkeys(("x", "Wq", "Wk", "Wv", "Wo"), 0.01), {}, 0)


@pytest.mark.parametrize("check", ["oracle", "gradient"])
def test_float64_baseline_is_the_float32_stand_in_rescaled(check: str) -> None:
    from conformance.checks import Trial

    spec = shipped_specs()["multihead_attention"]
    ref = "implementations.multihead_attention:PaperModule"
    m64 = run_check(spec, ref, "cpu", "float64", check, MHA_SMALL)
    m32 = run_check(spec, ref, "cpu", "float32", check, MHA_SMALL)
    assert m64.passed and m32.passed
    from conformance.tolerance import stand_in_dtype

    def effective(dtype: str) -> str | None:  # where the trial's same-precision reference runs instead
        t = Trial(spec, ref, "cpu", dtype, MHA_SMALL)
        return stand_in_dtype(dtype) if t.stand_in else None

    assert effective("float64") == "float32" and effective("float32") is None
    # not 0 (the float64 reference would be the oracle itself), and about eps64/eps32 of a float32 error
    assert 0 < m64.tolerance.baseline < 1e-6 * m32.tolerance.atol


def test_a_wrong_float64_implementation_still_fails_with_the_stand_in(tmp_path: Path) -> None:
    path = tmp_path / "wrong.py"
    path.write_text(
        "from implementations.multihead_attention import PaperModule\n"
        "class M(PaperModule):\n"
        "    def forward(self, x, mask=None):\n"
        "        return super().forward(x, mask) * (1 + 2**-40)\n"
    )
    spec = shipped_specs()["multihead_attention"]
    wrong = f"{path}:M"
    m = run_check(spec.with_implementations([wrong]), wrong, "cpu", "float64", "oracle", EXAMPLES["multihead_attention"][0])
    assert not m.passed  # 2⁻⁴⁰ relative is ~4000 float64 ulps: far above the rescaled float32 reference error


def test_the_noise_floor_at_a_declared_noise_scale_is_the_compute_dtypes() -> None:
    """rope_cache at float16 computes in float32 (oracle.compute_dtype): the floor at the angle's scale is
    8 × eps(float32) × scale, the result's own rounding 8 × eps(float16) × |result| — whichever is larger."""
    from conformance import dtype_helpers as dh
    from conformance.checks import Trial, check_oracle, noise_scales

    spec = shipped_specs()["rope_cache"]
    example = Example({"L": 4096, "M": 4096, "D": 64}, {"base": 10000}, {"x": 1e-3}, {}, 0)
    t = Trial(spec, "implementations.rope:RotaryEmbedding", "cpu", "float16", example)
    m = check_oracle(t)
    (scale, _) = noise_scales(spec, t.rounded(t.env64))
    expected = t.oracle(t.rounded(t.env64))[0]
    # per element: the angle's own scale there, in float32's precision, or the result's own rounding
    floors = 8 * np.maximum(dh.eps("float32") * np.broadcast_to(scale, expected.shape), dh.eps("float16") * np.abs(expected))
    assert m.passed and m.tolerance.per_element
    assert floors.min() <= m.tolerance.floor * (1 + 1e-6) and m.tolerance.floor <= floors.max() * (1 + 1e-6)
    assert floors.max() < 0.1 < 8 * dh.eps("float16") * scale.max()  # at float16's eps the floor would exceed |cos| ≤ 1
    assert floors.min() < floors.max() / 100  # the first positions' floors are not the last angle's


@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16", "float16"])
def test_a_random_table_fails_at_the_longest_sequence_at_every_dtype(dtype: str) -> None:
    """No vacuous tolerance: at m = 4096 the float16 floor at float16's epsilon was 3.6, above |cos − cos'| ≤ 2."""
    from conformance.checks import Trial, check_oracle

    spec = shipped_specs()["rope_cache"]
    ref = f"{Path(__file__).parent / 'meta_tests' / 'defects' / 'rope_defects.py'}:RandomTable"
    example = Example({"L": 4096, "M": 4096, "D": 64}, {"base": 10000}, {"x": 1e-3}, {}, 0)
    m = check_oracle(Trial(spec.with_implementations([ref]), ref, "cpu", dtype, example))
    assert not m.passed and m.tolerance.atol < 0.2 < m.max_abs_err


def test_a_float64_failure_at_float32_precision_is_named(tmp_path: Path) -> None:
    """An implementation that rounds through float32 fails at float64 and the failure says "computed in float32?";
    one wrong by more than float32's rounding gets no such note."""
    spec = shipped_specs()["surprise"]
    (tmp_path / "impls.py").write_text(textwrap.dedent("""
        def in_float32(hidden, memory_pred):
            return ((hidden.float() - memory_pred.float()) ** 2).sum(-1).double()

        def a_mean(hidden, memory_pred):
            return ((hidden - memory_pred) ** 2).mean(-1)
    """))
    example = Example({"B": 2, "L": 3, "D": 8}, {}, {"hidden": 1.0, "memory_pred": 1.0}, {}, 3)
    low = run_check(spec, f"{tmp_path / 'impls.py'}:in_float32", "cpu", "float64", "oracle", example)
    assert not low.passed and low.detail.endswith("computed in float32?")
    wrong = run_check(spec, f"{tmp_path / 'impls.py'}:a_mean", "cpu", "float64", "oracle", example)
    assert not wrong.passed and "float32" not in wrong.detail
    assert run_check(spec, f"{tmp_path / 'impls.py'}:in_float32", "cpu", "float32", "oracle", example).passed
