"""Planted defects for spec ``linear_matmul_form`` (Titans Eq. 17; ``defects/titans_defects.py``, ``matmul_*``)."""

from __future__ import annotations

from functools import partial

from conformance.defects import PlantedDefect, SpecTable, baselines_for
from tests.meta_tests.tables import in_module

SPEC = "linear_matmul_form"
F64, F32 = "float64", "float32"
CORRECT = ("implementations.titans:chunk_gradient_sum",)
EXAMPLES = 10  # every defect below is caught within 4 examples
ref = in_module("titans_defects.py")
# a once-differentiable backward: gradgradcheck finds the second derivative missing
SECOND_DERIVATIVE_LOST = ("gradgradcheck (slow mode)", "Jacobian mismatch")
planted = partial(PlantedDefect, SPEC, max_examples=EXAMPLES)

DEFECTS = (
    planted(ref("matmul_missing_factor_two"), "oracle", F64, message_has=("max |error|",)),
    planted(ref("matmul_missing_factor_two"), "oracle", F32, message_has=("max |error|",)),
    planted(ref("matmul_ratio_inclusive"), "oracle", F64, message_has=("max |error|",)),
    planted(ref("matmul_ratio_not_reversed"), "oracle", F64, message_has=("max |error|",)),
    planted(ref("matmul_ratio_by_division"), "invariant:full_forgetting", F64, message_has=("only θ_b ∇ℓ(W_0; x_b) remains",)),
    planted(ref("matmul_ratio_by_division"), "invariant:full_forgetting", F32, message_has=("only θ_b ∇ℓ(W_0; x_b) remains",)),
    planted(ref("matmul_normalised_theta"), "invariant:linearity_in_theta", F64, message_has=("the sum is linear in θ",)),
    planted(ref("matmul_per_token_gradients"), "output_contract", F64, message_has=("G: ['B', 'Dk', 'Dv']",)),
    planted(ref("matmul_shuffled_tokens"), "determinism", F64, message_has=("bitwise equality expected",)),
    planted(
        ref("matmul_detached_ratio"), "gradcheck", F64, message_has=("Jacobian mismatch for output 0 with respect to input 4",)
    ),
    planted(ref("matmul_recomputed_backward"), "gradgradcheck", F64, message_has=SECOND_DERIVATIVE_LOST),
    # the gradient check differentiates the reference oracle (titans_reference.py takes xp) at every dtype
    planted(ref("matmul_detached_ratio"), "gradient", F32, message_has=("no gradient reaches alpha",)),
)

TABLE = SpecTable(SPEC, CORRECT, DEFECTS, baselines=baselines_for(CORRECT, DEFECTS))
