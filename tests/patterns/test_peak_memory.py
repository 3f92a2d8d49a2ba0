"""Pattern kind peak_memory: option validation and the growth exponent it measures."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

from conformance.patterns import PatternContext, kinds
from conformance.spec import load_specs
from tests.patterns.kind_helpers import rejected, validated

KIND = kinds()["peak_memory"]
GOOD = {"vary": {"Lq": [64, 128], "Lk": [64, 128]}, "max_growth_exponent": 1.5, "reason": "why"}


def _context(ref: str, options: dict) -> PatternContext:
    spec = load_specs()["chunked_attention"]
    return PatternContext(spec, ref, "cpu", "float32", validated(KIND.validate, options), settings())


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"vary": {"Lq": [128]}}, "vary"),
        ({"vary": {"Lq": [256, 128]}}, "vary"),
        ({"vary": {"Lq": [64, 128], "Lk": [64]}}, "vary"),
        ({"max_growth_exponent": 0}, "max_growth_exponent"),
        ({"reason": " "}, "reason"),
        ({"sizes": {"B": 0}}, "sizes"),
    ],
)
def test_bad_options_name_their_key(change: dict, key: str) -> None:
    path, _ = rejected(KIND.validate, {**GOOD, **change})
    assert path == key


def test_linear_memory_passes_and_quadratic_fails(tmp_path: Path) -> None:
    options = {
        **GOOD,
        "sizes": {"B": 1, "H": 1, "Dk": 8, "Dv": 8},
        "params": {"chunk_size": 16},
        "vary": {"Lq": [64, 128, 256], "Lk": [64, 128, 256]},
    }
    ok = KIND.run(_context("implementations.chunked_attention:chunked_attention", options))
    assert ok.passed and 0.8 < ok.max_abs_err < 1.2, ok.detail
    full = tmp_path / "full.py"
    full.write_text("import torch\ndef f(Q, K, V, chunk_size=1):\n    return torch.softmax(Q @ K.transpose(-1, -2), -1) @ V\n")
    bad = KIND.run(_context(f"{full}:f", options))
    assert not bad.passed and bad.max_abs_err > 1.8
    assert "exceeds" in bad.detail and "Lq=256" in bad.detail
