"""Pattern kind ``checkpoint_equivalence``: a checkpointed layer stack against the plain one.

Gradient checkpointing (Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost", Sec. 4.3)
cuts a stack of n layers into segments, keeps only each segment's input for backward and recomputes
the segment's forward when its gradient is needed. It must change what is *kept*, never what is
*computed*. The implementation under test is called as ``target(layers, checkpoint_every=k)`` with
an ``nn.ModuleList`` (the layers are used, not copied) and then ``module(x)``. Two properties, chosen
by the option ``property``:

``equivalence``
    Hypothesis draws a stack (depth, widths, layer types: Linear + activation, LayerNorm, Dropout
    with p > 0, residual blocks, BatchNorm), k, a batch, whether the input requires grad, and a seed
    for values and dropout. In each mode (train, eval) the plain stack ``for layer in layers: x =
    layer(x)`` and the module run on identical fresh copies of the layers from the same RNG state; the
    output, the buffers after forward (BatchNorm running statistics: a layer run twice in forward
    shows here), the input's gradient and every parameter's gradient (cotangent drawn) must agree.
    In train mode the forward under ``torch.no_grad()`` is compared too. Dropout masks must be the
    same in recomputation (``preserve_rng_state``), or the gradients differ.

    Tolerance: recomputation is the same arithmetic on bitwise-equal inputs — the same kernels on
    the same device, in the same order — so the results are bitwise equal. The bound is derived, not
    assumed: 2 × the plain stack's own run-to-run difference (the plain stack run twice from the same
    state), with no floor. On CPU the kernels are deterministic, so this is 0 (bitwise); on CUDA it is
    0 too for these layers (matmul, normalisation and reduction kernels without atomics), and a
    nondeterministic kernel would show in the plain stack's own repeat and widen the bound by exactly
    what it causes.

``saved_memory``
    The saving is measured, not assumed (:mod:`conformance.patterns.saved_memory`: bytes of the
    distinct storages saved for backward, parameters and buffers excluded). In train mode a checkpointed segment
    keeps only its input, so the module must save exactly the bytes of the segment inputs x₀, x_k,
    x_2k, … (taken from the plain run); and strictly less than the plain stack when depth ≥ 2k and no
    layer is a bare Dropout. Derivation: every other layer type keeps its own input (for its weight's
    gradient), so the plain stack keeps x₀ … x_{n−1} and more — for k ≥ 2, x₁ is no segment input;
    for k = 1 the last layer also keeps a tensor that is none (its output x_n, normalisation
    statistics or a pre-activation). A bare Dropout keeps only its mask, which may be smaller than
    its input, so no saving is claimed for stacks that have one. In eval mode nothing is
    checkpointed: the module saves exactly what the plain stack saves. On CUDA the peak allocated
    memory of one larger stack is reported (not asserted: it depends on the allocator).

``compiled``
    ``torch.compile(module)`` against the float64 plain stack, with the eager module at the tested
    dtype as the same-precision reference (:mod:`conformance.patterns.checkpoint_compiled`): fixed
    stacks, one per ``checkpoint_every``, no dropout (compiled code draws other masks).

>>> validate({"property": "saved_memory", "checkpoint_every": [2]})["depth"]
{'min': 1, 'max': 6}
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st
from torch import Tensor, nn

from conformance.dtype_helpers import DTYPES, to_numpy64, torch_dtype
from conformance.patterns import PatternContext, PatternKind
from conformance.patterns.saved_memory import distinct_bytes, saved_for_backward
from conformance.patterns.search import search
from conformance.tolerance import Measurement, Tolerance, max_abs

PROPERTIES = ("equivalence", "saved_memory", "compiled")
LAYER_KINDS = ("linear", "layernorm", "dropout", "residual", "batchnorm")
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}
MODES = ("train", "eval")
FACTOR = 2.0  # × the plain stack's own run-to-run difference (0 where its kernels are deterministic)
_REASON = "the same-precision reference is the plain stack run again; no floor: recomputation is the same arithmetic"

_DEFAULTS: dict[str, Any] = {
    "property": "equivalence",
    "checkpoint_every": [1, 2, 3, 8],  # 8: larger than the default largest depth (one segment)
    "depth": {"min": 1, "max": 6},
    "width": {"min": 1, "max": 8},
    "batch": {"min": 2, "max": 4},  # ≥ 2: BatchNorm's training statistics need two rows
    "layers": list(LAYER_KINDS),
    "dropout": {"min": 0.1, "max": 0.9},
    "modes": list(MODES),
}
_LIMITS = {"depth": (1, 32), "width": (1, 256), "batch": (1, 256)}


# --- options -----------------------------------------------------------------------------------


def validate(options: Mapping[str, Any]) -> dict:
    """Normalised options (defaults filled in); a bad one raises ``KeyError((key, ...), message)``."""
    out = {**_DEFAULTS, **options}
    if out["property"] not in PROPERTIES:
        raise KeyError(("property",), f"expected one of {', '.join(PROPERTIES)}, got {out['property']!r}")
    ks = out["checkpoint_every"]
    if not isinstance(ks, list) or not ks or any(not _is_int(k) or k < 1 for k in ks):
        raise KeyError(("checkpoint_every",), f"expected a non-empty list of positive integers, got {ks!r}")
    for key, (lo, hi) in _LIMITS.items():
        out[key] = _int_range(out[key], key, lo, hi)
    out["layers"] = _subset(out["layers"], "layers", LAYER_KINDS)
    out["modes"] = _subset(out["modes"], "modes", MODES)
    if "batchnorm" in out["layers"] and "train" in out["modes"] and out["batch"]["min"] < 2:
        message = "must be at least 2 with batchnorm layers in train mode (batch statistics need two rows)"
        raise KeyError(("batch", "min"), message)
    out["dropout"] = _probability_range(out["dropout"])
    if out["property"] == "compiled" and "dropout" in out["layers"]:
        message = (
            "must not include dropout for property compiled (compiled code draws its masks from another random "
            "stream than eager code, so a correct module need not match); list the other layer kinds"
        )
        raise KeyError(("layers",), message)
    return out


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_range(value: Any, key: str, lo: int, hi: int) -> dict[str, int]:
    if not isinstance(value, dict) or set(value) != {"min", "max"}:
        raise KeyError((key,), f"expected {{min, max}}, got {value!r}")
    a, b = value["min"], value["max"]
    if not (_is_int(a) and _is_int(b) and lo <= a <= b <= hi):
        raise KeyError((key,), f"expected integers {lo} <= min <= max <= {hi}, got {value!r}")
    return {"min": a, "max": b}


def _subset(value: Any, key: str, allowed: tuple[str, ...]) -> list[str]:
    if not isinstance(value, list) or not value or any(v not in allowed for v in value) or len(set(value)) != len(value):
        raise KeyError((key,), f"expected a non-empty list of distinct values from {', '.join(allowed)}, got {value!r}")
    return list(value)


def _probability_range(value: Any) -> dict[str, float]:
    ok = isinstance(value, dict) and set(value) == {"min", "max"}
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values())
    if not ok or not (0 < value["min"] <= value["max"] < 1):
        raise KeyError(("dropout",), f"expected {{min, max}} with 0 < min <= max < 1 (dropout must drop), got {value!r}")
    return {"min": float(value["min"]), "max": float(value["max"])}


# --- drawn stacks -------------------------------------------------------------------------------


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


@st.composite
def stack_plans(draw: st.DrawFn, options: Mapping[str, Any]) -> StackPlan:
    """Stacks within the options' bounds; widths change only at Linear layers."""
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
    )


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


