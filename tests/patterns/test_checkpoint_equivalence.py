"""Unit tests for the pattern kind ``checkpoint_equivalence`` (conformance/patterns/checkpoint_equivalence.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from torch import nn
from torch.utils.checkpoint import checkpoint

from conformance.checks import CheckFailure
from conformance.patterns import kinds
from conformance.patterns.checkpoint_equivalence import KIND, validate
from conformance.patterns.helpers.checkpoint_stacks import build_layers, one_intra_op_thread
from conformance.patterns.helpers.stack_plans import LayerPlan, StackPlan
from conformance.patterns.runs.checkpoint_equivalence import (
    check_equivalence,
    check_saved_memory,
    measure_saved_bytes,
    simpler_plans,
    stack_plans,
)
from conformance.runner import run_case
from conformance.selection import Case, build_cases
from conformance.spec import load_specs
from implementations.checkpointing import CheckpointedModule
from tests.patterns.kind_helpers import dotted, rejected, validated
from tests.spec_helpers import load_error, pattern_case, pattern_spec, write_spec


@pytest.fixture(autouse=True)
def _one_thread():
    with one_intra_op_thread():  # as run() does: tiny tensors
        yield


BOUNDED = settings(max_examples=15, derandomize=True, deadline=None, database=None)
MODES = ["train", "eval"]


def _plan(
    *layers: LayerPlan, k: int = 2, batch: int = 3, requires_grad: bool = True, seed: int = 7, scheme: str = "segments"
) -> StackPlan:
    """A stack run under ``scheme`` (the segments scheme of ``implementations.checkpointing`` unless given)."""
    return StackPlan(tuple(layers), k, batch, requires_grad, seed, scheme)


def _linear(i: int, o: int, act: str = "relu") -> LayerPlan:
    return LayerPlan("linear", i, o, act)


MIXED = _plan(
    _linear(3, 4, "gelu"),
    LayerPlan("dropout", 4, 4, p=0.5),
    LayerPlan("batchnorm", 4, 4),
    LayerPlan("residual", 4, 4, "tanh"),
    LayerPlan("layernorm", 4, 4),
    _linear(4, 2, "silu"),
)


class PlainLoop(nn.Module):
    """The plain stack as a module: right results, nothing checkpointed."""

    def __init__(self, layers: nn.ModuleList, checkpoint_every: int = 2) -> None:
        super().__init__()
        self.layers = layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class FreshDropout(CheckpointedModule):
    """Correct segments, but the recomputation draws new dropout masks."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        for start in range(0, len(self.layers), self.checkpoint_every):
            end = min(start + self.checkpoint_every, len(self.layers))
            x = checkpoint(self._segment(start, end), x, use_reentrant=False, preserve_rng_state=False)
        return x


# --- options ----------------------------------------------------------------------------------


def test_defaults_are_filled_in() -> None:
    options = validated(validate, {})
    assert options["property"] == "equivalence"
    assert options["checkpoint_every"] == [1, 2, 3, 8]
    assert options["layers"] == ["linear", "layernorm", "dropout", "residual", "batchnorm"]
    assert options["modes"] == ["train", "eval"]
    assert KIND.optional == frozenset(options) and not KIND.required


@pytest.mark.parametrize(
    "options, key, message",
    [
        ({"property": "speed"}, ("property",), "expected one of equivalence, saved_memory"),
        ({"checkpoint_every": []}, ("checkpoint_every",), "non-empty list of positive integers"),
        ({"checkpoint_every": [2, 0]}, ("checkpoint_every",), "non-empty list of positive integers"),
        ({"checkpoint_every": [True]}, ("checkpoint_every",), "non-empty list of positive integers"),
        ({"depth": {"min": 3, "max": 2}}, ("depth",), "1 <= min <= max <= 32"),
        ({"depth": {"min": 1}}, ("depth",), "expected {min, max}"),
        ({"width": {"min": 1, "max": 1000}}, ("width",), "1 <= min <= max <= 256"),
        ({"batch": {"min": 1, "max": 2}}, ("batch", "min"), "at least 2 with batchnorm"),
        ({"layers": ["linear", "conv"]}, ("layers",), "distinct values from linear, layernorm"),
        ({"layers": ["linear", "linear"]}, ("layers",), "distinct values"),
        ({"modes": []}, ("modes",), "non-empty list"),
        ({"dropout": {"min": 0.0, "max": 0.5}}, ("dropout",), "0 < min <= max < 1"),
        ({"dropout": {"min": 0.5, "max": 1.0}}, ("dropout",), "0 < min <= max < 1"),
        ({"dropout": 0.5}, ("dropout",), "0 < min <= max < 1"),
    ],
)
def test_bad_options_name_the_key(options: dict, key: tuple, message: str) -> None:
    path, found = rejected(validate, options)
    assert path == dotted(key) and message in found


