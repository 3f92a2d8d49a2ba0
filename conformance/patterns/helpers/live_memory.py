"""Peak bytes of tensors alive during a call, counted op by op (any device, deterministic).

A :class:`~torch.utils._python_dispatch.TorchDispatchMode` sees every tensor an operation creates;
each new storage is counted while some tensor on it is alive (``weakref.finalize``), so the peak
is what the computation itself holds at once — independent of the caching allocator, of other
processes and of the device. Storages of the inputs are not counted.

>>> import torch
>>> x = torch.ones(1000)
>>> with LiveBytes(exclude=[x]) as meter:
...     y = (x * 2) + 1  # x * 2 (4000 bytes) is alive while + 1 allocates the result (4000 bytes)
>>> meter.peak
8000
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class LiveBytes(TorchDispatchMode):
    """Counts the bytes of the storages created inside the ``with`` block that are alive."""

    def __init__(self, exclude: Iterable[torch.Tensor] = ()) -> None:
        super().__init__()
        self.excluded = {t.untyped_storage().data_ptr() for t in exclude}
        self.live: dict[int, list[int]] = {}  # data_ptr -> [bytes, tensors alive on it]
        self.current = 0
        self.peak = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for value in tree_flatten(out)[0]:
            if isinstance(value, torch.Tensor):
                self._track(value)
        return out

    def _track(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        ptr = storage.data_ptr()
        if ptr == 0 or ptr in self.excluded:
            return
        entry = self.live.get(ptr)
        if entry is None:
            entry = self.live[ptr] = [storage.nbytes(), 0]
            self.current += entry[0]
            self.peak = max(self.peak, self.current)
        entry[1] += 1
        weakref.finalize(tensor, self._release, ptr)

    def _release(self, ptr: int) -> None:
        entry = self.live.get(ptr)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            self.current -= entry[0]
            del self.live[ptr]
