"""Unit tests for the ``compiled`` property of ``checkpoint_equivalence`` (conformance/patterns/checkpoint_compiled.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import settings

from conformance.checks import CheckFailure
from conformance.model import ToleranceRule
from conformance.patterns.checkpoint_equivalence import validate
from conformance.patterns.helpers.checkpoint_stacks import one_intra_op_thread
from conformance.patterns.helpers.stack_plans import LayerPlan, StackPlan
from conformance.patterns.runs.checkpoint_compiled import check_compiled, compiled_plans
from conformance.runner import run_case
from conformance.selection import Case
from implementations.checkpointing import CheckpointedModule
from tests.patterns.kind_helpers import rejected, validated
from tests.spec_helpers import load_error, pattern_case, pattern_spec, write_spec

MODES = ["train", "eval"]
SMALL = StackPlan(
    (LayerPlan("linear", 4, 4, "tanh"), LayerPlan("batchnorm", 4, 4), LayerPlan("layernorm", 4, 4)),
    checkpoint_every=2,
    batch=3,
    input_requires_grad=True,
    seed=0,
)


@pytest.fixture(autouse=True)
def _one_thread():
    with one_intra_op_thread():  # as run() does: tiny tensors
        yield


class RoundsWhenCompiled(CheckpointedModule):
    """Correct in eager mode; compiled, the output is quantised to multiples of 2⁻⁶."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        return torch.round(y * 64) / 64 if torch.compiler.is_compiling() else y


class DropsGradientWhenCompiled(CheckpointedModule):
    """Correct in eager mode; compiled, the first layer's output is detached (its parameters get no gradient)."""

    def _segment(self, start: int, end: int):
        plain = super()._segment(start, end)

        def run(h: torch.Tensor) -> torch.Tensor:
            out = plain(h)
            return out.detach() if torch.compiler.is_compiling() and start == 0 else out

        return run


def _spec(pattern: dict, ref: str = "implementations.checkpointing:CheckpointedModule") -> dict:
    return pattern_spec("checkpoint_equivalence", pattern, ref, "ckpt")


# --- options and plans ------------------------------------------------------------------------


def test_dropout_is_refused_naming_the_key(tmp_path: Path) -> None:
    path, message = rejected(validate, {"property": "compiled"})
    assert path == "layers" and "must not include dropout" in message  # the default layer kinds include dropout
    file = write_spec(tmp_path, _spec({"property": "compiled"}))
    message = str(load_error(file))
    assert "specs[0].patterns[0].layers" in message and "another random stream" in message


def test_one_fixed_stack_per_checkpoint_every() -> None:
    options = validated(validate,
        {
            "property": "compiled",
            "checkpoint_every": [1, 3],
            "depth": {"min": 1, "max": 5},
            "width": {"min": 2, "max": 7},
            "batch": {"min": 2, "max": 4},
            "layers": ["residual", "batchnorm"],
        }
    )
    plans = compiled_plans(options)
    assert [p.checkpoint_every for p in plans] == [1, 3]
    for plan in plans:
        assert [layer.kind for layer in plan.layers] == ["residual", "batchnorm"] * 2 + ["residual"]
        assert {layer.width_in for layer in plan.layers} == {7} and plan.batch == 4 and plan.input_requires_grad
        assert all(layer.activation for layer in plan.layers if layer.kind == "residual")
    assert compiled_plans(options) == plans  # fixed, not drawn


# --- the check ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_correct_module_passes_within_the_derived_bound(dtype: str) -> None:
    m = check_compiled(CheckpointedModule, SMALL, "cpu", dtype, MODES, rule=ToleranceRule())
    assert m.passed, m.detail
    assert m.tolerance is not None and m.tolerance.baseline is not None and m.tolerance.baseline > 0
    assert m.max_abs_err <= m.tolerance.atol


def test_compiled_only_rounding_is_caught_and_named() -> None:
    m = check_compiled(RoundsWhenCompiled, SMALL, "cpu", "float32", MODES, rule=ToleranceRule())
    assert not m.passed and m.max_abs_err > 1e-4
    assert m.detail.startswith(("train: ", "eval: ")) and "stack: " in m.detail  # names the result that broke


def test_compiled_only_missing_gradient_is_reported_as_missing_with_a_bound() -> None:
    try:
        m = check_compiled(DropsGradientWhenCompiled, SMALL, "cpu", "float32", ["train"], rule=ToleranceRule())
        assert not m.passed and "missing (None)" in m.detail
    finally:
        torch._dynamo.reset()  # leave no frames marked eager for later tests
    assert m.tolerance is not None  # the report row carries the bound it broke


# --- through the runner -----------------------------------------------------------------------


def _case(tmp_path: Path, ref: str) -> Case:
    pattern = {
        "property": "compiled",
        "checkpoint_every": [2],
        "depth": {"min": 3, "max": 3},
        "width": {"min": 4, "max": 4},
        "batch": {"min": 3, "max": 3},
        "layers": ["linear", "batchnorm", "layernorm"],
    }
    return pattern_case(tmp_path, "checkpoint_equivalence", pattern, ref, "ckpt")


def test_runner_turns_a_compiled_mismatch_into_a_failure_with_a_working_repro(tmp_path: Path) -> None:
    rows: list[dict] = []
    case = _case(tmp_path, f"{Path(__file__)}:RoundsWhenCompiled")
    with pytest.raises(CheckFailure):
        run_case(case, rows.append, settings(max_examples=5, derandomize=True, deadline=None, database=None))
    row = rows[-1]
    assert row["examples"] == 1 and row["tolerance"] and row["tolerance_basis"]
    assert [layer["kind"] for layer in row["falsifying_example"]["layers"]] == ["linear", "batchnorm", "layernorm"]
    with pytest.raises(CheckFailure):
        exec(row["repro"], {})  # the snippet runs and finds the same failure


def test_a_compiled_only_defect_is_caught_after_dynamo_gave_up_on_the_class_elsewhere() -> None:
    """Past its recompile limit Dynamo runs a code object eagerly for the rest of the process; a check that
    reused that state would compare eager with eager. Each check compiles from an empty cache instead."""
    from implementations.checkpointing import CheckpointedModule

    with torch._dynamo.config.patch(recompile_limit=1):
        for width in (2, 3, 4):  # the second width already exceeds the limit: Dynamo marks the frames eager
            module = torch.compile(CheckpointedModule(torch.nn.ModuleList([torch.nn.Linear(width, width)]), 1))
            module(torch.randn(3, width)).sum().backward()
    try:
        m = check_compiled(DropsGradientWhenCompiled, SMALL, "cpu", "float32", ["train"], rule=ToleranceRule())
        assert not m.passed and "missing (None)" in m.detail
    finally:
        torch._dynamo.reset()  # leave no frames marked eager for later tests
