"""Unit tests for implementations.checkpointing beyond the harness's pattern checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import implementations.checkpointing as checkpointing
from conformance.patterns.helpers.saved_memory import saved_for_backward
from implementations.checkpointing import CheckpointedModule, segment_starts


def _stack(depth: int = 5, width: int = 6, p: float = 0.5) -> nn.ModuleList:
    torch.manual_seed(0)
    layers = []
    for i in range(depth):
        layers.append(nn.Dropout(p) if i % 2 else nn.Sequential(nn.Linear(width, width), nn.GELU()))
    return nn.ModuleList(layers).double()


def _plain(layers: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    for layer in layers:
        x = layer(x)
    return x


def _count_checkpoints(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = checkpointing.checkpoint

    def counting(function, *args, **kwargs):
        calls.append(1)
        return real(function, *args, **kwargs)

    monkeypatch.setattr(checkpointing, "checkpoint", counting)
    return calls


@pytest.mark.parametrize("depth, k, expected", [(5, 2, [0, 2, 4]), (4, 2, [0, 2]), (3, 1, [0, 1, 2]), (3, 8, [0]), (0, 2, [])])
def test_segment_starts(depth: int, k: int, expected: list[int]) -> None:
    assert list(segment_starts(depth, k)) == expected


@pytest.mark.parametrize("k, segments", [(1, 5), (2, 3), (3, 2), (5, 1), (9, 1)])
def test_one_checkpoint_per_segment_in_training(monkeypatch: pytest.MonkeyPatch, k: int, segments: int) -> None:
    calls = _count_checkpoints(monkeypatch)
    CheckpointedModule(_stack(), checkpoint_every=k).train()(torch.randn(2, 6, dtype=torch.float64))
    assert len(calls) == segments


def test_no_checkpoint_in_eval_or_without_grad(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_checkpoints(monkeypatch)
    module = CheckpointedModule(_stack())
    module.eval()(torch.randn(2, 6, dtype=torch.float64))
    with torch.no_grad():
        module.train()(torch.randn(2, 6, dtype=torch.float64))
    assert calls == []


@pytest.mark.parametrize("requires_grad", [True, False])
def test_dropout_stack_bitwise_equal_to_plain_with_gradients(requires_grad: bool) -> None:
    x = torch.randn(3, 6, dtype=torch.float64, requires_grad=requires_grad)
    results = []
    for use_module in (False, True):
        layers = _stack()
        forward = CheckpointedModule(layers, checkpoint_every=2) if use_module else (lambda h, ls=layers: _plain(ls, h))
        torch.manual_seed(1234)
        y = forward(x)
        y.backward(torch.ones_like(y))
        grads = [p.grad.clone() for p in layers.parameters()]
        results.append((y.detach(), grads, None if x.grad is None else x.grad.clone()))
        x.grad = None
    (y0, g0, x0), (y1, g1, x1) = results
    assert torch.equal(y0, y1)
    assert all(torch.equal(a, b) for a, b in zip(g0, g1, strict=True))
    assert (x0 is None) == (x1 is None) and (x0 is None or torch.equal(x0, x1))


def test_saves_only_the_segment_inputs() -> None:
    layers = _stack(depth=4, p=0.1)
    x = torch.randn(2, 6, dtype=torch.float64, requires_grad=True)
    with saved_for_backward(exclude=list(layers.parameters())) as saved:
        CheckpointedModule(layers, checkpoint_every=2)(x)
    assert saved.total_bytes == 2 * x.nbytes  # x_0 and x_2, all of width 6


def test_uses_the_given_layers_and_registers_them() -> None:
    layers = _stack()
    module = CheckpointedModule(layers, checkpoint_every=3)
    assert module.layers is layers
    assert set(module.state_dict()) == {f"layers.{k}" for k in layers.state_dict()}
    assert repr(module).startswith("CheckpointedModule(\n  checkpoint_every=3")
    assert CheckpointedModule(layers).checkpoint_every == 2  # the guide's default


@pytest.mark.parametrize("k", [0, -1, 1.5, True, "2"])
def test_bad_checkpoint_every_raises(k) -> None:
    with pytest.raises(ValueError, match="checkpoint_every must be a positive int"):
        CheckpointedModule(_stack(), checkpoint_every=k)


def test_layers_must_be_a_module_list() -> None:
    with pytest.raises(TypeError, match="layers must be an nn.ModuleList, got Sequential"):
        CheckpointedModule(nn.Sequential(nn.Linear(2, 2)))


def test_empty_stack_is_the_identity() -> None:
    x = torch.randn(2, 3)
    assert CheckpointedModule(nn.ModuleList()).train()(x) is x
