"""conformance.evaluate: one walker, three backends that must agree.

NumPy (the float64 oracle), torch float64 (the reference and gradient oracle) and the exact
SymPy backend (the prover) are independent implementations of each operation; a disagreement
between any two on the same inputs is a bug in one of them.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy
import torch
import torch.nn.functional as F

from conformance.evaluate import NumpyBackend, SymbolicBackend, TorchBackend, evaluate
from conformance.expr import ExprError, parse
from tests.spec_helpers import shipped_specs

RNG = np.random.default_rng(1234)
# Multiples of 1/8 are exact in binary and in SymPy, so the three backends see the same numbers.
INPUTS = {
    "x": RNG.integers(-16, 17, size=(2, 3, 4)) / 8.0,
    "y": RNG.integers(-16, 17, size=(2, 3, 4)) / 8.0,
    "w": RNG.integers(1, 17, size=(4,)) / 8.0,
    "A": RNG.integers(-16, 17, size=(2, 3, 4)) / 8.0,
    "Bm": RNG.integers(-16, 17, size=(2, 4, 5)) / 8.0,
    "m": np.array([[True, False, True, False], [False, True, False, False], [True, True, True, True]]),
    "n": 3,
    "k": 4,
}


def numpy_env() -> dict:
    return dict(INPUTS)


def torch_env() -> dict:
    return {k: torch.from_numpy(np.array(v)) if isinstance(v, np.ndarray) else v for k, v in INPUTS.items()}


def symbolic_env() -> dict:
    def exact(v):
        return np.vectorize(lambda e: sympy.Rational(int(round(e * 8)), 8), otypes=[object])(v)

    return {k: exact(v) if isinstance(v, np.ndarray) and v.dtype != bool else v for k, v in INPUTS.items()}


def run_all(text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``text`` evaluated by NumPy, torch float64 and SymPy, each as a float64 array."""
    expr = parse(text)
    numpy_value = np.asarray(evaluate(expr, numpy_env(), NumpyBackend()), dtype=np.float64)
    torch_value = evaluate(expr, torch_env(), TorchBackend(torch.float64))
    assert isinstance(torch_value, torch.Tensor) and torch_value.dtype in (torch.float64, torch.bool)
    symbolic_value = np.asarray(evaluate(expr, symbolic_env(), SymbolicBackend()), dtype=object)
    to_float = np.vectorize(lambda e: float(sympy.N(e, 30)), otypes=[np.float64])
    return numpy_value, torch_value.to(torch.float64).numpy(), to_float(symbolic_value)


AGREEMENT = [
    "softmax(x, -1)",
    "softmax(x, 0)",
    "softmax(where(m, x, -inf), -1)",
    "where(m & tril(n, k), x, 0)",
    "where(m | ~tril(n, k), x, y)",
    "sum(x, -1)",
    "sum(x, -1, keepdim=True)",
    "mean(x, 1)",
    "mean(x, -1, keepdim=True)",
    "max(x, -1, keepdim=True)",
    "min(x, 0)",
    "max(x, -2)",
    "x - max(x, -1, keepdim=True)",
    "A @ Bm",
    "x @ transpose(y)",
    "transpose(x)",
    "x * unsqueeze(sum(x, -1), -1)",
    "unsqueeze(w, 0) * x",
    "x * (mean(x**2, -1, keepdim=True) + 1)**(-1/2) * w",
    "x / sqrt(mean(x**2, -1, keepdim=True) + 1)",
    "(x**2 + 1)**-1",
    "sqrt(abs(x)) + x**3 - 2*y",
    "exp(x) + log(abs(x) + 1) + tanh(y)",
    "sum((x - y)**2, -1)",
    "softmax(x @ transpose(y) / sqrt(k), -1) @ y",
]


@pytest.mark.parametrize("text", AGREEMENT)
def test_numpy_torch_and_symbolic_backends_agree(text: str) -> None:
    numpy_value, torch_value, symbolic_value = run_all(text)
    assert numpy_value.shape == torch_value.shape == symbolic_value.shape
    np.testing.assert_allclose(torch_value, numpy_value, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(symbolic_value, numpy_value, rtol=1e-13, atol=1e-13)


NUMERIC_ONLY = ["x % 0.75", "x // 0.5", "where(x > y, x, y)", "(x <= 0) | (y == 1)", "where(x != 0, 1/x, 0)"]


@pytest.mark.parametrize("text", NUMERIC_ONLY)
def test_numpy_and_torch_backends_agree_on_comparisons_and_integer_division(text: str) -> None:
    expr = parse(text)
    numpy_value = np.asarray(evaluate(expr, numpy_env(), NumpyBackend()))
    torch_value = evaluate(expr, torch_env(), TorchBackend(torch.float64)).numpy()
    assert numpy_value.dtype == torch_value.dtype or (numpy_value.dtype.kind == torch_value.dtype.kind == "f")
    np.testing.assert_array_equal(torch_value, numpy_value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sum(x, -1)", lambda x: x.sum(-1)),
        ("sum(x, -1, keepdim=True)", lambda x: x.sum(-1, keepdims=True)),
        ("mean(x, 0, keepdim=True)", lambda x: x.mean(0, keepdims=True)),
        ("max(x, 1)", lambda x: x.max(1)),
        ("min(x, -1, keepdim=True)", lambda x: x.min(-1, keepdims=True)),
        ("unsqueeze(sum(x, -1), 1)", lambda x: x.sum(-1)[:, None, :]),
        ("transpose(x)", lambda x: np.swapaxes(x, -1, -2)),
    ],
)
def test_reductions_and_reshapes_have_documented_semantics(text: str, expected) -> None:
    np.testing.assert_array_equal(evaluate(parse(text), numpy_env(), NumpyBackend()), expected(INPUTS["x"]))


