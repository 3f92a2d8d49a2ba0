"""Planted defects for spec ``rope_cache`` (``defects/rope_defects.py``)."""

from __future__ import annotations

from functools import partial

from conformance.defects import BlindSpot, PlantedDefect, SpecTable, baselines_for
from tests.meta_tests.tables import in_module

SPEC = "rope_cache"
F64, F32, F16 = "float64", "float32", "float16"
CORRECT = ("implementations.rope:RotaryEmbedding",)
PAST_MAX = "domain_error:seq_len_past_max"
ref = in_module("rope_defects.py")
planted = partial(PlantedDefect, SPEC)
past_max = partial(planted, check=PAST_MAX, dtype=F32, detail_has=("example: ",))  # which example failed
diverges = partial(planted, dtype=F32, detail_has=("output 1: max |error|",))  # which output diverged

DEFECTS = (
    planted(ref("GuideRotaryEmbedding"), "oracle", F64),
    diverges(ref("CompileDiverges"), "compile_equivalence:compiled_cpu"),
    diverges(ref("CompileDiverges"), "compile_equivalence:compiled_cuda"),  # the CUDA check's logic, run on the CPU here
    past_max(ref("GuideRotaryEmbedding")),
    past_max(ref("NoErrorPastMaxSeqLen")),
    past_max(ref("IndexErrorPastMaxSeqLen")),
    planted(ref("WrongThetaExponent"), "oracle", F64),
    planted(ref("WrongThetaExponent"), "oracle", F16),
    planted(ref("InverseFrequencyBuffer"), "oracle", F16),
    *(planted(ref("RandomTable"), "oracle", dtype) for dtype in (F64, F32, "bfloat16", F16)),  # no vacuous dtype
    planted(ref("CosSinSwapped"), "oracle", F64),
    planted(ref("CosSinSwapped"), "invariant:position_zero", F32),
    planted(ref("CacheShiftedByOne"), "oracle", F64),
    planted(ref("CacheShiftedByOne"), "invariant:position_zero", F64),
    planted(ref("CacheOneRowShort"), "output_contract", F64),
    planted(ref("CacheOneRowShort"), "oracle", F32),
    planted(ref("SinShiftedByOne"), "invariant:unit_circle", F64),
    planted(ref("SinShiftedByOne"), "oracle", F64),
    planted(ref("Float16Buffers"), "oracle", F32),
    planted(ref("Float16Buffers"), "invariant:unit_circle", F32),
    planted(ref("NoCastToInputDtype"), "output_contract", F16),
    planted(ref("NoisyTable"), "determinism", F32),
)

BLIND_SPOTS = (
    BlindSpot(
        SPEC,
        ref("CosSinSwapped"),
        "invariant:unit_circle",
        reason="sin² + cos² = 1 whichever table comes first; position_zero and the oracle see the swap",
        max_examples=25,
    ),
    BlindSpot(
        SPEC,
        ref("WrongThetaExponent"),
        "invariant:position_zero",
        reason="cos 0 = 1 and sin 0 = 0 for every θ; only the oracle knows θ_i",
        max_examples=25,
    ),
)

TABLE = SpecTable(SPEC, CORRECT, DEFECTS, BLIND_SPOTS, baselines_for(CORRECT, DEFECTS + BLIND_SPOTS))
