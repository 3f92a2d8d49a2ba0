"""The terms of a backward pass (``conformance/gradient_terms.py``): closed forms where the chain rule's terms cancel
or cannot, the local partials computed with their real values, and an operation it does not know refused."""

from __future__ import annotations

import pytest
import torch

from conformance.gradient_terms import UnknownAdjointOp, terms

F64 = torch.float64


def test_terms_that_cancel_are_summed_in_absolute_value() -> None:
    a = torch.tensor([2.0, -1.0], dtype=F64, requires_grad=True)
    b = torch.tensor([0.5, 3.0], dtype=F64)
    z = a * b - a * b  # the VJP is exactly zero, from two terms ±cot·b
    cot = torch.tensor([1.0, -2.0], dtype=F64)
    assert torch.autograd.grad(z, a, cot, retain_graph=True)[0].abs().max() == 0
    assert terms(z, [a], cot)[0].tolist() == [1.0, 12.0]  # 2 |cot| |b|


def test_a_matrix_product_is_taken_in_absolute_values() -> None:
    A = torch.tensor([[1.0, -2.0], [-3.0, 4.0]], dtype=F64)
    x = torch.tensor([0.5, -0.25], dtype=F64, requires_grad=True)
    cot = torch.tensor([1.0, 1.0], dtype=F64)
    assert torch.equal(terms(A @ x, [x], cot)[0], A.abs().T @ cot.abs())


def test_local_partials_keep_their_signs_and_values() -> None:
    """exp(−x²)'s partial −2x·exp(−x²) is computed from the forward's x: only its product with the adjoint is absolute."""
    x = torch.tensor([0.5, -1.5], dtype=F64, requires_grad=True)
    cot = torch.tensor([-1.0, 2.0], dtype=F64)
    expected = (2 * x * torch.exp(-x * x)).abs().detach() * cot.abs()
    assert torch.allclose(terms(torch.exp(-x * x), [x], cot)[0], expected, rtol=1e-15)
    erfc_partial = (2 / torch.pi**0.5 * torch.exp(-x * x)).detach()  # |d erfc/dx|
    assert torch.allclose(terms(torch.special.erfc(x), [x], cot)[0], erfc_partial * cot.abs(), rtol=1e-15)


def test_an_input_the_output_does_not_reach_has_no_terms() -> None:
    x, unused = torch.ones(2, dtype=F64, requires_grad=True), torch.ones(2, dtype=F64, requires_grad=True)
    assert terms(3 * x, [x, unused], torch.ones(2, dtype=F64))[1] is None


def test_an_operation_on_an_adjoint_without_an_absolute_value_form_is_refused() -> None:
    A = torch.tensor([[2.0, 1.0], [1.0, 3.0]], dtype=F64, requires_grad=True)
    y = torch.linalg.solve(A, torch.ones(2, dtype=F64))  # its backward solves with the adjoint
    with pytest.raises(UnknownAdjointOp, match="on an adjoint"):
        terms(y, [A], torch.ones(2, dtype=F64))
