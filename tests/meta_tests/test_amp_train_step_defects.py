"""Planted defects for spec ``amp_train_step``: every train_step check must be able to fail.

Each row of ``DEFECTS`` names a wrong trainer (``defects/amp_train_step_defects.py``), the check that
must catch it, the dtype, and a fragment of the failure's detail that shows it was caught for the
stated reason (not for some other one). ``test_correct_implementation_passes`` runs our trainer on every
(check, dtype) of the table with at least as many examples, so a catch shows a discriminating check.
``BLIND_SPOTS`` records, with the reason, where a check cannot see a defect that another check catches.
All runs are on the CPU; ``GuideDeprecatedApi`` on CUDA is caught by its FutureWarning alone (autocast and
the CUDA scaler work there), which the CPU rows cannot show.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from conformance.dtype_helpers import DTYPES
from tests.meta_tests.defect_helpers import defect_ref, hypothesis_profile, run, specs

SPEC = "amp_train_step"
CORRECT = "implementations.trainer:Trainer"
MODULE = "amp_train_step_defects.py"
FULL, MIXED, OVERFLOW = "train_step:full_precision", "train_step:mixed_precision", "train_step:overflow_skip"
F64, F32, BF16, F16 = "float64", "float32", "bfloat16", "float16"
EXAMPLES = 20  # every defect below is caught within its first few derandomized examples


@dataclass(frozen=True)
class Planted:
    defect: str
    check: str
    dtype: str
    reason: str  # a fragment of the failure detail

    @property
    def id(self) -> str:
        return f"{self.defect}-{self.check.split(':')[1]}-{self.dtype}"


DEFECTS: list[Planted] = [
    Planted("GuideVerbatim", FULL, F64, "torch.cuda.amp.autocast"),
    Planted("GuideVerbatim", MIXED, BF16, "unexpected keyword argument 'amp_dtype'"),
    Planted("GuideDeprecatedApi", FULL, F32, "FutureWarning"),
    Planted("GuideDeprecatedApi", MIXED, BF16, "the deprecated device-specific AMP API"),
    Planted("GuideDeprecatedApi", MIXED, BF16, "cpu autocast was off during the forward pass"),
    Planted("GuideDeprecatedApi", MIXED, F16, "trainer.scaler must be an enabled torch.amp.GradScaler"),
    Planted("ClipBeforeUnscale", MIXED, F16, "parameters vs the float64 reference loop"),
    Planted("NoZeroGrad", FULL, F64, "parameters vs the float64 reference loop"),
    Planted("NoZeroGrad", MIXED, BF16, "parameters vs the float64 reference loop"),
    Planted("ReturnsTensor", FULL, F64, "returned Tensor"),
    Planted("ReturnsScaledLoss", MIXED, F16, "returned losses vs the float64 reference loop"),
    Planted("ReturnsBeforeBackward", FULL, F64, "parameters vs the float64 reference loop"),
    Planted("ClipMaxNorm10", FULL, F64, "parameters vs the float64 reference loop"),
    Planted("ClipMaxNorm10", MIXED, BF16, "parameters vs the float64 reference loop"),
    Planted("NoSkipOnInf", OVERFLOW, F16, "an overflowing step must be skipped"),
    Planted("FrozenScale", OVERFLOW, F16, "loss scale after each step [1024.0, 1024.0"),
    Planted("AutocastOverBackward", MIXED, BF16, "backward ran under cpu autocast"),
    Planted("AutocastOverBackward", MIXED, F16, "backward ran under cpu autocast"),
    Planted("AutocastIgnored", MIXED, BF16, "cpu autocast was off during the forward pass"),
]

# (defect, check that cannot see it, why) — asserted to pass, so the table above stays honest.
BLIND_SPOTS: list[tuple[Planted, str]] = [
    (Planted("ClipBeforeUnscale", MIXED, BF16, ""), "bfloat16 needs no loss scaling: the scaler is a pass-through"),
    (
        Planted("ClipBeforeUnscale", FULL, F64, ""),
        "without AMP nothing is scaled: clipping before or after unscaling is the same",
    ),
    (Planted("ReturnsScaledLoss", MIXED, BF16, ""), "with the scaler disabled the scaled loss is the loss"),
    (Planted("AutocastOverBackward", FULL, F64, ""), "use_amp=False: the autocast block is disabled, backward runs without it"),
    (Planted("AutocastIgnored", FULL, F64, ""), "use_amp=False: no autocast is expected"),
    (Planted("NoSkipOnInf", FULL, F64, ""), "full precision never skips (no loss scaling), and nothing overflows"),
    (Planted("FrozenScale", MIXED, BF16, ""), "bfloat16: the scaler is disabled, there is no scale to freeze"),
]


def _run(planted: Planted, ref: str, examples: int):
    with hypothesis_profile(examples):
        return run(SPEC, ref, planted.check, planted.dtype)


@pytest.mark.parametrize("planted", DEFECTS, ids=lambda p: p.id)
def test_planted_defect_is_caught(planted: Planted) -> None:
    outcome = _run(planted, defect_ref(f"{MODULE}:{planted.defect}"), EXAMPLES)
    assert outcome.caught_by(planted.check), f"{planted.defect} not caught by {planted.check}\n{outcome.summary()}"
    assert not outcome.errors, outcome.summary()
    detail = str(outcome.failures[0])
    assert planted.reason in detail, f"caught, but not for the stated reason {planted.reason!r}:\n{detail}"
    assert "example: {" in detail, "the failure must name the falsifying example"


BASELINES = sorted({(p.check, p.dtype) for p in DEFECTS} | {(p.check, p.dtype) for p, _ in BLIND_SPOTS})


@pytest.mark.parametrize(("check", "dtype"), BASELINES, ids=[f"{c.split(':')[1]}-{d}" for c, d in BASELINES])
def test_correct_implementation_passes(check: str, dtype: str) -> None:
    outcome = _run(Planted("Trainer", check, dtype, ""), CORRECT, 2 * EXAMPLES)
    assert not outcome.failures and not outcome.errors, outcome.summary()
    assert outcome.rows[-1]["examples"] == 2 * EXAMPLES


@pytest.mark.parametrize("planted, reason", BLIND_SPOTS, ids=[f"{p.id}-blind" for p, _ in BLIND_SPOTS])
def test_documented_blind_spot(planted: Planted, reason: str) -> None:
    outcome = _run(planted, defect_ref(f"{MODULE}:{planted.defect}"), EXAMPLES)
    assert not outcome.failures and not outcome.errors, f"{reason} — but:\n{outcome.summary()}"


def test_every_check_and_dtype_has_a_planted_defect() -> None:
    spec = specs()[SPEC]
    generated = {(p.check, dtype) for p in spec.patterns for dtype in p.dtypes if dtype in DTYPES}
    planted = {(p.check, p.dtype) for p in DEFECTS}
    assert generated <= planted, f"no planted defect for {sorted(generated - planted)}"
