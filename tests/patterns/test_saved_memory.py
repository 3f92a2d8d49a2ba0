"""Unit tests for conformance.patterns.helpers.saved_memory: bytes saved for backward, counted by storage."""

from __future__ import annotations

import pytest
import torch
from torch.utils.checkpoint import checkpoint

from conformance.patterns import kinds
from conformance.patterns.helpers.saved_memory import distinct_bytes, saved_for_backward, storage_key


def test_each_storage_counted_once_views_and_duplicates_included() -> None:
    a = torch.zeros(8, dtype=torch.float32)
    assert distinct_bytes([a, a, a[2:5], a.view(2, 4)]) == 32
    assert distinct_bytes([]) == 0
    assert storage_key(a) == storage_key(a[3:])


def test_counts_what_autograd_saves_and_leaves_out_excluded_storages() -> None:
    w = torch.randn(4, 3, requires_grad=True)
    x = torch.randn(5, 4)
    with saved_for_backward(exclude=[w]) as saved:
        h = x @ w  # saves x for w's gradient (w itself only if x required grad)
        y = torch.exp(h)  # saves its result
    assert saved.total_bytes == x.nbytes + y.nbytes
    assert saved.saved >= 2
    with saved_for_backward() as without_exclusion:
        x.requires_grad_(True)
        x @ w  # now w is saved too, and counted
    assert without_exclusion.total_bytes == x.nbytes + w.nbytes


def test_nothing_is_counted_under_no_grad_or_outside_the_context() -> None:
    w = torch.randn(3, requires_grad=True)
    with saved_for_backward() as saved, torch.no_grad():
        torch.tanh(w)
    torch.tanh(w)  # after the context: not counted
    assert saved.total_bytes == 0 and saved.saved == 0


def test_hooks_leave_autograd_unchanged() -> None:
    w = torch.randn(6, requires_grad=True)
    with saved_for_backward():
        y = torch.sin(w).sum()
    (g,) = torch.autograd.grad(y, w)
    assert torch.equal(g, torch.cos(w))


@pytest.mark.parametrize("use_reentrant", [False, True])
def test_a_checkpointed_region_is_seen_as_its_input_only(use_reentrant: bool) -> None:
    x = torch.randn(4, 5, requires_grad=True)
    w = torch.randn(5, 5, requires_grad=True)
    region = lambda h: torch.tanh(torch.tanh(h @ w) @ w)  # noqa: E731 -- plain: saves h, two tanh outputs, the middle
    with saved_for_backward(exclude=[w]) as plain:
        region(x)
    with saved_for_backward(exclude=[w]) as checkpointed:
        checkpoint(region, x, use_reentrant=use_reentrant)
    assert plain.total_bytes == 3 * x.nbytes
    assert checkpointed.total_bytes == x.nbytes


def test_released_references_keep_the_totals() -> None:
    x = torch.randn(3, requires_grad=True)
    with saved_for_backward() as saved:
        torch.exp(x)
    assert saved.total_bytes == x.nbytes and not saved._alive


def test_helper_module_is_not_a_kind() -> None:
    assert "saved_memory" not in kinds()
    assert "checkpoint_equivalence" in kinds()
