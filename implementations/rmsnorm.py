"""RMSNorm, Zhang & Sennrich 2019 (arXiv 1910.07467), Eq. 4.

    a_bar_i = a_i / RMS(a) * g_i,   RMS(a) = sqrt(mean(a^2) + eps)

The paper has no eps; this project puts it inside the square root, as
``torch.nn.RMSNorm`` and LLaMA do.
"""

import math

import torch
from torch import Tensor, nn

_LOW_PRECISION = (torch.float16, torch.bfloat16)


class RMSNorm(nn.Module):
    """Eq. 4 over the last dim, with a learned gain ``weight`` (g in the paper).

    float16/bfloat16 inputs are normalized in float32 (a^2 overflows float16
    above ~256) and cast back; float32/float64 are computed in their own dtype.

    >>> norm = RMSNorm(8)
    >>> x = torch.randn(2, 3, 8)
    >>> torch.allclose(norm(x), x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6))
    True
    """

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
            raise ValueError(f"dim must be a positive int, got {dim}")
        if not (math.isfinite(eps) and eps >= 0):
            raise ValueError(f"eps must be a finite float >= 0, got {eps}")
        self.dim = dim
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        """x: (..., dim) -> (..., dim), same dtype as x."""
        if x.dim() == 0 or x.size(-1) != self.dim:
            raise ValueError(f"last dim of x must be {self.dim}, got shape {tuple(x.shape)}")
        compute_dtype = torch.float32 if x.dtype in _LOW_PRECISION else x.dtype
        a = x.to(compute_dtype)
        mean_sq = a.pow(2).mean(dim=-1, keepdim=True)  # (..., 1)
        inv_rms = torch.rsqrt(mean_sq + self.eps)  # (..., 1)
        return (a * inv_rms * self.weight.to(compute_dtype)).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}"
