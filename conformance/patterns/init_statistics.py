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
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sympy

from conformance.patterns import PatternKind
from conformance.patterns.helpers.options import evaluate_scalar, int_pair, parse_call, parse_params, parse_scalar
from conformance.validation import SpecContext, Where

DEFAULT_SAMPLES = 16384
DEFAULT_FALSE_ALARM = 1e-6
MAX_SIZE = 4096

# module -> (its sizes, its parameters with the bias where it has one, whether ``bias: false`` applies)
MODULES: dict[str, tuple[tuple[str, ...], tuple[str, ...], bool]] = {
    "linear": (("fan_in", "fan_out"), ("weight", "bias"), True),
    "embedding": (("num_embeddings", "embedding_dim"), ("weight",), False),
    "layer_norm": (("dim",), ("weight", "bias"), True),
    "rms_norm": (("dim",), ("weight",), False),
}


def expected_parameters(module: str, bias: bool) -> tuple[str, ...]:
    _, names, has_bias = MODULES[module]
    return names if bias or not has_bias else tuple(n for n in names if n != "bias")


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

    def arguments(self, values: Mapping[str, Any]) -> dict[str, float]:
        """The distribution's arguments at ``values`` (sizes and params); scales must be finite and positive."""
        a = {k: evaluate_scalar(v, values) for k, v in self.args.items()}
        for key in ("bound", "std", "truncate"):
            if key in a and not (math.isfinite(a[key]) and a[key] > 0):
                raise ValueError(f"expect: {key} = {self.texts[key]} evaluates to {a[key]} at {dict(values)}; expected > 0")
        return a


def validate(options: Mapping[str, Any], where: Where, context: SpecContext) -> dict:
    """Normalise the options of one ``init_statistics`` entry (see ``docs/spec-schema.md``)."""
    module = options["module"]
    if module not in MODULES:
        raise where.at("module").error(f"expected one of {', '.join(MODULES)}, got {module!r}")
    sizes_of, _, has_bias = MODULES[module]
    bias = options.get("bias", True)
    if not isinstance(bias, bool):
        raise where.at("bias").error(f"expected true or false, got {bias!r}")
    if not bias and not has_bias:
        raise where.at("bias").error(f"module {module} has no bias to leave out")
    sizes_raw = options["sizes"]
    if not isinstance(sizes_raw, dict) or set(sizes_raw) != set(sizes_of):
        raise where.at("sizes").error(f"module {module} needs exactly the sizes {', '.join(sizes_of)}, each {{min, max}}")
    sizes = {name: int_pair(sizes_raw[name], where.at("sizes", name), 1, MAX_SIZE) for name in sizes_of}
    params = parse_params(options.get("params", {}), where.at("params"), set(sizes) | {"seed"})
    call = parse_call(options.get("call", {}), where.at("call"), set(sizes) | set(params))
    numeric = set(sizes) | {n for n, p in params.items() if p.numeric}
    expect = _parse_expect(options["expect"], where.at("expect"), expected_parameters(module, bias), numeric)
    samples = options.get("samples", DEFAULT_SAMPLES)
    if not isinstance(samples, int) or isinstance(samples, bool) or not 1000 <= samples <= 4_194_304:
        raise where.at("samples").error(f"expected an integer 1000..4194304 (values per parameter per example), got {samples!r}")
    alpha = options.get("false_alarm", DEFAULT_FALSE_ALARM)
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not 0 < alpha <= 1e-6:
        raise where.at("false_alarm").error(f"expected a probability 0 < false_alarm <= 1e-6, got {alpha!r}")
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


def _parse_expect(value: Any, where: Where, parameters: tuple[str, ...], names: set[str]) -> dict[str, Expectation]:
    if not isinstance(value, dict) or set(value) != set(parameters):
        raise where.error(f"expected one entry for each parameter of the module: {', '.join(parameters)}")
    out = {}
    for param, body in value.items():
        at = where.at(param)
        dist = body.get("distribution") if isinstance(body, dict) else None
        if dist not in DISTRIBUTIONS:
            raise at.at("distribution").error(f"expected one of {', '.join(DISTRIBUTIONS)}, got {dist!r}")
        required, optional = DISTRIBUTIONS[dist]
        keys = set(body) - {"distribution"}
        if not required <= keys <= required | optional:
            allowed = ", ".join(sorted(required)) + (f" (optional: {', '.join(sorted(optional))})" if optional else "")
            raise at.error(f"distribution {dist} takes {allowed}; got {', '.join(sorted(keys)) or 'nothing'}")
        args = {k: parse_scalar(body[k], at.at(k), names) for k in sorted(keys)}
        out[param] = Expectation(dist, args, {k: str(body[k]) for k in keys})
    return out


KIND = PatternKind(
    name="init_statistics",
    required=frozenset({"module", "sizes", "expect"}),
    optional=frozenset({"bias", "params", "call", "samples", "false_alarm"}),
    validate=validate,
    run="conformance.patterns.runs.init_statistics:run",
    dtypes=("float32",),
)
