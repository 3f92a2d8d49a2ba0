"""conformance.functions: one table of the deep-learning functions, every backend checked against the others.

OpInfo-style: each :class:`Op` row names an expression and the inputs it is defined on; one
parametrized test per property runs over every row:

- NumPy (float64, the oracle) and torch float64 agree to float64 precision on random inputs and at
  the edges (large |x|, where a naive softplus, logsigmoid or erfc overflows or cancels), without a
  NumPy floating-point warning;
- the SymPy backend, where the function has one, agrees numerically on exact inputs;
- torch's gradient matches finite differences (``torch.autograd.gradcheck`` in float64) wherever the
  function is differentiable;
- the absolute-value backward (:mod:`conformance.error_bounds`) gives a finite bound >= |gradient|.

Then GELU: ``x * Phi(x)`` (exact) and the tanh approximation are one-line oracles that
``torch.nn.functional.gelu`` passes through the engine, and a sigmoid approximation fails the exact one.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import sympy
import torch
from hypothesis import settings

from conformance.engine import run_case
from conformance.error_bounds import AbsBoundBackend
from conformance.evaluate import NumpyBackend, SymbolicBackend, TorchBackend, evaluate
from conformance.expr import ExprError, names_in, parse
from conformance.functions import MAX_ELEMENTS, ExprFunction
from conformance.registry import RegistryError
from conformance.selection import build_cases
from conformance.spec import load_specs

F64 = torch.float64
FAST = settings(max_examples=10, derandomize=True, deadline=None, database=None)


@dataclass(frozen=True)
class Op:
    """One row: an expression, the interval its random inputs are drawn from, and edge values for ``x``."""

    text: str
    low: float = -3.0
    high: float = 3.0
    edges: tuple[float, ...] = ()
    differentiable: bool = True  # False: piecewise constant (zero gradient; gradcheck still applies off the jumps)
    symbolic: bool = True
    # How many of the result's own ulps one ulp of an intermediate moves it, on top of the last op's few:
    # |x f'(x) / f(x)| where a backend computes f from a rounded multiple of x (Phi: erfc(−x/√2)), or
    # (|terms|) / |result| where it subtracts (log_softmax: x − logsumexp(x))
    conditioning: str | None = None

    @property
    def id(self) -> str:
        return self.text


BIG = (-1000.0, -745.0, -40.0, -20.0, 20.0, 40.0, 745.0, 1000.0)
OPS = (
    Op("erf(x)", edges=(-30.0, -6.0, 6.0, 30.0)),
    Op("erfc(x)", edges=(-30.0, -6.0, 6.0, 26.0, 27.0)),
    Op("Phi(x)", edges=(-38.0, -20.0, -8.0, 8.0, 40.0), conditioning="abs(x * phi(x) / Phi(x))"),
    Op("phi(x)", edges=(-38.0, -20.0, 20.0, 38.0)),
    Op("sigmoid(x)", edges=BIG),
    Op("logsigmoid(x)", edges=BIG),
    Op("softplus(x)", edges=BIG),
    Op("relu(x)", edges=(-1e300, 1e300)),
    Op("log1p(x)", low=-0.9, high=5.0, edges=(-1 + 1e-12, -1e-300, 1e-18, 1e-10, 1e300)),
    Op("expm1(x)", edges=(-1000.0, -1e-18, 1e-300, 1e-10, 700.0)),
    Op("sign(x)", edges=(-1e300, 1e300), differentiable=False),
    Op("floor(x)", edges=(-2.5, -1e15, 1e15), differentiable=False),
    Op("round(x)", edges=(-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 1e15), differentiable=False),
    Op("maximum(x, y)"),
    Op("minimum(x, y)"),
    Op("clamp(x, y - 1, y + 1)"),
    Op("clamp(x, -0.5, 0.5)"),
    # reductions over one axis (x is (4, 6), or (30,) with the edges)
    Op("logsumexp(x, -1)", edges=(-1000.0, 700.0, 710.0, 1000.0)),
    Op("logsumexp(x, 0, keepdim=True)"),
    Op(
        "log_softmax(x, -1)",
        edges=(-1000.0, 700.0, 1000.0),
        conditioning="(abs(x) + abs(logsumexp(x, -1, keepdim=True))) / abs(log_softmax(x, -1))",
    ),
    Op("log_softmax(x, 0)", conditioning="(abs(x) + abs(logsumexp(x, 0, keepdim=True))) / abs(log_softmax(x, 0))"),
    Op("var(x, -1)"),
    Op("var(x, 0, 0, keepdim=True)"),
    Op("std(x, -1)"),
    Op("std(x, 0, 2)"),
    Op("cumsum(x, -1)"),
    Op("cumprod(x, 0)"),
    Op("cumprod(x, -1)", low=-1.5, high=1.5),
    Op("norm(x, -1)", edges=(1e200, -1e200)),
    Op("norm(x, 0, keepdim=True)"),
    # shapes and masks (n = 6 and m = 4 are sizes; i, r, j integer-valued index tensors; see FIXED)
    Op("triu(x, 0)"),
    Op("triu(x, 1)"),
    Op("triu(x, -2)"),
    Op("triu(unsqueeze(x, 0) * unsqueeze(unsqueeze(y, -1), -1), 1)"),  # a batch of (6, 4, 6) matrices
    Op("x @ eye(n)"),
    Op("eye(m) @ x"),
    Op("x @ eye(n / 2 + 3)"),  # a size expression
    Op("x * ones(m, n)"),
    Op("x + zeros(m, n)"),
    Op("ones(2, m, n) * x"),
    Op("x * ones(n) + zeros(1, 1, 1, n)"),
    Op("reshape(x, n, m)"),
    Op("reshape(x, -1)", edges=BIG),
    Op("reshape(x, 2, -1, 3)"),
    Op("reshape(x, m * n)"),
    Op("reshape(x, 1, 2, 3, m)"),
    Op("sum(one_hot(j, n) * x, -1)"),
    Op("one_hot(j, n) @ transpose(x)"),
    Op("gather(x, i, -1)"),
    Op("gather(x, r, 0)"),
    # einsum: inputs of one sign, so that sums of products are well conditioned for the 4-ulp agreement
    Op("einsum('ij,j->i', x, y)", low=0.5),
    Op("einsum('ij,kj->ik', x, x)", low=0.5),
    Op("einsum('ij->ji', x)"),
    Op("einsum('ij,ij->', x, x)", low=0.5),
    Op("einsum('ij,j,kj->ik', x, y, x)", low=0.5),
    Op("einsum('ii->i', reshape(x, n, m) @ x)", low=0.5),
    Op("einsum('i,i->', reshape(x, -1), reshape(x, -1))", low=0.5, edges=(1e100, 1e150)),
    Op("einsum('ij', x) - einsum('ij,j->ij', x, y)"),
    Op("einsum('ji', x) - transpose(x)"),  # implicit output: the letters that occur once, in alphabetical order
    Op("einsum('Ab,b', x, y)", low=0.5),  # upper case sorts before lower case (as NumPy and torch)
)
NEW_FUNCTIONS = {
    *"erf erfc Phi phi sigmoid logsigmoid softplus relu log1p expm1 sign floor round".split(),
    *"maximum minimum clamp".split(),
    *"logsumexp log_softmax var std cumsum cumprod norm".split(),
    *"triu eye ones zeros reshape one_hot gather einsum".split(),
}
_INDEX_RNG = np.random.default_rng(8)
# Values that are not differentiable inputs: sizes (Python ints, as a spec's symbols are) and integer-valued indices.
FIXED: dict[str, int | np.ndarray] = {
    "n": 6,
    "m": 4,
    "i": _INDEX_RNG.integers(0, 6, size=(4, 6)).astype(np.float64),  # along x's last axis
    "r": _INDEX_RNG.integers(0, 4, size=(4, 6)).astype(np.float64),  # along x's first axis
    "j": np.array([0.0, 5.0, 2.0, 5.0]),
}


def fixed(op: Op, backend: str = "numpy") -> dict[str, object]:
    """The op's sizes and indices: NumPy arrays, torch tensors (no gradient) or exact SymPy integers."""
    values = {k: v for k, v in FIXED.items() if k in names_in(parse(op.text))}
    if backend == "torch":
        return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in values.items()}
    if backend == "symbolic":
        return {
            k: np.vectorize(lambda e: sympy.Integer(int(e)), otypes=[object])(v) if isinstance(v, np.ndarray) else v
            for k, v in values.items()
        }
    return values


