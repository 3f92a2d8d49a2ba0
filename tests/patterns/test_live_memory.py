"""LiveBytes: peak bytes of the storages a computation holds at once."""

from __future__ import annotations

import torch

from conformance.patterns.helpers.live_memory import LiveBytes


def test_counts_intermediates_alive_together_not_inputs() -> None:
    x = torch.ones(1000)  # 4000 bytes, excluded
    with LiveBytes(exclude=[x]) as meter:
        y = x * 2  # 4000
        z = y + 1  # 4000, while y is alive
        del y
        w = z * 3  # 4000 while z alive; y already freed
    assert meter.peak == 8000
    assert meter.current == 8000  # z and w are still alive
    del z, w


def test_views_share_their_storage() -> None:
    x = torch.ones(100, 10)
    with LiveBytes(exclude=[x]) as meter:
        y = x * 1  # 4000
        views = [y[i] for i in range(100)]  # no new storage
    assert meter.peak == 4000
    del views, y


def test_quadratic_and_linear_growth_are_told_apart() -> None:
    peaks = {}
    for n in (64, 128):
        q = torch.randn(n, 8)
        with torch.no_grad(), LiveBytes(exclude=[q]) as meter:
            torch.softmax(q @ q.T, -1) @ q  # n × n scores
        peaks[n] = meter.peak
    assert peaks[128] / peaks[64] > 3.5
