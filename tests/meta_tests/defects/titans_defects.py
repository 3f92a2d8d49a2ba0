"""Deliberately wrong Titans memory functions (the specs of specs/titans.yaml other than ``surprise``).

Each function has the signature of the ``implementations.titans`` function its spec tests (docs/titans.md,
"Functions") and is wrong in exactly one way, most by wrapping the shipped function with one deliberate change;
its docstring says what is wrong and which spec line / harness check must catch it. The tables
``tests/meta_tests/tables/<spec>.py`` list the check that must catch each.

Sections, by the signature they share: ``kv_*`` (keys_values, Eq. 11), ``momentum_*`` (momentum_step, Eq. 14),
``forget_*`` (forget_step, Eq. 13), ``retrieve_linear_*`` / ``retrieve_mlp_*`` (Eq. 15), ``memory_*``
(memory_linear, Eq. 13–16, also run by the special-case specs plain_gradient_descent, forgetting_only and
one_chunk_step), ``mlp_*`` (memory_mlp), ``matmul_*`` (chunk_gradient_sum, Eq. 17) and ``scan_*``
(momentum_scan, Eq. 18).
"""

from collections.abc import Callable
from functools import partial
from itertools import count

import torch
import torch.nn.functional as F
from torch import Tensor

from implementations.titans import (
    chunk_gradient_sum,
    forget_step,
    keys_values,
    linear_scan,
    memory_forward,
    memory_linear,
    memory_mlp,
    memory_sequence,
    momentum_scan,
    momentum_step,
    retrieve_linear,
    retrieve_mlp,
)
from implementations.titans.memory import loss_scale

Weights = list[Tensor]


# -- helpers (private: not defects) -------------------------------------------------------------------
class _RecomputedBackward(torch.autograd.Function):
    """``fn(*inputs)`` with a hand-written backward that recomputes ``fn`` on *detached* copies of the inputs.

    The first derivative is right (the vector-Jacobian product of ``fn`` at the inputs' values), but the
    gradient it returns has no graph back to the inputs: differentiating the backward again gives 0 where the
    true second derivative is not (the once-differentiable custom backward of a fused kernel).
    """

    @staticmethod
    def forward(ctx, fn, *inputs):
        ctx.fn = fn
        ctx.save_for_backward(*inputs)
        with torch.no_grad():
            out = fn(*inputs)
        ctx.single = isinstance(out, Tensor)
        return out

    @staticmethod
    def backward(ctx, *grads):
        copies = [x.detach().requires_grad_(True) for x in ctx.saved_tensors]
        with torch.enable_grad():
            outs = ctx.fn(*copies)
            outs = (outs,) if ctx.single else tuple(outs)
            found = torch.autograd.grad(outs, copies, grads, create_graph=True, allow_unused=True)
        return (None, *found)


_CALLS = count()


def _odd_call() -> bool:
    """True on every other call: a dispatcher that switches kernels between calls (an autotuner's pick)."""
    return next(_CALLS) % 2 == 1


def _recomputed(fn: Callable, *inputs: Tensor):
    return _RecomputedBackward.apply(fn, *inputs)


