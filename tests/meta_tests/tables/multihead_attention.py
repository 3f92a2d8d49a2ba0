"""Planted defects for spec ``multihead_attention`` (``defects/multihead_attention_defects.py``)."""

from __future__ import annotations

from functools import partial

from conformance.defects import PlantedDefect, SpecTable, baselines_for
from tests.meta_tests.tables import in_module

SPEC = "multihead_attention"
F64, F32, F16 = "float64", "float32", "float16"
CORRECT = ("implementations.multihead_attention:PaperModule",)
EXAMPLES = 25
ref = in_module("multihead_attention_defects.py")
planted = partial(PlantedDefect, SPEC)
TRAINED = "parameter_gradients:every_parameter_trained"
DROPOUT = "dropout_modes:dropout_in_training_only"

DEFECTS = (
    planted(ref("GuideTemplate"), TRAINED, F32),
    planted(ref("NoScaling"), "oracle"),
    planted(ref("ScaledByModelDim"), "oracle"),
    planted(ref("HeadsSplitWithoutTranspose"), "oracle"),
    planted(ref("MaskInverted"), "oracle"),
    planted(ref("DropoutAlways"), DROPOUT, F32),
    planted(ref("DropoutNever"), DROPOUT, F32),
    planted(ref("DetachedKeys"), TRAINED),
    planted(ref("DetachedKeys"), "gradient"),
    planted(ref("DetachedKeys"), "gradcheck"),
    planted(ref("BatchMixing"), "invariant:batch_independence"),
    planted(ref("NoOutputProjection"), "invariant:output_projection_linearity"),
    planted(ref("SquaredValues"), "invariant:value_projection_linearity"),
    planted(ref("QueryNormalised"), "invariant:query_key_rescaling"),
    planted(ref("OutputUpcast"), "output_contract", F16),
    planted(ref("Nondeterministic"), "determinism", F32),
    planted(ref("CompileDiverges"), "compile_equivalence:compiled_cpu", F32),
    # the same check on CUDA: it runs where a GPU is (reports/cuda/), and is skipped on a CPU-only machine
    planted(ref("CompileDiverges"), "compile_equivalence:compiled_cuda", F32, "cuda"),
)

TABLE = SpecTable(SPEC, CORRECT, DEFECTS, baselines=baselines_for(CORRECT, DEFECTS, max_examples=EXAMPLES))
