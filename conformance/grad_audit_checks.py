"""The gradient audit's own checks (``conformance audit-grads``; records in :mod:`conformance.check_defs`, ``audit=True``).

- ``grad_options`` — :func:`torch.autograd.gradcheck` in float64 with torch's own options: the backward with
  undefined output gradients (``check_undefined_grad``), batched gradients through vmap (``check_batched_grad``)
  and forward-mode AD (``check_forward_ad``). Fast mode first, slow mode before a failure is reported. An
  implementation without forward AD (a custom Function without ``jvp``) or that vmap cannot batch (no batching
  rule, data-dependent control flow) is a note in the detail, not a failure; batched gradients of *other values*
  are. The row's ``max_abs_err``/``max_rel_err``: the analytical Jacobian (autograd) against central finite
  differences (step :data:`FD_STEP`) on the example's float64 inputs, the relative one over the Jacobian's largest
  entry.
- ``autograd_functions`` — every ``torch.autograd.Function`` subclass the output's autograd graph goes through
  (a custom node is the Function's ``ctx`` and carries its class as ``_forward_cls``) or that the implementation's
  module defines or imports. Per class in the graph: how many gradients ``backward`` returns for the inputs of
  ``forward`` (a wrong count is a failure), whether it is ``once_differentiable``, whether it is differentiable
  (with ``create_graph=True`` and a cotangent without grad, the gradients it returns for inputs that need one
  must carry a graph: a failure where the spec needs second order, a note otherwise), and whether torch.func can
  transform it (``setup_context`` with ``generate_vmap_rule`` or a ``vmap`` staticmethod: a note).
- ``param_flow`` — modules only: every parameter (the spec's drawn ``state`` tensors and the module's own
  parameters) receives a finite, non-zero gradient (random cotangent) for some example of the configurations
  drawn; one that never does is named, as unused (the output does not depend on it), detached (it does, but no
  gradient reaches it) or always zero; a non-finite gradient is a failure.

Each judge has the signature the runner expects (:mod:`conformance.check_defs`).
"""

from __future__ import annotations

import inspect
import itertools
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.autograd.gradcheck import GradcheckError

from conformance import checks
from conformance import dtype_helpers as dh
from conformance.calling import call_interface, resolve
from conformance.strategies import Domain, Example, cotangent
from conformance.tolerance import Measurement
from conformance.unsupported import judge_outside

if TYPE_CHECKING:
    from hypothesis import settings

    from conformance.selection import Case

FD_STEP = 1e-6  # gradcheck's own step: the drawn magnitudes (strategies.GRADCHECK_MAGNITUDE) are near unit scale


# -- shared --------------------------------------------------------------------------------------------
def _trial(case: Case, example: Example) -> checks.Trial:
    return checks.Trial(case.spec, case.implementation, case.device, case.dtype, example)


def _as_tuple(result: Any) -> tuple[Any, ...]:
    return tuple(result) if isinstance(result, (tuple, list)) else (result,)