def test_batch_of_one_is_allowed_without_batchnorm_in_training() -> None:
    assert validated(validate, {"batch": {"min": 1, "max": 2}, "layers": ["linear"]})["batch"] == {"min": 1, "max": 2}
    assert validated(validate, {"batch": {"min": 1, "max": 2}, "modes": ["eval"]})["batch"]["min"] == 1


def _spec_with(pattern: dict) -> dict:
    return pattern_spec("checkpoint_equivalence", pattern, "implementations.checkpointing:CheckpointedModule", "ckpt")


def test_bad_option_fails_on_load_naming_the_key(tmp_path: Path) -> None:
    file = write_spec(tmp_path, _spec_with({"dropout": {"min": 0, "max": 0.5}}))
    message = str(load_error(file))
    assert "specs[0].patterns[0].dropout" in message and "dropout must drop" in message
    file = write_spec(tmp_path, _spec_with({"batch": {"min": 1, "max": 4}}), name="batch.yaml")
    assert "specs[0].patterns[0].batch.min" in str(load_error(file))
    file = write_spec(tmp_path, _spec_with({"segments": 3}), name="unknown.yaml")
    assert "segments" in str(load_error(file))


def test_shipped_spec_generates_every_check_on_its_devices_and_dtypes() -> None:
    spec = load_specs()["checkpointing"]
    assert [p.check for p in spec.patterns] == [
        "checkpoint_equivalence:plain_stack",
        "checkpoint_equivalence:saved_activations",
        "checkpoint_equivalence:compiled_cpu",
        "checkpoint_equivalence:compiled_cuda",
    ]
    cases = [c for c in build_cases({"checkpointing": spec}, {})]
    assert len(cases) == 2 * 4 * 2 + 1 + 4  # eager checks × dtypes × devices; compiled: CPU float32, CUDA every dtype
    assert {c.device for c in cases} == {"cpu", "cuda"}


# --- drawn stacks -----------------------------------------------------------------------------


_SMALL = {"depth": {"min": 2, "max": 4}, "width": {"min": 2, "max": 3}, "checkpoint_every": [3]}


@BOUNDED
@given(plan=stack_plans(validated(validate, _SMALL)))
def test_drawn_stacks_respect_the_options_and_chain_widths(plan: StackPlan) -> None:
    assert 2 <= plan.depth <= 4 and plan.checkpoint_every == 3 and 2 <= plan.batch <= 4
    for before, after in zip(plan.layers, plan.layers[1:]):
        assert before.width_out == after.width_in
    for layer in plan.layers:
        assert 2 <= layer.width_out <= 3
        assert layer.kind == "linear" or layer.width_in == layer.width_out
        assert (layer.p is not None) == (layer.kind == "dropout") and (layer.p is None or 0.1 <= layer.p <= 0.9)


_WIDE = {"depth": {"min": 2, "max": 6}, "width": {"min": 1, "max": 4}, "checkpoint_every": [1, 2, 3, 8]}


@BOUNDED
@given(plan=stack_plans(validated(validate, _WIDE)))
def test_simpler_stacks_stay_within_the_options_and_chain_widths(plan: StackPlan) -> None:
    options = validated(validate, _WIDE)
    for candidate in simpler_plans(plan, options):
        assert candidate != plan and candidate.seed == plan.seed and candidate.scheme == plan.scheme
        assert options["depth"]["min"] <= candidate.depth <= plan.depth and 2 <= candidate.batch <= plan.batch
        assert candidate.checkpoint_every in options["checkpoint_every"]
        for before, after in zip(candidate.layers, candidate.layers[1:]):
            assert before.width_out == after.width_in


def test_describe_names_layers_segments_and_input() -> None:
    text = MIXED.describe()
    assert "Linear(3→4)+gelu · Dropout(p=0.5) · BatchNorm1d(4) · Residual(x + tanh(Linear(4→4)(x)))" in text
    assert "(scheme segments: ckpt[0, 2) ckpt[2, 4) ckpt[4, 6))" in text and "x: (3, 3), requires_grad=True; seed 7" in text
    assert [r.describe() for r in _plan(_linear(1, 1), k=8).regions()] == ["ckpt[0, 1)"]


