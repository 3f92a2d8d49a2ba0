"""Unit tests for implementations.rope beyond the harness's generic checks (specs rope_cache, rope_apply)."""

import math

import pytest
import torch

from implementations.rope import RotaryEmbedding, apply_rotary_emb, apply_rotary_emb_interleaved


def _table(dim: int, seq_len: int, base: float = 10000) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of m·θ_i written out from RoFormer Eq. 15 in float64, element by element."""
    cos = torch.empty(seq_len, dim // 2, dtype=torch.float64)
    sin = torch.empty_like(cos)
    for m in range(seq_len):
        for i in range(1, dim // 2 + 1):
            angle = m * base ** (-2 * (i - 1) / dim)
            cos[m, i - 1], sin[m, i - 1] = math.cos(angle), math.sin(angle)
    return cos, sin


# -- RotaryEmbedding (Eq. 15) -----------------------------------------------------------------------
@pytest.mark.parametrize("base", [10000, 500000])
def test_table_follows_eq_15(base: int) -> None:
    rope = RotaryEmbedding(dim=6, max_seq_len=40, base=base)
    cos, sin = rope(torch.zeros(1, dtype=torch.float64), 40)
    expected_cos, expected_sin = _table(6, 40, base)
    torch.testing.assert_close(cos, expected_cos, rtol=0, atol=1e-13)
    torch.testing.assert_close(sin, expected_sin, rtol=0, atol=1e-13)


def test_first_frequency_is_one_and_frequencies_decrease() -> None:
    rope = RotaryEmbedding(dim=8, max_seq_len=4)
    _, sin = rope(torch.zeros(1, dtype=torch.float64), 2)
    theta = torch.asin(sin[1])  # m = 1: the angles are θ_i themselves (all below π/2)
    assert theta[0].item() == pytest.approx(1.0, abs=1e-15)
    assert torch.all(theta[1:] < theta[:-1])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
def test_tables_have_x_dtype_and_are_rounded_once_from_float64(dtype: torch.dtype) -> None:
    rope = RotaryEmbedding(dim=64, max_seq_len=4096)
    cos, sin = rope(torch.zeros(2, 3, dtype=dtype), 4096)
    assert cos.dtype == sin.dtype == dtype and cos.shape == sin.shape == (4096, 32)
    reference = RotaryEmbedding(dim=64, max_seq_len=4096)(torch.zeros(1, dtype=torch.float64), 4096)[0]
    assert torch.equal(cos, reference.to(dtype)), "one rounding of the float64 table, at large m too"


def test_module_casts_do_not_round_the_table() -> None:
    rope = RotaryEmbedding(dim=16, max_seq_len=4096).half()  # what .to(dtype) does to buffers
    cos, _ = rope(torch.zeros(1, dtype=torch.float32), 4096)
    expected = _table(16, 4096)[0][-1].to(torch.float32)
    torch.testing.assert_close(cos[-1], expected, rtol=0, atol=1e-6)


def test_seq_len_may_be_any_prefix() -> None:
    rope = RotaryEmbedding(dim=4, max_seq_len=10)
    full_cos, full_sin = rope(torch.zeros(1), 10)
    for n in (0, 1, 7, 10):
        cos, sin = rope(torch.zeros(1), n)
        assert torch.equal(cos, full_cos[:n]) and torch.equal(sin, full_sin[:n])


def test_seq_len_past_max_is_a_clear_error() -> None:
    rope = RotaryEmbedding(dim=4, max_seq_len=10)
    with pytest.raises(ValueError, match=r"seq_len 11 .*max_seq_len 10"):
        rope(torch.zeros(1), 11)


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"dim": 5}, "even"), ({"dim": 0}, "even"), ({"dim": 4, "max_seq_len": 0}, "max_seq_len")]
)
def test_invalid_configuration(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RotaryEmbedding(**kwargs)


# -- apply_rotary_emb (Eq. 34) ----------------------------------------------------------------------
def _rotate_pairs(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, pairs: list[tuple[int, int]]) -> torch.Tensor:
    """R x with each pair (a, b) of features turned by its table column, written as 2×2 rotations."""
    out = x.clone()
    for i, (a, b) in enumerate(pairs):
        c, s = cos[:, i], sin[:, i]  # (L,)
        out[..., a] = x[..., a] * c - x[..., b] * s
        out[..., b] = x[..., a] * s + x[..., b] * c
    return out


def _inputs(d: int = 8, length: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, length, d, generator=g, dtype=torch.float64)
    cos, sin = RotaryEmbedding(d, max_seq_len=length + 100)(x, length + 100)
    return x, cos[100:], sin[100:]  # positions 100..


def test_half_layout_pairs_i_with_i_plus_half() -> None:
    x, cos, sin = _inputs()
    expected = _rotate_pairs(x, cos, sin, [(i, i + 4) for i in range(4)])
    torch.testing.assert_close(apply_rotary_emb(x, cos, sin), expected, rtol=0, atol=1e-14)


def test_interleaved_layout_is_eq_34() -> None:
    x, cos, sin = _inputs()
    expected = _rotate_pairs(x, cos, sin, [(2 * i, 2 * i + 1) for i in range(4)])
    torch.testing.assert_close(apply_rotary_emb_interleaved(x, cos, sin), expected, rtol=0, atol=1e-14)


def test_layouts_differ_by_a_fixed_permutation() -> None:
    x, cos, sin = _inputs()
    perm = torch.tensor([0, 2, 4, 6, 1, 3, 5, 7])  # interleaved feature order → half order
    torch.testing.assert_close(apply_rotary_emb_interleaved(x, cos, sin)[..., perm], apply_rotary_emb(x[..., perm], cos, sin))
    assert not torch.allclose(apply_rotary_emb_interleaved(x, cos, sin), apply_rotary_emb(x, cos, sin))


@pytest.mark.parametrize("rotate", [apply_rotary_emb, apply_rotary_emb_interleaved])
def test_scores_depend_on_relative_position_only(rotate) -> None:
    x, _, _ = _inputs(length=3)
    rope = RotaryEmbedding(8, max_seq_len=5000)
    cos, sin = rope(x, 5000)
    near = rotate(x, cos[:3], sin[:3])
    far = rotate(x, cos[4000:4003], sin[4000:4003])
    torch.testing.assert_close(near @ near.transpose(-1, -2), far @ far.transpose(-1, -2), rtol=0, atol=1e-11)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_output_has_x_dtype_even_with_float32_tables(dtype: torch.dtype) -> None:
    x, cos, sin = _inputs()
    out = apply_rotary_emb(x.to(dtype), cos.float(), sin.float())
    assert out.dtype == dtype


def test_gradient_is_the_inverse_rotation() -> None:
    x, cos, sin = _inputs(d=4, length=3)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: apply_rotary_emb(t, cos, sin), (x,))
    g = torch.randn_like(x)
    (grad,) = torch.autograd.grad(apply_rotary_emb(x, cos, sin), x, g)
    torch.testing.assert_close(grad, apply_rotary_emb(g, cos, -sin))


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        (((1, 1, 2, 5), (2, 2), (2, 2)), "D even"),
        (((1, 1, 2, 4), (2, 2), (2, 1)), "cos, sin"),
        (((1, 1, 2, 4), (2, 4), (2, 4)), "D/2"),
    ],
)
def test_mismatched_shapes_are_refused(shapes: tuple, message: str) -> None:
    x, cos, sin = (torch.zeros(s) for s in shapes)
    with pytest.raises(ValueError, match=message):
        apply_rotary_emb(x, cos, sin)