def test_softmax_rows_sum_to_one_and_masked_entries_are_zero() -> None:
    weights = evaluate(parse("softmax(where(m, x, -inf), -1)"), numpy_env(), NumpyBackend())
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-15)
    assert np.all(weights[..., ~INPUTS["m"]] == 0.0)


def test_tril_is_top_left_aligned_for_rectangular_sizes() -> None:
    expected = np.array([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0]], dtype=bool)
    for backend in (NumpyBackend(), SymbolicBackend()):
        np.testing.assert_array_equal(evaluate(parse("tril(n, k)"), {"n": 3, "k": 4}, backend), expected)
    np.testing.assert_array_equal(evaluate(parse("tril(n, k)"), {"n": 3, "k": 4}, TorchBackend(torch.float64)).numpy(), expected)


def test_torch_backend_keeps_its_dtype() -> None:
    env = {"x": torch.ones(2, 3, dtype=torch.float16)}
    value = evaluate(parse("x / sqrt(mean(x**2, -1, keepdim=True) + 0.5) * 2"), env, TorchBackend(torch.float16))
    assert value.dtype == torch.float16


# -- the attention equation against torch's own SDPA, in float64 ------------------------------------
def _attention_inputs(b: int, h: int, lq: int, lk: int, dk: int, dv: int, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(lq, lk, generator=g) < 0.6
    mask[torch.arange(lq), torch.arange(lq).clamp(max=lk - 1)] = True  # no fully masked row, causal or not
    return {
        "Q": torch.randn(b, h, lq, dk, generator=g, dtype=torch.float64),
        "K": torch.randn(b, h, lk, dk, generator=g, dtype=torch.float64),
        "V": torch.randn(b, h, lk, dv, generator=g, dtype=torch.float64),
        "mask": mask,
        "Lq": lq,
        "Lk": lk,
        "Dk": dk,
        "B": b,
        "H": h,
        "Dv": dv,
    }


def _spec_oracle(env: dict, backend) -> object:
    oracle = shipped_specs()["attention"].oracle
    scope = dict(env)
    for name, expr in oracle.let:
        scope[name] = evaluate(expr, scope, backend)
    return evaluate(oracle.expr, scope, backend)


@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("sizes", [(1, 2, 5, 7, 4, 3), (2, 1, 6, 4, 8, 2), (1, 1, 1, 9, 2, 5), (2, 3, 4, 4, 16, 1)])
def test_attention_spec_expression_matches_scaled_dot_product_attention(sizes, is_causal: bool, with_mask: bool) -> None:
    env = _attention_inputs(*sizes, seed=sum(sizes) + 2 * is_causal + with_mask)
    lq, lk = sizes[2], sizes[3]
    if not with_mask:
        env["mask"] = torch.ones(lq, lk, dtype=torch.bool)  # an absent mask is filled with its default, True
    env["is_causal"] = is_causal
    causal = torch.ones(lq, lk, dtype=torch.bool).tril()
    attn_mask = env["mask"] & causal if is_causal else env["mask"]
    expected = F.scaled_dot_product_attention(env["Q"], env["K"], env["V"], attn_mask=attn_mask)

    actual_torch = _spec_oracle(env, TorchBackend(torch.float64))
    torch.testing.assert_close(actual_torch, expected, rtol=1e-12, atol=1e-12)

    numpy_env_ = {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in env.items()}
    actual_numpy = _spec_oracle(numpy_env_, NumpyBackend())
    np.testing.assert_allclose(actual_numpy, expected.numpy(), rtol=1e-12, atol=1e-12)


def test_attention_spec_expression_differs_from_sdpa_when_causal_mask_is_ignored() -> None:
    # the comparison above can fail: dropping is_causal on the SDPA side changes the result
    env = _attention_inputs(1, 1, 5, 5, 4, 3, seed=7)
    env["is_causal"] = True
    unmasked = F.scaled_dot_product_attention(env["Q"], env["K"], env["V"], attn_mask=env["mask"])
    assert not torch.allclose(_spec_oracle(env, TorchBackend(torch.float64)), unmasked)


# -- errors --------------------------------------------------------------------------------------------
BACKENDS = [NumpyBackend(), TorchBackend(torch.float64), SymbolicBackend()]


@pytest.mark.parametrize("backend", BACKENDS, ids=["numpy", "torch", "sympy"])
def test_unbound_name_raises_expr_error(backend) -> None:
    x = torch.ones(2, dtype=torch.float64) if isinstance(backend, TorchBackend) else np.ones(2)
    with pytest.raises(ExprError, match="name 'y' has no value here"):
        evaluate(parse("x + y"), {"x": x}, backend)


def test_scalars_from_env_become_constants() -> None:
    assert evaluate(parse("D % H == 0"), {"D": 12, "H": 4}, NumpyBackend())
    assert float(evaluate(parse("eps * 2"), {"eps": 0.25}, NumpyBackend())) == 0.5
    assert evaluate(parse("x * 2"), {"x": 1.5}, SymbolicBackend()) == sympy.Rational(3)
