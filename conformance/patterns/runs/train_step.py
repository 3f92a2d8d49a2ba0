"""What runs for the pattern kind ``train_step`` (:mod:`conformance.patterns.train_step`)."""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st
from torch import Tensor, nn
from torch.nn import functional as F

from conformance.checks import CheckSkipped
from conformance.dtype_helpers import torch_dtype
from conformance.patterns import PatternContext
from conformance.patterns.helpers.search import search
from conformance.patterns.train_step import AMP_DTYPES, DEFAULT_SIZES
from conformance.tolerance import Measurement, compare, worst

_DEPRECATED_APIS = ("torch.cuda.amp", "torch.cpu.amp")  # replaced by torch.amp


# --------------------------------------------------------------------------------------------- options


# --------------------------------------------------------------------------------------------- the model


@dataclass
class ModelOutput:
    """What the model returns: an object with the scalar ``loss`` (the guide reads ``outputs.loss``)."""

    loss: Tensor
    prediction: Tensor


@dataclass
class Probe:
    """The autocast state seen during each forward pass (with gradients) and during backward."""

    device_type: str
    forward: list[tuple[bool, torch.dtype]] = field(default_factory=list)
    backward: list[bool] = field(default_factory=list)

    def reset(self) -> None:
        self.forward.clear()
        self.backward.clear()

    def record_forward(self) -> None:
        if torch.is_grad_enabled():
            self.forward.append((torch.is_autocast_enabled(self.device_type), torch.get_autocast_dtype(self.device_type)))

    def record_backward(self, grad: Tensor) -> None:
        self.backward.append(torch.is_autocast_enabled(self.device_type))


class ProbeMLP(nn.Module):
    """Two-layer MLP with an MSE loss head: loss = mean((W2 tanh(W1 x + b1) + b2 − y)²).

    ``forward(x, y)`` takes the batch by keyword (the trainer calls ``model(**batch)``) and returns a
    :class:`ModelOutput`. Under autocast the linear layers run in the autocast dtype and ``mse_loss``
    in float32 (torch.amp's op lists; Micikevicius §3.3: reductions in float32).
    """

    def __init__(self, features: int, hidden: int, outputs: int, probe: Probe) -> None:
        super().__init__()
        self.fc1 = nn.Linear(features, hidden)
        self.fc2 = nn.Linear(hidden, outputs)
        self.probe = probe

    def forward(self, x: Tensor, y: Tensor) -> ModelOutput:
        self.probe.record_forward()
        h = torch.tanh(self.fc1(x))  # (B, hidden)
        if h.requires_grad:
            h.register_hook(self.probe.record_backward)
        prediction = self.fc2(h)  # (B, outputs)
        return ModelOutput(loss=F.mse_loss(prediction, y), prediction=prediction)


# --------------------------------------------------------------------------------------------- drawing


@dataclass(frozen=True)
class Draw:
    """One example: sizes, seed, optimizer and its hyper-parameters, steps, and the planted overflow step."""

    batch: int
    features: int
    hidden: int
    outputs: int
    seed: int
    optimizer: str
    lr: float
    momentum: float
    weight_decay: float
    steps: int
    input_magnitude: float
    target_magnitude: float
    planted_step: int | None  # index of the batch whose input overflows float16


def draws(options: Mapping[str, Any]) -> st.SearchStrategy[Draw]:
    """Examples for one spec entry (targets of magnitude ≥ 1 make gradient norms above 1 common, so clipping acts)."""
    sizes, overflow = options["sizes"], options["overflow"]
    lo, hi = options["learning_rate"]

    @st.composite
    def build(draw: Callable) -> Draw:
        drawn = {name: draw(st.integers(*sizes[name])) for name in DEFAULT_SIZES}
        before = draw(st.integers(*options["steps"]))
        steps, planted = (before + 1 + overflow["growth_interval"], before) if overflow else (before, None)
        return Draw(
            **drawn,
            seed=draw(st.integers(0, 2**32 - 1)),
            optimizer=draw(st.sampled_from(options["optimizers"])),
            lr=min(max(math.exp(draw(st.floats(math.log(lo), math.log(hi)))), lo), hi),  # exp(log(hi)) may round above hi
            momentum=draw(st.sampled_from([0.5, 0.9])),
            weight_decay=draw(st.sampled_from([0.0, 0.01, 0.1])),
            steps=steps,
            input_magnitude=draw(st.sampled_from([0.5, 1.0, 2.0, 4.0])),
            target_magnitude=draw(st.sampled_from([1.0, 2.0, 4.0, 8.0])),
            planted_step=planted,
        )

    return build()


