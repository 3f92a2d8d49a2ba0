"""Pattern kind ``parameter_scaling``: selected parameters are scaled by a factor, nothing else changes.

For each example the check draws ``params`` (e.g. ``n_layers``), a seed and a small module tree:
containers and ``nn.ModuleList`` s whose children are named from the spec's ``names`` and whose
leaves are Linear layers (with and without bias), LayerNorm, RMSNorm, Embedding,
``nn.MultiheadAttention`` (``out_proj`` inside), bare parameters and buffers. Every parameter and
buffer is filled with N(0, 1) values from the seed, the implementation is called as
``f(module, *args, **kwargs)`` (the spec's ``call``), and then:

- every parameter whose qualified name (``named_parameters()``) contains one of the ``select``
  strings equals its old value times ``factor`` (an expression over the params), elementwise
  within 2 eps(dtype) relative plus the dtype's smallest subnormal: the factor rounded to the dtype,
  its computation (``1/sqrt``) and the product are three roundings of at most half an eps each;
- every other parameter and every buffer is bitwise unchanged;
- names, shapes, dtypes and devices of all parameters and buffers are unchanged.

Only trees with at least one selected and one unselected parameter are tried, so that every
example can see a wrong factor, a missed selection and a spill onto other parameters. The check is
deterministic: no false alarms to budget.

>>> from conformance.patterns import kinds
>>> sorted(kinds()["parameter_scaling"].required)
['factor', 'names', 'select']
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from hypothesis import strategies as st
from torch import nn

from conformance.dtype_helpers import eps, smallest_normal, torch_dtype
from conformance.patterns import PatternContext, PatternKind
from conformance.patterns.option_helpers import bad, bound, evaluate_scalar, parse_call, parse_params, parse_scalar
from conformance.patterns.search import search
from conformance.tolerance import Measurement

RELATIVE_ULPS = 2.0
MAX_DEPTH = 4
_IDENT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
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


# -- validation --------------------------------------------------------------------------------------------


def validate(options: Mapping[str, Any]) -> dict:
    """Normalise the options of one ``parameter_scaling`` entry (see ``docs/spec-schema.md``)."""
    params = parse_params(options.get("params", {}), ("params",), {"seed"})
    call = parse_call(options.get("call", {}), ("call",), set(params))
    factor = parse_scalar(options["factor"], ("factor",), {n for n, p in params.items() if p.numeric})
    select = options["select"]
    if not isinstance(select, list) or not select or not all(isinstance(s, str) and s for s in select):
        raise bad(("select",), f"expected a non-empty list of name fragments (strings), got {select!r}")
    names = _names(options["names"], select)
    leaves = options.get("leaves", list(LEAVES))
    if not isinstance(leaves, list) or not leaves or any(leaf not in LEAVES for leaf in leaves):
        raise bad(("leaves",), f"expected a non-empty list from {', '.join(LEAVES)}, got {leaves!r}")
    depth = options.get("depth", 3)
    if not isinstance(depth, int) or isinstance(depth, bool) or not 1 <= depth <= MAX_DEPTH:
        raise bad(("depth",), f"expected an integer 1..{MAX_DEPTH}, got {depth!r}")
    return {
        "params": params,
        "call": call,
        "factor": factor,
        "factor_text": str(options["factor"]),
        "select": tuple(select),
        "names": names,
        "leaves": tuple(leaves),
        "depth": depth,
    }


def _names(value: Any, select: list[str]) -> tuple[str, ...]:
    if not isinstance(value, list) or len(set(map(str, value))) != len(value):
        raise bad(("names",), f"expected a list of distinct attribute names, got {value!r}")
    reserved = set(dir(nn.Module()))
    for i, name in enumerate(value):
        if not isinstance(name, str) or not _IDENT_RE.match(name) or name in reserved:
            raise bad(
                ("names", i), f"expected an attribute name (letters, digits, '_') that nn.Module does not use, got {name!r}"
            )
    if not any(s in n for n in value for s in select) or all(any(s in n for s in select) for n in value):
        raise bad(("names",), f"expected names that contain one of {select} and names that do not (both kinds are drawn)")
    return tuple(value)


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
    flags = {selected(n, select) for n, _ in _as_module(tree).named_parameters()}
    return flags == {True, False}


def selected(name: str, select: tuple[str, ...]) -> bool:
    return any(s in name for s in select)


def run(ctx: PatternContext) -> Measurement:
    target = ctx.target()
    return search(ctx, draws(ctx.options), lambda draw: measure(ctx, target, draw))


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
    worst = max(scaled, key=lambda m: m.ratio)
    return Measurement(worst.max_abs_err, worst.max_rel_err, worst.tolerance, True, f"{len(scaled)} scaled, worst {worst.detail}")


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


KIND = PatternKind(
    name="parameter_scaling",
    required=frozenset({"select", "factor", "names"}),
    optional=frozenset({"params", "call", "leaves", "depth"}),
    validate=validate,
    run=run,
    dtypes=("float32",),
)
