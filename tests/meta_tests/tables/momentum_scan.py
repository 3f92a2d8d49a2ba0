"""Planted defects for spec ``momentum_scan`` (Titans Eq. 18; ``defects/titans_defects.py``, ``scan_*``)."""

from __future__ import annotations

from functools import partial

from conformance.defects import PlantedDefect, SpecTable, baselines_for
from tests.meta_tests.tables import in_module

SPEC = "momentum_scan"
F64, F32 = "float64", "float32"
CORRECT = ("implementations.titans:momentum_scan",)
EXAMPLES = 10  # every defect below is caught within 4 examples
ref = in_module("titans_defects.py")
# a once-differentiable backward: gradgradcheck finds the second derivative missing
SECOND_DERIVATIVE_LOST = ("gradgradcheck (slow mode)", "Jacobian mismatch")
planted = partial(PlantedDefect, SPEC, max_examples=EXAMPLES)

DEFECTS = (
    planted(ref("scan_plus_surprise"), "oracle", F64, message_has=("max |error|",)),
    planted(ref("scan_plus_surprise"), "oracle", F32, message_has=("max |error|",)),
    planted(ref("scan_drops_initial_state"), "oracle", F64, message_has=("max |error|",)),
    planted(ref("scan_gate_on_surprise"), "oracle", F64, message_has=("max |error|",)),
    planted(ref("scan_reversed"), "invariant:causality", F64, message_has=("a momentum depends on no later token",)),
    planted(ref("scan_clipped_surprise"), "invariant:linearity", F64, message_has=("the scan is linear in (u, S_0)",)),
    planted(ref("scan_last_state_only"), "output_contract", F64, message_has=("S_t: ['B', 'T', 'N']",)),
    planted(ref("scan_alternating_order"), "determinism", F64, message_has=("bitwise equality expected",)),
    planted(ref("scan_detached_eta"), "gradcheck", F64, message_has=("Jacobian mismatch for output 0 with respect to input 0",)),
    planted(ref("scan_recomputed_backward"), "gradgradcheck", F64, message_has=SECOND_DERIVATIVE_LOST),
    # the gradient check differentiates the reference oracle (titans_reference.py takes xp) at every dtype
    planted(ref("scan_detached_eta"), "gradient", F32, message_has=("no gradient reaches eta",)),
)

TABLE = SpecTable(SPEC, CORRECT, DEFECTS, baselines=baselines_for(CORRECT, DEFECTS))
