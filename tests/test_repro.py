"""conformance.repro: one check on one example, as every failure's reproduction snippet runs it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conformance.checks import CheckFailure
from conformance.repro import reproduce
from conformance.runner import repro
from conformance.selection import Case
from conformance.strategies import Example
from tests.spec_helpers import minimal_spec, shipped_specs, write_spec

SURPRISE = "implementations.surprise:compute_surprise"
EXAMPLE = {
    "sizes": {"B": 1, "L": 2, "D": 3},
    "params": {},
    "magnitudes": {"hidden": 1.0, "memory_pred": 1.0},
    "present": {},
    "seed": 7,
}
MEAN_OVER_FEATURES = "def loss(hidden, memory_pred):\n    return (hidden - memory_pred).pow(2).mean(-1)\n"


@pytest.fixture(scope="module")
def wrong_ref(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("repro") / "repro_mean_loss.py"
    path.write_text(MEAN_OVER_FEATURES, encoding="utf-8")
    return f"{path}:loss"


def test_reproduce_passes_and_prints_the_measurement(capsys: pytest.CaptureFixture[str]) -> None:
    m = reproduce("surprise", SURPRISE, check="oracle", device="cpu", dtype="float32", example=EXAMPLE)
    assert m.passed and m.max_abs_err <= m.tolerance.atol
    out = capsys.readouterr().out
    assert re.fullmatch(
        rf"surprise {SURPRISE} cpu float32 oracle: max_abs_err=\S+ tolerance=\S+ = .*noise floor.* -> passed\n", out
    ), out


def test_reproduce_quiet_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert reproduce("surprise", SURPRISE, check="determinism", device="cpu", dtype="float64", example=EXAMPLE, quiet=True).passed
    assert capsys.readouterr().out == ""


def test_reproduce_exact_check_prints_exact(capsys: pytest.CaptureFixture[str]) -> None:
    reproduce("surprise", SURPRISE, check="output_contract", device="cpu", dtype="float16", example=EXAMPLE)
    assert "tolerance=exact -> passed" in capsys.readouterr().out


def test_reproduce_wrong_implementation_raises_and_prints(wrong_ref: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(CheckFailure, match=r"^max \|error\| \S+ > tolerance \S+ = ") as info:
        reproduce("surprise", wrong_ref, check="oracle", device="cpu", dtype="float64", example=EXAMPLE)
    out = capsys.readouterr().out
    assert out.startswith(f"surprise {wrong_ref} cpu float64 oracle: max_abs_err=")
    assert out.rstrip().endswith("-> FAILED")
    measured = re.search(r"max_abs_err=(\S+)", out).group(1)
    assert f"max |error| {measured} >" in str(info.value)


def test_reproduce_oracle_agreement(capsys: pytest.CaptureFixture[str]) -> None:
    m = reproduce(
        "rmsnorm",
        "reference:rmsnorm",
        check="oracle_agreement",
        device="cpu",
        dtype="float64",
        example={
            "sizes": {"B": 1, "L": 2, "D": 5},
            "params": {"eps": 1e-6},
            "magnitudes": {"x": 3.0, "weight": 1.0},
            "present": {},
            "seed": 1,
        },
    )
    assert m.passed
    assert "rmsnorm reference:rmsnorm cpu float64 oracle_agreement:" in capsys.readouterr().out


def test_reproduce_loads_specs_from_spec_dirs_and_refuses_an_inapplicable_example(tmp_path: Path) -> None:
    data = minimal_spec()
    data["specs"][0]["id"] = "toy_scaled"
    data["specs"][0]["invariants"] = [
        {
            "id": "quadratic",
            "kind": "homogeneity",
            "description": "c² scaling",
            "scale": {"hidden": 1, "memory_pred": 1},
            "degree": 2,
            "log2_factor": [1, 2],
        }
    ]
    write_spec(tmp_path, data)
    big = {
        "sizes": {"B": 1, "D": 4},
        "params": {},
        "magnitudes": {"hidden": 60000.0, "memory_pred": 60000.0},
        "present": {},
        "seed": 0,
    }
    kwargs = {"check": "invariant:quadratic", "device": "cpu", "example": big, "spec_dirs": [str(tmp_path)], "quiet": True}
    assert reproduce("toy_scaled", SURPRISE, dtype="float32", **kwargs).passed
    with pytest.raises(ValueError, match="not applicable"):
        reproduce("toy_scaled", SURPRISE, dtype="float16", **kwargs)


def test_runner_repro_snippet_reproduces_the_failure(wrong_ref: str, capsys: pytest.CaptureFixture[str]) -> None:
    spec = shipped_specs()["surprise"].with_implementations([wrong_ref])
    snippet = repro(Case(spec, wrong_ref, "cpu", "float32", "oracle"), Example(**EXAMPLE))
    with pytest.raises(CheckFailure):
        exec(compile(snippet, "<repro>", "exec"), {})
    assert f"surprise {wrong_ref} cpu float32 oracle:" in capsys.readouterr().out
    ok = repro(Case(shipped_specs()["surprise"], SURPRISE, "cpu", "float32", "oracle"), Example(**EXAMPLE))
    exec(compile(ok, "<repro>", "exec"), {})


def test_a_pattern_check_replays_its_own_example() -> None:
    from conformance.patterns.helpers.stack_plans import LayerPlan, StackPlan, plan_to_dict

    plan = StackPlan((LayerPlan("linear", 2, 3, "tanh"), LayerPlan("dropout", 3, 3, p=0.5)), 1, 2, True, 11)
    m = reproduce(
        "checkpointing",
        "implementations.checkpointing:CheckpointedModule",
        check="checkpoint_equivalence:plain_stack",
        device="cpu",
        dtype="float32",
        example=plan_to_dict(plan),
        quiet=True,
    )
    assert m.passed and m.max_abs_err == 0.0


def test_a_pattern_kind_without_replay_says_so() -> None:
    with pytest.raises(ValueError, match="'parameter_gradients' has no replay"):
        reproduce(
            "multihead_attention",
            "implementations.multihead_attention:PaperModule",
            check="parameter_gradients:every_parameter_trained",
            device="cpu",
            dtype="float32",
            example={},
        )
