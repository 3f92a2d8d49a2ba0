"""Find an implementation by reference and call it the way its spec's ``interface`` says.

A reference is ``package.module:attribute`` or ``path/to/file.py:attribute``, resolved by
:mod:`conformance.refs` (``resolve`` and ``ImplementationError`` are re-exported here). Functions are
called with the spec's ``args``/``kwargs``; modules are built from ``init``, moved to the device
and dtype, and called through :func:`torch.func.functional_call` so that ``state`` tensors
(weights drawn by the harness, never only the default initialisation) can carry gradients; the
returned callable's ``module`` attribute is the instance it calls.

>>> resolve("implementations.rmsnorm:RMSNorm").__name__
'RMSNorm'
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

from conformance.dtype_helpers import torch_dtype
from conformance.evaluate import NumpyBackend, evaluate
from conformance.model import Interface
from conformance.refs import ImplementationError, resolve
from conformance.spec import EquationSpec

__all__ = [
    "ImplementationError", "bind", "build_callable", "call_interface", "computed_values", "in_spec_layout", "resolve",
]


def call_interface(
    spec: EquationSpec,
    ref: str,
    scalars: Mapping[str, Any],
    device: str,
    dtype: str,
    present: Mapping[str, bool],
    interface: Interface | None = None,
) -> Callable[[Mapping[str, torch.Tensor]], Any]:
    """A function from input tensors (by spec name) to whatever the implementation returns (its outputs in the
    spec's axis order where the interface declares ``output_layouts``).

    ``interface`` is the implementation's own (:attr:`conformance.model.Implementation.interface`), else the
    spec's: inputs with a declared layout are permuted into it before the call.

    Absent optional inputs (``present[name]`` false) are not passed at all, so the implementation's
    own default applies. Modules are built once, moved to the device and dtype, and called through
    ``functional_call`` with the drawn ``state`` tensors.
    """
    target = resolve(ref, spec.ref_base(ref))
    iface = interface or spec.interface
    if iface is None:
        raise ValueError(f"spec {spec.id!r} has no interface to call")

    def arguments(tensors: Mapping[str, torch.Tensor]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return bind(spec, iface, tensors, scalars, dtype, device, present)

    if iface.kind == "function":

        def call(tensors: Mapping[str, torch.Tensor]) -> Any:
            args, kwargs = arguments(tensors)
            return in_spec_layout(spec, iface, target(*args, **kwargs))

        return call

    module = target(**{k: _init_value(e, scalars) for k, e in iface.init.items()})
    module = module.to(device=device, dtype=torch_dtype(dtype)).train(iface.train)

    def call_module(tensors: Mapping[str, torch.Tensor]) -> Any:
        args, kwargs = arguments(tensors)
        named = computed_values(iface, tensors, scalars, dtype, device, iface.state.values())
        state = {attr: named.get(name, tensors.get(name)) for attr, name in iface.state.items()}  # drawn, with gradients
        return in_spec_layout(spec, iface, torch.func.functional_call(module, state, args, kwargs))

    call_module.module = module  # type: ignore[attr-defined]  # the instance it calls (the gradient audit's param_flow)
    return call_module


def computed_values(
    iface: Interface,
    tensors: Mapping[str, torch.Tensor],
    scalars: Mapping[str, Any],
    dtype: str,
    device: str,
    names: Iterable[str] | None = None,
) -> dict[str, Any]:
    """The interface's ``values`` (those among ``names``): each expression evaluated by torch on the drawn tensors,
    gradients flowing."""
    wanted = {n: e for n, e in iface.values.items() if names is None or n in set(names)}
    if not wanted:
        return {}
    from conformance.evaluate_torch import TorchBackend

    backend = TorchBackend(torch_dtype(dtype), device)
    scope = {**scalars, **tensors}
    # a value of an absent optional input (a mask not drawn) is absent too: its keyword is left out
    return {
        name: evaluate(expr, dict(scope), backend)
        for name, expr in wanted.items()
        if all(str(n) in scope for n in expr.free_symbols)
    }


def bind(
    spec: EquationSpec,
    iface: Interface,
    tensors: Mapping[str, torch.Tensor],
    scalars: Mapping[str, Any],
    dtype: str,
    device: str,
    present: Mapping[str, bool],
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Positional and keyword arguments as ``iface`` says: inputs (permuted into a declared layout), params, sizes,
    computed ``values`` and ``constants``; an absent optional input is left out (the implementation's default)."""
    named = computed_values(iface, tensors, scalars, dtype, device, [*iface.args, *iface.kwargs.values()])

    def value(name: str) -> Any:
        if name in named:
            return named[name]
        if name not in spec.inputs:
            return scalars[name]
        return tensors[name].permute(iface.layouts[name]) if name in iface.layouts else tensors[name]

    args = tuple(value(n) for n in iface.args)
    kwargs = {
        kw: value(n) for kw, n in iface.kwargs.items() if present.get(n, True) and (n not in iface.values or n in named)
    }
    return args, {**kwargs, **iface.constants}


def in_spec_layout(spec: EquationSpec, iface: Interface, result: Any) -> Any:
    """The outputs where ``returns`` says they are in a returned tuple, and those an ``output_layouts`` names
    permuted from the implementation's axis order back to the spec's. Anything else as it is (a wrong result is
    the checks' to report)."""
    names = list(spec.outputs)
    if iface.returns is not None and isinstance(result, (tuple, list)) and max(iface.returns) < len(result):
        picked = [result[i] for i in iface.returns]
        result = picked[0] if len(names) == 1 else tuple(picked)
    if not iface.output_layouts:
        return result

    def back(name: str, value: Any) -> Any:
        perm = iface.output_layouts.get(name)
        if perm is None or not isinstance(value, torch.Tensor) or value.dim() != len(perm):
            return value  # a wrong result is the checks' to report (output_contract), not the call's to refuse
        return value.permute([perm.index(axis) for axis in range(len(perm))])

    if len(names) == 1:
        return back(names[0], result)
    if isinstance(result, (tuple, list)) and len(result) == len(names):
        return type(result)(back(n, v) for n, v in zip(names, result))
    return result


def build_callable(
    spec: EquationSpec,
    ref: str,
    scalars: Mapping[str, Any],
    device: str,
    dtype: str,
    present: Mapping[str, bool],
    interface: Interface | None = None,
) -> Callable[[Mapping[str, torch.Tensor]], torch.Tensor]:
    """:func:`call_interface` for a spec with one output: the implementation's output tensor."""
    call = call_interface(spec, ref, scalars, device, dtype, present, interface)
    return lambda tensors: _single(call(tensors), ref)


def _init_value(expr: Any, scalars: Mapping[str, Any]) -> Any:
    """A constructor argument: a symbol or param passes its value as is; an expression is evaluated."""
    if expr.is_Symbol and expr.name in scalars:
        return scalars[expr.name]
    value = float(evaluate(expr, scalars, NumpyBackend()))
    return int(value) if value.is_integer() else value


def _single(result: Any, ref: str) -> torch.Tensor:
    if isinstance(result, torch.Tensor):
        return result
    if isinstance(result, (tuple, list)) and len(result) == 1 and isinstance(result[0], torch.Tensor):
        return result[0]
    raise TypeError(f"{ref} returned {type(result).__name__}; the spec expects one tensor")
