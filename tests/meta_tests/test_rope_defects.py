"""Planted defects for specs ``rope_cache`` and ``rope_apply``: every check they generate can fail.

Each row of ``DEFECTS`` names a deliberately wrong rotary embedding (``defects/rope_defects.py``, each
with a docstring saying what is wrong and which spec line should catch it), the check that must catch
it and the dtype; the check runs through ``conformance.runner.run_case`` under a fixed, derandomized
Hypothesis profile (``defect_helpers``). A defect given ``[interleaved=true]`` is registered with that
option, as a spec's implementation entry or ``--impl`` would. Where the spec's ``diagnose`` applies,
the row's detail must end with its explanation. ``test_correct_implementation_passes`` runs our
implementations on every (spec, check, dtype) of the table with at least as many examples;
``BLIND_SPOTS`` records where a check cannot see a defect that another check catches, and why.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from conformance.checks import checks_for
from conformance.dtype_helpers import DTYPES
from tests.meta_tests.defect_helpers import baseline_examples, defect_ref, hypothesis_profile, run, specs

F64, F32, F16 = "float64", "float32", "float16"
PAST_MAX = "domain_error:seq_len_past_max"
CORRECT = {
    "rope_cache": ("implementations.rope:RotaryEmbedding",),
    "rope_apply": (
        "implementations.rope:apply_rotary_emb",
        "implementations.rope:apply_rotary_emb_interleaved[interleaved=true]",
    ),
}
AS_INTERLEAVED = "[interleaved=true]"
SAYS_INTERLEAVED = "matches the interleaved layout (RoFormer Eq. 34) instead of half"
SAYS_HALF = "matches the half layout (rotate-half) instead of interleaved (RoFormer Eq. 34)"


@dataclass(frozen=True)
class Planted:
    spec: str
    defect: str  # "<attribute of defects/rope_defects.py>[options]", or a correct ref for baselines
    check: str
    dtype: str = F64
    max_examples: int = 25
    says: str | None = None  # the end of the row's detail (a diagnosis)

    @property
    def ref(self) -> str:
        if self.defect.startswith("implementations."):
            return self.defect
        name, bracket, options = self.defect.partition("[")
        return defect_ref(f"rope_defects.py:{name}") + bracket + options

    @property
    def id(self) -> str:
        name = self.defect.rsplit(":", 1)[-1].replace(AS_INTERLEAVED, "-as-interleaved")
        return f"{self.spec}-{name}-{self.check}-{self.dtype}"


def _rows(spec: str, rows: list[tuple]) -> list[Planted]:
    return [Planted(spec, *row) for row in rows]


DEFECTS: list[Planted] = [
    *_rows(
        "rope_cache",
        [
            ("GuideRotaryEmbedding", "oracle", F64),
            ("CompileDiverges", "compile_equivalence:compiled_cpu", F32),
            ("CompileDiverges", "compile_equivalence:compiled_cuda", F32),  # the CUDA check's logic, run on the CPU here
            ("GuideRotaryEmbedding", PAST_MAX, F32),
            ("NoErrorPastMaxSeqLen", PAST_MAX, F32),
            ("IndexErrorPastMaxSeqLen", PAST_MAX, F32),
            ("WrongThetaExponent", "oracle", F64),
            ("WrongThetaExponent", "oracle", F16),
            ("CosSinSwapped", "oracle", F64),
            ("CosSinSwapped", "invariant:position_zero", F32),
            ("CacheShiftedByOne", "oracle", F64),
            ("CacheShiftedByOne", "invariant:position_zero", F64),
            ("CacheOneRowShort", "output_contract", F64),
            ("CacheOneRowShort", "oracle", F32),
            ("SinShiftedByOne", "invariant:unit_circle", F64),
            ("SinShiftedByOne", "oracle", F64),
            ("Float16Buffers", "oracle", F32),
            ("Float16Buffers", "invariant:unit_circle", F32),
            ("NoCastToInputDtype", "output_contract", F16),
            ("NoisyTable", "determinism", F32),
        ],
    ),
    *_rows(
        "rope_apply",
        [
            ("interleaved_declared_half", "oracle", F64, 25, SAYS_INTERLEAVED),
            ("interleaved_declared_half", "oracle", F16, 25, SAYS_INTERLEAVED),
            ("half_declared_interleaved" + AS_INTERLEAVED, "oracle", F64, 25, SAYS_HALF),
            ("cos_sin_swapped", "oracle", F64),
            ("cos_sin_swapped", "invariant:position_zero", F64),
            ("cos_sin_swapped", "invariant:composition", F64),
            ("cos_sin_swapped", "invariant:composition", F32),
            ("direction_flipped", "oracle", F64),
            ("direction_flipped", "oracle", F32),
            ("second_half_sign_error", "oracle", F64),
            ("second_half_sign_error", "invariant:norm_preserved", F64),
            ("second_half_sign_error", "invariant:shift_invariance", F64),
            ("second_half_sign_error", "invariant:shift_invariance", F32),
            ("upcast_output", "output_contract", F16),
            ("nondeterministic", "determinism", F64),
            ("backward_not_transposed", "gradient", F64),
            ("backward_not_transposed", "gradient", F32),
            ("backward_not_transposed", "gradcheck", F64),
        ],
    ),
]

# (defect, check that cannot see it, why) — asserted to pass, so the table above stays honest.
BLIND_SPOTS: list[tuple[Planted, str]] = [
    (
        Planted("rope_cache", "CosSinSwapped", "invariant:unit_circle"),
        "sin² + cos² = 1 whichever table comes first; position_zero and the oracle see the swap",
    ),
    (
        Planted("rope_cache", "WrongThetaExponent", "invariant:position_zero"),
        "cos 0 = 1 and sin 0 = 0 for every θ; only the oracle knows θ_i",
    ),
    (
        Planted("rope_apply", "interleaved_declared_half", "invariant:shift_invariance"),
        "the other layout is a rotation too: only the oracle knows which features pair up",
    ),
    (
        Planted("rope_apply", "direction_flipped", "invariant:composition"),
        "rotations by −mθ compose like rotations by mθ: only the oracle knows the sign",
    ),
    (
        Planted("rope_apply", "direction_flipped", "invariant:shift_invariance"),
        "scores under R_mᵀ depend on n − m as well: only the oracle knows the sign",
    ),
    (
        Planted("rope_apply", "cos_sin_swapped", "invariant:norm_preserved"),
        "[[sin, −cos], [cos, sin]] is orthogonal: norms are kept",
    ),
]


def _baselines() -> list[Planted]:
    """Each correct implementation on every (spec, check, dtype) of the table, with at least as many examples."""
    cells = baseline_examples(DEFECTS)
    return [Planted(spec, ref, check, dtype, n) for (spec, check, dtype), n in cells.items() for ref in CORRECT[spec]]


@pytest.mark.parametrize("planted", DEFECTS, ids=lambda p: p.id)
def test_planted_defect_is_caught(planted: Planted) -> None:
    with hypothesis_profile(planted.max_examples):
        outcome = run(planted.spec, planted.ref, planted.check, planted.dtype)
    assert outcome.caught_by(planted.check), f"{planted.defect} not caught by {planted.check}\n{outcome.summary()}"
    assert not outcome.errors, outcome.summary()
    row = outcome.rows[-1]
    if planted.check.startswith("domain_error:"):
        assert "example: " in row["detail"], "the report row must say which example failed"
    elif planted.check.startswith("compile_equivalence:"):
        assert "output 1: max |error|" in row["detail"], "the row must say which output diverged"
    else:
        assert row.get("falsifying_example"), "the report row must carry the falsifying example"
    if planted.says:
        assert row["detail"].endswith(planted.says), row["detail"]


@pytest.mark.parametrize("baseline", _baselines(), ids=lambda p: p.id)
def test_correct_implementation_passes(baseline: Planted) -> None:
    with hypothesis_profile(baseline.max_examples):
        outcome = run(baseline.spec, baseline.ref, baseline.check, baseline.dtype)
    assert not outcome.failures and not outcome.errors, outcome.summary()
    assert outcome.rows[-1]["examples"] > 0


@pytest.mark.parametrize("planted, reason", BLIND_SPOTS, ids=[f"{p.id}-blind" for p, _ in BLIND_SPOTS])
def test_documented_blind_spot(planted: Planted, reason: str) -> None:
    with hypothesis_profile(planted.max_examples):
        outcome = run(planted.spec, planted.ref, planted.check, planted.dtype)
    assert not outcome.failures and not outcome.errors, f"{reason} — but:\n{outcome.summary()}"


@pytest.mark.parametrize("spec_id", sorted(CORRECT))
def test_every_check_has_a_planted_defect(spec_id: str) -> None:
    spec = specs()[spec_id]
    generated = {check for dtype in DTYPES for check in checks_for(spec, dtype)} | {p.check for p in spec.patterns}
    planted = {p.check for p in DEFECTS if p.spec == spec_id}
    assert generated == planted, f"no planted defect for {sorted(generated - planted)}"


@pytest.mark.parametrize("spec_id", sorted(CORRECT))
def test_the_baselines_are_the_shipped_implementations(spec_id: str) -> None:
    assert tuple(impl.id for impl in specs()[spec_id].implementations) == CORRECT[spec_id]
