"""Deliberately wrong chunked attention functions (spec ``chunked_attention``).

Each has the signature of ``implementations.chunked_attention.chunked_attention`` and is wrong in
one way; the docstring names the check that must catch it (``tests/meta_tests/tables/chunked_attention.py``).
"""

import math

import torch
from torch import Tensor


def _chunk_rows(Q: Tensor, K: Tensor, V: Tensor, starts: range, size: int) -> Tensor:
    scale = 1.0 / math.sqrt(Q.size(-1))
    parts = [torch.softmax(Q[..., s : s + size, :] @ K.transpose(-2, -1) * scale, dim=-1) @ V for s in starts]
    return torch.cat(parts, dim=-2) if parts else Q.new_empty((*Q.shape[:-1], V.size(-1)))


def unchunked(Q: Tensor, K: Tensor, V: Tensor, chunk_size: int = 1024) -> Tensor:
    """Ignores chunk_size: all Lq×Lk scores at once. Caught by: ``peak_memory:memory_linear_in_length``."""
    return torch.softmax(Q @ K.transpose(-2, -1) / math.sqrt(Q.size(-1)), dim=-1) @ V


def drops_last_partial_chunk(Q: Tensor, K: Tensor, V: Tensor, chunk_size: int = 1024) -> Tensor:
    """Processes only full chunks (the tail of a non-multiple length is lost). Caught by: ``output_contract``."""
    L = Q.size(-2)
    end = L - L % chunk_size if L >= chunk_size else L  # the tail after the last full chunk is dropped
    return _chunk_rows(Q, K, V, range(0, end, chunk_size), chunk_size)


def keys_chunked_softmax(Q: Tensor, K: Tensor, V: Tensor, chunk_size: int = 1024) -> Tensor:
    """Chunks the keys and normalises within each key chunk, then sums: weights no longer sum to 1.

    Caught by: ``oracle`` and ``invariant:weights_sum_to_one``.
    """
    scale = 1.0 / math.sqrt(Q.size(-1))
    out = 0
    for s in range(0, K.size(-2), chunk_size):
        w = torch.softmax(Q @ K[..., s : s + chunk_size, :].transpose(-2, -1) * scale, dim=-1)
        out = out + w @ V[..., s : s + chunk_size, :]
    return out


def no_scaling(Q: Tensor, K: Tensor, V: Tensor, chunk_size: int = 1024) -> Tensor:
    """Scores not divided by sqrt(d_k). Caught by: ``oracle``."""
    return _chunk_rows(Q * math.sqrt(Q.size(-1)), K, V, range(0, Q.size(-2), chunk_size), chunk_size)


def first_chunk_repeated(Q: Tensor, K: Tensor, V: Tensor, chunk_size: int = 1024) -> Tensor:
    """Every chunk computed from the first chunk's queries (a slicing bug).

    Caught by: ``invariant:query_permutation`` and ``oracle``.
    """
    L = Q.size(-2)
    first = _chunk_rows(Q, K, V, range(0, 1), chunk_size)
    reps = -(-L // max(first.size(-2), 1))
    return torch.cat([first] * reps, dim=-2)[..., :L, :]


def values_squared(Q: Tensor, K: Tensor, V: Tensor, chunk_size: int = 1024) -> Tensor:
    """Values squared (sign kept): not linear in V. Caught by: ``invariant:value_linearity``."""
    return _chunk_rows(Q, K, V * V.abs(), range(0, Q.size(-2), chunk_size), chunk_size)


def keys_permuted_per_chunk(Q: Tensor, K: Tensor, V: Tensor, chunk_size: int = 1024) -> Tensor:
    """Keys reversed but values not: pairs keys with the wrong values. Caught by: ``invariant:key_value_permutation``."""
    return _chunk_rows(Q, K.flip(-2), V, range(0, Q.size(-2), chunk_size), chunk_size)


def detached_values(Q: Tensor, K: Tensor, V: Tensor, chunk_size: int = 1024) -> Tensor:
    """V detached: no gradient reaches V. Caught by: ``gradient``."""
    return _chunk_rows(Q, K, V.detach(), range(0, Q.size(-2), chunk_size), chunk_size)


def upcast_output(Q: Tensor, K: Tensor, V: Tensor, chunk_size: int = 1024) -> Tensor:
    """Returns float32 for half inputs. Caught by: ``output_contract`` at float16."""
    return _chunk_rows(Q.float(), K.float(), V.float(), range(0, Q.size(-2), chunk_size), chunk_size)


def nondeterministic(Q: Tensor, K: Tensor, V: Tensor, chunk_size: int = 1024) -> Tensor:
    """Adds tiny random noise. Caught by: ``determinism``."""
    out = _chunk_rows(Q, K, V, range(0, Q.size(-2), chunk_size), chunk_size)
    return out + 1e-3 * torch.rand_like(out) * out.abs().amax()
