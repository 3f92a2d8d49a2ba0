"""Unit tests for implementations.titans: the chunked memory against a token-by-token float64 loop written here.

The loop follows docs/titans.md's recurrence literally and takes each gradient with autograd (not the closed
form under test), with its own GELU, so it shares no code with the implementation.
"""

import itertools
import math

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from implementations.titans import (
    NeuralMemory,
    chunk_gradient_sum,
    forget_step,
    gelu_derivative,
    keys_values,
    linear_scan,
    memory_linear,
    memory_mlp,
    memory_sequence,
    momentum_scan,
    momentum_step,
    retrieve_linear,
    retrieve_mlp,
    token_gradients,
)
from implementations.titans.scan import decay_matrix

F64 = torch.float64


def _gelu(x):
    return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def _apply(x, weights):
    h = x @ weights[0]
    for w in weights[1:]:
        h = _gelu(h) @ w
    return h


def _loss(weights, k, v, loss):
    """Eq. 12 for one token per batch row: k [B, Dk], v [B, Dv] -> [B]."""
    err = (_apply(k.unsqueeze(1), weights).squeeze(1) - v).pow(2).sum(-1)
    return err if loss == "sum" else err / v.shape[-1]


def _grad(weights, k, v, loss):
    leaves = tuple(w.detach().requires_grad_(True) for w in weights)
    return torch.autograd.grad(_loss(leaves, k, v, loss).sum(), leaves)  # rows independent: per-row gradients


def loop(k, v, q, theta, alpha, eta, W, S, A, *, start, chunk_size, retrieve, loss):
    """docs/titans.md's recurrence, token by token."""
    W, S, A = list(W), list(S), list(A)
    ys = []
    for i in range(k.shape[1]):
        if (start + i) % chunk_size == 0:
            A = list(W)
        g = _grad(A, k[:, i], v[:, i], loss)
        S = [eta[:, i, None, None] * s - theta[:, i, None, None] * gl for s, gl in zip(S, g)]
        before = list(W)
        W = [(1 - alpha[:, i, None, None]) * w + s for w, s in zip(W, S)]
        read = before if retrieve == "before" else W
        ys.append(_apply(q[:, i].unsqueeze(1), read).squeeze(1))
    return torch.stack(ys, 1), tuple(W), tuple(S), tuple(A)


def _problem(seed, T=10, depth=1, B=2, Dk=3, Dv=4, H=5, dtype=F64):
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=1.0):
        return scale * torch.randn(*shape, generator=g, dtype=dtype)

    widths = [Dk] + [H] * (depth - 1) + [Dv]
    W = tuple(r(B, a, b, scale=a**-0.5) for a, b in zip(widths, widths[1:]))
    S = tuple(r(*w.shape, scale=0.1) for w in W)
    A = tuple(w + r(*w.shape, scale=0.3) for w in W)  # an anchor that differs from W
    gates = [torch.rand(B, T, generator=g, dtype=dtype) for _ in range(3)]
    gates[0] = 0.3 * gates[0]  # theta
    return r(B, T, Dk), r(B, T, Dv), r(B, T, Dk), *gates, W, S, A


def _close(a, b):
    for x, y in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
        torch.testing.assert_close(x, y, rtol=1e-9, atol=1e-10)  # float64 reassociation only


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("chunk_size", [1, 3, 4, 7])
@pytest.mark.parametrize("start", [0, 2, 5])
def test_chunked_equals_token_loop(depth, chunk_size, start):
    k, v, q, th, al, et, W, S, A = _problem(seed=depth * 100 + chunk_size * 10 + start, depth=depth)
    for retrieve, loss in itertools.product(["before", "after"], ["sum", "mean"]):
        opts = dict(start=start, chunk_size=chunk_size, retrieve=retrieve, loss=loss)
        want = loop(k, v, q, th, al, et, W, S, A, **opts)
        for method in ["factored", "per_token"] + (["chunk_scan"] if depth == 1 else []):
            y, W1, S1, A1 = memory_sequence(k, v, q, th, al, et, W, S, A, method=method, **opts)
            _close((y, *W1, *S1, *A1), (want[0], *want[1], *want[2], *want[3]))