def _inputs(plan: StackPlan, device: str, dtype: str) -> tuple[Tensor, Tensor]:
    """The input x (B, D₀) and the cotangent (B, D_n), drawn from the plan's seed."""
    gen = torch.Generator().manual_seed(plan.seed + 1)
    x = torch.randn(plan.batch, plan.layers[0].width_in, generator=gen, dtype=torch.float64)
    g = torch.randn(plan.batch, plan.layers[-1].width_out, generator=gen, dtype=torch.float64)
    return x.to(device=device, dtype=torch_dtype(dtype)), g.to(device=device, dtype=torch_dtype(dtype))


def _rng_devices(device: str) -> list[int]:
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
    x, g = _inputs(plan, device, dtype)
    x.requires_grad_(plan.input_requires_grad)
    out: dict[str, Tensor | None] = {}
    with torch.random.fork_rng(devices=_rng_devices(device)):
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


def _results_no_grad(make: Callable[[nn.ModuleList], Forward], plan: StackPlan, device: str, dtype: str) -> dict:
    """Train mode under ``torch.no_grad()``: output and buffers after forward."""
    layers = build_layers(plan, device, dtype)
    layers.train(True)
    forward = make(layers)
    x, _ = _inputs(plan, device, dtype)
    with torch.random.fork_rng(devices=_rng_devices(device)), torch.no_grad():
        torch.manual_seed(plan.seed)
        y = forward(x)
    out = {"output under no_grad": y.detach().clone()}
    out.update({f"buffer layers.{n} after forward under no_grad": b.detach().clone() for n, b in layers.named_buffers()})
    return out


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
            plain = _results_no_grad(plain_forward, plan, device, dtype)
            repeat = _results_no_grad(plain_forward, plan, device, dtype)
            actual = _results_no_grad(lambda layers: module_forward(target, layers, plan, "train"), plan, device, dtype)
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


