"""Float64 reference oracles for the Titans specs (``specs/titans.yaml``), token by token.

Behrouz, Zhong & Mirrokni, *Titans: Learning to Memorize at Test Time* (arXiv 2501.00663, v1); the
conventions are docs/titans.md. Written to read like the equations, with plain loops over batch rows and
tokens, and sharing no code with any implementation under test.

Every function takes ``precision``: a callable that rounds an array to the tested dtype, applied to the
result of every arithmetic operation (sums accumulated one term at a time), so that the same function
run with rounding is the same-precision reference its tolerances are derived from (docs/spec-schema.md,
Tolerances). The oracle itself calls it without rounding.

The functions with gradients also take ``xp``, the array namespace of their inputs: NumPy (the default) or
torch. Called with ``xp=torch`` on float64 tensors, each builds an autograd graph of the same operations, so
the harness differentiates the oracle (and, with a ``precision`` that rounds in the backward pass too, its
same-precision reference) to check an implementation's gradients at every dtype (docs/spec-schema.md,
Differentiable references). No torch is imported unless it is passed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import numpy as np

Round = Callable[[Any], Any]
_erfc = np.vectorize(math.erfc, otypes=[float])


def _exact(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def _same(a: Any) -> Any:
    return a


class _Arithmetic:
    """Elementwise operations and products whose every result is rounded by ``r``, on NumPy arrays or (``xp`` torch)
    on float64 tensors; the few array functions the references need, in either namespace."""

    def __init__(self, precision: Round | None, xp: ModuleType | None = None) -> None:
        self.torch = xp is not None and xp.__name__ == "torch"
        self.xp = xp if self.torch else np
        self.r = precision or (_same if self.torch else _exact)

    def mul(self, a: Any, b: Any) -> Any:
        return self.r(a * b)

    def add(self, a: Any, b: Any) -> Any:
        return self.r(a + b)

    def sub(self, a: Any, b: Any) -> Any:
        return self.r(a - b)

    def vecmat(self, x: Any, w: Any) -> Any:
        """x (n,) @ w (n, m): the sum over n accumulated term by term."""
        acc = self.mul(x[0], w[0])
        for j in range(1, x.shape[0]):
            acc = self.add(acc, self.mul(x[j], w[j]))
        return acc

    def outer(self, a: Any, b: Any) -> Any:
        return self.r(self.xp.outer(a, b) if self.torch else np.multiply.outer(a, b))

    def cdf(self, h: Any) -> Any:
        """Φ(h) = ½ erfc(−h/√2), each elementary step rounded (the scaling, erfc, the halving)."""
        erfc = self.xp.special.erfc if self.torch else _erfc
        return self.r(0.5 * self.r(erfc(self.r(-h / math.sqrt(2.0)))))

    def gelu(self, h: Any) -> Any:
        """GELU(h) = h Φ(h) (exact GELU)."""
        return self.mul(h, self.cdf(h))

    def gelu_grad(self, h: Any) -> Any:
        """GELU'(h) = Φ(h) + h φ(h), φ(h) = exp(−h²/2)/√(2π), each elementary step rounded."""
        phi = self.r(self.r(self.xp.exp(self.r(-0.5 * self.mul(h, h)))) / math.sqrt(2.0 * math.pi))
        return self.add(self.cdf(h), self.mul(h, phi))

    # -- array functions (no arithmetic, nothing rounded) -------------------------------------------
    def stack(self, items: Sequence[Any]) -> Any:
        return self.xp.stack(list(items))

    def cat(self, items: Sequence[Any]) -> Any:
        """Joined along the last axis."""
        return self.xp.cat(list(items), -1) if self.torch else np.concatenate(list(items), -1)

    def zeros_like(self, a: Any) -> Any:
        return self.xp.zeros_like(a)

    def norm(self, a: Any) -> Any:
        """The 2-norm over the last axis (kept), floored at 1e-12, as one rounded operation (a fused norm kernel)."""
        if self.torch:
            return self.r(self.xp.linalg.vector_norm(a, dim=-1, keepdim=True)).clamp_min(1e-12)
        return np.maximum(self.r(np.sqrt(np.sum(a * a, -1, keepdims=True))), 1e-12)


# -- the memory and its loss (Eq. 12) -------------------------------------------------------------
def memory_forward(ar: _Arithmetic, weights: Sequence[Any], x: Any) -> Any:
    """M(x) for one token: x @ W (L_M = 1), else gelu between layers: h = x W1, h = gelu(h) W_l."""
    h = ar.vecmat(x, weights[0])
    for w in weights[1:]:
        h = ar.vecmat(ar.gelu(h), w)
    return h


