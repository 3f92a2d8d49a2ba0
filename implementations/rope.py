"""Rotary position embedding, RoFormer (Su et al. 2021, arXiv 2104.09864), Eq. 15 and Eq. 34.

    theta_i = base^(-2(i-1)/d),  i = 1..d/2                        (Eq. 15)
    R_m x: each pair (x_a, x_b) rotated by the angle m * theta_i   (Eq. 34)

``RotaryEmbedding`` builds the table cos(m theta_i), sin(m theta_i); ``apply_rotary_emb`` rotates
pairs (i, i + d/2) ("rotate half", GPT-NeoX / LLaMA-HF and the implementation guide);
``apply_rotary_emb_interleaved`` rotates pairs (2i, 2i+1) as Eq. 34 writes it. The two layouts
are the same rotation up to a fixed permutation of the features of q and k.
"""

import operator

import torch
from torch import Tensor, nn


class RotaryEmbedding(nn.Module):
    """The table of Eq. 15: ``forward(x, seq_len)`` returns cos and sin of m·θ_i, each (seq_len, dim/2).

    The table is computed once in float64 and rounded once to ``x``'s dtype on ``x``'s device (then
    cached per dtype and device), so every dtype gets its own precision: at m = 4096 the angle m·θ_1
    in float32 is already off by ~2e-4 rad. It is kept out of the module's buffers on purpose:
    ``module.half()`` would round θ (and the table) to float16 and move positions near 4096 by
    radians. ``seq_len`` beyond ``max_seq_len`` is an error (the guide silently returned fewer rows).

    >>> rope = RotaryEmbedding(dim=4, max_seq_len=8)
    >>> cos, sin = rope(torch.zeros(1, dtype=torch.float32), 3)
    >>> cos.shape, cos.dtype, cos[0].tolist(), sin[0].tolist()
    (torch.Size([3, 2]), torch.float32, [1.0, 1.0], [0.0, 0.0])
    """

    def __init__(self, dim: int, max_seq_len: int = 4096, base: float = 10000) -> None:
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0 or dim % 2:
            raise ValueError(f"dim must be a positive even int, got {dim}")
        if isinstance(max_seq_len, bool) or not isinstance(max_seq_len, int) or max_seq_len <= 0:
            raise ValueError(f"max_seq_len must be a positive int, got {max_seq_len}")
        if isinstance(base, bool) or not base > 1:
            raise ValueError(f"base must be a number > 1, got {base}")
        self.dim, self.max_seq_len, self.base = dim, max_seq_len, base
        exponent = torch.arange(0, dim, 2, dtype=torch.float64) / dim  # 2(i-1)/d, i = 1..d/2
        inv_freq = torch.tensor(float(base), dtype=torch.float64) ** -exponent  # θ_i, (dim/2,)
        angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float64), inv_freq)  # m·θ_i, (max_seq_len, dim/2)
        self._cos64, self._sin64 = angles.cos(), angles.sin()
        self._tables: dict[tuple[torch.device, torch.dtype], tuple[Tensor, Tensor]] = {}

    def forward(self, x: Tensor, seq_len: int) -> tuple[Tensor, Tensor]:
        """``x``: any tensor, only its dtype and device are used → (cos, sin), each (seq_len, dim/2)."""
        seq_len = operator.index(seq_len)
        if not 0 <= seq_len <= self.max_seq_len:
            raise ValueError(
                f"seq_len {seq_len} is outside the table: positions 0..{self.max_seq_len - 1} "
                f"(max_seq_len {self.max_seq_len}); build RotaryEmbedding with a larger max_seq_len"
            )
        cos, sin = self._table(x.device, x.dtype)
        return cos[:seq_len], sin[:seq_len]

    def _table(self, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        key = (device, dtype)
        if key not in self._tables:  # rounded once from float64
            self._tables[key] = (self._cos64.to(device=device, dtype=dtype), self._sin64.to(device=device, dtype=dtype))
        return self._tables[key]

    def extra_repr(self) -> str:
        return f"dim={self.dim}, max_seq_len={self.max_seq_len}, base={self.base}"


def apply_rotary_emb(x: Tensor, cos: Tensor, sin: Tensor, *, interleaved: bool = False) -> Tensor:
    """Rotate ``x`` (B, H, L, D) by the table ``cos``, ``sin`` (L, D/2): R_m x of Eq. 34.

    Pairs (i, i + D/2) by default (rotate-half); ``interleaved`` pairs (2i, 2i+1) as Eq. 34 does.
    The result has ``x``'s dtype (the tables are cast to it).

    >>> x = torch.tensor([[[[1.0, 0.0, 0.0, 0.0]]]])  # (B, H, L, D) = (1, 1, 1, 4)
    >>> cos, sin = torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 0.0]])  # pair 0 turned by 90°, pair 1 by 0
    >>> apply_rotary_emb(x, cos, sin).tolist()  # pairs (x_0, x_2), (x_1, x_3)
    [[[[0.0, 0.0, 1.0, 0.0]]]]
    """
    if x.size(-1) % 2 or cos.shape != sin.shape or 2 * cos.size(-1) != x.size(-1):
        raise ValueError(
            f"expected x (..., L, D) with D even and cos, sin (L, D/2); got {tuple(x.shape)}, "
            f"{tuple(cos.shape)}, {tuple(sin.shape)}"
        )
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    if interleaved:
        x1, x2 = x[..., 0::2], x[..., 1::2]  # (B, H, L, D/2) each: features 2i and 2i+1
        rotated = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)  # (B, H, L, D/2, 2)
        return rotated.flatten(-2)  # (B, H, L, D), pairs back in place
    x1, x2 = x.chunk(2, dim=-1)  # (B, H, L, D/2) each: features i and i + D/2
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)  # (B, H, L, D)


def apply_rotary_emb_interleaved(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Eq. 34's own layout: pairs (2i, 2i+1); see :func:`apply_rotary_emb`.

    >>> x = torch.tensor([[[[1.0, 0.0, 0.0, 0.0]]]])
    >>> cos, sin = torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 0.0]])
    >>> apply_rotary_emb_interleaved(x, cos, sin).tolist()  # pairs (x_0, x_1), (x_2, x_3)
    [[[[0.0, 1.0, 0.0, 0.0]]]]
    """
    return apply_rotary_emb(x, cos, sin, interleaved=True)
