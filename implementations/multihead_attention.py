"""Multi-head attention, Attention Is All You Need §3.2.2.

MultiHead(Q, K, V) = Concat(head_1, …, head_h) W^O with head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)
(Eq. 1 for Attention), here as self-attention on x. The implementation guide's module template,
with its defects fixed: the LayerNorm it created but never used (a parameter that never receives
a gradient) is gone, argument checks raise ``ValueError`` instead of ``assert`` (which ``python -O``
strips), and the softmax runs in float32 for half-precision inputs through
``F.scaled_dot_product_attention``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class PaperModule(nn.Module):
    """Multi-head self-attention with the paper's projections W^Q, W^K, W^V, W^O (no biases).

    Args:
        d_model: model dimension (d_model in the paper), divisible by ``n_heads``.
        n_heads: number of heads (h); each has d_k = d_v = d_model / h.
        dropout: dropout on the attention weights, active in training mode only (§5.4).

    Input: x (B, L, d_model); mask broadcastable to (B, H, L, L) or (L, L), ``mask == 0`` = masked
    (the guide's convention). Output: (B, L, d_model). A fully masked row has no defined value.

    >>> import torch
    >>> module = PaperModule(d_model=16, n_heads=4).eval()
    >>> module(torch.randn(2, 5, 16)).shape
    torch.Size([2, 5, 16])
    """

    def __init__(self, d_model: int, n_heads: int = 8, dropout: float = 0.1) -> None:
        super().__init__()
        if d_model <= 0 or n_heads <= 0 or d_model % n_heads != 0:
            raise ValueError(f"d_model ({d_model}) must be a positive multiple of n_heads ({n_heads})")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.d_model, self.n_heads, self.d_head = d_model, n_heads, d_model // n_heads
        self.W_q = nn.Linear(d_model, d_model, bias=False)
        self.W_k = nn.Linear(d_model, d_model, bias=False)
        self.W_v = nn.Linear(d_model, d_model, bias=False)
        self.W_o = nn.Linear(d_model, d_model, bias=False)
        self.dropout = nn.Dropout(dropout)
        for linear in (self.W_q, self.W_k, self.W_v, self.W_o):
            nn.init.xavier_uniform_(linear.weight)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        B, L, D = x.shape
        if D != self.d_model:
            raise ValueError(f"expected last dimension {self.d_model}, got {D}")
        q = self.W_q(x).view(B, L, self.n_heads, self.d_head).transpose(1, 2)  # (B, H, L, Dh)
        k = self.W_k(x).view(B, L, self.n_heads, self.d_head).transpose(1, 2)  # (B, H, L, Dh)
        v = self.W_v(x).view(B, L, self.n_heads, self.d_head).transpose(1, 2)  # (B, H, L, Dh)
        allowed = None if mask is None else mask != 0  # the guide's convention: 0 = masked
        p = self.dropout.p if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p)  # (B, H, L, Dh)
        out = out.transpose(1, 2).reshape(B, L, D)  # (B, L, H·Dh)
        return self.W_o(out)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, n_heads={self.n_heads}, dropout={self.dropout.p}"
