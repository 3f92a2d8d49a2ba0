"""Planted defects for spec ``keys_values`` (Titans Eq. 11; ``defects/titans_defects.py``)."""

from __future__ import annotations

from functools import partial

from conformance.defects import PlantedDefect, SpecTable, baselines_for
from tests.meta_tests.tables import in_module

SPEC = "keys_values"
F64, F32 = "float64", "float32"
CORRECT = ("implementations.titans:keys_values",)
EXAMPLES = 10  # every defect below is caught within 5 examples
ref = in_module("titans_defects.py")
# a once-differentiable backward: gradgradcheck finds the second derivative missing
SECOND_DERIVATIVE_LOST = ("gradgradcheck (slow mode)", "Jacobian mismatch")
planted = partial(PlantedDefect, SPEC, max_examples=EXAMPLES)

DEFECTS = (
    planted(ref("kv_silu_keys"), "oracle", F64, message_has=("k: max |error|",)),
    planted(ref("kv_silu_keys"), "oracle", F32, message_has=("k: max |error|",)),
    planted(ref("kv_normalised_keys"), "invariant:linearity_in_x", F64, message_has=("the projections are linear in x: k:",)),
    planted(
        ref("kv_short_conv"), "invariant:token_independence", F64, message_has=("permuting tokens permutes keys and values",)
    ),
    planted(ref("kv_column_layout"), "output_contract", F64, message_has=("k: shape",)),
    planted(ref("kv_shuffled_sum"), "determinism", F64, message_has=("k: two calls differ", "bitwise equality expected")),
    planted(ref("kv_detached_value_weights"), "gradient", F64, detail_has=("no gradient reaches W_V",)),
    planted(ref("kv_detached_value_weights"), "gradient", F32, detail_has=("no gradient reaches W_V",)),
    planted(
        ref("kv_detached_value_weights"),
        "gradcheck",
        F64,
        message_has=("Jacobian mismatch for output 1 with respect to input 2",),
    ),
    planted(ref("kv_recomputed_backward"), "gradgradcheck", F64, message_has=SECOND_DERIVATIVE_LOST),
)

TABLE = SpecTable(SPEC, CORRECT, DEFECTS, baselines=baselines_for(CORRECT, DEFECTS))
