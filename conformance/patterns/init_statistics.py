"""Pattern kind ``init_statistics``: after an initialisation, each parameter follows the spec's law.

An initialisation is judged by the values it writes. For each example the check draws the module's
sizes, the call's ``params`` and a seed; builds the module (``linear``, ``embedding``,
``layer_norm`` or ``rms_norm``) on the tested device and dtype; fills every parameter with NaN, so
that a parameter the implementation leaves alone is seen; and calls ``f(module, *args, **kwargs)``
(the spec's ``call``) — repeatedly on the same module, refilling with NaN each time, until every
random parameter has at least ``samples`` values (pooled; the draws are independent). Then each
parameter is tested against its entry in ``expect``:

- ``constant`` — every value exactly the constant (rounded to the dtype). Deterministic.
- ``uniform`` U(−a, a), ``normal`` N(μ, σ²), ``truncated_normal`` N(μ, σ²) cut at μ ± c·σ:

  * bounded laws: every value within the support (deterministic: a correct draw never leaves it);
  * a Kolmogorov–Smirnov test against the exact CDF. By the DKW inequality (Massart 1990),
    P(sup|F_n − F| > ε) ≤ 2·exp(−2nε²); with ε = sqrt(ln(2/α′)/(2n)) a correct implementation
    fails with probability at most α′. α′ is the spec's ``false_alarm`` split evenly (Bonferroni)
    over every KS test of the row (``max_examples`` × random parameters), so a row with a correct
    implementation fails with probability at most ``false_alarm``. Power: by the same inequality a
    law at KS distance > 2ε + slack (below) from the target fails with probability ≥ 1 − α′. At
    n = 8192 and α′ = 5e-8, ε = 0.033: a normal law whose standard deviation is off by a third
    (distance 0.068) is caught with probability ≥ 1 − α′; 0.2 instead of 0.02 is at distance 0.40.

Values are drawn and rounded in the tested dtype: each is off the exact draw by a relative error of
at most ``ROUNDING_ULPS`` machine epsilons (the sampler's last rounding plus one in its affine
transform), which moves the CDF by at most that times sup |x·f(x)|; the KS bound adds this slack,
and the support check allows the same relative error at the bounds.

>>> from conformance.patterns import kinds
>>> sorted(kinds()["init_statistics"].required)
['expect', 'module', 'sizes']
>>> round(dkw_epsilon(16384, 2.5e-8), 4)
0.0236
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import sympy
import torch
from hypothesis import strategies as st
from torch import nn

from conformance.dtype_helpers import eps, torch_dtype
from conformance.patterns import PatternContext, PatternKind
from conformance.patterns.option_helpers import (
    bad,
    bound,
    evaluate_scalar,
    int_range,
    parse_call,
    parse_params,
    parse_scalar,
)
from conformance.patterns.search import search
from conformance.tolerance import Measurement

ROUNDING_ULPS = 2.0
DEFAULT_SAMPLES = 16384
DEFAULT_FALSE_ALARM = 1e-6
MAX_SIZE = 4096


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


# distribution -> (required keys, optional keys)
DISTRIBUTIONS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "constant": (frozenset({"value"}), frozenset()),
    "uniform": (frozenset({"bound"}), frozenset()),
    "normal": (frozenset({"std"}), frozenset({"mean"})),
    "truncated_normal": (frozenset({"std", "truncate"}), frozenset({"mean"})),
}


@dataclass(frozen=True)
class Expectation:
    """One parameter's target: a distribution name and its arguments as expressions."""

    distribution: str
    args: Mapping[str, sympy.Basic]
    texts: Mapping[str, str]

    def law(self, values: Mapping[str, Any]) -> Law:
        a = {k: evaluate_scalar(v, values) for k, v in self.args.items()}
        for key in ("bound", "std", "truncate"):
            if key in a and not (math.isfinite(a[key]) and a[key] > 0):
                raise ValueError(f"expect: {key} = {self.texts[key]} evaluates to {a[key]} at {dict(values)}; expected > 0")
        if self.distribution == "uniform":
            return uniform_law(a["bound"])
        if self.distribution == "normal":
            return normal_law(a.get("mean", 0.0), a["std"])
        return truncated_normal_law(a.get("mean", 0.0), a["std"], a["truncate"])


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


