"""Planted defects for ``multihead_attention`` and ``chunked_attention``: each check catches one.

Same method as ``test_planted_defects.py``: a derandomized run of one named check on one wrong
implementation must fail that check, and the correct implementation must pass it.
"""

from __future__ import annotations

import pytest

from conformance.checks import checks_for
from conformance.dtype_helpers import DTYPES
from tests.meta_tests.defect_helpers import defect_ref, hypothesis_profile, run, specs

MHA = "implementations.multihead_attention:PaperModule"
CHUNKED = "implementations.chunked_attention:chunked_attention"

# (spec, defect in defects/, check, dtype)
DEFECTS = [
    (
        "multihead_attention",
        "multihead_attention_defects.py:GuideTemplate",
        "parameter_gradients:every_parameter_trained",
        "float32",
    ),
    ("multihead_attention", "multihead_attention_defects.py:NoScaling", "oracle", "float64"),
    ("multihead_attention", "multihead_attention_defects.py:ScaledByModelDim", "oracle", "float64"),
    ("multihead_attention", "multihead_attention_defects.py:HeadsSplitWithoutTranspose", "oracle", "float64"),
    ("multihead_attention", "multihead_attention_defects.py:MaskInverted", "oracle", "float64"),
    ("multihead_attention", "multihead_attention_defects.py:DropoutAlways", "dropout_modes:dropout_in_training_only", "float32"),
    ("multihead_attention", "multihead_attention_defects.py:DropoutNever", "dropout_modes:dropout_in_training_only", "float32"),
    (
        "multihead_attention",
        "multihead_attention_defects.py:DetachedKeys",
        "parameter_gradients:every_parameter_trained",
        "float64",
    ),
    ("multihead_attention", "multihead_attention_defects.py:DetachedKeys", "gradient", "float64"),
    ("multihead_attention", "multihead_attention_defects.py:DetachedKeys", "gradcheck", "float64"),
    ("multihead_attention", "multihead_attention_defects.py:BatchMixing", "invariant:batch_independence", "float64"),
    (
        "multihead_attention",
        "multihead_attention_defects.py:NoOutputProjection",
        "invariant:output_projection_linearity",
        "float64",
    ),
    ("multihead_attention", "multihead_attention_defects.py:SquaredValues", "invariant:value_projection_linearity", "float64"),
    ("multihead_attention", "multihead_attention_defects.py:QueryNormalised", "invariant:query_key_rescaling", "float64"),
    ("multihead_attention", "multihead_attention_defects.py:OutputUpcast", "output_contract", "float16"),
    ("multihead_attention", "multihead_attention_defects.py:Nondeterministic", "determinism", "float32"),
    ("multihead_attention", "multihead_attention_defects.py:CompileDiverges", "compile_equivalence:compiled_cpu", "float32"),
    # compiled_cuda is the same check on CUDA; it runs where a GPU is (reports/cuda/), not in this CPU suite
    ("multihead_attention", "multihead_attention_defects.py:CompileDiverges", "compile_equivalence:compiled_cuda", None),
    ("chunked_attention", "chunked_attention_defects.py:unchunked", "peak_memory:memory_linear_in_length", "float32"),
    ("chunked_attention", "chunked_attention_defects.py:drops_last_partial_chunk", "output_contract", "float64"),
    ("chunked_attention", "chunked_attention_defects.py:keys_chunked_softmax", "oracle", "float64"),
    ("chunked_attention", "chunked_attention_defects.py:keys_chunked_softmax", "invariant:weights_sum_to_one", "float64"),
    ("chunked_attention", "chunked_attention_defects.py:no_scaling", "oracle", "float64"),
    ("chunked_attention", "chunked_attention_defects.py:first_chunk_repeated", "invariant:query_permutation", "float64"),
    ("chunked_attention", "chunked_attention_defects.py:values_squared", "invariant:value_linearity", "float64"),
    ("chunked_attention", "chunked_attention_defects.py:keys_permuted_per_chunk", "invariant:key_value_permutation", "float64"),
    ("chunked_attention", "chunked_attention_defects.py:detached_values", "gradient", "float64"),
    ("chunked_attention", "chunked_attention_defects.py:detached_values", "gradcheck", "float64"),
    ("chunked_attention", "chunked_attention_defects.py:upcast_output", "output_contract", "float16"),
    ("chunked_attention", "chunked_attention_defects.py:nondeterministic", "determinism", "float32"),
]
CORRECT = {"multihead_attention": MHA, "chunked_attention": CHUNKED}


@pytest.fixture
def fixed_profile():
    with hypothesis_profile(25):
        yield


RUNNABLE = [d for d in DEFECTS if d[3] is not None]


@pytest.mark.parametrize(("spec", "defect", "check", "dtype"), RUNNABLE, ids=lambda v: str(v).split(":")[-1])
def test_planted_defect_is_caught(spec: str, defect: str, check: str, dtype: str, fixed_profile: None) -> None:
    outcome = run(spec, defect_ref(defect), check, dtype)
    assert outcome.caught_by(check), f"{defect} not caught by {check}\n{outcome.summary()}"


@pytest.mark.parametrize(("spec", "check", "dtype"), sorted({(s, c, d) for s, _, c, d in RUNNABLE}))
def test_correct_implementation_passes(spec: str, check: str, dtype: str, fixed_profile: None) -> None:
    outcome = run(spec, CORRECT[spec], check, dtype)
    assert not outcome.failures and not outcome.errors, outcome.summary()


@pytest.mark.parametrize("spec_id", sorted(CORRECT))
def test_every_check_has_a_planted_defect(spec_id: str) -> None:
    spec = specs()[spec_id]
    generated = {c for dtype in DTYPES for c in checks_for(spec, dtype)} | {p.check for p in spec.patterns}
    planted = {c for s, _, c, _ in DEFECTS if s == spec_id}
    assert generated <= planted, f"no planted defect for {sorted(generated - planted)}"
