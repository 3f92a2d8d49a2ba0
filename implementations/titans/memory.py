"""The memory M of Titans (arXiv 2501.00663): forward, the per-token loss of Eq. 12 and its gradient, closed form.

Row vectors (docs/titans.md): ``M(k) = k @ W`` for the linear memory (depth 1); depth L ≥ 2 is the MLP
``h = k @ W1; for W in (W2, …, W_L): h = gelu(h) @ W`` with the exact (erf) GELU and no biases.

The gradient ``∇_W ℓ(W; k_t, v_t)`` of each token is written out by hand (backpropagation through the layers),
so no ``torch.func`` is needed and every term is an ordinary differentiable torch op — GELU's derivative
included, ``Φ(x) + x φ(x)`` with erf and exp — so the outer loop can differentiate through the inner gradient
(twice differentiable). For a token, layer l's gradient is the outer product ``a_{l−1}^T δ_l`` of the layer's
input row and its back-propagated error row; ``gradient_factors`` returns those two rows, ``token_gradients`` the
products.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor

LOSSES = ("sum", "mean")


def gelu(x: Tensor) -> Tensor:
    """The exact GELU ``x Φ(x)``, ``Φ(x) = ½[1 + erf(x/√2)]``.

    >>> gelu(torch.tensor([0.0, 1.0], dtype=torch.float64))
    tensor([0.0000, 0.8413], dtype=torch.float64)
    """
    return F.gelu(x)


def gelu_derivative(x: Tensor) -> Tensor:
    """``d/dx [x Φ(x)] = Φ(x) + x φ(x)`` with ``φ(x) = exp(−x²/2)/√(2π)``, from differentiable ops.

    >>> float(gelu_derivative(torch.tensor(0.0)))
    0.5
    """
    cdf = 0.5 * (1.0 + torch.erf(x * (1.0 / math.sqrt(2.0))))
    pdf = torch.exp(-0.5 * x * x) * (1.0 / math.sqrt(2.0 * math.pi))
    return cdf + x * pdf


def loss_scale(loss: str, dim_v: int) -> float:
    """The factor of Eq. 12's sum: 1 (``sum``) or ``1/Dv`` (``mean``)."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    return 1.0 if loss == "sum" else 1.0 / dim_v


def memory_forward(x: Tensor, weights: tuple[Tensor, ...]) -> Tensor:
    """``M(x)``: ``x [..., n, d_in]`` with weights ``[..., d_in, d_out]`` per layer (batch dims broadcast).

    Depth 1 is ``x @ W``; depth ≥ 2 puts an exact GELU between layers.

    >>> memory_forward(torch.ones(1, 2, 3), (torch.ones(1, 3, 4),)).shape
    torch.Size([1, 2, 4])
    """
    h = x @ weights[0]
    for w in weights[1:]:
        h = gelu(h) @ w
    return h


def token_loss(weights: tuple[Tensor, ...], k: Tensor, v: Tensor, loss: str = "sum") -> Tensor:
    """Eq. 12 per token: ``ℓ(W; k_t, v_t) = Σ_j (M(k_t)_j − v_t,j)²`` (``sum``) or that over ``Dv`` (``mean``).

    ``k [B, n, Dk]``, ``v [B, n, Dv]``, weights ``[B, d_in, d_out]`` -> ``[B, n]``.
    """
    scale = loss_scale(loss, v.shape[-1])
    return scale * (memory_forward(k, weights) - v).pow(2).sum(-1)


def gradient_factors(weights: tuple[Tensor, ...], k: Tensor, v: Tensor, loss: str = "sum") -> list[tuple[Tensor, Tensor]]:
    """Per token and layer, the rows ``(a_{l−1}, δ_l)`` with ``∇_{W_l} ℓ(W; k_t, v_t) = a_{l−1}^T δ_l``.

    ``k [B, n, Dk]``, ``v [B, n, Dv]``, weights ``[B, d_in, d_out]`` (the same weights for every token) ->
    per layer ``(left [B, n, d_in], right [B, n, d_out])``. Backpropagation of Eq. 12: ``δ_L = 2c (M(k) − v)``
    (c = 1 or 1/Dv), ``δ_l = (δ_{l+1} W_{l+1}^T) ⊙ gelu'(h_l)``, with ``a_0 = k``, ``a_l = gelu(h_l)``.
    """
    scale = loss_scale(loss, v.shape[-1])
    pre: list[Tensor] = []  # h_l = a_{l-1} @ W_l, [B, n, d_out]
    inputs: list[Tensor] = [k]  # a_{l-1}, [B, n, d_in]
    h = k @ weights[0]
    pre.append(h)
    for w in weights[1:]:
        a = gelu(h)
        inputs.append(a)
        h = a @ w
        pre.append(h)
    delta = (2.0 * scale) * (h - v)  # δ_L, [B, n, Dv]
    factors: list[tuple[Tensor, Tensor]] = [(inputs[-1], delta)]
    for layer in range(len(weights) - 2, -1, -1):
        delta = (delta @ weights[layer + 1].transpose(-1, -2)) * gelu_derivative(pre[layer])  # δ_l, [B, n, d_out_l]
        factors.append((inputs[layer], delta))
    factors.reverse()
    return factors


def token_gradients(weights: tuple[Tensor, ...], k: Tensor, v: Tensor, loss: str = "sum") -> tuple[Tensor, ...]:
    """Per-token gradients ``∇_{W_l} ℓ(W; k_t, v_t)`` at the given weights: ``[B, n, d_in, d_out]`` per layer.

    >>> w = (torch.eye(2).unsqueeze(0),)
    >>> token_gradients(w, torch.tensor([[[1.0, 0.0]]]), torch.zeros(1, 1, 2))[0]
    tensor([[[[2., 0.],
              [0., 0.]]]])
    """
    return tuple(torch.einsum("bni,bnj->bnij", left, right) for left, right in gradient_factors(weights, k, v, loss))
