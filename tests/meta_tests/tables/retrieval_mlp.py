"""Planted defects for spec ``retrieval_mlp`` (Titans Eq. 15, two-layer MLP memory; ``defects/titans_defects.py``)."""

from __future__ import annotations

from functools import partial

from conformance.defects import PlantedDefect, SpecTable, baselines_for
from tests.meta_tests.tables import in_module

SPEC = "retrieval_mlp"
F64, F32 = "float64", "float32"
CORRECT = ("implementations.titans:retrieve_mlp",)
EXAMPLES = 10  # every defect below is caught within 5 examples
ref = in_module("titans_defects.py")
# a once-differentiable backward: gradgradcheck finds the second derivative missing
SECOND_DERIVATIVE_LOST = ("gradgradcheck (slow mode)", "Jacobian mismatch")
planted = partial(PlantedDefect, SPEC, max_examples=EXAMPLES)

DEFECTS = (
    planted(ref("retrieve_mlp_tanh_gelu"), "oracle", F64, message_has=("max |error|",)),
    planted(ref("retrieve_mlp_tanh_gelu"), "oracle", F32, message_has=("max |error|",)),
    planted(ref("retrieve_mlp_silu"), "oracle", F64, message_has=("max |error|",)),
    planted(ref("retrieve_mlp_short_conv"), "invariant:token_independence", F64, message_has=("each token is retrieved alone",)),
    planted(ref("retrieve_mlp_second_layer_dropped"), "output_contract", F64, message_has=("y: ['B', 'T', 'Dv']",)),
    planted(ref("retrieve_mlp_shuffled_sum"), "determinism", F64, message_has=("bitwise equality expected",)),
    planted(ref("retrieve_mlp_detached_first_layer"), "gradient", F64, detail_has=("no gradient reaches W1",)),
    planted(
        ref("retrieve_mlp_detached_first_layer"),
        "gradcheck",
        F64,
        message_has=("Jacobian mismatch for output 0 with respect to input 2",),
    ),
    planted(ref("retrieve_mlp_recomputed_backward"), "gradgradcheck", F64, message_has=SECOND_DERIVATIVE_LOST),
)

TABLE = SpecTable(SPEC, CORRECT, DEFECTS, baselines=baselines_for(CORRECT, DEFECTS))
