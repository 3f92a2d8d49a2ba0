"""Deliberately wrong RMSNorm modules (spec ``rmsnorm``, specs/rmsnorm.yaml).

Every class has the interface of ``implementations.rmsnorm.RMSNorm``: ``__init__(dim, eps=1e-6)``,
a ``weight`` parameter of shape (dim,) (the gain g, which the harness replaces with drawn values),
``forward(x)`` with x of shape (..., dim). Each is wrong in exactly one way; each docstring says
what is wrong and which spec line / harness check must catch it.
``tests/meta_tests/test_planted_defects.py`` asserts that it does.
"""

import torch
from torch import Tensor, nn

_LOW_PRECISION = (torch.float16, torch.bfloat16)


class _Base(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        compute = torch.float32 if x.dtype in _LOW_PRECISION else x.dtype
        return self.normalize(x.to(compute), self.weight.to(compute)).to(x.dtype)

    def normalize(self, a: Tensor, g: Tensor) -> Tensor:
        raise NotImplementedError


class EpsOutsideSqrt(_Base):
    """ε outside the square root (the RMSNorm authors' code): x / (sqrt(mean(x²)) + ε) · g.

    Caught by: ``oracle`` (spec ``oracle.expr``: ``sqrt(mean(x**2, -1, keepdim=True) + eps)``;
    ambiguity "Inside the square root"). Visible when mean(x²) is not large against ε.
    """

    def normalize(self, a, g):
        return a / (a.pow(2).mean(-1, keepdim=True).sqrt() + self.eps) * g


class NoEps(_Base):
    """No ε at all (Eq. 4 as printed): x / sqrt(mean(x²)) · g.

    Caught by: ``oracle`` (spec ``oracle.expr`` has ``+ eps``). Visible for small x.
    """

    def normalize(self, a, g):
        return a / a.pow(2).mean(-1, keepdim=True).sqrt() * g


class WeightIgnored(_Base):
    """Never applies the gain g: x / RMS(x).

    Caught by: ``oracle`` (``... * weight``) and ``invariant:gain_linearity`` (output linear in g).
    """

    def normalize(self, a, g):
        return a * torch.rsqrt(a.pow(2).mean(-1, keepdim=True) + self.eps)


class NormalizesOverSequence(_Base):
    """Takes the mean square over the sequence axis (dim -2) instead of the features (dim -1).

    Caught by: ``oracle`` (``mean(x**2, -1, ...)``; ambiguity "The last one only") and
    ``invariant:unit_mean_square``. Not by ``invariant:row_independence``: a reduction over the
    rows is itself invariant to permuting them, so permuting rows still permutes the output.
    """

    def normalize(self, a, g):
        return a * torch.rsqrt(a.pow(2).mean(-2, keepdim=True) + self.eps) * g


class WrongGrouping(_Base):
    """Groups the wrong elements: ``x.reshape(..., D, L)`` where ``x.transpose(-2, -1)`` was meant,
    then "normalizes over the sequence" and reshapes back — each group mixes features of several
    positions, so a row's output depends on the other rows and on where they sit.

    Caught by: ``invariant:row_independence`` (permuting rows no longer permutes the output) and ``oracle``.
    """

    def normalize(self, a, g):
        L, D = a.shape[-2], a.shape[-1]
        grouped = a.reshape(*a.shape[:-2], D, L)  # BUG: a reshape is not a transpose
        normed = grouped * torch.rsqrt(grouped.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.reshape(a.shape) * g


class GuideNoUpcast(nn.Module):
    """The guide's RMSNorm (pytorch-implementation-patterns.md, pattern 5): x**2 in the input dtype.

    For float16 inputs |x| > 256 makes x² overflow to inf, RMS = inf and the output 0 (and sums of
    smaller squares overflow too). Correct in float32/float64.
    Caught by: ``oracle`` at float16 (spec ambiguity "In float32, the result rounded to the input
    dtype"; ``oracle.compute_dtype: {float16: float32}``).
    """

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        rms = torch.sqrt(torch.mean(x**2, dim=-1, keepdim=True) + self.eps)
        return self.weight * (x / rms)


class GainOffsetFromOne(_Base):
    """Applies the gain as (1 + g), the weight stored as an offset from 1 (Gemma's RMSNorm): x / RMS(x) · (1 + g).

    Caught by: ``oracle`` (``... * weight``), whose failure names the reading (spec ``diagnose``).
    """

    def normalize(self, a, g):
        return a * torch.rsqrt(a.pow(2).mean(-1, keepdim=True) + self.eps) * (1 + g)


class NoEpsGainOffsetFromOne(_Base):
    """No ε and a (1 + g) gain: x / sqrt(mean(x²)) · (1 + g) (x-transformers' ``RMSNorm(unit_offset=True)``).

    Caught by: ``oracle``, whose failure names the combined reading (spec ``diagnose``): neither single reading
    matches it at float64.
    """

    def normalize(self, a, g):
        return a / a.pow(2).mean(-1, keepdim=True).sqrt() * (1 + g)


class GainOffsetInFloat32(_Base):
    """A (1 + g) gain, computed in float32 whatever the input dtype (transformers' ``GemmaRMSNorm``).

    Caught by: ``oracle`` at float64, whose failure names the reading and the precision: neither the oracle in
    float32 nor the reading in float64 is within tolerance, the reading in float32 is.
    """

    def normalize(self, a, g):
        x = a.float()
        return (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * (1 + g.float())).to(a.dtype)


class MeanAbs(_Base):
    """Divides by the mean absolute value instead of the RMS: x / sqrt(mean(|x|)² + ε) · g.

    Still invariant to rescaling x (so ``invariant:input_rescaling`` cannot see it), but not Eq. 4.
    Caught by: ``oracle``. Equivalent when D = 1 (or all |x_i| equal).
    """

    def normalize(self, a, g):
        return a * torch.rsqrt(a.abs().mean(-1, keepdim=True).pow(2) + self.eps) * g


class MeanSquareNoSqrt(_Base):
    """Forgets the square root: x / (mean(x²) + ε) · g, which is homogeneous of degree -1, not 0.

    Caught by: ``invariant:input_rescaling`` (Table 1: f(c·x) = f(x)) and ``oracle``.
    """

    def normalize(self, a, g):
        return a / (a.pow(2).mean(-1, keepdim=True) + self.eps) * g


class LayerNormInstead(_Base):
    """Subtracts the mean first (LayerNorm without bias): (x - mean(x)) / sqrt(var(x) + ε) · g.

    Caught by: ``oracle`` (RMSNorm does not re-center).
    """

    def normalize(self, a, g):
        centered = a - a.mean(-1, keepdim=True)
        return centered * torch.rsqrt(centered.pow(2).mean(-1, keepdim=True) + self.eps) * g


class NoCastBack(_Base):
    """Normalises float16/bfloat16 inputs in float32 and returns float32 (forgets ``.to(x.dtype)``).

    Values are fine, the dtype is not. Caught by: ``output_contract`` at float16 (spec ``outputs``).
    """

    def forward(self, x):
        compute = torch.float32 if x.dtype in _LOW_PRECISION else x.dtype
        a = x.to(compute)
        return a * torch.rsqrt(a.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight.to(compute)


class DropoutAlwaysOn(_Base):
    """Calls ``F.dropout(y, p=0.1)`` without ``training=self.training``: F.dropout defaults to
    training=True, so it drops (and rescales) outputs even in eval mode.

    Caught by: ``determinism`` (two calls on the same input differ) and the oracle.
    """

    def normalize(self, a, g):
        y = a * torch.rsqrt(a.pow(2).mean(-1, keepdim=True) + self.eps) * g
        return nn.functional.dropout(y, p=0.1)


class OffByOneFeatures(_Base):
    """Takes the mean square over ``x[..., :-1]`` (drops the last feature, an off-by-one slice).

    Which feature is left out depends on the feature order, so permuting the features together with the
    gain does not permute the output. Caught by: ``invariant:feature_permutation`` (and the oracle).
    For D = 1 the slice is empty (mean of nothing is NaN), which the oracle also flags.
    """

    def normalize(self, a, g):
        return a * torch.rsqrt(a[..., :-1].pow(2).mean(-1, keepdim=True) + self.eps) * g


class DetachedRMS(_Base):
    """Detaches the RMS (treats it as a constant in the backward, a "saves memory" shortcut).

    The forward is right; ∂y/∂x loses the term through RMS(x). Caught by: ``gradient`` (vs autograd
    through the oracle, spec ``gradients: wrt: [x, weight]``) and ``gradcheck`` at float64.
    """

    def normalize(self, a, g):
        inv_rms = torch.rsqrt(a.pow(2).mean(-1, keepdim=True) + self.eps).detach()
        return a * inv_rms * g


class CompileDiverges(_Base):
    """Normalises correctly in eager mode but skips the gain when compiled (a branch on
    ``torch.compiler.is_compiling()``). Caught by: ``compile_equivalence:compiled_cpu``.
    """

    def normalize(self, a, g):
        out = a * torch.rsqrt(a.pow(2).mean(-1, keepdim=True) + self.eps)
        return out if torch.compiler.is_compiling() else out * g
