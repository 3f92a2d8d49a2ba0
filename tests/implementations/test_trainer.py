"""Unit tests for implementations.trainer beyond the harness's train_step checks."""

from __future__ import annotations

import copy
import warnings
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from implementations.trainer import Trainer


class Regression(nn.Module):
    """forward(x, y) -> object with .loss (the batch arrives as keyword arguments)."""

    def __init__(self, features: int = 3, outputs: int = 2) -> None:
        super().__init__()
        self.hidden = nn.Linear(features, 8)
        self.out = nn.Linear(8, outputs)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(loss=nn.functional.mse_loss(self.out(torch.tanh(self.hidden(x))), y))


def _batch(seed: int, scale: float = 4.0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(4, 3, generator=g), "y": scale * torch.randn(4, 2, generator=g)}


def _params(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()])


def _trainer(use_amp: bool, amp_dtype=None, lr: float = 0.1, seed: int = 0) -> Trainer:
    torch.manual_seed(seed)
    model = Regression()
    return Trainer(model, torch.optim.SGD(model.parameters(), lr=lr), use_amp=use_amp, amp_dtype=amp_dtype)


@pytest.mark.parametrize(("use_amp", "amp_dtype"), [(False, None), (True, torch.bfloat16), (True, torch.float16)])
def test_returns_a_python_float_and_learns(use_amp: bool, amp_dtype) -> None:
    trainer = _trainer(use_amp, amp_dtype)
    batch = _batch(0)
    losses = [trainer.train_step(batch) for _ in range(30)]
    assert all(type(v) is float for v in losses)
    assert losses[-1] < losses[0]


def test_defaults_bfloat16_on_cpu_and_scales_only_float16() -> None:
    assert _trainer(True).amp_dtype == torch.bfloat16
    assert not _trainer(True).scaler.is_enabled()
    assert not _trainer(False, torch.float16).scaler.is_enabled()
    scaler = _trainer(True, torch.float16).scaler
    assert isinstance(scaler, torch.amp.GradScaler) and scaler.is_enabled()


def test_rejects_a_dtype_autocast_cannot_use() -> None:
    with pytest.raises(ValueError, match="amp_dtype"):
        _trainer(True, torch.float64)


@pytest.mark.parametrize("amp_dtype", [torch.bfloat16, torch.float16])
def test_no_deprecation_warning(amp_dtype) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        warnings.simplefilter("error", DeprecationWarning)
        _trainer(True, amp_dtype).train_step(_batch(0))


def test_float16_overflow_is_skipped_and_the_scale_backs_off() -> None:
    trainer = _trainer(True, torch.float16)
    before, scale = _params(trainer.model), trainer.scaler.get_scale()
    batch = _batch(1)
    batch["x"][0, 0] = 1e6  # finite in float32, inf once autocast casts it to float16
    trainer.train_step(batch)  # the loss may stay finite (tanh saturates); the input's gradient does not
    assert torch.equal(_params(trainer.model), before)
    assert trainer.scaler.get_scale() == scale / 2


def test_scale_grows_after_growth_interval_clean_steps() -> None:
    trainer = _trainer(True, torch.float16, lr=1e-3)
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=8.0, growth_interval=2)
    trainer.train_step(_batch(2, scale=1.0))
    assert trainer.scaler.get_scale() == 8.0
    trainer.train_step(_batch(3, scale=1.0))
    assert trainer.scaler.get_scale() == 16.0


@pytest.mark.parametrize(("use_amp", "amp_dtype"), [(False, None), (True, torch.float16)])
def test_update_is_clipped_after_unscaling(use_amp: bool, amp_dtype) -> None:
    """SGD with lr 1 moves the parameters by exactly the clipped gradient: norm 1 (not 1/S)."""
    trainer = _trainer(use_amp, amp_dtype, lr=1.0)
    if amp_dtype is not None:
        trainer.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)  # no overflow at this size
    before = _params(trainer.model)
    trainer.train_step(_batch(4, scale=8.0))
    assert float(torch.linalg.vector_norm(_params(trainer.model) - before)) == pytest.approx(1.0, rel=1e-3)


def test_gradients_are_those_of_the_current_batch_only() -> None:
    trainer = _trainer(False, lr=0.0)
    trainer.train_step(_batch(5))
    trainer.train_step(_batch(6))
    fresh = copy.deepcopy(trainer.model)
    fresh(**_batch(6)).loss.backward()
    got = torch.cat([p.grad.reshape(-1) for p in trainer.model.parameters()])
    want = torch.cat([p.grad.reshape(-1) for p in fresh.parameters()])
    norm = float(torch.linalg.vector_norm(want))
    torch.testing.assert_close(got, want * min(1.0, 1.0 / (norm + 1e-6)))


def test_max_norm_is_configurable() -> None:
    torch.manual_seed(0)
    model = Regression()
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=1.0), use_amp=False, max_norm=0.5)
    before = _params(model)
    trainer.train_step(_batch(7, scale=8.0))
    assert float(torch.linalg.vector_norm(_params(model) - before)) == pytest.approx(0.5, rel=1e-3)
