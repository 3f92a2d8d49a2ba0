"""Verdicts at the magnitude of their terms: no false alarm where a result is small next to what it is
computed from, and no tolerance so wide that nothing could fail it (issue 8, "Verdicts that are right").

Each case is one the issue names, pinned on a fixed example: LayerNorm at D = 2 with nearly equal inputs
(the float64 oracle itself is hundreds of ulps off), the float64 gradient of the tanh form of GELU at
|x| ≈ 7 (the derivative formula's 1 − tanh² cancels), an identity against "0" (its result is tiny next to
the outputs it relates) — each with a wrong implementation that still fails — and vacuous tolerances.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from conformance.checks import Trial, check_gradient, check_invariant, check_oracle
from conformance.dtype_helpers import eps
from conformance.model import ToleranceRule
from conformance.spec import EquationSpec, SpecError, load_specs
from conformance.strategies import Example
from conformance.tolerance import compare

IMPLS = '''
import torch
import torch.nn.functional as F

def gelu_tanh(x):
    return F.gelu(x, approximate="tanh")

def gelu_exact(x):
    return F.gelu(x)

class _WrongBackward(torch.autograd.Function):
    """The tanh form forward, a backward with the cubic coefficient off by 1e-4 (relative ~2e-3)."""
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return F.gelu(x, approximate="tanh")
    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        c = (2 / torch.pi) ** 0.5
        u = c * (x + 0.0448 * x**3)
        t = torch.tanh(u)
        return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.0448 * x**2))

def gelu_tanh_wrong_backward(x):
    return _WrongBackward.apply(x)

def ffn(x, W1, V, W2):
    return (F.silu(x @ W1) * (x @ V)) @ W2

def ffn_sigmoid(x, W1, V, W2):
    return (torch.sigmoid(x @ W1) * (x @ V)) @ W2

class EpsOutsideRoot(torch.nn.Module):
    def __init__(self, normalized_shape, eps=1e-5):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(normalized_shape))
        self.bias = torch.nn.Parameter(torch.zeros(normalized_shape))
        self.eps = eps
    def forward(self, x):
        var, mean = torch.var_mean(x, -1, keepdim=True, correction=0)
        return (x - mean) / (var.sqrt() + self.eps) * self.weight + self.bias
'''

SPECS = """
schema: 1
paper: {title: Term magnitudes, authors: [A], arxiv: "1606.08415", year: 2016}
specs:
  - id: gelu_tanh
    title: GELU, tanh form
    equation: "2"
    statement: s
    symbols: {N: {min: 1, max: 16}}
    inputs: {x: {shape: [N], magnitude: [1.0e-3, 1.0e+1]}}
    outputs: {gelu: {shape: [N]}}
    interface: {kind: function, args: [x]}
    oracle: {expr: "0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x**3)))"}
    invariants:
      - id: odd_part
        kind: identity
        description: GELU(x) − GELU(−x) − x = 0 (x is −x in the second call)
        set: {x: "-x"}
        lhs: "original - gelu + x"
        rhs: "0"
    gradients: {wrt: [x]}
    implementations: [{ref: impls.py:gelu_tanh}, {ref: impls.py:gelu_tanh_wrong_backward}]
  - id: gelu_exact
    title: GELU, exact form
    equation: "1"
    statement: s
    symbols: {N: {min: 1, max: 16}}
    inputs: {x: {shape: [N], magnitude: [1.0e-3, 1.0e+1]}}
    outputs: {gelu: {shape: [N]}}
    interface: {kind: function, args: [x]}
    oracle: {expr: "x * Phi(x)"}
    gradients: {wrt: [x]}
    implementations: [{ref: impls.py:gelu_exact}, {ref: impls.py:gelu_tanh}]
  - id: layernorm
    title: LayerNorm
    equation: "1"
    statement: s
    symbols: {B: {min: 1, max: 3}, D: {min: 2, max: 8}}
    inputs:
      x: {shape: [B, D], magnitude: [1.0e-3, 1.0e+3]}
      weight: {shape: [D], magnitude: [0.5, 2.0]}
      bias: {shape: [D], magnitude: [1.0e-3, 1.0]}
    params: {eps: {values: [1.0e-5]}}
    outputs: {y: {shape: [B, D]}}
    interface: {kind: module, init: {normalized_shape: D, eps: eps}, state: {weight: weight, bias: bias}, args: [x]}
    oracle:
      let: {c: "x - mean(x, -1, keepdim=True)"}
      expr: "c / sqrt(mean(c**2, -1, keepdim=True) + eps) * weight + bias"
    invariants:
      - {id: shift, kind: identity, description: adding 1 to every x changes nothing, set: {x: "x + 1"}, lhs: y, rhs: original}
    implementations: [{ref: "torch.nn:LayerNorm"}, {ref: impls.py:EpsOutsideRoot}]
  - id: swiglu
    title: Gated feed-forward layer (SwiGLU)
    equation: "6"
    statement: s
    symbols: {N: {min: 1, max: 4}, D: {min: 1, max: 8}, F: {min: 1, max: 8}}
    inputs:
      x: {shape: [N, D], magnitude: [1.0e-2, 1.0e+1]}
      W1: {shape: [D, F], magnitude: [1.0e-2, 1.0]}
      V: {shape: [D, F], magnitude: [1.0e-2, 1.0]}
      W2: {shape: [F, D], magnitude: [1.0e-2, 1.0]}
    outputs: {y: {shape: [N, D]}}
    interface: {kind: function, args: [x, W1, V, W2]}
    oracle: {expr: "(x @ W1 * sigmoid(x @ W1) * (x @ V)) @ W2"}
    invariants:
      - {id: linear_in_w2, kind: homogeneity, description: linear in W2, scale: {W2: 1}, degree: 1}
    implementations: [{ref: impls.py:ffn}, {ref: impls.py:ffn_sigmoid}]
