"""Planted defects for spec ``rmsnorm`` (``defects/rmsnorm_defects.py``)."""

from __future__ import annotations

from functools import partial

from conformance.defects import BlindSpot, PlantedDefect, SpecTable, baselines_for
from tests.meta_tests.tables import in_module

SPEC = "rmsnorm"
F64, F32, F16 = "float64", "float32", "float16"
CORRECT = ("implementations.rmsnorm:RMSNorm",)
ref = in_module("rmsnorm_defects.py")
planted = partial(PlantedDefect, SPEC)

# The spec's diagnose readings a failure names (how the row's detail ends).
SAYS_EPS_OUTSIDE = (
    "matches the reading: ε outside the square root, x / (sqrt(mean(x²)) + ε) · g (the RMSNorm authors' code, "
    "the option eps_outside)"
)
SAYS_NO_EPS = "matches the reading: no ε, x / sqrt(mean(x²)) · g (Eq. 4 as printed, the option no_eps)"
# float16 often cannot tell ε outside the root from no ε on the inputs that catch either: then both are named, in the
# spec's order ("<ε outside>, or indistinguishable here, <no ε>"), so only that the right one is among them is required
NAMES_EPS_OUTSIDE = SAYS_EPS_OUTSIDE.removeprefix("matches the reading: ")
NAMES_NO_EPS = SAYS_NO_EPS.removeprefix("matches the reading: ")
SAYS_GAIN_OFFSET = (
    "matches the reading: a (1 + g) gain, the weight stored as an offset from 1 (Gemma's convention, the option unit_offset)"
)
SAYS_NO_EPS_GAIN_OFFSET = (
    "matches the reading: no ε and a (1 + g) gain, x / sqrt(mean(x²)) · (1 + g) (x-transformers' unit_offset, the options no_eps "
    "and unit_offset)"
)

DEFECTS = (
    planted(ref("EpsOutsideSqrt"), "oracle", detail_ends=SAYS_EPS_OUTSIDE),
    planted(ref("EpsOutsideSqrt"), "oracle", F16, detail_has=("matches the reading: ", NAMES_EPS_OUTSIDE)),
    planted(ref("NoEps"), "oracle", detail_ends=SAYS_NO_EPS),
    planted(ref("NoEps"), "oracle", F16, detail_has=("matches the reading: ", NAMES_NO_EPS)),
    planted(ref("GainOffsetFromOne"), "oracle", detail_ends=SAYS_GAIN_OFFSET),
    # float32 may not tell it from "no ε and a (1 + g) gain" at a small ε: then both are named, the right one first
    planted(ref("GainOffsetFromOne"), "oracle", F32, detail_has=(SAYS_GAIN_OFFSET,)),
    planted(ref("NoEpsGainOffsetFromOne"), "oracle", detail_ends=SAYS_NO_EPS_GAIN_OFFSET),
    planted(ref("GainOffsetInFloat32"), "oracle", detail_ends=SAYS_GAIN_OFFSET + ", within float32's precision on these "
            "inputs: computed in float32?"),
    planted(ref("WeightIgnored"), "oracle"),
    planted(ref("WeightIgnored"), "invariant:gain_linearity"),
    planted(ref("NormalizesOverSequence"), "oracle"),
    planted(ref("NormalizesOverSequence"), "invariant:unit_mean_square"),
    planted(ref("WrongGrouping"), "invariant:row_independence"),
    planted(ref("WrongGrouping"), "oracle"),
    planted(ref("GuideNoUpcast"), "oracle", F16),
    planted(ref("MeanAbs"), "oracle"),
    planted(ref("MeanSquareNoSqrt"), "invariant:input_rescaling"),
    planted(ref("MeanSquareNoSqrt"), "oracle"),
    planted(ref("LayerNormInstead"), "oracle"),
    planted(ref("OffByOneFeatures"), "invariant:feature_permutation"),
    planted(ref("NoCastBack"), "output_contract", F16),
    planted(ref("DropoutAlwaysOn"), "determinism"),
    planted(ref("DetachedRMS"), "gradient"),
    planted(ref("DetachedRMS"), "gradient", F32),
    planted(ref("DetachedRMS"), "gradcheck"),
    planted(ref("CompileDiverges"), "compile_equivalence:compiled_cpu", F32),
    planted(ref("CompileDiverges"), "compile_equivalence:compiled_cuda", F32),  # the CUDA check's logic, run on the CPU here
)

BLIND_SPOTS = (
    BlindSpot(
        SPEC,
        ref("NormalizesOverSequence"),
        "invariant:row_independence",
        reason="a mean over the rows is invariant to permuting them, so the output rows still permute",
    ),
    BlindSpot(
        SPEC,
        ref("MeanAbs"),
        "invariant:input_rescaling",
        reason="dividing by mean|x| is as scale invariant as dividing by RMS(x); only the oracle sees it",
    ),
    BlindSpot(
        SPEC,
        ref("GuideNoUpcast"),
        "oracle",
        F32,
        reason="x**2 only overflows in float16; in float32 the guide's RMSNorm is right",
    ),
)

TABLE = SpecTable(SPEC, CORRECT, DEFECTS, BLIND_SPOTS, baselines_for(CORRECT, DEFECTS + BLIND_SPOTS))
