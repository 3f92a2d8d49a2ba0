"""Unit tests for implementations.attention beyond the harness's generic checks."""

import math

import pytest
import torch
import torch.nn.functional as F

from implementations import attention_manual, attention_with_flash

PATHS = [attention_manual, attention_with_flash]


def _qkv(lq: int, lk: int, dtype: torch.dtype = torch.float64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    Q = torch.randn(2, 3, lq, 8, generator=g, dtype=dtype)  # (B, H, Lq, Dk)
    K = torch.randn(2, 3, lk, 8, generator=g, dtype=dtype)  # (B, H, Lk, Dk)
    V = torch.randn(2, 3, lk, 4, generator=g, dtype=dtype)  # (B, H, Lk, Dv)
    return Q, K, V


def _mask(lq: int, lk: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(2, 1, lq, lk, generator=g) > 0.4  # (B, 1, Lq, Lk)
    mask[..., 0] = True  # key 0 is causal-visible to every query: no empty rows
    return mask


@pytest.mark.parametrize("attn", PATHS)
def test_dropout_zero_is_deterministic(attn):
    Q, K, V = _qkv(5, 7)
    torch.manual_seed(1)
    a = attn(Q, K, V, dropout_p=0.0)
    torch.manual_seed(2)
    b = attn(Q, K, V, dropout_p=0.0)
    assert torch.equal(a, b)


@pytest.mark.parametrize("attn", PATHS)
def test_dropout_changes_output(attn):
    Q, K, V = _qkv(5, 7)
    torch.manual_seed(0)
    assert not torch.allclose(attn(Q, K, V, dropout_p=0.5), attn(Q, K, V))


@pytest.mark.parametrize("attn", PATHS)
def test_dropout_mean_over_seeds_approaches_no_dropout_output(attn):
    # Dropout keeps each weight a_ij with prob 1-p and scales it by 1/(1-p), so
    # the factor z_ij has mean 1 and variance p/(1-p), independent across j.
    # Output o = sum_j a_ij z_ij v_j is linear in z, hence E[o] = the no-dropout
    # output and Var[o_id] = p/(1-p) * sum_j a_ij^2 v_jd^2. By the CLT the mean
    # of N draws is within 5 standard errors sqrt(Var/N) of E[o] except with
    # probability ~6e-7 per entry; the seed is fixed, so the test is stable.
    # Missing the 1/(1-p) rescale would shift the mean by p * |o|, far outside.
    p, n = 0.3, 2000
    Q, K, V = _qkv(4, 6)
    Q, K, V = Q[0, 0], K[0, 0], V[0, 0]  # (Lq, Dk), (Lk, Dk), (Lk, Dv)
    expected = attn(Q, K, V)
    weights = torch.softmax(Q @ K.T / math.sqrt(Q.size(-1)), dim=-1)  # (Lq, Lk)
    var = p / (1 - p) * (weights**2 @ V**2)  # (Lq, Dv)
    torch.manual_seed(0)
    draws = torch.stack([attn(Q, K, V, dropout_p=p) for _ in range(n)])  # (N, Lq, Dv)
    z = (draws.mean(0) - expected).abs() / (var / n).sqrt()
    assert z.max() < 5.0
    # The spread matches the analytic variance too (sample std within 10%).
    ratio = draws.std(0) / var.sqrt()
    assert ((ratio - 1).abs() < 0.1).all()


@pytest.mark.parametrize(("lq", "lk"), [(5, 7), (7, 5)])
def test_manual_equals_sdpa_path_causal_and_mask_lq_ne_lk(lq, lk):
    Q, K, V = _qkv(lq, lk)
    mask = _mask(lq, lk)
    flash = attention_with_flash(Q, K, V, mask=mask, is_causal=True)
    manual = attention_manual(Q, K, V, mask=mask, is_causal=True)
    torch.testing.assert_close(manual, flash)
    # Both equal SDPA with the explicit AND of mask and top-left tril(Lq, Lk).
    both = mask & torch.ones(lq, lk, dtype=torch.bool).tril()  # (B, 1, Lq, Lk)
    ref = F.scaled_dot_product_attention(Q, K, V, attn_mask=both)
    torch.testing.assert_close(manual, ref)


@pytest.mark.parametrize(("lq", "lk"), [(5, 7), (7, 5)])
def test_causal_alignment_is_sdpa_top_left(lq, lk):
    Q, K, V = _qkv(lq, lk)
    ref = F.scaled_dot_product_attention(Q, K, V, is_causal=True)
    torch.testing.assert_close(attention_manual(Q, K, V, is_causal=True), ref)
    torch.testing.assert_close(attention_with_flash(Q, K, V, is_causal=True), ref)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_with_bool_mask_both_paths_agree(dtype):
    Q, K, V = _qkv(5, 7, dtype=dtype)
    mask = _mask(5, 7)
    ref = attention_manual(*(t.double() for t in (Q, K, V)), mask=mask, is_causal=True)
    for attn in PATHS:
        out = attn(Q, K, V, mask=mask, is_causal=True)
        assert out.dtype == dtype
        torch.testing.assert_close(out.double(), ref, atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("attn", PATHS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.int64, torch.uint8])
def test_non_bool_mask_raises(attn, dtype):
    Q, K, V = _qkv(5, 7)
    with pytest.raises(ValueError, match="mask must be bool"):
        attn(Q, K, V, mask=torch.ones(5, 7, dtype=dtype))


@pytest.mark.parametrize("attn", PATHS)
@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan")])
def test_bad_dropout_p_raises(attn, p):
    Q, K, V = _qkv(5, 7)
    with pytest.raises(ValueError, match=r"dropout_p must be in \[0, 1\)"):
        attn(Q, K, V, dropout_p=p)


@pytest.mark.parametrize("attn", PATHS)
def test_shape_mismatches_raise(attn):
    Q, K, V = _qkv(5, 7)
    with pytest.raises(ValueError, match="d_k mismatch"):
        attn(Q, K[..., :4], V)
    with pytest.raises(ValueError, match="Lk mismatch"):
        attn(Q, K, V[..., :6, :])
    with pytest.raises(ValueError, match="does not broadcast"):
        attn(Q, K, V, mask=torch.ones(5, 6, dtype=torch.bool))
