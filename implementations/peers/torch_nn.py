"""torch's own implementations behind the shipped specs, for the peer audit (``conformance audit-peers``).

Library: torch (the installed version, recorded in the report), objects ``torch.nn.RMSNorm``,
``torch.nn.functional.rms_norm`` and ``torch.nn.functional.scaled_dot_product_attention``. Each entry declares where
its calling convention differs from the spec's (docs/spec-schema.md, Calling conventions) — no adapter code where
a declaration does:

- ``rmsnorm`` · ``torch.nn.RMSNorm(normalized_shape, eps)``: the constructor's names (``normalized_shape`` for the
  spec's ``dim``); the learned ``weight`` is the spec's gain.
- ``rmsnorm`` · ``torch.nn.functional.rms_norm(input, normalized_shape, weight, eps)``: a function whose second
  argument is a shape tuple, which no spec input is: :func:`rms_norm` passes ``(x.shape[-1],)``.
- ``multihead_attention`` · ``torch.nn.MultiheadAttention(embed_dim, num_heads, dropout, bias=False,
  batch_first=True)``: declared — its projections packed in one ``in_proj_weight`` (``cat(Wq, Wk, Wv)`` along the
  rows, computed from the drawn weights so their gradients flow), ``out_proj.weight`` the spec's ``Wo``; it takes
  ``(query, key, value)`` (``x`` three times), a boolean ``attn_mask`` with True = *masked* (the spec's ``~mask``),
  and returns ``(attn_output, attn_weights)`` (``need_weights=False``, the first returned).
- ``attention`` · ``torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask, dropout_p,
  is_causal)``: the mask's keyword is ``attn_mask`` (True = may attend, the spec's convention). Given an
  ``attn_mask`` together with ``is_causal=True`` it applies both (the spec's reading) where ``dropout_p`` is 0 and
  the key and value widths agree, and raises ``RuntimeError`` ("Explicit attn_mask should not be set when
  is_causal=True") on its math path otherwise (``dropout_p > 0`` or ``Dk != Dv``; torch 2.13, CPU): the entry
  declares that region ``unsupported`` (judged to raise there, docs/spec-schema.md, Unsupported regions);
  everything else, the causal case included, is judged.

Nothing here is imported before the audit runs: ``AUDIT`` is built on first access.
"""

from __future__ import annotations

from typing import Any

LIBRARY = "torch"
WRAPPED = (
    "torch.nn.RMSNorm, torch.nn.functional.rms_norm, torch.nn.MultiheadAttention, "
    "torch.nn.functional.scaled_dot_product_attention"
)


def rms_norm(x: Any, weight: Any, eps: float) -> Any:
    """``torch.nn.functional.rms_norm(x, (D,), weight, eps)``: the shape tuple from ``x``'s last axis."""
    import torch.nn.functional as F

    return F.rms_norm(x, (x.shape[-1],), weight, eps)


def _entries() -> tuple[Any, ...]:
    from conformance.peers import PeerEntry

    return (
        PeerEntry("rmsnorm", "torch.nn:RMSNorm", "torch.nn.RMSNorm", interface={"init": {"normalized_shape": "D", "eps": "eps"}}),
        PeerEntry(
            "rmsnorm", "implementations.peers.torch_nn:rms_norm", "torch.nn.functional.rms_norm",
            interface={"kind": "function", "args": ["x", "weight"], "kwargs": {"eps": "eps"}},
        ),
        PeerEntry(
            "multihead_attention", "torch.nn:MultiheadAttention", "nn.MultiheadAttention(bias=False, batch_first=True)",
            interface={
                "init": {"embed_dim": "D", "num_heads": "H", "dropout": "dropout", "bias": "0", "batch_first": "1"},
                "values": {"in_proj": "cat(cat(Wq, Wk, 0), Wv, 0)", "blocked": "~mask"},
                "state": {"in_proj_weight": "in_proj", "out_proj.weight": "Wo"},
                "args": ["x", "x", "x"],
                "kwargs": {"attn_mask": "blocked"},
                "constants": {"need_weights": False},
                "returns": 0,
            },
        ),
        PeerEntry(
            "attention", "torch.nn.functional:scaled_dot_product_attention",
            "F.scaled_dot_product_attention (refuses mask with is_causal where dropout_p > 0 or Dk != Dv)",
            interface={"kwargs": {"attn_mask": "mask", "dropout_p": "dropout_p", "is_causal": "is_causal"}},
            unsupported=({"when": "is_causal & has_mask & ((dropout_p > 0) | (Dk != Dv))", "raises": "RuntimeError",
                          "reason": "SDPA refuses an explicit attn_mask with is_causal=True on its math path "
                                    "(dropout_p > 0, or key and value widths that differ)"},),
        ),
    )


def _version() -> str:
    import torch

    return torch.__version__


def __getattr__(name: str) -> Any:
    """``AUDIT`` is built on first access."""
    if name != "AUDIT":
        raise AttributeError(name)
    from conformance.peers import PeerAudit

    return PeerAudit(
        LIBRARY,
        _version(),
        WRAPPED,
        _entries(),
        notes=(
            "Adapter: implementations/peers/torch_nn.py — declared calling conventions (constructor names, keywords); "
            "one function for F.rms_norm's shape argument.",
            "F.scaled_dot_product_attention is drawn with is_causal false: it refuses an attn_mask together with "
            "is_causal=True (RuntimeError), which the spec's domain allows.",
        ),
    )
