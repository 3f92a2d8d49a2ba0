"""A failing run warns nothing from the harness's own arithmetic (issue 8: ~190 overflow warnings).

Overflow the harness expects and handles (an oracle's intermediate overflowing to inf, a non-finite
result a check rejects) runs under ``np.errstate``; warnings from the implementation under test are
its own and not counted here.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from hypothesis import settings

import conformance
from conformance import engine
from conformance.defects import build_case, shipped_specs
from conformance.selection import Case, build_cases
from tests.meta_tests.tables import defect
from tests.spec_helpers import load_one, minimal_spec, write_spec

FAST = settings(max_examples=8, derandomize=True, deadline=None, database=None)
HARNESS = str(Path(conformance.__file__).parent)


def run_recording(cases: list[Case]) -> tuple[list[str], list[str]]:
    """The cases' outcomes, and every RuntimeWarning raised from a conformance module while they ran."""
    found: list[str] = []
    outcomes: list[str] = []
    for case in cases:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            outcomes.append(engine.run_case(case, FAST).outcome)
        found += [
            f"{w.filename}:{w.lineno}: {w.message} ({case.id})"
            for w in caught
            if issubclass(w.category, RuntimeWarning) and w.filename.startswith(HARNESS)
        ]
    return outcomes, found


def _failing_cases(spec_id: str, ref: str, checks: tuple[str, ...]) -> list[Case]:
    spec = shipped_specs()[spec_id]
    cases = [c for c in build_cases({spec_id: spec}, {spec_id: [ref]}) if c.device == "cpu" and c.check in checks]
    assert cases
    return cases


@pytest.mark.parametrize(
    ("spec_id", "ref", "checks"),
    [
        ("rmsnorm", defect("rmsnorm_defects.py", "GuideNoUpcast"), ("oracle", "gradient")),  # overflows in float16
        ("attention", defect("attention_defects.py", "no_scaling"), ("oracle", "invariant:query_key_rescaling")),
    ],
)
def test_a_planted_defects_failing_run_warns_nothing_from_the_harness(spec_id: str, ref: str, checks: tuple[str, ...]) -> None:
    outcomes, found = run_recording(_failing_cases(spec_id, ref, checks))
    assert "failed" in outcomes and found == []


def test_an_oracle_overflowing_in_float64_warns_nothing(tmp_path: Path) -> None:
    """sigmoid as 1 / (1 + exp(-x)) at |x| up to 1e3: exp overflows to inf and the result is exactly 0
    (a failing implementation too). Before evaluation ran under np.errstate this warned at every such example."""
    data = minimal_spec()
    spec = data["specs"][0]
    spec.update(
        id="sig",
        symbols={"N": {"min": 1, "max": 16}},
        inputs={"x": {"shape": ["N"], "magnitude": [1.0e-3, 1.0e3]}},
        outputs={"y": {"shape": ["N"]}},
        interface={"kind": "function", "args": ["x"]},
        oracle={"expr": "1 / (1 + exp(-x))"},
    )
    (tmp_path / "impl.py").write_text("import torch\n\ndef bad(x):\n    return torch.sigmoid(1.01 * x)\n")
    loaded = load_one(write_spec(tmp_path, data))
    ref = f"{tmp_path / 'impl.py'}:bad"
    cases = [build_case(loaded, ref, "oracle", dtype) for dtype in ("float64", "float16", "bfloat16")]
    outcomes, found = run_recording(cases)
    assert "failed" in outcomes and found == []
