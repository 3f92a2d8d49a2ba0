"""Building and running the layer stacks of the checkpoint kinds: shared by both checkpoint runs.

:mod:`conformance.patterns.runs.checkpoint_equivalence` and
:mod:`conformance.patterns.runs.checkpoint_compiled` build a :class:`StackPlan`'s layers the same way,
run the plain stack and the module under test from the same RNG state, and collect every result.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from conformance.dtype_helpers import torch_dtype
from conformance.patterns.helpers.stack_plans import LayerPlan, StackPlan

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}


class Residual(nn.Module):
    """x + activation(Linear(x)): a residual block (the input is used twice)."""

    def __init__(self, width: int, activation: str) -> None:
        super().__init__()
        self.linear = nn.Linear(width, width)
        self.activation = ACTIVATIONS[activation]()

    def forward(self, x: Tensor) -> Tensor:
        return x + self.activation(self.linear(x))


def _layer(plan: LayerPlan) -> nn.Module:
    if plan.kind == "linear":
        return nn.Sequential(nn.Linear(plan.width_in, plan.width_out), ACTIVATIONS[plan.activation]())
    if plan.kind == "residual":
        return Residual(plan.width_in, plan.activation)
    if plan.kind == "dropout":
        return nn.Dropout(plan.p)
    return nn.LayerNorm(plan.width_in) if plan.kind == "layernorm" else nn.BatchNorm1d(plan.width_in)


def build_layers(plan: StackPlan, device: str, dtype: str) -> nn.ModuleList:
    """The plan's layers with values drawn from its seed (never the default initialisation).

    Identical on every call: the plain stack, its repeat and the module under test each get a copy.
    Weights are U(±√(3/fan_in)), norm gains U(0.5, 1.5), biases U(±0.5), BatchNorm running mean
    U(±0.5) and variance U(0.5, 1.5), so the eval-mode statistics matter too.
    """
    with torch.random.fork_rng(devices=[]):  # construction draws default values from the global RNG
        layers = nn.ModuleList(_layer(p) for p in plan.layers)
    gen = torch.Generator().manual_seed(plan.seed)
    with torch.no_grad():
        for name, tensor in [*layers.named_parameters(), *layers.named_buffers()]:
            if tensor.is_floating_point():
                tensor.copy_(_initial_value(name, tensor, gen))
    return layers.to(device=device, dtype=torch_dtype(dtype))


def _initial_value(name: str, tensor: Tensor, gen: torch.Generator) -> Tensor:
    u = torch.rand(tensor.shape, generator=gen, dtype=torch.float64)  # U(0, 1)
    if tensor.dim() == 2:  # a Linear weight (out, in)
        return (2 * u - 1) * math.sqrt(3 / tensor.shape[1])
    if name.endswith(("running_var", "weight")):  # norm gains, BatchNorm variance
        return 0.5 + u
    return u - 0.5  # biases, BatchNorm running mean


def stack_inputs(plan: StackPlan, device: str, dtype: str) -> tuple[Tensor, Tensor]:
    """The input x (B, D₀) and the cotangent (B, D_n), drawn from the plan's seed."""
    gen = torch.Generator().manual_seed(plan.seed + 1)
    x = torch.randn(plan.batch, plan.layers[0].width_in, generator=gen, dtype=torch.float64)
    g = torch.randn(plan.batch, plan.layers[-1].width_out, generator=gen, dtype=torch.float64)
    return x.to(device=device, dtype=torch_dtype(dtype)), g.to(device=device, dtype=torch_dtype(dtype))


def rng_devices(device: str) -> list[int]:
    if torch.device(device).type != "cuda":
        return []
    index = torch.device(device).index
    return [torch.cuda.current_device() if index is None else index]


Forward = Callable[[Tensor], Tensor]


def plain_forward(layers: nn.ModuleList, inputs: list[Tensor] | None = None) -> Forward:
    """``for layer in layers: x = layer(x)``; records each layer's input in ``inputs`` if given."""

    def forward(x: Tensor) -> Tensor:
        for layer in layers:
            if inputs is not None:
                inputs.append(x)
            x = layer(x)
        return x

    return forward


def module_forward(target: Any, layers: nn.ModuleList, plan: StackPlan, mode: str) -> Forward:
    layers.train(mode == "train")
    module = target(layers, checkpoint_every=plan.checkpoint_every)
    if isinstance(module, nn.Module):
        module.train(mode == "train")
    return module


# --- equivalence --------------------------------------------------------------------------------


def run_results(make: Callable[[nn.ModuleList], Forward], plan: StackPlan, device: str, dtype: str, mode: str) -> dict:
    """Everything one run produces, by name: output, buffers after forward, gradients (None: none)."""
    layers = build_layers(plan, device, dtype)
    layers.train(mode == "train")
    forward = make(layers)
    x, g = stack_inputs(plan, device, dtype)
    x.requires_grad_(plan.input_requires_grad)
    out: dict[str, Tensor | None] = {}
    with torch.random.fork_rng(devices=rng_devices(device)):
        torch.manual_seed(plan.seed)
        y = forward(x)
        out["output"] = y.detach().clone()
        out.update({f"buffer layers.{n} after forward": b.detach().clone() for n, b in layers.named_buffers()})
        if y.requires_grad and y.shape == g.shape:
            y.backward(g)
    if plan.input_requires_grad:
        out["gradient of the input"] = x.grad
    out.update({f"gradient of layers.{n}": p.grad for n, p in layers.named_parameters()})
    return out


def results_no_grad(make: Callable[[nn.ModuleList], Forward], plan: StackPlan, device: str, dtype: str) -> dict:
    """Train mode under ``torch.no_grad()``: output and buffers after forward."""
    layers = build_layers(plan, device, dtype)
    layers.train(True)
    forward = make(layers)
    x, _ = stack_inputs(plan, device, dtype)
    with torch.random.fork_rng(devices=rng_devices(device)), torch.no_grad():
        torch.manual_seed(plan.seed)
        y = forward(x)
    out = {"output under no_grad": y.detach().clone()}
    out.update({f"buffer layers.{n} after forward under no_grad": b.detach().clone() for n, b in layers.named_buffers()})
    return out



@contextlib.contextmanager
def one_intra_op_thread() -> Iterator[None]:
    """One CPU intra-op thread for the duration (the previous count is restored).

    The drawn tensors are tiny: more threads only add synchronisation, ten times slower on a busy
    machine. Plain stack and module run under the same setting, so the comparison is unaffected.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)

