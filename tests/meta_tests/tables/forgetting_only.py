"""Planted defects for spec ``forgetting_only`` (Titans Eq. 13 at θ = 0, S_0 = 0: M_t = β_t M_0).

The defects have memory_linear's signature (``defects/titans_defects.py``, ``memory_*``). With θ = 0 and
S_0 = 0 every S_t is 0, so ``memory_forget_after_adding`` ((1 − α)(M + S)) equals the right recurrence here;
memory_linear's table catches it.
"""

from __future__ import annotations

from functools import partial

from conformance.defects import PlantedDefect, SpecTable, baselines_for
from tests.meta_tests.tables import in_module

SPEC = "forgetting_only"
F64, F32 = "float64", "float32"
CORRECT = ("implementations.titans:memory_linear",)
EXAMPLES = 10  # every defect below is caught within 5 examples
ref = in_module("titans_defects.py")
planted = partial(PlantedDefect, SPEC, max_examples=EXAMPLES)

DEFECTS = (
    planted(ref("memory_alpha_as_retention"), "oracle", F64, message_has=("max |error|",)),
    planted(ref("memory_alpha_as_retention"), "oracle", F32, message_has=("max |error|",)),
    planted(ref("memory_retrieve_swapped"), "oracle", F64, message_has=("y: max |error|",)),
    planted(ref("memory_no_anchor_returned"), "output_contract", F64, message_has=("returned 3 values",)),
    planted(ref("memory_alternating_method"), "determinism", F64, message_has=("bitwise equality expected",)),
    planted(ref("memory_first_row_for_all"), "invariant:batch_independence", F64, message_has=("permuting the rows",)),
)

TABLE = SpecTable(SPEC, CORRECT, DEFECTS, baselines=baselines_for(CORRECT, DEFECTS))