"""


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, EquationSpec]:
    folder = tmp_path_factory.mktemp("terms")
    (folder / "impls.py").write_text(textwrap.dedent(IMPLS))
    (folder / "terms.yaml").write_text(SPECS)
    return load_specs([folder / "terms.yaml"], default=False)


def _layernorm_trial(spec: EquationSpec, ref: str, x: list[list[float]], dtype: str = "float64") -> Trial:
    example = Example({"B": len(x), "D": len(x[0])}, {"eps": 1e-5}, {"x": 1.0, "weight": 1.0, "bias": 0.5}, {}, 1)
    t = Trial(spec, ref, "cpu", dtype, example)
    t.env64 = {**t.env64, "x": np.array(x)}
    return t


# Nearly equal pairs: the float64 oracle's x − mean(x) cancels, and its result is off by 166× the old tolerance.
NEARLY_EQUAL = [[62.65404784005449, 62.65404784005449 + 0.005623621228685818]], [[-31.5, -31.5 + 3e-9]], [[0.1, 0.1 + 1e-12]]


@pytest.mark.parametrize("x", NEARLY_EQUAL)
def test_torch_layernorm_at_two_nearly_equal_features_passes_at_float64(specs: dict[str, EquationSpec], x: list) -> None:
    m = check_oracle(_layernorm_trial(specs["layernorm"], "torch.nn:LayerNorm", x))
    assert m is not None and m.passed, m.detail


def test_the_float64_oracles_own_rounding_is_what_lets_it_pass(specs: dict[str, EquationSpec]) -> None:
    """The error of torch.nn.LayerNorm there exceeds the reference error and floor alone: the oracle's own part decides."""
    m = check_oracle(_layernorm_trial(specs["layernorm"], "torch.nn:LayerNorm", NEARLY_EQUAL[0]))
    assert m is not None and m.passed and m.tolerance is not None
    assert m.max_abs_err > m.tolerance.factor * (m.tolerance.baseline or 0.0) + m.tolerance.floor
    assert m.tolerance.own > 0 and "float64 oracle's own rounding" in m.tolerance.describe()