def test_partial_first_chunk_uses_given_anchor():
    k, v, q, th, al, et, W, S, A = _problem(seed=1)
    opts = dict(start=1, chunk_size=4, retrieve="after", loss="sum")
    y, *_ = memory_sequence(k, v, q, th, al, et, W, S, A, **opts)
    y_w, *_ = memory_sequence(k, v, q, th, al, et, W, S, W, **opts)
    assert not torch.allclose(y[:, :3], y_w[:, :3])  # tokens 1..3 read gradients at A, not W
    _close(y[:, :3], loop(k, v, q, th, al, et, W, S, A, **opts)[0][:, :3])


def test_extreme_gates_alpha_one_eta_zero():
    k, v, q, th, al, et, W, S, A = _problem(seed=2, depth=2)
    al = torch.where(torch.arange(10) % 3 == 0, torch.ones_like(al), al)  # full forgetting at some tokens
    et = torch.where(torch.arange(10) % 4 == 1, torch.zeros_like(et), et)
    opts = dict(start=0, chunk_size=4, retrieve="before", loss="sum")
    want = loop(k, v, q, th, al, et, W, S, A, **opts)
    got = memory_sequence(k, v, q, th, al, et, W, S, A, **opts)
    _close((got[0], *got[1], *got[2]), (want[0], *want[1], *want[2]))


@pytest.mark.parametrize(("depth", "method"), [(1, "factored"), (2, "factored"), (1, "chunk_scan")])
@pytest.mark.parametrize("start", [0, 2])
def test_streaming_every_split_equals_one_call(depth, method, start):
    k, v, q, th, al, et, W, S, A = _problem(seed=3 + depth, T=11, depth=depth)
    opts = dict(chunk_size=3, retrieve="before", loss="mean", method=method)
    whole = memory_sequence(k, v, q, th, al, et, W, S, A, start=start, **opts)
    for s in range(12):
        y1, W1, S1, A1 = memory_sequence(*(t[:, :s] for t in (k, v, q, th, al, et)), W, S, A, start=start, **opts)
        y2, W2, S2, A2 = memory_sequence(*(t[:, s:] for t in (k, v, q, th, al, et)), W1, S1, A1, start=start + s, **opts)
        _close((torch.cat([y1, y2], 1), *W2, *S2, *A2), (whole[0], *whole[1], *whole[2], *whole[3]))


def test_linear_and_mlp_wrappers_match_sequence():
    k, v, q, th, al, et, W, S, A = _problem(seed=5)
    opts = dict(start=1, chunk_size=3, retrieve="after", loss="sum")
    y, Wn, Sn, An = memory_linear(k, v, q, th, al, et, W[0], S[0], A[0], **opts)
    want = memory_sequence(k, v, q, th, al, et, W, S, A, **opts)
    _close((y, Wn, Sn, An), (want[0], want[1][0], want[2][0], want[3][0]))
    k, v, q, th, al, et, W, S, A = _problem(seed=6, depth=2)
    got = memory_mlp(k, v, q, th, al, et, *W, *S, *A, **opts)
    want = loop(k, v, q, th, al, et, W, S, A, **opts)
    _close(got, (want[0], *want[1], *want[2], *want[3]))


def _small(depth, seed=7):
    k, v, q, th, al, et, W, S, A = _problem(seed=seed, T=5, depth=depth, B=1, Dk=2, Dv=2, H=3)
    return [t.requires_grad_(True) for t in (k, v, q, th, al, et, *W, *S, *A)]


def test_gradcheck_and_gradgradcheck_linear():
    def f(k, v, q, th, al, et, W, S, A):
        y, Wn, Sn, An = memory_linear(k, v, q, th, al, et, W, S, A, start=1, chunk_size=2, retrieve="before", loss="sum")
        return (y.pow(2).sum() + (Wn * Sn).sum() + An.sum()).reshape(1)  # an outer loss through every output

    inputs = _small(depth=1)
    assert gradcheck(f, inputs)
    assert gradgradcheck(f, inputs)


def test_gradcheck_and_gradgradcheck_linear_chunk_scan():
    def f(k, v, q, th, al, et, W, S, A):
        y, (Wn,), (Sn,), (An,) = memory_sequence(k, v, q, th, al, et, (W,), (S,), (A,), start=0, chunk_size=2,
                                                 retrieve="after", loss="sum", method="chunk_scan")
        return (y.pow(2).sum() + (Wn * Sn).sum() + An.sum()).reshape(1)

    inputs = _small(depth=1, seed=17)
    assert gradcheck(f, inputs)
    assert gradgradcheck(f, inputs)


