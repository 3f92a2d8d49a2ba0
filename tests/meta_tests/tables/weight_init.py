"""Planted defects for spec ``weight_init`` (``defects/weight_init_defects.py``).

Every catch names the failing example and carries the bound with its basis. The statistical checks'
false-alarm rate is the spec's ``false_alarm`` (1e-6 per row), so these claims are not flaky; with the
derandomized profile they are deterministic besides. The correct initialisation runs on every
(check, dtype) the spec lists.
"""

from __future__ import annotations

from conformance.defects import PlantedDefect, SpecTable, baselines_for, generated_checks, shipped_specs
from tests.meta_tests.tables import in_module

SPEC = "weight_init"
CORRECT = ("implementations.initialization:init_weights",)
EXAMPLES = 10  # Hypothesis examples per row (the dev profile's count)
ref = in_module("weight_init_defects.py")


def planted(name: str, check: str, dtype: str) -> PlantedDefect:
    return PlantedDefect(
        SPEC, ref(name), f"init_statistics:{check}", dtype, max_examples=EXAMPLES,
        detail_has=("example: sizes=",), row_fields=("tolerance_basis",),
    )  # fmt: skip


DEFECTS = (
    planted("guide_trunc_normal", "linear_truncated_normal", "float32"),
    planted("guide_trunc_normal", "linear_truncated_normal", "bfloat16"),
    planted("xavier_normal", "linear_xavier_uniform", "float32"),
    planted("xavier_fan_in_only", "linear_xavier_uniform", "float32"),
    planted("std_point_two", "linear_normal", "float32"),
    planted("std_point_two", "linear_normal", "bfloat16"),
    planted("variance_for_std", "linear_normal", "float32"),
    planted("method_ignored", "linear_normal", "float32"),
    planted("method_ignored", "linear_truncated_normal", "float32"),
    planted("bias_left_default", "linear_xavier_uniform", "float32"),
    planted("bias_default_init", "linear_normal", "float32"),
    planted("embedding_untouched", "embedding_normal", "float32"),
    planted("embedding_unit_normal", "embedding_normal", "bfloat16"),
    planted("norm_weight_normal", "layer_norm_unit", "float32"),
    planted("norm_weight_normal", "rms_norm_unit", "float32"),
    planted("layer_norm_bias_one", "layer_norm_unit", "float32"),
    planted("rms_norm_not_recognised", "rms_norm_unit", "float32"),
    planted("layer_norm_needs_bias", "layer_norm_without_bias", "float32"),
    planted("linear_needs_bias", "linear_without_bias", "float32"),
)

BASELINES = baselines_for(
    CORRECT,
    (),
    max_examples=EXAMPLES,
    extra_cells=[(SPEC, check, dtype, "cpu") for check, dtype in sorted(generated_checks(shipped_specs()[SPEC], "cpu"))],
    min_examples=EXAMPLES,
)
TABLE = SpecTable(SPEC, CORRECT, DEFECTS, baselines=BASELINES)
