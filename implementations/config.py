"""Model configuration, Attention Is All You Need Table 3 (§6.2): the base and big Transformers.

The implementation guide's ``ModelConfig`` with its defects fixed: its variants claimed to match
"paper Table X", but its ``large`` (12 layers, 16 heads, d_ff 2048) is neither of the paper's models.
Here ``base`` and ``big`` are Table 3's rows; ``small`` and ``large`` are the guide's variants, kept
verbatim as project variants (not from the paper). Further fixes: an unknown variant raises
``ValueError`` naming the known ones (the guide raised a bare ``KeyError``); ``d_model`` must be
divisible by ``n_heads`` (each head gets d_k = d_v = d_model / h, §3.2.2) and every field is checked
at construction; ``from_paper`` builds a fresh instance on every call; ``to_dict`` returns a new
plain dict (a copy of the fields, never the live ``__dict__``).

The spec (``model_config`` in ``specs/attention_is_all_you_need.yaml``) records the table and the
choices for the fields the paper does not set.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

_INT_FIELDS = ("d_model", "n_layers", "n_heads", "d_ff", "memory_size", "memory_dim", "max_seq_len", "vocab_size")

# Table 3 (base, big) and the guide's project variants (small, large): the fields each sets; the
# rest keep the class defaults (which are the base model's, or the guide's where the paper has none).
_VARIANTS: dict[str, dict[str, Any]] = {
    "base": {},  # N=6, d_model=512, d_ff=2048, h=8, P_drop=0.1: the defaults
    "big": {"d_model": 1024, "d_ff": 4096, "n_heads": 16, "dropout": 0.3},  # N=6
    "small": {"d_model": 256, "n_layers": 4, "n_heads": 4},  # the guide's, not in the paper
    "large": {"d_model": 1024, "n_layers": 12, "n_heads": 16},  # the guide's, not the paper's big
}


@dataclass
class ModelConfig:
    """Transformer hyperparameters in the paper's notation (Table 3).

    Fields: ``d_model`` (d_model), ``n_layers`` (N, layers per stack), ``n_heads`` (h), ``d_ff``
    (d_ff), ``dropout`` (P_drop); ``memory_size``, ``memory_dim`` (the guide's Titans fields, unused
    by the Transformer), ``max_seq_len``, ``vocab_size``, ``pad_token_id`` (the guide's defaults; the
    paper does not fix them). Construction validates every field and raises ``ValueError``.

    >>> cfg = ModelConfig.from_paper("big")
    >>> cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.dropout, cfg.d_head
    (1024, 16, 4096, 0.3, 64)
    >>> ModelConfig(**cfg.to_dict()) == cfg
    True
    >>> ModelConfig(d_model=500, n_heads=12)
    Traceback (most recent call last):
    ...
    ValueError: d_model (500) must be divisible by n_heads (12): each head gets d_model / n_heads dimensions (§3.2.2)
    """

    # Architecture
    d_model: int = 512
    n_layers: int = 6
    n_heads: int = 8
    d_ff: int = 2048
    # Memory (the guide's Titans fields; not part of the Transformer)
    memory_size: int = 1024
    memory_dim: int = 64
    # Training
    dropout: float = 0.1
    max_seq_len: int = 8192
    # Vocabulary
    vocab_size: int = 32000
    pad_token_id: int = 0

    def __post_init__(self) -> None:
        for name in _INT_FIELDS:
            _check_positive_int(name, getattr(self, name))
        _check_int(self.pad_token_id, "pad_token_id")
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(f"pad_token_id must be in [0, vocab_size) = [0, {self.vocab_size}), got {self.pad_token_id}")
        valid_dropout = isinstance(self.dropout, (int, float)) and not isinstance(self.dropout, bool)
        if not valid_dropout or not (math.isfinite(self.dropout) and 0.0 <= self.dropout < 1.0):
            raise ValueError(f"dropout must be a number in [0, 1), got {self.dropout!r}")
        self.dropout = float(self.dropout)
        if self.d_model % self.n_heads != 0:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads}): "
                "each head gets d_model / n_heads dimensions (§3.2.2)"
            )

    @property
    def d_head(self) -> int:
        """d_k = d_v = d_model / h (§3.2.2); 64 for both of the paper's models."""
        return self.d_model // self.n_heads

    @classmethod
    def variants(cls) -> tuple[str, ...]:
        """The names ``from_paper`` accepts, sorted."""
        return tuple(sorted(_VARIANTS))

    @classmethod
    def from_paper(cls, variant: str = "base") -> ModelConfig:
        """A fresh config for ``variant``: ``base`` or ``big`` (Table 3), or the project's ``small``, ``large``.

        >>> ModelConfig.from_paper("base") == ModelConfig()
        True
        >>> ModelConfig.from_paper("xl")
        Traceback (most recent call last):
        ...
        ValueError: unknown variant 'xl'; known variants: base, big, large, small
        """
        if not isinstance(variant, str) or variant not in _VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; known variants: {', '.join(cls.variants())}")
        return cls(**_VARIANTS[variant])

    def to_dict(self) -> dict[str, Any]:
        """A new plain dict of the fields (JSON-serialisable); changing it leaves the config unchanged."""
        return dataclasses.asdict(self)


def _check_int(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {type(value).__name__} {value!r}")


def _check_positive_int(name: str, value: Any) -> None:
    _check_int(value, name)
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