def inputs(op: Op, *, edges: bool = True) -> dict[str, np.ndarray]:
    """Random float64 values for the op's names (``x`` (4, 6) with the edges in its last row, ``y`` (6,) to broadcast)."""
    rng = np.random.default_rng(sum(map(ord, op.text)))
    x = rng.uniform(op.low, op.high, size=(4, 6))
    if edges and op.edges:
        x = np.concatenate([x.ravel(), np.asarray(op.edges)])
    values = {"x": x, "y": rng.uniform(op.low, op.high, size=x.shape[-1:])}
    return {name: values[name] for name in sorted(names_in(parse(op.text))) if name not in FIXED}


def numpy_value(op: Op, values: dict[str, np.ndarray]) -> np.ndarray:
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        return np.asarray(evaluate(parse(op.text), {**fixed(op), **values}, NumpyBackend()), dtype=np.float64)


def torch_value(op: Op, values: dict[str, torch.Tensor], backend: type[TorchBackend] = TorchBackend) -> torch.Tensor:
    return evaluate(parse(op.text), {**fixed(op, "torch"), **values}, backend(F64))


def test_the_table_covers_every_new_function() -> None:
    called = {f.func.__name__ for op in OPS for f in parse(op.text).atoms(sympy.Function)}
    assert NEW_FUNCTIONS <= called, sorted(NEW_FUNCTIONS - called)