def test_eps_outside_the_root_still_fails_at_float64_and_below(specs: dict[str, EquationSpec]) -> None:
    x = [[0.3, -0.2, 0.05, 0.4]]  # well conditioned: std ≈ 0.24, so ε = 1e-5 outside the root is a 4e-5 relative change
    for dtype in ("float64", "float32"):
        m = check_oracle(_layernorm_trial(specs["layernorm"], "impls.py:EpsOutsideRoot", x, dtype))
        assert m is not None and not m.passed, dtype
    for x in NEARLY_EQUAL[:1]:  # and where the oracle's own rounding is large, it is still far from the right value
        m = check_oracle(_layernorm_trial(specs["layernorm"], "impls.py:EpsOutsideRoot", x))
        assert m is not None and not m.passed


def _gelu_trial(spec: EquationSpec, ref: str, seed: int, dtype: str = "float64", n: int = 8) -> Trial:
    return Trial(spec, ref, "cpu", dtype, Example({"N": n}, {}, {"x": 10.0}, {}, seed))


def test_the_tanh_gelu_float64_gradient_passes_where_1_minus_tanh_squared_cancels(specs: dict[str, EquationSpec]) -> None:
    """Seed 144 draws |x| ≈ 7 (tanh(u) ≈ 1): torch's gradient is 4.0e-15 off, over the old 3.3e-15 tolerance."""
    spec = specs["gelu_tanh"]
    m = check_gradient(_gelu_trial(spec, "impls.py:gelu_tanh", 144))
    assert m.passed, m.detail
    assert all(check_gradient(_gelu_trial(spec, "impls.py:gelu_tanh", seed)).passed for seed in range(60))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_wrong_tanh_gelu_backward_still_fails(specs: dict[str, EquationSpec], dtype: str) -> None:
    wrong = "impls.py:gelu_tanh_wrong_backward"
    failures = [not check_gradient(_gelu_trial(specs["gelu_tanh"], wrong, seed, dtype)).passed for seed in range(10)]
    assert sum(failures) >= 8


def test_an_identity_against_zero_is_judged_at_the_scale_of_the_outputs(specs: dict[str, EquationSpec]) -> None:
    """N = 1, seed 60: the oracle's and the reference's violations are exactly 0 and the implementation's one ulp;
    judged at the relation's own size (≈ 0) the tolerance was ~0; at the outputs' it is a few ulps of |GELU(x)|."""
    t = Trial(specs["gelu_tanh"], "impls.py:gelu_tanh", "cpu", "float64", Example({"N": 1}, {}, {"x": 3.0}, {}, 60))
    m = check_invariant(t, "odd_part")
    assert m is not None and m.passed and m.max_abs_err > 0, m.detail
    x = t.rounded(t.env64)["x"]
    assert m.tolerance is not None and m.tolerance.floor >= 8 * eps("float64") * float(np.max(np.abs(x))) * 0.5


def test_an_identity_the_oracle_breaks_by_its_whole_size_is_vacuous_not_passed(tmp_path: Path) -> None:
    """A spec error (x is −x in the second call, so "− x" doubles instead of cancelling): the oracle's own
    violation as slack would pass anything; it is reported vacuous instead."""
    (tmp_path / "impls.py").write_text(textwrap.dedent(IMPLS))
    (tmp_path / "s.yaml").write_text(SPECS.replace('lhs: "original - gelu + x"', 'lhs: "original - gelu - x"'))
    spec = load_specs([tmp_path / "s.yaml"], default=False)["gelu_tanh"]
    m = check_invariant(Trial(spec, "impls.py:gelu_tanh", "cpu", "float32", Example({"N": 4}, {}, {"x": 3.0}, {}, 1)), "odd_part")
    assert m is not None and m.vacuous and not m.passed and "vacuous tolerance" in m.detail


def test_compare_reports_a_tolerance_that_reaches_the_output_as_vacuous() -> None:
    rule = ToleranceRule()
    expected = np.array([0.5, -1.0])
    m = compare(expected * 0, expected, dtype="float16", rule=rule, scale=np.array([1e6, 1e6]))
    assert m.vacuous and not m.passed and "vacuous tolerance" in m.detail
    ok = compare(expected, expected, dtype="float16", rule=rule, scale=np.array([1.0, 1.0]))
    assert ok.passed and not ok.vacuous


