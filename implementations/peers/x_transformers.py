"""x-transformers' RMSNorm and rotary embedding behind the shipped specs, for the peer audit (``conformance audit-peers``).

Library: x-transformers 2.31 (PyPI), class ``x_transformers.x_transformers.RMSNorm(dim, unit_offset=False)``:
``F.normalize(x, dim=-1) * dim ** 0.5 * (g + unit_offset)``. Declared differences from the spec's interface
(docs/spec-schema.md, Calling conventions), no adapter code:

- the constructor takes ``dim`` only (no ε: ``F.normalize`` clamps the norm at 1e-12 instead), so the spec's drawn
  ``eps`` is not passed — the harness judges what that changes;
- the gain is the parameter ``g`` (the spec's ``weight``); ``unit_offset=True`` stores it as an offset from 1
  (Gemma's ``(1 + w)``), audited as a second configuration with the spec's ``weight`` as that offset's base — the
  diagnosis names the reading it matches;
- both audited twice: as Eq. 4 reads (the diagnosis names the convention) and with the conventions they follow
  declared as the spec's options (``no_eps``, ``unit_offset``; the declared option is passed on as the library's
  own ``unit_offset``).

Rotary embedding (``x_transformers.x_transformers``), two small adapters because the library works in angles:

- ``rope_apply`` · ``apply_rotary_pos_emb(t, freqs)``: :func:`xt_apply_rotary` — ``freqs`` are the angles
  ``[1, L, D]``, each repeated for its pair (``stack((f, f), -1)`` flattened: the interleaved layout, pairs
  ``(x_2i, x_2i+1)``, ``rotate_half`` of this library); the adapter passes the angles of the spec's tables,
  ``atan2(sin, cos)`` in float64 (the exact angles of the tables as the dtype holds them), so the library's own
  arithmetic is what is judged.
- ``rope_cache`` · ``RotaryEmbedding(dim, base=base)``: :class:`XtRotaryTables` — ``forward_from_seq_len(L)``'s
  angles, one per pair, returned as ``cos``/``sin`` in x's dtype (what ``apply_rotary_pos_emb`` evaluates).

Imported lazily: this module imports without x-transformers; the audit skips, saying why, where it is missing.
"""

from __future__ import annotations

from typing import Any

from implementations.peers import installed_version, not_installed

LIBRARY = "x-transformers"
WRAPPED = "x_transformers.x_transformers.{RMSNorm, RotaryEmbedding, apply_rotary_pos_emb}"
HERE = "implementations.peers.x_transformers"


def _missing() -> str | None:
    return not_installed("x_transformers", "x-transformers")


def _version() -> str:
    return installed_version("x-transformers")


def xt_apply_rotary(x: Any, cos_table: Any, sin_table: Any) -> Any:
    """``apply_rotary_pos_emb(x, freqs)``: x ``[B, H, L, D]``, ``freqs`` the tables' angles ``[1, L, D]`` (each
    repeated for its pair, float64)."""
    import torch
    from x_transformers.x_transformers import apply_rotary_pos_emb

    angles = torch.atan2(sin_table.double(), cos_table.double())  # [L, D/2]
    return apply_rotary_pos_emb(x, angles.repeat_interleave(2, -1)[None])  # freqs [1, L, D]


def _tables_module() -> type:
    import torch
    from x_transformers.x_transformers import RotaryEmbedding

    class XtRotaryTables(torch.nn.Module):
        """``RotaryEmbedding(dim, base=base)`` as the spec's ``(dim, max_seq_len, base)`` module called ``(x, L)``
        (the library has no maximum length: ``max_seq_len`` is not passed)."""

        def __init__(self, dim: int, max_seq_len: int, base: float) -> None:
            super().__init__()
            self.rope = RotaryEmbedding(dim, base=base)

        def forward(self, x: Any, seq_len: int) -> tuple[Any, Any]:
            freqs, _ = self.rope.forward_from_seq_len(seq_len)  # [1, L, D], angles repeated per pair
            angles = freqs[0, :, ::2]  # [L, D/2]
            return angles.cos().to(x.dtype), angles.sin().to(x.dtype)

    return XtRotaryTables


def _entries() -> tuple[Any, ...]:
    from conformance.peers import PeerEntry

    ref = "x_transformers.x_transformers:RMSNorm"
    return (
        PeerEntry("rmsnorm", ref, "RMSNorm(dim)", interface={"init": {"dim": "D"}, "state": {"g": "weight"}}),
        PeerEntry(
            "rmsnorm", ref, "RMSNorm(dim, unit_offset=True)",
            interface={"init": {"dim": "D", "unit_offset": "1"}, "state": {"g": "weight"}},
        ),
        # the same two, judged under the conventions they follow, declared (the spec's options no_eps, unit_offset)
        PeerEntry("rmsnorm", f"{ref}[no_eps=true]", "RMSNorm(dim), no ε declared",
                  interface={"init": {"dim": "D"}, "state": {"g": "weight"}}),
        PeerEntry(
            "rmsnorm", f"{ref}[no_eps=true, unit_offset=true]", "RMSNorm(dim, unit_offset=True), no ε and (1 + g) declared",
            interface={"init": {"dim": "D", "unit_offset": "unit_offset"}, "state": {"g": "weight"}},
        ),
        PeerEntry("rope_apply", f"{HERE}:xt_apply_rotary[interleaved=true]", "apply_rotary_pos_emb (interleaved)"),
        PeerEntry("rope_cache", f"{HERE}:XtRotaryTables", "RotaryEmbedding(dim, base)"),
    )


def __getattr__(name: str) -> Any:
    """``AUDIT`` is built on first access; ``XtRotaryTables`` (a module, needs the library) too."""
    if name == "XtRotaryTables":
        return _tables_module()
    if name != "AUDIT":
        raise AttributeError(name)
    from conformance.peers import PeerAudit

    return PeerAudit(
        LIBRARY,
        _version(),
        WRAPPED,
        _entries(),
        importable=_missing,
        notes=(
            "Adapter: implementations/peers/x_transformers.py — declared calling conventions for RMSNorm (constructor, "
            "gain name); a function passing the rotary tables as angles and a module reading RotaryEmbedding's angles.",
        ),
    )