def test_gradcheck_and_gradgradcheck_mlp():
    def f(k, v, q, th, al, et, W1, W2, S1, S2, A1, A2):
        out = memory_mlp(k, v, q, th, al, et, W1, W2, S1, S2, A1, A2, start=1, chunk_size=2, retrieve="after", loss="mean")
        return (out[0].pow(2).sum() + out[1].sum() * out[2].sum() + out[3].sum() + out[4].pow(2).sum()).reshape(1)

    inputs = _small(depth=2)
    assert gradcheck(f, inputs)
    assert gradgradcheck(f, inputs)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_closed_form_gradients_equal_autograd(depth):
    k, v, _, _, _, _, W, _, _ = _problem(seed=8, depth=depth)
    for loss in ["sum", "mean"]:
        got = token_gradients(W, k, v, loss)
        for i in range(k.shape[1]):
            for g, want in zip(got, _grad(W, k[:, i], v[:, i], loss)):
                _close(g[:, i], want)


def test_gelu_derivative_first_and_second():
    x = torch.linspace(-6, 6, 41, dtype=F64, requires_grad=True)
    (d1,) = torch.autograd.grad(_gelu(x).sum(), x, create_graph=True)
    (d2,) = torch.autograd.grad(d1.sum(), x)
    got = gelu_derivative(x)
    _close(got, d1)
    (got2,) = torch.autograd.grad(got.sum(), x)
    _close(got2, d2)


def _scan_loop(a, b, h):
    out = []
    for t in range(a.shape[1]):
        h = a[:, t].reshape(-1, *([1] * (b.dim() - 2))) * h + b[:, t]
        out.append(h)
    return torch.stack(out, 1)