def loss_gradient(ar: _Arithmetic, weights: Sequence[Any], k: Any, v: Any, loss: str) -> list[Any]:
    """∇_W ℓ(W; k, v) for ℓ = Σ_j (M(k)_j − v_j)² (``sum``) or that sum / Dv (``mean``), by the chain rule."""
    pre = [ar.vecmat(k, weights[0])]  # pre-activations h_1 .. h_L
    for w in weights[1:]:
        pre.append(ar.vecmat(ar.gelu(pre[-1]), w))
    two = 2.0 if loss == "sum" else 2.0 / v.shape[0]
    delta = ar.r(two * ar.sub(pre[-1], v))  # ∂ℓ/∂h_L
    grads: list[Any] = [None] * len(weights)
    for layer in range(len(weights) - 1, -1, -1):
        below = k if layer == 0 else ar.gelu(pre[layer - 1])  # the layer's input
        grads[layer] = ar.outer(below, delta)
        if layer > 0:
            back = ar.vecmat(delta, weights[layer].T)  # ∂ℓ/∂(layer input)
            delta = ar.mul(back, ar.gelu_grad(pre[layer - 1]))
    return grads


# -- the recurrence: Eq. 13, 14, 15, 16 ------------------------------------------------------------
def memory_sequence(
    k: Any,
    v: Any,
    q: Any,
    theta: Any,
    alpha: Any,
    eta: Any,
    weights: Sequence[Any],
    momentum: Sequence[Any],
    anchor: Sequence[Any],
    *,
    start: int,
    chunk_size: int,
    retrieve: str,
    loss: str,
    step: str = "token",
    precision: Round | None = None,
    xp: ModuleType | None = None,
) -> tuple[Any, list[Any], list[Any], list[Any]]:
    """Token by token, per batch row (docs/titans.md):

    at a chunk start (absolute position p = start + i, p mod C = 0)  A = W
    g   = ∇ℓ(A; k_i, v_i)                  Eq. 16 (C = 1: ∇ℓ(M_{t−1}; x_t))
    S_t = η_t S_{t−1} − θ_t g              Eq. 14
    M_t = (1 − α_t) M_{t−1} + S_t          Eq. 13
    y_t = M_{t−1}(q_t) or M_t(q_t)         Eq. 15 (``retrieve``: before / after)

    ``step = "chunk"`` is the coarser reading (titans.yaml, ``step``): S and M step once per complete chunk n,
    at its last token, with the chunk's gradient sum and mean gates — g_n = Σ_{i∈n} θ_i ∇ℓ(A; k_i, v_i),
    S_n = η̄_n S_{n−1} − g_n, M_n = (1 − ᾱ_n) M_{n−1} + S_n — a chunk left open at the call's end takes no step;
    ``before`` reads the memory before the token (the chunk's start memory), ``after`` the memory after it (the
    chunk's start memory but at its last token, which reads M_n).
    """
    ar = _Arithmetic(precision, xp)
    batch, length = k.shape[0], k.shape[1]
    y, out_w, out_s, out_a = [], [], [], []
    for b in range(batch):
        w = [ar.r(x[b]) for x in weights]
        s = [ar.r(x[b]) for x in momentum]
        a = [ar.r(x[b]) for x in anchor]
        y_b = []
        opened: list[int] = []  # step = "chunk": the tokens of the open chunk seen so far
        for i in range(length):
            if (start + i) % chunk_size == 0:
                a = list(w)
            before = w
            if step == "token":
                g = loss_gradient(ar, a, k[b, i], v[b, i], loss)
                s = [ar.sub(ar.mul(eta[b, i], s_l), ar.mul(theta[b, i], g_l)) for s_l, g_l in zip(s, g)]
                w = [ar.add(ar.mul(ar.r(1.0 - alpha[b, i]), w_l), s_l) for w_l, s_l in zip(w, s)]
            else:
                opened.append(i)
                if (start + i) % chunk_size == chunk_size - 1:  # the chunk is complete: its one step
                    s, w = _chunk_step(ar, opened, a, s, w, (k[b], v[b], theta[b], alpha[b], eta[b]), loss)
                    opened = []
            y_b.append(memory_forward(ar, before if retrieve == "before" else w, q[b, i]))
        y.append(ar.stack(y_b) if y_b else ar.zeros_like(v[b]))
        out_w.append(w)
        out_s.append(s)
        out_a.append(a)
    stack = lambda per_row: [ar.stack([row[n] for row in per_row]) for n in range(len(weights))]  # noqa: E731
    return ar.stack(y), stack(out_w), stack(out_s), stack(out_a)


