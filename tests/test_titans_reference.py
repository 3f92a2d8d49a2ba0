"""The Titans reference oracle (specs/titans_reference.py) checked against independent computations:
its MLP-memory gradient against torch autograd, its special cases against the general recurrence, its
streaming against one call, and its rounding mode (``precision``) against float32 torch."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

PATH = Path(__file__).resolve().parent.parent / "specs" / "titans_reference.py"
_spec = importlib.util.spec_from_file_location("titans_reference", PATH)
assert _spec and _spec.loader
R = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(R)


def draw(seed: int, B: int = 2, T: int = 7, Dk: int = 3, Dv: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "k": rng.normal(size=(B, T, Dk)) * 0.5,
        "v": rng.normal(size=(B, T, Dv)),
        "q": rng.normal(size=(B, T, Dk)),
        "theta": rng.uniform(0, 0.2, (B, T)),
        "alpha": rng.uniform(0, 1, (B, T)),
        "eta": rng.uniform(0, 1, (B, T)),
        "W": rng.normal(size=(B, Dk, Dv)),
        "S": rng.normal(size=(B, Dk, Dv)),
        "A": rng.normal(size=(B, Dk, Dv)),
    }


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("loss", ["sum", "mean"])
def test_loss_gradient_matches_autograd(depth: int, loss: str) -> None:
    rng = np.random.default_rng(depth)
    dims = [3] + [4] * (depth - 1) + [2]
    weights = [rng.normal(size=(a, b)) for a, b in zip(dims, dims[1:])]
    k, v = rng.normal(size=3), rng.normal(size=2)
    ours = R.loss_gradient(R._Arithmetic(None), weights, k, v, loss)
    ws = [torch.tensor(w, requires_grad=True) for w in weights]
    h = torch.tensor(k) @ ws[0]
    for w in ws[1:]:
        h = torch.nn.functional.gelu(h) @ w
    err = ((h - torch.tensor(v)) ** 2).sum()
    (err / (2 if loss == "mean" else 1)).backward()
    for g, w in zip(ours, ws):
        np.testing.assert_allclose(g, w.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_special_cases_are_the_general_recurrence() -> None:
    x = draw(0)
    zero = np.zeros_like(x["theta"])
    general = R.memory_linear(**{**x, "alpha": zero, "eta": zero}, start=0, chunk_size=1, retrieve="after")
    for a, b in zip(general, R.plain_gradient_descent(**x)):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)
    general = R.memory_linear(**{**x, "theta": zero, "S": 0 * x["S"]}, start=0, chunk_size=16, retrieve="after")
    for a, b in zip(general, R.forgetting_only(**x)):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)
    general = R.memory_linear(**{**x, "alpha": zero, "eta": zero}, start=0, chunk_size=16, retrieve="after")
    for a, b in zip(general, R.one_chunk_step(**x)):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 5])
def test_two_calls_carrying_the_state_equal_one(chunk_size: int) -> None:
    x = draw(1)
    seq = ("k", "v", "q", "theta", "alpha", "eta")
    full = R.memory_linear(**x, start=0, chunk_size=chunk_size)
    for s in range(1, x["k"].shape[1]):
        first = R.memory_linear(**{n: (x[n][:, :s] if n in seq else x[n]) for n in x}, start=0, chunk_size=chunk_size)
        rest = {n: x[n][:, s:] for n in seq}
        second = R.memory_linear(**rest, W=first[1], S=first[2], A=first[3], start=s, chunk_size=chunk_size)
        np.testing.assert_allclose(np.concatenate([first[0], second[0]], 1), full[0], rtol=1e-13, atol=1e-13)
        for a, b in zip(second[1:], full[1:]):
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)


def test_chunk_size_changes_the_function() -> None:
    """The oracle can tell the chunked form from the recurrence (else the chunk checks could not fail)."""
    x = draw(2)
    one, three = R.memory_linear(**x, start=0, chunk_size=1), R.memory_linear(**x, start=0, chunk_size=3)
    assert np.abs(one[0] - three[0]).max() > 1e-3


def test_rounding_mode_is_close_to_float32_torch() -> None:
    """With ``precision`` rounding to float32, the reference's error against float64 is of float32's order."""
    x = draw(3)
    r32 = lambda a: np.asarray(a, dtype=np.float32).astype(np.float64)  # noqa: E731
    exact = R.memory_linear(**x, start=0, chunk_size=2)
    rounded = R.memory_linear(**{n: r32(a) for n, a in x.items()}, start=0, chunk_size=2, precision=r32)
    err = max(float(np.abs(a - b).max() / np.abs(b).max()) for a, b in zip(rounded, exact))
    assert 1e-9 < err < 1e-5, err


# -- the coarser reading step = chunk (titans.yaml) ----------------------------------------------------
def _by_hand_one_chunk(x: dict[str, np.ndarray], T: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One complete chunk of T tokens from position 0, linear memory, retrieve after, written from the ambiguity's
    words: g = Σ θ_i 2 k_iᵀ(k_i W − v_i), S' = mean(η) S − g, W' = (1 − mean(α)) W + S'; the tokens before the
    last read W, the last reads W'."""
    y, w_t, s_t = [], [], []
    for b in range(x["k"].shape[0]):
        k, v, W, S = x["k"][b, :T], x["v"][b, :T], x["W"][b], x["S"][b]
        g = sum(x["theta"][b, i] * 2 * np.outer(k[i], k[i] @ W - v[i]) for i in range(T))
        s1 = x["eta"][b, :T].mean() * S - g
        w1 = (1 - x["alpha"][b, :T].mean()) * W + s1
        y.append(np.stack([x["q"][b, i] @ (w1 if i == T - 1 else W) for i in range(T)]))
        w_t.append(w1)
        s_t.append(s1)
    return np.stack(y), np.stack(w_t), np.stack(s_t)


