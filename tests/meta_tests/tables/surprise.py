"""Planted defects for spec ``surprise`` (``defects/surprise_defects.py``)."""

from __future__ import annotations

from functools import partial

from conformance.defects import BlindSpot, PlantedDefect, SpecTable, baselines_for
from tests.meta_tests.tables import in_module

SPEC = "surprise"
F64, F32 = "float64", "float32"
CORRECT = ("implementations.surprise:compute_surprise",)
ref = in_module("surprise_defects.py")
planted = partial(PlantedDefect, SPEC)

DEFECTS = (
    planted(ref("mean_over_features"), "oracle"),
    planted(ref("abs_instead_of_square"), "oracle"),
    planted(ref("abs_instead_of_square"), "invariant:quadratic_homogeneity"),
    planted(ref("norm_over_tokens"), "output_contract"),
    planted(ref("norm_over_tokens"), "oracle"),
    planted(ref("difference_of_squares"), "invariant:nonnegative"),
    planted(ref("difference_of_squares"), "invariant:symmetry"),
    planted(ref("eps_in_loss"), "invariant:zero_at_match"),
    planted(ref("accumulated_over_tokens"), "invariant:token_independence"),
    planted(ref("shuffled_reduction"), "determinism"),
    planted(ref("guide_saved_diff"), "gradgradcheck"),
    planted(ref("backward_wrong_sign_memory_pred"), "gradient"),
    planted(ref("backward_wrong_sign_memory_pred"), "gradient", F32),
    planted(ref("backward_wrong_sign_memory_pred"), "gradcheck"),
    planted(ref("backward_missing_factor_two"), "gradient"),
    planted(ref("backward_missing_factor_two"), "gradcheck"),
)

FIRST_DERIVATIVE_RIGHT = "the first derivative 2·diff·g is right; only the second (gradgradcheck) is wrong"
BLIND_SPOTS = (
    BlindSpot(SPEC, ref("guide_saved_diff"), "gradcheck", reason=FIRST_DERIVATIVE_RIGHT),
    BlindSpot(SPEC, ref("guide_saved_diff"), "gradient", reason=FIRST_DERIVATIVE_RIGHT),
    BlindSpot(
        SPEC,
        ref("shuffled_reduction"),
        "oracle",
        reason="a different summation order stays within rounding of the oracle; only determinism sees it",
    ),
)

TABLE = SpecTable(SPEC, CORRECT, DEFECTS, BLIND_SPOTS, baselines_for(CORRECT, DEFECTS + BLIND_SPOTS))
