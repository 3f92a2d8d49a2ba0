"""Planted defects for spec ``residual_scaling``: the ``parameter_scaling`` check catches each one.

Each row of ``DEFECTS`` names a wrong scaling (``defects/residual_scaling_defects.py``) and the dtype
it runs at; the check runs through ``conformance.runner.run_case`` under a fixed, derandomized
Hypothesis profile. ``test_correct_implementation_passes`` runs our ``init_residual_scaling`` on every
dtype the spec lists with at least as many examples. The check is deterministic (no statistics).
"""

from __future__ import annotations

import pytest

from tests.meta_tests.defect_helpers import defect_ref, hypothesis_profile, run, specs

SPEC = "residual_scaling"
CHECK = "parameter_scaling:output_projections"
CORRECT = "implementations.initialization:init_residual_scaling"
EXAMPLES = 25

DEFECTS: list[tuple[str, str]] = [  # (defect, dtype)
    ("sqrt_n_layers", "float32"),
    ("sqrt_n_layers", "bfloat16"),
    ("applied_twice", "float32"),
    ("applied_twice", "float16"),
    ("touches_query", "float32"),
    ("name_typo", "float32"),
    ("name_typo", "float64"),
    ("weights_only", "float32"),
    ("scales_buffers", "float32"),
    ("redraws", "float32"),
    ("rebinds_instead_of_in_place", "float32"),
    ("factor_in_half_precision", "float32"),
    ("factor_in_half_precision", "float64"),
]


@pytest.mark.parametrize("defect, dtype", DEFECTS, ids=[f"{d}-{t}" for d, t in DEFECTS])
def test_planted_defect_is_caught(defect: str, dtype: str) -> None:
    with hypothesis_profile(EXAMPLES):
        outcome = run(SPEC, defect_ref(f"residual_scaling_defects.py:{defect}"), CHECK, dtype)
    assert outcome.caught_by(CHECK), f"{defect} not caught\n{outcome.summary()}"
    assert not outcome.errors, outcome.summary()
    assert "example: params=" in outcome.rows[-1]["detail"], "the report row must say which example failed"


@pytest.mark.parametrize("dtype", specs()[SPEC].patterns[0].dtypes)
def test_correct_implementation_passes(dtype: str) -> None:
    with hypothesis_profile(max(EXAMPLES, 40)):
        outcome = run(SPEC, CORRECT, CHECK, dtype)
    assert not outcome.failures and not outcome.errors, outcome.summary()
    assert outcome.rows[-1]["examples"] >= 40


def test_the_spec_has_one_check_and_it_has_planted_defects() -> None:
    assert [p.check for p in specs()[SPEC].patterns] == [CHECK]
    assert {dtype for _, dtype in DEFECTS} <= set(specs()[SPEC].patterns[0].dtypes)