def _chunk_step(
    ar: _Arithmetic, tokens: Sequence[int], a: list[Any], s: list[Any], w: list[Any], row: tuple[Any, ...], loss: str
) -> tuple[list[Any], list[Any]]:
    """One chunk's step at ``step = "chunk"``: g = Σ_{i∈tokens} θ_i ∇ℓ(A; k_i, v_i) (term by term, in order),
    S = η̄ S − g, M = (1 − ᾱ) M + S with ᾱ, η̄ the tokens' mean gates. ``row``: one batch row's (k, v, θ, α, η)."""
    k, v, theta, alpha, eta = row
    g: list[Any] | None = None
    for i in tokens:
        terms = [ar.mul(theta[i], g_l) for g_l in loss_gradient(ar, a, k[i], v[i], loss)]
        g = terms if g is None else [ar.add(acc, t) for acc, t in zip(g, terms)]
    assert g is not None, "a chunk has at least one token"
    eta_n, alpha_n = _mean(ar, [eta[i] for i in tokens]), _mean(ar, [alpha[i] for i in tokens])
    s = [ar.sub(ar.mul(eta_n, s_l), g_l) for s_l, g_l in zip(s, g)]
    return s, [ar.add(ar.mul(ar.r(1.0 - alpha_n), w_l), s_l) for w_l, s_l in zip(w, s)]


def _mean(ar: _Arithmetic, values: Sequence[Any]) -> Any:
    """The mean of a chunk's gates, summed one term at a time, then divided."""
    total = values[0]
    for x in values[1:]:
        total = ar.add(total, x)
    return ar.r(total / len(values))


def memory_linear(
    k, v, q, theta, alpha, eta, W, S, A, start, chunk_size, retrieve="before", loss="sum", step="token", precision=None,
    xp=None, **_
):
    """L_M = 1: M(k) = k W. Outputs (y, W_T, S_T, A_T)."""
    y, w, s, a = memory_sequence(
        k, v, q, theta, alpha, eta, [W], [S], [A], start=int(start), chunk_size=int(chunk_size), retrieve=retrieve,
        loss=loss, step=step, precision=precision, xp=xp,
    )
    return y, w[0], s[0], a[0]


def memory_mlp(
    k, v, q, theta, alpha, eta, W1, W2, S1, S2, A1, A2, start, chunk_size, retrieve="before", loss="sum", step="token",
    precision=None, xp=None, **_,
):
    """L_M = 2: M(k) = gelu(k W1) W2. Outputs (y, W1_T, W2_T, S1_T, S2_T, A1_T, A2_T)."""
    y, w, s, a = memory_sequence(
        k, v, q, theta, alpha, eta, [W1, W2], [S1, S2], [A1, A2], start=int(start), chunk_size=int(chunk_size),
        retrieve=retrieve, loss=loss, step=step, precision=precision, xp=xp,
    )
    return (y, *w, *s, *a)


def memory_linear_chunk_gates(
    k, v, q, theta, alpha, eta, W, S, C, retrieve="before", loss="sum", step="token", precision=None, xp=None, **_
):
    """Eq. 16 with θ, α, η constant within each chunk (one value per chunk n, ``[B, N]``), chunk by chunk:
    every token of chunk n takes its gradient at the memory before the chunk, then S and M step per token with
    the chunk's gates. Outputs (y, W_T, S_T).

    ``step = "chunk"`` (the coarser reading, as :func:`memory_sequence`'s): one step per chunk at its last token,
    S_n = η_n S_{n−1} − θ_n Σ_{i∈n} ∇ℓ(M_{n−1}; k_i, v_i), M_n = (1 − α_n) M_{n−1} + S_n."""
    ar = _Arithmetic(precision, xp)
    y, w_t, s_t = [], [], []
    for b in range(k.shape[0]):
        w, s = ar.r(W[b]), ar.r(S[b])
        y_b = []
        for n in range(theta.shape[1]):
            anchor, g_n = w, None
            for i in range(n * C, (n + 1) * C):
                g = loss_gradient(ar, [anchor], k[b, i], v[b, i], loss)[0]
                before = w
                if step == "chunk":
                    term = ar.mul(theta[b, n], g)
                    g_n = term if g_n is None else ar.add(g_n, term)
                    if i == (n + 1) * C - 1:
                        s = ar.sub(ar.mul(eta[b, n], s), g_n)
                        w = ar.add(ar.mul(ar.r(1.0 - alpha[b, n]), w), s)
                else:
                    s = ar.sub(ar.mul(eta[b, n], s), ar.mul(theta[b, n], g))
                    w = ar.add(ar.mul(ar.r(1.0 - alpha[b, n]), w), s)
                y_b.append(ar.vecmat(q[b, i], before if retrieve == "before" else w))
        y.append(ar.stack(y_b) if y_b else ar.zeros_like(v[b]))
        w_t.append(w)
        s_t.append(s)
    return ar.stack(y), ar.stack(w_t), ar.stack(s_t)


