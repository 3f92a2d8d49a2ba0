"""RMSNorm-shaped implementations that misbehave the way real kernels can: abort the process, hang, or exit.

Used by ``tests/test_robustness.py`` through ``--impl rmsnorm=tests/robustness/planted.py:NAME``. Each is
a module with the spec's interface (``__init__(dim, eps)``, a ``weight``, ``forward(x)``); only ``forward``
misbehaves, so building the cases (which imports and inspects them) is unaffected.
"""

from __future__ import annotations

import os
import sys
import time

import torch
from torch import Tensor, nn


class _Norm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def _norm(self, x: Tensor) -> Tensor:
        h = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        return (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight.to(h.dtype)).to(x.dtype)


class good_norm(_Norm):  # noqa: N801 (named like the other planted refs)
    """A correct RMSNorm: its rows must survive the others' crashes."""

    def forward(self, x: Tensor) -> Tensor:
        return self._norm(x)


class abort_norm(_Norm):  # noqa: N801
    """Aborts the whole process on its first call (as a failed C assertion in a kernel does): SIGABRT."""

    def forward(self, x: Tensor) -> Tensor:
        os.abort()


class hang_norm(_Norm):  # noqa: N801
    """Never returns (as a deadlocked kernel does)."""

    def forward(self, x: Tensor) -> Tensor:
        while True:
            time.sleep(3600)


class exit_norm(_Norm):  # noqa: N801
    """Calls ``sys.exit(3)`` on its first call."""

    def forward(self, x: Tensor) -> Tensor:
        sys.exit(3)


class interrupt_norm(_Norm):  # noqa: N801
    """Raises ``KeyboardInterrupt`` on its first call (what a user's ^C does in the middle of a case)."""

    def forward(self, x: Tensor) -> Tensor:
        raise KeyboardInterrupt
