"""Deliberately wrong rotary position embeddings (specs ``rope_cache`` and ``rope_apply``, specs/roformer.yaml).

The ``RotaryEmbedding``-like classes have the signature of ``implementations.rope.RotaryEmbedding``
``(dim, max_seq_len=4096, base=10000)`` with ``forward(x, seq_len) -> (cos, sin)``; the functions have
the signature of ``implementations.rope.apply_rotary_emb`` ``(x, cos, sin)``. Each is wrong in exactly
one way; its docstring says what is wrong and which spec line / harness check must catch it.
``tests/meta_tests/tables/rope_cache.py`` and ``rope_apply.py`` list the check that must catch it.
"""

import torch
from torch import Tensor, nn

from implementations.rope import RotaryEmbedding, apply_rotary_emb, apply_rotary_emb_interleaved

_LOW_PRECISION = (torch.float16, torch.bfloat16)


# -- rope_cache ------------------------------------------------------------------------------------
class GuideRotaryEmbedding(nn.Module):
    """The implementation guide's RotaryEmbedding, verbatim in substance: float32 buffers, no bound check.

    Under ``module.to(dtype)`` its float32 tables become float64 with float32's angles, ~1e-4 off at
    m = 4096. Caught by: ``oracle`` at float64 (spec ``oracle.expr`` in float64; ambiguity "dtype").
    Also ``seq_len_past_max`` (see ``NoErrorPastMaxSeqLen``).
    """

    def __init__(self, dim: int, max_seq_len: int = 4096, base: int = 10000) -> None:
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))
        self.register_buffer("inv_freq", inv_freq)
        freqs = torch.outer(torch.arange(max_seq_len), inv_freq)  # (max_seq_len, dim/2)
        self.register_buffer("cos", freqs.cos())
        self.register_buffer("sin", freqs.sin())

    def forward(self, x: Tensor, seq_len: int) -> tuple[Tensor, Tensor]:
        return self.cos[:seq_len], self.sin[:seq_len]


class NoErrorPastMaxSeqLen(RotaryEmbedding):
    """Slices the table like the guide: seq_len > max_seq_len silently returns max_seq_len rows.

    Caught by: ``domain_error:seq_len_past_max`` (spec ``patterns``: a ValueError naming max_seq_len).
    """

    def forward(self, x: Tensor, seq_len: int) -> tuple[Tensor, Tensor]:
        cos, sin = self._table(x.device, x.dtype)
        return cos[:seq_len], sin[:seq_len]


class IndexErrorPastMaxSeqLen(RotaryEmbedding):
    """Fails past max_seq_len, but with an IndexError from deep inside, not a clear ValueError.

    Caught by: ``domain_error:seq_len_past_max`` (spec ``raises: [ValueError]``).
    """

    def forward(self, x: Tensor, seq_len: int) -> tuple[Tensor, Tensor]:
        cos, sin = self._table(x.device, x.dtype)
        rows = torch.arange(seq_len, device=cos.device)
        return cos[rows], sin[rows]  # index out of range past the table


class WrongThetaExponent(RotaryEmbedding):
    """θ_i = base^(−(i−1)/d) instead of base^(−2(i−1)/d): frequencies decay half as fast.

    θ_1 = 1 still, so the first column is right. Caught by: ``oracle`` (spec ``oracle.let.angle``:
    ``base**(-2*arange(D // 2)/D)``), from D = 4.
    """

    def __init__(self, dim: int, max_seq_len: int = 4096, base: float = 10000) -> None:
        super().__init__(dim, max_seq_len, base)
        inv_freq = torch.tensor(float(base), dtype=torch.float64) ** -(torch.arange(dim // 2, dtype=torch.float64) / dim)
        angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float64), inv_freq)  # (max_seq_len, dim/2)
        self._cos64, self._sin64 = angles.cos(), angles.sin()


