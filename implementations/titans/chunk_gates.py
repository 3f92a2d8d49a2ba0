"""The chunked memory with gates constant within each chunk (Titans §3.2: θ, α, η as functions of the chunk).

Gates are given per chunk (``[B, N]``, ``T = N · C``, the sequence in whole chunks from position 0); each applies
to every token of its chunk. The recurrence is otherwise Eq. 13–16 token by token (docs/titans.md), so this is
``memory_linear`` with each chunk's gate repeated over its tokens.
"""

from torch import Tensor

from implementations.titans.chunked import memory_linear


def memory_linear_chunk_gates(
    k: Tensor, v: Tensor, q: Tensor, theta: Tensor, alpha: Tensor, eta: Tensor, W: Tensor, S: Tensor,
    *, chunk_size: int, retrieve: str = "before", loss: str = "sum",
) -> tuple[Tensor, Tensor, Tensor]:
    """``k, q [B, N·C, Dk]``, ``v [B, N·C, Dv]``, gates ``[B, N]``, ``W, S [B, Dk, Dv]`` ``-> (y, W_T, S_T)``."""
    chunks = theta.shape[-1]
    if k.shape[1] != chunks * chunk_size:
        raise ValueError(f"k has {k.shape[1]} tokens; {chunks} chunks of {chunk_size} need {chunks * chunk_size}")
    per_token = [g.repeat_interleave(chunk_size, dim=1) for g in (theta, alpha, eta)]  # [B, N] -> [B, N·C]
    y, W, S, _ = memory_linear(k, v, q, *per_token, W, S, W, start=0, chunk_size=chunk_size, retrieve=retrieve, loss=loss)
    return y, W, S