def test_built_layers_are_identical_copies_with_drawn_values() -> None:
    a, b = build_layers(MIXED, "cpu", "float64"), build_layers(MIXED, "cpu", "float64")
    assert a is not b
    for (name, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(p, q), name
    norm = a[2]
    assert not torch.equal(norm.weight, torch.ones_like(norm.weight))  # not the default initialisation
    assert not torch.equal(norm.running_var, torch.ones_like(norm.running_var))
    assert a[0][0].weight.dtype == torch.float64


def test_building_leaves_the_global_rng_alone() -> None:
    state = torch.get_rng_state()
    build_layers(MIXED, "cpu", "float32")
    assert torch.equal(state, torch.get_rng_state())


# --- equivalence ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16", "float16"])
@pytest.mark.parametrize("k", [1, 2, 3, 8])
def test_correct_module_is_bitwise_equal(dtype: str, k: int) -> None:
    plan = _plan(*MIXED.layers, k=k, requires_grad=k % 2 == 0)
    m = check_equivalence(CheckpointedModule, plan, "cpu", dtype, MODES)
    assert m.passed and m.max_abs_err == 0.0 and m.tolerance.atol == 0.0, m.detail


def test_fresh_dropout_masks_change_only_the_gradients() -> None:
    m = check_equivalence(FreshDropout, MIXED, "cpu", "float64", MODES)
    assert not m.passed
    assert "train: gradient of layers.0.0.weight" in m.detail
    assert "train: output," not in m.detail and "eval:" not in m.detail  # the first pass's mask is the plain one
    assert "tolerance 0 = 2 × the plain stack's own run-to-run difference 0" in m.detail
    assert "stack: Linear(3→4)+gelu" in m.detail


def test_missing_gradients_are_reported_as_missing() -> None:
    class Detached(CheckpointedModule):
        def forward(self, x):
            return super().forward(x.detach())

    m = check_equivalence(Detached, _plan(_linear(2, 2), _linear(2, 2), k=1, requires_grad=True), "cpu", "float64", MODES)
    assert not m.passed and "train: gradient of the input missing (None)" in m.detail
    assert "eval: gradient of the input missing (None)" in m.detail


def test_wrong_output_shape_fails_without_crashing() -> None:
    class Transposed(CheckpointedModule):
        def forward(self, x):
            return super().forward(x).t()

    m = check_equivalence(Transposed, _plan(_linear(2, 3), k=1, batch=2), "cpu", "float64", ["eval"])
    assert not m.passed and math.isinf(m.max_abs_err) and "eval: output" in m.detail


def test_a_nondeterministic_plain_stack_widens_the_bound_by_its_own_repeat() -> None:
    from conformance.patterns.runs.checkpoint_equivalence import _diff

    d = 2.0**-20  # dyadic: the differences below are exact
    expected, repeat = torch.tensor([1.0, 2.0], dtype=torch.float64), torch.tensor([1.0, 2.0 + d], dtype=torch.float64)
    within = _diff("g", torch.tensor([1.0, 2.0 - 2 * d], dtype=torch.float64), expected, repeat)
    assert within.passed and within.atol == 2 * d and within.baseline == d
    assert not _diff("g", torch.tensor([1.0, 2.0 - 3 * d], dtype=torch.float64), expected, repeat).passed
    assert not _diff("g", torch.tensor([1.0, 2.0 + 2.0**-50], dtype=torch.float64), expected, expected).passed  # bitwise
    nan = torch.tensor([math.nan, 1.0])
    assert _diff("g", nan, nan, nan).passed and _diff("g", nan, nan, nan).atol == 0  # NaN where the plain stack has NaN
    assert not _diff("g", torch.tensor([0.0, 1.0]), nan, nan).passed


# --- saved memory -----------------------------------------------------------------------------


def test_saved_bytes_of_linear_stack_follow_the_segments() -> None:
    # Four Linear(4→4)+ReLU, batch 2, float32 (32 bytes per activation); x_i is the input of layer i.
    plan = _plan(*[_linear(4, 4)] * 4, k=2, batch=2)
    b = measure_saved_bytes(CheckpointedModule, plan, "cpu", "float32", "train")
    assert b.expected == 2 * 32  # segment inputs x_0 and x_2
    assert b.module == b.expected
    assert b.plain == 5 * 32  # each Linear saves its input x_i, each ReLU its output x_{i+1}: x_0 … x_4
    evaluated = measure_saved_bytes(CheckpointedModule, plan, "cpu", "float32", "eval")
    assert evaluated.module == evaluated.plain == 5 * 32 and evaluated.expected is None


def test_memory_check_catches_a_plain_loop_and_names_both_relations() -> None:
    plan = _plan(*[_linear(4, 4)] * 4, k=2, batch=2)
    m = check_saved_memory(PlainLoop, plan, "cpu", "float32", MODES)
    assert not m.passed
    assert "train: saved 160 bytes for backward, expected 64" in m.detail
    assert m.max_abs_err == 96 and m.max_rel_err == 96 / 64
    assert "not strictly less than the plain stack's 160" in m.detail
    assert check_saved_memory(CheckpointedModule, plan, "cpu", "float32", MODES).passed


def test_strict_saving_is_not_claimed_with_a_bare_dropout() -> None:
    from conformance.patterns.runs.checkpoint_equivalence import _strictly_less_expected

    assert _strictly_less_expected(_plan(*[_linear(2, 2)] * 4, k=2))
    assert _strictly_less_expected(_plan(*[_linear(2, 2)] * 3, k=2))  # [0, 2) drops x_1
    assert _strictly_less_expected(_plan(_linear(2, 2), k=1, scheme="per_layer"))  # the last layer drops its output
    assert not _strictly_less_expected(_plan(*[_linear(2, 2)] * 2, k=2, scheme="per_layer"))  # ckpt[0, 1) plain[1, 2)
    assert not _strictly_less_expected(_plan(*[_linear(2, 2)] * 3, k=8, scheme="sequential"))  # nothing checkpointed
    assert not _strictly_less_expected(_plan(_linear(2, 2), LayerPlan("dropout", 2, 2, p=0.5), k=1))


def test_totals_accumulate_train_mode_bytes() -> None:
    totals: dict[str, int] = {}
    plan = _plan(*[_linear(4, 4)] * 4, k=2, batch=2)
    check_saved_memory(CheckpointedModule, plan, "cpu", "float32", MODES, totals=totals)
    check_saved_memory(CheckpointedModule, plan, "cpu", "float32", MODES, totals=totals)
    assert totals == {"plain": 320, "module": 128}


# --- through the runner -----------------------------------------------------------------------


def _case(tmp_path: Path, ref: str, pattern: dict, scheme: str | None = None) -> Case:
    """The check ``checkpoint_equivalence:p`` of a spec declaring the option ``scheme``; ``ref`` fixes ``scheme`` if given."""
    if scheme is None:
        return pattern_case(tmp_path, "checkpoint_equivalence", pattern, ref, "ckpt")
    data = pattern_spec("checkpoint_equivalence", pattern, ref, "ckpt")
    data["specs"][0]["params"] = {"scheme": {"values": ["per_layer", "segments", "sequential"], "default": "per_layer"}}
    data["specs"][0]["implementations"] = [{"ref": ref, "params": {"scheme": scheme}}]
    spec = load_specs([write_spec(tmp_path, data, name="ckpt.yaml")], default=False)["ckpt"]
    impl = spec.implementations[0].id
    return Case(spec.for_implementation(impl), impl, "cpu", "float32", "checkpoint_equivalence:p")


def test_runner_reports_a_passing_row_with_the_measured_bytes(tmp_path: Path) -> None:
    rows: list[dict] = []
    case = _case(tmp_path, "implementations.checkpointing:CheckpointedModule", {"property": "saved_memory"}, "segments")
    run_case(case, rows.append, settings(max_examples=8, derandomize=True, deadline=None, database=None))
    row = rows[-1]
    assert row["examples"] == 8 and row["max_abs_err"] == 0.0 and row["tolerance"] == 0.0
    assert "saved bytes equal the derived relation" in row["detail"] and "checkpointed" in row["detail"]


def test_runner_turns_a_mismatch_into_a_check_failure(tmp_path: Path) -> None:
    rows: list[dict] = []
    ref = f"{Path(__file__)}:FreshDropout"
    case = _case(tmp_path, ref, {"layers": ["linear", "dropout"], "modes": ["train"], "dropout": {"min": 0.5, "max": 0.5}})
    with pytest.raises(CheckFailure, match="differ from the plain stack"):
        run_case(case, rows.append, settings(max_examples=20, derandomize=True, deadline=None, database=None))
    assert "Dropout(p=0.5)" in rows[-1]["detail"] and rows[-1]["examples"] >= 1
    example = rows[-1]["falsifying_example"]
    assert any(layer["kind"] == "dropout" for layer in example["layers"]) and "seed" in example
    snippet = rows[-1]["repro"]
    assert "reproduce('ckpt'," in snippet and "check='checkpoint_equivalence:p'" in snippet
    with pytest.raises(CheckFailure, match="differ from the plain stack"):
        exec(snippet, {})  # the snippet runs and finds the same failure


def test_one_intra_op_thread_restores_the_thread_count() -> None:
    threads = torch.get_num_threads()
    with pytest.raises(RuntimeError), one_intra_op_thread():
        assert torch.get_num_threads() == 1
        raise RuntimeError
    assert torch.get_num_threads() == threads


def test_kind_is_discovered() -> None:
    assert kinds()["checkpoint_equivalence"] is KIND
    assert KIND.devices == ("cpu", "cuda") and KIND.dtypes == ("float64", "float32", "bfloat16", "float16")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_peak_is_reported() -> None:
    from conformance.patterns.runs.checkpoint_equivalence import cuda_peak_bytes

    text = cuda_peak_bytes(CheckpointedModule, "cuda", "float32")
    assert "plain" in text and "checkpointed" in text and "not asserted" in text
