"""What runs for the pattern kind ``init_statistics`` (:mod:`conformance.patterns.init_statistics`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch
from hypothesis import strategies as st
from torch import nn

from conformance.dtype_helpers import eps, torch_dtype
from conformance.patterns import PatternContext
from conformance.patterns.helpers.bounds import bound
from conformance.patterns.helpers.options import evaluate_scalar
from conformance.patterns.helpers.search import search
from conformance.patterns.init_statistics import Expectation
from conformance.tolerance import Measurement, worst

ROUNDING_ULPS = 2.0


# -- target laws -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Law:
    """A continuous target distribution, evaluated in float64 on the CPU."""

    text: str
    cdf: Callable[[torch.Tensor], torch.Tensor]
    pdf: Callable[[torch.Tensor], torch.Tensor]
    support: tuple[float, float] | None  # closed; None: unbounded
    mean: float
    std: float  # of the law itself (for the report)
    span: tuple[float, float]  # where the density lives, to bound sup |x·f(x)|

    def rounding_slack(self, relative: float) -> float:
        """sup_x |F(x(1+δ)) − F(x)| ≤ |δ|·sup |x·f(x)|, on a fine grid over ``span``."""
        x = torch.linspace(*self.span, 200_001, dtype=torch.float64)
        return relative * float((x.abs() * self.pdf(x)).max()) * 1.01  # 1 %: the grid's maximum can miss the peak


def _phi(z: torch.Tensor) -> torch.Tensor:
    return torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def law_of(expectation: Expectation, values: Mapping[str, Any]) -> Law:
    """The law a parameter's expectation names, at ``values`` (sizes and params)."""
    a = expectation.arguments(values)
    if expectation.distribution == "uniform":
        return uniform_law(a["bound"])
    if expectation.distribution == "normal":
        return normal_law(a.get("mean", 0.0), a["std"])
    return truncated_normal_law(a.get("mean", 0.0), a["std"], a["truncate"])


def uniform_law(bound_a: float) -> Law:
    """U(−a, a)."""
    a = bound_a
    return Law(
        f"U(-{a:.6g}, {a:.6g})",
        lambda x: ((x + a) / (2 * a)).clamp(0, 1),
        lambda x: torch.where(x.abs() <= a, 1 / (2 * a), 0.0).to(torch.float64),
        (-a, a),
        0.0,
        a / math.sqrt(3),
        (-a, a),
    )


def normal_law(mean: float, std: float) -> Law:
    """N(μ, σ²)."""
    return Law(
        f"N({mean:.6g}, {std:.6g}²)",
        lambda x: torch.special.ndtr((x - mean) / std),
        lambda x: _phi((x - mean) / std) / std,
        None,
        mean,
        std,
        (mean - 12 * std, mean + 12 * std),
    )


def truncated_normal_law(mean: float, std: float, cut: float) -> Law:
    """N(μ, σ²) conditioned on |x − μ| ≤ c·σ."""
    c = torch.tensor(cut, dtype=torch.float64)
    mass = float(torch.special.ndtr(c) - torch.special.ndtr(-c))
    low = float(torch.special.ndtr(-c))
    law_std = std * math.sqrt(1 - 2 * cut * float(_phi(c)) / mass)
    return Law(
        f"N({mean:.6g}, {std:.6g}²) truncated to ±{cut:g}σ",
        lambda x: ((torch.special.ndtr((x - mean) / std) - low) / mass).clamp(0, 1),
        lambda x: torch.where((x - mean).abs() <= cut * std, _phi((x - mean) / std) / (std * mass), 0.0),
        (mean - cut * std, mean + cut * std),
        mean,
        law_std,
        (mean - cut * std, mean + cut * std),
    )


# -- modules -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModuleKind:
    sizes: tuple[str, ...]
    parameters: tuple[str, ...]  # with its bias, where it has one
    build: Callable[[Mapping[str, int], bool], nn.Module]
    has_bias: bool  # whether ``bias: false`` applies


def _rms_norm(dim: int) -> nn.Module:
    from implementations.rmsnorm import RMSNorm  # the project's RMSNorm (the guide's pattern 4)

    return RMSNorm(dim)


