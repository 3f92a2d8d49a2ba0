"""Gradient checkpointing, Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost" (arXiv 1604.06174), Sec. 4.3.

A stack of n layers is cut into segments of ``checkpoint_every`` = k consecutive layers; during
training only each segment's input is kept for backward, and the segment's forward is recomputed
when its gradient is needed. The activations kept drop from every layer's to the ⌈n/k⌉ segment
inputs plus one segment's worth during its recomputation: O(n/k) + O(k) (Sec. 4.3; k ≈ √n gives
O(√n)). Outputs and gradients are those of the plain stack: recomputation is the same arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint


def segment_starts(depth: int, checkpoint_every: int) -> range:
    """The index of each segment's first layer: 0, k, 2k, … below ``depth``.

    >>> list(segment_starts(5, 2))
    [0, 2, 4]
    """
    return range(0, depth, checkpoint_every)


class CheckpointedModule(nn.Module):
    """Runs ``layers`` in order; in training, each segment of ``checkpoint_every`` layers is checkpointed.

    Segments are [0, k), [k, 2k), …, the last one possibly shorter; each, the last included, runs
    under one ``torch.utils.checkpoint.checkpoint`` with ``use_reentrant=False`` (gradients reach the
    parameters even when the input does not require grad) and ``preserve_rng_state=True`` (dropout
    draws the same mask when recomputed). In eval mode, or with gradients disabled, nothing is
    checkpointed: the layers run as the plain stack. The given ``layers`` are used, not copied.

    >>> layers = nn.ModuleList([nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 2)])
    >>> module = CheckpointedModule(layers, checkpoint_every=2)
    >>> x = torch.randn(3, 4)
    >>> torch.equal(module(x), layers[2](layers[1](layers[0](x))))
    True
    """

    def __init__(self, layers: nn.ModuleList, checkpoint_every: int = 2) -> None:
        super().__init__()
        if not isinstance(layers, nn.ModuleList):
            raise TypeError(f"layers must be an nn.ModuleList, got {type(layers).__name__}")
        if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int) or checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be a positive int, got {checkpoint_every!r}")
        self.layers = layers
        self.checkpoint_every = checkpoint_every

    def forward(self, x: Tensor) -> Tensor:
        """x: the first layer's input -> the last layer's output (the plain stack's, bitwise)."""
        if not (self.training and torch.is_grad_enabled()):
            return self._segment(0, len(self.layers))(x)
        for start in segment_starts(len(self.layers), self.checkpoint_every):
            end = min(start + self.checkpoint_every, len(self.layers))
            x = checkpoint(self._segment(start, end), x, use_reentrant=False, preserve_rng_state=True)
        return x

    def _segment(self, start: int, end: int) -> Callable[[Tensor], Tensor]:
        """The plain forward of layers [start, end)."""

        def run(h: Tensor) -> Tensor:
            for layer in self.layers[start:end]:
                h = layer(h)
            return h

        return run

    def extra_repr(self) -> str:
        return f"checkpoint_every={self.checkpoint_every}"
