"""torchtune's building blocks behind the shipped specs, for the peer audit (``conformance audit-peers``).

Library: torchtune 0.6 (PyPI; the version installed is recorded in the report), from ``torchtune.modules``. Its
``__init__`` imports torchao's quantisation types (``torchao.dtypes.nf4tensor``), so it imports only beside a
torchao of its own generation (the ``peers`` extra pins ``torchao>=0.10,<0.11``); where it cannot be imported the
audit records why (the table's *cannot be tested* row) instead of running it.

- ``rmsnorm`` · ``RMSNorm(dim, eps)``: declared — the gain is named ``scale``.
- ``kv_cache`` · ``KVCache(batch_size, max_seq_len, num_kv_heads, head_dim, dtype)``: declared — the heads keyword,
  the tested dtype at construction, no device (moved with ``.to(device)``); ``update(k, v)`` returns the whole
  ``[B, H, max_seq_len, Dh]`` buffers and ``size`` the cached length.
- ``rope_apply`` · ``RotaryPositionalEmbeddings(dim, max_seq_len)``: declared — ``x`` in ``[B, L, H, D]`` (in and out),
  the interleaved layout (pairs ``(x_2i, x_2i+1)``), the tables as its ``cache`` buffer ``[L, D/2, 2]`` (cos, sin
  last), computed from the drawn tables (``reshape(interleave(cos_table, sin_table), L, -1, 2)``).
- ``rope_cache`` · the same class's ``cache`` buffer: :class:`TorchtuneRopeTables` returns its cos and sin halves.
- ``multihead_attention`` · ``MultiHeadAttention(...)``: :func:`multi_head_attention` builds it with bias-free
  ``nn.Linear`` projections, ``num_kv_heads = num_heads`` and ``is_causal=False`` (its default attends causally
  when no mask is given; the spec's absent mask attends everything); declared — called ``(x, y=x)`` (self-attention:
  keys and values from the same sequence), the mask as ``[1, L, L]`` (True = attend, the spec's convention) and the
  projections' weights by name.
"""

from __future__ import annotations

from typing import Any

from implementations.peers import installed_version

LIBRARY = "torchtune"
WRAPPED = "torchtune.modules.{RMSNorm, KVCache, RotaryPositionalEmbeddings, MultiHeadAttention}"
MODULES = "torchtune.modules"
HERE = "implementations.peers.torchtune"


def _missing() -> str | None:
    """Why ``torchtune.modules`` cannot be imported here, or ``None``."""
    import importlib.util

    if importlib.util.find_spec("torchtune") is None:
        return "torchtune is not installed (pip install torchtune; it needs a torchao of its own generation)"
    try:
        import torchtune.modules  # noqa: F401
    except Exception as exc:  # an ImportError from torchao, typically
        return f"torchtune {_version()} cannot be imported here: {type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
    return None


def _version() -> str:
    return installed_version("torchtune")


def multi_head_attention(d_model: int, n_heads: int, dropout: float) -> Any:
    """``MultiHeadAttention(embed_dim=d_model, num_heads=n_heads, num_kv_heads=n_heads, head_dim=d_model // n_heads,
    q_proj, k_proj, v_proj, output_proj = nn.Linear(d_model, d_model, bias=False), is_causal=False,
    attn_dropout=dropout)``."""
    from torch import nn
    from torchtune.modules import MultiHeadAttention

    def linear() -> nn.Linear:
        return nn.Linear(d_model, d_model, bias=False)

    return MultiHeadAttention(
        embed_dim=d_model, num_heads=n_heads, num_kv_heads=n_heads, head_dim=d_model // n_heads,
        q_proj=linear(), k_proj=linear(), v_proj=linear(), output_proj=linear(),
        is_causal=False, attn_dropout=float(dropout),
    )


def _tables_module() -> type:
    import torch
    from torchtune.modules import RotaryPositionalEmbeddings

    class TorchtuneRopeTables(torch.nn.Module):
        """``RotaryPositionalEmbeddings(dim, max_seq_len, base)``'s ``cache`` buffer ``[max_seq_len, dim/2, 2]``,
        as the spec's call ``(x, L) -> (cos_table, sin_table)``: its first ``L`` rows, cos and sin halves, as held.
        ``cache[:L]`` is the library's own read (``forward``, ``input_pos=None``); past ``max_seq_len`` it returns
        fewer rows, and the library's ``forward`` then fails in a reshape."""

        def __init__(self, dim: int, max_seq_len: int, base: float) -> None:
            super().__init__()
            base = int(base) if float(base).is_integer() else base
            self.rope = RotaryPositionalEmbeddings(dim, max_seq_len=max_seq_len, base=base)

        def forward(self, x: Any, seq_len: int) -> tuple[Any, Any]:
            cache = self.rope.cache[:seq_len]  # [L, D/2, 2]
            return cache[..., 0], cache[..., 1]

    return TorchtuneRopeTables


def _entries() -> tuple[Any, ...]:
    from conformance.peers import PeerEntry

    return (
        PeerEntry("rmsnorm", f"{MODULES}:RMSNorm", "RMSNorm", interface={"init": {"dim": "D", "eps": "eps"},
                                                                         "state": {"scale": "weight"}}),
        PeerEntry(
            "kv_cache", f"{MODULES}:KVCache", "KVCache(batch_size, max_seq_len, num_kv_heads, head_dim, dtype)",
            interface={
                "init": {"batch_size": "batch_size", "max_seq_len": "max_seq_len", "num_kv_heads": "n_heads",
                         "head_dim": "head_dim", "dtype": "dtype"},
                "returns": "buffer", "length": "size", "to_device": True,
            },
        ),
        PeerEntry(
            "rope_apply", f"{MODULES}:RotaryPositionalEmbeddings[interleaved=true]", "RotaryPositionalEmbeddings (interleaved)",
            interface={
                "kind": "module", "init": {"dim": "D", "max_seq_len": "L"}, "args": ["x"],
                "values": {"tables": "reshape(interleave(cos_table, sin_table), L, -1, 2)"},
                "state": {"cache": "tables"},
                "layouts": {"x": ["B", "L", "H", "D"]}, "output_layouts": {"out": ["B", "L", "H", "D"]},
            },
        ),
        PeerEntry("rope_cache", f"{HERE}:TorchtuneRopeTables", "RotaryPositionalEmbeddings(dim, max_seq_len, base).cache"),
        PeerEntry(
            "multihead_attention", f"{HERE}:multi_head_attention", "MultiHeadAttention(is_causal=False), bias-free projections",
            interface={
                "values": {"attend": "unsqueeze(mask, 0)"},
                "state": {"q_proj.weight": "Wq", "k_proj.weight": "Wk", "v_proj.weight": "Wv", "output_proj.weight": "Wo"},
                "args": ["x", "x"],
                "kwargs": {"mask": "attend"},
            },
        ),
    )


def __getattr__(name: str) -> Any:
    """``AUDIT`` is built on first access; ``TorchtuneRopeTables`` (a module, needs torchtune) too."""
    if name == "TorchtuneRopeTables":
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
            "Adapter: implementations/peers/torchtune.py — declared calling conventions (the gain's name, the cache's "
            "buffer and length, the rotary layout and tables, the mask's shape); a function building "
            "MultiHeadAttention's projections and a module exposing the rotary tables.",
        ),
    )
