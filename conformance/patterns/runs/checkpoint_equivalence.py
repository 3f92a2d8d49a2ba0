"""What runs for the pattern kind ``checkpoint_equivalence`` (:mod:`conformance.patterns.checkpoint_equivalence`).

The properties ``equivalence`` and ``saved_memory`` run here; ``compiled`` in
:mod:`conformance.patterns.runs.checkpoint_compiled`. Both build their stacks with
:mod:`conformance.patterns.helpers.checkpoint_stacks`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st
from torch import Tensor, nn

from conformance.dtype_helpers import to_numpy64
from conformance.patterns import PatternContext
from conformance.patterns.helpers.checkpoint_stacks import (
    ACTIVATIONS,
    Forward,
    build_layers,
    module_forward,
    one_intra_op_thread,
    plain_forward,
    results_no_grad,
    rng_devices,
    run_results,
    stack_inputs,
)
from conformance.patterns.helpers.saved_memory import distinct_bytes, saved_for_backward, storage_key
from conformance.patterns.helpers.search import search
from conformance.patterns.helpers.stack_plans import DEFAULT_SCHEME, LayerPlan, StackPlan, plan_from_dict, plan_to_dict
from conformance.patterns.runs.checkpoint_compiled import check_compiled, compiled_plans
from conformance.tolerance import Measurement, Tolerance, max_abs, worst

FACTOR = 2.0  # × the plain stack's own run-to-run difference (0 where its kernels are deterministic)
_REASON = "the same-precision reference is the plain stack run again; no floor: recomputation is the same arithmetic"


def scheme_of(ctx: PatternContext) -> str:
    """The implementation's declared checkpointing scheme (its option ``scheme``; the guide's ``per_layer`` by default)."""
    return str(ctx.spec.fixed_params(ctx.ref).get("scheme", DEFAULT_SCHEME))


@st.composite
def stack_plans(draw: st.DrawFn, options: Mapping[str, Any], scheme: str = DEFAULT_SCHEME) -> StackPlan:
    """Stacks within the options' bounds, run under ``scheme``; widths change only at Linear layers."""
    depth = draw(st.integers(options["depth"]["min"], options["depth"]["max"]))
    widths = st.integers(options["width"]["min"], options["width"]["max"])
    width = draw(widths)
    layers = []
    for _ in range(depth):
        kind = draw(st.sampled_from(options["layers"]))
        out = draw(widths) if kind == "linear" else width
        activation = draw(st.sampled_from(sorted(ACTIVATIONS))) if kind in ("linear", "residual") else None
        p = draw(st.floats(options["dropout"]["min"], options["dropout"]["max"])) if kind == "dropout" else None
        layers.append(LayerPlan(kind, width, out, activation, p))
        width = out
    return StackPlan(
        layers=tuple(layers),
        checkpoint_every=draw(st.sampled_from(options["checkpoint_every"])),
        batch=draw(st.integers(options["batch"]["min"], options["batch"]["max"])),
        input_requires_grad=draw(st.booleans()),
        seed=draw(st.integers(0, 2**31 - 1)),
        scheme=scheme,
    )