def _saved(make: Callable[[nn.ModuleList], Forward], plan: StackPlan, device: str, dtype: str, mode: str) -> tuple[int, list]:
    layers = build_layers(plan, device, dtype)
    layers.train(mode == "train")
    inputs: list[Tensor] = []
    forward = make(layers, inputs)
    x, _ = _inputs(plan, device, dtype)
    x.requires_grad_(plan.input_requires_grad)
    with torch.random.fork_rng(devices=_rng_devices(device)):
        torch.manual_seed(plan.seed)
        with saved_for_backward(exclude=[*layers.parameters(), *layers.buffers()]) as saved:
            y = forward(x)
        del y
    return saved.total_bytes, inputs


def measure_saved_bytes(target: Any, plan: StackPlan, device: str, dtype: str, mode: str) -> SavedBytes:
    """Saved bytes of the plain stack and of the module; in train mode also the derived expectation."""
    plain, inputs = _saved(plain_forward, plan, device, dtype, mode)
    module, _ = _saved(lambda layers, _inputs: module_forward(target, layers, plan, mode), plan, device, dtype, mode)
    expected = distinct_bytes(inputs[s] for s in plan.segment_starts()) if mode == "train" else None
    return SavedBytes(plain, module, expected)


def _strictly_less_expected(plan: StackPlan) -> bool:
    """Where the module must save strictly less than the plain stack (module docstring)."""
    return plan.depth >= 2 * plan.checkpoint_every and all(layer.kind != "dropout" for layer in plan.layers)


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
            what = "the bytes of the segment inputs x_0, x_k, x_2k, …" if mode == "train" else "the plain stack's"
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
        x, g = _inputs(plan, device, dtype)
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


# --- the kind -----------------------------------------------------------------------------------


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


def check_plan(target: Any, plan: StackPlan, ctx: PatternContext, totals: dict[str, int] | None = None) -> Measurement:
    """The check of the context's ``property`` on one stack."""
    args = (target, plan, ctx.device, ctx.dtype, ctx.options["modes"])
    if ctx.options["property"] == "equivalence":
        return check_equivalence(*args)
    if ctx.options["property"] == "saved_memory":
        return check_saved_memory(*args, totals=totals)
    from conformance.patterns.checkpoint_compiled import check_compiled  # it imports this module

    return check_compiled(*args)


def replay(ctx: PatternContext, example: Mapping[str, Any]) -> Measurement:
    """The check on one stack given as :func:`plan_to_dict` data (what a failing row's repro calls)."""
    with one_intra_op_thread():
        return check_plan(ctx.target(), plan_from_dict(example), ctx)


def run(ctx: PatternContext) -> Measurement:
    """Hypothesis-drawn stacks (``ctx.settings`` sets how many); the first failure, shrunk, or the worst pass."""
    options, target = ctx.options, ctx.target()
    if options["property"] == "compiled":
        return run_compiled(ctx)
    totals: dict[str, int] = {}
    with one_intra_op_thread():
        m = search(ctx, stack_plans(options), lambda plan: check_plan(target, plan, ctx, totals), to_example=plan_to_dict)
    if not m.passed:
        return m
    summary = _summary(options, m.examples, totals)
    if options["property"] == "saved_memory" and torch.device(ctx.device).type == "cuda":
        summary += "; " + cuda_peak_bytes(target, ctx.device, ctx.dtype)
    return replace(m, detail=summary)


def run_compiled(ctx: PatternContext) -> Measurement:
    """The fixed stacks of the ``compiled`` property: the first failure, or the worst pass."""
    from conformance.patterns.checkpoint_compiled import compiled_plans  # it imports this module

    target, results = ctx.target(), []
    for plan in compiled_plans(ctx.options):
        with one_intra_op_thread():  # as the drawn properties: tiny tensors, and the same kernels on any machine
            m = check_plan(target, plan, ctx)
        results.append(m)
        if not m.passed:
            return replace(m, examples=len(results), example=plan_to_dict(plan))
    worst = max(results, key=lambda m: m.ratio)
    summary = f"{len(results)} fixed stack(s) ({' and '.join(ctx.options['modes'])}), compiled: {worst.detail}"
    return replace(worst, detail=summary, examples=len(results))


def _summary(options: Mapping[str, Any], n: int, totals: Mapping[str, int]) -> str:
    modes = " and ".join(options["modes"])
    if options["property"] == "equivalence":
        return f"{n} stacks ({modes}): outputs, buffers and gradients within {FACTOR:g} × the plain stack's run-to-run difference"
    text = f"{n} stacks ({modes}): saved bytes equal the derived relation"
    if totals:
        text += f"; train mode, all stacks together: checkpointed {totals['module']} B saved vs plain {totals['plain']} B"
    return text


KIND = PatternKind(
    name="checkpoint_equivalence",
    required=frozenset(),
    optional=frozenset(_DEFAULTS),
    validate=validate,
    run=run,
    dtypes=DTYPES,
    devices=("cpu", "cuda"),
    replay=replay,
)
