"""Deliberately wrong checkpointed stacks (spec ``checkpointing``, specs/gradient_checkpointing.yaml).

Every class has the interface of ``implementations.checkpointing.CheckpointedModule``:
``__init__(layers: nn.ModuleList, checkpoint_every=2)``, ``forward(x)``. Each is wrong in exactly one
way under the checkpointing scheme it is registered with (the option ``scheme``: the default
``per_layer``, or ``[scheme='segments']`` / ``[scheme='sequential']``); each docstring says what is
wrong and which check must catch it (check names are ``checkpoint_equivalence:<id>`` with the ids of
the spec's ``patterns``). ``tests/meta_tests/tables/checkpointing.py`` lists the check that must catch it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint, checkpoint_sequential


class _Segments(nn.Module):
    """Segments [0, k), [k, 2k), … each under one checkpoint in training (correct as ``segments``), with hooks to break it."""

    use_reentrant = False
    preserve_rng_state = True

    def __init__(self, layers: nn.ModuleList, checkpoint_every: int = 2) -> None:
        super().__init__()
        self.layers = layers
        self.checkpoint_every = checkpoint_every

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and torch.is_grad_enabled()):
            return self.run(0, len(self.layers), x)
        for start in range(0, len(self.layers), self.checkpoint_every):
            end = min(start + self.checkpoint_every, len(self.layers))
            x = self.checkpointed(start, end, x)
        return x

    def checkpointed(self, start: int, end: int, x: Tensor) -> Tensor:
        return checkpoint(
            lambda h: self.run(start, end, h), x, use_reentrant=self.use_reentrant, preserve_rng_state=self.preserve_rng_state
        )

    def run(self, start: int, end: int, h: Tensor) -> Tensor:
        for layer in self.layers[start:end]:
            h = layer(h)
        return h


class NoPreserveRngState(_Segments):
    """``preserve_rng_state=False``: the recomputation draws new dropout masks.

    The output is right (the first pass's mask); the gradients use the recomputed, different mask.
    Caught by: ``checkpoint_equivalence:plain_stack`` (gradients in train mode, stacks with Dropout).
    """

    preserve_rng_state = False


class SkipsLayerInSegment(_Segments):
    """A checkpointed segment of two or more layers skips its second layer, where that keeps the width.

    (Skipping a layer that changes the width would crash further on; this is the silent version.)
    Caught by: ``checkpoint_equivalence:plain_stack`` (output in train mode; eval runs the plain loop).
    """

    def run(self, start: int, end: int, h: Tensor) -> Tensor:
        if not (self.training and torch.is_grad_enabled()):
            return super().run(start, end, h)
        for i in range(start, end):
            out = self.layers[i](h)
            h = h if i == start + 1 and out.shape == h.shape else out
        return h


class DetachedSegmentInput(_Segments):
    """Feeds each segment ``x.detach()``: no gradient flows back past a segment boundary.

    The parameters before the last segment (and the input) get no gradient.
    Caught by: ``checkpoint_equivalence:plain_stack`` (gradients in train mode).
    """

    def checkpointed(self, start: int, end: int, x: Tensor) -> Tensor:
        return super().checkpointed(start, end, x.detach())


class Reentrant(_Segments):
    """``use_reentrant=True``: a first segment whose input does not require grad gets no parameter gradients.

    Everything else is right (bitwise), so only inputs with ``requires_grad=False`` show it.
    Caught by: ``checkpoint_equivalence:plain_stack`` (gradients in train mode).
    """

    use_reentrant = True


class RunsLayersTwice(_Segments):
    """Runs the stack once under ``no_grad`` "to check it works", then checkpointed: every layer runs twice in forward.

    The output and gradients are right (the probe's dropout draws are undone); BatchNorm's running
    statistics are updated twice.
    Caught by: ``checkpoint_equivalence:plain_stack`` (buffers after forward in train mode).
    """

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            devices = [x.device.index or 0] if x.is_cuda else []
            with torch.no_grad(), torch.random.fork_rng(devices=devices):  # the same dropout masks afterwards
                self.run(0, len(self.layers), x)
        return super().forward(x)


class NoCheckpointing(_Segments):
    """Never checkpoints: the plain stack. Outputs and gradients are right; nothing is saved.

    Caught by: ``checkpoint_equivalence:saved_activations`` (saves more than the segment inputs, and
    not strictly less than the plain stack).
    """

    def forward(self, x: Tensor) -> Tensor:
        return self.run(0, len(self.layers), x)


class GuidePerLayer(_Segments):
    """The guide's reading: layers 0, k, 2k, … checkpointed one at a time, the others run plainly.

    Correct as the default scheme ``per_layer``; declared ``[scheme='segments']`` it is wrong: right for
    k = 1, for k ≥ 2 the layers in between keep their activations.
    Caught by: ``checkpoint_equivalence:saved_activations`` (train: more than the segment inputs).
    """

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            if self.training and i % self.checkpoint_every == 0:
                x = checkpoint(layer, x, use_reentrant=False)
            else:
                x = layer(x)
        return x


class LastSegmentPlain(_Segments):
    """Declared ``segments``, but as ``checkpoint_sequential``: the last segment runs without a checkpoint.

    Caught by: ``checkpoint_equivalence:saved_activations`` (train: the last segment's activations are kept).
    """

    def checkpointed(self, start: int, end: int, x: Tensor) -> Tensor:
        if end == len(self.layers):
            return self.run(start, end, x)
        return super().checkpointed(start, end, x)


class CheckpointsInEval(_Segments):
    """Checkpoints in eval mode too (ignores ``self.training``).

    Outputs and gradients are right; eval mode saves less than the plain stack, which the spec rules out.
    Caught by: ``checkpoint_equivalence:saved_activations`` (eval: not the plain stack's bytes).
    """

    def forward(self, x: Tensor) -> Tensor:
        training = self.training
        self.training = True  # the segment loop only; the layers keep their own mode
        try:
            return super().forward(x)
        finally:
            self.training = training


class LossyWhenCompiled(_Segments):
    """Under ``torch.compile`` only, each segment's input is quantised to multiples of 2⁻⁸ "to save memory".

    Eager mode is exactly the correct module, so both eager checks pass it; only the compiled
    module's results are off (by up to 2⁻⁹ absolute, far above float32's derived bound). (A round
    trip through bfloat16 would be the natural version, but the compiler removes it as a no-op.)
    Caught by: ``checkpoint_equivalence:compiled_cpu`` (output and gradients, train and eval).
    """

    def run(self, start: int, end: int, h: Tensor) -> Tensor:
        if torch.compiler.is_compiling():
            h = torch.round(h * 256) / 256
        return super().run(start, end, h)


# --- one defect per declared scheme --------------------------------------------------------------


class PerLayerOffset(_Segments):
    """Declared ``per_layer`` (the default), but checkpoints layers k − 1, 2k − 1, … (``i % k == k - 1``).

    The same results; for k ≥ 2 other layers keep their activations than the scheme says.
    Caught by: ``checkpoint_equivalence:saved_activations`` (train: not the per_layer scheme's bytes).
    """

    def forward(self, x: Tensor) -> Tensor:
        k = self.checkpoint_every
        for i, layer in enumerate(self.layers):
            if self.training and i % k == k - 1:
                x = checkpoint(layer, x, use_reentrant=False)
            else:
                x = layer(x)
        return x


class SegmentsFromOne(_Segments):
    """Declared ``segments``, but runs layer 0 plainly and cuts segments [1, 1 + k), [1 + k, 1 + 2k), … after it.

    Caught by: ``checkpoint_equivalence:saved_activations`` (train: layer 0's activations are kept).
    """

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and torch.is_grad_enabled()):
            return self.run(0, len(self.layers), x)
        x = self.run(0, 1, x)
        for start in range(1, len(self.layers), self.checkpoint_every):
            x = self.checkpointed(start, min(start + self.checkpoint_every, len(self.layers)), x)
        return x


class _Sequential(_Segments):
    """``checkpoint_sequential(layers, ⌈n/k⌉, x)`` in training (correct as ``sequential``), with hooks to break it."""

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and torch.is_grad_enabled()):
            return self.run(0, len(self.layers), x)
        return checkpoint_sequential(self.layers, self.segments(len(self.layers)), x, use_reentrant=self.use_reentrant)

    def segments(self, depth: int) -> int:
        return math.ceil(depth / self.checkpoint_every)


class SequentialFloorSegments(_Sequential):
    """Declared ``sequential``, but hands torch ⌊n/k⌋ segments (at least 1) instead of ⌈n/k⌉.

    The same results; where the two differ other layers are checkpointed (for k ≥ n, none either way).
    Caught by: ``checkpoint_equivalence:saved_activations`` (train: not the sequential scheme's bytes).
    """

    def segments(self, depth: int) -> int:
        return max(1, depth // self.checkpoint_every)


class SequentialReentrant(_Sequential):
    """Declared ``sequential``, with ``use_reentrant=True`` (torch's default when the flag is not passed).

    A first segment whose input does not require grad gets no parameter gradients.
    Caught by: ``checkpoint_equivalence:plain_stack`` (gradients in train mode).
    """

    use_reentrant = True