@dataclass(frozen=True)
class Problem:
    """Initial weights and batches as float64 arrays, already rounded to the precision the implementation sees."""

    weights: dict[str, np.ndarray]
    batches: list[dict[str, np.ndarray]]


def problem(d: Draw, storage: str, overflow: Mapping[str, Any] | None) -> Problem:
    """Weights U(±1/√fan_in) (nn.Linear's range) and one fresh batch per step, from ``d.seed``."""
    rng = np.random.default_rng(d.seed)

    def uniform(bound: float, *shape: int) -> np.ndarray:
        return _round(rng.uniform(-bound, bound, size=shape), storage)

    weights = {
        "fc1.weight": uniform(1 / math.sqrt(d.features), d.hidden, d.features),
        "fc1.bias": uniform(1 / math.sqrt(d.features), d.hidden),
        "fc2.weight": uniform(1 / math.sqrt(d.hidden), d.outputs, d.hidden),
        "fc2.bias": uniform(1 / math.sqrt(d.hidden), d.outputs),
    }
    batches = [
        {"x": uniform(d.input_magnitude, d.batch, d.features), "y": uniform(d.target_magnitude, d.batch, d.outputs)}
        for _ in range(d.steps)
    ]
    if d.planted_step is not None and overflow is not None:
        batches[d.planted_step]["x"][0, 0] = overflow["magnitude"]  # finite in float32, inf once cast to float16
    return Problem(weights, batches)


def _round(array: np.ndarray, storage: str) -> np.ndarray:
    return torch.from_numpy(array).to(torch_dtype(storage)).double().numpy()


# --------------------------------------------------------------------------------------------- the loops


@dataclass
class LossScale:
    """Dynamic loss scaling as ``torch.amp.GradScaler`` does it: × backoff after an overflow, × growth after
    ``growth_interval`` consecutive clean steps (Micikevicius §3.2 uses a constant scale and names skipping
    the update on overflow; the dynamic schedule is torch's).

    >>> s = LossScale(1024.0, growth_factor=2.0, backoff_factor=0.5, growth_interval=2)
    >>> for found_inf in (True, False, False, False):
    ...     s.update(found_inf)
    >>> s.scale, s.tracker  # halved, doubled after two clean steps, one clean step counted since
    (1024.0, 1)
    """

    scale: float
    growth_factor: float
    backoff_factor: float
    growth_interval: int
    tracker: int = 0

    def update(self, found_inf: bool) -> None:
        if found_inf:
            self.scale *= self.backoff_factor
            self.tracker = 0
            return
        self.tracker += 1
        if self.tracker == self.growth_interval:
            self.scale *= self.growth_factor
            self.tracker = 0


@dataclass
class Setup:
    """A model and optimizer built from a :class:`Problem` at one precision on one device."""

    model: ProbeMLP
    optimizer: torch.optim.Optimizer
    batches: list[dict[str, Tensor]]


def setup(d: Draw, prob: Problem, device: str, dtype: torch.dtype) -> Setup:
    model = ProbeMLP(d.features, d.hidden, d.outputs, Probe(torch.device(device).type)).to(device=device, dtype=dtype)
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.copy_(torch.from_numpy(prob.weights[name]))
    batches = [{k: torch.from_numpy(v).to(device=device, dtype=dtype) for k, v in b.items()} for b in prob.batches]
    return Setup(model, make_optimizer(d, model.parameters()), batches)


def make_optimizer(d: Draw, params: Any) -> torch.optim.Optimizer:
    if d.optimizer == "sgd":
        return torch.optim.SGD(params, lr=d.lr)
    if d.optimizer == "sgd_momentum":
        return torch.optim.SGD(params, lr=d.lr, momentum=d.momentum)
    return torch.optim.AdamW(params, lr=d.lr, weight_decay=d.weight_decay)


@dataclass
class Trace:
    """What a loop did: the loss and the flattened parameters after every step, skips and loss scales."""

    losses: list[float] = field(default_factory=list)
    params: list[np.ndarray] = field(default_factory=list)
    skipped: list[bool] = field(default_factory=list)
    scales: list[float] = field(default_factory=list)


def flat_params(model: nn.Module) -> np.ndarray:
    return np.concatenate([p.detach().double().cpu().reshape(-1).numpy() for p in model.parameters()])


