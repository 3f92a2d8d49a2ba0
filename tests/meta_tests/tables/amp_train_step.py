"""Planted defects for spec ``amp_train_step`` (``defects/amp_train_step_defects.py``).

Each catch must name the falsifying example and say a fragment of the stated reason (not some other
one). All rows run on the CPU; ``GuideDeprecatedApi`` on CUDA is caught by its FutureWarning alone
(autocast and the CUDA scaler work there), which the CPU rows cannot show.
"""

from __future__ import annotations

from conformance.defects import BlindSpot, PlantedDefect, SpecTable, baselines_for
from tests.meta_tests.tables import in_module

SPEC = "amp_train_step"
CORRECT = ("implementations.trainer:Trainer",)
FULL, MIXED, OVERFLOW = "train_step:full_precision", "train_step:mixed_precision", "train_step:overflow_skip"
F64, F32, BF16, F16 = "float64", "float32", "bfloat16", "float16"
EXAMPLES = 20  # every defect below is caught within its first few derandomized examples
ref = in_module("amp_train_step_defects.py")


def planted(name: str, check: str, dtype: str, reason: str, tag: str = "") -> PlantedDefect:
    return PlantedDefect(SPEC, ref(name), check, dtype, max_examples=EXAMPLES, message_has=(reason, "example: {"), tag=tag)


def blind(name: str, check: str, dtype: str, reason: str) -> BlindSpot:
    return BlindSpot(SPEC, ref(name), check, dtype, reason, max_examples=EXAMPLES)


REFERENCE_PARAMETERS = "parameters vs the float64 reference loop"
DEFECTS = (
    planted("GuideVerbatim", FULL, F64, "torch.cuda.amp.autocast"),
    # Called through the guide's own signature (no amp_dtype keyword), it is caught for what is wrong with it:
    planted("GuideVerbatim", MIXED, BF16, "cpu autocast was off during the forward pass"),
    planted("GuideDeprecatedApi", FULL, F32, "FutureWarning"),
    planted("GuideDeprecatedApi", MIXED, BF16, "the deprecated device-specific AMP API", "deprecated-api"),
    planted("GuideDeprecatedApi", MIXED, BF16, "cpu autocast was off during the forward pass", "autocast-off"),
    planted("GuideDeprecatedApi", MIXED, F16, "trainer.scaler must be an enabled torch.amp.GradScaler"),
    planted("ClipBeforeUnscale", MIXED, F16, REFERENCE_PARAMETERS),
    planted("NoZeroGrad", FULL, F64, REFERENCE_PARAMETERS),
    planted("NoZeroGrad", MIXED, BF16, REFERENCE_PARAMETERS),
    planted("ReturnsTensor", FULL, F64, "returned Tensor"),
    planted("ReturnsScaledLoss", MIXED, F16, "returned losses vs the float64 reference loop"),
    planted("ReturnsBeforeBackward", FULL, F64, REFERENCE_PARAMETERS),
    planted("ClipMaxNorm10", FULL, F64, REFERENCE_PARAMETERS),
    planted("ClipMaxNorm10", MIXED, BF16, REFERENCE_PARAMETERS),
    planted("NoSkipOnInf", OVERFLOW, F16, "an overflowing step must be skipped"),
    planted("FrozenScale", OVERFLOW, F16, "loss scale after each step [1024.0, 1024.0"),
    planted("AutocastOverBackward", MIXED, BF16, "backward ran under cpu autocast"),
    planted("AutocastOverBackward", MIXED, F16, "backward ran under cpu autocast"),
    planted("AutocastIgnored", MIXED, BF16, "cpu autocast was off during the forward pass"),
)

BLIND_SPOTS = (
    blind("ClipBeforeUnscale", MIXED, BF16, "bfloat16 needs no loss scaling: the scaler is a pass-through"),
    blind("ClipBeforeUnscale", FULL, F64, "without AMP nothing is scaled: clipping before or after unscaling is the same"),
    blind("ReturnsScaledLoss", MIXED, BF16, "with the scaler disabled the scaled loss is the loss"),
    blind("AutocastOverBackward", FULL, F64, "use_amp=False: the autocast block is disabled, backward runs without it"),
    blind("AutocastIgnored", FULL, F64, "use_amp=False: no autocast is expected"),
    blind("NoSkipOnInf", FULL, F64, "full precision never skips (no loss scaling), and nothing overflows"),
    blind("FrozenScale", MIXED, BF16, "bfloat16: the scaler is disabled, there is no scale to freeze"),
)

TABLE = SpecTable(
    SPEC,
    CORRECT,
    DEFECTS,
    BLIND_SPOTS,
    baselines_for(CORRECT, DEFECTS + BLIND_SPOTS, max_examples=2 * EXAMPLES, examples=2 * EXAMPLES),
    every_dtype=True,
)
