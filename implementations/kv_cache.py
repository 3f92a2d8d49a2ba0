"""Key-value cache for autoregressive Transformer decoding (Pope et al. 2022, arXiv 2211.05102).

During decoding each new position's keys and values are appended to a preallocated buffer, and
attention (Vaswani et al. 2017, Eq. 1) of the new queries runs over everything cached so far. A
query at absolute position p may attend keys 0..p, so with Lq new queries over Lk cached keys the
causal mask is aligned *bottom-right* (``tril(ones(Lq, Lk), diagonal=Lk - Lq)``); the top-left
``is_causal`` of ``F.scaled_dot_product_attention`` is wrong whenever Lq < Lk.

Contract (spec ``kv_cache``, specs/kv_cache.yaml):

- ``update(k, v)`` appends ``k``, ``v`` of shape (B, H, L, Dh), L >= 0, and returns the keys and
  values of every position since the last ``reset()``, exactly (a copy, no arithmetic).
- The storage takes its dtype from the first update (or from the ``dtype`` keyword) and lives on
  ``device``; it never casts, and refuses inputs of another dtype or device.
- An update past ``max_seq_len`` raises :class:`CacheOverflowError` and changes nothing.
- The returned tensors are views of the storage: later updates write only beyond their length,
  so they stay valid until the next ``reset()``; keep a ``clone()`` to hold them past it.

>>> cache = KVCache(batch_size=1, max_seq_len=4, n_heads=2, head_dim=3, device="cpu")
>>> k = v = torch.ones(1, 2, 3, 3, dtype=torch.float16)
>>> K, V = cache.update(k, v)
>>> K.shape, K.dtype, len(cache)
(torch.Size([1, 2, 3, 3]), torch.float16, 3)
>>> cache.update(k, v)
Traceback (most recent call last):
    ...
implementations.kv_cache.CacheOverflowError: KVCache capacity exceeded: an update of 3 positions needs 6, ... is 4 ...
"""

from __future__ import annotations

import torch
from torch import Tensor

from implementations.attention import attention_manual


class CacheOverflowError(ValueError):
    """An update that does not fit in the cache's capacity; the cache is left unchanged."""


