"""Real inputs with ``sign: nonnegative`` (gates such as Titans' α_t, θ_t, η_t): loader errors and drawn values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conformance.strategies import Example, materialize
from tests.spec_helpers import load_error, load_one, minimal_spec, with_key, write_spec

INPUT = ("specs", 0, "inputs", "hidden")


def test_nonnegative_values_are_drawn_in_zero_to_magnitude(tmp_path: Path) -> None:
    data = with_key(minimal_spec(), INPUT + ("sign",), "nonnegative")
    spec = load_one(write_spec(tmp_path, data))
    assert spec.inputs["hidden"].nonnegative and not spec.inputs["memory_pred"].nonnegative
    example = Example(sizes={"B": 3, "D": 8}, params={}, magnitudes={"hidden": 0.5, "memory_pred": 0.5}, present={}, seed=7)
    env = materialize(spec, example)
    assert np.all(env["hidden"] >= 0) and np.all(env["hidden"] <= 0.5)
    assert np.any(env["memory_pred"] < 0), "an input without sign keeps both signs"


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (INPUT + ("sign",), "positive", "expected 'any' or 'nonnegative', got 'positive'"),
        (INPUT, {"shape": ["B", "D"], "dtype": "bool", "sign": "nonnegative"}, "sign applies to real inputs only"),
        (INPUT, {"shape": ["B", "D"], "derive": "0", "sign": "nonnegative"}, "applies to drawn inputs only"),
    ],
)
def test_bad_sign_is_one_keyed_error(tmp_path: Path, path: tuple, value: object, message: str) -> None:
    error = load_error(write_spec(tmp_path, with_key(minimal_spec(), path, value)))
    assert "specs[0].inputs.hidden" in str(error) and message in str(error), str(error)
