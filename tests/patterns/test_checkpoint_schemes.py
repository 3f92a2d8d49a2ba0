"""The checkpointing scheme as a declared implementation option (``scheme`` of spec ``checkpointing``).

The guide's class (verbatim), a stack built on ``torch.utils.checkpoint.checkpoint_sequential`` and
``implementations.checkpointing`` each pass the shipped spec's eager checks under the scheme they
implement and fail ``saved_activations`` under another. :func:`regions` is checked against what torch
and the guide actually recompute (which layers run twice in a backward). Planted defects per scheme:
``tests/meta_tests/tables/checkpointing.py``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hypothesis import settings
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint_sequential

from conformance.checks import CheckFailure
from conformance.patterns import PatternContext
from conformance.patterns.helpers.checkpoint_stacks import one_intra_op_thread
from conformance.patterns.helpers.stack_plans import SCHEMES, regions
from conformance.registry import PATTERN_KINDS
from conformance.runner import run_case
from conformance.selection import Case
from conformance.spec import load_specs
from tests.spec_helpers import load_error, pattern_spec, write_spec

FEW = settings(max_examples=20, derandomize=True, deadline=None, database=None)
EAGER = ("checkpoint_equivalence:plain_stack", "checkpoint_equivalence:saved_activations")
HERE = Path(__file__)


class CheckpointedModule(nn.Module):
    """Module with gradient checkpointing for memory efficiency."""

    def __init__(self, layers: nn.ModuleList, checkpoint_every: int = 2):
        super().__init__()
        self.layers = layers
        self.checkpoint_every = checkpoint_every

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            if self.training and i % self.checkpoint_every == 0:
                # Checkpoint this layer
                x = torch.utils.checkpoint.checkpoint(
                    layer,
                    x,
                    use_reentrant=False,
                )
            else:
                x = layer(x)
        return x


class SequentialCheckpointed(nn.Module):
    """``checkpoint_sequential`` with the stack's ⌈n/k⌉ segments in training, the plain loop otherwise."""

    def __init__(self, layers: nn.ModuleList, checkpoint_every: int = 2) -> None:
        super().__init__()
        self.layers = layers
        self.checkpoint_every = checkpoint_every

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and torch.is_grad_enabled()):
            for layer in self.layers:
                x = layer(x)
            return x
        segments = math.ceil(len(self.layers) / self.checkpoint_every)
        return checkpoint_sequential(self.layers, segments, x, use_reentrant=False)


GUIDE = f"{HERE}:CheckpointedModule"
SEQUENTIAL = f"{HERE}:SequentialCheckpointed[scheme='sequential']"
SHIPPED = "implementations.checkpointing:CheckpointedModule[scheme='segments']"


def _run(implementation: str, check: str) -> object:
    """The shipped spec's ``check`` on ``implementation`` (an id: its scheme in brackets, else the default)."""
    spec = load_specs()["checkpointing"].with_implementations([implementation])
    entry = next(p for p in spec.patterns if p.check == check)
    ctx = PatternContext(spec.for_implementation(implementation), implementation, "cpu", "float32", entry.options, FEW)
    return PATTERN_KINDS[entry.kind].run(ctx)


@pytest.mark.parametrize("check", EAGER)
@pytest.mark.parametrize("implementation", [GUIDE, SEQUENTIAL, SHIPPED], ids=["guide", "sequential", "shipped"])
def test_each_scheme_passes_its_implementation(implementation: str, check: str) -> None:
    m = _run(implementation, check)
    assert m.passed and m.examples == 20, m.detail


@pytest.mark.parametrize(
    ("implementation", "scheme"),
    [
        (GUIDE + "[scheme='segments']", "segments"),
        (f"{HERE}:SequentialCheckpointed", "per_layer"),
        ("implementations.checkpointing:CheckpointedModule", "per_layer"),
        ("implementations.checkpointing:CheckpointedModule[scheme='sequential']", "sequential"),
    ],
    ids=["guide-as-segments", "sequential-as-per_layer", "segments-as-per_layer", "segments-as-sequential"],
)
def test_another_scheme_than_the_declared_one_fails_saved_activations(implementation: str, scheme: str) -> None:
    m = _run(implementation, "checkpoint_equivalence:saved_activations")
    assert not m.passed and f"= what the {scheme} scheme keeps (checkpointed regions' inputs" in m.detail, m.detail
    assert f"(scheme {scheme}: " in m.detail  # the stack says which layers the scheme checkpoints