def test_one_step_per_chunk_is_the_written_recurrence() -> None:
    x = {n: a[:, :4] if a.ndim == 2 or n in ("k", "v", "q") else a for n, a in draw(3).items()}
    y, W, S, A = R.memory_linear(**x, start=0, chunk_size=4, retrieve="after", step="chunk")
    for ours, hand in zip((y, W, S), _by_hand_one_chunk(x, 4)):
        np.testing.assert_allclose(ours, hand, rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal(A, x["W"])  # the chunk's start memory
    token = R.memory_linear(**x, start=0, chunk_size=4, retrieve="after")
    assert np.abs(token[1] - W).max() > 1e-3, "the reading differs from the token recurrence"


def test_one_step_per_chunk_takes_no_step_for_an_open_chunk_and_is_the_recurrence_at_chunk_size_one() -> None:
    x = draw(4)  # T = 7 with chunk size 3: two complete chunks, one open
    full = R.memory_linear(**x, start=0, chunk_size=3, retrieve="before", step="chunk")
    six = R.memory_linear(**{n: a[:, :6] if n in ("k", "v", "q", "theta", "alpha", "eta") else a for n, a in x.items()},
                          start=0, chunk_size=3, retrieve="before", step="chunk")
    for a, b in zip(full[1:3], six[1:3]):
        np.testing.assert_array_equal(a, b)  # the seventh token steps neither W nor S
    np.testing.assert_array_equal(full[3], six[1])  # it opens chunk 3, whose start memory is A
    np.testing.assert_array_equal(full[0][:, 6], np.einsum("bk,bkv->bv", x["q"][:, 6], six[1]))  # it reads M after chunk 2
    for retrieve in ("before", "after"):
        for a, b in zip(R.memory_mlp(**_mlp(x), start=0, chunk_size=1, retrieve=retrieve, step="chunk"),
                        R.memory_mlp(**_mlp(x), start=0, chunk_size=1, retrieve=retrieve)):
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)


def _mlp(x: dict[str, np.ndarray], hidden: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    dk, dv = x["k"].shape[-1], x["v"].shape[-1]
    layers = {f"{n}{i}": rng.normal(size=(x["k"].shape[0], *shape)) * 0.5
              for n in "WSA" for i, shape in ((1, (dk, hidden)), (2, (hidden, dv)))}
    return {**{n: x[n] for n in ("k", "v", "q", "theta", "alpha", "eta")}, **layers}
