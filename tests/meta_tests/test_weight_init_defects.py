"""Planted defects for spec ``weight_init``: every ``init_statistics`` check catches its defects.

Each row of ``DEFECTS`` names a wrong initialisation (``defects/weight_init_defects.py``) and the
pattern check that must catch it; the check runs through ``conformance.runner.run_case`` under a
fixed, derandomized Hypothesis profile. ``test_correct_implementation_passes`` runs our
``init_weights`` on every (check, dtype) the spec lists with at least as many examples, so a catch
shows a discriminating check. The statistical checks' false-alarm rate is the spec's
``false_alarm`` (1e-6 per row), so these assertions are not flaky; with the derandomized profile
they are deterministic besides.
"""

from __future__ import annotations

import pytest

from tests.meta_tests.defect_helpers import defect_ref, hypothesis_profile, run, specs

SPEC = "weight_init"
CORRECT = "implementations.initialization:init_weights"
EXAMPLES = 10  # Hypothesis examples per row (the dev profile's count)

DEFECTS: list[tuple[str, str, str]] = [  # (defect, check, dtype)
    ("guide_trunc_normal", "init_statistics:linear_truncated_normal", "float32"),
    ("guide_trunc_normal", "init_statistics:linear_truncated_normal", "bfloat16"),
    ("xavier_normal", "init_statistics:linear_xavier_uniform", "float32"),
    ("xavier_fan_in_only", "init_statistics:linear_xavier_uniform", "float32"),
    ("std_point_two", "init_statistics:linear_normal", "float32"),
    ("std_point_two", "init_statistics:linear_normal", "bfloat16"),
    ("variance_for_std", "init_statistics:linear_normal", "float32"),
    ("method_ignored", "init_statistics:linear_normal", "float32"),
    ("method_ignored", "init_statistics:linear_truncated_normal", "float32"),
    ("bias_left_default", "init_statistics:linear_xavier_uniform", "float32"),
    ("bias_default_init", "init_statistics:linear_normal", "float32"),
    ("embedding_untouched", "init_statistics:embedding_normal", "float32"),
    ("embedding_unit_normal", "init_statistics:embedding_normal", "bfloat16"),
    ("norm_weight_normal", "init_statistics:layer_norm_unit", "float32"),
    ("norm_weight_normal", "init_statistics:rms_norm_unit", "float32"),
    ("layer_norm_bias_one", "init_statistics:layer_norm_unit", "float32"),
    ("rms_norm_not_recognised", "init_statistics:rms_norm_unit", "float32"),
    ("layer_norm_needs_bias", "init_statistics:layer_norm_without_bias", "float32"),
    ("linear_needs_bias", "init_statistics:linear_without_bias", "float32"),
]


def _cases() -> list[tuple[str, str]]:
    """Every (check, dtype) the spec generates for an implementation on the CPU."""
    return [(p.check, dtype) for p in specs()[SPEC].patterns for dtype in p.dtypes]


@pytest.mark.parametrize("defect, check, dtype", DEFECTS, ids=[f"{d}-{c.split(':')[1]}-{t}" for d, c, t in DEFECTS])
def test_planted_defect_is_caught(defect: str, check: str, dtype: str) -> None:
    with hypothesis_profile(EXAMPLES):
        outcome = run(SPEC, defect_ref(f"weight_init_defects.py:{defect}"), check, dtype)
    assert outcome.caught_by(check), f"{defect} not caught by {check}\n{outcome.summary()}"
    assert not outcome.errors, outcome.summary()
    row = outcome.rows[-1]
    assert "example: sizes=" in row["detail"], "the report row must say which example failed"
    assert row["tolerance_basis"], "the report row must carry the bound and its basis"


@pytest.mark.parametrize("check, dtype", _cases(), ids=[f"{c.split(':')[1]}-{t}" for c, t in _cases()])
def test_correct_implementation_passes(check: str, dtype: str) -> None:
    with hypothesis_profile(EXAMPLES):
        outcome = run(SPEC, CORRECT, check, dtype)
    assert not outcome.failures and not outcome.errors, outcome.summary()
    assert outcome.rows[-1]["examples"] >= EXAMPLES


def test_every_check_has_a_planted_defect() -> None:
    planted = {(check, dtype) for _, check, dtype in DEFECTS}
    checks = {check for check, _ in _cases()}
    assert checks <= {check for check, _ in planted}, f"no planted defect for {sorted(checks - {c for c, _ in planted})}"
