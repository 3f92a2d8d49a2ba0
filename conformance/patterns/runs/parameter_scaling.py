"""What runs for the pattern kind ``parameter_scaling`` (:mod:`conformance.patterns.parameter_scaling`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

import torch
from hypothesis import strategies as st
from torch import nn

from conformance.dtype_helpers import eps, smallest_normal, torch_dtype
from conformance.patterns import PatternContext
from conformance.patterns.helpers.bounds import bound
from conformance.patterns.helpers.options import evaluate_scalar
from conformance.patterns.helpers.search import search
from conformance.tolerance import Measurement, worst

RELATIVE_ULPS = 2.0
_INTEGER_VIEW = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _rms_norm(width: int) -> nn.Module:
    from implementations.rmsnorm import RMSNorm  # the project's RMSNorm (the guide's pattern 4)

    return RMSNorm(width)


# leaf kind -> builder from a width w >= 1 (a module, an nn.Parameter or a plain tensor for a buffer)
LEAVES: dict[str, Callable[[int], nn.Module | torch.Tensor]] = {
    "linear": lambda w: nn.Linear(w, w + 1),
    "linear_no_bias": lambda w: nn.Linear(w, w + 1, bias=False),
    "layer_norm": lambda w: nn.LayerNorm(w),
    "rms_norm": _rms_norm,
    "embedding": lambda w: nn.Embedding(w + 1, w),
    "attention": lambda w: nn.MultiheadAttention(w, 1),
    "parameter": lambda w: nn.Parameter(torch.empty(w, w + 1)),
    "buffer": lambda w: torch.empty(w + 1),
}


@dataclass(frozen=True)
class Node:
    """A drawn module tree: a leaf (``kind`` in LEAVES, ``width``), a ``container`` or a ``module_list``."""

    name: str
    kind: str
    width: int = 1
    children: tuple[Node, ...] = ()

    def __repr__(self) -> str:
        if self.kind in LEAVES:
            return f"{self.name}:{self.kind}[{self.width}]"
        inner = ", ".join(map(repr, self.children))
        return f"{self.name}:{'list' if self.kind == 'module_list' else ''}({inner})"

    def build(self) -> nn.Module | torch.Tensor:
        if self.kind in LEAVES:
            return LEAVES[self.kind](self.width)
        if self.kind == "module_list":
            return nn.ModuleList(_as_module(child) for child in self.children)
        module = nn.Module()
        for child in self.children:
            _attach(module, child.name, child.build())
        return module


def _attach(module: nn.Module, name: str, item: nn.Module | torch.Tensor) -> None:
    if isinstance(item, nn.Parameter):
        module.register_parameter(name, item)
    elif isinstance(item, torch.Tensor):
        module.register_buffer(name, item)
    else:
        module.add_module(name, item)


def _as_module(node: Node) -> nn.Module:
    """A ModuleList holds modules only: a bare parameter or buffer is wrapped under its name."""
    item = node.build()
    if isinstance(item, nn.Module):
        return item
    holder = nn.Module()
    _attach(holder, node.name, item)
    return holder


def trees(names: tuple[str, ...], leaves: tuple[str, ...], depth: int) -> st.SearchStrategy[Node]:
    """Module trees of at most ``depth`` levels below the root, children named from ``names``."""
    leaf = st.builds(Node, st.sampled_from(names), st.sampled_from(leaves), st.integers(1, 4))

    def level(d: int) -> st.SearchStrategy[Node]:
        if d == 0:
            return leaf
        inner = level(d - 1)
        siblings = st.lists(inner, min_size=1, max_size=3, unique_by=lambda n: n.name).map(tuple)
        container = st.builds(Node, st.sampled_from(names), st.just("container"), st.just(1), siblings)
        listed = st.builds(Node, st.sampled_from(names), st.just("module_list"), st.just(1), siblings)
        return st.one_of(leaf, container, listed)

    top = st.lists(level(depth - 1), min_size=1, max_size=4, unique_by=lambda n: n.name).map(tuple)
    return st.builds(Node, st.just("root"), st.just("container"), st.just(1), top)


# -- the check -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Draw:
    tree: Node
    params: Mapping[str, Any]
    seed: int

    def __repr__(self) -> str:
        return f"params={dict(self.params)}, seed={self.seed}, tree={self.tree!r}"


def draws(options: Mapping[str, Any]) -> st.SearchStrategy[Draw]:
    """Examples whose tree has a selected and an unselected parameter."""
    params = st.fixed_dictionaries({n: p.strategy() for n, p in options["params"].items()})
    tree = trees(options["names"], options["leaves"], options["depth"]).filter(lambda t: _mixed(t, options["select"]))
    return st.builds(Draw, tree, params, st.integers(0, 2**32 - 1))


def _mixed(tree: Node, select: tuple[str, ...]) -> bool:
    """Whether the tree has a selected and an unselected parameter (from its names: nothing is built)."""
    flags = {selected(n, select) for n in parameter_names(tree)}
    return flags == {True, False}


def selected(name: str, select: tuple[str, ...]) -> bool:
    return any(s in name for s in select)


def parameter_names(root: Node) -> list[str]:
    """The qualified names ``_as_module(root).named_parameters()`` gives, in its order, without building a module."""
    return _names_below(root, "")


def _names_below(node: Node, prefix: str) -> list[str]:
    if node.kind == "parameter":
        return [prefix]
    if node.kind == "buffer":
        return []
    if node.kind in LEAVES:
        return [f"{prefix}.{n}" for n in _leaf_parameters(node.kind)]
    if node.kind == "module_list":  # every child a module (a bare parameter in _as_module's holder, under its name)
        places = [
            (c, f"{_join(prefix, str(i))}.{c.name}" if c.kind == "parameter" else _join(prefix, str(i)))
            for i, c in enumerate(node.children)
        ]
    else:  # a module's own parameters come before its submodules'
        places = sorted(((c, _join(prefix, c.name)) for c in node.children), key=lambda cp: cp[0].kind != "parameter")
    return [name for child, at in places for name in _names_below(child, at)]


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


@cache
def _leaf_parameters(kind: str) -> tuple[str, ...]:
    """A leaf module's own parameter names (the same at every width): built once, at width 1."""
    return tuple(n for n, _ in LEAVES[kind](1).named_parameters())


