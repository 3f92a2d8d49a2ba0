"""Deliberately wrong trainers (spec ``amp_train_step``, specs/mixed_precision_training.yaml).

Every class has the interface of ``implementations.trainer.Trainer``: ``__init__(model, optimizer,
use_amp=True, amp_dtype=None)`` and ``train_step(batch) -> float`` calling ``model(**batch).loss``, except
``GuideVerbatim``, which is the guide's code as printed. Each is wrong in exactly one way; each docstring
says what is wrong and which check of the spec must catch it.
``tests/meta_tests/tables/amp_train_step.py`` lists the check that must catch it.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.cuda.amp import GradScaler as CudaGradScaler  # the guide's deprecated import (no warning at import time)
from torch.cuda.amp import autocast as cuda_autocast


class _Base:
    """The correct trainer's state; subclasses replace ``train_step`` (or ``__init__``) with one defect."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, use_amp: bool = True, amp_dtype=None) -> None:
        self.model = model
        self.optimizer = optimizer
        self.use_amp = use_amp
        self.device_type = next(model.parameters()).device.type
        self.amp_dtype = amp_dtype or (torch.float16 if self.device_type == "cuda" else torch.bfloat16)
        self.scaler = torch.amp.GradScaler(self.device_type, enabled=use_amp and self.amp_dtype == torch.float16)

    def autocast(self) -> torch.amp.autocast:
        return torch.amp.autocast(self.device_type, dtype=self.amp_dtype, enabled=self.use_amp)

    def clip(self, max_norm: float = 1.0) -> None:
        nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)


class GuideVerbatim:
    """The guide's Trainer as printed: ``torch.cuda.amp.autocast``/``GradScaler`` and no ``amp_dtype``.

    Caught by: ``train_step:full_precision`` (``torch.cuda.amp.autocast(...)`` emits a FutureWarning
    even when disabled) and ``train_step:mixed_precision``: called through its own signature (no ``amp_dtype``)
    at the device's autocast dtype, its ``torch.cuda.amp`` autocast and scaler are silently off on CPU.
    """

    def __init__(self, model, optimizer, use_amp: bool = True):
        self.model = model
        self.optimizer = optimizer
        self.use_amp = use_amp
        self.scaler = CudaGradScaler() if use_amp else None

    def train_step(self, batch: dict) -> float:
        self.optimizer.zero_grad()
        with cuda_autocast(enabled=self.use_amp):
            outputs = self.model(**batch)
            loss = outputs.loss
        if self.use_amp:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.optimizer.step()
        return loss.item()


class GuideDeprecatedApi(_Base):
    """The guide's deprecated ``torch.cuda.amp`` API, otherwise correct (it takes ``amp_dtype``).

    Caught by: ``train_step:mixed_precision`` and ``train_step:full_precision`` through the FutureWarning of
    ``torch.cuda.amp.autocast``/``GradScaler``; on CPU also because CUDA autocast leaves the CPU forward pass
    in float32 and the CUDA scaler disables itself. On CUDA the API still works: the warning alone catches it.
    """

    def __init__(self, model, optimizer, use_amp=True, amp_dtype=None):
        super().__init__(model, optimizer, use_amp, amp_dtype)
        self.scaler = CudaGradScaler(enabled=use_amp and self.amp_dtype == torch.float16)

    def train_step(self, batch):
        self.optimizer.zero_grad()
        with cuda_autocast(enabled=self.use_amp, dtype=self.amp_dtype):
            loss = self.model(**batch).loss
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        self.clip()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.item()


class ClipBeforeUnscale(_Base):
    """Clips the *scaled* gradients (norm ≈ S·‖g‖) to 1, then unscales inside ``scaler.step``: the update is
    S ≈ 65536 times too small (the paper unscales "before gradient clipping", §3.2).

    Caught by: ``train_step:mixed_precision`` at float16 (SGD draws; AdamW is nearly invariant to the
    gradient's scale). Invisible where nothing is scaled (bfloat16, full precision).
    """

    def train_step(self, batch):
        self.optimizer.zero_grad()
        with self.autocast():
            loss = self.model(**batch).loss
        self.scaler.scale(loss).backward()
        self.clip()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.item()


