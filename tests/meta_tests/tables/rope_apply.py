"""Planted defects for spec ``rope_apply`` (``defects/rope_defects.py``).

A defect given ``[interleaved=true]`` is registered with that option, as a spec's implementation
entry or ``--impl`` would. Where the spec's ``diagnose`` applies, the row's detail must end with its
explanation.
"""

from __future__ import annotations

from functools import partial

from conformance.defects import BlindSpot, PlantedDefect, SpecTable, baselines_for
from tests.meta_tests.tables import in_module

SPEC = "rope_apply"
F64, F32, F16 = "float64", "float32", "float16"
CORRECT = ("implementations.rope:apply_rotary_emb", "implementations.rope:apply_rotary_emb_interleaved[interleaved=true]")
AS_INTERLEAVED = "[interleaved=true]"
SAYS_INTERLEAVED = "matches the interleaved layout (RoFormer Eq. 34) instead of half"
SAYS_HALF = "matches the half layout (rotate-half) instead of interleaved (RoFormer Eq. 34)"
ref = in_module("rope_defects.py")
planted = partial(PlantedDefect, SPEC)


def blind(name: str, check: str, reason: str) -> BlindSpot:
    return BlindSpot(SPEC, ref(name), check, reason=reason, max_examples=25)


DEFECTS = (
    planted(ref("interleaved_declared_half"), "oracle", F64, detail_ends=SAYS_INTERLEAVED),
    planted(ref("interleaved_declared_half"), "oracle", F16, detail_ends=SAYS_INTERLEAVED),
    planted(ref("half_declared_interleaved") + AS_INTERLEAVED, "oracle", F64, detail_ends=SAYS_HALF),
    planted(ref("cos_sin_swapped"), "oracle", F64),
    planted(ref("cos_sin_swapped"), "invariant:position_zero", F64),
    planted(ref("cos_sin_swapped"), "invariant:composition", F64),
    planted(ref("cos_sin_swapped"), "invariant:composition", F32),
    planted(ref("direction_flipped"), "oracle", F64),
    planted(ref("direction_flipped"), "oracle", F32),
    planted(ref("second_half_sign_error"), "oracle", F64),
    planted(ref("second_half_sign_error"), "invariant:norm_preserved", F64),
    planted(ref("second_half_sign_error"), "invariant:shift_invariance", F64),
    planted(ref("second_half_sign_error"), "invariant:shift_invariance", F32),
    planted(ref("upcast_output"), "output_contract", F16),
    planted(ref("nondeterministic"), "determinism", F64),
    planted(ref("backward_not_transposed"), "gradient", F64),
    planted(ref("backward_not_transposed"), "gradient", F32),
    planted(ref("backward_not_transposed"), "gradcheck", F64),
)

BLIND_SPOTS = (
    blind(
        "interleaved_declared_half",
        "invariant:shift_invariance",
        "the other layout is a rotation too: only the oracle knows which features pair up",
    ),
    blind(
        "direction_flipped",
        "invariant:composition",
        "rotations by −mθ compose like rotations by mθ: only the oracle knows the sign",
    ),
    blind(
        "direction_flipped",
        "invariant:shift_invariance",
        "scores under R_mᵀ depend on n − m as well: only the oracle knows the sign",
    ),
    blind("cos_sin_swapped", "invariant:norm_preserved", "[[sin, −cos], [cos, sin]] is orthogonal: norms are kept"),
)

TABLE = SpecTable(SPEC, CORRECT, DEFECTS, BLIND_SPOTS, baselines_for(CORRECT, DEFECTS + BLIND_SPOTS))
