"""Planted defects for spec ``descent_step`` (Titans Eq. 12/14: an inner step lowers the loss on its token).

The defects have memory_linear's signature (``defects/titans_defects.py``, ``memory_*``).
"""

from __future__ import annotations

from functools import partial

from conformance.defects import PlantedDefect, SpecTable, baselines_for
from tests.meta_tests.tables import in_module

SPEC = "descent_step"
F64, F32 = "float64", "float32"
CORRECT = ("implementations.titans:memory_linear",)
EXAMPLES = 10
ref = in_module("titans_defects.py")
planted = partial(PlantedDefect, SPEC, max_examples=EXAMPLES)
RAISES_THE_LOSS = ("the loss of the updated memory on the same token is at most the loss before the update",)

DEFECTS = (
    planted(ref("memory_plus_gradient"), "oracle", F64, message_has=("max |error|",)),
    # +θ∇: the step climbs the loss, which the bound sees without the oracle
    planted(ref("memory_plus_gradient"), "invariant:loss_decreases", F64, message_has=RAISES_THE_LOSS),
    planted(ref("memory_plus_gradient"), "invariant:loss_decreases", F32, message_has=RAISES_THE_LOSS),
    planted(ref("memory_missing_factor_two"), "oracle", F64, message_has=("max |error|",)),
    planted(ref("memory_no_anchor_returned"), "output_contract", F64, message_has=("returned 3 values",)),
    planted(ref("memory_alternating_method"), "determinism", F64, message_has=("bitwise equality expected",)),
)

TABLE = SpecTable(SPEC, CORRECT, DEFECTS, baselines=baselines_for(CORRECT, DEFECTS))
