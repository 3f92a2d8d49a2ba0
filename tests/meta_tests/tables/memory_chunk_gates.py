"""Planted defects for spec ``memory_chunk_gates`` (Titans Eq. 16 with θ, α, η constant per chunk;
``defects/titans_defects.py``, ``chunk_gates_*``)."""

from __future__ import annotations

from functools import partial

from conformance.defects import PlantedDefect, SpecTable
from tests.meta_tests.tables import in_module, recurrence_baselines

SPEC = "memory_chunk_gates"
F64, F32 = "float64", "float32"
CORRECT = (
    "implementations.titans:memory_linear_chunk_gates",
    "implementations.titans:memory_linear_chunk_gates[retrieve='after',loss='mean']",
)
EXAMPLES = 10
ref = in_module("titans_defects.py")
planted = partial(PlantedDefect, SPEC, max_examples=EXAMPLES)
WRONG_VALUES = ("max |error|",)

DEFECTS = (
    planted(ref("chunk_gates_one_step_per_chunk"), "oracle", F64, message_has=WRONG_VALUES),
    planted(ref("chunk_gates_one_step_per_chunk"), "oracle", F32, message_has=WRONG_VALUES),
    planted(ref("chunk_gates_shifted"), "oracle", F64, message_has=WRONG_VALUES),
    planted(ref("chunk_gates_plus_gradient"), "oracle", F64, message_has=WRONG_VALUES),
    planted(ref("chunk_gates_reads_final_memory"), "invariant:causality", F64, message_has=("future tokens change no earlier",)),
    planted(ref("chunk_gates_no_momentum_returned"), "output_contract", F64, message_has=("returned 2 values",)),
    planted(ref("chunk_gates_alternating_method"), "determinism", F64, message_has=("bitwise equality expected",)),
    planted(ref("chunk_gates_detached_gates"), "gradcheck", F64),
    planted(ref("chunk_gates_recomputed_backward"), "gradgradcheck", F64, message_has=("gradgradcheck (slow mode)",)),
    # the gradient check differentiates the reference oracle (titans_reference.py takes xp) at every dtype
    planted(ref("chunk_gates_detached_gates"), "gradient", F32, message_has=("no gradient reaches theta, alpha, eta",)),
)

BASELINES = recurrence_baselines(CORRECT, DEFECTS, EXAMPLES)
TABLE = SpecTable(SPEC, CORRECT, DEFECTS, baselines=BASELINES)
