"""Mixed-precision training step, Micikevicius et al. 2018, "Mixed Precision Training" (arXiv 1710.03740).

One step of the guide's training-loop pattern with its defect fixed (the deprecated ``torch.cuda.amp``
API, which on a machine without CUDA silently trains without autocast and without loss scaling):

1. zero the gradients;
2. forward pass and loss under ``torch.amp.autocast`` (§3.3: arithmetic in half precision, reductions
   such as the loss in float32; the parameters stay float32 "master weights", §3.1);
3. backward of the loss multiplied by the loss scale S, outside autocast (§3.2: loss scaling keeps small
   gradients representable in float16);
4. unscale the gradients (divide by S), then clip their global L2 norm to ``max_norm``: clipping must see
   the true gradients, so it comes after unscaling;
5. optimizer step, skipped when a gradient is inf or NaN (§3.2: "skip the weight update" on overflow);
6. update S: halve it after an overflow, double it after ``growth_interval`` overflow-free steps
   (``torch.amp.GradScaler``'s dynamic loss scaling).

Loss scaling is only used with float16: bfloat16 has float32's exponent range, so its gradients do not
underflow and the scaler is created disabled (a pass-through). Without ``use_amp`` the same sequence runs in
the model's own dtype with the scaler disabled.

>>> import torch
>>> from types import SimpleNamespace
>>> class Regression(torch.nn.Module):
...     def __init__(self):
...         super().__init__()
...         self.linear = torch.nn.Linear(2, 1)
...     def forward(self, x, y):
...         return SimpleNamespace(loss=torch.nn.functional.mse_loss(self.linear(x), y))
>>> model = Regression()
>>> trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), use_amp=False)
>>> loss = trainer.train_step({"x": torch.ones(4, 2), "y": torch.zeros(4, 1)})
>>> isinstance(loss, float)
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn


def _device_type(model: nn.Module) -> str:
    """The device type autocast and the scaler act on: that of the model's parameters ("cpu" without any)."""
    param = next(model.parameters(), None)
    return param.device.type if param is not None else "cpu"


def _default_amp_dtype(device_type: str) -> torch.dtype:
    """float16 on CUDA (with loss scaling), bfloat16 elsewhere (CPU autocast's own default)."""
    return torch.float16 if device_type == "cuda" else torch.bfloat16


class Trainer:
    """Training loop step with mixed precision (autocast + dynamic loss scaling).

    ``model(**batch)`` must return an object with a scalar ``loss`` attribute. ``scaler`` is the
    ``torch.amp.GradScaler``; it is enabled only for float16 autocast.

    Args:
        model: the model; its parameters' device decides autocast's device type.
        optimizer: an optimizer over the model's parameters.
        use_amp: autocast the forward pass (and scale the loss for float16).
        amp_dtype: the autocast dtype; default float16 on CUDA, bfloat16 elsewhere.
        max_norm: the global gradient norm is clipped to this (after unscaling).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        use_amp: bool = True,
        amp_dtype: torch.dtype | None = None,
        max_norm: float = 1.0,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.use_amp = use_amp
        self.device_type = _device_type(model)
        self.amp_dtype = amp_dtype if amp_dtype is not None else _default_amp_dtype(self.device_type)
        if use_amp and self.amp_dtype not in (torch.float16, torch.bfloat16):
            raise ValueError(f"amp_dtype must be torch.float16 or torch.bfloat16, got {self.amp_dtype}")
        self.max_norm = max_norm
        self.scaler = torch.amp.GradScaler(self.device_type, enabled=use_amp and self.amp_dtype == torch.float16)

    def train_step(self, batch: Mapping[str, Any]) -> float:
        """One optimisation step on ``batch``; returns the (unscaled) loss as a Python float."""
        self.optimizer.zero_grad(set_to_none=True)
        with torch.amp.autocast(self.device_type, dtype=self.amp_dtype, enabled=self.use_amp):
            loss = self.model(**batch).loss
        # Backward outside autocast: backward ops run in the dtype autocast chose for their forward ops.
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)  # true gradients before clipping
        nn.utils.clip_grad_norm_(self.model.parameters(), self.max_norm)
        self.scaler.step(self.optimizer)  # skipped if any gradient is inf/NaN
        self.scaler.update()
        return loss.item()
