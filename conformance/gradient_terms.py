"""The magnitude of the terms a backward pass sums: the noise floor's scale for a gradient through code, not an
expression (:mod:`conformance.reference_gradient`; an expression's is :mod:`conformance.error_bounds`).

A vector-Jacobian product is a sum over the graph's paths of the cotangent times each path's local partials. Where
those terms cancel (the gradient of a normalised vector x/‖x‖ along x is exactly zero, computed as the difference of
two terms of size |g|/‖x‖), a correct computation's rounding error follows the terms, not the result. The terms'
summed magnitude is the same backward pass with every operation on an adjoint taken in absolute values:

    Σ_paths |cotangent| · Π |local partial|

:class:`TermMagnitudes` does that as a dispatch mode active during ``torch.autograd.grad``: it follows which tensors
derive from the (absolute) cotangent, runs the linear operations the chain rule applies to them (``mul``, ``div``,
``add``, ``sub``, ``neg``, ``sum``, matrix products) on absolute values, lets the operations that only move or select
values through, and computes the local partials (from the forward's saved tensors) with their real values. An
operation on an adjoint it does not know raises :class:`UnknownAdjointOp`; the caller then has no term bound.

>>> x = torch.tensor([3.0, 4.0], dtype=torch.float64, requires_grad=True)
>>> y = x / torch.linalg.vector_norm(x)
>>> g = torch.tensor([3.0, 4.0], dtype=torch.float64)  # along x: the VJP cancels to zero
>>> torch.autograd.grad(y, x, g, retain_graph=True)[0].abs().max().item() < 1e-15
True
>>> terms(y, [x], g)[0].tolist()  # |g|/‖x‖ + |x| (|g|·|x|)/‖x‖³
[1.2, 1.6]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

aten = torch.ops.aten

# the chain rule's operations on an adjoint: each taken in absolute values (sub as add, neg as abs)
LINEAR = {
    aten.mul, aten.div, aten.add, aten.sub, aten.neg, aten.sum, aten.mm, aten.bmm, aten.mv, aten.dot, aten.matmul,
    aten.addmm, aten.baddbmm, aten.addcmul, aten.mul_, aten.add_, aten.sub_, aten.div_, aten.neg_, aten.sum_to_size,
    aten.cumsum, aten.outer, aten.einsum,
}
# operations that move, select, place or copy values: run as they are (an adjoint's values stay non-negative)
STRUCTURAL = {
    aten.view, aten._unsafe_view, aten.reshape, aten.permute, aten.transpose, aten.t, aten.expand, aten.select,
    aten.select_backward, aten.slice, aten.slice_backward, aten.squeeze, aten.unsqueeze, aten.squeeze_,
    aten.unsqueeze_, aten.cat, aten.stack, aten.split, aten.split_with_sizes, aten.unbind, aten.clone, aten.copy_,
    aten.detach, aten.alias, aten.contiguous, aten._to_copy, aten.to, aten.where, aten.masked_fill, aten.masked_fill_,
    aten.index_select, aten.index_add, aten.index_add_, aten.index_put, aten.index_put_, aten.index, aten.gather,
    aten.scatter_add, aten.zeros_like, aten.ones_like, aten.empty_like, aten.new_zeros, aten.new_empty, aten.fill_,
    aten.zero_, aten.expand_as, aten.narrow, aten.diagonal, aten.diagonal_backward, aten.as_strided,
    aten.unfold, aten.flip, aten.roll, aten.repeat, aten.constant_pad_nd, aten.lift_fresh,
}
_SUBTRACTIONS = {aten.sub: aten.add, aten.sub_: aten.add_}


class UnknownAdjointOp(RuntimeError):
    """An operation on an adjoint that :class:`TermMagnitudes` does not know how to take in absolute values."""


class TermMagnitudes(TorchDispatchMode):
    """During a backward pass: every operation on a tensor derived from ``cotangents`` in absolute values."""

    def __init__(self, cotangents: Sequence[torch.Tensor]) -> None:
        super().__init__()
        self._adjoint: dict[int, torch.Tensor] = {id(c): c for c in cotangents}  # kept alive: ids stay unique

    def _is_adjoint(self, value: Any) -> bool:
        return isinstance(value, torch.Tensor) and id(value) in self._adjoint

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        flat, _ = tree_flatten((args, kwargs))
        if not any(self._is_adjoint(a) for a in flat):
            return func(*args, **kwargs)  # a local partial, from the forward's values: computed as it is
        packet = func.overloadpacket
        if packet in LINEAR:
            func = getattr(_SUBTRACTIONS[packet], func._overloadname) if packet in _SUBTRACTIONS else func
            args, kwargs = tree_map(_absolute, (args, kwargs))
        elif packet not in STRUCTURAL:
            raise UnknownAdjointOp(f"{packet} on an adjoint (no absolute-value form)")
        out = func(*args, **kwargs)
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self._adjoint[id(t)] = t
        return out


def _absolute(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.abs()
    if isinstance(value, float):
        return abs(value)
    return value


def terms(output: torch.Tensor, inputs: Sequence[torch.Tensor], cotangent: torch.Tensor) -> list[torch.Tensor | None]:
    """Per input, the summed magnitude of the terms of the vector-Jacobian product ``cotangentᵀ ∂output/∂input``
    (``None`` where the output does not reach it); raises :class:`UnknownAdjointOp` where the backward pass applies
    an operation to an adjoint that has no absolute-value form here."""
    start = cotangent.abs()
    with TermMagnitudes([start]):
        grads = torch.autograd.grad(output, list(inputs), start, allow_unused=True, retain_graph=True)
    return [None if g is None else g.detach() for g in grads]


__all__ = ["LINEAR", "STRUCTURAL", "TermMagnitudes", "UnknownAdjointOp", "terms"]
