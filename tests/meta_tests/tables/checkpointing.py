"""Planted defects for spec ``checkpointing`` (``defects/checkpointing_defects.py``).

The two eager checks split the contract (results vs memory), so the blind spots are exact claims.
A defect is registered with the checkpointing scheme it claims (``[scheme='segments']``,
``[scheme='sequential']``; none: the default ``per_layer``), as a spec's implementation entry would.
Nothing here is statistical: the eager checks are exact (bitwise results, counted bytes) and the
compiled check's bound is derived from the eager module's own error. Every catch names the stack
that failed and carries its bound; the correct module runs on every CPU (check, dtype) of the spec.
"""

from __future__ import annotations

from conformance.defects import Baseline, BlindSpot, PlantedDefect, SpecTable, baselines_for, generated_checks, shipped_specs
from tests.meta_tests.tables import in_module

SPEC = "checkpointing"
CORRECT = ("implementations.checkpointing:CheckpointedModule[scheme='segments']",)
SEGMENTS, SEQUENTIAL = "[scheme='segments']", "[scheme='sequential']"
EQUIVALENCE = "checkpoint_equivalence:plain_stack"
MEMORY = "checkpoint_equivalence:saved_activations"
COMPILED = "checkpoint_equivalence:compiled_cpu"
COMPILED_CUDA = "checkpoint_equivalence:compiled_cuda"
F64, F32, BF16, F16 = "float64", "float32", "bfloat16", "float16"
EXAMPLES = 25  # Hypothesis examples per row; every defect below is caught within the first few
_ref = in_module("checkpointing_defects.py")


# The scheme each defect declares; the rest are built on the segments scheme and declare it.
DECLARED = {"PerLayerOffset": "", "NoCheckpointing": "", "SequentialFloorSegments": SEQUENTIAL, "SequentialReentrant": SEQUENTIAL}


def ref(name: str) -> str:
    """A defect as registered, with the scheme it declares (``GuidePerLayer`` declares ``segments``: the defect)."""
    return _ref(name) + DECLARED.get(name, SEGMENTS)


def planted(name: str, check: str, dtype: str) -> PlantedDefect:
    return PlantedDefect(
        SPEC, ref(name), check, dtype, detail_has=("stack: ", "checkpoint_every="), row_fields=("tolerance_basis",)
    )


def blind(name: str, check: str, dtype: str, reason: str) -> BlindSpot:
    return BlindSpot(SPEC, ref(name), check, dtype, reason, max_examples=EXAMPLES)


DEFECTS = (
    planted("NoPreserveRngState", EQUIVALENCE, F64),
    planted("NoPreserveRngState", EQUIVALENCE, F16),
    planted("SkipsLayerInSegment", EQUIVALENCE, F64),
    planted("SkipsLayerInSegment", EQUIVALENCE, BF16),
    planted("DetachedSegmentInput", EQUIVALENCE, F64),
    planted("DetachedSegmentInput", EQUIVALENCE, F32),
    planted("Reentrant", EQUIVALENCE, F64),
    planted("RunsLayersTwice", EQUIVALENCE, F64),
    planted("RunsLayersTwice", EQUIVALENCE, F32),
    planted("NoCheckpointing", MEMORY, F64),
    planted("NoCheckpointing", MEMORY, F16),
    planted("GuidePerLayer", MEMORY, F64),
    planted("GuidePerLayer", MEMORY, BF16),
    planted("LastSegmentPlain", MEMORY, F32),
    planted("CheckpointsInEval", MEMORY, F64),
    planted("Reentrant", MEMORY, F64),
    planted("PerLayerOffset", MEMORY, F64),  # one defect per scheme, each against the scheme it declares
    planted("PerLayerOffset", MEMORY, F16),
    planted("SegmentsFromOne", MEMORY, F32),
    planted("SequentialFloorSegments", MEMORY, F64),
    planted("SequentialFloorSegments", MEMORY, BF16),
    planted("SequentialReentrant", EQUIVALENCE, F64),
    planted("SequentialReentrant", MEMORY, F64),  # as Reentrant: a segment whose input needs no grad keeps nothing
    planted("LossyWhenCompiled", COMPILED, F32),
    planted("SkipsLayerInSegment", COMPILED, F32),
    planted("LossyWhenCompiled", COMPILED_CUDA, F32),  # the CUDA check's logic, run on the CPU here
)

SAME_RESULTS = "eager mode is the correct module; only compiled code rounds"
BLIND_SPOTS = (
    blind("NoCheckpointing", EQUIVALENCE, F64, "the plain stack computes the plain stack's results; only memory shows it"),
    blind("GuidePerLayer", EQUIVALENCE, F64, "checkpointing single layers keeps results bitwise; it only saves less"),
    blind("PerLayerOffset", EQUIVALENCE, F64, "which layers are checkpointed changes what is kept, not the results"),
    blind("SegmentsFromOne", EQUIVALENCE, F32, "which layers are checkpointed changes what is kept, not the results"),
    blind("SequentialFloorSegments", EQUIVALENCE, F64, "torch's segments compute the plain stack's results"),
    blind("LastSegmentPlain", EQUIVALENCE, F32, "an unchecked last segment computes the same values"),
    blind("CheckpointsInEval", EQUIVALENCE, F64, "checkpointing in eval keeps results bitwise; only saved bytes differ"),
    blind("NoPreserveRngState", MEMORY, F64, "a fresh dropout mask changes values, not what is saved"),
    blind("RunsLayersTwice", MEMORY, F64, "the extra pass runs under no_grad and saves nothing"),
    blind("LossyWhenCompiled", EQUIVALENCE, F64, SAME_RESULTS),
    blind("LossyWhenCompiled", MEMORY, F64, SAME_RESULTS),
)


def _baselines() -> tuple[Baseline, ...]:
    """The module on every CPU (check, dtype) of the spec: bitwise results and exactly the derived bytes
    eagerly; compiled, its fixed stacks within the derived bound (fused kernels may round differently)."""
    spec = shipped_specs()[SPEC]
    cells = sorted(generated_checks(spec, "cpu"))
    eager = [(SPEC, check, dtype, "cpu") for check, dtype in cells if check != COMPILED]
    runs = baselines_for(CORRECT, (), max_examples=EXAMPLES, extra_cells=eager, min_examples=EXAMPLES, max_abs_err=0.0)
    for check in (COMPILED, COMPILED_CUDA):  # one example per fixed stack (checkpoint_every value)
        stacks = len(next(p for p in spec.patterns if p.check == check).options["checkpoint_every"])
        runs += baselines_for(CORRECT, (), max_examples=EXAMPLES, extra_cells=[(SPEC, check, F32, "cpu")], examples=stacks)
    return runs


TABLE = SpecTable(SPEC, CORRECT, DEFECTS, BLIND_SPOTS, _baselines())
