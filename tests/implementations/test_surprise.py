"""Unit tests for implementations.surprise beyond the harness's generic checks."""

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from implementations import SurpriseFunction, compute_surprise


class DefectiveSurprise(torch.autograd.Function):
    """Planted defect: saves ``diff`` from forward, extra ``eps`` input/grad."""

    @staticmethod
    def forward(ctx, hidden, memory_pred, eps=1e-8):
        diff = hidden - memory_pred
        ctx.save_for_backward(diff)
        ctx.eps = eps
        return (diff**2).sum(dim=-1)

    @staticmethod
    def backward(ctx, grad_output):
        (diff,) = ctx.saved_tensors
        grad = 2 * diff * grad_output.unsqueeze(-1)  # (..., D)
        return grad, -grad, None


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(2, 3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    m = torch.randn(2, 3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    return h, m


def test_value_is_sum_over_last_dim():
    out = compute_surprise(torch.full((2, 3, 4), 3.0), torch.ones(2, 3, 4))
    torch.testing.assert_close(out, torch.full((2, 3), 16.0))


def test_gradcheck_and_gradgradcheck_float64():
    h, m = _inputs()
    assert gradcheck(SurpriseFunction.apply, (h, m))
    assert gradgradcheck(SurpriseFunction.apply, (h, m))


def test_second_derivative_wrt_hidden_is_two():
    h, m = _inputs()
    (g,) = torch.autograd.grad(compute_surprise(h, m).sum(), h, create_graph=True)
    torch.testing.assert_close(g, 2 * (h - m))
    d2_h, d2_m = torch.autograd.grad(g.sum(), (h, m))
    # Hessian w.r.t. hidden is 2*I (summing g gives its diagonal); cross term -2.
    torch.testing.assert_close(d2_h, torch.full_like(h, 2.0))
    torch.testing.assert_close(d2_m, torch.full_like(m, -2.0))


def test_only_hidden_requires_grad():
    h, m = _inputs()
    m = m.detach()
    (g,) = torch.autograd.grad(compute_surprise(h, m).sum(), h)
    torch.testing.assert_close(g, 2 * (h - m))


def test_defective_backward_breaks_second_derivative_ours_does_not():
    h, m = _inputs()
    (g_bad,) = torch.autograd.grad(DefectiveSurprise.apply(h, m).sum(), h, create_graph=True)
    assert not g_bad.requires_grad  # disconnected: second derivative silently 0
    assert not gradgradcheck(DefectiveSurprise.apply, (h, m), raise_exception=False)

    # An outer-loop step through the inner gradient: w' = h - lr * dS/dh.
    # d(sum w')/dh = 1 - 2 lr; the defective backward silently gives 1.
    lr = 0.1

    def outer_grad(fn):
        h_, m_ = _inputs()
        (g,) = torch.autograd.grad(fn(h_, m_).sum(), h_, create_graph=True)
        (d,) = torch.autograd.grad((h_ - lr * g).sum(), h_)
        return d

    torch.testing.assert_close(outer_grad(compute_surprise), torch.full_like(h, 1 - 2 * lr))
    torch.testing.assert_close(outer_grad(DefectiveSurprise.apply), torch.ones_like(h))


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shapes differ"):
        compute_surprise(torch.randn(2, 3), torch.randn(2, 4))
    with pytest.raises(ValueError, match="shapes differ"):
        compute_surprise(torch.randn(2, 3), torch.randn(1, 3))