class CosSinSwapped(RotaryEmbedding):
    """Returns (sin, cos) instead of (cos, sin).

    Caught by: ``oracle`` and ``invariant:position_zero`` (row 0 must be cos = 1, sin = 0).
    ``unit_circle`` cannot see it (sin² + cos² = 1 either way).
    """

    def forward(self, x: Tensor, seq_len: int) -> tuple[Tensor, Tensor]:
        cos, sin = super().forward(x, seq_len)
        return sin, cos


class CacheShiftedByOne(RotaryEmbedding):
    """Slices rows 1..seq_len instead of 0..seq_len−1 (positions start at 1): an off-by-one in the cache.

    Caught by: ``oracle`` and ``invariant:position_zero``. The last row is past the table when
    seq_len = max_seq_len (then the shape is short by one, see ``output_contract``).
    """

    def forward(self, x: Tensor, seq_len: int) -> tuple[Tensor, Tensor]:
        super().forward(x, seq_len)  # the bound check
        cos, sin = self._table(x.device, x.dtype)
        return cos[1 : seq_len + 1], sin[1 : seq_len + 1]


class CacheOneRowShort(RotaryEmbedding):
    """Slices ``[:seq_len - 1]``: one row short.

    Caught by: ``output_contract`` (spec ``outputs``: (L, D/2)) and ``oracle`` (shape).
    """

    def forward(self, x: Tensor, seq_len: int) -> tuple[Tensor, Tensor]:
        cos, sin = super().forward(x, seq_len)
        return cos[: seq_len - 1], sin[: seq_len - 1]


class SinShiftedByOne(RotaryEmbedding):
    """Only the sin table is off by one position (sin of m+1 beside cos of m): not a rotation.

    Caught by: ``invariant:unit_circle`` (cos² + sin² ≠ 1) and ``oracle``.
    """

    def forward(self, x: Tensor, seq_len: int) -> tuple[Tensor, Tensor]:
        cos, _ = super().forward(x, seq_len)
        angles = torch.outer(torch.arange(1, seq_len + 1, dtype=torch.float64), self._theta())  # m + 1
        return cos, angles.sin().to(device=x.device, dtype=x.dtype)

    def _theta(self) -> Tensor:
        return torch.tensor(float(self.base), dtype=torch.float64) ** -(
            torch.arange(0, self.dim, 2, dtype=torch.float64) / self.dim
        )


