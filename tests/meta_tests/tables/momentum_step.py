"""Planted defects for spec ``momentum_step`` (Titans Eq. 10/14; ``defects/titans_defects.py``)."""

from __future__ import annotations

from functools import partial

from conformance.defects import BlindSpot, PlantedDefect, SpecTable, baselines_for
from tests.meta_tests.tables import in_module

SPEC = "momentum_step"
F64, F32 = "float64", "float32"
CORRECT = ("implementations.titans:momentum_step",)
EXAMPLES = 10  # every defect below is caught within 6 examples
ref = in_module("titans_defects.py")
# a once-differentiable backward: gradgradcheck finds the second derivative missing
SECOND_DERIVATIVE_LOST = ("gradgradcheck (slow mode)", "Jacobian mismatch")
planted = partial(PlantedDefect, SPEC, max_examples=EXAMPLES)

DEFECTS = (
    planted(ref("momentum_missing_factor_two"), "oracle", F64, message_has=("max |error|",)),
    planted(ref("momentum_missing_factor_two"), "oracle", F32, message_has=("max |error|",)),
    planted(ref("momentum_plus_gradient"), "oracle", F64, message_has=("max |error|",)),
    planted(ref("momentum_gate_on_gradient"), "oracle", F64, message_has=("max |error|",)),
    planted(
        ref("momentum_gate_on_gradient"),
        "invariant:no_surprise_at_a_perfect_memory",
        F64,
        message_has=("only the decayed past surprise remains",),
    ),
    planted(ref("momentum_mean_loss"), "oracle", F64, message_has=("max |error|",)),
    planted(ref("momentum_first_row_gates"), "invariant:batch_independence", F64, message_has=("each batch row updates alone",)),
    planted(ref("momentum_column_layout"), "output_contract", F64, message_has=("S_t: ['B', 'Dk', 'Dv']",)),
    planted(ref("momentum_shuffled_sum"), "determinism", F64, message_has=("bitwise equality expected",)),
    planted(ref("momentum_first_order"), "gradient", F64, detail_has=("no gradient reaches W, k, v",)),
    planted(ref("momentum_first_order"), "gradcheck", F64, message_has=("Jacobian mismatch",)),
    planted(ref("momentum_recomputed_backward"), "gradgradcheck", F64, message_has=SECOND_DERIVATIVE_LOST),
)

BLIND_SPOTS = (
    BlindSpot(
        SPEC,
        ref("momentum_recomputed_backward"),
        "gradcheck",
        reason="the recomputed backward's first derivative is exact; only the second (gradgradcheck) is lost",
        max_examples=EXAMPLES,
    ),
)

TABLE = SpecTable(SPEC, CORRECT, DEFECTS, BLIND_SPOTS, baselines_for(CORRECT, DEFECTS + BLIND_SPOTS))
