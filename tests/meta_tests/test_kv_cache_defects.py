"""Planted defects for spec ``kv_cache``: every ``append_cache`` check catches a wrong cache, and ours passes.

Each row of ``DEFECTS`` names a deliberately wrong cache (``defects/kv_cache_defects.py``), the
pattern check that must catch it and the dtype; the test runs that one check through
``conformance.runner.run_case`` with derandomized settings and asserts a ``CheckFailure`` from that
check whose report row carries the falsifying step sequence Hypothesis printed.
``test_correct_implementation_passes`` runs our ``KVCache`` on every (check, dtype) of the table
with more examples. ``BLIND_SPOTS`` records, with the reason, checks that cannot see a defect
another check catches. The ``causal_decoding`` check judges the pair (cache, attention): its
defect is a wrong ``attention`` option, planted by replacing the option in the loaded spec.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import settings

from conformance.checks import CheckFailure
from conformance.dtype_helpers import DTYPES
from conformance.runner import run_case
from conformance.selection import Case
from conformance.spec import EquationSpec, load_specs

DEFECTS_FILE = Path(__file__).resolve().parent / "defects" / "kv_cache_defects.py"
CORRECT = "implementations.kv_cache:KVCache"
F64, F32, BF16, F16 = "float64", "float32", "bfloat16", "float16"


@dataclass(frozen=True)
class Planted:
    defect: str  # attribute of defects/kv_cache_defects.py (a cache class, or an attention function for decoding)
    check: str  # pattern id in specs/kv_cache.yaml
    dtype: str = F32
    device: str = "cpu"
    max_examples: int = 25

    @property
    def id(self) -> str:
        return f"{self.defect}-{self.check}-{self.dtype}-{self.device}"


DEFECTS: list[Planted] = [
    Planted("GuideKVCache", "dtype_device", F16),
    Planted("GuideKVCache", "dtype_device", BF16),
    Planted("GuideKVCache", "dtype_device", F64),
    Planted("GuideKVCache", "contents", F64),
    Planted("GuideKVCache", "overflow", F32),
    Planted("ResetKeepsLength", "contents"),
    Planted("ReturnsWholeBuffer", "contents"),
    Planted("OffByOneOffset", "contents"),
    Planted("OffByOneOffset", "contents", F16),
    Planted("OffByOneOffset", "causal_decoding"),
    Planted("AddsZero", "contents"),
    Planted("MutatesBeforeRaising", "overflow"),
    Planted("UnclearOverflowError", "overflow"),
    Planted("ShiftingBuffer", "history"),
    Planted("ShiftingBuffer", "history", F16),
    Planted("top_left_decode_attention", "causal_decoding", F32),
    Planted("top_left_decode_attention", "causal_decoding", BF16),
    Planted("top_left_decode_attention", "causal_decoding", F16),
    Planted("IgnoresDevice", "dtype_device", F32, "cuda"),
]

# (defect, check that cannot see it, why) — asserted to pass, so the table above stays honest.
BLIND_SPOTS: list[tuple[Planted, str]] = [
    (Planted("GuideKVCache", "contents", F16), "float16 → float32 storage is exact; only dtype_device sees the wrong dtype"),
    (Planted("GuideKVCache", "dtype_device", F32), "float32 inputs are what the guide stores; only overflow catches it then"),
    (Planted("ShiftingBuffer", "contents"), "every result is right when returned; only history sees it change afterwards"),
    (Planted("MutatesBeforeRaising", "contents"), "contents never sends an update past capacity; overflow does"),
    (Planted("IgnoresDevice", "dtype_device"), "on the CPU, allocating on the CPU is right"),
    (Planted("AddsZero", "history"), "history compares results with their own copies, which hold the same +0.0"),
]

BASELINE_EXAMPLES = 40


def _spec(planted: Planted) -> tuple[EquationSpec, str]:
    """The kv_cache spec and implementation reference for one planted row."""
    spec = load_specs()["kv_cache"]
    target = f"{DEFECTS_FILE}:{planted.defect}"
    if planted.defect[0].islower():  # an attention function: the cache is ours, the decoding option is the defect
        patterns = tuple(
            dataclasses.replace(p, options={**p.options, "attention": target}) if p.id == planted.check else p
            for p in spec.patterns
        )
        return dataclasses.replace(spec, patterns=patterns), CORRECT
    return spec, target


def _run(planted: Planted, max_examples: int, spec: EquationSpec | None = None, ref: str | None = None) -> tuple[list, list]:
    """Run one check; returns (check failures and other errors, report rows)."""
    if spec is None or ref is None:
        spec, ref = _spec(planted)
    case = Case(spec.with_implementations([ref]), ref, planted.device, planted.dtype, f"append_cache:{planted.check}")
    rows: list[dict[str, Any]] = []
    hypothesis_settings = settings(max_examples=max_examples, derandomize=True, deadline=None, database=None)
    try:
        run_case(case, rows.append, hypothesis_settings)
    except Exception as exc:  # CheckFailure, or a crash
        return [exc], rows
    return [], rows


def _needs_device(planted: Planted) -> None:
    if planted.device == "cuda" and not torch.cuda.is_available():
        pytest.skip("CUDA not available")


@pytest.mark.parametrize("planted", DEFECTS, ids=lambda p: p.id)
def test_planted_defect_is_caught(planted: Planted) -> None:
    _needs_device(planted)
    errors, rows = _run(planted, planted.max_examples)
    check = f"append_cache:{planted.check}"
    assert errors and isinstance(errors[0], CheckFailure), f"{planted.defect} not caught by {check}: {errors} {rows}"
    assert str(errors[0]).startswith(f"{check} failed:"), str(errors[0])
    detail = rows[-1]["detail"]
    # The falsifying example of a stateful failure is the step sequence: it must reach the report row.
    assert "Falsifying steps:" in detail and "state.build(" in detail and "state.teardown()" in detail, detail
    prop = "decoding" if planted.check == "causal_decoding" else planted.check
    assert f"{prop}: " in detail, detail


@pytest.mark.parametrize(
    "baseline",
    sorted({dataclasses.replace(p, defect="KVCache", max_examples=BASELINE_EXAMPLES) for p in DEFECTS}, key=lambda p: p.id),
    ids=lambda p: p.id,
)
def test_correct_implementation_passes(baseline: Planted) -> None:
    _needs_device(baseline)
    errors, rows = _run(baseline, baseline.max_examples, load_specs()["kv_cache"], CORRECT)
    assert not errors, f"{errors}\n{rows}"
    assert rows[-1]["examples"] >= BASELINE_EXAMPLES


@pytest.mark.parametrize("planted, reason", BLIND_SPOTS, ids=[f"{p.id}-blind" for p, _ in BLIND_SPOTS])
def test_documented_blind_spot(planted: Planted, reason: str) -> None:
    errors, rows = _run(planted, BASELINE_EXAMPLES)
    assert not errors, f"{reason} — but: {errors}\n{rows}"


def test_every_check_has_a_planted_defect() -> None:
    spec = load_specs()["kv_cache"]
    assert {p.id for p in spec.patterns} <= {p.check for p in DEFECTS}
    assert {p.dtypes for p in spec.patterns} == {DTYPES}, "every check runs at every dtype"


def test_the_guide_cache_is_caught_at_every_dtype() -> None:
    """The guide's cache fails some check at every dtype (float32: overflow only)."""
    caught = {p.dtype for p in DEFECTS if p.defect == "GuideKVCache"}
    assert caught == set(DTYPES)
