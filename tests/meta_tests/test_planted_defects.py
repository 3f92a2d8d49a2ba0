"""Planted defects: every check the harness runs on an implementation must be able to fail.

Each row of ``DEFECTS`` names a deliberately wrong implementation (``tests/meta_tests/defects/``,
each with a docstring saying what is wrong and which spec line should catch it), the check that
must catch it and the dtype. ``test_planted_defect_is_caught`` runs that one check through
``conformance.runner.run_case`` under a fixed, derandomized Hypothesis profile and asserts a
``CheckFailure`` from that check; ``test_correct_implementation_passes`` runs our implementations
on every (spec, check, dtype) of the table with at least as many examples, so a catch shows a
discriminating check, not a broken one. ``test_every_check_has_a_planted_defect`` keeps the table
complete as specs grow. ``BLIND_SPOTS`` records, with the reason, where a check cannot see a defect
that another check catches (the table's claims are exact, not "some check failed").
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import pytest
from hypothesis import settings

from conformance.checks import checks_for
from conformance.dtype_helpers import DTYPES
from tests.meta_tests.defect_helpers import (
    BASELINE_EXAMPLES,
    CORRECT,
    baseline_examples,
    defect_ref,
    hypothesis_profile,
    run,
    specs,
)

F64, F32, F16 = "float64", "float32", "float16"


@dataclass(frozen=True)
class Planted:
    spec: str
    defect: str  # "<file in defects/>:<attribute>"
    check: str
    dtype: str = F64
    max_examples: int = 25
    # The defect also crashes on part of the domain. The harness reports one failure per row (the
    # shrunk example Hypothesis settles on), so the crash is allowed beside the check's failure.
    all_failures: bool = False

    @property
    def id(self) -> str:
        return f"{self.spec}-{self.defect.split(':')[1]}-{self.check}-{self.dtype}"


def _table(spec: str, module: str, rows: list[tuple]) -> list[Planted]:
    return [Planted(spec, f"{module}:{name}", *rest) for name, *rest in rows]


DEFECTS: list[Planted] = [
    *_table(
        "attention",
        "attention_defects.py",
        [
            ("no_scaling", "oracle"),
            ("mask_inverted", "oracle"),
            ("causal_bottom_right", "oracle"),
            ("guide_fallback", "oracle", F64, 25, True),
            ("causal_ignores_mask", "oracle"),
            ("causal_square_query_mask", "oracle", F64, 25, True),
            ("softmax_over_queries", "oracle"),
            ("softmax_over_queries", "invariant:weights_sum_to_one"),
            ("ignores_is_causal", "invariant:causality"),
            ("query_position_bias", "invariant:query_permutation"),
            ("key_position_bias", "invariant:key_value_permutation"),
            ("log_softmax_weights", "invariant:convex_hull"),
            ("output_bias", "invariant:value_linearity"),
            ("key_only_l2_norm", "invariant:query_key_rescaling"),
            ("upcast_output", "output_contract", F16),
            ("nondeterministic", "determinism"),
            ("detached_values", "gradient"),
            ("wrong_query_backward", "gradient"),
            ("wrong_query_backward", "gradient", F32),
            ("wrong_query_backward", "gradcheck"),
        ],
    ),
    *_table(
        "rmsnorm",
        "rmsnorm_defects.py",
        [
            ("EpsOutsideSqrt", "oracle"),
            ("NoEps", "oracle"),
            ("WeightIgnored", "oracle"),
            ("WeightIgnored", "invariant:gain_linearity"),
            ("NormalizesOverSequence", "oracle"),
            ("NormalizesOverSequence", "invariant:unit_mean_square"),
            ("WrongGrouping", "invariant:row_independence"),
            ("WrongGrouping", "oracle"),
            ("GuideNoUpcast", "oracle", F16),
            ("MeanAbs", "oracle"),
            ("MeanSquareNoSqrt", "invariant:input_rescaling"),
            ("MeanSquareNoSqrt", "oracle"),
            ("LayerNormInstead", "oracle"),
            ("OffByOneFeatures", "invariant:feature_permutation"),
            ("NoCastBack", "output_contract", F16),
            ("DropoutAlwaysOn", "determinism"),
            ("DetachedRMS", "gradient"),
            ("DetachedRMS", "gradient", F32),
            ("DetachedRMS", "gradcheck"),
            ("CompileDiverges", "compile_equivalence:compiled_cpu", F32),
        ],
    ),
    *_table(
        "surprise",
        "surprise_defects.py",
        [
            ("mean_over_features", "oracle"),
            ("abs_instead_of_square", "oracle"),
            ("abs_instead_of_square", "invariant:quadratic_homogeneity"),
            ("norm_over_tokens", "output_contract"),
            ("norm_over_tokens", "oracle"),
            ("difference_of_squares", "invariant:nonnegative"),
            ("difference_of_squares", "invariant:symmetry"),
            ("eps_in_loss", "invariant:zero_at_match"),
            ("accumulated_over_tokens", "invariant:token_independence"),
            ("shuffled_reduction", "determinism"),
            ("guide_saved_diff", "gradgradcheck"),
            ("backward_wrong_sign_memory_pred", "gradient"),
            ("backward_wrong_sign_memory_pred", "gradient", F32),
            ("backward_wrong_sign_memory_pred", "gradcheck"),
            ("backward_missing_factor_two", "gradient"),
            ("backward_missing_factor_two", "gradcheck"),
        ],
    ),
]

# (defect, check that cannot see it, why) — asserted to pass, so the table above stays honest.
BLIND_SPOTS: list[tuple[Planted, str]] = [
    (
        Planted("rmsnorm", "rmsnorm_defects.py:NormalizesOverSequence", "invariant:row_independence"),
        "a mean over the rows is invariant to permuting them, so the output rows still permute",
    ),
    (
        Planted("rmsnorm", "rmsnorm_defects.py:MeanAbs", "invariant:input_rescaling"),
        "dividing by mean|x| is as scale invariant as dividing by RMS(x); only the oracle sees it",
    ),
    (
        Planted("rmsnorm", "rmsnorm_defects.py:GuideNoUpcast", "oracle", F32),
        "x**2 only overflows in float16; in float32 the guide's RMSNorm is right",
    ),
    (
        Planted("surprise", "surprise_defects.py:guide_saved_diff", "gradcheck"),
        "the first derivative 2·diff·g is right; only the second (gradgradcheck) is wrong",
    ),
    (
        Planted("surprise", "surprise_defects.py:guide_saved_diff", "gradient"),
        "the first derivative 2·diff·g is right; only the second (gradgradcheck) is wrong",
    ),
    (
        Planted("surprise", "surprise_defects.py:shuffled_reduction", "oracle"),
        "a different summation order stays within rounding of the oracle; only determinism sees it",
    ),
]


def _baselines() -> list[Planted]:
    """Each correct implementation on every (spec, check, dtype) of the table, with at least as many examples."""
    cells = baseline_examples(DEFECTS)
    return [Planted(spec, ref, check, dtype, n) for (spec, check, dtype), n in cells.items() for ref in CORRECT[spec]]


@pytest.fixture
def fixed_profile():
    """Loads a derandomized profile on request (``fixed_profile(max_examples, all_failures)``); restores the previous one."""
    with contextlib.ExitStack() as stack:
        yield lambda n, all_failures=False: stack.enter_context(hypothesis_profile(n, all_failures=all_failures))


@pytest.mark.parametrize("planted", DEFECTS, ids=lambda p: p.id)
def test_planted_defect_is_caught(planted: Planted, fixed_profile) -> None:
    fixed_profile(planted.max_examples, planted.all_failures)
    outcome = run(planted.spec, defect_ref(planted.defect), planted.check, planted.dtype)
    assert outcome.caught_by(planted.check), f"{planted.defect} not caught by {planted.check}\n{outcome.summary()}"
    assert planted.all_failures or not outcome.errors, outcome.summary()
    if ":" not in planted.check or planted.check.startswith("invariant:"):  # pattern checks draw no examples
        assert outcome.rows and outcome.rows[-1].get("falsifying_example"), "the report row must carry the falsifying example"


@pytest.mark.parametrize("baseline", _baselines(), ids=lambda p: f"{p.spec}-{p.defect.split(':')[1]}-{p.check}-{p.dtype}")
def test_correct_implementation_passes(baseline: Planted, fixed_profile) -> None:
    fixed_profile(baseline.max_examples)
    outcome = run(baseline.spec, baseline.defect, baseline.check, baseline.dtype)
    assert not outcome.failures and not outcome.errors, outcome.summary()
    assert outcome.rows[-1]["examples"] > 0


@pytest.mark.parametrize("planted, reason", BLIND_SPOTS, ids=[f"{p.id}-blind" for p, _ in BLIND_SPOTS])
def test_documented_blind_spot(planted: Planted, reason: str, fixed_profile) -> None:
    fixed_profile(max(planted.max_examples, BASELINE_EXAMPLES))
    outcome = run(planted.spec, defect_ref(planted.defect), planted.check, planted.dtype)
    assert not outcome.failures and not outcome.errors, f"{reason} — but:\n{outcome.summary()}"


@pytest.mark.parametrize("spec_id", sorted(CORRECT))
def test_every_check_has_a_planted_defect(spec_id: str) -> None:
    spec = specs()[spec_id]
    generated = {check for dtype in DTYPES for check in checks_for(spec, dtype)}
    planted = {p.check for p in DEFECTS if p.spec == spec_id}
    assert generated <= planted, f"no planted defect for {sorted(generated - planted)}"


def test_fixed_profile_restores_the_previous_profile() -> None:
    before = settings.get_current_profile_name()
    with hypothesis_profile(3):
        assert settings.default.max_examples == 3 and settings.default.derandomize
    assert settings.get_current_profile_name() == before
