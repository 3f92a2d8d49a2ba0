"""Deliberately wrong model configurations (spec ``model_config``, check ``config_table:paper_table``).

Each has the interface of ``implementations.config.ModelConfig`` and is wrong in one way; the
docstring names the part of the check that must catch it, as the tag that starts each problem in
the check's detail (``[table]``, ``[derived]``, ``[to_dict]``, ``[round trip]``, ``[fresh instance]``,
``[rejects]``); ``tests/meta_tests/tables/model_config.py`` lists exactly those tags.
"""

from __future__ import annotations

import dataclasses
import types
from dataclasses import dataclass
from typing import Any

from implementations.config import ModelConfig

_PAPER = {
    "base": {},
    "big": {"d_model": 1024, "d_ff": 4096, "n_heads": 16, "dropout": 0.3},
    "small": {"d_model": 256, "n_layers": 4, "n_heads": 4},
    "large": {"d_model": 1024, "n_layers": 12, "n_heads": 16},
}


@dataclass
class GuideVerbatim:
    """The implementation guide's ModelConfig as written: no ``big`` variant, a bare ``KeyError`` for
    an unknown variant, no validation at all.

    Caught by: ``[table]`` (no ``big``), ``[rejects]``. (It has no ``d_head``, which neither the guide nor the paper
    defines: the spec checks d_k = d_model / h on the fields instead.)
    """

    d_model: int = 512
    n_layers: int = 6
    n_heads: int = 8
    d_ff: int = 2048
    memory_size: int = 1024
    memory_dim: int = 64
    dropout: float = 0.1
    max_seq_len: int = 8192
    vocab_size: int = 32000
    pad_token_id: int = 0

    @classmethod
    def from_paper(cls, variant: str = "base") -> GuideVerbatim:
        configs = {
            "small": cls(d_model=256, n_layers=4, n_heads=4),
            "base": cls(d_model=512, n_layers=6, n_heads=8),
            "large": cls(d_model=1024, n_layers=12, n_heads=16),
        }
        return configs[variant]

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class GuideKeyError(ModelConfig):
    """An unknown variant raises the guide's bare ``KeyError('xl')``, which names no known variant.

    Caught by: ``[rejects]``.
    """

    @classmethod
    def from_paper(cls, variant: str = "base") -> GuideKeyError:
        return cls(**_PAPER[variant])


@dataclass
class NoHeadDivisibility(ModelConfig):
    """No validation: ``d_model=500, n_heads=12`` is accepted (and 500 / 12 heads is not an integer).

    Caught by: ``[rejects]``.
    """

    def __post_init__(self) -> None:
        pass


@dataclass
class VagueDivisibilityError(ModelConfig):
    """The divisibility error names neither value: ``ValueError('invalid number of heads')``.

    Caught by: ``[rejects]`` (the message lacks d_model, n_heads, 500 and 12).
    """

    def __post_init__(self) -> None:
        if self.n_heads <= 0 or self.d_model % self.n_heads:
            raise ValueError("invalid number of heads")
        super().__post_init__()


@dataclass
class BigDffDefault(ModelConfig):
    """``big`` leaves d_ff at the class default 2048 (the guide's ``large`` does the same); Table 3 says 4096.

    Caught by: ``[table]``.
    """

    @classmethod
    def from_paper(cls, variant: str = "base") -> BigDffDefault:
        cfg = super().from_paper(variant)
        if variant == "big":
            cfg.d_ff = 2048
        return cfg


@dataclass
class BigEnglishFrenchDropout(ModelConfig):
    """``big`` with P_drop = 0.1, the English-French model's (§6.1) instead of Table 3's 0.3.

    Caught by: ``[table]``.
    """

    @classmethod
    def from_paper(cls, variant: str = "base") -> BigEnglishFrenchDropout:
        cfg = super().from_paper(variant)
        if variant == "big":
            cfg.dropout = 0.1
        return cfg


@dataclass
class FloatDModel(ModelConfig):
    """``d_model`` stored as ``512.0``: equal as a number, but a float where an int belongs
    (``nn.Linear(512.0, ...)`` raises).

    Caught by: ``[table]``, ``[round trip]`` (its own validation refuses the float it stored).
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        self.d_model = float(self.d_model)  # type: ignore[assignment]


@dataclass
@dataclass
class HeadsAttributeDisagrees(ModelConfig):
    """``to_dict`` reports the fields as given, but the attribute a model is built from was changed after
    (``n_heads`` doubled in ``__post_init__``): the serialised config and the live one disagree, and
    d_k = d_model / h is 32, not the paper's 64.

    Caught by: ``[derived]`` (``d_model / n_heads`` evaluated on the config's attributes).
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        self._given = dataclasses.asdict(self)
        self.n_heads = self.n_heads * 2

    def to_dict(self) -> dict[str, Any]:
        return dict(self._given)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HeadsAttributeDisagrees) and self.to_dict() == other.to_dict()


@dataclass
class DropsPadToken(ModelConfig):
    """``to_dict`` leaves out ``pad_token_id``. The round trip still works (the default is 0), so only
    the table's "every field" sees it.

    Caught by: ``[table]``.
    """

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        del data["pad_token_id"]
        return data


@dataclass
class RenamedHeads(ModelConfig):
    """``to_dict`` writes ``num_heads`` for ``n_heads``: the dict no longer builds a config.

    Caught by: ``[table]``, ``[round trip]``.
    """

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["num_heads"] = data.pop("n_heads")
        return data


@dataclass
class LiveDict(ModelConfig):
    """``to_dict`` returns the live ``self.__dict__``: a caller changing the dict changes the config.

    Caught by: ``[to_dict]``.
    """

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__


@dataclass
class ReadOnlyView(ModelConfig):
    """``to_dict`` returns a read-only view of ``__dict__``: safe from writes, but not a plain dict
    (``json.dumps`` refuses it).

    Caught by: ``[to_dict]``.
    """

    def to_dict(self) -> Any:
        return types.MappingProxyType(self.__dict__)


@dataclass(eq=False)
class NoEquality(ModelConfig):
    """Equality by identity (a plain class's ``__eq__``, not the dataclass's): a config rebuilt from its
    dict is never equal to it.

    Caught by: ``[round trip]``.
    """

    __eq__ = object.__eq__
    __hash__ = object.__hash__


_SHARED: dict[str, Any] = {}


@dataclass
class SharedPresets(ModelConfig):
    """``from_paper`` returns one cached, mutable instance per variant. Code that adjusts its config
    (``cfg.dropout = 0.0`` for evaluation, say) changes every later ``from_paper`` result too.

    Caught by: ``[fresh instance]``.
    """

    @classmethod
    def from_paper(cls, variant: str = "base") -> SharedPresets:
        if variant not in _SHARED:
            _SHARED[variant] = super().from_paper(variant)
        return _SHARED[variant]


def shared_presets_snapshot() -> dict[str, dict[str, Any]]:
    """The cached presets' fields now (to show that the check restores what it probes)."""
    return {variant: dataclasses.asdict(cfg) for variant, cfg in _SHARED.items()}