def neural_memory(
    x, Wk, Wv, Wq, Wo, M0, theta, alpha, eta, H, C, qk_norm=False, retrieve="before", loss="sum", precision=None, xp=None,
    **_,
):
    """The module: Eq. 11 and 15's projections per head (torch's Linear convention, ``x Wᵀ``; with ``qk_norm`` each
    head's keys and queries divided by their 2-norm, §4.4), each head's linear memory from M_0 with S_0 = 0
    (Eq. 13–16, gates shared by the heads), the heads concatenated and mixed by Wo."""
    ar = _Arithmetic(precision, xp)
    batch, length, _ = x.shape
    width = Wk.shape[0] // H

    def project(w: Any) -> Any:  # [B, T, rows of w]
        return ar.stack([ar.stack([ar.vecmat(x[b, t], w.T) for t in range(length)]) for b in range(batch)])

    k, v, q = project(Wk), project(Wv), project(Wq)
    heads = []
    for h in range(H):
        cols = slice(h * width, (h + 1) * width)
        k_h, q_h = k[..., cols], q[..., cols]
        if qk_norm:  # the 2-norm as one rounded operation (a fused norm kernel: its squares cannot underflow)
            k_h, q_h = (ar.r(a / ar.norm(a)) for a in (k_h, q_h))
        m0 = ar.stack([M0[h]] * batch)  # [B, E, E]
        y_h, _, _, _ = memory_sequence(
            k_h, v[..., cols], q_h, theta, alpha, eta, [m0], [ar.zeros_like(m0)], [m0],
            start=0, chunk_size=int(C), retrieve=retrieve, loss=loss, precision=precision, xp=xp,
        )
        heads.append(y_h)
    joined = ar.cat(heads)  # [B, T, H·E]
    return ar.stack([ar.stack([ar.vecmat(joined[b, t], Wo.T) for t in range(length)]) for b in range(batch)])


# -- special cases, each in its own closed form ---------------------------------------------------
def plain_gradient_descent(k, v, q, theta, W, precision=None, **_):
    """Eq. 8 (α = η = 0, chunk size 1): M_t = M_{t−1} − θ_t ∇ℓ(M_{t−1}; x_t), y_t = M_t(q_t) (retrieve after).
    Outputs (y, W_T, S_T = −θ_T ∇ℓ(M_{T−1}; x_T), A_T = M_{T−1})."""
    ar = _Arithmetic(precision)
    y = np.zeros((k.shape[0], k.shape[1], v.shape[-1]))
    w_t, s_t, a_t = [], [], []
    for b in range(k.shape[0]):
        w, step, prev = ar.r(W[b]), np.zeros_like(W[b]), ar.r(W[b])
        for i in range(k.shape[1]):
            prev = w
            step = ar.mul(-theta[b, i], loss_gradient(ar, [w], k[b, i], v[b, i], "sum")[0])
            w = ar.add(w, step)
            y[b, i] = ar.vecmat(q[b, i], w)
        w_t.append(w)
        s_t.append(step)
        a_t.append(prev)
    return y, np.stack(w_t), np.stack(s_t), np.stack(a_t)