class KVCache:
    """Preallocated per-layer key/value cache: (B, H, max_seq_len, Dh) keys and values.

    Args:
        batch_size: B.
        max_seq_len: the capacity, in positions.
        n_heads: H.
        head_dim: Dh.
        device: where the storage lives; ``update`` refuses tensors elsewhere.
        dtype: the storage dtype; ``None`` (default) takes the dtype of the first ``update``'s ``k``.
    """

    def __init__(
        self,
        batch_size: int,
        max_seq_len: int,
        n_heads: int,
        head_dim: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype | None = None,
    ) -> None:
        sizes = {"batch_size": batch_size, "max_seq_len": max_seq_len, "n_heads": n_heads, "head_dim": head_dim}
        for name, value in sizes.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if dtype is not None and not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating-point dtype, got {dtype}")
        self.batch_size, self.max_seq_len, self.n_heads, self.head_dim = batch_size, max_seq_len, n_heads, head_dim
        self.device = torch.device(device)
        self._len = 0
        self.k_cache: Tensor | None = None
        self.v_cache: Tensor | None = None
        if dtype is not None:
            self._allocate(dtype)

    @property
    def current_len(self) -> int:
        """Positions cached since the last ``reset()``."""
        return self._len

    def __len__(self) -> int:
        return self._len

    def _allocate(self, dtype: torch.dtype) -> None:
        shape = (self.batch_size, self.n_heads, self.max_seq_len, self.head_dim)  # (B, H, max_seq_len, Dh)
        self.k_cache = torch.zeros(shape, dtype=dtype, device=self.device)
        self.v_cache = torch.zeros(shape, dtype=dtype, device=self.device)

    def _validate(self, k: Tensor, v: Tensor) -> None:
        """Raise ValueError for inputs the cache would have to reshape, cast or move."""
        expected = (self.batch_size, self.n_heads, "L", self.head_dim)
        for name, t in (("k", k), ("v", v)):
            if not isinstance(t, Tensor) or t.dim() != 4:
                raise ValueError(f"{name} must be a 4-D tensor (B, H, L, Dh) = {expected}, got {getattr(t, 'shape', t)!r}")
            if (t.size(0), t.size(1), t.size(3)) != (self.batch_size, self.n_heads, self.head_dim):
                raise ValueError(f"{name} has shape {tuple(t.shape)}, expected (B, H, L, Dh) = {expected}")
            if not t.dtype.is_floating_point:
                raise ValueError(f"{name} must be floating point, got {t.dtype}")
        if k.shape != v.shape or k.dtype != v.dtype or k.device != v.device:
            raise ValueError(f"k and v differ: {tuple(k.shape)} {k.dtype} {k.device} vs {tuple(v.shape)} {v.dtype} {v.device}")
        if self.k_cache is not None and k.dtype != self.k_cache.dtype:
            raise ValueError(f"the cache stores {self.k_cache.dtype}, got {k.dtype} (the cache never casts)")
        if k.device != (self.k_cache.device if self.k_cache is not None else _resolved(self.device)):
            raise ValueError(f"the cache lives on {self.device}, got tensors on {k.device}")

    def update(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append (B, H, L, Dh) keys and values; return all (B, H, len, Dh) since the last reset.

        L = 0 is allowed and returns the current contents. The results are views of the storage,
        valid until the next ``reset()``.

        Raises:
            CacheOverflowError: the update would exceed ``max_seq_len``; nothing is written.
            ValueError: ``k``/``v`` of the wrong shape, dtype or device.
        """
        self._validate(k, v)
        seq_len = k.size(2)
        end = self._len + seq_len
        if end > self.max_seq_len:
            raise CacheOverflowError(
                f"KVCache capacity exceeded: an update of {seq_len} positions needs {end}, but max_seq_len "
                f"(the capacity) is {self.max_seq_len} and {self._len} are in use; nothing was written"
            )
        if self.k_cache is None or self.v_cache is None:
            self._allocate(k.dtype)
        assert self.k_cache is not None and self.v_cache is not None
        self.k_cache[:, :, self._len : end].copy_(k)  # (B, H, L, Dh)
        self.v_cache[:, :, self._len : end].copy_(v)  # (B, H, L, Dh)
        self._len = end
        return self.k_cache[:, :, :end], self.v_cache[:, :, :end]  # (B, H, len, Dh) views

    def reset(self) -> None:
        """Forget every cached position (the storage, and its dtype, are kept)."""
        self._len = 0


def _resolved(device: torch.device) -> torch.device:
    """``cuda`` → ``cuda:<current>``: the device a tensor created on ``device`` reports."""
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def decode_attention(q: Tensor, K: Tensor, V: Tensor) -> Tensor:
    """Attention of the Lq newest positions over all Lk cached ones (Eq. 1, bottom-right causal).

    Query i of ``q`` sits at absolute position Lk - Lq + i and attends keys 0..Lk - Lq + i.

    Args:
        q: (B, H, Lq, Dh) queries of the positions just appended to the cache.
        K, V: (B, H, Lk, Dh) everything the cache returned, Lk >= Lq.

    >>> q, K, V = torch.randn(1, 1, 1, 4), torch.randn(1, 1, 5, 4), torch.randn(1, 1, 5, 4)
    >>> torch.allclose(decode_attention(q, K, V), attention_manual(q, K, V))  # the last query sees every key
    True
    """
    Lq, Lk = q.size(-2), K.size(-2)
    if Lq > Lk:
        raise ValueError(f"more queries ({Lq}) than cached keys ({Lk}): append before attending")
    allowed = torch.ones(Lq, Lk, dtype=torch.bool, device=q.device).tril(diagonal=Lk - Lq)  # (Lq, Lk)
    return attention_manual(q, K, V, mask=allowed)  # (B, H, Lq, Dh)
