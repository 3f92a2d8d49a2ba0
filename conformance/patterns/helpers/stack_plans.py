"""The layer stacks the checkpoint kinds run, as plain data (torch-free): what a failing row's example holds.

A stack is run under one *scheme* (the implementation's declared option ``scheme``): which layers
``checkpoint_every`` = k puts under a checkpoint, as :meth:`StackPlan.regions`.

``per_layer`` (the default, the guide's reading)
    layers 0, k, 2k, … each under its own checkpoint (``i % k == 0``), every other layer plainly.
``segments``
    segments [0, k), [k, 2k), … (the last one possibly shorter), each under one checkpoint.
``sequential``
    ``torch.utils.checkpoint.checkpoint_sequential(layers, ⌈n/k⌉, x)``: torch cuts s = n // ⌈n/k⌉
    layers per segment, checkpoints the first ⌈n/k⌉ − 1 segments [0, s), [s, 2s), … and runs the
    rest, [(⌈n/k⌉ − 1)·s, n), plainly (for k ≥ n nothing is checkpointed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class LayerPlan:
    """One layer of a drawn stack."""

    kind: str  # one of LAYER_KINDS
    width_in: int
    width_out: int
    activation: str | None = None  # linear and residual layers
    p: float | None = None  # dropout

    def describe(self) -> str:
        if self.kind == "linear":
            return f"Linear({self.width_in}→{self.width_out})+{self.activation}"
        if self.kind == "residual":
            return f"Residual(x + {self.activation}(Linear({self.width_in}→{self.width_in})(x)))"
        if self.kind == "dropout":
            return f"Dropout(p={self.p!r})"
        return f"{'LayerNorm' if self.kind == 'layernorm' else 'BatchNorm1d'}({self.width_in})"


SCHEMES = ("per_layer", "segments", "sequential")
DEFAULT_SCHEME = "per_layer"


@dataclass(frozen=True)
class Region:
    """Layers [start, end) and whether they run under one checkpoint (else plainly)."""

    start: int
    end: int
    checkpointed: bool

    def describe(self) -> str:
        return f"{'ckpt' if self.checkpointed else 'plain'}[{self.start}, {self.end})"


def regions(depth: int, k: int, scheme: str) -> tuple[Region, ...]:
    """The stack's layers in order, cut into checkpointed and plain regions under ``scheme`` (module docstring).

    >>> [r.describe() for r in regions(5, 2, "per_layer")]
    ['ckpt[0, 1)', 'plain[1, 2)', 'ckpt[2, 3)', 'plain[3, 4)', 'ckpt[4, 5)']
    >>> [r.describe() for r in regions(5, 2, "segments")]
    ['ckpt[0, 2)', 'ckpt[2, 4)', 'ckpt[4, 5)']
    >>> [r.describe() for r in regions(5, 2, "sequential")]  # ⌈5/2⌉ = 3 segments of 5 // 3 = 1 layer
    ['ckpt[0, 1)', 'ckpt[1, 2)', 'plain[2, 5)']
    """
    if scheme == "per_layer":
        return tuple(Region(i, i + 1, i % k == 0) for i in range(depth))
    if scheme == "segments":
        return tuple(Region(s, min(s + k, depth), True) for s in range(0, depth, k))
    if scheme == "sequential":
        count = -(-depth // k)
        size = depth // count
        out = [Region(s, s + size, True) for s in range(0, size * (count - 1), size)]
        return (*out, Region(size * (count - 1), depth, False))
    raise ValueError(f"unknown checkpointing scheme {scheme!r} (expected one of {', '.join(SCHEMES)})")


@dataclass(frozen=True)
class StackPlan:
    """A drawn stack and how it is run: layers, k, batch size, input's requires_grad, seed."""

    layers: tuple[LayerPlan, ...]
    checkpoint_every: int
    batch: int
    input_requires_grad: bool
    seed: int
    scheme: str = DEFAULT_SCHEME

    @property
    def depth(self) -> int:
        return len(self.layers)

    def regions(self) -> tuple[Region, ...]:
        """Which layers run under a checkpoint, by the plan's scheme (:func:`regions`)."""
        return regions(self.depth, self.checkpoint_every, self.scheme)

    def describe(self) -> str:
        cut = " ".join(r.describe() for r in self.regions())
        return (
            f"{' · '.join(layer.describe() for layer in self.layers)}; checkpoint_every={self.checkpoint_every} "
            f"(scheme {self.scheme}: {cut}); "
            f"x: ({self.batch}, {self.layers[0].width_in}), requires_grad={self.input_requires_grad}; seed {self.seed}"
        )


def plan_to_dict(plan: StackPlan) -> dict[str, Any]:
    """A stack as JSON-able data: the ``falsifying_example`` of a failing row.

    >>> plan = StackPlan((LayerPlan("dropout", 2, 2, p=0.5),), 1, 2, False, 3)
    >>> plan_from_dict(plan_to_dict(plan)) == plan
    True
    """
    return asdict(plan)


def plan_from_dict(data: Mapping[str, Any]) -> StackPlan:
    """The stack :func:`plan_to_dict` describes."""
    layers = tuple(LayerPlan(**layer) for layer in data["layers"])
    scheme = data.get("scheme", DEFAULT_SCHEME)
    return StackPlan(layers, data["checkpoint_every"], data["batch"], data["input_requires_grad"], data["seed"], scheme)