def forgetting_only(q, alpha, W, precision=None, step="token", **rest):
    """θ = 0 and S_0 = 0: M_t = β_t M_0 with β_t = Π_{i ≤ t} (1 − α_i) (Eq. 13 with no surprise); retrieve after,
    one chunk (the anchor stays M_0). Outputs (y_t = β_t q_t M_0, β_T M_0, 0, M_0). ``step = "chunk"`` (the coarser
    reading) is :func:`memory_linear`'s."""
    if step == "chunk":
        return memory_linear(q=q, alpha=alpha, W=W, precision=precision, step=step, **rest)
    ar = _Arithmetic(precision)
    beta = np.ones(alpha.shape)
    for i in range(alpha.shape[1]):
        beta[:, i] = ar.mul(beta[:, i - 1] if i else 1.0, ar.r(1.0 - alpha[:, i]))
    qm = np.stack([np.stack([ar.vecmat(q[b, i], W[b]) for i in range(q.shape[1])]) for b in range(q.shape[0])])
    y = ar.r(beta[:, :, None] * qm)
    return y, ar.r(beta[:, -1, None, None] * W), np.zeros_like(W), ar.r(W)


def one_chunk_step(k, v, q, theta, W, precision=None, step="token", **rest):
    """α = η = 0, S_0 = 0 and the whole sequence one chunk (Eq. 16 with t' = 0): every gradient at M_0, so
    M_t = M_0 − Σ_{i ≤ t} θ_i ∇ℓ(M_0; x_i) — after T tokens one gradient step at M_0 on the summed loss.
    Retrieve after. Outputs (y_t = q_t M_t, M_T, S_T = −θ_T ∇ℓ(M_0; x_T), A_T = M_0). ``step = "chunk"`` (the
    coarser reading) is :func:`memory_linear`'s."""
    if step == "chunk":
        return memory_linear(k=k, v=v, q=q, theta=theta, W=W, precision=precision, step=step, **rest)
    ar = _Arithmetic(precision)
    y = np.zeros((k.shape[0], k.shape[1], v.shape[-1]))
    w_t, s_t = [], []
    for b in range(k.shape[0]):
        steps = [ar.mul(-theta[b, i], loss_gradient(ar, [W[b]], k[b, i], v[b, i], "sum")[0]) for i in range(k.shape[1])]
        w = ar.r(W[b])
        for i, step in enumerate(steps):
            w = ar.add(w, step)
            y[b, i] = ar.vecmat(q[b, i], w)
        w_t.append(w)
        s_t.append(steps[-1])
    return y, np.stack(w_t), np.stack(s_t), ar.r(W)


# -- single steps and the parallel forms ------------------------------------------------------------
def momentum_step(S, W, k, v, theta, eta, loss="sum", precision=None, **_):
    """Eq. 14 for one token and the linear memory: S_t = η_t S_{t−1} − θ_t ∇ℓ(M_{t−1}; x_t)."""
    ar = _Arithmetic(precision)
    out = np.zeros_like(S)
    for b in range(S.shape[0]):
        g = loss_gradient(ar, [W[b]], k[b], v[b], loss)[0]
        out[b] = ar.sub(ar.mul(eta[b], ar.r(S[b])), ar.mul(theta[b], g))
    return out


def chunk_gradient_sum(k, v, W, theta, alpha, loss="sum", precision=None, xp=None, **_):
    """Eq. 17's left side: Σ_i θ_i (β_b / β_i) ∇ℓ(W_0; x_i), with β_b / β_i = Π_{i < j ≤ b} (1 − α_j)."""
    ar = _Arithmetic(precision, xp)
    out = []
    for b in range(k.shape[0]):
        acc = ar.zeros_like(W[b])
        for i in range(k.shape[1]):
            ratio = 1.0
            for j in range(i + 1, k.shape[1]):
                ratio = ar.mul(ratio, ar.r(1.0 - alpha[b, j]))
            term = ar.mul(ar.mul(theta[b, i], ratio), loss_gradient(ar, [W[b]], k[b, i], v[b, i], loss)[0])
            acc = ar.add(acc, term)
        out.append(acc)
    return ar.stack(out)


def momentum_scan(eta, theta, u, S, precision=None, xp=None, **_):
    """Eq. 18 sequentially: S_t = η_t S_{t−1} − θ_t u_t for every t (the sequence of momenta)."""
    ar = _Arithmetic(precision, xp)
    out = []
    for b in range(u.shape[0]):
        s, row = ar.r(S[b]), []
        for t in range(u.shape[1]):
            s = ar.sub(ar.mul(eta[b, t], s), ar.mul(theta[b, t], u[b, t]))
            row.append(s)
        out.append(ar.stack(row) if row else ar.zeros_like(u[b]))
    return ar.stack(out)