def test_per_element_floors_name_the_failing_element() -> None:
    expected = np.array([1000.0, 1e-3])
    actual = expected + np.array([0.0, 1e-6])  # far below the first element's floor, far above the second's
    m = compare(actual, expected, dtype="float32", rule=ToleranceRule(), scale=np.abs(expected))
    assert not m.passed and "at element (1,)" in m.detail
    assert compare(actual, expected, dtype="float32", rule=ToleranceRule()).passed  # one floor at the largest: passes


def test_a_noise_scale_that_reaches_the_output_makes_every_example_vacuous_and_the_row_fails(tmp_path: Path) -> None:
    from conformance.engine import run_case
    from conformance.selection import Case

    (tmp_path / "impls.py").write_text(textwrap.dedent(IMPLS))
    text = SPECS.replace(
        'oracle: {expr: "0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x**3)))"}',
        'oracle: {expr: "0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x**3)))", noise_scale: "1.0e+6 * (abs(x) + 1)"}',
    )
    # an output of exact zeros (x = 0, or GELU(x < −7.5) in float64) has no magnitude to be vacuous against: avoid both
    text = text.replace("x: {shape: [N], magnitude: [1.0e-3, 1.0e+1]}", "x: {shape: [N], magnitude: [1.0e-1, 5.0]}")
    (tmp_path / "s.yaml").write_text(text)
    spec = load_specs([tmp_path / "s.yaml"], default=False)["gelu_tanh"]
    result = run_case(Case(spec, "impls.py:gelu_tanh", "cpu", "float16", "oracle"))
    assert result.outcome == "failed" and "vacuous" in (result.detail or ""), (result.outcome, result.detail)


@pytest.mark.parametrize(("dtype", "ulps"), [("bfloat16", 128), ("float16", 1024)])
def test_a_floor_at_the_outputs_own_magnitude_is_refused_at_load(tmp_path: Path, dtype: str, ulps: int) -> None:
    rule = f"    tolerances: {{{dtype}: {{floor_ulps: {ulps}, reason: r}}}}\n"
    text = SPECS.replace("    gradients: {wrt: [x]}\n", "    gradients: {wrt: [x]}\n" + rule, 1)
    (tmp_path / "s.yaml").write_text(text)
    with pytest.raises(SpecError, match=rf"tolerances\.{dtype}\.floor_ulps.*no result could fail it"):
        load_specs([tmp_path / "s.yaml"], default=False)


def test_the_loaders_epsilons_are_torchs() -> None:
    import torch

    from conformance.dtype_names import EPSILON

    assert EPSILON == {name: torch.finfo(getattr(torch, name)).eps for name in EPSILON}


SMALL_FFN = Example({"N": 2, "D": 4, "F": 4}, {}, {"x": 1e-2, "W1": 1e-2, "V": 1e-2, "W2": 1e-2}, {}, 3)


def test_a_float16_result_below_the_normal_range_gets_a_floor_of_its_spacing(specs: dict[str, EquationSpec]) -> None:
    """Outputs of ~1e-7 are float16 subnormals, spaced 2⁻²⁴ ≈ 6e-8 apart: no floor below that spacing can hold.
    Two or three spacings are all such an output has, so the example is vacuous (not judged), not a failure."""
    t = Trial(specs["swiglu"], "impls.py:ffn", "cpu", "float16", SMALL_FFN)
    m = check_invariant(t, "linear_in_w2")
    assert m is not None and (m.passed or m.vacuous), m.detail
    assert m.tolerance is not None and m.tolerance.floor >= 8 * 2.0**-24


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16"])
def test_sigmoid_for_swish_fails_the_equation_not_the_linearity_it_keeps(specs: dict[str, EquationSpec], dtype: str) -> None:
    for seed in range(5):
        typical = Example({"N": 2, "D": 4, "F": 4}, {}, {"x": 1.0, "W1": 0.5, "V": 0.5, "W2": 0.5}, {}, seed)
        for example in (typical, SMALL_FFN):
            t = Trial(specs["swiglu"], "impls.py:ffn_sigmoid", "cpu", dtype, example)
            linear = check_invariant(t, "linear_in_w2")
            assert linear is not None and (linear.passed or (example is SMALL_FFN and linear.vacuous)), linear.detail
            oracle = check_oracle(t)
            assert oracle is not None and not oracle.passed


