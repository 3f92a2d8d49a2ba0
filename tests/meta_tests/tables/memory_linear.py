"""Planted defects for spec ``memory_linear`` (Titans Eq. 13–16, linear memory; ``defects/titans_defects.py``).

A defect given ``[retrieve='after']`` or ``[loss='mean']`` is registered with that option, as the spec's
implementation entries are; the others run at the defaults (``retrieve: before``, ``loss: sum``).
"""

from __future__ import annotations

from functools import partial

from conformance.defects import PlantedDefect, SpecTable
from tests.meta_tests.tables import in_module, recurrence_baselines

SPEC = "memory_linear"
F64, F32 = "float64", "float32"
CORRECT = (
    "implementations.titans:memory_linear",
    "implementations.titans:memory_linear[retrieve='after']",
    "implementations.titans:memory_linear[loss='mean']",
)
AFTER, MEAN = "[retrieve='after']", "[loss='mean']"
EXAMPLES = 10  # every defect below is caught within 6 examples
ref = in_module("titans_defects.py")
# a once-differentiable backward: gradgradcheck finds the second derivative missing
SECOND_DERIVATIVE_LOST = ("gradgradcheck (slow mode)", "Jacobian mismatch")
planted = partial(PlantedDefect, SPEC, max_examples=EXAMPLES)
WRONG_VALUES = ("max |error|",)
STEP_CHUNK = (*WRONG_VALUES, "matches the reading: step = chunk")  # the diagnosis names the coarser reading

DEFECTS = (
    planted(ref("memory_missing_factor_two"), "oracle", F64, message_has=WRONG_VALUES),
    planted(ref("memory_missing_factor_two"), "oracle", F32, message_has=WRONG_VALUES),
    planted(ref("memory_plus_gradient"), "oracle", F64, message_has=WRONG_VALUES),
    planted(ref("memory_forget_after_adding"), "oracle", F64, message_has=WRONG_VALUES),
    planted(ref("memory_gate_on_gradient"), "oracle", F64, message_has=WRONG_VALUES),
    planted(ref("memory_anchor_one_token_late"), "oracle", F64, message_has=WRONG_VALUES),
    planted(ref("memory_chunk_size_ignored"), "oracle", F64, message_has=WRONG_VALUES),
    # one step per chunk: caught, and named as the reading step = chunk (titans.yaml's ambiguity)
    planted(ref("memory_one_step_per_chunk"), "oracle", F64, message_has=STEP_CHUNK),
    planted(ref("memory_one_step_per_chunk"), "oracle", F32, message_has=STEP_CHUNK),
    planted(ref("memory_chunk_grid_restarts"), "oracle", F64, message_has=WRONG_VALUES),
    planted(ref("memory_anchor_ignored"), "oracle", F64, message_has=WRONG_VALUES),
    # retrieval changes no state: only the retrieved y can differ
    planted(ref("memory_retrieve_swapped"), "oracle", F64, message_has=("y: max |error|",)),
    planted(ref("memory_retrieve_swapped") + AFTER, "oracle", F64, message_has=("y: max |error|",)),
    planted(ref("memory_mean_loss"), "oracle", F64, message_has=WRONG_VALUES),
    planted(ref("memory_sum_loss") + MEAN, "oracle", F64, message_has=WRONG_VALUES),
    planted(ref("memory_momentum_start_ignored"), "oracle", F64, message_has=WRONG_VALUES),
    planted(ref("memory_alpha_as_retention"), "oracle", F64, message_has=WRONG_VALUES),
    planted(
        ref("memory_reads_final_memory"),
        "invariant:causality",
        F64,
        message_has=("future tokens change no earlier retrieval: y",),
    ),
    planted(ref("memory_no_anchor_returned"), "output_contract", F64, message_has=("returned 3 values", "(y, W_T, S_T, A_T)")),
    planted(ref("memory_alternating_method"), "determinism", F64, message_has=("bitwise equality expected",)),
    planted(ref("memory_first_order"), "gradcheck", F64, message_has=("gradcheck (slow mode)", "Jacobian mismatch")),
    planted(ref("memory_recomputed_backward"), "gradgradcheck", F64, message_has=SECOND_DERIVATIVE_LOST),
    # the gradient check differentiates the reference oracle (titans_reference.py takes xp) at every dtype
    planted(ref("memory_first_order"), "gradient", F32, message_has=("no gradient reaches k, v",)),
    # two calls carrying (W, S, A) and start + s: a chunk grid that restarts at each call, or a partial first
    # chunk that takes its gradients at W instead of the carried anchor, breaks the split at a mid-chunk point
    planted(ref("memory_chunk_grid_restarts"), "invariant:streaming", F64, message_has=("split at s =",)),
    planted(ref("memory_chunk_grid_restarts"), "invariant:streaming", F32, message_has=("split at s =",)),
    planted(ref("memory_anchor_ignored"), "invariant:streaming", F64, message_has=("split at s =",)),
)

BASELINES = recurrence_baselines(CORRECT, DEFECTS, EXAMPLES)
TABLE = SpecTable(SPEC, CORRECT, DEFECTS, baselines=BASELINES)