def reference_loop(
    s: Setup, *, max_norm: float, amp_dtype: torch.dtype | None, loss_scale: LossScale | None, skip: Sequence[bool] | None
) -> Trace:
    """The plain loop: zero grads, forward + loss (autocast when ``amp_dtype``), backward of loss × S outside
    autocast, unscale, clip to ``max_norm``, step unless a gradient is inf/NaN (or ``skip[k]``), update S."""
    trace = Trace()
    device_type = s.model.probe.device_type
    for k, batch in enumerate(s.batches):
        s.optimizer.zero_grad(set_to_none=True)
        with torch.amp.autocast(device_type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
            loss = s.model(**batch).loss
        found_inf = False
        if loss_scale is None:
            loss.backward()
        else:
            (loss * torch.tensor(loss_scale.scale, dtype=torch.float32, device=loss.device)).backward()
            found_inf = _unscale(s.model, loss_scale.scale)
        skipped = skip[k] if skip is not None else found_inf
        nn.utils.clip_grad_norm_(s.model.parameters(), max_norm)
        if not skipped:
            s.optimizer.step()
        if loss_scale:
            loss_scale.update(found_inf)
            trace.scales.append(loss_scale.scale)
        trace.losses.append(loss.item())
        trace.params.append(flat_params(s.model))
        trace.skipped.append(skipped)
    return trace


def _unscale(model: nn.Module, scale: float) -> bool:
    """Divide the gradients by the loss scale (a power of two: exact); True if any is inf/NaN."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    with torch.no_grad():
        for g in grads:
            g.mul_(1.0 / scale)
    return not all(bool(torch.isfinite(g).all()) for g in grads)


@dataclass
class Observed:
    """The implementation's trace plus what the probe, the warnings and the scaler showed."""

    trace: Trace
    problems: list[str]


def _accepts(trainer_cls: Any, keyword: str) -> bool:
    """Whether the trainer's constructor takes ``keyword`` (by name, or through ``**kwargs``)."""
    try:
        parameters = inspect.signature(trainer_cls).parameters.values()
    except (TypeError, ValueError):  # no signature to read: try the keyword, as before
        return True
    return any(p.name == keyword or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _skip_unaskable_dtype(ctx: PatternContext) -> None:
    """A trainer with the guide's signature (no ``amp_dtype``) is judged at its device's autocast dtype only."""
    if ctx.dtype not in AMP_DTYPES or _accepts(ctx.target(), "amp_dtype"):
        return
    default = torch.get_autocast_dtype(torch.device(ctx.device).type)  # float16 on CUDA, bfloat16 on CPU
    if torch_dtype(ctx.dtype) != default:
        raise CheckSkipped(
            "the trainer has the guide's signature Trainer(model, optimizer, use_amp), without amp_dtype, so it "
            f"autocasts at the device's default ({str(default).removeprefix('torch.')}); it cannot be asked for {ctx.dtype}"
        )


def run_implementation(
    trainer_cls: Any, s: Setup, *, amp_dtype: torch.dtype | None, overflow: Mapping[str, Any] | None
) -> tuple[Observed, LossScale | None]:
    """Build the trainer and run every step under warning capture; returns its trace and the scaler's starting state."""
    problems: list[str] = []
    trace = Trace()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kwargs: dict[str, Any] = {"use_amp": amp_dtype is not None}
        if amp_dtype is not None and _accepts(trainer_cls, "amp_dtype"):
            kwargs["amp_dtype"] = amp_dtype  # else the guide's signature: the device's default (checked by run)
        try:
            trainer = trainer_cls(s.model, s.optimizer, **kwargs)
        except TypeError as exc:
            call = ", ".join(f"{k}={v}" for k, v in kwargs.items())
            return Observed(trace, [f"Trainer(model, optimizer, {call}) raised TypeError: {exc}"]), None
        start = None
        if amp_dtype == torch.float16:
            start, problem_text = _scaler_start(trainer, overflow)
            if problem_text:
                problems.append(problem_text)
        scaler = getattr(trainer, "scaler", None)
        for k, batch in enumerate(s.batches):
            before = flat_params(s.model)
            state_before = _optimizer_state(s.optimizer)
            s.model.probe.reset()
            value = trainer.train_step(batch)
            problems += _probe_problems(s.model.probe, amp_dtype, k)
            if isinstance(value, Tensor) or not isinstance(value, float):
                problems.append(f"step {k}: train_step returned {type(value).__name__} {value!r}, expected a Python float")
                value = float(value.detach().double().cpu()) if isinstance(value, Tensor) and value.numel() == 1 else math.nan
            trace.losses.append(value)
            trace.params.append(flat_params(s.model))
            trace.skipped.append(bool(np.array_equal(before, trace.params[-1])) and _same_state(state_before, s.optimizer))
            if start is not None:
                trace.scales.append(float(scaler.get_scale()))
    problems += [
        f"{w.category.__name__}: {w.message} (the deprecated device-specific AMP API; use torch.amp.autocast(device_type, ...) "
        "and torch.amp.GradScaler(device))"
        for w in _unique_deprecations(caught)
    ]
    return Observed(trace, problems), start


def _scaler_start(trainer: Any, overflow: Mapping[str, Any] | None) -> tuple[LossScale | None, str | None]:
    """The loss scale the float16 trainer starts from (set to ``overflow``'s scale and interval when given)."""
    scaler = getattr(trainer, "scaler", None)
    if not isinstance(scaler, torch.amp.GradScaler) or not scaler.is_enabled():
        found = type(scaler).__name__ + (" (disabled)" if isinstance(scaler, torch.amp.GradScaler) else "")
        return None, (
            "float16 autocast needs loss scaling (Micikevicius §3.2): trainer.scaler must be an enabled "
            f"torch.amp.GradScaler, found {found}"
        )
    state = scaler.state_dict()
    if overflow is not None:
        state.update(scale=overflow["scale"], growth_interval=overflow["growth_interval"], _growth_tracker=0)
        scaler.load_state_dict(state)
    return LossScale(
        float(state["scale"]),
        float(state["growth_factor"]),
        float(state["backoff_factor"]),
        int(state["growth_interval"]),
        int(state["_growth_tracker"]),
    ), None


def _probe_problems(probe: Probe, amp_dtype: torch.dtype | None, k: int) -> list[str]:
    problems = []
    if not probe.forward:
        problems.append(f"step {k}: the model was not called with gradients enabled")
    want = "on at " + str(amp_dtype).removeprefix("torch.") if amp_dtype else "off"
    for enabled, dtype in probe.forward:
        ok = enabled and dtype == amp_dtype if amp_dtype is not None else not enabled
        if not ok:
            seen = f"on at {str(dtype).removeprefix('torch.')}" if enabled else "off"
            problems.append(f"step {k}: {probe.device_type} autocast was {seen} during the forward pass, expected {want}")
            break
    if any(probe.backward):
        problems.append(
            f"step {k}: backward ran under {probe.device_type} autocast (the torch.amp docs: autocast should wrap only "
            "the forward pass and the loss; backward passes under autocast are not recommended)"
        )
    return problems


def _unique_deprecations(caught: Sequence[warnings.WarningMessage]) -> list[warnings.WarningMessage]:
    seen, out = set(), []
    for w in caught:
        text = str(w.message)
        if (
            issubclass(w.category, (FutureWarning, DeprecationWarning))
            and any(api in text for api in _DEPRECATED_APIS)
            and text not in seen
        ):
            seen.add(text)
            out.append(w)
    return out


def _optimizer_state(optimizer: torch.optim.Optimizer) -> list[tuple[int, str, np.ndarray]]:
    out = []
    for pid, state in sorted(optimizer.state_dict()["state"].items()):
        for key, value in sorted(state.items()):
            out.append((pid, key, np.asarray(value.detach().double().cpu() if isinstance(value, Tensor) else value)))
    return out


def _same_state(before: list[tuple[int, str, np.ndarray]], optimizer: torch.optim.Optimizer) -> bool:
    after = _optimizer_state(optimizer)
    return len(before) == len(after) and all(
        a[:2] == b[:2] and np.array_equal(a[2], b[2], equal_nan=True) for a, b in zip(before, after)
    )


# --------------------------------------------------------------------------------------------- one example


def check_example(ctx: PatternContext, d: Draw) -> Measurement:
    """Run the implementation and both references on one draw and compare them (see the module docstring)."""
    options = ctx.options
    amp = ctx.dtype in AMP_DTYPES
    storage = "float32" if amp else ctx.dtype  # master weights stay float32 under autocast (§3.1)
    amp_dtype = torch_dtype(ctx.dtype) if amp else None
    overflow = options["overflow"]
    if overflow is not None and ctx.dtype != "float16":
        raise ValueError(f"train_step option 'overflow' applies to float16 rows only (loss scaling), not {ctx.dtype}")
    prob = problem(d, storage, overflow)
    mine = setup(d, prob, ctx.device, torch_dtype(storage))
    observed, start = run_implementation(ctx.target(), mine, amp_dtype=amp_dtype, overflow=overflow)
    if not observed.trace.losses:
        return _verdict(None, None, observed.problems, d)
    scaling = start if ctx.dtype == "float16" else None
    if ctx.dtype == "float16" and scaling is None:  # no usable scaler: reference with GradScaler's defaults
        scaling = LossScale(65536.0, 2.0, 0.5, 2000)
    same = reference_loop(
        setup(d, prob, ctx.device, torch_dtype(storage)),
        max_norm=options["max_norm"],
        amp_dtype=amp_dtype,
        loss_scale=_copy(scaling),
        skip=None,
    )
    exact = reference_loop(
        setup(d, prob, ctx.device, torch.float64),
        max_norm=options["max_norm"],
        amp_dtype=None,
        loss_scale=None,
        skip=same.skipped,
    )
    problems = list(observed.problems)
    if d.planted_step is not None and not same.skipped[d.planted_step]:
        raise RuntimeError(f"the planted overflow at step {d.planted_step} did not overflow the float16 reference")
    if scaling is not None:
        problems += _skip_problems(observed.trace, same)
    rule = ctx.rule
    params = compare(
        np.stack(observed.trace.params), np.stack(exact.params), dtype=storage, rule=rule, reference=np.stack(same.params)
    )
    losses = _compare_losses(observed.trace, same, exact, storage, rule)
    return _verdict(params, losses, problems, d)


def _copy(scale: LossScale | None) -> LossScale | None:
    return None if scale is None else LossScale(**asdict(scale))


def _skip_problems(mine: Trace, same: Trace) -> list[str]:
    """At float16: skipped steps leave everything unchanged, others do not, and the scale follows the reference's."""
    problems = []
    for k, (skipped, ref_skipped) in enumerate(zip(mine.skipped, same.skipped)):
        if ref_skipped and not skipped:
            problems.append(
                f"step {k}: gradients were inf/NaN in float16 but the parameters or optimizer state changed "
                "(an overflowing step must be skipped, Micikevicius §3.2)"
            )
    if mine.scales and mine.scales != same.scales:
        problems.append(
            f"loss scale after each step {mine.scales}, expected {same.scales} "
            f"(× backoff after an overflow, × growth after growth_interval clean steps; skipped: {same.skipped})"
        )
    return problems


def _compare_losses(mine: Trace, same: Trace, exact: Trace, storage: str, rule: Any) -> Measurement:
    """Returned losses against the float64 loop's, on the steps whose reference loss is finite; where the
    same-precision loss overflowed, the implementation's must be non-finite too."""
    finite = np.isfinite(same.losses)
    actual = np.asarray(mine.losses, dtype=np.float64)
    if np.any(np.isfinite(actual[~finite])):
        return Measurement(
            math.inf,
            math.inf,
            None,
            False,
            f"losses {mine.losses}: finite where the forward pass overflows float16 (reference {same.losses})",
        )
    return compare(
        actual[finite], np.asarray(exact.losses)[finite], dtype=storage, rule=rule, reference=np.asarray(same.losses)[finite]
    )


def _verdict(params: Measurement | None, losses: Measurement | None, problems: list[str], d: Draw) -> Measurement:
    measured = [m for m in (params, losses) if m is not None]
    chosen = worst(measured) if measured else None
    details = list(problems)
    if params is not None and not params.passed:
        details.append(f"parameters vs the float64 reference loop: {params.detail}")
    if losses is not None and not losses.passed:
        details.append(f"returned losses vs the float64 reference loop: {losses.detail}")
    passed = not details
    detail = "" if passed else "; ".join(details) + f"; example: {asdict(d)}"
    if chosen is None:
        return Measurement(math.inf, math.inf, None, False, detail)
    return Measurement(chosen.max_abs_err, chosen.max_rel_err, chosen.tolerance, passed, detail)


# --------------------------------------------------------------------------------------------- the kind


def replay(ctx: PatternContext, example: Mapping[str, Any]) -> Measurement:
    """The check on one draw given as data (a failing row's ``falsifying_example``)."""
    return check_example(ctx, Draw(**example))


def run(ctx: PatternContext) -> Measurement:
    if not hasattr(torch, "get_autocast_dtype") or not hasattr(torch.amp, "GradScaler"):
        raise RuntimeError(
            f"train_step needs torch >= 2.4 (device-generic autocast queries, torch.amp.GradScaler); found {torch.__version__}"
        )
    _skip_unaskable_dtype(ctx)
    return search(ctx, draws(ctx.options), lambda d: check_example(ctx, d), to_example=asdict)
