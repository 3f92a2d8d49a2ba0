"""Shared by module pattern kinds: build the module a spec's ``interface`` describes, and inputs.

Unlike the equation checks, which substitute drawn weights with ``functional_call``, these kinds
test the module as a user gets it: its own parameters, its own modes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from conformance.patterns import PatternContext


def build_module(ctx: PatternContext, params: Mapping[str, Any] | None = None) -> torch.nn.Module:
    """The implementation constructed from the interface's ``init`` at the context's device and dtype."""
    from conformance.calling import _init_value
    from conformance.checks import CheckSkipped
    from conformance.dtype_helpers import torch_dtype

    iface = ctx.interface
    if iface is None:
        raise ValueError(f"spec {ctx.spec.id!r} does not describe a module")
    if iface.kind != "module":
        raise CheckSkipped(f"{ctx.ref} is called as a function (its declared interface): this pattern checks a module")
    # the implementation's declared options (mod:Cls[unit_offset=true]) too: an init may pass one on
    scalars = {**ctx.options["sizes"], **ctx.options["params"], **ctx.spec.fixed_params(ctx.ref), **(params or {})}
    module = ctx.target()(**{k: _init_value(e, scalars) for k, e in iface.init.items()})
    return module.to(device=ctx.device, dtype=torch_dtype(ctx.dtype))


def call_inputs(ctx: PatternContext, seed: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Random positional and keyword arguments for the interface (optional inputs left out)."""
    from conformance.dtype_helpers import torch_dtype
    from conformance.strategies import shape_of

    spec, iface = ctx.spec, ctx.interface
    assert iface is not None
    sizes, params = ctx.options["sizes"], ctx.options["params"]
    generator = torch.Generator().manual_seed(seed)
    values: dict[str, Any] = {**sizes, **params, **spec.fixed_params(ctx.ref)}  # an interface may pass a size or an option
    for name, inp in spec.inputs.items():
        if inp.optional or name in iface.state.values():
            continue
        shape = shape_of(inp.shape, sizes)
        if inp.kind == "bool":
            values[name] = torch.ones(shape, dtype=torch.bool, device=ctx.device)
        else:
            values[name] = torch.randn(shape, generator=generator, dtype=torch.float64).to(ctx.device, torch_dtype(ctx.dtype))
    from conformance.calling import bind

    tensors = {n: v for n, v in values.items() if n in spec.inputs}
    scalars = {n: v for n, v in values.items() if n not in spec.inputs}
    present = {n: n in values for n in spec.inputs}  # an optional input left out: the implementation's default
    return bind(spec, iface, tensors, scalars, ctx.dtype, ctx.device, present)


def outputs_of(ctx: PatternContext, result: Any) -> Any:
    """What the module returned, as the spec's outputs: picked from a tuple where the interface's ``returns`` says,
    in the spec's axis order (:func:`conformance.calling.in_spec_layout`)."""
    from conformance.calling import in_spec_layout

    return in_spec_layout(ctx.spec, ctx.interface, result)