def _shuffled_matmul(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` (``[..., n, d] @ [..., d, m]``) summed over ``d`` one term at a time, forward and reversed on
    alternate calls (a reduction whose order changes between calls, as a non-deterministic atomic add's does)."""
    order = list(range(a.shape[-1]))
    if _odd_call():
        order.reverse()
    total = a[..., :, order[0] : order[0] + 1] * b[..., order[0] : order[0] + 1, :]  # [..., n, m]
    for d in order[1:]:
        total = total + a[..., :, d : d + 1] * b[..., d : d + 1, :]
    return total


def _mlp_forward(x: Tensor, weights: Weights, activation: Callable[[Tensor], Tensor]) -> Tensor:
    """``M(x)`` of docs/titans.md with ``activation`` between the layers (the exact GELU is right)."""
    h = x @ weights[0]
    for w in weights[1:]:
        h = activation(h) @ w
    return h


def _gradient(weights: Weights, k: Tensor, v: Tensor, scale: float, activation: Callable[[Tensor], Tensor]) -> Weights:
    """``∇_W ℓ(W; k_i, v_i)`` of Eq. 12 per batch row, by autograd (twice differentiable: ``create_graph``)."""
    with torch.enable_grad():
        leaves = [w if w.requires_grad else w.detach().requires_grad_(True) for w in weights]
        loss = scale * (_mlp_forward(k, leaves, activation) - v).pow(2).sum()
        return list(torch.autograd.grad(loss, leaves, create_graph=True))


def _token_loop(
    k: Tensor, v: Tensor, q: Tensor, theta: Tensor, alpha: Tensor, eta: Tensor,
    weights: Weights, momentum: Weights, anchor: Weights, *, start: int, chunk_size: int, retrieve: str, loss: str,
    activation: Callable[[Tensor], Tensor] = F.gelu,
    forget_after_adding: bool = False,
    gate_on_gradient: bool = False,
    anchor_one_token_late: bool = False,
    first_order: bool = False,
    one_step_per_chunk: bool = False,
) -> tuple[Tensor, Weights, Weights, Weights]:
    """The token recurrence of docs/titans.md, written out; each keyword is one of the defects below (all off: right).

    ``-> (y [B, T, Dv], W, S, A)`` with ``W, S, A`` one tensor per layer.
    """
    scale = loss_scale(loss, v.shape[-1])
    batch = k.shape[0]
    W, S, A = list(weights), list(momentum), list(anchor)
    ys = []
    opened = 0  # the token where the open chunk's steps began (one_step_per_chunk)
    for i in range(k.shape[1]):
        chunk_starts = (start + i) % chunk_size == 0
        if chunk_starts:
            A = W
            opened = i
        if one_step_per_chunk:
            before = W
            if (start + i) % chunk_size == chunk_size - 1:  # the chunk's last token: its one step
                tokens = slice(opened, i + 1)
                g = [torch.zeros_like(w) for w in W]  # the chunk's Σ θ_j ∇ℓ(A; k_j, v_j), per layer
                for j in range(opened, i + 1):
                    th = theta[:, j].reshape(batch, 1, 1)  # [B, 1, 1]
                    grads = _gradient(A, k[:, j : j + 1], v[:, j : j + 1], scale, activation)
                    g = [acc + th * gj for acc, gj in zip(g, grads, strict=True)]
                al, et = (gate[:, tokens].mean(1).reshape(batch, 1, 1) for gate in (alpha, eta))  # [B, 1, 1]: the chunk's means
                S = [et * s - gi for s, gi in zip(S, g, strict=True)]
                W = [(1 - al) * w + s for w, s in zip(W, S, strict=True)]
            read = before if retrieve == "before" else W
            ys.append(_mlp_forward(q[:, i : i + 1], read, activation))  # [B, 1, Dv]
            continue
        g = _gradient(A, k[:, i : i + 1], v[:, i : i + 1], scale, activation)  # rows [B, 1, Dk], [B, 1, Dv]
        if first_order:
            g = [x.detach() for x in g]
        th, al, et = (gate[:, i].reshape(batch, 1, 1) for gate in (theta, alpha, eta))  # [B, 1, 1]
        if gate_on_gradient:
            S = [s - et * th * gi for s, gi in zip(S, g, strict=True)]
        else:
            S = [et * s - th * gi for s, gi in zip(S, g, strict=True)]
        before = W
        if forget_after_adding:
            W = [(1 - al) * (w + s) for w, s in zip(W, S, strict=True)]
        else:
            W = [(1 - al) * w + s for w, s in zip(W, S, strict=True)]
        if anchor_one_token_late and chunk_starts:
            A = W
        read = before if retrieve == "before" else W
        ys.append(_mlp_forward(q[:, i : i + 1], read, activation))  # [B, 1, Dv]
    return torch.cat(ys, 1), W, S, A


def _loop_linear(k, v, q, theta, alpha, eta, W, S, A, *, start=0, chunk_size=1, retrieve="before", loss="sum", **change):
    y, (W,), (S,), (A,) = _token_loop(k, v, q, theta, alpha, eta, [W], [S], [A], start=start, chunk_size=chunk_size,
                                      retrieve=retrieve, loss=loss, **change)
    return y, W, S, A


def _loop_mlp(k, v, q, theta, alpha, eta, W1, W2, S1, S2, A1, A2, *, start=0, chunk_size=1, retrieve="before",
              loss="sum", **change):
    y, (W1, W2), (S1, S2), (A1, A2) = _token_loop(k, v, q, theta, alpha, eta, [W1, W2], [S1, S2], [A1, A2],
                                                  start=start, chunk_size=chunk_size, retrieve=retrieve, loss=loss,
                                                  **change)
    return y, W1, W2, S1, S2, A1, A2


def _other(retrieve: str) -> str:
    return "after" if retrieve == "before" else "before"


# -- keys_values (Eq. 11): (x, W_K, W_V) -> (k, v) ----------------------------------------------------
def kv_silu_keys(x: Tensor, W_K: Tensor, W_V: Tensor) -> tuple[Tensor, Tensor]:
    """SiLU on the keys, as the paper's experiments do (§4.4): ``k = silu(x W_K)`` instead of Eq. 11's ``x W_K``.

    Caught by: ``oracle`` (``expr: {k: "x @ W_K"}``; ambiguity "Does anything follow the projections").
    """
    k, v = keys_values(x, W_K, W_V)
    return F.silu(k), v


def kv_normalised_keys(x: Tensor, W_K: Tensor, W_V: Tensor) -> tuple[Tensor, Tensor]:
    """ℓ2-normalised keys (§4.4's architecture choice), not Eq. 11: the keys become homogeneous of degree 0 in x.

    Caught by: ``invariant:linearity_in_x`` (degree 1) — and the oracle.
    """
    k, v = keys_values(x, W_K, W_V)
    return F.normalize(k, dim=-1), v


def kv_short_conv(x: Tensor, W_K: Tensor, W_V: Tensor) -> tuple[Tensor, Tensor]:
    """A causal depthwise convolution (kernel 2, ``x_t + x_{t−1}``) before the projections, as libraries add.

    Each key and value then depends on the previous token. Caught by: ``invariant:token_independence``.
    """
    shifted = torch.cat((torch.zeros_like(x[:, :1]), x[:, :-1]), 1)  # x_{t-1}, zero before the first, [B, T, D]
    return keys_values(x + shifted, W_K, W_V)


def kv_column_layout(x: Tensor, W_K: Tensor, W_V: Tensor) -> tuple[Tensor, Tensor]:
    """The paper's column-vector form ``W_K^T x^T``: keys returned ``[B, Dk, T]`` instead of rows ``[B, T, Dk]``.

    Caught by: ``output_contract`` (``outputs: k: {shape: [B, T, Dk]}``) wherever T ≠ Dk.
    """
    k, v = keys_values(x, W_K, W_V)
    return k.transpose(1, 2), v


def kv_shuffled_sum(x: Tensor, W_K: Tensor, W_V: Tensor) -> tuple[Tensor, Tensor]:
    """The key projection sums the D products in an order that changes between calls (a non-deterministic reduction).

    Within rounding of Eq. 11 but not bitwise repeatable. Caught by: ``determinism``.
    """
    _, v = keys_values(x, W_K, W_V)
    return _shuffled_matmul(x, W_K), v


def kv_detached_value_weights(x: Tensor, W_K: Tensor, W_V: Tensor) -> tuple[Tensor, Tensor]:
    """``W_V`` detached (a frozen value projection): the values carry no gradient to ``W_V``.

    Caught by: ``gradient`` (``gradients: wrt: [x, W_K, W_V]``, against autograd through the oracle) and
    ``gradcheck`` at float64.
    """
    return keys_values(x, W_K, W_V.detach())


def kv_recomputed_backward(x: Tensor, W_K: Tensor, W_V: Tensor) -> tuple[Tensor, Tensor]:
    """Eq. 11 with a once-differentiable custom backward (recomputed on detached copies of the inputs).

    The first derivative is right; the mixed second derivative ∂²/∂x∂W_K = I is lost. Caught by:
    ``gradgradcheck`` (``gradients: order: 2``).
    """
    return _recomputed(keys_values, x, W_K, W_V)


# -- momentum_step (Eq. 14): (S, W, k, v, theta, eta) -> S_t -------------------------------------------
def momentum_missing_factor_two(S: Tensor, W: Tensor, k: Tensor, v: Tensor, theta: Tensor, eta: Tensor) -> Tensor:
    """The gradient of Eq. 12 without its factor 2 (as Eq. 17 and Appendix C write it): ``kᵀ(kW − v)``.

    The same as the right step at θ/2. Caught by: ``oracle`` (``2 * theta * ...``; ambiguity "factor 2").
    """
    return momentum_step(S, W, k, v, theta / 2, eta)


def momentum_plus_gradient(S: Tensor, W: Tensor, k: Tensor, v: Tensor, theta: Tensor, eta: Tensor) -> Tensor:
    """``S_t = η S + θ ∇ℓ``: Eq. 10's "past plus momentary surprise" read as a plus, a gradient *ascent*.

    Caught by: ``oracle`` (Eq. 14 as printed: ``− θ_t ∇ℓ``; ambiguity "Which signs?").
    """
    return momentum_step(S, W, k, v, -theta, eta)


def momentum_gate_on_gradient(S: Tensor, W: Tensor, k: Tensor, v: Tensor, theta: Tensor, eta: Tensor) -> Tensor:
    """The momentum gate on the momentary surprise instead of the past one: ``S_t = S − η θ ∇ℓ``.

    At a perfect memory (∇ℓ = 0) the past surprise is kept whole, not decayed. Caught by:
    ``invariant:no_surprise_at_a_perfect_memory`` (``rhs: eta * S``) and the oracle.
    """
    return momentum_step(S, W, k, v, eta * theta, torch.ones_like(eta))


def momentum_mean_loss(S: Tensor, W: Tensor, k: Tensor, v: Tensor, theta: Tensor, eta: Tensor) -> Tensor:
    """The MSE of titans-pytorch (a mean over the Dv value features) instead of Eq. 12's sum: the gradient /Dv.

    Caught by: ``oracle`` (ambiguity "Sum or mean": here the sum). Equivalent where Dv = 1.
    """
    return momentum_step(S, W, k, v, theta, eta, loss="mean")


def momentum_first_row_gates(S: Tensor, W: Tensor, k: Tensor, v: Tensor, theta: Tensor, eta: Tensor) -> Tensor:
    """The gates read as per-call scalars: batch row 0's θ and η applied to every row.

    Caught by: ``invariant:batch_independence`` (permuting the batch must permute the result) wherever B ≥ 2.
    """
    return momentum_step(S, W, k, v, theta[:1].expand_as(theta), eta[:1].expand_as(eta))


def momentum_column_layout(S: Tensor, W: Tensor, k: Tensor, v: Tensor, theta: Tensor, eta: Tensor) -> Tensor:
    """The result in the paper's column-vector layout ``[B, Dv, Dk]`` instead of rows ``[B, Dk, Dv]``.

    Caught by: ``output_contract`` (``outputs: S_t: {shape: [B, Dk, Dv]}``) wherever Dk ≠ Dv.
    """
    return momentum_step(S, W, k, v, theta, eta).transpose(1, 2)


def momentum_shuffled_sum(S: Tensor, W: Tensor, k: Tensor, v: Tensor, theta: Tensor, eta: Tensor) -> Tensor:
    """The error ``k W − v`` with ``k W`` summed over Dk in an order that changes between calls (non-deterministic).

    Caught by: ``determinism`` (bitwise equality of two calls).
    """
    error = _shuffled_matmul(k.unsqueeze(1), W).squeeze(1) - v  # rows [B, 1, Dk] @ [B, Dk, Dv] -> [B, Dv]
    grad = 2 * k.unsqueeze(2) * error.unsqueeze(1)  # kᵀ e, [B, Dk, Dv]
    return eta.reshape(-1, 1, 1) * S - theta.reshape(-1, 1, 1) * grad


def momentum_first_order(S: Tensor, W: Tensor, k: Tensor, v: Tensor, theta: Tensor, eta: Tensor) -> Tensor:
    """The momentary surprise ∇ℓ detached (first-order meta-learning): right values, no gradient through ∇ℓ.

    Caught by: ``gradient`` (``gradients: wrt: [S, W, k, v, theta, eta]``) and ``gradcheck`` at float64.
    """
    minus_grad = momentum_step(torch.zeros_like(S), W, k, v, torch.ones_like(theta), torch.zeros_like(eta))  # −∇ℓ
    return eta.reshape(-1, 1, 1) * S + theta.reshape(-1, 1, 1) * minus_grad.detach()


def momentum_recomputed_backward(S: Tensor, W: Tensor, k: Tensor, v: Tensor, theta: Tensor, eta: Tensor) -> Tensor:
    """Eq. 14 with a once-differentiable custom backward: right first derivative, no second.

    Caught by: ``gradgradcheck`` (``gradients: order: 2``; the outer loop differentiates through ∇ℓ).
    """
    return _recomputed(momentum_step, S, W, k, v, theta, eta)


# -- forget_step (Eq. 13): (W, S, alpha) -> M_t ---------------------------------------------------------
def forget_after_adding(W: Tensor, S: Tensor, alpha: Tensor) -> Tensor:
    """The forgetting applied after adding the surprise: ``(1 − α)(M + S)`` instead of ``(1 − α) M + S``.

    At α = 1 it forgets the new surprise too. Caught by: ``invariant:full_forgetting`` and ``oracle``
    (ambiguity "Is α_t applied to M_{t−1} only").
    """
    return (1.0 - alpha).reshape(-1, 1, 1) * (W + S)


def forget_alpha_as_retention(W: Tensor, S: Tensor, alpha: Tensor) -> Tensor:
    """α read as the retention (decay) gate: ``α M + S``.

    Caught by: ``oracle`` (``(1 - alpha) * W + S``) and ``invariant:full_forgetting`` (α = 1 keeps M whole).
    """
    return forget_step(W, S, 1.0 - alpha)


def forget_flattened_memory(W: Tensor, S: Tensor, alpha: Tensor) -> Tensor:
    """The memory returned as a flat parameter vector ``[B, Dk·Dv]`` instead of ``[B, Dk, Dv]``.

    Caught by: ``output_contract`` (``outputs: M_t: {shape: [B, Dk, Dv]}``).
    """
    return forget_step(W, S, alpha).flatten(1)  # [B, Dk, Dv] -> [B, Dk * Dv]


def forget_alternating_association(W: Tensor, S: Tensor, alpha: Tensor) -> Tensor:
    """Evaluates ``(1 − α) M + S`` and ``(M − α M) + S`` on alternate calls (two kernels, rounding apart).

    Caught by: ``determinism`` (bitwise equality of two calls).
    """
    if _odd_call():
        return forget_step(W, S, alpha)
    return (W - alpha.reshape(-1, 1, 1) * W) + S


def forget_detached_gate(W: Tensor, S: Tensor, alpha: Tensor) -> Tensor:
    """α detached (the gate treated as a constant): no gradient reaches α.

    Caught by: ``gradient`` (``gradients: wrt: [W, S, alpha]``) and ``gradcheck`` at float64.
    """
    return forget_step(W, S, alpha.detach())


def forget_recomputed_backward(W: Tensor, S: Tensor, alpha: Tensor) -> Tensor:
    """Eq. 13 with a once-differentiable custom backward: the mixed derivative ∂²/∂α∂M = −1 is lost.

    Caught by: ``gradgradcheck``.
    """
    return _recomputed(forget_step, W, S, alpha)


# -- retrieval_linear (Eq. 15): (x, W_Q, W) -> y ---------------------------------------------------------
def retrieve_linear_normalised_queries(x: Tensor, W_Q: Tensor, W: Tensor) -> Tensor:
    """ℓ2-normalised queries (§4.4's architecture choice) before the read: ``normalize(x W_Q) W``.

    Caught by: ``oracle`` (``einsum('btk,bkv->btv', x @ W_Q, W)``).
    """
    return memory_forward(F.normalize(x @ W_Q, dim=-1), (W,))  # [B, T, Dk] @ [B, Dk, Dv] -> [B, T, Dv]


def retrieve_linear_short_conv(x: Tensor, W_Q: Tensor, W: Tensor) -> Tensor:
    """A causal depthwise convolution (kernel 2) on the input before the query projection: q_t from x_t + x_{t−1}.

    Caught by: ``invariant:token_independence`` (each token is retrieved alone).
    """
    shifted = torch.cat((torch.zeros_like(x[:, :1]), x[:, :-1]), 1)  # x_{t-1}, [B, T, D]
    return retrieve_linear(x + shifted, W_Q, W)


def retrieve_linear_column_layout(x: Tensor, W_Q: Tensor, W: Tensor) -> Tensor:
    """The retrieval in the column-vector layout ``[B, Dv, T]`` instead of rows ``[B, T, Dv]``.

    Caught by: ``output_contract`` (``outputs: y: {shape: [B, T, Dv]}``) wherever T ≠ Dv.
    """
    return retrieve_linear(x, W_Q, W).transpose(1, 2)


def retrieve_linear_shuffled_sum(x: Tensor, W_Q: Tensor, W: Tensor) -> Tensor:
    """The read ``q W`` sums over Dk in an order that changes between calls (a non-deterministic reduction).

    Caught by: ``determinism``.
    """
    return _shuffled_matmul(x @ W_Q, W)


def retrieve_linear_detached_memory(x: Tensor, W_Q: Tensor, W: Tensor) -> Tensor:
    """"The forward pass without weight update" taken as no gradient to the memory: ``W`` detached.

    The outer loop then cannot learn M_0. Caught by: ``gradient`` (``wrt: [x, W_Q, W]``) and ``gradcheck``.
    """
    return retrieve_linear(x, W_Q, W.detach())


def retrieve_linear_recomputed_backward(x: Tensor, W_Q: Tensor, W: Tensor) -> Tensor:
    """Eq. 15 with a once-differentiable custom backward. Caught by: ``gradgradcheck``."""
    return _recomputed(retrieve_linear, x, W_Q, W)


# -- retrieval_mlp (Eq. 15, L_M = 2): (x, W_Q, W1, W2) -> y ---------------------------------------------
def retrieve_mlp_tanh_gelu(x: Tensor, W_Q: Tensor, W1: Tensor, W2: Tensor) -> Tensor:
    """The tanh approximation of GELU between the layers instead of the exact (erf) GELU.

    Up to ~1e-3 apart per unit of hidden activation. Caught by: ``oracle`` (``h * Phi(h)``; ambiguity
    "The MLP's activation").
    """
    return _mlp_forward(x @ W_Q, [W1, W2], partial(F.gelu, approximate="tanh"))


def retrieve_mlp_silu(x: Tensor, W_Q: Tensor, W1: Tensor, W2: Tensor) -> Tensor:
    """SiLU between the layers instead of the exact GELU. Caught by: ``oracle``."""
    return _mlp_forward(x @ W_Q, [W1, W2], F.silu)


def retrieve_mlp_short_conv(x: Tensor, W_Q: Tensor, W1: Tensor, W2: Tensor) -> Tensor:
    """A causal depthwise convolution (kernel 2) before the query projection. Caught by: ``invariant:token_independence``."""
    shifted = torch.cat((torch.zeros_like(x[:, :1]), x[:, :-1]), 1)  # x_{t-1}, [B, T, D]
    return retrieve_mlp(x + shifted, W_Q, W1, W2)


def retrieve_mlp_second_layer_dropped(x: Tensor, W_Q: Tensor, W1: Tensor, W2: Tensor) -> Tensor:
    """Returns the hidden layer ``gelu(q W1)`` ``[B, T, H]``: the second layer's read forgotten.

    Caught by: ``output_contract`` (``outputs: y: {shape: [B, T, Dv]}``) wherever H ≠ Dv.
    """
    return F.gelu((x @ W_Q) @ W1)  # [B, T, Dk] @ [B, Dk, H] -> [B, T, H]


def retrieve_mlp_shuffled_sum(x: Tensor, W_Q: Tensor, W1: Tensor, W2: Tensor) -> Tensor:
    """The second layer sums over H in an order that changes between calls. Caught by: ``determinism``."""
    return _shuffled_matmul(F.gelu((x @ W_Q) @ W1), W2)


def retrieve_mlp_detached_first_layer(x: Tensor, W_Q: Tensor, W1: Tensor, W2: Tensor) -> Tensor:
    """``W1`` detached: no gradient reaches the memory's first layer.

    Caught by: ``gradient`` (``wrt: [x, W_Q, W1, W2]``) and ``gradcheck``.
    """
    return retrieve_mlp(x, W_Q, W1.detach(), W2)


def retrieve_mlp_recomputed_backward(x: Tensor, W_Q: Tensor, W1: Tensor, W2: Tensor) -> Tensor:
    """Eq. 15 (MLP) with a once-differentiable custom backward. Caught by: ``gradgradcheck``."""
    return _recomputed(retrieve_mlp, x, W_Q, W1, W2)


# -- memory_linear (Eq. 13–16) and its special cases: (k, v, q, theta, alpha, eta, W, S, A, *, ...) -> (y, W, S, A)
def memory_missing_factor_two(k, v, q, theta, alpha, eta, W, S, A, *, start=0, chunk_size=1, retrieve="before", loss="sum"):
    """Eq. 12's gradient without its factor 2 (as Eq. 17/Appendix C write it): the memory learns at θ/2.

    Caught by: ``oracle`` (titans_reference.py; ambiguity "The gradient of Eq. 12 ... carries a factor 2"),
    in memory_linear and in the special cases plain_gradient_descent and one_chunk_step.
    """
    return memory_linear(k, v, q, theta / 2, alpha, eta, W, S, A, start=start, chunk_size=chunk_size,
                         retrieve=retrieve, loss=loss)


def memory_plus_gradient(k, v, q, theta, alpha, eta, W, S, A, *, start=0, chunk_size=1, retrieve="before", loss="sum"):
    """``S_t = η S + θ ∇ℓ``: gradient ascent (the sign of Eq. 14 flipped).

    Caught by: ``oracle`` in memory_linear and plain_gradient_descent (Eq. 8: ``M_{t−1} − θ ∇ℓ``).
    """
    return memory_linear(k, v, q, -theta, alpha, eta, W, S, A, start=start, chunk_size=chunk_size,
                         retrieve=retrieve, loss=loss)


def memory_forget_after_adding(k, v, q, theta, alpha, eta, W, S, A, *, start=0, chunk_size=1, retrieve="before",
                               loss="sum"):
    """The token loop with Eq. 13 as ``M_t = (1 − α)(M_{t−1} + S_t)``: the forgetting also shrinks the new surprise.

    Caught by: ``oracle`` (memory_linear). Invisible to forgetting_only, where every S_t = 0.
    """
    return _loop_linear(k, v, q, theta, alpha, eta, W, S, A, start=start, chunk_size=chunk_size, retrieve=retrieve,
                        loss=loss, forget_after_adding=True)


def memory_gate_on_gradient(k, v, q, theta, alpha, eta, W, S, A, *, start=0, chunk_size=1, retrieve="before",
                            loss="sum"):
    """The token loop with the momentum gate on the gradient: ``S_t = S_{t−1} − η_t θ_t ∇ℓ``.

    Caught by: ``oracle`` (memory_linear: Eq. 14, ``η_t S_{t−1} − θ_t ∇ℓ``).
    """
    return _loop_linear(k, v, q, theta, alpha, eta, W, S, A, start=start, chunk_size=chunk_size, retrieve=retrieve,
                        loss=loss, gate_on_gradient=True)


def memory_anchor_one_token_late(k, v, q, theta, alpha, eta, W, S, A, *, start=0, chunk_size=1, retrieve="before",
                                 loss="sum"):
    """Eq. 16's t′ = t − mod(t, b) read 0-based: the chunk's gradients at the memory *after* its first token.

    The chunk's first token takes its gradient at M_{t−1}, the rest at the memory after that token, not the
    memory before the chunk. Caught by: ``oracle`` (ambiguity "Eq. 16's chunk start t′"), in memory_linear and
    one_chunk_step (t′ = 0 for every token); the same as the right recurrence at chunk size 1.
    """
    return _loop_linear(k, v, q, theta, alpha, eta, W, S, A, start=start, chunk_size=chunk_size, retrieve=retrieve,
                        loss=loss, anchor_one_token_late=True)


def memory_one_step_per_chunk(k, v, q, theta, alpha, eta, W, S, A, *, start=0, chunk_size=1, retrieve="before",
                              loss="sum"):
    """One momentum and forgetting step per chunk, at its last token, with the chunk's θ-weighted gradient sum at its
    start memory and its mean α, η; a chunk open at the call's end takes no step (titans-pytorch's form).

    Caught by: ``oracle`` in memory_linear (Eq. 13–14 step per token), named by the diagnosis as the reading
    step = chunk; declared (``[step='chunk']``) it is judged against that reading and passes
    (tests/meta_tests/test_spec_claims.py). The same as the right recurrence at chunk size 1.
    """
    return _loop_linear(k, v, q, theta, alpha, eta, W, S, A, start=start, chunk_size=chunk_size, retrieve=retrieve,
                        loss=loss, one_step_per_chunk=True)


def memory_mlp_one_step_per_chunk(k, v, q, theta, alpha, eta, W1, W2, S1, S2, A1, A2, *, start=0, chunk_size=1,
                                  retrieve="before", loss="sum"):
    """:func:`memory_one_step_per_chunk` with the two-layer memory. Caught by: ``oracle`` in memory_mlp, named as
    the reading step = chunk."""
    return _loop_mlp(k, v, q, theta, alpha, eta, W1, W2, S1, S2, A1, A2, start=start, chunk_size=chunk_size,
                     retrieve=retrieve, loss=loss, one_step_per_chunk=True)


def memory_chunk_size_ignored(k, v, q, theta, alpha, eta, W, S, A, *, start=0, chunk_size=1, retrieve="before",
                              loss="sum"):
    """The sequential recurrence whatever the chunk size: every gradient at M_{t−1}, not at the chunk's start.

    Caught by: ``oracle`` in memory_linear (Eq. 16) and one_chunk_step (every gradient at M_0).
    """
    return memory_linear(k, v, q, theta, alpha, eta, W, S, A, start=start, chunk_size=1, retrieve=retrieve, loss=loss)


def memory_chunk_grid_restarts(k, v, q, theta, alpha, eta, W, S, A, *, start=0, chunk_size=1, retrieve="before",
                               loss="sum"):
    """``start`` ignored: the chunk grid restarts at every call, so chunk boundaries move with the call's split.

    Caught by: ``oracle`` (ambiguity "Where does the chunk grid start": at absolute position 0) wherever
    start % chunk_size ≠ 0.
    """
    return memory_linear(k, v, q, theta, alpha, eta, W, S, A, start=0, chunk_size=chunk_size, retrieve=retrieve,
                         loss=loss)


def memory_anchor_ignored(k, v, q, theta, alpha, eta, W, S, A, *, start=0, chunk_size=1, retrieve="before", loss="sum"):
    """The anchor input ignored: a partial first chunk (start % C ≠ 0) takes its gradients at M_0, not at A.

    Caught by: ``oracle`` (the state is (M, S, A); docs/titans.md) wherever the call starts inside a chunk.
    """
    return memory_linear(k, v, q, theta, alpha, eta, W, S, W, start=start, chunk_size=chunk_size, retrieve=retrieve,
                         loss=loss)


def memory_retrieve_swapped(k, v, q, theta, alpha, eta, W, S, A, *, start=0, chunk_size=1, retrieve="before",
                            loss="sum"):
    """Retrieval reads the other memory: M_t when asked for M_{t−1} (``before``) and M_{t−1} when asked ``after``.

    Caught by: ``oracle`` (option ``retrieve``) in memory_linear at both values, and in the special cases
    (retrieval after the update).
    """
    return memory_linear(k, v, q, theta, alpha, eta, W, S, A, start=start, chunk_size=chunk_size,
                         retrieve=_other(retrieve), loss=loss)


def memory_mean_loss(k, v, q, theta, alpha, eta, W, S, A, *, start=0, chunk_size=1, retrieve="before", loss="sum"):
    """Always the MSE (mean over Dv, titans-pytorch's loss), whatever the ``loss`` option says.

    Caught by: ``oracle`` at the default ``loss: sum`` wherever Dv ≥ 2.
    """
    return memory_linear(k, v, q, theta, alpha, eta, W, S, A, start=start, chunk_size=chunk_size, retrieve=retrieve,
                         loss="mean")


def memory_sum_loss(k, v, q, theta, alpha, eta, W, S, A, *, start=0, chunk_size=1, retrieve="before", loss="sum"):
    """Always Eq. 12's sum, whatever the ``loss`` option says. Caught by: ``oracle`` at ``[loss='mean']``, Dv ≥ 2."""
    return memory_linear(k, v, q, theta, alpha, eta, W, S, A, start=start, chunk_size=chunk_size, retrieve=retrieve,
                         loss="sum")


def memory_momentum_start_ignored(k, v, q, theta, alpha, eta, W, S, A, *, start=0, chunk_size=1, retrieve="before",
                                  loss="sum"):
    """S_0 ignored (taken as 0, the usual initialisation): the carried momentum is dropped.

    Caught by: ``oracle`` (ambiguity "M_0 and S_0": both are inputs, drawn).
    """
    return memory_linear(k, v, q, theta, alpha, eta, W, torch.zeros_like(S), A, start=start, chunk_size=chunk_size,
                         retrieve=retrieve, loss=loss)


def memory_alpha_as_retention(k, v, q, theta, alpha, eta, W, S, A, *, start=0, chunk_size=1, retrieve="before",
                              loss="sum"):
    """α read as the retention gate: ``M_t = α M_{t−1} + S_t``.

    Caught by: ``oracle`` in memory_linear and forgetting_only (``M_t = Π (1 − α_i) M_0``).
    """
    return memory_linear(k, v, q, theta, 1.0 - alpha, eta, W, S, A, start=start, chunk_size=chunk_size,
                         retrieve=retrieve, loss=loss)


def memory_reads_final_memory(k, v, q, theta, alpha, eta, W, S, A, *, start=0, chunk_size=1, retrieve="before",
                              loss="sum"):
    """Every token reads the memory left after the *whole* call, ``y_t = q_t M_T``: the future leaks in.

    Caught by: ``invariant:causality`` (future tokens change no earlier retrieval).
    """
    y, W, S, A = memory_linear(k, v, q, theta, alpha, eta, W, S, A, start=start, chunk_size=chunk_size,
                               retrieve=retrieve, loss=loss)
    return q @ W, W, S, A  # [B, T, Dk] @ [B, Dk, Dv] -> [B, T, Dv]


def memory_no_anchor_returned(k, v, q, theta, alpha, eta, W, S, A, *, start=0, chunk_size=1, retrieve="before",
                              loss="sum"):
    """Returns ``(y, W, S)``: the anchor left out of the state, so a stream cannot continue a partial chunk.

    Caught by: ``output_contract`` (``outputs: y, W_T, S_T, A_T``), in memory_linear and the special cases.
    """
    return memory_linear(k, v, q, theta, alpha, eta, W, S, A, start=start, chunk_size=chunk_size, retrieve=retrieve,
                         loss=loss)[:3]


def memory_alternating_method(k, v, q, theta, alpha, eta, W, S, A, *, start=0, chunk_size=1, retrieve="before", loss="sum"):
    """Dispatches alternate calls to the two exact evaluations (factored, per-token): rounding apart.

    Caught by: ``determinism`` (bitwise equality of two calls), in memory_linear and the special cases.
    """
    method = "factored" if _odd_call() else "per_token"
    y, (W,), (S,), (A,) = memory_sequence(k, v, q, theta, alpha, eta, (W,), (S,), (A,), start=start,
                                          chunk_size=chunk_size, retrieve=retrieve, loss=loss, method=method)
    return y, W, S, A


def memory_first_order(k, v, q, theta, alpha, eta, W, S, A, *, start=0, chunk_size=1, retrieve="before", loss="sum"):
    """The token loop with the inner gradient detached (first-order meta-learning): right values, wrong derivatives.

    The outer loop cannot differentiate through ∇ℓ. Caught by: ``gradcheck`` at float64 (``gradients: wrt``).
    """
    return _loop_linear(k, v, q, theta, alpha, eta, W, S, A, start=start, chunk_size=chunk_size, retrieve=retrieve,
                        loss=loss, first_order=True)


def memory_recomputed_backward(k, v, q, theta, alpha, eta, W, S, A, *, start=0, chunk_size=1, retrieve="before",
                               loss="sum"):
    """memory_linear with a once-differentiable custom backward: right first derivatives, no second.

    Caught by: ``gradgradcheck`` (``gradients: order: 2``).
    """
    fn = partial(memory_linear, start=start, chunk_size=chunk_size, retrieve=retrieve, loss=loss)
    return _recomputed(fn, k, v, q, theta, alpha, eta, W, S, A)


# -- memory_mlp (L_M = 2): (k, v, q, theta, alpha, eta, W1, W2, S1, S2, A1, A2, *, ...) -> (y, W1, W2, S1, S2, A1, A2)
def mlp_tanh_gelu(k, v, q, theta, alpha, eta, W1, W2, S1, S2, A1, A2, *, start=0, chunk_size=1, retrieve="before",
                  loss="sum"):
    """The token loop with a tanh-GELU memory (``gelu(approximate='tanh')``) instead of the exact GELU.

    Caught by: ``oracle`` (titans_reference.py; docs/titans.md: "exact (erf) GELU").
    """
    return _loop_mlp(k, v, q, theta, alpha, eta, W1, W2, S1, S2, A1, A2, start=start, chunk_size=chunk_size,
                     retrieve=retrieve, loss=loss, activation=partial(F.gelu, approximate="tanh"))


def mlp_silu(k, v, q, theta, alpha, eta, W1, W2, S1, S2, A1, A2, *, start=0, chunk_size=1, retrieve="before",
             loss="sum"):
    """The token loop with a SiLU memory instead of the exact GELU. Caught by: ``oracle``."""
    return _loop_mlp(k, v, q, theta, alpha, eta, W1, W2, S1, S2, A1, A2, start=start, chunk_size=chunk_size,
                     retrieve=retrieve, loss=loss, activation=F.silu)


def mlp_missing_factor_two(k, v, q, theta, alpha, eta, W1, W2, S1, S2, A1, A2, *, start=0, chunk_size=1,
                           retrieve="before", loss="sum"):
    """Eq. 12's gradient without its factor 2: the memory learns at θ/2. Caught by: ``oracle``."""
    return memory_mlp(k, v, q, theta / 2, alpha, eta, W1, W2, S1, S2, A1, A2, start=start, chunk_size=chunk_size,
                      retrieve=retrieve, loss=loss)


def mlp_anchor_ignored(k, v, q, theta, alpha, eta, W1, W2, S1, S2, A1, A2, *, start=0, chunk_size=1,
                       retrieve="before", loss="sum"):
    """The anchor inputs ignored: a partial first chunk takes its gradients at M_0, not at A.

    Caught by: ``oracle`` wherever start % chunk_size ≠ 0.
    """
    return memory_mlp(k, v, q, theta, alpha, eta, W1, W2, S1, S2, W1, W2, start=start, chunk_size=chunk_size,
                      retrieve=retrieve, loss=loss)


def mlp_chunk_grid_restarts(k, v, q, theta, alpha, eta, W1, W2, S1, S2, A1, A2, *, start=0, chunk_size=1,
                            retrieve="before", loss="sum"):
    """``start`` ignored: the chunk grid restarts at every call. Caught by: ``oracle`` wherever start % C ≠ 0."""
    return memory_mlp(k, v, q, theta, alpha, eta, W1, W2, S1, S2, A1, A2, start=0, chunk_size=chunk_size,
                      retrieve=retrieve, loss=loss)


def mlp_retrieve_swapped(k, v, q, theta, alpha, eta, W1, W2, S1, S2, A1, A2, *, start=0, chunk_size=1,
                         retrieve="before", loss="sum"):
    """Retrieval reads the other memory (M_t for ``before``, M_{t−1} for ``after``). Caught by: ``oracle``."""
    return memory_mlp(k, v, q, theta, alpha, eta, W1, W2, S1, S2, A1, A2, start=start, chunk_size=chunk_size,
                      retrieve=_other(retrieve), loss=loss)


def mlp_momentum_start_ignored(k, v, q, theta, alpha, eta, W1, W2, S1, S2, A1, A2, *, start=0, chunk_size=1,
                               retrieve="before", loss="sum"):
    """S_0 ignored (both layers' momenta taken as 0). Caught by: ``oracle`` (ambiguity "M_0 and S_0")."""
    return memory_mlp(k, v, q, theta, alpha, eta, W1, W2, torch.zeros_like(S1), torch.zeros_like(S2), A1, A2,
                      start=start, chunk_size=chunk_size, retrieve=retrieve, loss=loss)


def mlp_reads_final_memory(k, v, q, theta, alpha, eta, W1, W2, S1, S2, A1, A2, *, start=0, chunk_size=1,
                           retrieve="before", loss="sum"):
    """Every token reads the memory left after the whole call. Caught by: ``invariant:causality``."""
    out = memory_mlp(k, v, q, theta, alpha, eta, W1, W2, S1, S2, A1, A2, start=start, chunk_size=chunk_size,
                     retrieve=retrieve, loss=loss)
    return (memory_forward(q, out[1:3]), *out[1:])  # gelu(q W1_T) W2_T, [B, T, Dv]


def mlp_no_anchor_returned(k, v, q, theta, alpha, eta, W1, W2, S1, S2, A1, A2, *, start=0, chunk_size=1,
                           retrieve="before", loss="sum"):
    """Returns ``(y, W1, W2, S1, S2)``: the anchors left out of the state. Caught by: ``output_contract``."""
    return memory_mlp(k, v, q, theta, alpha, eta, W1, W2, S1, S2, A1, A2, start=start, chunk_size=chunk_size,
                      retrieve=retrieve, loss=loss)[:5]


def mlp_alternating_method(k, v, q, theta, alpha, eta, W1, W2, S1, S2, A1, A2, *, start=0, chunk_size=1,
                      retrieve="before", loss="sum"):
    """Dispatches alternate calls to the factored and the per-token evaluation. Caught by: ``determinism``."""
    method = "factored" if _odd_call() else "per_token"
    y, (W1, W2), (S1, S2), (A1, A2) = memory_sequence(k, v, q, theta, alpha, eta, (W1, W2), (S1, S2), (A1, A2),
                                                      start=start, chunk_size=chunk_size, retrieve=retrieve, loss=loss,
                                                      method=method)
    return y, W1, W2, S1, S2, A1, A2


def mlp_first_order(k, v, q, theta, alpha, eta, W1, W2, S1, S2, A1, A2, *, start=0, chunk_size=1,
                    retrieve="before", loss="sum"):
    """The token loop with the inner gradient detached (first-order). Caught by: ``gradcheck`` at float64."""
    return _loop_mlp(k, v, q, theta, alpha, eta, W1, W2, S1, S2, A1, A2, start=start, chunk_size=chunk_size,
                     retrieve=retrieve, loss=loss, first_order=True)


def mlp_recomputed_backward(k, v, q, theta, alpha, eta, W1, W2, S1, S2, A1, A2, *, start=0, chunk_size=1,
                            retrieve="before", loss="sum"):
    """memory_mlp with a once-differentiable custom backward. Caught by: ``gradgradcheck``."""
    fn = partial(memory_mlp, start=start, chunk_size=chunk_size, retrieve=retrieve, loss=loss)
    return _recomputed(fn, k, v, q, theta, alpha, eta, W1, W2, S1, S2, A1, A2)


# -- linear_matmul_form (Eq. 17): (k, v, W, theta, alpha) -> G -----------------------------------------
def _ratio(alpha: Tensor) -> Tensor:
    """The right β_b/β_i = Π_{i<j≤b} (1 − α_j), ``[B, b]`` (a reversed cumulative product, as the shipped one)."""
    keep = 1.0 - alpha
    later = torch.cat((keep[:, 1:], keep.new_ones(keep.shape[0], 1)), 1)  # (1 − α_{i+1}), last 1, [B, b]
    return later.flip(1).cumprod(1).flip(1)


def _weighted_sum(k: Tensor, v: Tensor, W: Tensor, weight: Tensor) -> Tensor:
    """``2 Kᵀ diag(weight) (K W − V)``: ``[B, b, Dk], [B, b, Dv], [B, Dk, Dv], [B, b] -> [B, Dk, Dv]``."""
    return 2.0 * k.transpose(1, 2) @ (weight.unsqueeze(-1) * (k @ W - v))


def matmul_missing_factor_two(k: Tensor, v: Tensor, W: Tensor, theta: Tensor, alpha: Tensor) -> Tensor:
    """Eq. 17 as printed: ``Kᵀ Θ B (K W − V)`` without the factor 2 of ∇‖kW − v‖².

    Caught by: ``oracle`` (ambiguity "Eq. 17 and Appendix C drop the factor 2").
    """
    return chunk_gradient_sum(k, v, W, theta / 2, alpha)


def matmul_ratio_inclusive(k: Tensor, v: Tensor, W: Tensor, theta: Tensor, alpha: Tensor) -> Tensor:
    """The decay off by one: Π_{i≤j≤b} (1 − α_j), token i's own forgetting included.

    Caught by: ``oracle`` (``β_b/β_i = Π_{i<j≤b}``).
    """
    return _weighted_sum(k, v, W, theta * (1.0 - alpha) * _ratio(alpha))


def matmul_ratio_by_division(k: Tensor, v: Tensor, W: Tensor, theta: Tensor, alpha: Tensor) -> Tensor:
    """β_b/β_i computed as the quotient of cumulative products, Eq. 17's notation taken literally: 0/0 = NaN
    wherever some α_j = 1 (full forgetting), though right everywhere else.

    Caught by: ``invariant:full_forgetting`` (ambiguity "β_b/β_i ... divides by zero at α_j = 1").
    """
    beta = torch.cumprod(1.0 - alpha, 1)  # β_i, [B, b]
    return _weighted_sum(k, v, W, theta * beta[:, -1:] / beta)


def matmul_ratio_not_reversed(k: Tensor, v: Tensor, W: Tensor, theta: Tensor, alpha: Tensor) -> Tensor:
    """The decay weights β_i (a forward cumulative product, the flip forgotten) instead of β_b/β_i.

    Caught by: ``oracle``.
    """
    return _weighted_sum(k, v, W, theta * (1.0 - alpha).cumprod(1))


def matmul_normalised_theta(k: Tensor, v: Tensor, W: Tensor, theta: Tensor, alpha: Tensor) -> Tensor:
    """θ normalised over the chunk (``θ_i / Σ θ``, a "learning-rate schedule" per chunk): degree 0 in θ.

    Caught by: ``invariant:linearity_in_theta`` (degree 1) — and the oracle.
    """
    return chunk_gradient_sum(k, v, W, theta / theta.sum(1, keepdim=True), alpha)


def matmul_per_token_gradients(k: Tensor, v: Tensor, W: Tensor, theta: Tensor, alpha: Tensor) -> Tensor:
    """The weighted per-token gradients ``[B, b, Dk, Dv]``, the sum over the chunk forgotten.

    Caught by: ``output_contract`` (``outputs: G: {shape: [B, Dk, Dv]}``).
    """
    weight = (theta * _ratio(alpha)).reshape(*theta.shape, 1, 1)  # [B, b, 1, 1]
    return weight * 2.0 * torch.einsum("bik,biv->bikv", k, k @ W - v)  # [B, b, Dk, Dv]


def matmul_shuffled_tokens(k: Tensor, v: Tensor, W: Tensor, theta: Tensor, alpha: Tensor) -> Tensor:
    """The chunk's sum over tokens taken in an order that changes between calls (a non-deterministic reduction).

    Caught by: ``determinism``.
    """
    weighted = (2.0 * theta * _ratio(alpha)).unsqueeze(-1) * (k @ W - v)  # [B, b, Dv]
    return _shuffled_matmul(k.transpose(1, 2), weighted)  # Σ_i over b, order changing between calls, [B, Dk, Dv]


def matmul_detached_ratio(k: Tensor, v: Tensor, W: Tensor, theta: Tensor, alpha: Tensor) -> Tensor:
    """The decay weights β_b/β_i detached: no gradient reaches α. Caught by: ``gradcheck`` at float64."""
    return _weighted_sum(k, v, W, theta * _ratio(alpha).detach())


def matmul_recomputed_backward(k: Tensor, v: Tensor, W: Tensor, theta: Tensor, alpha: Tensor) -> Tensor:
    """Eq. 17 with a once-differentiable custom backward. Caught by: ``gradgradcheck``."""
    return _recomputed(chunk_gradient_sum, k, v, W, theta, alpha)


# -- momentum_scan (Eq. 18): (eta, theta, u, S) -> S_t [B, T, N] -----------------------------------------
def scan_plus_surprise(eta: Tensor, theta: Tensor, u: Tensor, S: Tensor) -> Tensor:
    """``S_t = η_t S_{t−1} + θ_t u_t``: the sign of Eq. 18 flipped. Caught by: ``oracle``."""
    return momentum_scan(eta, -theta, u, S)


def scan_drops_initial_state(eta: Tensor, theta: Tensor, u: Tensor, S: Tensor) -> Tensor:
    """The scan started from zero: the carried momentum S_0 (the previous chunk's last) dropped.

    Caught by: ``oracle`` (ambiguity "Is the scan over the chunk only or carried across chunks?").
    """
    return linear_scan(eta, -theta.unsqueeze(-1) * u)


def scan_gate_on_surprise(eta: Tensor, theta: Tensor, u: Tensor, S: Tensor) -> Tensor:
    """The momentum gate on the momentary surprise instead of the past one: ``S_t = S_{t−1} − η_t θ_t u_t``.

    Caught by: ``oracle``.
    """
    return momentum_scan(torch.ones_like(eta), eta * theta, u, S)


def scan_reversed(eta: Tensor, theta: Tensor, u: Tensor, S: Tensor) -> Tensor:
    """The scan run from the last token to the first (a reverse cumulative sum): non-causal.

    Caught by: ``invariant:causality`` (a momentum depends on no later token).
    """
    return momentum_scan(eta.flip(1), theta.flip(1), u.flip(1), S).flip(1)


def scan_clipped_surprise(eta: Tensor, theta: Tensor, u: Tensor, S: Tensor) -> Tensor:
    """The momentary surprise clipped to norm ≤ 1 per token (gradient clipping): no longer linear in u.

    Caught by: ``invariant:linearity`` (the scan is linear in (u, S_0)) — and the oracle.
    """
    norm = u.norm(dim=-1, keepdim=True)  # [B, T, 1]
    return momentum_scan(eta, theta, u / norm.clamp(min=1.0), S)


def scan_last_state_only(eta: Tensor, theta: Tensor, u: Tensor, S: Tensor) -> Tensor:
    """Returns only the last momentum S_T ``[B, N]``, not every S_t ``[B, T, N]``.

    Caught by: ``output_contract`` (``outputs: S_t: {shape: [B, T, N]}``).
    """
    return momentum_scan(eta, theta, u, S)[:, -1]


def scan_alternating_order(eta: Tensor, theta: Tensor, u: Tensor, S: Tensor) -> Tensor:
    """Dispatches alternate calls to the associative scan and a sequential loop: exact both, rounding apart.

    Caught by: ``determinism``.
    """
    if _odd_call():
        return momentum_scan(eta, theta, u, S)
    states, s = [], S
    for t in range(u.shape[1]):
        s = eta[:, t : t + 1] * s - theta[:, t : t + 1] * u[:, t]  # [B, N]
        states.append(s)
    return torch.stack(states, 1)  # [B, T, N]


def scan_detached_eta(eta: Tensor, theta: Tensor, u: Tensor, S: Tensor) -> Tensor:
    """η detached (the momentum decay treated as a constant): no gradient reaches η. Caught by: ``gradcheck``."""
    return momentum_scan(eta.detach(), theta, u, S)


def scan_recomputed_backward(eta: Tensor, theta: Tensor, u: Tensor, S: Tensor) -> Tensor:
    """Eq. 18 with a once-differentiable custom backward. Caught by: ``gradgradcheck``."""
    return _recomputed(momentum_scan, eta, theta, u, S)


# -- memory_linear_chunk_gates (Eq. 16, gates per chunk): (k, v, q, theta, alpha, eta, W, S, *, chunk_size, ...)
def _per_token(chunk_size: int, *gates: Tensor) -> list[Tensor]:
    return [g.repeat_interleave(chunk_size, dim=1) for g in gates]  # [B, N] -> [B, N·C]


def chunk_gates_one_step_per_chunk(k, v, q, theta, alpha, eta, W, S, *, chunk_size, retrieve="before", loss="sum"):
    """One momentum and one forgetting step per chunk, with the chunk's summed θ-weighted gradient (the
    per-chunk recurrence titans-pytorch runs), instead of a step per token with the chunk's gates.

    Caught by: ``oracle`` (ambiguity "Does each token still step S and M, or does the chunk step once?").
    """
    batch, chunks = theta.shape
    ys, W_t, S_t = [], W, S
    for n in range(chunks):
        sl = slice(n * chunk_size, (n + 1) * chunk_size)
        g = chunk_gradient_sum(k[:, sl], v[:, sl], W_t, theta[:, n : n + 1].expand(batch, chunk_size),
                               torch.zeros_like(theta[:, :1]).expand(batch, chunk_size), loss)
        before = W_t
        S_t = eta[:, n, None, None] * S_t - g
        W_t = (1 - alpha[:, n, None, None]) * W_t + S_t
        ys.append(q[:, sl] @ (before if retrieve == "before" else W_t))
    return torch.cat(ys, 1), W_t, S_t


def chunk_gates_shifted(k, v, q, theta, alpha, eta, W, S, *, chunk_size, retrieve="before", loss="sum"):
    """Each chunk reads the next chunk's gates (the last chunk its own): an off-by-one in the gate index.

    Caught by: ``oracle``.
    """
    shifted = [torch.cat((g[:, 1:], g[:, -1:]), 1) for g in (theta, alpha, eta)]
    y, W, S, _ = memory_linear(k, v, q, *_per_token(chunk_size, *shifted), W, S, W, chunk_size=chunk_size,
                               retrieve=retrieve, loss=loss)
    return y, W, S


def chunk_gates_plus_gradient(k, v, q, theta, alpha, eta, W, S, *, chunk_size, retrieve="before", loss="sum"):
    """+θ∇: the inner step climbs the loss. Caught by: ``oracle``."""
    y, W, S, _ = memory_linear(k, v, q, *_per_token(chunk_size, -theta, alpha, eta), W, S, W, chunk_size=chunk_size,
                               retrieve=retrieve, loss=loss)
    return y, W, S


def chunk_gates_reads_final_memory(k, v, q, theta, alpha, eta, W, S, *, chunk_size, retrieve="before", loss="sum"):
    """Every token retrieves from the memory after the whole sequence: the future leaks into y.

    Caught by: ``invariant:causality``.
    """
    _, W_T, S_T, _ = memory_linear(k, v, q, *_per_token(chunk_size, theta, alpha, eta), W, S, W, chunk_size=chunk_size,
                                   retrieve=retrieve, loss=loss)
    return q @ W_T, W_T, S_T


def chunk_gates_no_momentum_returned(k, v, q, theta, alpha, eta, W, S, *, chunk_size, retrieve="before", loss="sum"):
    """Returns (y, W_T) only: the momentum a next call needs is lost. Caught by: ``output_contract``."""
    y, W, _, _ = memory_linear(k, v, q, *_per_token(chunk_size, theta, alpha, eta), W, S, W, chunk_size=chunk_size,
                               retrieve=retrieve, loss=loss)
    return y, W


def chunk_gates_alternating_method(k, v, q, theta, alpha, eta, W, S, *, chunk_size, retrieve="before", loss="sum"):
    """Alternate calls take the factored and the per-token evaluation: rounding apart. Caught by: ``determinism``."""
    y, (W,), (S,), _ = memory_sequence(k, v, q, *_per_token(chunk_size, theta, alpha, eta), (W,), (S,), (W,), start=0,
                                       chunk_size=chunk_size, retrieve=retrieve, loss=loss,
                                       method="factored" if _odd_call() else "per_token")
    return y, W, S


def chunk_gates_detached_gates(k, v, q, theta, alpha, eta, W, S, *, chunk_size, retrieve="before", loss="sum"):
    """The gates detached (treated as constants): no gradient reaches θ, α, η. Caught by: ``gradcheck``."""
    gates = _per_token(chunk_size, theta.detach(), alpha.detach(), eta.detach())
    y, W, S, _ = memory_linear(k, v, q, *gates, W, S, W, chunk_size=chunk_size, retrieve=retrieve, loss=loss)
    return y, W, S


def chunk_gates_recomputed_backward(k, v, q, theta, alpha, eta, W, S, *, chunk_size, retrieve="before", loss="sum"):
    """A once-differentiable custom backward: right first derivatives, no second. Caught by: ``gradgradcheck``."""
    from implementations.titans import memory_linear_chunk_gates

    fn = partial(memory_linear_chunk_gates, chunk_size=chunk_size, retrieve=retrieve, loss=loss)
    return _recomputed(fn, k, v, q, theta, alpha, eta, W, S)


# -- NeuralMemory (the module; spec neural_memory): subclasses, each changing one method ---------------------
from implementations.titans import NeuralMemory, NeuralMemoryState  # noqa: E402


class ModuleSharedMemory(NeuralMemory):
    """Every head starts from head 0's M_0 (a memory tied across heads). Caught by: ``oracle``."""

    def initial_state(self, batch: int) -> NeuralMemoryState:
        state = super().initial_state(batch)
        tied = tuple(w.reshape(batch, self.heads, *w.shape[1:])[:, :1].expand(batch, self.heads, *w.shape[1:])
                     .reshape(w.shape) for w in state.weights)  # [B·H, d, d] -> [B, H, d, d]: head 0 everywhere
        return NeuralMemoryState(tied, state.momentum, tied, state.start)


class ModuleNoHeadMixing(NeuralMemory):
    """The heads' retrievals concatenated without W_O (combine_heads forgotten). Caught by: ``oracle``."""

    def _unfold(self, y: Tensor, batch: int) -> Tensor:
        steps, d = y.shape[1], self.dim_head
        # [B·H, T, d] -> [B, H, T, d] -> [B, T, H, d] -> [B, T, H·d]
        return y.reshape(batch, self.heads, steps, d).transpose(1, 2).reshape(batch, steps, self.heads * d)


class ModuleKeysAsValues(NeuralMemory):
    """Values projected with W_K: one projection reused for both (Eq. 11's W_V dropped). Caught by: ``oracle``."""

    def forward(self, x, theta=None, alpha=None, eta=None, state=None, return_state=True):
        batch = x.shape[0]
        state = self.initial_state(batch) if state is None else state
        k, q = self._fold(self.to_k(x)), self._fold(self.to_q(x))  # [B·H, T, d]
        gates = [self._gate(name, given, x) for name, given in (("theta", theta), ("alpha", alpha), ("eta", eta))]
        y, *_ = memory_sequence(k, k, q, *gates, state.weights, state.momentum, state.anchor, start=state.start,
                                chunk_size=self.chunk_size, retrieve=self.retrieve_mode, loss=self.loss)
        return self._unfold(y, batch)


class ModuleFutureGates(NeuralMemory):
    """Token t steps with token t+1's gates: the future leaks into earlier outputs. Caught by: ``invariant:causality``
    (and the oracle)."""

    def forward(self, x, theta=None, alpha=None, eta=None, state=None, return_state=True):
        shifted = [torch.cat((g[:, 1:], g[:, -1:]), 1) for g in (theta, alpha, eta)]
        return super().forward(x, *shifted, state=state, return_state=return_state)


class ModuleAlternatingMethod(NeuralMemory):
    """Alternate calls take the factored and the per-token evaluation: rounding apart. Caught by: ``determinism``."""

    def forward(self, x, theta=None, alpha=None, eta=None, state=None, return_state=True):
        self.method = "factored" if _odd_call() else "per_token"
        return super().forward(x, theta, alpha, eta, state=state, return_state=return_state)


class ModuleRecomputedBackward(NeuralMemory):
    """The depth-1 module's computation behind a once-differentiable custom backward: right first derivatives,
    no second. Caught by: ``gradgradcheck``."""

    def forward(self, x, theta=None, alpha=None, eta=None, state=None, return_state=True):
        d = self.dim_head

        def fn(x_, th, al, et, Wk, Wv, Wq, Wo, M0):
            batch = x_.shape[0]
            k, v, q = (self._fold(x_ @ w.T) for w in (Wk, Wv, Wq))  # [B·H, T, d]
            gates = [self._gate(n, g, x_) for n, g in (("theta", th), ("alpha", al), ("eta", et))]
            m0 = M0.unsqueeze(0).expand(batch, *M0.shape).reshape(batch * self.heads, d, d)  # [H, d, d] -> [B·H, d, d]
            y, *_ = memory_sequence(k, v, q, *gates, (m0,), (torch.zeros_like(m0),), (m0,), start=0,
                                    chunk_size=self.chunk_size, retrieve=self.retrieve_mode, loss=self.loss)
            steps = y.shape[1]
            # [B·H, T, d] -> [B, H, T, d] -> [B, T, H, d] -> [B, T, H·d]
            return y.reshape(batch, self.heads, steps, d).transpose(1, 2).reshape(batch, steps, self.heads * d) @ Wo.T

        weights = (self.to_k.weight, self.to_v.weight, self.to_q.weight, self.to_out.weight, self.initial[0])
        return _recomputed(fn, x, theta, alpha, eta, *weights)


class ModuleHeadsNotUnfolded(NeuralMemory):
    """Returns the heads still folded into the batch, ``[B·H, T, d]`` instead of ``[B, T, H·d]``. Caught by:
    ``output_contract``."""

    def _unfold(self, y: Tensor, batch: int) -> Tensor:
        return y


class ModuleDetachedGates(NeuralMemory):
    """The gates detached (treated as constants): the outer loss cannot train what produces them. Caught by:
    ``gradcheck``."""

    def forward(self, x, theta=None, alpha=None, eta=None, state=None, return_state=True):
        gates = [g.detach() for g in (theta, alpha, eta)]
        return super().forward(x, *gates, state=state, return_state=return_state)


def memory_first_row_for_all(k, v, q, theta, alpha, eta, W, S, A, *, start=0, chunk_size=1, retrieve="before", loss="sum"):
    """Every batch row starts from batch row 0's memory, momentum and anchor (a state broadcast from one row,
    as from a shared ``M_0`` parameter, applied to a batch of carried states).

    Caught by: ``invariant:batch_independence`` (and the oracle).
    """
    first = [x[:1].expand_as(x) for x in (W, S, A)]
    return memory_linear(k, v, q, theta, alpha, eta, *first, start=start, chunk_size=chunk_size, retrieve=retrieve, loss=loss)
