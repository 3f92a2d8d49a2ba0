"""Planted defects for spec ``forget_step`` (Titans Eq. 13; ``defects/titans_defects.py``)."""

from __future__ import annotations

from functools import partial

from conformance.defects import PlantedDefect, SpecTable, baselines_for
from tests.meta_tests.tables import in_module

SPEC = "forget_step"
F64, F32 = "float64", "float32"
CORRECT = ("implementations.titans:forget_step",)
EXAMPLES = 10  # every defect below is caught within 4 examples
ref = in_module("titans_defects.py")
# a once-differentiable backward: gradgradcheck finds the second derivative missing
SECOND_DERIVATIVE_LOST = ("gradgradcheck (slow mode)", "Jacobian mismatch")
planted = partial(PlantedDefect, SPEC, max_examples=EXAMPLES)

DEFECTS = (
    planted(ref("forget_after_adding"), "invariant:full_forgetting", F64, message_has=("α = 1 keeps only the new surprise",)),
    planted(ref("forget_after_adding"), "oracle", F64, message_has=("max |error|",)),
    planted(ref("forget_alpha_as_retention"), "oracle", F64, message_has=("max |error|",)),
    planted(ref("forget_alpha_as_retention"), "oracle", F32, message_has=("max |error|",)),
    planted(
        ref("forget_alpha_as_retention"), "invariant:full_forgetting", F64, message_has=("α = 1 keeps only the new surprise",)
    ),
    planted(ref("forget_flattened_memory"), "output_contract", F64, message_has=("M_t: ['B', 'Dk', 'Dv']",)),
    planted(ref("forget_alternating_association"), "determinism", F64, message_has=("bitwise equality expected",)),
    planted(ref("forget_detached_gate"), "gradient", F64, detail_has=("no gradient reaches alpha",)),
    planted(
        ref("forget_detached_gate"), "gradcheck", F64, message_has=("Jacobian mismatch for output 0 with respect to input 2",)
    ),
    planted(ref("forget_recomputed_backward"), "gradgradcheck", F64, message_has=SECOND_DERIVATIVE_LOST),
)

TABLE = SpecTable(SPEC, CORRECT, DEFECTS, baselines=baselines_for(CORRECT, DEFECTS))