class RandomTable(nn.Module):
    """Tables of random values in [-1, 1] of the right shape, dtype and device: garbage a check must not pass.

    Caught by: ``oracle`` at every dtype — the noise floor at the angle's scale is the compute dtype's, so
    no tolerance reaches the range cos and sin can take (at float16's epsilon it did, from m ≈ 128).
    """

    def __init__(self, dim: int, max_seq_len: int = 4096, base: int = 10000) -> None:
        super().__init__()
        self.dim, self.max_seq_len = dim, max_seq_len

    def forward(self, x: Tensor, seq_len: int) -> tuple[Tensor, Tensor]:
        if seq_len > self.max_seq_len:
            raise ValueError(f"seq_len {seq_len} exceeds max_seq_len {self.max_seq_len}")
        g = torch.Generator().manual_seed(seq_len * 131 + self.dim)
        cos, sin = (torch.rand(seq_len, self.dim // 2, generator=g, dtype=torch.float64) * 2 - 1 for _ in range(2))
        return cos.to(x.dtype).to(x.device), sin.to(x.dtype).to(x.device)


class InverseFrequencyBuffer(nn.Module):
    """θ as a floating buffer, angles computed in float32 at every call (a common public pattern).

    Right in float32; but ``module.to(float16)`` (``model.half()``) casts the buffer, so θ carries
    float16's rounding and the angles at m = 4096 move by up to a radian, although the forward computes in
    float32. Caught by: ``oracle`` at float16 (spec ``oracle.compute_dtype``: the noise floor at the
    angle's scale is float32's, not float16's).
    """

    def __init__(self, dim: int, max_seq_len: int = 4096, base: int = 10000) -> None:
        super().__init__()
        self.max_seq_len = max_seq_len
        exponent = torch.arange(0, dim, 2, dtype=torch.float32) / dim
        self.register_buffer("inv_freq", 1.0 / (float(base) ** exponent), persistent=False)  # (dim/2,)

    def forward(self, x: Tensor, seq_len: int) -> tuple[Tensor, Tensor]:
        if seq_len > self.max_seq_len:
            raise ValueError(f"seq_len {seq_len} exceeds max_seq_len {self.max_seq_len}")
        t = torch.arange(seq_len, device=x.device, dtype=torch.float32)
        angles = torch.outer(t, self.inv_freq.float())  # (seq_len, dim/2), from the possibly cast buffer
        return angles.cos().to(x.dtype), angles.sin().to(x.dtype)


class Float16Buffers(nn.Module):
    """Computes θ and the table in float16 (as a module cast with ``.half()`` would hold them).

    θ_i rounded to float16 (relative error 5e-4) times m = 4096 moves angles by radians; the values
    carry float16 precision at every dtype. Caught by: ``oracle`` at float32 (large m) and
    ``invariant:unit_circle`` at float32 (cos² + sin² off by ~1e-3).
    """

    def __init__(self, dim: int, max_seq_len: int = 4096, base: int = 10000) -> None:
        super().__init__()
        exponent = torch.arange(0, dim, 2, dtype=torch.float16) / dim
        inv_freq = torch.tensor(float(base), dtype=torch.float16) ** -exponent  # (dim/2,) in float16
        pos = torch.arange(max_seq_len, dtype=torch.float16)
        freqs = torch.outer(pos, inv_freq)  # (max_seq_len, dim/2) in float16
        self._cos, self._sin = freqs.cos(), freqs.sin()  # kept float16 whatever the module's dtype
        self.max_seq_len = max_seq_len

    def forward(self, x: Tensor, seq_len: int) -> tuple[Tensor, Tensor]:
        if seq_len > self.max_seq_len:
            raise ValueError(f"seq_len {seq_len} exceeds max_seq_len {self.max_seq_len}")
        return self._cos[:seq_len].to(x), self._sin[:seq_len].to(x)


class NoCastToInputDtype(RotaryEmbedding):
    """Returns float32 tables whatever x's dtype (the guide's buffers outside the harness's ``.to``).

    Caught by: ``output_contract`` at float16 (spec ``outputs``: the tables have x's dtype).
    """

    def forward(self, x: Tensor, seq_len: int) -> tuple[Tensor, Tensor]:
        cos, sin = super().forward(x.float(), seq_len)
        return cos, sin


class NoisyTable(RotaryEmbedding):
    """Adds a few ulps of random noise to the cos table on each call (think a non-deterministic kernel).

    The values stay within rounding of the oracle, but two calls differ. Caught by: ``determinism``.
    """

    def forward(self, x: Tensor, seq_len: int) -> tuple[Tensor, Tensor]:
        cos, sin = super().forward(x, seq_len)
        noise = torch.randn(cos.shape, dtype=torch.float64) * 2 * torch.finfo(cos.dtype).eps
        return cos + noise.to(device=cos.device, dtype=cos.dtype), sin


# -- rope_apply ------------------------------------------------------------------------------------
def interleaved_declared_half(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """The paper's interleaved layout (pairs 2i, 2i+1) run where the half layout is declared (the default).

    A correct rotation on the wrong pairs: weights trained with the other layout break silently.
    Caught by: ``oracle``, whose detail ends "matches the interleaved layout (RoFormer Eq. 34) instead
    of half" (spec ``diagnose``). Every invariant holds: it is a rotation.
    """
    return apply_rotary_emb_interleaved(x, cos, sin)


def half_declared_interleaved(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """The rotate-half layout registered as interleaved (``[interleaved=true]``).

    Caught by: ``oracle``, whose detail ends "matches the half layout (rotate-half) instead of
    interleaved (RoFormer Eq. 34)".
    """
    return apply_rotary_emb(x, cos, sin)


def cos_sin_swapped(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """x1·sin − x2·cos, x1·cos + x2·sin: cos and sin trade places (a rotation by π/2 − m·θ).

    Still orthogonal, so norms are kept. Caught by: ``oracle``, ``invariant:position_zero``
    (cos = 1, sin = 0 must leave x unchanged) and ``invariant:composition`` (R(π/2 − a) R(π/2 − b)
    is not R(π/2 − a − b)).
    """
    x1, x2 = x.chunk(2, dim=-1)  # (B, H, L, D/2) each
    return torch.cat([x1 * sin - x2 * cos, x1 * cos + x2 * sin], dim=-1)


def direction_flipped(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotates by −m·θ (R_mᵀ): x1·cos + x2·sin, x2·cos − x1·sin.

    A rotation group too, so every invariant holds (norms, R_0 = I, composition, relative scores).
    Caught by: ``oracle`` only (the sign of sin in Eq. 34).
    """
    x1, x2 = x.chunk(2, dim=-1)  # (B, H, L, D/2) each
    return torch.cat([x1 * cos + x2 * sin, x2 * cos - x1 * sin], dim=-1)


def second_half_sign_error(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """x1·cos − x2·sin, x2·cos − x1·sin: the second half's sin has the wrong sign — not a rotation.

    [[c, −s], [−s, c]] is symmetric with determinant cos 2mθ: it scales norms, and ⟨M_m q, M_n k⟩
    depends on m + n. Caught by: ``oracle``, ``invariant:norm_preserved``, ``invariant:shift_invariance``.
    """
    x1, x2 = x.chunk(2, dim=-1)  # (B, H, L, D/2) each
    return torch.cat([x1 * cos - x2 * sin, x2 * cos - x1 * sin], dim=-1)


def upcast_output(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotates float16/bfloat16 in float32 and forgets to cast back.

    Caught by: ``output_contract`` at float16 (spec ``outputs``: the output has x's dtype).
    """
    compute = torch.float32 if x.dtype in _LOW_PRECISION else x.dtype
    return apply_rotary_emb(x.to(compute), cos.to(compute), sin.to(compute))


def nondeterministic(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Adds a few ulps of random noise (think a non-deterministic fused kernel).

    Caught by: ``determinism`` (two calls must be bitwise equal).
    """
    out = apply_rotary_emb(x, cos, sin)
    noise = torch.randn(out.shape, dtype=torch.float64, device=out.device) * 2 * torch.finfo(out.dtype).eps
    return out + (noise * out.detach().abs().to(torch.float64).amax()).to(out.dtype)


class _ForwardRotationBackward(torch.autograd.Function):
    """RoPE with a hand-written backward that rotates the gradient by +m·θ instead of −m·θ.

    The gradient of y = R x is Rᵀ g (the inverse rotation); this backward returns R g.
    """

    @staticmethod
    def forward(ctx, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        ctx.save_for_backward(cos, sin)
        return apply_rotary_emb(x, cos, sin)

    @staticmethod
    def backward(ctx, g: Tensor) -> tuple[Tensor, None, None]:
        cos, sin = ctx.saved_tensors
        return apply_rotary_emb(g, cos, sin), None, None  # should be apply_rotary_emb(g, cos, -sin)


def backward_not_transposed(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """The forward is right; the backward applies R instead of Rᵀ.

    Caught by: ``gradient`` (at every dtype) and ``gradcheck`` (spec ``gradients: wrt: [x]``).
    """
    return _ForwardRotationBackward.apply(x, cos, sin)


class CompileDiverges(RotaryEmbedding):
    """Correct in eager mode, but the compiled module returns a sine table off by 1 % (a branch on
    ``torch.compiler.is_compiling()``). Caught by: ``compile_equivalence:compiled_cpu``/``compiled_cuda``.
    """

    def forward(self, x: Tensor, seq_len: int) -> tuple[Tensor, Tensor]:
        cos, sin = super().forward(x, seq_len)
        return (cos, sin * 1.01) if torch.compiler.is_compiling() else (cos, sin)
