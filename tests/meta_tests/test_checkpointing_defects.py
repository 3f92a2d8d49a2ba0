"""Planted defects for spec ``checkpointing``: both ``checkpoint_equivalence`` checks catch their defects.

Each row of ``DEFECTS`` names a wrong checkpointed stack (``defects/checkpointing_defects.py``) and
the check that must catch it, at a dtype; the check runs through ``conformance.runner.run_case``
under a fixed, derandomized Hypothesis profile. ``test_correct_implementation_passes`` runs our
``CheckpointedModule`` on every (check, dtype) the spec lists on the CPU with at least as many
examples, so a catch shows a discriminating check. ``BLIND_SPOTS`` records, with the reason, which
check cannot see a defect that the other catches: the two checks split the contract (results vs
memory) and the table's claims are exact. Nothing here is statistical: the eager checks are exact
(bitwise results, counted bytes) and the compiled check's bound is derived from the eager module's
own error, so there is no false-alarm rate to state.
"""

from __future__ import annotations

import pytest

from tests.meta_tests.defect_helpers import defect_ref, hypothesis_profile, run, specs

# The Reentrant defect's checkpoint warns that no input requires grad: the situation it is caught in.
pytestmark = pytest.mark.filterwarnings("ignore:None of the inputs have requires_grad=True:UserWarning")

SPEC = "checkpointing"
CORRECT = "implementations.checkpointing:CheckpointedModule"
EQUIVALENCE = "checkpoint_equivalence:plain_stack"
MEMORY = "checkpoint_equivalence:saved_activations"
COMPILED = "checkpoint_equivalence:compiled_cpu"
EXAMPLES = 25  # Hypothesis examples per row; every defect below is caught within the first few

DEFECTS: list[tuple[str, str, str]] = [  # (defect, check, dtype)
    ("NoPreserveRngState", EQUIVALENCE, "float64"),
    ("NoPreserveRngState", EQUIVALENCE, "float16"),
    ("SkipsLayerInSegment", EQUIVALENCE, "float64"),
    ("SkipsLayerInSegment", EQUIVALENCE, "bfloat16"),
    ("DetachedSegmentInput", EQUIVALENCE, "float64"),
    ("DetachedSegmentInput", EQUIVALENCE, "float32"),
    ("Reentrant", EQUIVALENCE, "float64"),
    ("RunsLayersTwice", EQUIVALENCE, "float64"),
    ("RunsLayersTwice", EQUIVALENCE, "float32"),
    ("NoCheckpointing", MEMORY, "float64"),
    ("NoCheckpointing", MEMORY, "float16"),
    ("GuidePerLayer", MEMORY, "float64"),
    ("GuidePerLayer", MEMORY, "bfloat16"),
    ("LastSegmentPlain", MEMORY, "float32"),
    ("CheckpointsInEval", MEMORY, "float64"),
    ("Reentrant", MEMORY, "float64"),
    ("LossyWhenCompiled", COMPILED, "float32"),
    ("SkipsLayerInSegment", COMPILED, "float32"),
]

# (defect, check that cannot see it, dtype, why) — asserted to pass, so the table above stays honest.
BLIND_SPOTS: list[tuple[str, str, str, str]] = [
    ("NoCheckpointing", EQUIVALENCE, "float64", "the plain stack computes the plain stack's results; only memory shows it"),
    ("GuidePerLayer", EQUIVALENCE, "float64", "checkpointing single layers keeps results bitwise; it only saves less"),
    ("LastSegmentPlain", EQUIVALENCE, "float32", "an unchecked last segment computes the same values"),
    ("CheckpointsInEval", EQUIVALENCE, "float64", "checkpointing in eval keeps results bitwise; only saved bytes differ"),
    ("NoPreserveRngState", MEMORY, "float64", "a fresh dropout mask changes values, not what is saved"),
    ("RunsLayersTwice", MEMORY, "float64", "the extra pass runs under no_grad and saves nothing"),
    ("LossyWhenCompiled", EQUIVALENCE, "float64", "eager mode is the correct module; only compiled code rounds"),
    ("LossyWhenCompiled", MEMORY, "float64", "eager mode is the correct module; only compiled code rounds"),
]


def _cases() -> list[tuple[str, str]]:
    """Every (check, dtype) the spec generates for an implementation on the CPU."""
    return [(p.check, dtype) for p in specs()[SPEC].patterns if "cpu" in p.devices for dtype in p.dtypes]


def _id(check: str) -> str:
    return check.split(":")[1]


@pytest.mark.parametrize("defect, check, dtype", DEFECTS, ids=[f"{d}-{_id(c)}-{t}" for d, c, t in DEFECTS])
def test_planted_defect_is_caught(defect: str, check: str, dtype: str) -> None:
    with hypothesis_profile(EXAMPLES):
        outcome = run(SPEC, defect_ref(f"checkpointing_defects.py:{defect}"), check, dtype)
    assert outcome.caught_by(check), f"{defect} not caught by {check}\n{outcome.summary()}"
    assert not outcome.errors, outcome.summary()
    row = outcome.rows[-1]
    assert "stack: " in row["detail"] and "checkpoint_every=" in row["detail"], "the report row must say which stack failed"
    assert row["tolerance_basis"], "the report row must carry the bound and its basis"


@pytest.mark.parametrize("check, dtype", _cases(), ids=[f"{_id(c)}-{t}" for c, t in _cases()])
def test_correct_implementation_passes(check: str, dtype: str) -> None:
    with hypothesis_profile(EXAMPLES):
        outcome = run(SPEC, CORRECT, check, dtype)
    assert not outcome.failures and not outcome.errors, outcome.summary()
    if check == COMPILED:  # fixed stacks, within the derived bound (fused kernels may round differently)
        (pattern,) = [p for p in specs()[SPEC].patterns if p.check == COMPILED]
        assert outcome.rows[-1]["examples"] == len(pattern.options["checkpoint_every"])
        return
    assert outcome.rows[-1]["examples"] >= EXAMPLES
    assert outcome.rows[-1]["max_abs_err"] == 0.0  # bitwise results, exactly the derived bytes


@pytest.mark.parametrize("defect, check, dtype, reason", BLIND_SPOTS, ids=[f"{d}-{_id(c)}-blind" for d, c, _, _ in BLIND_SPOTS])
def test_documented_blind_spot(defect: str, check: str, dtype: str, reason: str) -> None:
    with hypothesis_profile(EXAMPLES):
        outcome = run(SPEC, defect_ref(f"checkpointing_defects.py:{defect}"), check, dtype)
    assert not outcome.failures and not outcome.errors, f"{reason} — but:\n{outcome.summary()}"


def test_every_check_has_a_planted_defect() -> None:
    checks = {check for check, _ in _cases()}
    planted = {check for _, check, _ in DEFECTS}
    assert checks <= planted, f"no planted defect for {sorted(checks - planted)}"


def test_every_planted_defect_is_in_the_table() -> None:
    import inspect

    from conformance.calling import resolve

    module = inspect.getmodule(resolve(defect_ref("checkpointing_defects.py:NoCheckpointing")))
    public = {name for name, obj in vars(module).items() if inspect.isclass(obj) and not name.startswith("_")}
    public -= {"Tensor"}
    assert public - {"checkpoint"} <= {d for d, _, _ in DEFECTS}