class NoZeroGrad(_Base):
    """Never zeroes the gradients: each step uses the sum of all gradients so far.

    Caught by: ``train_step:full_precision`` and ``train_step:mixed_precision`` (examples with two or more steps).
    """

    def train_step(self, batch):
        with self.autocast():
            loss = self.model(**batch).loss
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        self.clip()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.item()


class ReturnsTensor(_Base):
    """Returns the loss tensor (detached) instead of a Python float.

    Caught by: ``train_step:full_precision`` ("returned Tensor ..., expected a Python float").
    """

    def train_step(self, batch):
        self.optimizer.zero_grad()
        with self.autocast():
            loss = self.model(**batch).loss
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        self.clip()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach()


class ReturnsScaledLoss(_Base):
    """Returns the scaled loss S·ℓ (the tensor that was back-propagated) instead of ℓ.

    Caught by: ``train_step:mixed_precision`` at float16 (returned losses vs the float64 loop). Where the
    scaler is disabled (bfloat16, full precision) S·ℓ is ℓ.
    """

    def train_step(self, batch):
        self.optimizer.zero_grad()
        with self.autocast():
            loss = self.model(**batch).loss
        scaled = self.scaler.scale(loss)
        scaled.backward()
        self.scaler.unscale_(self.optimizer)
        self.clip()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return scaled.item()


class ReturnsBeforeBackward(_Base):
    """Returns the loss straight after the forward pass: backward and the step are never reached.

    Caught by: ``train_step:full_precision`` (the parameters never move).
    """

    def train_step(self, batch):
        self.optimizer.zero_grad()
        with self.autocast():
            loss = self.model(**batch).loss
        return loss.item()  # the defect: returns here, before backward and the step


class ClipMaxNorm10(_Base):
    """Clips the gradient norm to 10 instead of 1.

    Caught by: ``train_step:full_precision`` and ``train_step:mixed_precision`` on steps whose gradient norm
    exceeds 1 (targets up to 8 make that common) with SGD; AdamW nearly cancels a constant clipping factor.
    """

    def train_step(self, batch):
        self.optimizer.zero_grad()
        with self.autocast():
            loss = self.model(**batch).loss
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        self.clip(10.0)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.item()


class NoSkipOnInf(_Base):
    """Unscales and clips, then calls ``optimizer.step()`` itself: steps even when the gradients are inf/NaN.

    Caught by: ``train_step:overflow_skip`` (the planted step changes the parameters — to NaN).
    """

    def train_step(self, batch):
        self.optimizer.zero_grad()
        with self.autocast():
            loss = self.model(**batch).loss
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        self.clip()
        self.optimizer.step()
        self.scaler.update()
        return loss.item()


class FrozenScale(_Base):
    """Skips overflowing steps but pins the loss scale (``update(new_scale=current)``): no backoff, no growth.

    Caught by: ``train_step:overflow_skip`` (the scale after the planted step should halve, then double).
    """

    def train_step(self, batch):
        self.optimizer.zero_grad()
        with self.autocast():
            loss = self.model(**batch).loss
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        self.clip()
        self.scaler.step(self.optimizer)
        self.scaler.update(self.scaler.get_scale() if self.scaler.is_enabled() else None)
        return loss.item()


class AutocastOverBackward(_Base):
    """Runs backward (and the rest of the step) inside the autocast block — not recommended by torch.amp.

    Caught by: ``train_step:mixed_precision`` (the model's backward hook sees autocast on). The numbers are
    those of the correct trainer in eager mode, so only the probe sees it.
    """

    def train_step(self, batch):
        self.optimizer.zero_grad()
        with self.autocast():
            loss = self.model(**batch).loss
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            self.clip()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        return loss.item()


class AutocastIgnored(_Base):
    """Never autocasts: the forward pass runs in float32 (the scaler is still used at float16).

    Caught by: ``train_step:mixed_precision`` (the model's forward sees autocast off). float32 is more
    accurate than the reference's bfloat16/float16, so the numbers alone would pass.
    """

    def train_step(self, batch):
        self.optimizer.zero_grad()
        loss = self.model(**batch).loss
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        self.clip()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.item()