def test_a_failing_row_reproduces_with_the_declared_scheme(tmp_path: Path) -> None:
    spec = load_specs()["checkpointing"].with_implementations([GUIDE + "[scheme='segments']"])
    impl = spec.implementations[0].id
    case = Case(spec.for_implementation(impl), impl, "cpu", "float32", "checkpoint_equivalence:saved_activations")
    rows: list[dict] = []
    with pytest.raises(CheckFailure, match="what the segments scheme keeps"):
        run_case(case, rows.append, FEW)
    assert rows[-1]["falsifying_example"]["scheme"] == "segments"
    with pytest.raises(CheckFailure, match="what the segments scheme keeps"):
        exec(rows[-1]["repro"], {})


# --- what torch and the guide recompute -------------------------------------------------------------


class Counted(nn.Module):
    """Linear(2→2) + tanh that counts its forward calls (a recomputed layer runs twice)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 2)
        self.calls = 0

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        return torch.tanh(self.linear(x))


def _recomputed(module: type[nn.Module], depth: int, k: int) -> list[bool]:
    layers = nn.ModuleList(Counted() for _ in range(depth))
    module(layers, checkpoint_every=k).train()(torch.randn(3, 2)).sum().backward()
    return [layer.calls == 2 for layer in layers]


@pytest.mark.parametrize("depth", range(1, 8))
@pytest.mark.parametrize("k", [1, 2, 3, 5, 9])
def test_regions_are_what_each_implementation_recomputes(depth: int, k: int) -> None:
    from implementations.checkpointing import CheckpointedModule as Segments

    with one_intra_op_thread():
        for module, scheme in [(CheckpointedModule, "per_layer"), (Segments, "segments"), (SequentialCheckpointed, "sequential")]:
            expected = [r.checkpointed for r in regions(depth, k, scheme) for _ in range(r.start, r.end)]
            assert _recomputed(module, depth, k) == expected, (scheme, depth, k)


def test_the_schemes_differ_where_the_spec_says() -> None:
    cut = {s: [r.describe() for r in regions(4, 2, s)] for s in SCHEMES}
    assert cut == {
        "per_layer": ["ckpt[0, 1)", "plain[1, 2)", "ckpt[2, 3)", "plain[3, 4)"],
        "segments": ["ckpt[0, 2)", "ckpt[2, 4)"],
        "sequential": ["ckpt[0, 2)", "plain[2, 4)"],
    }
    assert regions(3, 1, "per_layer") == regions(3, 1, "segments")  # k = 1: every layer alone
    assert [r.checkpointed for r in regions(3, 8, "sequential")] == [False]  # one segment: torch checkpoints none
    with pytest.raises(ValueError, match="unknown checkpointing scheme 'zigzag'"):
        regions(3, 1, "zigzag")


# --- declaring the option ------------------------------------------------------------------------------


def _spec(params: dict) -> dict:
    data = pattern_spec("checkpoint_equivalence", {}, "implementations.checkpointing:CheckpointedModule", "ckpt")
    data["specs"][0]["params"] = params
    return data


def test_a_scheme_param_with_an_unknown_value_fails_on_load(tmp_path: Path) -> None:
    file = write_spec(tmp_path, _spec({"scheme": {"values": ["per_layer", "zigzag"], "default": "per_layer"}}))
    error = load_error(file)
    assert error.path == "specs[0].patterns[0]" and "from per_layer, segments, sequential; got 'zigzag'" in str(error)


def test_a_pattern_only_spec_draws_no_params(tmp_path: Path) -> None:
    file = write_spec(tmp_path, _spec({"scheme": {"values": ["per_layer", "segments"]}}))
    error = load_error(file)
    assert error.path == "specs[0].params.scheme" and "give a default (an implementation option)" in str(error)


def test_an_undeclared_scheme_is_refused_for_an_implementation(tmp_path: Path) -> None:
    data = _spec({"scheme": {"values": list(SCHEMES), "default": "per_layer"}})
    data["specs"][0]["implementations"][0]["params"] = {"scheme": "zigzag"}
    error = load_error(write_spec(tmp_path, data))
    assert error.path == "specs[0].implementations[0].params.scheme", str(error)
