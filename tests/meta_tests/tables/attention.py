"""Planted defects for spec ``attention`` (``defects/attention_defects.py``)."""

from __future__ import annotations

from functools import partial

from conformance.defects import PlantedDefect, SpecTable, baselines_for
from tests.meta_tests.tables import in_module

SPEC = "attention"
F64, F32, F16 = "float64", "float32", "float16"
CORRECT = ("implementations.attention:attention_manual", "implementations.attention:attention_with_flash")
ref = in_module("attention_defects.py")
planted = partial(PlantedDefect, SPEC)

DEFECTS = (
    planted(ref("no_scaling"), "oracle"),
    planted(ref("mask_inverted"), "oracle"),
    planted(ref("causal_bottom_right"), "oracle"),
    planted(ref("guide_fallback"), "oracle", all_failures=True),
    planted(ref("causal_ignores_mask"), "oracle"),
    planted(ref("causal_square_query_mask"), "oracle", all_failures=True),
    planted(ref("softmax_over_queries"), "oracle"),
    planted(ref("softmax_over_queries"), "invariant:weights_sum_to_one"),
    planted(ref("ignores_is_causal"), "invariant:causality"),
    planted(ref("query_position_bias"), "invariant:query_permutation"),
    planted(ref("key_position_bias"), "invariant:key_value_permutation"),
    planted(ref("log_softmax_weights"), "invariant:convex_hull"),
    planted(ref("output_bias"), "invariant:value_linearity"),
    planted(ref("key_only_l2_norm"), "invariant:query_key_rescaling"),
    planted(ref("upcast_output"), "output_contract", F16),
    planted(ref("nondeterministic"), "determinism"),
    planted(ref("detached_values"), "gradient"),
    planted(ref("wrong_query_backward"), "gradient"),
    planted(ref("wrong_query_backward"), "gradient", F32),
    planted(ref("wrong_query_backward"), "gradcheck"),
)

TABLE = SpecTable(SPEC, CORRECT, DEFECTS, baselines=baselines_for(CORRECT, DEFECTS))