@pytest.mark.parametrize("op", OPS, ids=Op.id.fget)
def test_numpy_and_torch_agree_to_float64_precision_including_the_edges(op: Op) -> None:
    values = inputs(op)
    expected = numpy_value(op, values)
    got = torch_value(op, {k: torch.from_numpy(v) for k, v in values.items()}).numpy()
    assert np.all(np.isfinite(expected)), expected
    np.testing.assert_allclose(got, expected, rtol=4 * np.finfo(np.float64).eps, atol=1e-300)


@pytest.mark.parametrize("op", [op for op in OPS if op.symbolic], ids=Op.id.fget)
def test_the_symbolic_backend_agrees_numerically(op: Op) -> None:
    values = {k: np.round(v * 8) / 8 for k, v in inputs(op, edges=False).items()}  # exact in binary and in SymPy
    if op.text.startswith("log1p"):
        values["x"] = np.maximum(values["x"], -0.875)
    exact = {k: np.vectorize(lambda v: sympy.Rational(int(v * 8), 8), otypes=[object])(v) for k, v in values.items()}
    symbolic = np.asarray(evaluate(parse(op.text), {**fixed(op, "symbolic"), **exact}, SymbolicBackend()), dtype=object)
    as_float = np.vectorize(lambda e: float(sympy.N(e, 30)), otypes=[np.float64])(symbolic)
    kappa = numpy_value(Op(op.conditioning), values) if op.conditioning else 0.0
    rtol = (4 + kappa) * np.finfo(np.float64).eps
    assert np.all(np.abs(as_float - numpy_value(op, values)) <= rtol * np.abs(as_float) + 1e-300)


@pytest.mark.parametrize("op", OPS, ids=Op.id.fget)
def test_torch_gradients_match_finite_differences(op: Op) -> None:
    values = {k: torch.from_numpy(v).requires_grad_(True) for k, v in inputs(op, edges=False).items()}
    names = sorted(values)

    def fn(*args: torch.Tensor) -> torch.Tensor:
        return torch_value(op, dict(zip(names, args)))

    assert torch.autograd.gradcheck(fn, tuple(values[n] for n in names), eps=1e-6, atol=1e-7, rtol=1e-6)
    edge = {k: torch.from_numpy(v).requires_grad_(True) for k, v in inputs(op).items()}
    grads = torch.autograd.grad(torch_value(op, edge).sum(), [edge[n] for n in names])
    assert all(torch.isfinite(g).all() for g in grads), "a gradient at the edges is not finite"
    if not op.differentiable:
        assert all((g == 0).all() for g in grads)


@pytest.mark.parametrize("op", OPS, ids=Op.id.fget)
def test_the_abs_bound_is_finite_and_at_least_the_gradient(op: Op) -> None:
    values = inputs(op)
    shape = numpy_value(op, values).shape
    cot = torch.from_numpy(np.random.default_rng(7).standard_normal(shape))
    for wrt in sorted(values):
        grads = []
        for backend, cotangent in ((TorchBackend, cot), (AbsBoundBackend, cot.abs())):
            scope = {k: torch.from_numpy(v).requires_grad_(k == wrt) for k, v in values.items()}
            (grad,) = torch.autograd.grad(torch_value(op, scope, backend), scope[wrt], cotangent)
            grads.append(grad)
        grad, bound = grads
        assert torch.isfinite(bound).all()
        # the same value rounded along another path: a few ulps (and subnormal results lose relative precision)
        assert (bound >= grad.abs() * (1 - 1e-12) - 1e-300).all(), (op.text, wrt, (grad.abs() - bound).max())


