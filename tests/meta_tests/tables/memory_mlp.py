"""Planted defects for spec ``memory_mlp`` (Titans Eq. 13–16, two-layer MLP memory; ``defects/titans_defects.py``).

A defect given ``[retrieve='after',loss='mean']`` is registered with those options, as the spec's second
implementation entry is; the others run at the defaults (``retrieve: before``, ``loss: sum``).
"""

from __future__ import annotations

from functools import partial

from conformance.defects import PlantedDefect, SpecTable
from tests.meta_tests.tables import in_module, recurrence_baselines

SPEC = "memory_mlp"
F64, F32 = "float64", "float32"
CORRECT = (
    "implementations.titans:memory_mlp",
    "implementations.titans:memory_mlp[retrieve='after',loss='mean']",
)
AFTER_MEAN = "[retrieve='after',loss='mean']"
EXAMPLES = 10  # every defect below is caught within 4 examples
ref = in_module("titans_defects.py")
# a once-differentiable backward: gradgradcheck finds the second derivative missing
SECOND_DERIVATIVE_LOST = ("gradgradcheck (slow mode)", "Jacobian mismatch")
planted = partial(PlantedDefect, SPEC, max_examples=EXAMPLES)
WRONG_VALUES = ("max |error|",)
STEP_CHUNK = (*WRONG_VALUES, "matches the reading: step = chunk")  # the diagnosis names the coarser reading

DEFECTS = (
    planted(ref("mlp_tanh_gelu"), "oracle", F64, message_has=WRONG_VALUES),
    planted(ref("mlp_silu"), "oracle", F64, message_has=WRONG_VALUES),
    planted(ref("mlp_silu"), "oracle", F32, message_has=WRONG_VALUES),
    planted(ref("mlp_missing_factor_two"), "oracle", F64, message_has=WRONG_VALUES),
    planted(ref("mlp_anchor_ignored"), "oracle", F64, message_has=WRONG_VALUES),
    # one step per chunk: caught, and named as the reading step = chunk (titans.yaml's ambiguity)
    planted(ref("memory_mlp_one_step_per_chunk"), "oracle", F64, message_has=STEP_CHUNK),
    planted(ref("mlp_chunk_grid_restarts"), "oracle", F64, message_has=WRONG_VALUES),
    # retrieval changes no state: only the retrieved y can differ
    planted(ref("mlp_retrieve_swapped"), "oracle", F64, message_has=("y: max |error|",)),
    planted(ref("mlp_retrieve_swapped") + AFTER_MEAN, "oracle", F64, message_has=("y: max |error|",)),
    planted(ref("mlp_momentum_start_ignored"), "oracle", F64, message_has=WRONG_VALUES),
    planted(
        ref("mlp_reads_final_memory"), "invariant:causality", F64, message_has=("future tokens change no earlier retrieval: y",)
    ),
    planted(ref("mlp_no_anchor_returned"), "output_contract", F64, message_has=("returned 5 values",)),
    planted(ref("mlp_alternating_method"), "determinism", F64, message_has=("bitwise equality expected",)),
    planted(ref("mlp_first_order"), "gradcheck", F64, message_has=("gradcheck (slow mode)", "Jacobian mismatch")),
    planted(ref("mlp_recomputed_backward"), "gradgradcheck", F64, message_has=SECOND_DERIVATIVE_LOST),
    # the gradient check differentiates the reference oracle (titans_reference.py takes xp) at every dtype
    planted(ref("mlp_first_order"), "gradient", F32, message_has=("no gradient reaches k, v",)),
    # two calls carrying (W, S, A) and start + s: a chunk grid that restarts at each call, or a partial first
    # chunk that takes its gradients at W instead of the carried anchor, breaks the split at a mid-chunk point
    planted(ref("mlp_chunk_grid_restarts"), "invariant:streaming", F64, message_has=("split at s =",)),
    planted(ref("mlp_chunk_grid_restarts"), "invariant:streaming", F32, message_has=("split at s =",)),
    planted(ref("mlp_anchor_ignored"), "invariant:streaming", F64, message_has=("split at s =",)),
)

BASELINES = recurrence_baselines(CORRECT, DEFECTS, EXAMPLES)
TABLE = SpecTable(SPEC, CORRECT, DEFECTS, baselines=BASELINES)