@pytest.mark.parametrize("T", [1, 2, 5, 8, 13])
def test_momentum_scan_equals_loop(T):
    g = torch.Generator().manual_seed(T)
    eta, theta = torch.rand(2, T, generator=g, dtype=F64), torch.rand(2, T, generator=g, dtype=F64)
    eta[:, T // 2] = 0.0
    u, S = torch.randn(2, T, 6, generator=g, dtype=F64), torch.randn(2, 6, generator=g, dtype=F64)
    _close(momentum_scan(eta, theta, u, S), _scan_loop(eta, -theta.unsqueeze(-1) * u, S))
    b = torch.randn(2, T, 3, 4, generator=g, dtype=F64)
    _close(linear_scan(eta, b, None), _scan_loop(eta, b, torch.zeros(2, 3, 4, dtype=F64)))
    P = decay_matrix(eta)
    _close(P @ u, _scan_loop(eta, u, torch.zeros(2, 6, dtype=F64)))


def test_chunk_gradient_sum_equals_loop_sum():
    k, v, _, theta, alpha, _, W, _, _ = _problem(seed=9, T=6)
    alpha[:, 3] = 1.0  # β_b/β_i by products, not division
    for loss in ["sum", "mean"]:
        want = torch.zeros_like(W[0])
        for i in range(6):
            ratio = torch.prod(1 - alpha[:, i + 1 :], dim=1)  # Π_{i<j≤b} (1 − α_j)
            want = want + (theta[:, i] * ratio)[:, None, None] * _grad(W, k[:, i], v[:, i], loss)[0]
        _close(chunk_gradient_sum(k, v, W[0], theta, alpha, loss), want)


def test_single_steps_equal_chunk_size_one():
    k, v, q, th, al, et, W, S, A = _problem(seed=10)
    Wt, St = W[0], S[0]
    for i in range(k.shape[1]):
        St = momentum_step(St, Wt, k[:, i], v[:, i], th[:, i], et[:, i], loss="mean")
        Wt = forget_step(Wt, St, al[:, i])
    _, Wn, Sn, _ = memory_linear(k, v, q, th, al, et, W[0], S[0], A[0], chunk_size=1, loss="mean")
    _close((Wt, St), (Wn, Sn))


def test_projections_and_retrieval():
    g = torch.Generator().manual_seed(11)
    x = torch.randn(2, 4, 5, generator=g, dtype=F64)
    WK, WV, WQ = (torch.randn(5, n, generator=g, dtype=F64) for n in (3, 2, 3))
    k, v = keys_values(x, WK, WV)
    _close((k, v), (x @ WK, x @ WV))
    W = torch.randn(2, 3, 2, generator=g, dtype=F64)
    _close(retrieve_linear(x, WQ, W), torch.einsum("btd,dk,bkv->btv", x, WQ, W))
    W1, W2 = torch.randn(2, 3, 4, generator=g, dtype=F64), torch.randn(2, 4, 2, generator=g, dtype=F64)
    _close(retrieve_mlp(x, WQ, W1, W2), _gelu(x @ WQ @ W1) @ W2)


def test_validation_errors():
    k, v, q, th, al, et, W, S, A = _problem(seed=12)
    with pytest.raises(ValueError, match="chunk_size"):
        memory_sequence(k, v, q, th, al, et, W, S, A, chunk_size=0)
    with pytest.raises(ValueError, match="retrieve"):
        memory_sequence(k, v, q, th, al, et, W, S, A, retrieve="during")
    with pytest.raises(ValueError, match="loss"):
        memory_sequence(k, v, q, th, al, et, W, S, A, loss="l1")
    with pytest.raises(ValueError, match="theta"):
        memory_sequence(k, v, q, th[:, :-1], al, et, W, S, A)
    with pytest.raises(ValueError, match="momentum"):
        memory_sequence(k, v, q, th, al, et, W, (S[0][:, :-1],), A)
    with pytest.raises(ValueError, match="start"):
        memory_sequence(k, v, q, th, al, et, W, S, A, start=-1)
    with pytest.raises(ValueError, match="chunk_scan"):
        memory_sequence(*_problem(seed=12, depth=2), method="chunk_scan")
    with pytest.raises(ValueError, match="q must"):
        memory_sequence(k, v, q[..., :-1], th, al, et, W, S, A)
    with pytest.raises(ValueError, match="retrieve"):
        NeuralMemory(8, retrieve="x")
    with pytest.raises(ValueError, match="divisible"):
        NeuralMemory(8, heads=3)
    with pytest.raises(ValueError, match="chunk_scan"):
        NeuralMemory(8, depth=2, method="chunk_scan")


def _module(**kw):
    torch.manual_seed(0)
    return NeuralMemory(8, heads=2, **{"depth": 2, "hidden_mult": 1.5, "chunk_size": 4, **kw}).double()


@pytest.mark.parametrize("kw", [{}, {"depth": 1, "method": "chunk_scan"}])
def test_module_streaming_equals_one_call(kw):
    memory = _module(**kw)
    x = torch.randn(2, 11, 8, dtype=F64)
    y, state = memory(x)
    for s in range(12):
        y1, s1 = memory(x[:, :s])
        y2, s2 = memory(x[:, s:], state=s1)
        _close(torch.cat([y1, y2], 1), y)
        _close((*s2.weights, *s2.momentum, *s2.anchor), (*state.weights, *state.momentum, *state.anchor))
        assert s2.start == 11


def test_module_causality():
    memory = _module(retrieve="after")
    x = torch.randn(1, 9, 8, dtype=F64)
    y, _ = memory(x)
    for s in range(9):
        x2 = x.clone()
        x2[:, s:] = torch.randn(1, 9 - s, 8, dtype=F64)
        y2, _ = memory(x2)
        _close(y2[:, :s], y[:, :s])
        if s < 9:
            assert not torch.allclose(y2[:, s], y[:, s])


def test_module_retrieval_changes_no_state():
    memory = _module()
    x = torch.randn(2, 6, 8, dtype=F64)
    _, state = memory(x)
    before = [t.clone() for t in (*state.weights, *state.momentum, *state.anchor)]
    params = [p.clone() for p in memory.parameters()]
    r1 = memory.retrieve(x, state)
    r2 = memory.retrieve(x, state)
    _close(r1, r2)
    _close(tuple(before), (*state.weights, *state.momentum, *state.anchor))
    _close(tuple(params), tuple(memory.parameters()))
    # retrieval before any update is the first read of the forward pass (retrieve="before")
    y, _ = memory(x[:, :1])
    _close(memory.retrieve(x[:, :1]), y)


def test_module_gates_given_and_broadcast_over_heads():
    memory = _module(gates="input")
    x = torch.randn(2, 7, 8, dtype=F64)
    g = torch.Generator().manual_seed(13)
    th, al, et = (torch.rand(2, 7, generator=g, dtype=F64) for _ in range(3))
    y, _ = memory(x, theta=0.1 * th, alpha=al, eta=et)
    per_head = [t.unsqueeze(1).expand(2, 2, 7) for t in (0.1 * th, al, et)]
    y2, _ = memory(x, *per_head)
    _close(y, y2)
    with pytest.raises(ValueError, match="must be given"):
        memory(x)
    with pytest.raises(ValueError, match="theta"):
        memory(x, theta=th[:, :3], alpha=al, eta=et)


@pytest.mark.parametrize("qk_norm", [False, True])
def test_module_matches_memory_sequence_per_head(qk_norm):
    memory = _module(gates="input", qk_norm=qk_norm)
    memory.to_out = torch.nn.Identity()
    x = torch.randn(1, 6, 8, dtype=F64)
    th, al, et = 0.1 * torch.rand(1, 2, 6, dtype=F64), torch.rand(1, 2, 6, dtype=F64), torch.rand(1, 2, 6, dtype=F64)
    y, _ = memory(x, th, al, et)
    for h in range(2):
        cols = slice(4 * h, 4 * h + 4)
        k, v = keys_values(x, memory.to_k.weight[cols].T, memory.to_v.weight[cols].T)
        q = x @ memory.to_q.weight[cols].T
        if qk_norm:  # §4.4: each head's keys and queries divided by their 2-norm
            k, q = k / k.norm(dim=-1, keepdim=True), q / q.norm(dim=-1, keepdim=True)
        W = tuple(w[h : h + 1] for w in memory.initial)
        want = loop(k, v, q, th[:, h], al[:, h], et[:, h], W, tuple(torch.zeros_like(w) for w in W), W,
                    start=0, chunk_size=4, retrieve="before", loss="sum")
        _close(y[..., cols], want[0])


def _oracle():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "specs" / "titans_reference.py"
    if not path.exists():
        pytest.skip("specs/titans_reference.py is not there")
    spec = importlib.util.spec_from_file_location("titans_reference", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_chunked_equals_spec_reference_oracle(depth):
    R = _oracle()
    k, v, q, th, al, et, W, S, A = _problem(seed=20 + depth, T=9, depth=depth)
    np_ = lambda ts: [t.numpy() for t in ts]  # noqa: E731
    for start, chunk_size, retrieve, loss in [(0, 1, "before", "sum"), (2, 4, "after", "mean"), (5, 3, "before", "mean")]:
        opts = dict(start=start, chunk_size=chunk_size, retrieve=retrieve, loss=loss)
        y, Wn, Sn, An = memory_sequence(k, v, q, th, al, et, W, S, A, **opts)
        ry, rW, rS, rA = R.memory_sequence(*np_((k, v, q, th, al, et)), np_(W), np_(S), np_(A), **opts)
        _close((y, *Wn, *Sn, *An), tuple(torch.from_numpy(t) for t in (ry, *rW, *rS, *rA)))
    u, S0 = torch.randn(2, 9, 5, dtype=F64), torch.randn(2, 5, dtype=F64)
    _close(momentum_scan(et, th, u, S0), torch.from_numpy(R.momentum_scan(*np_((et, th, u, S0)))))
    for loss in ["sum", "mean"] if depth == 1 else []:
        want = R.chunk_gradient_sum(*np_((k, v, W[0], th, al)), loss=loss)
        _close(chunk_gradient_sum(k, v, W[0], th, al, loss), torch.from_numpy(want))


def test_module_outer_loss_reaches_every_parameter():
    memory = _module()
    x = torch.randn(2, 9, 8, dtype=F64)
    y, state = memory(x)
    (y.pow(2).sum() + state.weights[0].sum()).backward()
    for name, p in memory.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("dim_head", [1, 4])
def test_qk_norm_of_tiny_keys_has_a_finite_half_precision_gradient(dtype, dim_head):
    """The backward of k/‖k‖ divides by ‖k‖²; in float16 that underflows for ‖k‖ below about 2.5e-4 and the input's
    gradient was ±inf where the exact one is finite (zero at a head width of 1). Found by the ``gradient`` check of
    ``neural_memory`` at float16; the module normalises half-precision keys and queries in float32."""
    torch.manual_seed(3)
    memory = NeuralMemory(2 * dim_head, heads=2, dim_head=dim_head, chunk_size=1, gates="input").to(dtype)
    x = (1e-4 * torch.randn(1, 3, 2 * dim_head)).to(dtype).requires_grad_(True)
    gates = [torch.full((1, 3), value, dtype=dtype) for value in (0.1, 0.5, 0.9)]
    y, _ = memory(x, *gates)
    (grad,) = torch.autograd.grad(y, x, torch.randn_like(y))
    assert torch.isfinite(grad).all(), grad
