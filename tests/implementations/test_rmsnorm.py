"""Unit tests for implementations.rmsnorm beyond the harness's generic checks."""

import math

import pytest
import torch

from implementations import RMSNorm


def _reference(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Eq. 4 in float64, cast back to x's dtype."""
    a = x.double()
    rms = torch.sqrt(a.pow(2).mean(dim=-1, keepdim=True) + eps)  # (..., 1)
    return (a / rms * weight.double()).to(x.dtype)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_large_values_are_finite_and_match_float64(dtype):
    g = torch.Generator().manual_seed(0)
    x = (1e3 + 200 * torch.randn(4, 16, generator=g)).to(dtype)  # x^2 > 65504
    norm = RMSNorm(16)
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 2.0, 16))
    out = norm(x)
    assert out.dtype == dtype
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, _reference(x, norm.weight, norm.eps))


def test_unfixed_float16_formula_overflows():
    # The same input through the uncorrected float16 formula: x**2 overflows to
    # inf, so every output collapses to 0. This is the defect the upcast fixes.
    x = torch.full((2, 16), 1e3, dtype=torch.float16)
    naive = x / torch.sqrt(torch.mean(x**2, dim=-1, keepdim=True) + 1e-6)
    assert (naive == 0).all()
    torch.testing.assert_close(RMSNorm(16)(x), torch.ones_like(x))


def test_float64_computed_in_float64():
    x = torch.randn(3, 8, dtype=torch.float64)
    norm = RMSNorm(8, eps=0.0).double()
    torch.testing.assert_close(norm(x), _reference(x, norm.weight, 0.0))


@pytest.mark.parametrize("dim", [0, -3, 2.5, True])
def test_bad_dim_raises(dim):
    with pytest.raises(ValueError, match="dim must be a positive int"):
        RMSNorm(dim)


@pytest.mark.parametrize("eps", [-1e-6, math.nan, math.inf])
def test_bad_eps_raises(eps):
    with pytest.raises(ValueError, match="eps must be a finite float >= 0"):
        RMSNorm(8, eps=eps)


def test_wrong_last_dim_raises_and_repr():
    norm = RMSNorm(8, eps=1e-5)
    with pytest.raises(ValueError, match="last dim of x must be 8"):
        norm(torch.randn(2, 4))
    assert repr(norm) == "RMSNorm(8, eps=1e-05)"
