"""Unit tests for implementations.initialization beyond the harness's pattern checks."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from implementations.initialization import INIT_STD, init_residual_scaling, init_weights
from implementations.rmsnorm import RMSNorm


class Block(nn.Module):
    """A GPT-like block with the guide's attention names."""

    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.W_q, self.W_k, self.W_v, self.W_o = (nn.Linear(d, d, bias=False) for _ in range(4))
        self.ln_2 = RMSNorm(d)
        self.fc = nn.Linear(d, 4 * d)


def test_truncated_normal_is_cut_at_two_sigma_unlike_the_guide() -> None:
    torch.manual_seed(0)
    ours, guide = nn.Linear(512, 512), torch.empty(512, 512)
    init_weights(ours, n_layers=1, method="truncated_normal")
    nn.init.trunc_normal_(guide, std=INIT_STD)  # the guide: default bounds ±2, absolute
    assert float(ours.weight.detach().abs().max()) <= 2 * INIT_STD
    assert float((guide.abs() > 2 * INIT_STD).double().mean()) > 0.04  # ≈ 4.6 % beyond 2σ: nothing was cut


def test_default_method_is_xavier_uniform() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(100, 300)
    init_weights(layer, n_layers=2)
    a = math.sqrt(6 / 400)
    assert float(layer.weight.detach().abs().max()) <= a
    assert float(layer.weight.detach().abs().max()) > 0.99 * a  # uniform up to the bound, not a narrower law


@pytest.mark.parametrize("method", ["Xavier", "kaiming", ""])
def test_unknown_method_raises(method: str) -> None:
    with pytest.raises(ValueError, match="method must be one of"):
        init_weights(nn.Linear(2, 2), n_layers=1, method=method)


@pytest.mark.parametrize("n_layers", [0, -1, 1.5, True, "2"])
def test_n_layers_must_be_a_positive_int(n_layers) -> None:
    with pytest.raises(ValueError, match="n_layers must be a positive int"):
        init_weights(nn.Linear(2, 2), n_layers=n_layers)
    with pytest.raises(ValueError, match="n_layers must be a positive int"):
        init_residual_scaling(nn.Linear(2, 2), n_layers=n_layers)


@pytest.mark.parametrize(
    "norm",
    [nn.LayerNorm(8), nn.LayerNorm(8, bias=False), nn.LayerNorm(8, elementwise_affine=False), RMSNorm(8), nn.RMSNorm(8)],
    ids=["layer_norm", "layer_norm_no_bias", "layer_norm_no_affine", "rmsnorm", "torch_rmsnorm"],
)
def test_norms_get_unit_gain_and_zero_bias_and_missing_ones_are_skipped(norm: nn.Module) -> None:
    with torch.no_grad():
        for p in norm.parameters():
            p.fill_(3.0)
    init_weights(norm, n_layers=1)
    if getattr(norm, "weight", None) is not None:
        assert torch.equal(norm.weight, torch.ones_like(norm.weight))
    if getattr(norm, "bias", None) is not None:
        assert torch.equal(norm.bias, torch.zeros_like(norm.bias))


def test_one_module_at_a_time_and_model_apply_reaches_every_submodule() -> None:
    block = Block()
    before = block.W_q.weight.detach().clone()
    init_weights(block, n_layers=1, method="normal")  # a container: its own parameters only (none)
    assert torch.equal(block.W_q.weight, before)
    with torch.no_grad():
        block.ln_1.weight.fill_(5.0)
        block.ln_2.weight.fill_(5.0)
    block.apply(lambda m: init_weights(m, n_layers=1, method="normal"))
    assert not torch.equal(block.W_q.weight, before)
    assert torch.equal(block.ln_1.weight, torch.ones(16)) and torch.equal(block.ln_2.weight, torch.ones(16))
    assert torch.equal(block.fc.bias, torch.zeros(64))


def test_other_modules_are_left_alone() -> None:
    conv = nn.Conv1d(2, 2, 3)
    before = [p.detach().clone() for p in conv.parameters()]
    init_weights(conv, n_layers=1, method="normal")
    assert all(torch.equal(a, b) for a, b in zip(conv.parameters(), before))


def test_parameters_stay_trainable_leaves() -> None:
    layer, block = nn.Linear(4, 4), Block()
    init_weights(layer, n_layers=1, method="truncated_normal")
    init_residual_scaling(block, n_layers=3)
    for p in [*layer.parameters(), *block.parameters()]:
        assert p.is_leaf and p.requires_grad and p.grad_fn is None


def test_gpt2_composition_gives_std_002_over_sqrt_2n() -> None:
    """weight_init's N(0, 0.02²) then the residual scaling: W_o ~ N(0, (0.02/sqrt(2·n_layers))²), as GPT-2's code draws it."""
    torch.manual_seed(0)
    n_layers, block = 6, Block(d=256)
    block.apply(lambda m: init_weights(m, n_layers=n_layers, method="normal"))
    init_residual_scaling(block, n_layers=n_layers)
    w = block.W_o.weight.detach().double().flatten()  # 65536 values
    target = INIT_STD / math.sqrt(2 * n_layers)
    # sample std of n normal values: relative sd ≈ 1/sqrt(2n) = 0.0028; 6 sd ≈ 0.017 is a false alarm below 1e-8
    assert float(w.std()) == pytest.approx(target, rel=0.017)
    q = block.W_q.weight.detach().double().flatten()
    assert float(q.std()) == pytest.approx(INIT_STD, rel=0.017)


def test_residual_scaling_matches_by_substring_and_scales_tied_parameters_once() -> None:
    model = nn.Module()
    model.W_out = nn.Linear(3, 3)  # contains "W_o": scaled (the guide's substring rule)
    model.attn = nn.MultiheadAttention(4, 2)
    model.tied = nn.Linear(3, 3, bias=False)
    model.out_proj = model.tied  # one parameter under two names: named_parameters lists it once
    before = {n: p.detach().clone() for n, p in model.named_parameters(remove_duplicate=False)}
    init_residual_scaling(model, n_layers=2)
    after = dict(model.named_parameters(remove_duplicate=False))
    assert torch.allclose(after["W_out.weight"], before["W_out.weight"] / 2)
    assert torch.allclose(after["attn.out_proj.bias"], before["attn.out_proj.bias"] / 2)
    assert torch.equal(after["attn.in_proj_weight"], before["attn.in_proj_weight"])
    assert torch.allclose(after["out_proj.weight"], before["out_proj.weight"] / 2)  # once, not twice
    assert after["out_proj.weight"] is after["tied.weight"]


def test_residual_scaling_leaves_buffers_alone() -> None:
    model = nn.Module()
    model.register_buffer("W_o", torch.ones(3))
    model.out_proj = nn.Linear(2, 2)
    init_residual_scaling(model, n_layers=8)
    assert torch.equal(model.W_o, torch.ones(3))
