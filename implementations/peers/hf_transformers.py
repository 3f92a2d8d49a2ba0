"""transformers' Llama and Gemma building blocks behind the shipped specs, for the peer audit (``conformance audit-peers``).

Library: transformers 5.x (PyPI; the version installed is recorded in the report), from
``transformers.models.llama.modeling_llama`` and ``transformers.models.gemma.modeling_gemma``:

- ``rmsnorm`` · ``LlamaRMSNorm(hidden_size, eps)``: declared — its constructor's names; the gain is ``weight``. It
  computes in float32 whatever the input dtype (``hidden_states.to(torch.float32)``), then multiplies by the
  weight in the input dtype.
- ``rmsnorm`` · ``GemmaRMSNorm(dim, eps)``: declared — the gain is applied as ``(1 + weight)``, in float32; audited
  as Eq. 4 reads (the diagnosis names the (1 + g) gain) and with the spec's option ``unit_offset`` declared.
- ``rope_apply`` · ``apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim)``: declared — the library takes the
  tables as ``cat(freqs, freqs)`` over the whole head width (rotate-half pairs, computed from the spec's half-width
  tables by ``values``) and rotates a query and a key together: ``x`` is passed as both, ``unsqueeze_dim=0``
  broadcasts the ``[L, D]`` tables, and the rotated query (``returns: 0``) is judged.
  :func:`llama_apply_rotary` is the same call as a function, for tests and users.
- ``rope_cache`` · ``LlamaRotaryEmbedding(config)``: :class:`LlamaRope` — built from a ``LlamaConfig`` with the
  spec's ``dim`` as ``head_dim``, ``base`` as ``rope_theta`` and ``max_seq_len`` as ``max_position_embeddings``;
  called with positions ``0 … L − 1``, its ``(1, L, dim)`` tables' first half returned (they are ``cat(freqs, freqs)``).
- ``multihead_attention`` · ``LlamaAttention(config, layer_idx=0)``: :class:`LlamaSelfAttention` builds it from a
  ``LlamaConfig`` (``hidden_size = d_model``, ``num_attention_heads = num_key_value_heads = n_heads``, no bias,
  ``attention_dropout = dropout``, ``attn_implementation = "sdpa"``; an even head width, which its rotary
  embedding requires) and calls it with its real
  inputs: ``position_embeddings`` from the model's own ``LlamaRotaryEmbedding`` at position ids 0 (cos = 1,
  sin = 0: the identity rotation, so the spec's attention without RoPE applies) and the additive
  ``attention_mask`` ``[B, 1, L, L]`` the model builds (0 where the spec's mask allows, the dtype's lowest value
  where it blocks); it returns ``attn_output`` of its ``(attn_output, attn_weights)``. The projections' weights
  are declared by name.
- ``kv_cache`` · ``DynamicCache()``: declared — built without sizes, ``update(k, v, layer_idx=0)`` returns everything
  cached; it grows without bound (``capacity: false``), so the overflow check does not apply.
- ``kv_cache`` · ``StaticCache(config, max_cache_len)``: :func:`static_cache` builds it for one layer (its
  constructor wants a model config; the layer allocates ``[B, H, max_cache_len, Dh]`` from the first update's keys);
  declared — ``update(k, v, layer_idx=0)`` returns the whole buffer, ``get_seq_length()`` the cached length.

Imported lazily: this module imports without transformers; the audit skips, saying why, where it is missing.
"""

from __future__ import annotations

from typing import Any

from implementations.peers import installed_version, not_installed

LIBRARY = "transformers"
WRAPPED = (
    "transformers.models.llama.modeling_llama.{LlamaRMSNorm, apply_rotary_pos_emb, LlamaRotaryEmbedding, LlamaAttention}, "
    "transformers.models.gemma.modeling_gemma.GemmaRMSNorm, transformers.cache_utils.{DynamicCache, StaticCache}"
)
LLAMA = "transformers.models.llama.modeling_llama"


def _missing() -> str | None:
    return not_installed("transformers", "transformers")


def _version() -> str:
    return installed_version("transformers")


def llama_apply_rotary(x: Any, cos_table: Any, sin_table: Any) -> Any:
    """``apply_rotary_pos_emb(x, x, cat(cos, cos), cat(sin, sin), unsqueeze_dim=0)[0]``: x ``[B, H, L, D]``, the
    tables ``[L, D/2]`` → ``[L, D]`` (unsqueezed to broadcast over B and H)."""
    import torch
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    cos, sin = torch.cat((cos_table, cos_table), -1), torch.cat((sin_table, sin_table), -1)  # [L, D]
    q, _ = apply_rotary_pos_emb(x, x, cos, sin, unsqueeze_dim=0)
    return q


def static_cache(max_seq_len: int) -> Any:
    """``StaticCache(config=LlamaConfig(num_hidden_layers=1), max_cache_len=max_seq_len)``: one static layer, whose
    batch size, heads, head width, dtype and device come from the first update (``StaticLayer.lazy_initialization``)."""
    from transformers import LlamaConfig, StaticCache

    return StaticCache(config=LlamaConfig(num_hidden_layers=1), max_cache_len=max_seq_len)


