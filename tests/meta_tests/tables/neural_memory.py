"""Planted defects for spec ``neural_memory`` (the NeuralMemory module: Eq. 11, 15 and 13–16 per head;
``defects/titans_defects.py``, ``Module*``: subclasses of NeuralMemory changing one method each)."""

from __future__ import annotations

from functools import partial

from conformance.defects import PlantedDefect, SpecTable
from tests.meta_tests.tables import in_module, recurrence_baselines

SPEC = "neural_memory"
F64, F32 = "float64", "float32"
CORRECT = ("implementations.titans:NeuralMemory", "implementations.titans:NeuralMemory[retrieve='after',loss='mean']")
EXAMPLES = 10
ref = in_module("titans_defects.py")
planted = partial(PlantedDefect, SPEC, max_examples=EXAMPLES)
WRONG_VALUES = ("max |error|",)

DEFECTS = (
    planted(ref("ModuleSharedMemory"), "oracle", F64, message_has=WRONG_VALUES),
    planted(ref("ModuleNoHeadMixing"), "oracle", F64, message_has=WRONG_VALUES),
    planted(ref("ModuleNoHeadMixing"), "oracle", F32, message_has=WRONG_VALUES),
    planted(ref("ModuleKeysAsValues"), "oracle", F64, message_has=WRONG_VALUES),
    # with the read before the update, y_t reads M_{t-1}, built from gates up to t: the read after exposes t+1's
    planted(
        ref("ModuleFutureGates") + "[retrieve='after',loss='mean']",
        "invariant:causality",
        F64,
        message_has=("future tokens (and their gates) change no earlier output",),
    ),
    planted(ref("ModuleAlternatingMethod"), "determinism", F64, message_has=("bitwise equality expected",)),
    planted(ref("ModuleHeadsNotUnfolded"), "output_contract", F64, message_has=("shape",)),
    planted(ref("ModuleRecomputedBackward"), "gradgradcheck", F64, message_has=("gradgradcheck (slow mode)",)),
    planted(ref("ModuleDetachedGates"), "gradcheck", F64),
    # the gradient check differentiates the reference oracle (titans_reference.py takes xp) at every dtype
    planted(ref("ModuleDetachedGates"), "gradient", F32, message_has=("no gradient reaches theta, alpha, eta",)),
)
BASELINES = recurrence_baselines(CORRECT, DEFECTS, EXAMPLES)
TABLE = SpecTable(SPEC, CORRECT, DEFECTS, baselines=BASELINES)