def simpler_plans(plan: StackPlan, options: Mapping[str, Any]) -> Iterator[StackPlan]:
    """Simpler stacks than ``plan`` within the options' bounds, most promising first (the search's greedy shrink).

    Each layer removed (the last one, or one that keeps its width, so widths still chain), then the
    batch toward its minimum, an earlier ``checkpoint_every`` of the options' list, an input that
    needs no grad. Layer kinds, widths, activations, dropout rates, the seed and the scheme are kept.
    """
    layers, depth_min = plan.layers, options["depth"]["min"]
    if len(layers) > depth_min:
        for i in reversed(range(len(layers))):
            if i == len(layers) - 1 or layers[i].width_in == layers[i].width_out:
                yield replace(plan, layers=layers[:i] + layers[i + 1 :])
    low = options["batch"]["min"]
    for batch in sorted({low, (low + plan.batch) // 2, plan.batch - 1}):
        if low <= batch < plan.batch:
            yield replace(plan, batch=batch)
    ks = list(options["checkpoint_every"])
    for k in ks[: ks.index(plan.checkpoint_every)] if plan.checkpoint_every in ks else []:
        yield replace(plan, checkpoint_every=k)
    if plan.input_requires_grad:
        yield replace(plan, input_requires_grad=False)


@dataclass(frozen=True)
class _Diff:
    name: str
    error: float
    baseline: float
    scale: float
    note: str = ""

    @property
    def atol(self) -> float:
        return FACTOR * self.baseline

    @property
    def passed(self) -> bool:
        return self.error <= self.atol


def _diff(name: str, actual: Tensor | None, expected: Tensor | None, repeat: Tensor | None) -> _Diff:
    """``actual`` against the plain stack's ``expected``; ``repeat`` is the plain stack's second run."""
    e = _array(expected, actual)
    a = _array(actual, expected)
    scale = float(np.max(np.abs(e))) if e.size and np.all(np.isfinite(e)) else 1.0
    note = "missing (None)" if actual is None and expected is not None else ""
    if a.shape != e.shape:
        return _Diff(name, math.inf, 0.0, scale, f"shape {a.shape} != {e.shape}")
    return _Diff(name, _bitwise_error(a, e), _bitwise_error(_array(repeat, expected), e), scale, note)


def _bitwise_error(a: np.ndarray, e: np.ndarray) -> float:
    """Max |a − e|, where NaN at the same position on both sides counts as equal (the same arithmetic)."""
    both_nan = np.isnan(a) & np.isnan(e)
    return max_abs(np.where(both_nan, 0.0, a), np.where(both_nan, 0.0, e))


def _array(t: Tensor | None, like: Tensor | None) -> np.ndarray:
    """A tensor as float64; a missing gradient (None) as zeros shaped like the other side."""
    if t is not None:
        return to_numpy64(t)
    return np.zeros(tuple(like.shape)) if like is not None else np.zeros(())


def _compare(actual: dict, expected: dict, repeat: dict) -> list[_Diff]:
    names = list(expected) + [n for n in actual if n not in expected]
    return [_diff(n, actual.get(n), expected.get(n), repeat.get(n)) for n in names]


def check_equivalence(target: Any, plan: StackPlan, device: str, dtype: str, modes: list[str]) -> Measurement:
    """Outputs, buffers and gradients of ``target``'s module against the plain stack (module docstring)."""
    diffs: list[tuple[str, _Diff]] = []
    for mode in modes:
        plain = run_results(plain_forward, plan, device, dtype, mode)
        repeat = run_results(plain_forward, plan, device, dtype, mode)
        actual = run_results(lambda layers, m=mode: module_forward(target, layers, plan, m), plan, device, dtype, mode)
        diffs += [(mode, d) for d in _compare(actual, plain, repeat)]
        if mode == "train":
            plain = results_no_grad(plain_forward, plan, device, dtype)
            repeat = results_no_grad(plain_forward, plan, device, dtype)
            actual = results_no_grad(lambda layers: module_forward(target, layers, plan, "train"), plan, device, dtype)
            diffs += [(mode, d) for d in _compare(actual, plain, repeat)]
    return _equivalence_measurement(diffs, plan)


def _equivalence_measurement(diffs: list[tuple[str, _Diff]], plan: StackPlan) -> Measurement:
    worst_mode, worst = max(diffs, key=lambda md: (not md[1].passed, md[1].error - md[1].atol))
    tol = Tolerance(worst.atol, worst.baseline, 0.0, 0.0, FACTOR, _REASON)
    rel = worst.error / worst.scale if worst.scale > 0 else worst.error
    failed = [f"{mode}: {d.name}{f' {d.note}' if d.note else ''}" for mode, d in diffs if not d.passed]
    if not failed:
        return Measurement(worst.error, rel, tol, True, "")
    detail = (
        f"{len(failed)} result(s) differ from the plain stack run from the same RNG state: {', '.join(failed[:6])}"
        f"{' …' if len(failed) > 6 else ''}; worst: {worst_mode} {worst.name}, max |Δ| {worst.error:.4g} "
        f"(largest plain value {worst.scale:.4g}) > tolerance {worst.atol:.4g} = {FACTOR:g} × the plain stack's own "
        f"run-to-run difference {worst.baseline:.4g}; stack: {plan.describe()}"
    )
    return Measurement(worst.error, rel, tol, False, detail)


# --- saved memory -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SavedBytes:
    """Bytes saved for backward (distinct storages, parameters and buffers excluded) and what was expected."""

    plain: int
    module: int
    expected: int | None = None  # train: the segment inputs' bytes; eval: None (equal to plain)


def _saved(make: Callable[[nn.ModuleList], Forward], plan: StackPlan, device: str, dtype: str, mode: str) -> int:
    layers = build_layers(plan, device, dtype)
    layers.train(mode == "train")
    forward = make(layers)
    x, _ = stack_inputs(plan, device, dtype)
    x.requires_grad_(plan.input_requires_grad)
    with torch.random.fork_rng(devices=rng_devices(device)):
        torch.manual_seed(plan.seed)
        with saved_for_backward(exclude=[*layers.parameters(), *layers.buffers()]) as saved:
            y = forward(x)
        del y
    return saved.total_bytes


def expected_train_bytes(plan: StackPlan, device: str, dtype: str) -> int:
    """What the plan's scheme keeps in train mode, derived from one plain run (module docstring).

    A checkpointed region keeps only its input; a plain region keeps what the plain stack's layers
    keep there. Counted as distinct storages over both, so a tensor a plain layer saves that is also
    the next region's input counts once.
    """
    layers = build_layers(plan, device, dtype).train()
    excluded = {storage_key(t) for t in [*layers.parameters(), *layers.buffers()]}
    kept: list[Tensor] = []
    counting = [False]

    def pack(t: Tensor) -> Tensor:
        if counting[0] and storage_key(t) not in excluded:
            kept.append(t)
        return t

    x, _ = stack_inputs(plan, device, dtype)
    x.requires_grad_(plan.input_requires_grad)
    with torch.random.fork_rng(devices=rng_devices(device)), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        torch.manual_seed(plan.seed)
        for region in plan.regions():
            if region.checkpointed:
                kept.append(x)
            counting[0] = not region.checkpointed
            for layer in layers[region.start : region.end]:
                x = layer(x)
    return distinct_bytes(kept)


def measure_saved_bytes(target: Any, plan: StackPlan, device: str, dtype: str, mode: str) -> SavedBytes:
    """Saved bytes of the plain stack and of the module; in train mode also the derived expectation."""
    plain = _saved(plain_forward, plan, device, dtype, mode)
    module = _saved(lambda layers: module_forward(target, layers, plan, mode), plan, device, dtype, mode)
    expected = expected_train_bytes(plan, device, dtype) if mode == "train" else None
    return SavedBytes(plain, module, expected)


def _strictly_less_expected(plan: StackPlan) -> bool:
    """Where the module must save strictly less than the plain stack (module docstring).

    Without a bare Dropout, every layer keeps its input and something more (its output, statistics or
    a pre-activation). A checkpointed region of two or more layers drops its second layer's input; a
    checkpointed last layer drops what it keeps besides its input. The rest keeps at most the plain
    stack's tensors.
    """
    if any(layer.kind == "dropout" for layer in plan.layers):
        return False
    checkpointed = [r for r in plan.regions() if r.checkpointed]
    return any(r.end - r.start >= 2 or r.end == plan.depth for r in checkpointed)


def check_saved_memory(
    target: Any, plan: StackPlan, device: str, dtype: str, modes: list[str], totals: dict[str, int] | None = None
) -> Measurement:
    """The module's saved bytes against the relation derived from its documented segments.

    ``totals`` (if given) accumulates the bytes saved in train mode by the plain stack and the module.
    """
    exact = Tolerance(0.0, None, 0.0, 0.0, 1.0, "bytes are counted, not estimated: exact")
    problems, worst, rel = [], 0, 0.0
    for mode in modes:
        b = measure_saved_bytes(target, plan, device, dtype, mode)
        if totals is not None and mode == "train":
            totals["plain"] = totals.get("plain", 0) + b.plain
            totals["module"] = totals.get("module", 0) + b.module
        expected = b.expected if mode == "train" else b.plain
        worst = max(worst, abs(b.module - expected))
        rel = max(rel, abs(b.module - expected) / max(expected, 1))
        if b.module != expected:
            what = (
                f"what the {plan.scheme} scheme keeps (checkpointed regions' inputs, plain regions' saved tensors)"
                if mode == "train"
                else "the plain stack's"
            )
            problems.append(f"{mode}: saved {b.module} bytes for backward, expected {expected} = {what}; plain stack {b.plain}")
        if mode == "train" and _strictly_less_expected(plan) and not b.module < b.plain:
            problems.append(f"train: saved {b.module} bytes, not strictly less than the plain stack's {b.plain}")
            worst = max(worst, b.module - b.plain + 1)
            rel = max(rel, (b.module - b.plain + 1) / max(b.plain, 1))
    if problems:
        return Measurement(float(worst), rel, exact, False, f"{'; '.join(problems)}; stack: {plan.describe()}")
    return Measurement(0.0, 0.0, exact, True, "")


def cuda_peak_bytes(target: Any, device: str, dtype: str) -> str:
    """Peak allocated CUDA memory over forward + backward, plain vs module, for one larger stack (reported only)."""
    layer = LayerPlan("linear", 1024, 1024, "gelu")
    plan = StackPlan((layer,) * 8, checkpoint_every=2, batch=1024, input_requires_grad=True, seed=0)
    peaks = []
    for make in (plain_forward, lambda layers: module_forward(target, layers, plan, "train")):
        layers = build_layers(plan, device, dtype).train()
        forward = make(layers)
        x, g = stack_inputs(plan, device, dtype)
        x.requires_grad_(True)
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        forward(x).backward(g)
        torch.cuda.synchronize(device)
        peaks.append(torch.cuda.max_memory_allocated(device) - base)
        del layers, x, g
    return (
        f"cuda peak over forward+backward (8 × Linear(1024→1024)+gelu, batch 1024, k=2): plain {peaks[0]} B, "
        f"checkpointed {peaks[1]} B (reported, not asserted)"
    )


def check_plan(target: Any, plan: StackPlan, ctx: PatternContext, totals: dict[str, int] | None = None) -> Measurement:
    """The check of the context's ``property`` on one stack."""
    args = (target, plan, ctx.device, ctx.dtype, ctx.options["modes"])
    if ctx.options["property"] == "equivalence":
        return check_equivalence(*args)
    if ctx.options["property"] == "saved_memory":
        return check_saved_memory(*args, totals=totals)
    return check_compiled(*args, rule=ctx.rule)


def replay(ctx: PatternContext, example: Mapping[str, Any]) -> Measurement:
    """The check on one stack given as :func:`plan_to_dict` data (what a failing row's repro calls)."""
    plan = replace(plan_from_dict(example), scheme=scheme_of(ctx))  # the implementation declares its scheme
    with one_intra_op_thread():
        return check_plan(ctx.target(), plan, ctx)


def run(ctx: PatternContext) -> Measurement:
    """Hypothesis-drawn stacks (``ctx.settings`` sets how many); the first failure, shrunk, or the worst pass."""
    options, target = ctx.options, ctx.target()
    if options["property"] == "compiled":
        return run_compiled(ctx)
    totals: dict[str, int] = {}
    with one_intra_op_thread():
        plans = stack_plans(options, scheme_of(ctx))
        m = search(
            ctx,
            plans,
            lambda plan: check_plan(target, plan, ctx, totals),
            simpler=lambda plan: simpler_plans(plan, options),
            to_example=plan_to_dict,
        )
    if not m.passed:
        return m
    summary = _summary(options, m.examples, totals)
    if options["property"] == "saved_memory" and torch.device(ctx.device).type == "cuda":
        summary += "; " + cuda_peak_bytes(target, ctx.device, ctx.dtype)
    return replace(m, detail=summary)


def run_compiled(ctx: PatternContext) -> Measurement:
    """The fixed stacks of the ``compiled`` property: the first failure, or the worst pass."""
    target, results = ctx.target(), []
    for plan in compiled_plans(ctx.options, scheme_of(ctx)):
        with one_intra_op_thread():  # as the drawn properties: tiny tensors, and the same kernels on any machine
            m = check_plan(target, plan, ctx)
        results.append(m)
        if not m.passed:
            return replace(m, examples=len(results), example=plan_to_dict(plan))
    chosen = worst(results)
    summary = f"{len(results)} fixed stack(s) ({' and '.join(ctx.options['modes'])}), compiled: {chosen.detail}"
    return replace(chosen, detail=summary, examples=len(results))


def _summary(options: Mapping[str, Any], n: int, totals: Mapping[str, int]) -> str:
    modes = " and ".join(options["modes"])
    if options["property"] == "equivalence":
        return f"{n} stacks ({modes}): outputs, buffers and gradients within {FACTOR:g} × the plain stack's run-to-run difference"
    text = f"{n} stacks ({modes}): saved bytes equal the derived relation"
    if totals:
        text += f"; train mode, all stacks together: checkpointed {totals['module']} B saved vs plain {totals['plain']} B"
    return text