# x ≈ 5e-4 with one row of std 9e-5: x + 1 rounds, and ε outside the root divides that rounding by σ + ε ≈ 1e-4
SHIFT_EXAMPLE = Example({"B": 3, "D": 2}, {"eps": 1e-5}, {"bias": 0.0548, "weight": 1.1, "x": 0.001}, {}, 3167)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_eps_outside_the_root_is_not_reported_as_not_shift_invariant(specs: dict[str, EquationSpec], dtype: str) -> None:
    """It is shift-invariant (x − mean and σ do not change); it fails the equation, which is what is wrong."""
    t = Trial(specs["layernorm"], "impls.py:EpsOutsideRoot", "cpu", dtype, SHIFT_EXAMPLE)
    shift = check_invariant(t, "shift")
    assert shift is not None and shift.passed, shift.detail
    assert shift.tolerance is not None and shift.tolerance.sensitivity > 0  # x + 1 had to be rounded
    oracle = check_oracle(t)
    assert oracle is not None and not oracle.passed


def test_an_exact_transformation_adds_no_sensitivity_term(specs: dict[str, EquationSpec]) -> None:
    """Scaling W2 by a power of two rounds nothing: the implementation's own sensitivity is not asked for."""
    t = Trial(
        specs["swiglu"],
        "impls.py:ffn",
        "cpu",
        "bfloat16",
        Example({"N": 2, "D": 4, "F": 4}, {}, {"x": 1.0, "W1": 0.5, "V": 0.5, "W2": 0.5}, {}, 0),
    )
    m = check_invariant(t, "linear_in_w2")
    assert m is not None and m.passed and m.tolerance is not None and m.tolerance.sensitivity == 0


def test_causality_fresh_future_values_add_no_sensitivity_term() -> None:
    """Causality's new values at future positions are drawn, not transformed: nothing there is noise."""
    from tests.spec_helpers import shipped_specs

    spec = shipped_specs()["attention"]
    example = Example(
        {"B": 1, "H": 1, "Lq": 4, "Lk": 4, "Dk": 3, "Dv": 2},
        {"is_causal": True, "dropout_p": 0.0},
        {"Q": 1.0, "K": 1.0, "V": 1.0},
        {"mask": False},
        5,
    )
    m = check_invariant(Trial(spec, spec.implementations[0].ref, "cpu", "float64", example), "causality")
    assert m is not None and m.passed and m.tolerance is not None and m.tolerance.sensitivity == 0


# Lower-tail examples (x ≈ −3.1, −6.8; x ≈ −2, −3): torch's GELU computes Φ as ½[1 + erf(x/√2)], which cancels there
TAIL = [Example({"N": 1}, {}, {"x": 10.0}, {}, 362879), Example({"N": 2}, {}, {"x": 10.0}, {}, 8605467)]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("example", TAIL)
def test_torch_gelu_passes_the_exact_form_in_its_lower_tail(specs: dict[str, EquationSpec], dtype: str, example: Example) -> None:
    t = Trial(specs["gelu_exact"], "impls.py:gelu_exact", "cpu", dtype, example)
    oracle, gradient = check_oracle(t), check_gradient(t)
    assert oracle is not None and oracle.passed, oracle.detail
    assert gradient.passed, gradient.detail


def test_the_tanh_form_still_fails_the_exact_one_at_float32(specs: dict[str, EquationSpec]) -> None:
    examples = [Example({"N": 8}, {}, {"x": 3.0}, {}, seed) for seed in range(5)]
    trials = [Trial(specs["gelu_exact"], "impls.py:gelu_tanh", "cpu", "float32", e) for e in examples]
    assert all(not check_oracle(t).passed for t in trials)
    assert all(not check_gradient(t).passed for t in trials)