def _attention_module() -> type:
    import torch
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaAttention, LlamaRotaryEmbedding

    class LlamaSelfAttention(torch.nn.Module):
        """``LlamaAttention`` as the spec's ``(d_model, n_heads, dropout)`` module called ``(x, mask=None)``."""

        def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
            super().__init__()
            config = LlamaConfig(
                hidden_size=d_model, num_attention_heads=n_heads, num_key_value_heads=n_heads, head_dim=d_model // n_heads,
                attention_bias=False, attention_dropout=float(dropout), num_hidden_layers=1, attn_implementation="sdpa",
            )
            self.attn = LlamaAttention(config, layer_idx=0)
            self.rope = LlamaRotaryEmbedding(config)

        def forward(self, x: Any, mask: Any = None) -> Any:
            b, n = x.shape[:2]
            position_embeddings = self.rope(x, torch.zeros(b, n, dtype=torch.long, device=x.device))  # [B, L, Dh] each
            additive = None
            if mask is not None:
                lowest = torch.finfo(x.dtype).min
                additive = torch.zeros(mask.shape, dtype=x.dtype, device=x.device).masked_fill(~mask, lowest)  # [L, L]
                additive = additive.expand(b, 1, n, n)  # [B, 1, L, L]
            out, _ = self.attn(x, position_embeddings=position_embeddings, attention_mask=additive)
            return out  # [B, L, D]

    return LlamaSelfAttention


def _rope_module() -> type:
    import torch
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    class LlamaRope(torch.nn.Module):
        """``LlamaRotaryEmbedding`` with the spec's constructor ``(dim, max_seq_len, base)`` and call ``(x, L)``."""

        def __init__(self, dim: int, max_seq_len: int, base: float) -> None:
            super().__init__()
            config = LlamaConfig(
                hidden_size=dim, num_attention_heads=1, head_dim=dim, max_position_embeddings=max_seq_len,
                rope_parameters={"rope_type": "default", "rope_theta": float(base)},
            )
            self.rope = LlamaRotaryEmbedding(config)
            self.dim = dim

        def forward(self, x: Any, seq_len: int) -> tuple[Any, Any]:
            positions = torch.arange(seq_len, device=x.device)[None]  # [1, L]
            cos, sin = self.rope(x, positions)  # [1, L, D] each, cat(freqs, freqs)
            half = self.dim // 2
            return cos[0, :, :half], sin[0, :, :half]

    return LlamaRope


def __getattr__(name: str) -> Any:
    """``AUDIT`` is built on first access; ``LlamaRope`` (a module, needs transformers) too."""
    if name == "LlamaRope":
        return _rope_module()
    if name == "LlamaSelfAttention":
        return _attention_module()
    if name != "AUDIT":
        raise AttributeError(name)
    from conformance.peers import PeerAudit, PeerEntry

    here = "implementations.peers.hf_transformers"
    entries = (
        PeerEntry("rmsnorm", f"{LLAMA}:LlamaRMSNorm", "LlamaRMSNorm", interface={"init": {"hidden_size": "D", "eps": "eps"}}),
        PeerEntry(
            "rmsnorm", "transformers.models.gemma.modeling_gemma:GemmaRMSNorm", "GemmaRMSNorm",
            interface={"init": {"dim": "D", "eps": "eps"}},
        ),
        PeerEntry(  # the same, judged under the convention it follows, declared (the spec's option unit_offset)
            "rmsnorm", "transformers.models.gemma.modeling_gemma:GemmaRMSNorm[unit_offset=true]",
            "GemmaRMSNorm, (1 + g) declared", interface={"init": {"dim": "D", "eps": "eps"}},
        ),
        PeerEntry(
            "rope_apply", f"{LLAMA}:apply_rotary_pos_emb", "apply_rotary_pos_emb (rotate-half)",
            interface={
                "values": {"cos": "cat(cos_table, cos_table, -1)", "sin": "cat(sin_table, sin_table, -1)"},  # [L, D]
                "args": ["x", "x", "cos", "sin"], "constants": {"unsqueeze_dim": 0}, "returns": 0,
            },
        ),
        PeerEntry("rope_cache", f"{here}:LlamaRope", "LlamaRotaryEmbedding (default rope)"),
        PeerEntry(
            "multihead_attention", f"{here}:LlamaSelfAttention", "LlamaAttention (sdpa, position ids 0, additive mask)",
            constraints=("(D // H) % 2 == 0",),  # its rotary embedding refuses an odd head width (ValueError)
            interface={
                "state": {"attn.q_proj.weight": "Wq", "attn.k_proj.weight": "Wk", "attn.v_proj.weight": "Wv",
                          "attn.o_proj.weight": "Wo"},
            },
        ),
        PeerEntry(
            "kv_cache", "transformers.cache_utils:DynamicCache", "DynamicCache()",
            interface={"init": {}, "constants": {"layer_idx": 0}, "capacity": False},
        ),
        PeerEntry(
            "kv_cache", f"{here}:static_cache", "StaticCache(config, max_cache_len)",
            interface={
                "init": {"max_seq_len": "max_seq_len"}, "constants": {"layer_idx": 0},
                "returns": "buffer", "length": "get_seq_length",
            },
        ),
    )
    return PeerAudit(
        LIBRARY,
        _version(),
        WRAPPED,
        entries,
        importable=_missing,
        notes=(
            "Adapter: implementations/peers/hf_transformers.py — declared calling conventions for the norms; a "
            "function for apply_rotary_pos_emb's tables (cat(freqs, freqs)), a module for LlamaRotaryEmbedding's "
            "config, a function building StaticCache's config; the caches' calls declared (buffer and length, no capacity).",
        ),
    )
