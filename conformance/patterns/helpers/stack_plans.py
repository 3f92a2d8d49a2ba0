"""The layer stacks the checkpoint kinds run, as plain data (torch-free): what a failing row's example holds."""

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


@dataclass(frozen=True)
class StackPlan:
    """A drawn stack and how it is run: layers, k, batch size, input's requires_grad, seed."""

    layers: tuple[LayerPlan, ...]
    checkpoint_every: int
    batch: int
    input_requires_grad: bool
    seed: int

    @property
    def depth(self) -> int:
        return len(self.layers)

    def segment_starts(self) -> range:
        """Segments [0, k), [k, 2k), …: the documented meaning of ``checkpoint_every``."""
        return range(0, self.depth, self.checkpoint_every)

    def describe(self) -> str:
        k, n = self.checkpoint_every, self.depth
        segments = " ".join(f"[{s}, {min(s + k, n)})" for s in self.segment_starts())
        return (
            f"{' · '.join(layer.describe() for layer in self.layers)}; checkpoint_every={k} (segments {segments}); "
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
    return StackPlan(layers, data["checkpoint_every"], data["batch"], data["input_requires_grad"], data["seed"])

