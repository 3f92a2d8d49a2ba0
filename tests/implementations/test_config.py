"""Unit tests for implementations.config beyond the harness's config_table check."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from implementations.config import ModelConfig

BOUNDED = settings(max_examples=60, derandomize=True, deadline=None, database=None)

# Attention Is All You Need, Table 3: (N, d_model, d_ff, h, d_k = d_v, P_drop).
TABLE_3 = {"base": (6, 512, 2048, 8, 64, 0.1), "big": (6, 1024, 4096, 16, 64, 0.3)}


@pytest.mark.parametrize("variant", sorted(TABLE_3))
def test_paper_variants_match_table_3(variant: str) -> None:
    cfg = ModelConfig.from_paper(variant)
    assert (cfg.n_layers, cfg.d_model, cfg.d_ff, cfg.n_heads, cfg.d_head, cfg.dropout) == TABLE_3[variant]


def test_guide_project_variants_kept_verbatim() -> None:
    small, large = ModelConfig.from_paper("small"), ModelConfig.from_paper("large")
    assert (small.d_model, small.n_layers, small.n_heads, small.d_ff) == (256, 4, 4, 2048)
    assert (large.d_model, large.n_layers, large.n_heads, large.d_ff) == (1024, 12, 16, 2048)
    assert large != ModelConfig.from_paper("big")  # the guide's large is not the paper's big


def test_defaults_are_the_base_model() -> None:
    assert ModelConfig() == ModelConfig.from_paper() == ModelConfig.from_paper("base")
    assert ModelConfig.variants() == ("base", "big", "large", "small")


@pytest.mark.parametrize("variant", ModelConfig.variants())
def test_to_dict_is_a_fresh_plain_json_dict_and_round_trips(variant: str) -> None:
    cfg = ModelConfig.from_paper(variant)
    data = cfg.to_dict()
    assert type(data) is dict and data is not cfg.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert ModelConfig(**data) == cfg
    data["d_model"] = 7
    data["extra"] = 1
    assert cfg.d_model != 7 and "extra" not in cfg.to_dict()


@pytest.mark.parametrize("variant", ModelConfig.variants())
def test_from_paper_builds_a_new_instance_every_call(variant: str) -> None:
    first = ModelConfig.from_paper(variant)
    first.dropout = 0.0
    second = ModelConfig.from_paper(variant)
    assert second is not first and second.dropout != 0.0


@pytest.mark.parametrize("variant", ["xl", "Base", "", None, 3])
def test_unknown_variant_names_the_known_ones(variant: object) -> None:
    with pytest.raises(ValueError, match=r"unknown variant .*; known variants: base, big, large, small$"):
        ModelConfig.from_paper(variant)  # type: ignore[arg-type]


@pytest.mark.parametrize(("d_model", "n_heads"), [(500, 12), (512, 7), (8, 16)])
def test_heads_must_divide_d_model(d_model: int, n_heads: int) -> None:
    with pytest.raises(ValueError, match=rf"^d_model \({d_model}\) must be divisible by n_heads \({n_heads}\)"):
        ModelConfig(d_model=d_model, n_heads=n_heads)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("n_heads", 0, "n_heads must be positive, got 0"),
        ("d_model", -512, "d_model must be positive, got -512"),
        ("n_layers", 6.0, "n_layers must be an int, got float 6.0"),
        ("d_ff", True, "d_ff must be an int, got bool True"),
        ("vocab_size", "32000", "vocab_size must be an int, got str '32000'"),
        ("pad_token_id", -1, r"pad_token_id must be in \[0, vocab_size\) = \[0, 32000\), got -1"),
        ("pad_token_id", 32000, r"pad_token_id must be in \[0, vocab_size\) = \[0, 32000\), got 32000"),
        ("dropout", 1.0, r"dropout must be a number in \[0, 1\), got 1.0"),
        ("dropout", -0.1, r"dropout must be a number in \[0, 1\), got -0.1"),
        ("dropout", float("nan"), r"dropout must be a number in \[0, 1\), got nan"),
        ("dropout", True, r"dropout must be a number in \[0, 1\), got True"),
    ],
)
def test_invalid_fields_are_rejected(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModelConfig(**{field: value})


def test_integer_dropout_is_stored_as_float() -> None:
    cfg = ModelConfig(dropout=0)
    assert type(cfg.dropout) is float and cfg.to_dict()["dropout"] == 0.0


@st.composite
def valid_configs(draw: st.DrawFn) -> dict:
    heads = draw(st.integers(1, 32))
    vocab = draw(st.integers(1, 50_000))
    return {
        "d_model": heads * draw(st.integers(1, 128)),
        "n_heads": heads,
        "n_layers": draw(st.integers(1, 48)),
        "d_ff": draw(st.integers(1, 16_384)),
        "memory_size": draw(st.integers(1, 4096)),
        "memory_dim": draw(st.integers(1, 512)),
        "dropout": draw(st.floats(0.0, 1.0, exclude_max=True)),
        "max_seq_len": draw(st.integers(1, 1 << 20)),
        "vocab_size": vocab,
        "pad_token_id": draw(st.integers(0, vocab - 1)),
    }


@BOUNDED
@given(fields=valid_configs())
def test_any_valid_config_round_trips(fields: dict) -> None:
    cfg = ModelConfig(**fields)
    assert cfg.to_dict() == fields and ModelConfig(**cfg.to_dict()) == cfg
    assert cfg.d_head * cfg.n_heads == cfg.d_model


@BOUNDED
@given(d_model=st.integers(1, 4096), n_heads=st.integers(1, 64))
def test_divisibility_is_exactly_the_rule(d_model: int, n_heads: int) -> None:
    if d_model % n_heads == 0:
        assert ModelConfig(d_model=d_model, n_heads=n_heads).d_head == d_model // n_heads
    else:
        with pytest.raises(ValueError, match=f"d_model \\({d_model}\\) must be divisible by n_heads \\({n_heads}\\)"):
            ModelConfig(d_model=d_model, n_heads=n_heads)
