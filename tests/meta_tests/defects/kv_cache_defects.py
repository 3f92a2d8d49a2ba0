"""Deliberately wrong key-value caches (spec ``kv_cache``, specs/kv_cache.yaml).

Every class has the constructor of ``implementations.kv_cache.KVCache``
``(batch_size, max_seq_len, n_heads, head_dim, device)`` with ``update(k, v) -> (K, V)`` and
``reset()``, and is wrong in exactly one way (the guide's cache in two); each docstring says what is
wrong and which pattern check of the spec must catch it. ``top_left_decode_attention`` is a wrong
``attention`` option for the ``causal_decoding`` check. ``tests/meta_tests/tables/kv_cache.py``
lists the check that must catch each.
"""

from __future__ import annotations

import torch
from torch import Tensor

from implementations.attention import attention_manual
from implementations.kv_cache import CacheOverflowError, KVCache


class GuideKVCache:
    """The implementation guide's cache: float32 zeros whatever the inputs, and no capacity check.

    Float16/bfloat16 inputs come back as float32 (caught by ``append_cache:dtype_device``), float64
    inputs are rounded to float32 (also ``append_cache:contents``). Past capacity the slice
    assignment raises an unclear RuntimeError, or, with the cache exactly full and an update of
    length 1, broadcasts into an empty slice and still advances the length (``append_cache:overflow``).
    """

    def __init__(self, batch_size: int, max_seq_len: int, n_heads: int, head_dim: int, device: torch.device) -> None:
        self.max_seq_len, self.current_len = max_seq_len, 0
        self.k_cache = torch.zeros(batch_size, n_heads, max_seq_len, head_dim, device=device)  # float32
        self.v_cache = torch.zeros(batch_size, n_heads, max_seq_len, head_dim, device=device)

    def update(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        end = self.current_len + k.size(2)
        self.k_cache[:, :, self.current_len : end] = k
        self.v_cache[:, :, self.current_len : end] = v
        self.current_len = end
        return self.k_cache[:, :, :end], self.v_cache[:, :, :end]

    def reset(self) -> None:
        self.current_len = 0


class ResetKeepsLength(KVCache):
    """``reset()`` zeroes the storage but leaves the length: updates after a reset append after stale zeros.

    Caught by ``append_cache:contents`` (the returned K is longer than the updates since the reset).
    """

    def reset(self) -> None:
        if self.k_cache is not None and self.v_cache is not None:
            self.k_cache.zero_()
            self.v_cache.zero_()


class ReturnsWholeBuffer(KVCache):
    """Returns the whole (B, H, max_seq_len, Dh) storage instead of ``[:, :, :len]``.

    Caught by ``append_cache:contents`` (shape). Right only when the cache is exactly full.
    """

    def update(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        super().update(k, v)
        assert self.k_cache is not None and self.v_cache is not None
        return self.k_cache, self.v_cache


class OffByOneOffset(KVCache):
    """Writes each update from ``len - 1`` (the last index, mistaken for the length): it overwrites the
    previous update's last position and leaves its own last position stale.

    Caught by ``append_cache:contents``. Right when every update but the last is empty.
    """

    def update(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        self._validate(k, v)
        seq_len, start = k.size(2), max(self._len - 1, 0)
        end = self._len + seq_len
        if end > self.max_seq_len:
            raise CacheOverflowError(f"an update of {seq_len} positions needs {end}; capacity {self.max_seq_len}")
        if self.k_cache is None or self.v_cache is None:
            self._allocate(k.dtype)
        assert self.k_cache is not None and self.v_cache is not None
        self.k_cache[:, :, start : start + seq_len] = k
        self.v_cache[:, :, start : start + seq_len] = v
        self._len = end
        return self.k_cache[:, :, :end], self.v_cache[:, :, :end]


class AddsZero(KVCache):
    """Stores ``k + 0.0`` instead of copying ``k``: equal in value, but −0.0 becomes +0.0.

    Caught by ``append_cache:contents`` only because it compares bits and draws signed zeros; the
    measured |error| is 0.
    """

    def update(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        return super().update(k + 0.0, v + 0.0)


class MutatesBeforeRaising(KVCache):
    """Advances the length before the capacity check, so a refused update still grows the cache.

    The error itself is clear (a ValueError naming capacity and length). Caught by
    ``append_cache:overflow`` (the next update returns more positions than before the refused one).
    """

    def update(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        self._validate(k, v)
        seq_len = k.size(2)
        self._len += seq_len
        if self._len > self.max_seq_len:
            raise CacheOverflowError(f"an update of {seq_len} positions needs {self._len}; capacity {self.max_seq_len}")
        if self.k_cache is None or self.v_cache is None:
            self._allocate(k.dtype)
        assert self.k_cache is not None and self.v_cache is not None
        start = self._len - seq_len
        self.k_cache[:, :, start : self._len] = k
        self.v_cache[:, :, start : self._len] = v
        return self.k_cache[:, :, : self._len], self.v_cache[:, :, : self._len]


class UnclearOverflowError(KVCache):
    """Refuses an update past capacity without changing anything, but with ``IndexError("out of range")``.

    Caught by ``append_cache:overflow`` (neither a ValueError nor the implementation's own class,
    and the message names neither the capacity nor the length).
    """

    def update(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        if self._len + k.size(2) > self.max_seq_len:
            raise IndexError("out of range")
        return super().update(k, v)


class ShiftingBuffer(KVCache):
    """Keeps the newest position at the end of the storage: each update shifts everything left and
    returns a view of the last ``len`` positions. Every result is right when returned, but the next
    update shifts the storage under the views returned before.

    Caught by ``append_cache:history``; ``append_cache:contents`` cannot see it.
    """

    def update(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        self._validate(k, v)
        seq_len = k.size(2)
        end = self._len + seq_len
        if end > self.max_seq_len:
            raise CacheOverflowError(f"an update of {seq_len} positions needs {end}; capacity {self.max_seq_len}")
        if self.k_cache is None or self.v_cache is None:
            self._allocate(k.dtype)
        assert self.k_cache is not None and self.v_cache is not None
        cap = self.max_seq_len
        for store, new in ((self.k_cache, k), (self.v_cache, v)):
            store.copy_(torch.roll(store, -seq_len, dims=2))  # (B, H, cap, Dh), oldest first
            store[:, :, cap - seq_len :] = new
        self._len = end
        return self.k_cache[:, :, cap - end :], self.v_cache[:, :, cap - end :]


class IgnoresDevice(KVCache):
    """Allocates its storage on the CPU whatever ``device`` says, copying CUDA inputs to the host.

    Caught by ``append_cache:dtype_device`` on CUDA only (on the CPU it is right).
    """

    def __init__(self, batch_size: int, max_seq_len: int, n_heads: int, head_dim: int, device: torch.device = "cpu") -> None:
        super().__init__(batch_size, max_seq_len, n_heads, head_dim, device="cpu")

    def _validate(self, k: Tensor, v: Tensor) -> None:
        super()._validate(k.cpu(), v.cpu())

    def update(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        return super().update(k.cpu(), v.cpu())


def top_left_decode_attention(q: Tensor, K: Tensor, V: Tensor) -> Tensor:
    """Attends through the cache with SDPA's top-left ``is_causal``: query i sees keys 0..i, not
    0..Lk − Lq + i, so a decoded position ignores most of the cache.

    Caught by ``append_cache:causal_decoding`` (as its ``attention`` option). Right when Lq = Lk
    (the first update after a reset).
    """
    return attention_manual(q, K, V, is_causal=True)