MODULES: dict[str, ModuleKind] = {
    "linear": ModuleKind(
        ("fan_in", "fan_out"), ("weight", "bias"), lambda s, b: nn.Linear(s["fan_in"], s["fan_out"], bias=b), True
    ),
    "embedding": ModuleKind(
        ("num_embeddings", "embedding_dim"),
        ("weight",),
        lambda s, b: nn.Embedding(s["num_embeddings"], s["embedding_dim"]),
        False,
    ),
    "layer_norm": ModuleKind(("dim",), ("weight", "bias"), lambda s, b: nn.LayerNorm(s["dim"], bias=b), True),
    "rms_norm": ModuleKind(("dim",), ("weight",), lambda s, b: _rms_norm(s["dim"]), False),
}


# -- validation --------------------------------------------------------------------------------------------


# -- the check -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Draw:
    """One example: the module's sizes, the call's params, the seed."""

    sizes: Mapping[str, int]
    params: Mapping[str, Any]
    seed: int

    def __repr__(self) -> str:
        return f"sizes={dict(self.sizes)}, params={dict(self.params)}, seed={self.seed}"


def draws(options: Mapping[str, Any]) -> st.SearchStrategy[Draw]:
    sizes = st.fixed_dictionaries({n: st.integers(lo, hi) for n, (lo, hi) in options["sizes"].items()})
    params = st.fixed_dictionaries({n: p.strategy() for n, p in options["params"].items()})
    return st.builds(Draw, sizes, params, st.integers(0, 2**32 - 1))


def dkw_epsilon(n: int, alpha: float) -> float:
    """The DKW–Massart bound: P(sup|F_n − F| > ε) ≤ α for ε = sqrt(ln(2/α)/(2n))."""
    return math.sqrt(math.log(2 / alpha) / (2 * n))


def ks_distance(samples: torch.Tensor, cdf: Callable[[torch.Tensor], torch.Tensor]) -> float:
    """sup_x |F_n(x) − F(x)| for the empirical CDF of ``samples`` (float64, 1-D; ties handled)."""
    x = samples.sort().values
    n = x.numel()
    f = cdf(x)
    i = torch.arange(1, n + 1, dtype=torch.float64)
    return max(float((i / n - f).max()), float((f - (i - 1) / n).max()))


def run(ctx: PatternContext) -> Measurement:
    opts = ctx.options
    random = sum(1 for e in opts["expect"].values() if e.distribution != "constant")
    alpha = opts["false_alarm"] / (max(ctx.settings.max_examples, 1) * max(random, 1))
    target = ctx.target()
    # No shrinking: every step would cost a pooled sample of thousands of calls, and a statistical
    # failure's example (sizes, params, seed) is as readable as drawn.
    return search(ctx, draws(opts), lambda draw: measure(ctx, target, draw, alpha), shrink=False)


def measure(ctx: PatternContext, target: Callable, draw: Draw, alpha: float) -> Measurement:
    """Initialise, pool the values, and judge every parameter for one example."""
    opts = ctx.options
    values = {**draw.sizes, **draw.params}
    dtype = torch_dtype(ctx.dtype)
    module = MODULES[opts["module"]].build(draw.sizes, opts["bias"]).to(device=ctx.device, dtype=dtype)
    params = dict(module.named_parameters())
    meta = {name: (p.shape, p.dtype, p.device) for name, p in params.items()}
    expect: Mapping[str, Expectation] = opts["expect"]
    random = [n for n, e in expect.items() if e.distribution != "constant"]
    repeats = max((math.ceil(opts["samples"] / params[n].numel()) for n in random), default=1)
    pooled: dict[str, list[torch.Tensor]] = {n: [] for n in expect}
    torch.manual_seed(draw.seed)  # every device's generator
    for _ in range(repeats):
        with torch.no_grad():
            for p in module.parameters():
                p.fill_(float("nan"))
        opts["call"].invoke(target, module, values)
        current = dict(module.named_parameters())
        now = {name: (p.shape, p.dtype, p.device) for name, p in current.items()}
        if now != meta:
            detail = f"parameters changed name, shape, dtype or device: before {meta}, after {now}; example: {draw!r}"
            return Measurement(
                math.inf, math.inf, bound(0.0, "parameters keep their names, shapes, dtypes and devices"), False, detail
            )
        for n in expect:
            pooled[n].append(current[n].detach().clone().flatten())
    findings = [
        (name, finding)
        for name, e in expect.items()
        for finding in judge(torch.cat(pooled[name]).to(device="cpu", dtype=torch.float64), e, values, ctx.dtype, alpha)
    ]
    return _summary(findings, draw)


