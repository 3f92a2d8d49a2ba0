"""rotary-embedding-torch behind the RoFormer specs, for the peer audit (``conformance audit-peers``).

Library: rotary-embedding-torch 0.9 (PyPI), ``rotary_embedding_torch.rotary_embedding_torch``:
``RotaryEmbedding(dim, theta)`` returns the *angles* m·θ_i (float32, each repeated for its pair: interleaved
``(n r)``), and ``apply_rotary_emb(freqs, t)`` rotates interleaved pairs ``(2i, 2i + 1)`` with ``cos``/``sin`` of
those angles, in float32 (its ``freqs``' dtype), the result cast back to ``t``'s dtype.

- ``rope_apply[interleaved=true]`` · :func:`rotary_apply`: the library takes angles where the spec gives tables —
  the adapter passes ``atan2(sin, cos)`` of the spec's tables in float64 (the exact angles of the tables as the
  dtype holds them; ``apply_rotary_emb`` computes in its ``freqs``' dtype, so the function's own arithmetic is
  judged, not the float32 its ``RotaryEmbedding`` would have produced), each repeated for its pair; the layout is
  the spec's declared option ``interleaved``.
- ``rope_cache`` · :class:`RotaryTables`: ``RotaryEmbedding(dim, theta=base)`` called on positions ``0 … L − 1``;
  the tables are ``cos``/``sin`` of every other angle (one per pair), in float32 as ``apply_rotary_emb`` takes them,
  cast to ``x``'s dtype.

Imported lazily: this module imports without the library; the audit skips, saying why, where it is missing.
"""

from __future__ import annotations

from typing import Any

from implementations.peers import installed_version, not_installed

LIBRARY = "rotary-embedding-torch"
WRAPPED = "rotary_embedding_torch.{RotaryEmbedding, apply_rotary_emb}"


def _missing() -> str | None:
    return not_installed("rotary_embedding_torch", "rotary-embedding-torch")


def _version() -> str:
    return installed_version("rotary-embedding-torch")


def rotary_apply(x: Any, cos_table: Any, sin_table: Any) -> Any:
    """``apply_rotary_emb(angles, x)``, the angles ``atan2(sin, cos)`` ``[L, D/2]`` repeated per pair → ``[L, D]``."""
    import torch
    from rotary_embedding_torch.rotary_embedding_torch import apply_rotary_emb

    angles = torch.atan2(sin_table.double(), cos_table.double())  # [L, D/2], float64
    return apply_rotary_emb(angles.repeat_interleave(2, -1), x)  # freqs [L, D] (n r), x [B, H, L, D]


def _tables_module() -> type:
    import torch
    from rotary_embedding_torch import RotaryEmbedding

    class RotaryTables(torch.nn.Module):
        """``RotaryEmbedding(dim, theta=base)`` as the spec's ``(dim, max_seq_len, base)`` module called ``(x, L)``."""

        def __init__(self, dim: int, max_seq_len: int, base: float) -> None:
            super().__init__()
            self.rope = RotaryEmbedding(dim, theta=base, cache_if_possible=False)

        def forward(self, x: Any, seq_len: int) -> tuple[Any, Any]:
            angles = self.rope(torch.arange(seq_len, device=x.device), seq_len=seq_len)[:, ::2]  # [L, D/2], float32
            return angles.cos().to(x.dtype), angles.sin().to(x.dtype)

    return RotaryTables


def __getattr__(name: str) -> Any:
    """``AUDIT`` is built on first access; ``RotaryTables`` (a module, needs the library) too."""
    if name == "RotaryTables":
        return _tables_module()
    if name != "AUDIT":
        raise AttributeError(name)
    from conformance.peers import PeerAudit, PeerEntry

    here = "implementations.peers.rotary_embedding_torch"
    return PeerAudit(
        LIBRARY,
        _version(),
        WRAPPED,
        (
            PeerEntry("rope_apply", f"{here}:rotary_apply[interleaved=true]", "apply_rotary_emb (interleaved)"),
            PeerEntry("rope_cache", f"{here}:RotaryTables", "RotaryEmbedding(dim, theta)"),
        ),
        importable=_missing,
        notes=(
            "Adapter: implementations/peers/rotary_embedding_torch.py — the library takes angles, the spec tables "
            "(atan2 of them, in float64).",
        ),
    )
