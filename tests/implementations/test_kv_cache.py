"""Unit tests for implementations.kv_cache beyond the harness's append_cache checks."""

from __future__ import annotations

import pytest
import torch

from implementations.attention import attention_manual
from implementations.kv_cache import CacheOverflowError, KVCache, decode_attention

B, H, DH = 2, 3, 4


def _chunk(length: int, dtype: torch.dtype = torch.float32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, H, length, DH, generator=g, dtype=torch.float64).to(dtype)  # (B, H, L, Dh)


def _cache(capacity: int = 8, **kwargs) -> KVCache:
    return KVCache(B, capacity, H, DH, "cpu", **kwargs)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
def test_returns_the_concatenation_in_the_inputs_dtype(dtype: torch.dtype) -> None:
    cache = _cache()
    ks = [_chunk(n, dtype, seed) for seed, n in enumerate((3, 1, 0, 2))]
    for i, k in enumerate(ks):
        K, V = cache.update(k, -k)
        expected = torch.cat(ks[: i + 1], dim=2)  # (B, H, len, Dh)
        assert K.dtype == dtype and torch.equal(K, expected) and torch.equal(V, -expected)
    assert len(cache) == cache.current_len == 6


def test_the_guide_signature_still_works_positionally() -> None:
    cache = KVCache(1, 4, 2, 3, torch.device("cpu"))
    K, _ = cache.update(torch.ones(1, 2, 1, 3, dtype=torch.float64), torch.ones(1, 2, 1, 3, dtype=torch.float64))
    assert K.dtype == torch.float64


def test_storage_dtype_is_fixed_by_the_first_update_and_never_cast() -> None:
    cache = _cache()
    cache.update(_chunk(1, torch.float16), _chunk(1, torch.float16))
    cache.reset()
    with pytest.raises(ValueError, match="stores torch.float16, got torch.float32"):
        cache.update(_chunk(1), _chunk(1))


def test_dtype_keyword_allocates_eagerly() -> None:
    cache = _cache(dtype=torch.bfloat16)
    assert cache.k_cache is not None and cache.k_cache.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="never casts"):
        cache.update(_chunk(1), _chunk(1))
    with pytest.raises(ValueError, match="floating-point"):
        _cache(dtype=torch.int32)


def test_empty_update_returns_the_current_contents() -> None:
    cache = _cache()
    K, V = cache.update(_chunk(0), _chunk(0))
    assert K.shape == (B, H, 0, DH) and len(cache) == 0
    k = _chunk(2)
    cache.update(k, k)
    K, _ = cache.update(_chunk(0), _chunk(0))
    assert torch.equal(K, k)


def test_overflow_raises_a_clear_error_and_changes_nothing() -> None:
    cache = _cache(capacity=4)
    k = _chunk(3)
    K, _ = cache.update(k, k)
    before = K.clone()
    with pytest.raises(CacheOverflowError, match=r"update of 2 positions needs 5, but max_seq_len \(the capacity\) is 4"):
        cache.update(_chunk(2, seed=1), _chunk(2, seed=1))
    assert issubclass(CacheOverflowError, ValueError)
    assert len(cache) == 3 and torch.equal(K, before)
    K, _ = cache.update(_chunk(1, seed=2), _chunk(1, seed=2))  # exactly full is fine
    assert len(cache) == 4 and torch.equal(K[:, :, :3], before)


def test_reset_forgets_the_contents_but_keeps_the_storage() -> None:
    cache = _cache()
    cache.update(_chunk(5), _chunk(5))
    storage = cache.k_cache
    cache.reset()
    assert len(cache) == 0
    k = _chunk(2, seed=3)
    K, _ = cache.update(k, k)
    assert torch.equal(K, k) and cache.k_cache is storage


def test_results_are_views_that_later_updates_leave_alone_until_reset() -> None:
    cache = _cache()
    first = _chunk(2)
    K1, _ = cache.update(first, first)
    assert K1.data_ptr() == cache.k_cache.data_ptr()  # a view: no copy per step
    cache.update(_chunk(3, seed=1), _chunk(3, seed=1))
    assert torch.equal(K1, first)
    cache.reset()
    cache.update(_chunk(2, seed=2), _chunk(2, seed=2))
    assert not torch.equal(K1, first)  # documented: after a reset, keep a clone


@pytest.mark.parametrize(
    "k, v, words",
    [
        (torch.zeros(B, H, 1), torch.zeros(B, H, 1), "4-D"),
        (torch.zeros(B + 1, H, 1, DH), torch.zeros(B + 1, H, 1, DH), "expected (B, H, L, Dh)"),
        (torch.zeros(B, H, 1, DH + 1), torch.zeros(B, H, 1, DH + 1), "expected (B, H, L, Dh)"),
        (torch.zeros(B, H, 1, DH), torch.zeros(B, H, 2, DH), "k and v differ"),
        (torch.zeros(B, H, 1, DH), torch.zeros(B, H, 1, DH, dtype=torch.float64), "k and v differ"),
        (torch.zeros(B, H, 1, DH, dtype=torch.int64), torch.zeros(B, H, 1, DH, dtype=torch.int64), "floating point"),
    ],
)
def test_bad_inputs_are_refused(k: torch.Tensor, v: torch.Tensor, words: str) -> None:
    cache = _cache()
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        cache.update(k, v)
    assert len(cache) == 0


def test_tensors_on_another_device_are_refused() -> None:
    cache = KVCache(B, 4, H, DH, "meta")
    with pytest.raises(ValueError, match="lives on meta"):
        cache.update(_chunk(1), _chunk(1))
    K, _ = cache.update(torch.empty(B, H, 1, DH, device="meta"), torch.empty(B, H, 1, DH, device="meta"))
    assert K.device.type == "meta"


@pytest.mark.parametrize("name, value", [("batch_size", 0), ("max_seq_len", -1), ("n_heads", 1.5), ("head_dim", True)])
def test_bad_sizes_are_refused(name: str, value: object) -> None:
    sizes = {"batch_size": 1, "max_seq_len": 4, "n_heads": 1, "head_dim": 2, name: value}
    with pytest.raises(ValueError, match=name):
        KVCache(**sizes, device="cpu")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_chunked_decoding_through_the_cache_equals_full_causal_attention(dtype: torch.dtype) -> None:
    n, chunks = 9, (4, 1, 1, 3)  # a prompt, two decoded tokens, a chunk
    Q, K, V = (_chunk(n, dtype, seed) for seed in range(3))
    full = attention_manual(Q, K, V, is_causal=True)  # Lq = Lk: top-left is bottom-right
    cache, start = _cache(capacity=n), 0
    for length in chunks:
        end = start + length
        K_all, V_all = cache.update(K[:, :, start:end], V[:, :, start:end])
        out = decode_attention(Q[:, :, start:end], K_all, V_all)  # (B, H, L, Dh)
        torch.testing.assert_close(out, full[:, :, start:end], rtol=0, atol=10 * torch.finfo(dtype).eps)
        start = end


def test_top_left_alignment_is_wrong_for_decoding() -> None:
    Q, K, V = (_chunk(5, torch.float64, seed) for seed in range(3))
    q = Q[:, :, -1:]  # the newest position attends every key
    assert torch.allclose(decode_attention(q, K, V), attention_manual(q, K, V))
    assert not torch.allclose(attention_manual(q, K, V, is_causal=True), attention_manual(q, K, V))


def test_more_queries_than_keys_is_refused() -> None:
    with pytest.raises(ValueError, match="more queries"):
        decode_attention(_chunk(3), _chunk(2), _chunk(2))