def _wrt_function(t: checks.Trial) -> tuple[Callable[..., Any], tuple[torch.Tensor, ...]]:
    """The implementation as a function of its ``wrt`` inputs (float64 leaves requiring grad), and those leaves."""
    base = t.tensors(t.rounded(t.env64), dtype="float64")
    wrt = t.spec.grad_wrt
    leaves = tuple(base[w].detach().requires_grad_(True) for w in wrt)

    def f(*xs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        outs = t.fn({**base, **dict(zip(wrt, xs))})
        return outs[0] if len(outs) == 1 else outs

    return f, leaves


# -- grad_options ------------------------------------------------------------------------------------------
# Errors of a computation that torch's transforms cannot handle (not a wrong gradient): a note.
_NO_FORWARD_AD = re.compile(r"forward (mode )?AD|jvp|forward-mode|does not support it|not implemented", re.IGNORECASE)
_CANNOT_BATCH = "While computing batched gradients, got:"


@dataclass(frozen=True)
class _Stage:
    name: str
    options: Mapping[str, bool]
    unsupported_note: str  # what a note says where torch cannot run the stage on this implementation


_STAGES = (
    _Stage("backward", {"check_undefined_grad": True, "check_backward_ad": True}, ""),
    _Stage("batched gradients", {"check_batched_grad": True, "check_undefined_grad": False}, "vmap cannot batch it"),
    _Stage(
        "forward-mode AD",
        {"check_forward_ad": True, "check_backward_ad": False, "check_undefined_grad": False},
        "forward-mode AD not supported",
    ),
)


def grad_options(case: Case, example: Example) -> Measurement | None:
    """Judge: gradcheck with torch's options (module docstring); ``None`` rejects an example outside the domain."""
    return judge_outside(case.spec, case.implementation, example, lambda: _trial(case, example), check_grad_options)


def check_grad_options(t: checks.Trial) -> Measurement:
    f, leaves = _wrt_function(t)
    abs_err, rel_err = jacobian_errors(f, leaves)
    notes, failures = [], []
    for stage in _STAGES:
        if failures and stage.options.get("check_batched_grad"):  # it reruns the backward's comparison first
            notes.append(f"{stage.name} not checked: the backward fails")
            continue
        verdict = _run_stage(f, leaves, stage, t.example.seed)
        if verdict is None:
            continue
        failed, text = verdict
        (failures if failed else notes).append(text)
    detail = "; ".join(failures + notes)
    return Measurement(abs_err, rel_err, None, not failures, detail)


def _run_stage(f: Callable[..., Any], leaves: tuple[torch.Tensor, ...], stage: _Stage, seed: int) -> tuple[bool, str] | None:
    """``None`` where the stage passes; ``(False, note)`` where torch cannot run it; ``(True, failure)`` where it fails
    in slow mode too."""
    first = _gradcheck(f, leaves, stage, seed, fast=True)
    if first is None:
        return None
    note = _unsupported(stage, first)
    if note is not None:
        return False, note
    confirmed = _gradcheck(f, leaves, stage, seed, fast=False)
    if confirmed is None:
        return False, f"{stage.name}: fast mode failed, slow mode passed"
    note = _unsupported(stage, confirmed)
    if note is not None:
        return False, note
    return True, f"{stage.name} ({_options(stage)}), slow mode: {_first_lines(str(confirmed))}"


def _gradcheck(f: Callable[..., Any], leaves: tuple[torch.Tensor, ...], stage: _Stage, seed: int, fast: bool) -> Exception | None:
    """gradcheck's exception, or ``None`` where it passes (seeded: the batched check draws random cotangents)."""
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        torch.manual_seed(seed % 2**31)
        warnings.simplefilter("ignore")
        try:
            torch.autograd.gradcheck(f, leaves, fast_mode=fast, raise_exception=True, **stage.options)
        except (RuntimeError, NotImplementedError, ValueError, TypeError) as exc:
            return exc
    return None


def _unsupported(stage: _Stage, exc: Exception) -> str | None:
    """The note for an exception that says torch cannot run the stage (not that a gradient is wrong), else ``None``."""
    text = str(exc)
    if stage.name == "batched gradients" and _CANNOT_BATCH in text:
        return f"{stage.unsupported_note} ({_first_lines(text.split(_CANNOT_BATCH, 1)[1])})"
    forward = stage.options.get("check_forward_ad")
    if forward and not isinstance(exc, GradcheckError) and _NO_FORWARD_AD.search(text):
        return f"{stage.unsupported_note} ({type(exc).__name__}: {_first_lines(text)})"
    return None


def _options(stage: _Stage) -> str:
    return ", ".join(f"{k}={v}" for k, v in stage.options.items())


def _first_lines(text: str, limit: int = 400) -> str:
    """An exception's message without torch's long advice: its first non-empty lines, within ``limit`` characters."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    kept = " ".join(itertools.takewhile(lambda ln: not ln.startswith(("gradcheck or gradgradcheck failed", "If you")), lines))
    return kept[:limit] + ("…" if len(kept) > limit else "")


def jacobian_errors(f: Callable[..., Any], leaves: tuple[torch.Tensor, ...]) -> tuple[float, float]:
    """Max |analytical − numerical| Jacobian entry, and that over the numerical Jacobian's largest entry.

    Analytical: one vector-Jacobian product per output element (autograd). Numerical: central differences of
    step :data:`FD_STEP` in float64, per input element.
    """
    with torch.no_grad():
        base = [o.detach() for o in _as_tuple(f(*leaves))]
    analytical = _analytical_jacobian(f, leaves, base)
    numerical = _numerical_jacobian(f, leaves, base)
    err = max((float(np.max(np.abs(a - n), initial=0.0)) for a, n in zip(analytical, numerical)), default=0.0)
    scale = max((float(np.max(np.abs(n), initial=0.0)) for n in numerical), default=0.0)
    return err, (err / scale if scale > 0 else err)


def _analytical_jacobian(f: Callable[..., Any], leaves: tuple[torch.Tensor, ...], base: list[torch.Tensor]) -> list[np.ndarray]:
    """Per (output, input) pair, the Jacobian ``[output elements, input elements]`` from vector-Jacobian products."""
    outs = _as_tuple(f(*leaves))
    blocks = [np.zeros((o.numel(), x.numel())) for o in base for x in leaves]
    for k, out in enumerate(outs):
        if not out.requires_grad:
            continue
        for i in range(out.numel()):
            v = torch.zeros_like(out).reshape(-1)
            v[i] = 1.0
            grads = torch.autograd.grad(out, leaves, v.reshape(out.shape), retain_graph=True, allow_unused=True)
            for j, g in enumerate(grads):
                if g is not None:
                    blocks[k * len(leaves) + j][i] = dh.to_numpy64(g).reshape(-1)
    return blocks


def _numerical_jacobian(f: Callable[..., Any], leaves: tuple[torch.Tensor, ...], base: list[torch.Tensor]) -> list[np.ndarray]:
    blocks = [np.zeros((o.numel(), x.numel())) for o in base for x in leaves]
    with torch.no_grad():
        for j, x in enumerate(leaves):
            for e in range(x.numel()):
                values = []
                for sign in (1.0, -1.0):
                    moved = [y.detach().clone() for y in leaves]
                    moved[j].view(-1)[e] += sign * FD_STEP
                    values.append([dh.to_numpy64(o).reshape(-1) for o in _as_tuple(f(*moved))])
                for k, (plus, minus) in enumerate(zip(*values)):
                    blocks[k * len(leaves) + j][:, e] = (plus - minus) / (2 * FD_STEP)
    return blocks


# -- autograd_functions -------------------------------------------------------------------------------------
_WRONG_COUNT = re.compile(r"function (\w+) returned an incorrect number of gradients \(expected (\d+), got (\d+)\)")


@dataclass
class _Found:
    """One custom Function class: where it was found and what its backward did."""

    cls: type
    in_graph: bool = False
    in_module: bool = False
    tensors: int | None = None  # the number of tensor inputs of forward (its node's next functions)
    ran: bool = False  # its backward ran to the end (the graph hook saw its gradients)
    returned: int | None = None  # the number of gradients backward returned
    graph_less: bool = False  # some gradient it returned for an input needing one carried no graph
    nodes: list[Any] = field(default_factory=list)


def autograd_functions(case: Case, settings_: settings) -> Measurement:
    """Judge (runs whole, on one example drawn like gradcheck's): the custom autograd.Functions (module docstring)."""
    from hypothesis import HealthCheck, Phase, given
    from hypothesis import settings as hsettings

    found: list[Measurement] = []

    @hsettings(settings_, max_examples=1, phases=[Phase.generate], database=None, deadline=None,
               suppress_health_check=list(HealthCheck))
    @given(example=Domain(case.spec, "float64", for_gradcheck=True).examples())
    def one(example: Example) -> None:
        if not found:
            found.append(check_autograd_functions(_trial(case, example), case.spec.grad_order))

    one()
    return found[0]


def check_autograd_functions(t: checks.Trial, grad_order: int) -> Measurement:
    f, leaves = _wrt_function(t)
    classes: dict[type, _Found] = {}
    for cls in module_functions(t):
        classes.setdefault(cls, _Found(cls)).in_module = True
    outs = [o for o in _as_tuple(f(*leaves)) if isinstance(o, torch.Tensor) and o.requires_grad]
    for node in graph_nodes(outs):
        cls = getattr(node, "_forward_cls", None)
        if isinstance(cls, type):
            entry = classes.setdefault(cls, _Found(cls))
            entry.in_graph = True
            entry.nodes.append(node)
    failures = _backward_through(outs, leaves, classes, t.example.seed)
    rows, notes = [], []
    for entry in classes.values():
        row, problem = _describe(entry, grad_order)
        rows.append(row)
        if problem:
            (failures if grad_order >= 2 else notes).append(problem)
    if not classes:
        rows.append("no custom autograd.Function: autograd derives the backward")
    detail = "; ".join(failures + rows + notes)
    return Measurement(0.0, 0.0, None, not failures, detail)


def module_functions(t: checks.Trial) -> list[type]:
    """The autograd.Function subclasses the implementation's module (and a module class's) defines or imports."""
    target = resolve(t.impl.ref, t.spec.ref_base(t.impl.ref))
    module = inspect.getmodule(target)
    if module is None:
        return []
    return [v for v in vars(module).values() if _is_custom_function(v)]


def _is_custom_function(value: Any) -> bool:
    function = torch.autograd.Function
    if not (isinstance(value, type) and issubclass(value, function)):
        return False
    return value is not function and value.__module__ != function.__module__


def graph_nodes(outs: Iterable[torch.Tensor]) -> list[Any]:
    """Every node of the outputs' autograd graph, each once."""
    stack = [o.grad_fn for o in outs if o.grad_fn is not None]
    seen: dict[int, Any] = {}
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen[id(node)] = node
        stack.extend(n for n, _ in node.next_functions)
    return list(seen.values())


def _backward_through(
    outs: Sequence[torch.Tensor], leaves: Sequence[torch.Tensor], classes: dict[type, _Found], seed: int
) -> list[str]:
    """Run the backward with ``create_graph=True`` and hooks on every custom node; failures (a wrong count) as text."""
    handles = []
    for entry in classes.values():
        for node in entry.nodes:
            handles.append(node.register_prehook(_count_hook(entry, node)))
            handles.append(node.register_hook(_graph_hook(entry, node)))
    cots = [torch.as_tensor(cotangent(tuple(o.shape), seed + k), dtype=o.dtype, device=o.device) for k, o in enumerate(outs)]
    try:
        if outs:
            torch.autograd.grad(outs, list(leaves), cots, create_graph=True, allow_unused=True)
    except RuntimeError as exc:
        match = _WRONG_COUNT.search(str(exc))
        if match is None:
            raise
        name, expected, got = match.group(1), int(match.group(2)), int(match.group(3))
        cls_name = name.removesuffix("Backward")
        return [f"{cls_name}.backward returns {_gradients(got)} for the {expected} inputs of forward (torch: {match.group(0)})"]
    finally:
        for h in handles:
            h.remove()
    return []


def _count_hook(entry: _Found, node: Any) -> Callable[[tuple[Any, ...]], None]:
    """Before torch calls the node's backward: call it once more (no grad) to count what it returns."""

    def hook(grad_outputs: tuple[Any, ...]) -> None:
        entry.tensors = len(node.next_functions)
        materialized = [torch.zeros(()) if g is None else g for g in grad_outputs]
        try:
            with torch.no_grad():
                entry.returned = len(_as_tuple(entry.cls.backward(node, *materialized)))
        except Exception:  # counted from torch's own error where backward cannot run twice
            entry.returned = None

    return hook


def _graph_hook(entry: _Found, node: Any) -> Callable[[tuple[Any, ...], tuple[Any, ...]], None]:
    """After the node's backward: a gradient for an input that needs one must carry a graph (create_graph)."""

    def hook(grad_inputs: tuple[Any, ...], grad_outputs: tuple[Any, ...]) -> None:
        entry.ran = True
        for g, (next_fn, _) in zip(grad_inputs, node.next_functions):
            if next_fn is not None and isinstance(g, torch.Tensor) and not g.requires_grad:
                entry.graph_less = True

    return hook


def _describe(entry: _Found, grad_order: int) -> tuple[str, str]:
    """One class's line in the detail, and its problem (not differentiable) or ``""``."""
    cls, name = entry.cls, entry.cls.__name__
    where = " and ".join(w for w, on in (("in the graph", entry.in_graph), ("in the module", entry.in_module)) if on)
    facts = [where]
    if entry.tensors is not None:
        got = "an unknown number of gradients" if entry.returned is None else _gradients(entry.returned)
        facts.append(f"backward returns {got} for forward's {_forward_inputs(cls)} inputs ({entry.tensors} tensors)")
    once = _once_differentiable(cls)
    if once:
        facts.append("backward is once_differentiable")
    facts.append("torch.func: " + _func_support(cls))
    problem = ""
    if once and entry.in_graph:
        problem = f"{name}.backward is once_differentiable: second-order gradients through it raise"
    elif entry.graph_less:
        problem = (
            f"{name}.backward is not differentiable: its gradients carry no graph (computed from tensors saved without "
            f"grad); second-order gradients through it are wrong"
        )
    elif entry.ran:
        facts.append("differentiable backward (its gradients carry a graph)")
    if problem and grad_order < 2:
        problem += " (a note: the spec needs first order only)"
    return f"{name} ({'; '.join(facts)})", problem


def _gradients(n: int) -> str:
    return f"{n} gradient" + ("" if n == 1 else "s")


def _forward_inputs(cls: type) -> str:
    """The number of forward's parameters after ``ctx`` (or all of them with ``setup_context``), as text."""
    try:
        parameters = list(inspect.signature(cls.forward).parameters.values())
    except (TypeError, ValueError):
        return "?"
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters):
        return "variadic"
    return str(len(parameters) - (0 if _has_setup_context(cls) else 1))


def _once_differentiable(cls: type) -> bool:
    backward = inspect.getattr_static(cls, "backward", None)
    fn = getattr(backward, "__func__", backward)
    return "once_differentiable" in getattr(fn, "__qualname__", "")


def _has_setup_context(cls: type) -> bool:
    base = torch.autograd.Function
    return inspect.getattr_static(cls, "setup_context", None) is not inspect.getattr_static(base, "setup_context", None)


def _func_support(cls: type) -> str:
    base = torch.autograd.Function
    setup = _has_setup_context(cls)
    rule = bool(getattr(cls, "generate_vmap_rule", False))
    own_vmap = inspect.getattr_static(cls, "vmap", None) is not inspect.getattr_static(base, "vmap", None)
    if setup and (rule or own_vmap):
        return "vmap supported (" + ("generate_vmap_rule" if rule else "vmap staticmethod") + ")"
    if setup:
        return "setup_context, but no vmap rule"
    return "not transformable (forward takes ctx; no setup_context)"


# -- param_flow ----------------------------------------------------------------------------------------------
PARAM_FLOW_EXAMPLES = 6  # examples drawn (Hypothesis), besides one at the largest sizes per configuration


@dataclass
class _Flow:
    """One parameter's gradients over the examples."""

    name: str
    reached: int = 0  # examples where a gradient reached it
    nonzero: int = 0  # examples where it was finite and not all zero
    nonfinite: str = ""  # the first example's description where it was not finite


def param_flow(case: Case, settings_: settings) -> Measurement:
    """Judge (runs whole): every parameter of the module receives a finite, non-zero gradient for some example."""
    examples = _flow_examples(case, settings_)
    flows: dict[str, _Flow] = {}
    judged: list[checks.Trial] = []
    for example in examples:
        t = _trial(case, example)
        if _flow_one(t, flows):
            judged.append(t)
    return _flow_verdict(case, flows, judged)


def _flow_examples(case: Case, settings_: settings) -> list[Example]:
    """Examples drawn like gradcheck's (Hypothesis), then one at the largest sizes per drawn-parameter configuration."""
    from hypothesis import HealthCheck, Phase, given
    from hypothesis import settings as hsettings

    domain = Domain(case.spec, "float64", for_gradcheck=True)
    drawn: list[Example] = []

    @hsettings(settings_, max_examples=min(PARAM_FLOW_EXAMPLES, settings_.max_examples), phases=[Phase.generate],
               database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(example=domain.examples())
    def collect(example: Example) -> None:
        drawn.append(example)

    collect()
    return drawn + _largest(case, domain, drawn[0] if drawn else None)


def _largest(case: Case, domain: Domain, like: Example | None) -> list[Example]:
    """One example at the largest admitted sizes for each configuration of the spec's drawn value params (up to 8)."""
    if like is None:
        return []
    spec = case.spec
    sizes = {n: s.max for n, s in spec.symbols.items()}
    drawn = {n: p.values for n, p in spec.params.items() if p.default is None and p.values and n in like.params}
    configs = [dict(zip(drawn, combo)) for combo in itertools.product(*drawn.values())][:8] or [{}]
    out = []
    for k, config in enumerate(configs):
        candidate = Example(sizes, {**like.params, **config}, like.magnitudes, like.present, like.seed + k)
        if domain.admits(candidate):
            out.append(candidate)
    return out


def _flow_one(t: checks.Trial, flows: dict[str, _Flow]) -> bool:
    """One example's gradients per parameter, added to ``flows``; ``False`` where the example cannot be run."""
    state = dict((t.impl.interface or t.spec.interface).state)
    call = call_interface(t.spec, t.impl.ref, t.scalars, t.device, "float64", t.example.present, t.impl.interface)
    module = call.module  # type: ignore[attr-defined]
    tensors = t.tensors(t.rounded(t.env64), dtype="float64", requires_grad=tuple(state.values()))
    own = {n: p for n, p in module.named_parameters() if n not in state}
    targets = {**{attr: tensors[name] for attr, name in state.items()}, **own}
    outs = [o for o in _as_tuple(call(tensors)) if isinstance(o, torch.Tensor)]
    live = [o for o in outs if o.requires_grad]
    grads: Sequence[torch.Tensor | None] = [None] * len(targets)
    if live:
        cots = [torch.as_tensor(cotangent(tuple(o.shape), t.example.seed + k), dtype=o.dtype) for k, o in enumerate(live)]
        grads = torch.autograd.grad(live, list(targets.values()), cots, allow_unused=True)
    for name, g in zip(targets, grads):
        flow = flows.setdefault(name, _Flow(name))
        if g is None:
            continue
        flow.reached += 1
        values = dh.to_numpy64(g)
        if not np.all(np.isfinite(values)) and not flow.nonfinite:
            flow.nonfinite = f"sizes {dict(t.example.sizes)}, params {dict(t.example.params)}"
        elif np.any(values != 0):
            flow.nonzero += 1
    return True


def _depends(t: checks.Trial, attr: str) -> bool:
    """Whether the output changes when the parameter ``attr`` changes (no grad): used, whatever its gradient."""
    state = dict((t.impl.interface or t.spec.interface).state)
    call = call_interface(t.spec, t.impl.ref, t.scalars, t.device, "float64", t.example.present, t.impl.interface)
    module = call.module  # type: ignore[attr-defined]
    tensors = t.tensors(t.rounded(t.env64), dtype="float64")
    with torch.no_grad():
        before = [o.clone() for o in _as_tuple(call(tensors)) if isinstance(o, torch.Tensor)]
        if attr in state:
            tensors[state[attr]] = tensors[state[attr]] * 1.5 + 0.25
        else:
            parameter = dict(module.named_parameters())[attr]
            parameter.mul_(1.5).add_(0.25)
        after = [o for o in _as_tuple(call(tensors)) if isinstance(o, torch.Tensor)]
    return any(not torch.equal(a, b) for a, b in zip(after, before))


def _flow_verdict(case: Case, flows: Mapping[str, _Flow], judged: Sequence[checks.Trial]) -> Measurement:
    n = len(judged)
    config = _configuration(case, judged)
    problems = []
    for flow in flows.values():
        if flow.nonfinite:
            problems.append(f"parameter {flow.name} receives a non-finite gradient ({flow.nonfinite})")
        elif flow.nonzero == 0:
            problems.append(_why_no_gradient(flow, judged, n))
    ok = [f.name for f in flows.values() if f.nonzero and not f.nonfinite]
    summary = f"{len(ok)} of {len(flows)} parameters receive a finite, non-zero gradient over {n} examples ({config})"
    partial = [f"{f.name} in {f.nonzero} of {n}" for f in flows.values() if 0 < f.nonzero < n and not f.nonfinite]
    if partial:  # not a failure: an example may not use a parameter (one token retrieved before any update)
        summary += "; a non-zero gradient in only some examples: " + ", ".join(partial)
    detail = "; ".join(problems + [summary])
    return Measurement(0.0, 0.0, None, not problems, detail, examples=n)


def _why_no_gradient(flow: _Flow, judged: Sequence[checks.Trial], n: int) -> str:
    depends = any(_depends(t, flow.name) for t in judged)
    if flow.reached == 0 and not depends:
        return f"parameter {flow.name} is unused: no gradient reaches it and the output does not depend on it ({n} examples)"
    if flow.reached == 0:
        return f"parameter {flow.name} is detached: the output depends on it but no gradient reaches it ({n} examples)"
    tail = "though the output depends on it" if depends else "and the output does not depend on it"
    return f"parameter {flow.name} has an always-zero gradient in all {n} examples, {tail}"


def _configuration(case: Case, judged: Sequence[checks.Trial]) -> str:
    """The configuration audited: the params every example fixed, and those drawn with the values seen."""
    seen: dict[str, set[str]] = {}
    for t in judged:
        for k, v in t.example.params.items():
            seen.setdefault(k, set()).add(repr(v))
    parts = [f"{k}={'|'.join(sorted(v))}" if len(v) <= 4 else f"{k} drawn ({len(v)} values)" for k, v in seen.items()]
    return "configuration " + (", ".join(parts) if parts else "without params")