def test_phi_and_erfc_bounds_take_the_absolute_derivative() -> None:
    x = torch.tensor([-1.5, 2.0], dtype=F64)
    for text, derivative in (
        ("phi(x)", -x * torch.exp(-x * x / 2) / math.sqrt(2 * math.pi)),
        ("erfc(x)", -2 / math.sqrt(math.pi) * torch.exp(-x * x)),
    ):
        leaf = x.clone().requires_grad_(True)
        (bound,) = torch.autograd.grad(evaluate(parse(text), {"x": leaf}, AbsBoundBackend(F64)), leaf, torch.ones(2, dtype=F64))
        torch.testing.assert_close(bound, derivative.abs())


def test_var_and_std_take_torch_default_correction_1() -> None:
    assert parse("var(x, -1)") == parse("var(x, -1, 1)") and parse("std(x, 0, keepdim=True)") == parse(
        "std(x, 0, 1, keepdim=True)"
    )
    x = np.array([1.0, 2.0, 4.0])
    assert numpy_value(Op("var(x, -1)"), {"x": x}) == pytest.approx(7 / 3)
    assert numpy_value(Op("var(x, -1, 0)"), {"x": x}) == pytest.approx(14 / 9)


def test_round_is_half_to_even_in_every_backend() -> None:
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5])
    expected = [-2.0, -2.0, -0.0, 0.0, 2.0, 2.0]
    assert numpy_value(Op("round(x)"), {"x": x}).tolist() == expected
    assert torch_value(Op("round(x)"), {"x": torch.from_numpy(x)}).tolist() == expected
    exact = np.array([sympy.Rational(int(2 * v), 2) for v in x], dtype=object)
    assert [int(v) for v in evaluate(parse("round(x)"), {"x": exact}, SymbolicBackend())] == expected


BACKENDS = ("numpy", "torch", "symbolic")


def value_in(backend: str, text: str, env: dict[str, object]) -> np.ndarray:
    """``text`` on ``env`` (NumPy arrays, ints) in one backend, as a NumPy array."""
    if backend == "torch":
        scope = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in env.items()}
        return evaluate(parse(text), scope, TorchBackend(F64)).numpy()
    if backend == "symbolic":
        scope = {k: np.vectorize(sympy.nsimplify, otypes=[object])(v) if isinstance(v, np.ndarray) else v for k, v in env.items()}
        return np.asarray(evaluate(parse(text), scope, SymbolicBackend()))
    return np.asarray(evaluate(parse(text), env, NumpyBackend()))


@pytest.mark.parametrize("backend", BACKENDS)
def test_eye_ones_zeros_and_one_hot_build_exact_float_tensors(backend: str) -> None:
    j = np.array([[2.0, 0.0], [1.0, 2.0]])
    cases = {
        "eye(n)": np.eye(3),
        "eye(n * 2 - 3)": np.eye(3),
        "ones(n, 2)": np.ones((3, 2)),
        "zeros(1, n, 1, 2)": np.zeros((1, 3, 1, 2)),
        "one_hot(j, n)": np.eye(3)[j.astype(int)],
        "triu(ones(n, n), 1) + transpose(triu(ones(n, n), 0))": np.ones((3, 3)),
        "reshape(arange(6), 2, n)": np.arange(6.0).reshape(2, 3),
        "gather(reshape(arange(6), 2, n), j + 0 * ones(2, 2), 1)": np.array([[2.0, 0.0], [4.0, 5.0]]),
    }
    for text, expected in cases.items():
        got = value_in(backend, text, {"n": 3, "j": j})
        assert got.shape == expected.shape and np.array_equal(got.astype(np.float64), expected), (text, got)
        if backend == "symbolic":
            assert all(isinstance(e, sympy.Integer) for e in got.flat), (text, got)
        else:
            assert got.dtype == np.float64, (text, got.dtype)


