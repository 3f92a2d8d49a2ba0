"""Planted defects for spec ``one_chunk_step`` (Titans Eq. 16 with one chunk: every gradient at M_0).

The defects have memory_linear's signature (``defects/titans_defects.py``, ``memory_*``).
"""

from __future__ import annotations

from functools import partial

from conformance.defects import PlantedDefect, SpecTable, baselines_for
from tests.meta_tests.tables import in_module

SPEC = "one_chunk_step"
F64, F32 = "float64", "float32"
CORRECT = ("implementations.titans:memory_linear",)
EXAMPLES = 10  # every defect below is caught within 5 examples
ref = in_module("titans_defects.py")
planted = partial(PlantedDefect, SPEC, max_examples=EXAMPLES)

DEFECTS = (
    planted(ref("memory_anchor_one_token_late"), "oracle", F64, message_has=("max |error|",)),
    planted(ref("memory_chunk_size_ignored"), "oracle", F64, message_has=("max |error|",)),
    planted(ref("memory_chunk_size_ignored"), "oracle", F32, message_has=("max |error|",)),
    planted(ref("memory_missing_factor_two"), "oracle", F64, message_has=("max |error|",)),
    planted(ref("memory_no_anchor_returned"), "output_contract", F64, message_has=("returned 3 values",)),
    planted(ref("memory_alternating_method"), "determinism", F64, message_has=("bitwise equality expected",)),
    planted(ref("memory_first_row_for_all"), "invariant:batch_independence", F64, message_has=("permuting the rows",)),
)

TABLE = SpecTable(SPEC, CORRECT, DEFECTS, baselines=baselines_for(CORRECT, DEFECTS))