def simpler(draw: Draw, select: tuple[str, ...]) -> Iterator[Draw]:
    """Simpler draws than ``draw`` whose tree still has a selected and an unselected parameter, most promising first.

    Each child removed (a container keeps at least one), each container replaced by one of its
    children (where the name stays unique among its siblings), then each leaf at width 1. Params and
    seed are kept: the tree's size and structure are what shrink.
    """
    for tree in _smaller_trees(draw.tree):
        if _mixed(tree, select):
            yield replace(draw, tree=tree)


def _smaller_trees(node: Node) -> Iterator[Node]:
    if node.kind in LEAVES:
        if node.width > 1:
            yield replace(node, width=1)
        return
    kids = node.children
    if len(kids) > 1:
        for i in range(len(kids)):
            yield replace(node, children=kids[:i] + kids[i + 1 :])
    others = {c.name for c in kids}
    for i, child in enumerate(kids):
        for grandchild in child.children:
            if grandchild.name == child.name or grandchild.name not in others:
                yield replace(node, children=(*kids[:i], grandchild, *kids[i + 1 :]))
    for i, child in enumerate(kids):
        for smaller in _smaller_trees(child):
            yield replace(node, children=(*kids[:i], smaller, *kids[i + 1 :]))


def run(ctx: PatternContext) -> Measurement:
    target = ctx.target()
    shrunk = lambda draw: simpler(draw, ctx.options["select"])  # noqa: E731
    return search(ctx, draws(ctx.options), lambda draw: measure(ctx, target, draw), simpler=shrunk)


