"""Bytes of tensors saved for backward, counted with ``torch.autograd.graph.saved_tensors_hooks``.

A helper for pattern checks that claim a memory saving (gradient checkpointing, Chen et al. 2016,
Sec. 4.3): the claim is measured, not assumed. Every tensor autograd saves while the context is
open passes through the pack hook; the count is the sum of the sizes of the *distinct storages*
those tensors live in (a tensor saved twice, or two views of one buffer, hold the memory once),
leaving out excluded storages (the parameters, which exist whether or not anything is saved).
The count is deterministic and the same on CPU and CUDA, unlike an allocator's peak.

Tensors saved inside a region whose own hooks take precedence (the inner hooks of
``torch.utils.checkpoint`` with ``use_reentrant=False``) are not seen: they are not kept either,
which is the point. The inputs such a region keeps for its recomputation are saved outside it and
are counted.

>>> import torch
>>> w = torch.randn(3, 3, requires_grad=True)
>>> x = torch.randn(2, 3)
>>> with saved_for_backward(exclude=[w]) as saved:
...     y = torch.tanh(x @ w)  # saves x (for w's gradient) and tanh's output
>>> saved.total_bytes == 2 * 3 * 4 + 2 * 3 * 4
True
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor


def storage_key(t: Tensor) -> tuple[str, int]:
    """Identifies the storage ``t`` lives in, while it is alive: (device, address)."""
    return str(t.device), t.untyped_storage().data_ptr()


def distinct_bytes(tensors: Iterable[Tensor]) -> int:
    """Total size of the distinct storages of ``tensors`` (each storage counted once).

    >>> a = torch.zeros(4, dtype=torch.float64)
    >>> distinct_bytes([a, a[:2], torch.zeros(3, dtype=torch.float16)])
    38
    """
    sizes: dict[tuple[str, int], int] = {}
    for t in tensors:
        sizes[storage_key(t)] = t.untyped_storage().nbytes()
    return sum(sizes.values())


@dataclass
class SavedTensors:
    """What one forward saved for backward: distinct storages (address → bytes) and their count."""

    excluded: frozenset[tuple[str, int]]
    storages: dict[tuple[str, int], int] = field(default_factory=dict)
    saved: int = 0  # tensors packed, duplicates and excluded ones included
    _alive: list[Tensor] = field(default_factory=list, repr=False)

    def pack(self, t: Tensor) -> Tensor:
        self.saved += 1
        key = storage_key(t)
        if key not in self.excluded:
            self.storages[key] = t.untyped_storage().nbytes()
            self._alive.append(t)  # a freed storage's address cannot be reused within one measurement
        return t

    @property
    def total_bytes(self) -> int:
        return sum(self.storages.values())

    def release(self) -> None:
        """Drops the references kept for the measurement (the totals stay)."""
        self._alive.clear()


@contextlib.contextmanager
def saved_for_backward(exclude: Iterable[Tensor] = ()) -> Iterator[SavedTensors]:
    """Counts what autograd saves while the context is open; ``exclude``'s storages are not counted.

    The hooks pack and unpack the tensor itself, so autograd behaves as without them.
    """
    saved = SavedTensors(excluded=frozenset(storage_key(t) for t in exclude))
    try:
        with torch.autograd.graph.saved_tensors_hooks(saved.pack, _unpack):
            yield saved
    finally:
        saved.release()


def _unpack(t: Tensor) -> Tensor:
    return t
