"""Deliberately wrong Titans surprise losses (spec ``surprise``, specs/titans.yaml).

Every function has the signature of ``implementations.surprise.compute_surprise``:
``(hidden, memory_pred) -> (...,)``, the per-token loss ||hidden - memory_pred||² summed over the
last (feature) axis. Each is wrong in exactly one way; each docstring says what is wrong and which
spec line / harness check must catch it. ``tests/meta_tests/test_planted_defects.py`` asserts that it does.
"""

import torch
from torch import Tensor


def mean_over_features(hidden: Tensor, memory_pred: Tensor) -> Tensor:
    """A mean over features (titans-pytorch's MSE) instead of Eq. 12's sum: off by a factor of D.

    Caught by: ``oracle`` (spec ``oracle.expr``: ``sum((hidden - memory_pred)**2, -1)``; ambiguity
    "A sum"). Equivalent when D = 1.
    """
    return (hidden - memory_pred).pow(2).mean(dim=-1)


def abs_instead_of_square(hidden: Tensor, memory_pred: Tensor) -> Tensor:
    """An L1 loss: sum |h - m| instead of sum (h - m)².

    Homogeneous of degree 1, not 2. Caught by: ``oracle`` and ``invariant:quadratic_homogeneity``.
    """
    return (hidden - memory_pred).abs().sum(dim=-1)


def norm_over_tokens(hidden: Tensor, memory_pred: Tensor) -> Tensor:
    """Sums the squares over the token axis (dim -2) instead of the feature axis: shape (B, D), not (B, L).

    Caught by: ``output_contract`` (spec ``outputs: surprise: {shape: [B, L]}``) and ``oracle``.
    """
    return (hidden - memory_pred).pow(2).sum(dim=-2)


def difference_of_squares(hidden: Tensor, memory_pred: Tensor) -> Tensor:
    """An algebra slip: sum(h² - m²) (difference of squares) instead of sum((h - m)²).

    Negative whenever |m| > |h|, and antisymmetric in its arguments.
    Caught by: ``invariant:nonnegative`` and ``invariant:symmetry`` (and the oracle).
    """
    return (hidden.pow(2) - memory_pred.pow(2)).sum(dim=-1)


def eps_in_loss(hidden: Tensor, memory_pred: Tensor, eps: float = 1e-8) -> Tensor:
    """Adds a "stabilising" ε to every squared difference: sum((h - m)² + ε), so the loss is D·ε at a match.

    Caught by: ``invariant:zero_at_match`` (the loss is exactly 0 where the memory is right).
    """
    return ((hidden - memory_pred).pow(2) + eps).sum(dim=-1)


def accumulated_over_tokens(hidden: Tensor, memory_pred: Tensor) -> Tensor:
    """Returns the running (accumulated) surprise, a cumulative sum over tokens, not the per-token loss.

    Token t's loss now depends on the tokens before it. Caught by: ``invariant:token_independence``
    (permuting tokens must permute the losses) and the oracle.
    """
    return (hidden - memory_pred).pow(2).sum(dim=-1).cumsum(dim=-1)


def shuffled_reduction(hidden: Tensor, memory_pred: Tensor) -> Tensor:
    """Sums the features in a random order on every call (a stand-in for a non-deterministic atomic reduction).

    Every result is within rounding of Eq. 12, but two calls on the same inputs differ in the last bits.
    Caught by: ``determinism`` (bitwise equality).
    """
    order = torch.randperm(hidden.size(-1), device=hidden.device)
    squares = (hidden - memory_pred).pow(2)[..., order]
    total = squares[..., 0]
    for d in range(1, squares.size(-1)):
        total = total + squares[..., d]
    return total


class GuideSurpriseFunction(torch.autograd.Function):
    """The guide's SurpriseFunction (pytorch-implementation-patterns.md, pattern 4), as written.

    ``diff`` is computed inside ``forward`` (where grad mode is off) and saved; the backward's
    ``2 * diff * g`` therefore has no graph back to the inputs, so the first derivative is right but
    differentiating the backward again gives 0 instead of the Hessian 2I.
    """

    @staticmethod
    def forward(ctx, hidden, memory_pred, eps=1e-8):
        diff = hidden - memory_pred
        surprise = (diff**2).sum(dim=-1)
        ctx.save_for_backward(diff)
        ctx.eps = eps
        return surprise

    @staticmethod
    def backward(ctx, grad_output):
        (diff,) = ctx.saved_tensors
        grad = 2 * diff * grad_output.unsqueeze(-1)
        return grad, -grad, None


def guide_saved_diff(hidden: Tensor, memory_pred: Tensor) -> Tensor:
    """The guide's compute_surprise: right value, right gradient, wrong second derivative.

    Caught by: ``gradgradcheck`` at float64 (spec ``gradients: order: 2``; ambiguity "Twice
    differentiable"; fact ``second_derivative``).
    """
    return GuideSurpriseFunction.apply(hidden, memory_pred)


class _SurpriseBackward(torch.autograd.Function):
    """Eq. 12 with a hand-written backward ``sign_m * factor * (h - m) * g`` for memory_pred."""

    @staticmethod
    def forward(ctx, hidden, memory_pred, factor, sign_m):
        ctx.save_for_backward(hidden, memory_pred)
        ctx.factor, ctx.sign_m = factor, sign_m
        return (hidden - memory_pred).pow(2).sum(dim=-1)

    @staticmethod
    def backward(ctx, grad_output):
        hidden, memory_pred = ctx.saved_tensors
        grad_hidden = ctx.factor * (hidden - memory_pred) * grad_output.unsqueeze(-1)
        return grad_hidden, ctx.sign_m * grad_hidden, None, None


def backward_wrong_sign_memory_pred(hidden: Tensor, memory_pred: Tensor) -> Tensor:
    """Backward returns +2(h - m)·g for memory_pred; the right one is -2(h - m)·g.

    Caught by: ``gradient`` (vs autograd through the oracle; fact ``gradient_memory_pred``) and
    ``gradcheck`` at float64.
    """
    return _SurpriseBackward.apply(hidden, memory_pred, 2.0, 1.0)


def backward_missing_factor_two(hidden: Tensor, memory_pred: Tensor) -> Tensor:
    """Backward returns (h - m)·g and -(h - m)·g: the factor 2 of d(x²)/dx is missing.

    Caught by: ``gradient`` (fact ``gradient_hidden``: 2(h − M(k))) and ``gradcheck`` at float64.
    """
    return _SurpriseBackward.apply(hidden, memory_pred, 1.0, -1.0)