def measure(ctx: PatternContext, target: Callable, draw: Draw) -> Measurement:
    """Build and fill the tree, call the implementation, compare every tensor with its snapshot."""
    opts = ctx.options
    module = _as_module(draw.tree).to(device=ctx.device, dtype=torch_dtype(ctx.dtype))
    _fill(module, draw.seed)
    before_params = {n: p.detach().clone() for n, p in module.named_parameters()}
    before_buffers = {n: b.detach().clone() for n, b in module.named_buffers()}
    opts["call"].invoke(target, module, draw.params)
    after_params = {n: p.detach() for n, p in module.named_parameters()}
    after_buffers = {n: b.detach() for n, b in module.named_buffers()}
    changed = _metadata_change(before_params, after_params) or _metadata_change(before_buffers, after_buffers)
    if changed:
        basis = "parameters and buffers keep their names, shapes, dtypes and devices"
        return Measurement(math.inf, math.inf, bound(0.0, basis), False, f"{changed}; example: {draw!r}")
    factor = evaluate_scalar(opts["factor"], draw.params)
    findings = [_untouched(n, before_buffers[n], after_buffers[n], "buffer") for n in before_buffers]
    for name, old in before_params.items():
        if selected(name, opts["select"]):
            findings.append(_scaled(name, old, after_params[name], factor, opts["factor_text"], ctx.dtype))
        else:
            findings.append(_untouched(name, old, after_params[name], f"not selected (no {' / '.join(opts['select'])})"))
    failed = [m for m in findings if not m.passed]
    if failed:
        return Measurement(
            failed[0].max_abs_err,
            failed[0].max_rel_err,
            failed[0].tolerance,
            False,
            _first(failed, 4) + f"; example: {draw!r}",
        )
    scaled = [m for m in findings if m.tolerance is not None and m.tolerance.atol > 0]
    chosen = worst(scaled)
    detail = f"{len(scaled)} scaled, worst {chosen.detail}"
    return Measurement(chosen.max_abs_err, chosen.max_rel_err, chosen.tolerance, True, detail)


def _first(failed: list[Measurement], shown: int) -> str:
    """The details of the first ``shown`` failures, and how many more there are."""
    more = f"; and {len(failed) - shown} more" if len(failed) > shown else ""
    return "; ".join(m.detail for m in failed[:shown]) + more


def _fill(module: nn.Module, seed: int) -> None:
    """N(0, 1) values from ``seed`` in every parameter and buffer (drawn in float64 on the CPU: device independent)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            tensor.copy_(torch.randn(tensor.shape, generator=generator, dtype=torch.float64))


def _metadata_change(before: Mapping[str, torch.Tensor], after: Mapping[str, torch.Tensor]) -> str:
    def meta(tensors: Mapping[str, torch.Tensor]) -> dict[str, tuple]:
        return {n: (tuple(t.shape), t.dtype, t.device) for n, t in tensors.items()}

    old, new = meta(before), meta(after)
    if old == new:
        return ""
    diff = sorted(set(old.items()) ^ set(new.items()), key=str)
    return f"names, shapes, dtypes or devices changed: {diff}"


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(_INTEGER_VIEW[t.element_size()])


def _untouched(name: str, before: torch.Tensor, after: torch.Tensor, why: str) -> Measurement:
    if torch.equal(_bits(before), _bits(after)):
        return Measurement(0.0, 0.0, bound(0.0, "bitwise unchanged"), True, f"{name} unchanged")
    diff = (after.double() - before.double()).abs()
    err = float(diff.nan_to_num(math.inf).max())
    ratio = _ratio(before, after)
    detail = f"{name}: {why}, must stay bitwise unchanged; changed (max |Δ| {err:.4g}, after/before ≈ {ratio:.6g})"
    return Measurement(err, err, bound(0.0, "bitwise unchanged"), False, detail)


def _scaled(name: str, before: torch.Tensor, after: torch.Tensor, factor: float, text: str, dtype: str) -> Measurement:
    expected = before.double() * factor
    diff = (after.double() - expected).abs().nan_to_num(math.inf)  # (same shape as the parameter)
    allowed = RELATIVE_ULPS * eps(dtype) * expected.abs() + smallest_normal(dtype) * eps(dtype)
    ratio = diff / allowed
    worst = int(ratio.flatten().argmax())
    err, atol = float(diff.flatten()[worst]), float(allowed.flatten()[worst])
    rel = err / max(float(expected.abs().flatten()[worst]), smallest_normal(dtype))
    basis = (
        f"{RELATIVE_ULPS:g} eps({dtype}) × |factor × before| + smallest subnormal (factor, its computation, the product rounded)"
    )
    passed = bool((diff <= allowed).all())
    detail = (
        f"{name}: × {factor:.6g} ({text}) within {RELATIVE_ULPS:g} eps"
        if passed
        else f"{name}: expected × {factor:.6g} ({text}), got after/before ≈ {_ratio(before, after):.6g} (max |Δ| {err:.4g})"
    )
    return Measurement(err, rel, bound(atol, basis), passed, detail)


def _ratio(before: torch.Tensor, after: torch.Tensor) -> float:
    """The median of after/before over nonzero old values: the factor that was applied, if one was."""
    b, a = before.double().flatten(), after.double().flatten()
    keep = b != 0
    return float((a[keep] / b[keep]).median()) if keep.any() else math.nan