def judge(x: torch.Tensor, expectation: Expectation, values: Mapping[str, Any], dtype: str, alpha: float) -> list[Measurement]:
    """The parameter's findings: exact constant, or finiteness, support and KS distance."""
    if expectation.distribution == "constant":
        return [_constant(x, evaluate_scalar(expectation.args["value"], values), dtype)]
    law = law_of(expectation, values)
    finite = torch.isfinite(x)
    if not finite.all():
        bad_count = int((~finite).sum())
        detail = (
            f"{bad_count} of {x.numel()} values not finite (parameters are filled with NaN before the call: not initialised?)"
        )
        return [Measurement(math.inf, math.inf, bound(0.0, "every value finite"), False, detail)]
    return ([_support(x, law, dtype)] if law.support else []) + [_kolmogorov_smirnov(x, law, dtype, alpha)]


def _constant(x: torch.Tensor, value: float, dtype: str) -> Measurement:
    expected = float(torch.tensor(value, dtype=torch_dtype(dtype)))
    diff = torch.where(x == expected, 0.0, (x - expected).abs().nan_to_num(math.inf))
    err = float(diff.max())
    wrong = int((diff > 0).sum())
    nan = " (NaN: not initialised?)" if bool(x.isnan().any()) else ""
    detail = (
        f"exactly {expected:g}"
        if not wrong
        else f"{wrong} of {x.numel()} values differ from {expected:g}{nan} (max |Δ| {err:.4g})"
    )
    return Measurement(err, err / max(abs(expected), 1.0), bound(0.0, f"exactly {expected:g}"), wrong == 0, detail)


def _support(x: torch.Tensor, law: Law, dtype: str) -> Measurement:
    lo, hi = law.support
    allow = ROUNDING_ULPS * eps(dtype)
    lo_ok, hi_ok = lo - allow * abs(lo), hi + allow * abs(hi)
    outside = (x < lo_ok) | (x > hi_ok)
    excess = float(torch.clamp(torch.maximum(lo - x, x - hi), min=0).max())
    atol = allow * max(abs(lo), abs(hi))
    basis = f"support [{lo:.6g}, {hi:.6g}] ± {ROUNDING_ULPS:g} eps({dtype}) relative (rounding)"
    count = int(outside.sum())
    detail = (
        f"{count} of {x.numel()} values outside {law.text}'s support [{lo:.6g}, {hi:.6g}] (extremes {float(x.min()):.6g}, "
        f"{float(x.max()):.6g})"
        if count
        else f"within [{lo:.6g}, {hi:.6g}]"
    )
    return Measurement(excess, excess / max(abs(lo), abs(hi)), bound(atol, basis), count == 0, detail)


def _kolmogorov_smirnov(x: torch.Tensor, law: Law, dtype: str, alpha: float) -> Measurement:
    n = x.numel()
    d = ks_distance(x, law.cdf)
    epsilon = dkw_epsilon(n, alpha)
    slack = law.rounding_slack(ROUNDING_ULPS * eps(dtype))
    basis = f"DKW ε = sqrt(ln(2/α′)/(2n)) = {epsilon:.4g} at n = {n}, α′ = {alpha:.3g}; + {slack:.3g} rounding slack ({dtype})"
    passed = d <= epsilon + slack
    stats = f"mean {float(x.mean()):.4g} (law {law.mean:.4g}), std {float(x.std()):.4g} (law {law.std:.4g})"
    relation = "<=" if passed else ">"
    detail = f"KS distance to {law.text} {d:.4g} {relation} {epsilon + slack:.4g}; {stats}"
    return Measurement(d, d, bound(epsilon + slack, basis), passed, detail)


def _summary(findings: list[tuple[str, Measurement]], draw: Draw) -> Measurement:
    """The example's verdict: its first failure, else its worst finding; the detail lists all."""
    failed = [(n, m) for n, m in findings if not m.passed]
    chosen = failed[0][1] if failed else worst(m for _, m in findings)
    if failed:
        detail = "; ".join(f"{n}: {m.detail}" for n, m in failed) + f"; example: {draw!r}"
    else:
        detail = "; ".join(f"{n}: {m.detail}" for n, m in findings)
    return replace(chosen, detail=detail)