BAD = [
    pytest.param("eye(n / 4)", "eye(): a size must be a positive integer, got 0.75", id="eye-fraction"),
    pytest.param("eye(n - 3)", "eye(): a size must be a positive integer, got 0", id="eye-zero"),
    pytest.param("eye(x)", "eye(): a size must be one number", id="eye-of-a-tensor"),
    pytest.param("ones(n, -2)", "ones(): a size must be an integer >= 0, got -2", id="ones-negative"),
    pytest.param("zeros(4096, 4096, 2)", f"has more than {MAX_ELEMENTS} elements", id="zeros-too-large"),
    pytest.param("reshape(x, 5, -1)", "6 elements cannot be reshaped to (5, -1)", id="reshape-indivisible"),
    pytest.param("reshape(x, n, n)", "6 elements cannot be reshaped to (3, 3) (9 elements)", id="reshape-wrong-count"),
    pytest.param("reshape(x, -1, -1)", "at most one size may be -1", id="reshape-two-unknowns"),
    pytest.param("reshape(x, 2.5, -1)", "reshape(): a size must be an integer >= 0, got 2.5", id="reshape-fraction"),
    pytest.param("one_hot(j + 0.5, n)", "one_hot(): an index must be integer-valued, got 2.5", id="one-hot-fraction"),
    pytest.param("one_hot(j, 2)", "one_hot(): index 2 is out of range (0 to 1)", id="one-hot-too-large"),
    pytest.param("one_hot(j - 2, n)", "one_hot(): index -2 is out of range (0 to 2)", id="one-hot-negative"),
    pytest.param("one_hot(j > 0, n)", "one_hot(): an index must be", id="one-hot-boolean"),
    pytest.param("one_hot(j, n - 3)", "one_hot(): a size must be a positive integer, got 0", id="one-hot-no-classes"),
    pytest.param("gather(x, j / 4, 1)", "gather(): an index must be integer-valued, got 0.5", id="gather-fraction"),
    pytest.param("gather(x, j * 3, 1)", "gather(): index 6 is out of range (0 to 5)", id="gather-out-of-range"),
    pytest.param("gather(x, 2 * ones(1, 6), 0)", "gather(): index 2 is out of range (0 to 0)", id="gather-out-of-range-axis-0"),
    pytest.param("gather(x, j, 2)", "gather(): axis 2 is out of range for a tensor of 2 dimensions", id="gather-axis"),
    pytest.param("gather(x, arange(2), 1)", "the index has shape (2,); expected 2 dimensions", id="gather-rank"),
    pytest.param("gather(x, ones(2, 2), 1)", "expected 2 dimensions, the sizes of x (1, 6) off axis 1", id="gather-shape"),
    pytest.param("einsum('ij,jk->ik', x, x)", "index 'j' has size 6 and 1", id="einsum-sizes"),
    pytest.param("einsum('i,i->', x, x)", "operand 1 has 2 dimensions, subscripts 'i' name 1", id="einsum-rank"),
    pytest.param("triu(arange(n), 0)", "triu(): x must have at least 2 dimensions, got 1", id="triu-vector"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_sizes_indices_and_operands_give_one_clear_error_in_every_backend(backend: str, text: str, message: str) -> None:
    env = {"n": 3, "x": np.arange(6.0).reshape(1, 6), "j": np.array([[2.0, 0.0]])}
    with pytest.raises(ExprError) as info:
        value_in(backend, text, env)
    assert message in str(info.value), str(info.value)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"string_args": (1,), "min_args": 2}, "string_args may only be (0,)"),
        ({"string_args": (0,), "min_args": 0, "max_args": 1}, "string_args may only be (0,)"),
        ({"string_args": (0,), "min_args": 2, "int_args": (0,)}, "string_args may only be (0,)"),
        ({"check_string": lambda text, n: None}, "check_string needs string_args=(0,)"),
        ({"string_args": (0,), "check_string": "ij"}, "'check_string' must be a callable or None"),
    ],
)
def test_a_record_declares_strings_only_as_its_first_argument(fields: dict, message: str) -> None:
    with pytest.raises(RegistryError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ExprFunction("mine", numpy=np.abs, torch=np.abs, **fields)


def test_the_einsum_abs_bound_takes_absolute_values_of_the_other_operands() -> None:
    a = torch.tensor([[1.0, -2.0], [3.0, -4.0]], dtype=F64)
    b = torch.tensor([-1.0, 1.0], dtype=F64)
    leaf = a.clone().requires_grad_(True)
    out = evaluate(parse("einsum('ij,j->i', a, b)"), {"a": leaf, "b": b}, AbsBoundBackend(F64))
    torch.testing.assert_close(out, a @ b)
    (bound,) = torch.autograd.grad(out, leaf, torch.ones(2, dtype=F64))
    torch.testing.assert_close(bound, torch.ones(2, 2, dtype=F64))  # |b_j|, where the plain gradient is b_j


# -- GELU: exact and tanh, one-line oracles --------------------------------------------------------
GELU_SPEC = """\
schema: 1
paper:
  title: "Gaussian Error Linear Units (GELUs)"
  authors: ["D. Hendrycks", "K. Gimpel"]
  url: "https://arxiv.org/abs/1606.08415"
  year: 2016
specs:
  - id: gelu
    title: GELU
    equation: "1"
    statement: 'y = x \\Phi(x)'
    symbols: {B: {min: 1, max: 3}, D: {min: 1, max: 8}}
    inputs: {x: {shape: [B, D]}}
    outputs: {y: {shape: [B, D]}}
    interface: {kind: function, args: [x]}
    oracle: {expr: "ORACLE"}
    gradients: {wrt: [x]}
    implementations: [{ref: gelu_impl.py:IMPL}]
"""
GELU_IMPL = """\
import torch
import torch.nn.functional as F


def gelu(x):
    return F.gelu(x)


def gelu_tanh(x):
    return F.gelu(x, approximate="tanh")


def gelu_sigmoid(x):
    return x * torch.sigmoid(1.702 * x)  # wrong for the exact GELU: off by up to ~0.02
"""
EXACT = "x * Phi(x)"
TANH = "0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3)))"


def gelu_results(directory: Path, oracle: str, impl: str) -> dict[tuple[str, str], object]:
    (directory / "gelu_impl.py").write_text(GELU_IMPL)
    spec_file = directory / f"{impl}.yaml"
    spec_file.write_text(GELU_SPEC.replace("ORACLE", oracle).replace("IMPL", impl))
    cases = build_cases(load_specs([spec_file], default=False), {})
    return {
        (c.dtype, c.check): run_case(c, FAST)
        for c in cases
        if c.device == "cpu" and c.dtype in ("float64", "float32") and c.check in ("oracle", "gradient")
    }


@pytest.mark.parametrize(("oracle", "impl"), [(EXACT, "gelu"), (TANH, "gelu_tanh")], ids=["exact", "tanh"])
def test_gelu_is_a_one_line_oracle_that_torch_passes(tmp_path: Path, oracle: str, impl: str) -> None:
    results = gelu_results(tmp_path, oracle, impl)
    assert set(results) == {(d, c) for d in ("float64", "float32") for c in ("oracle", "gradient")}
    for key, result in results.items():
        assert result.outcome == "passed", (key, result)


def test_a_sigmoid_approximation_fails_the_exact_gelu_oracle(tmp_path: Path) -> None:
    result = gelu_results(tmp_path, EXACT, "gelu_sigmoid")[("float64", "oracle")]
    assert result.outcome == "failed", result


# -- einsum, eye and zeros in a spec's oracle, end to end ------------------------------------------
MM_SPEC = """\
schema: 1
paper: {title: "Matrix products", authors: ["A. Author"], url: "https://example.org/mm", year: 2020}
specs:
  - id: mm
    title: Matrix product
    equation: "1"
    statement: 'y = a b'
    symbols: {N: {min: 1, max: 4}}
    inputs: {a: {shape: [N, N]}, b: {shape: [N, N]}}
    outputs: {y: {shape: [N, N]}}
    interface: {kind: function, args: [a, b]}
    oracle: {expr: "einsum('ij,jk->ik', a, b) @ eye(N) + zeros(N, N)"}
    gradients: {wrt: [a, b]}
    implementations: [{ref: mm_impl.py:IMPL}]
"""
MM_IMPL = """\
def mm(a, b):
    return a @ b


def mm_transposed(a, b):
    return a @ b.transpose(-1, -2)  # wrong: a bᵀ
"""


@pytest.mark.parametrize(("impl", "outcome"), [("mm", "passed"), ("mm_transposed", "failed")])
def test_an_einsum_oracle_passes_a_matrix_product_and_fails_a_transposed_one(tmp_path: Path, impl: str, outcome: str) -> None:
    (tmp_path / "mm_impl.py").write_text(MM_IMPL)
    spec_file = tmp_path / f"{impl}.yaml"
    spec_file.write_text(MM_SPEC.replace("IMPL", impl))
    cases = build_cases(load_specs([spec_file], default=False), {})
    results = {
        (c.dtype, c.check): run_case(c, FAST).outcome
        for c in cases
        if c.device == "cpu" and c.dtype in ("float64", "float32") and c.check in ("oracle", "gradient")
    }
    assert results == {(d, c): outcome for d in ("float64", "float32") for c in ("oracle", "gradient")}