def expected_parameters(module: str, bias: bool) -> tuple[str, ...]:
    names = MODULES[module].parameters
    return names if bias or not MODULES[module].has_bias else tuple(n for n in names if n != "bias")


# -- validation --------------------------------------------------------------------------------------------


def validate(options: Mapping[str, Any]) -> dict:
    """Normalise the options of one ``init_statistics`` entry (see ``docs/spec-schema.md``)."""
    module = options["module"]
    if module not in MODULES:
        raise bad(("module",), f"expected one of {', '.join(MODULES)}, got {module!r}")
    kind = MODULES[module]
    bias = options.get("bias", True)
    if not isinstance(bias, bool):
        raise bad(("bias",), f"expected true or false, got {bias!r}")
    if not bias and not kind.has_bias:
        raise bad(("bias",), f"module {module} has no bias to leave out")
    sizes_raw = options["sizes"]
    if not isinstance(sizes_raw, dict) or set(sizes_raw) != set(kind.sizes):
        raise bad(("sizes",), f"module {module} needs exactly the sizes {', '.join(kind.sizes)}, each {{min, max}}")
    sizes = {name: int_range(sizes_raw[name], ("sizes", name), 1, MAX_SIZE) for name in kind.sizes}
    params = parse_params(options.get("params", {}), ("params",), set(sizes) | {"seed"})
    call = parse_call(options.get("call", {}), ("call",), set(sizes) | set(params))
    numeric = set(sizes) | {n for n, p in params.items() if p.numeric}
    expect = _parse_expect(options["expect"], expected_parameters(module, bias), numeric)
    samples = options.get("samples", DEFAULT_SAMPLES)
    if not isinstance(samples, int) or isinstance(samples, bool) or not 1000 <= samples <= 4_194_304:
        raise bad(("samples",), f"expected an integer 1000..4194304 (values per parameter per example), got {samples!r}")
    alpha = options.get("false_alarm", DEFAULT_FALSE_ALARM)
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not 0 < alpha <= 1e-6:
        raise bad(("false_alarm",), f"expected a probability 0 < false_alarm <= 1e-6, got {alpha!r}")
    return {
        "module": module,
        "bias": bias,
        "sizes": sizes,
        "params": params,
        "call": call,
        "expect": expect,
        "samples": samples,
        "false_alarm": float(alpha),
    }


def _parse_expect(value: Any, parameters: tuple[str, ...], names: set[str]) -> dict[str, Expectation]:
    if not isinstance(value, dict) or set(value) != set(parameters):
        raise bad(("expect",), f"expected one entry for each parameter of the module: {', '.join(parameters)}")
    out = {}
    for param, body in value.items():
        p = ("expect", param)
        dist = body.get("distribution") if isinstance(body, dict) else None
        if dist not in DISTRIBUTIONS:
            raise bad(p + ("distribution",), f"expected one of {', '.join(DISTRIBUTIONS)}, got {dist!r}")
        required, optional = DISTRIBUTIONS[dist]
        keys = set(body) - {"distribution"}
        if not required <= keys <= required | optional:
            allowed = ", ".join(sorted(required)) + (f" (optional: {', '.join(sorted(optional))})" if optional else "")
            raise bad(p, f"distribution {dist} takes {allowed}; got {', '.join(sorted(keys)) or 'nothing'}")
        args = {k: parse_scalar(body[k], p + (k,), names) for k in sorted(keys)}
        out[param] = Expectation(dist, args, {k: str(body[k]) for k in keys})
    return out


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
    law = expectation.law(values)
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
    name, chosen = failed[0] if failed else max(findings, key=lambda f: f[1].ratio)
    if failed:
        detail = "; ".join(f"{n}: {m.detail}" for n, m in failed) + f"; example: {draw!r}"
    else:
        detail = "; ".join(f"{n}: {m.detail}" for n, m in findings)
    return replace(chosen, detail=detail)


KIND = PatternKind(
    name="init_statistics",
    required=frozenset({"module", "sizes", "expect"}),
    optional=frozenset({"bias", "params", "call", "samples", "false_alarm"}),
    validate=validate,
    run=run,
    dtypes=("float32",),
)
