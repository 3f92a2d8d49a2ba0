"""conformance.checks: which checks exist, and that each passes our implementations and fails a wrong one.

Every check runs once on a fixed example (no Hypothesis): our implementations pass all of them at
every dtype; tiny wrong implementations, written to a temporary file and referenced by path, fail
the check meant to catch them with a detail that says what was measured.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from conformance.checks import CheckFailure, check_oracle_agreement, checks_for, run_check, source_line
from conformance.dtype_helpers import DTYPES
from conformance.evaluate import NumpyBackend, evaluate
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
}
SURPRISE_EXAMPLE = EXAMPLES["surprise"][0]


def example_for(spec: EquationSpec, check: str) -> Example:
    """The first fixed example that satisfies the check's ``when`` (invariants only)."""
    inv = next((i for i in spec.invariants if f"invariant:{i.id}" == check), None)
    for ex in EXAMPLES[spec.id]:
        if inv is None or inv.when is None or bool(evaluate(inv.when, {**ex.sizes, **ex.params}, NumpyBackend())):
            return ex
    raise AssertionError(f"no fixed example satisfies {check}")


# -- checks_for ------------------------------------------------------------------------------------
def test_checks_for_attention_float64() -> None:
    spec = shipped_specs()["attention"]
    invariants = [f"invariant:{inv.id}" for inv in spec.invariants]
    assert len(invariants) == 7
    assert checks_for(spec, "float64") == ["oracle", "output_contract", "determinism", *invariants, "gradient", "gradcheck"]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_gradcheck_only_at_float64(dtype: str) -> None:
    for spec in shipped_specs().values():
        checks = checks_for(spec, dtype)
        assert "gradient" in checks
        assert "gradcheck" not in checks and "gradgradcheck" not in checks


def test_gradgradcheck_only_with_order_two() -> None:
    specs = shipped_specs()
    assert specs["surprise"].grad_order == 2 and checks_for(specs["surprise"], "float64")[-2:] == ["gradcheck", "gradgradcheck"]
    for spec_id in ("attention", "rmsnorm"):
        assert specs[spec_id].grad_order == 1 and "gradgradcheck" not in checks_for(specs[spec_id], "float64")


def test_gradient_check_needs_an_expression(tmp_path: Path) -> None:
    data = minimal_spec()
    data["specs"][0]["oracle"] = {"reference": "surprise"}
    data["specs"][0]["gradients"] = {"wrt": ["hidden"], "order": 2}
    spec = load_one(write_spec(tmp_path, data))
    assert checks_for(spec, "float64") == ["oracle", "output_contract", "determinism", "gradcheck", "gradgradcheck"]
    assert checks_for(spec, "float32") == ["oracle", "output_contract", "determinism"]


def test_no_gradient_checks_without_gradients(tmp_path: Path) -> None:
    spec = load_one(write_spec(tmp_path, minimal_spec()))
    assert checks_for(spec, "float64") == ["oracle", "output_contract", "determinism"]


# -- source_line -----------------------------------------------------------------------------------
def spec_file_line(spec: EquationSpec, line: int) -> str:
    return Path(spec.file).read_text(encoding="utf-8").splitlines()[line - 1]


@pytest.mark.parametrize("spec_id", ["attention", "rmsnorm", "surprise"])
def test_source_line_points_at_the_invariant_in_the_yaml(spec_id: str) -> None:
    spec = shipped_specs()[spec_id]
    for inv in spec.invariants:
        line = spec_file_line(spec, source_line(spec, f"invariant:{inv.id}"))
        assert re.fullmatch(rf"\s*- id: {inv.id}", line), line


@pytest.mark.parametrize("spec_id", ["attention", "rmsnorm", "surprise"])
def test_source_line_of_oracle_checks_and_of_the_rest(spec_id: str) -> None:
    spec = shipped_specs()[spec_id]
    for check in ("oracle", "oracle_agreement", "gradient"):
        assert spec_file_line(spec, source_line(spec, check)).strip() == "oracle:"
    for check in ("output_contract", "determinism", "gradcheck"):
        assert spec_file_line(spec, source_line(spec, check)).strip() == f"- id: {spec_id}"


# -- run_check on our implementations --------------------------------------------------------------
def our_cases() -> list[tuple[str, str, str, str]]:
    return [
        (spec.id, impl.ref, dtype, check)
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
