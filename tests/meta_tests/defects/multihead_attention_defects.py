"""Deliberately wrong multi-head attention modules (spec ``multihead_attention``).

Each has the interface of ``implementations.multihead_attention.PaperModule`` and is wrong in one
way; the docstring names the check that must catch it (``tests/meta_tests/tables/multihead_attention.py``).
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _Base(nn.Module):
    def __init__(self, d_model: int, n_heads: int = 8, dropout: float = 0.1) -> None:
        super().__init__()
        self.d_model, self.n_heads, self.d_head = d_model, n_heads, d_model // n_heads
        self.W_q = nn.Linear(d_model, d_model, bias=False)
        self.W_k = nn.Linear(d_model, d_model, bias=False)
        self.W_v = nn.Linear(d_model, d_model, bias=False)
        self.W_o = nn.Linear(d_model, d_model, bias=False)
        self.dropout = nn.Dropout(dropout)

    def heads(self, t: Tensor) -> Tensor:
        B, L, _ = t.shape
        return t.view(B, L, self.n_heads, self.d_head).transpose(1, 2)  # (B, H, L, Dh)

    def scores(self, q: Tensor, k: Tensor) -> Tensor:
        return q @ k.transpose(-2, -1) / math.sqrt(self.d_head)

    def weights(self, scores: Tensor, mask: Tensor | None) -> Tensor:
        if mask is not None:
            scores = scores.masked_fill(mask == 0, float("-inf"))
        return self.dropout(torch.softmax(scores, dim=-1))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        B, L, D = x.shape
        q, k, v = self.heads(self.W_q(x)), self.heads(self.W_k(x)), self.heads(self.W_v(x))
        out = self.weights(self.scores(q, k), mask) @ v  # (B, H, L, Dh)
        return self.W_o(out.transpose(1, 2).reshape(B, L, D))


class GuideTemplate(_Base):
    """The guide's template: a LayerNorm created and never used.

    Caught by: ``parameter_gradients:every_parameter_trained`` (layer_norm gets no gradient).
    """

    def __init__(self, d_model: int, n_heads: int = 8, dropout: float = 0.1) -> None:
        super().__init__(d_model, n_heads, dropout)
        self.layer_norm = nn.LayerNorm(d_model)


class NoScaling(_Base):
    """Scores not divided by sqrt(d_k). Caught by: ``oracle``."""

    def scores(self, q, k):
        return q @ k.transpose(-2, -1)


class ScaledByModelDim(_Base):
    """Scores divided by sqrt(d_model) instead of sqrt(d_k). Caught by: ``oracle`` (differs when h > 1)."""

    def scores(self, q, k):
        return q @ k.transpose(-2, -1) / math.sqrt(self.d_model)


class HeadsSplitWithoutTranspose(_Base):
    """(B, L, D) viewed straight as (B, H, L, Dh): heads mix positions. Caught by: ``oracle``."""

    def heads(self, t):
        B, L, _ = t.shape
        return t.reshape(B, self.n_heads, L, self.d_head)  # wrong: no transpose


class MaskInverted(_Base):
    """True/1 treated as masked. Caught by: ``oracle``."""

    def weights(self, scores, mask):
        if mask is not None:
            scores = scores.masked_fill(mask != 0, float("-inf"))
            scores = torch.where(torch.isinf(scores).all(-1, keepdim=True), torch.zeros_like(scores), scores)
        return self.dropout(torch.softmax(scores, dim=-1))


class DropoutAlways(_Base):
    """Dropout applied in eval mode too (F.dropout defaults to training=True).

    Caught by: ``dropout_modes:dropout_in_training_only``.
    """

    def weights(self, scores, mask):
        if mask is not None:
            scores = scores.masked_fill(mask == 0, float("-inf"))
        return F.dropout(torch.softmax(scores, dim=-1), p=self.dropout.p)


class DropoutNever(_Base):
    """No dropout in training either. Caught by: ``dropout_modes:dropout_in_training_only``."""

    def weights(self, scores, mask):
        if mask is not None:
            scores = scores.masked_fill(mask == 0, float("-inf"))
        return torch.softmax(scores, dim=-1)


class DetachedKeys(_Base):
    """The key projection detached: W_k learns nothing. Caught by: ``parameter_gradients`` and ``gradient``."""

    def forward(self, x, mask=None):
        B, L, D = x.shape
        q, k, v = self.heads(self.W_q(x)), self.heads(self.W_k(x).detach()), self.heads(self.W_v(x))
        out = self.weights(self.scores(q, k), mask) @ v
        return self.W_o(out.transpose(1, 2).reshape(B, L, D))


class BatchMixing(_Base):
    """Every sequence attends the first sequence's keys (a wrong broadcast over the batch).

    Caught by: ``invariant:batch_independence``.
    """

    def forward(self, x, mask=None):
        B, L, D = x.shape
        q, k, v = self.heads(self.W_q(x)), self.heads(self.W_k(x[:1].expand_as(x))), self.heads(self.W_v(x))
        out = self.weights(self.scores(q, k), mask) @ v
        return self.W_o(out.transpose(1, 2).reshape(B, L, D))


class NoOutputProjection(_Base):
    """Concat of the heads returned without W^O. Caught by: ``oracle`` and ``invariant:output_projection_linearity``."""

    def forward(self, x, mask=None):
        B, L, D = x.shape
        q, k, v = self.heads(self.W_q(x)), self.heads(self.W_k(x)), self.heads(self.W_v(x))
        out = self.weights(self.scores(q, k), mask) @ v
        return out.transpose(1, 2).reshape(B, L, D) + 0 * self.W_o.weight.sum()


class SquaredValues(_Base):
    """Values squared before weighting (the output is not linear in W^V).

    Caught by: ``invariant:value_projection_linearity``.
    """

    def forward(self, x, mask=None):
        B, L, D = x.shape
        q, k, v = self.heads(self.W_q(x)), self.heads(self.W_k(x)), self.heads(self.W_v(x))
        out = self.weights(self.scores(q, k), mask) @ (v * v.abs())
        return self.W_o(out.transpose(1, 2).reshape(B, L, D))


class QueryNormalised(_Base):
    """Queries L2-normalised per head (scores no longer scale with W^Q·c, W^K/c symmetrically).

    Caught by: ``invariant:query_key_rescaling``.
    """

    def scores(self, q, k):
        return F.normalize(q, dim=-1) @ k.transpose(-2, -1) / math.sqrt(self.d_head)


class OutputUpcast(_Base):
    """Returns float32 for half-precision inputs. Caught by: ``output_contract`` at float16."""

    def forward(self, x, mask=None):
        return super().forward(x, mask).float()


class Nondeterministic(_Base):
    """Adds tiny random noise. Caught by: ``determinism``."""

    def forward(self, x, mask=None):
        out = super().forward(x, mask)
        return out + 1e-3 * torch.rand_like(out) * out.abs().amax()


class CompileDiverges(_Base):
    """Computes something else when compiled (a branch on torch.compiler.is_compiling()).

    Caught by: ``compile_equivalence:compiled_cpu``.
    """

    def forward(self, x, mask=None):
        out = super().forward(x, mask)
        return out * 1.01 if torch.compiler.is_compiling() else out
