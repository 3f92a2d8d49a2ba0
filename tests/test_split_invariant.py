"""The ``split`` invariant kind (a sequence processed in two calls carrying the state equals one call) and
causality's ``outputs`` selection, end to end through the engine.

The toy is a gated linear recurrence ``y_t = a_t y_{t-1} + x_t`` (``y_{-1} = h0``) returning ``(y, h_T)``
with ``h_T = y_{T-1}``, and a chunked variant whose state resets where the absolute position
``p = start + i`` is a multiple of ``C`` (so a second call must be told where it starts: ``offset: start``).
Both oracles are float64 reference functions in a file beside the spec (``oracle.reference: my_ref.py:fn``).
The correct implementations compute the recurrence as a log-depth parallel scan, so a split changes the
order of their float operations and the derived tolerance is exercised; planted wrong ones (the carried state
ignored, the chunk grid restarted at each call, the final state one token late) fail with the output and the
split point named.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import settings

from conformance.checks import Trial, check_invariant
from conformance.engine import run_case
from conformance.invariants import INVARIANT_KINDS, Feed
from conformance.selection import build_cases
from conformance.spec import load_specs
from conformance.strategies import Example
from tests.spec_helpers import load_error, write_spec

SETTINGS = settings(max_examples=20, derandomize=True, deadline=None, database=None)

REFERENCE = '''
import numpy as np


def recurrence(x, a, h0, **_):
    """y_t = a_t y_{t-1} + x_t, y_{-1} = h0, token by token in float64; returns (y, h_T)."""
    y, h = np.zeros_like(x), np.asarray(h0, dtype=np.float64)
    for i in range(x.shape[1]):
        h = a[:, i] * h + x[:, i]
        y[:, i] = h
    return y, h


def chunked(x, a, h0, start, C, **_):
    """The recurrence with the state reset where the absolute position start + i is a multiple of C."""
    y, h = np.zeros_like(x), np.asarray(h0, dtype=np.float64)
    for i in range(x.shape[1]):
        keep = 0.0 if (start + i) % C == 0 else 1.0
        h = keep * a[:, i] * h + x[:, i]
        y[:, i] = h
    return y, h
'''

IMPLEMENTATIONS = '''
import torch


def _scan(x, a, h0):
    """Hillis-Steele scan of the pairs (a_t, x_t) under (A2, X2) o (A1, X1) = (A2 A1, A2 X1 + X2):
    after it, y_t = A_t h0 + X_t, in log2(T) rounds (another order of operations than token by token)."""
    big_a, big_x = a.clone(), x.clone()
    d = 1
    while d < x.shape[1]:
        new_a, new_x = big_a.clone(), big_x.clone()
        new_a[:, d:] = big_a[:, d:] * big_a[:, :-d]
        new_x[:, d:] = big_a[:, d:] * big_x[:, :-d] + big_x[:, d:]
        big_a, big_x = new_a, new_x
        d *= 2
    y = big_a * h0[:, None] + big_x  # h0 [B, D] -> [B, 1, D] against [B, T, D]
    return y, y[:, -1]


def _gate(a, start, chunk_size):
    p = torch.arange(a.shape[1], device=a.device) + start
    return a * (p % chunk_size != 0).to(a.dtype)[None, :, None]  # [T] -> [1, T, 1]


def scan(x, a, h0):
    return _scan(x, a, h0)


def scan_ignoring_state(x, a, h0):
    """Wrong: starts every call from zero, whatever state it is given."""
    return _scan(x, a, torch.zeros_like(h0))


def scan_late_state(x, a, h0):
    """Wrong: the returned state is the one before the last token's update."""
    y, _ = _scan(x, a, h0)
    return y, (y[:, -2] if x.shape[1] >= 2 else h0)


def chunked(x, a, h0, start=0, chunk_size=1):
    return _scan(x, _gate(a, start, chunk_size), h0)


def chunked_restarting(x, a, h0, start=0, chunk_size=1):
    """Wrong: its chunk grid restarts at each call (positions counted from 0, start ignored)."""
    return _scan(x, _gate(a, 0, chunk_size), h0)


def scan_keepdim(x, a, h0):
    """The state as [B, 1, D] (the rank of y)."""
    y, h = _scan(x, a, h0)
    return y, h[:, None]  # [B, D] -> [B, 1, D]


def scan_peeking(x, a, h0):
    """Wrong: not causal, y_t also sees x_{t+1}; the state as [B, 1, D]."""
    y, h = _scan(x, a, h0)
    ahead = torch.cat([x[:, 1:], torch.zeros_like(x[:, :1])], 1)  # x shifted one position back: [B, T, D]
    return y + 0.5 * ahead, h[:, None]  # [B, D] -> [B, 1, D]
'''

STREAM = {
    "id": "stream",
    "kind": "split",
    "description": "two calls carrying h equal one",
    "axis": {"x": 1, "a": 1},
    "carry": {"h0": "h_T"},
    "outputs": {"y": 1},
}


def _spec(spec_id: str, impls: list[str], invariants: list[dict], chunked: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "id": spec_id,
        "title": "Gated linear recurrence",
        "equation": "1",
        "statement": r"y_t = a_t y_{t-1} + x_t",
        "symbols": {"B": {"min": 1, "max": 2}, "T": {"min": 1, "max": 7}, "D": {"min": 1, "max": 3}},
        "inputs": {
            "x": {"shape": ["B", "T", "D"]},
            "a": {"shape": ["B", "T", "D"], "magnitude": [0.5, 1.0]},
            "h0": {"shape": ["B", "D"]},
        },
        "outputs": {"y": {"shape": ["B", "T", "D"]}, "h_T": {"shape": ["B", "D"]}},
        "interface": {"kind": "function", "args": ["x", "a", "h0"]},
        "oracle": {"reference": "my_ref.py:recurrence"},
        "invariants": invariants,
        "implementations": [{"ref": f"impl.py:{name}"} for name in impls],
    }
    if chunked:
        spec["params"] = {"start": {"min": 0, "max": 5, "integer": True}, "C": {"values": [2, 3]}}
        spec["interface"]["kwargs"] = {"start": "start", "chunk_size": "C"}
        spec["oracle"] = {"reference": "my_ref.py:chunked"}
    return spec


def _file(directory: Path, *specs: dict[str, Any], name: str = "recurrence.yaml") -> Path:
    (directory / "my_ref.py").write_text(REFERENCE)
    (directory / "impl.py").write_text(IMPLEMENTATIONS)
    data = {
        "schema": 1,
        "paper": {"title": "A Test Paper", "authors": ["A. Author"], "arxiv": "2501.00663", "year": 2025},
        "specs": json.loads(json.dumps(list(specs))),  # no shared objects: YAML anchors are refused
    }
    return write_spec(directory, data, name)


def _results(file: Path, check: str, dtypes: tuple[str, ...] = ("float64",)) -> dict[tuple[str, str], Any]:
    """``(implementation, dtype) -> Result`` of one check for every implementation of the file's specs (CPU)."""
    specs = load_specs([file], default=False)
    cases = [c for c in build_cases(specs, {}) if c.check == check and c.device == "cpu" and c.dtype in dtypes]
    return {(c.implementation, c.dtype): run_case(c, SETTINGS) for c in cases}


@pytest.fixture
def recurrence_file(tmp_path: Path) -> Path:
    impls = ["scan", "scan_ignoring_state", "scan_late_state"]
    chunked_stream = {**STREAM, "offset": "start"}
    return _file(
        tmp_path,
        _spec("ema", impls, [STREAM]),
        _spec("chunked", ["chunked", "chunked_restarting"], [chunked_stream], chunked=True),
    )


# -- end to end ------------------------------------------------------------------------------------------
def test_a_streaming_implementation_passes_and_planted_ones_fail_naming_output_and_split(recurrence_file: Path) -> None:
    results = _results(recurrence_file, "invariant:stream", ("float64", "float32"))
    for ref in ("impl.py:scan", "impl.py:chunked"):
        for dtype in ("float64", "float32"):
            passed = results[(ref, dtype)]
            assert passed.outcome == "passed", (ref, dtype, passed.message)
            assert passed.examples > 0 and passed.tolerance is not None and passed.max_abs_err <= passed.tolerance
    for ref in ("impl.py:scan_ignoring_state", "impl.py:scan_late_state", "impl.py:chunked_restarting"):
        failed = results[(ref, "float64")]
        assert failed.outcome == "failed", (ref, failed.message)
        message = failed.message or ""
        assert "two calls carrying h equal one" in message and "split at s = " in message, message
        assert message.split("two calls carrying h equal one: ")[1].split(":")[0] in {"y", "h_T"}, message
    assert "start + " in (results[("impl.py:chunked_restarting", "float64")].message or "")


def test_a_sequence_of_one_position_is_rejected_not_passed(recurrence_file: Path) -> None:
    spec = load_specs([recurrence_file], default=False)["ema"]

    def judged(ref: str, length: int) -> Any:
        example = Example({"B": 2, "T": length, "D": 3}, {}, {"x": 1.0, "a": 1.0, "h0": 1.0}, {}, 11)
        return check_invariant(Trial(spec, ref, "cpu", "float64", example), "stream")

    assert judged("impl.py:scan", 1) is None and judged("impl.py:scan_ignoring_state", 1) is None
    assert judged("impl.py:scan", 6).passed
    failed = judged("impl.py:scan_ignoring_state", 6)
    assert not failed.passed and "split at s = " in failed.detail and "of T = 6" in failed.detail


def test_a_sequence_that_cannot_be_split_is_refused(tmp_path: Path) -> None:
    spec = _spec("ema", ["scan"], [STREAM])
    spec["symbols"]["T"] = {"min": 1, "max": 1}
    exc = load_error(_file(tmp_path, spec))
    assert exc.path.endswith("invariants[0].axis") and "T is at most 1: no example can be split" in exc.detail, exc


# -- plans -----------------------------------------------------------------------------------------------
def test_the_plan_cuts_every_sequence_input_and_shifts_the_offset() -> None:
    options = {"axis": {"x": 1, "a": 1}, "symbol": "T", "carry": {"h0": "h_T"}, "offset": "start", "outputs": {"y": 1}}
    rng = np.random.default_rng(0)
    env = {"x": rng.normal(size=(2, 5, 3)), "a": rng.normal(size=(2, 5, 3)), "h0": rng.normal(size=(2, 3)), "T": 5, "start": 4}
    splits = set()
    for seed in range(40):
        plan = INVARIANT_KINDS["split"].plan(options, env, np.random.default_rng(seed), ("y", "h_T"))
        assert plan.feed is not None and plan.feed.pairs == (("h0", "h_T"),) and plan.feed.join == {"y": 1}
        first, second = plan.feed.env, plan.env_b
        s = first["T"]
        splits.add(s)
        assert second["T"] == 5 - s and first["start"] == 4 and second["start"] == 4 + s and plan.env_a is env
        np.testing.assert_array_equal(np.concatenate([first["x"], second["x"]], 1), env["x"])
        np.testing.assert_array_equal(np.concatenate([first["a"], second["a"]], 1), env["a"])
        assert first["h0"] is env["h0"] and f"s = {s} of T = 5" in plan.note
    assert splits == {1, 2, 3, 4}, "s is drawn over every split point 1 .. T-1"
    one = {**env, "x": env["x"][:, :1], "a": env["a"][:, :1], "T": 1}
    assert INVARIANT_KINDS["split"].plan(options, one, rng, ("y", "h_T")).reject


def test_feed_keeps_its_one_pair_construction() -> None:
    feed = Feed("x", "out", {"x": 1})
    assert feed.pairs == (("x", "out"),) and (feed.input, feed.output) == ("x", "out") and feed.join == {}
    several = Feed((("h0", "h_T"), ("c0", "c_T")), {})
    assert several.inputs == ("h0", "c0")
    with pytest.raises(AttributeError, match="2 pairs"):
        _ = several.input
    assert dataclasses.replace(several, join={"y": 1}) == Feed(several.pairs, {}, join={"y": 1})


# -- validation ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        ({"axis": {"x": 1}}, "axis", "'a' has the sequence size T"),
        ({"axis": {"x": 1, "a": 0}}, "axis", "must all be of size T: 'a' is cut along B"),
        ({"axis": {"x": 1, "a": 5}}, "axis", "axis 5 of 'a' is out of range"),
        ({"axis": {"x": 1, "a": 1, "q": 0}}, "axis", "'q' is not a declared input"),
        ({"axis": {"x": 2, "a": 2}}, "axis", "'h0' has the sequence size D (shape [B, D])"),
        ({"axis": []}, "axis", "expected a mapping input name -> its sequence axis"),
        ({"outputs": {}}, "outputs", "expected a mapping output name"),
        ({"outputs": {"h_T": 1}}, "outputs", "the sequence axes must all be of size T: 'h_T' is cut along D"),
        ({"outputs": {"y": 0}}, "outputs", "must all be of size T: 'y' is cut along B"),
        ({"carry": {"h0": "y"}}, "carry", "output 'y' ['B', 'T', 'D'] cannot feed input 'h0'"),
        ({"carry": {"h1": "h_T"}}, "carry", "'h1' is not a declared real input"),
        ({"carry": {"h0": "h_last"}}, "carry", "'h_last' is not a declared output"),
        ({"carry": ["h0"]}, "carry", "expected a mapping input name -> output name"),
        ({"offset": "T"}, "offset", "expected an integer param or a size symbol other than T"),
        ({"offset": "scale"}, "offset", "got 'scale'"),
        ({"offset": "nope"}, "offset", "got 'nope'"),
    ],
)
def test_bad_split_options_are_one_keyed_error(tmp_path: Path, change: dict, key: str, words: str) -> None:
    invariant = {**copy.deepcopy(STREAM), **change}
    spec = _spec("ema", ["scan"], [invariant])
    spec["params"] = {"start": {"min": 0, "max": 3, "integer": True}, "scale": {"min": 0.5, "max": 2.0}}
    spec["interface"]["kwargs"] = {"start": "start", "scale": "scale"}
    exc = load_error(_file(tmp_path, spec))
    assert exc.path.endswith(f"invariants[0].{key}") and words in exc.detail, exc


def test_an_output_of_the_sequence_must_be_listed(tmp_path: Path) -> None:
    invariant = {k: v for k, v in STREAM.items() if k != "outputs"}
    exc = load_error(_file(tmp_path, _spec("ema", ["scan"], [invariant])))
    assert exc.path.endswith("invariants[0].outputs") and "'y' has the sequence size T" in exc.detail, exc


def test_a_state_cut_along_the_sequence_cannot_be_carried(tmp_path: Path) -> None:
    spec = _spec("ema", ["scan"], [{**STREAM, "carry": {"x": "y"}}])
    exc = load_error(_file(tmp_path, spec))
    assert exc.path.endswith("invariants[0].carry") and "'x' is cut along the sequence" in exc.detail, exc


# -- causality with outputs ------------------------------------------------------------------------------
CAUSAL = {"id": "causal", "kind": "causality", "description": "y_t sees x_{<=t} only", "perturb": {"x": 1, "a": 1}}


def test_causality_outputs_leave_the_final_state_out(tmp_path: Path) -> None:
    # h_T as [B, 1, D]: the same rank as y, so causality without `outputs` compares it (position 0 of axis 1)
    # and fails: the final state legitimately depends on the future. With outputs: [y] it is left out.
    whole = {**CAUSAL, "id": "whole", "output_axis": 1}
    only_y = {**CAUSAL, "id": "only_y", "output_axis": 1, "outputs": ["y"]}
    spec = _spec("ema", ["scan_keepdim", "scan_peeking"], [whole, only_y])
    spec["outputs"]["h_T"] = {"shape": ["B", 1, "D"]}
    file = _file(tmp_path, spec)
    whole_results = _results(file, "invariant:whole")
    only_y_results = _results(file, "invariant:only_y")
    failed = whole_results[("impl.py:scan_keepdim", "float64")]
    assert failed.outcome == "failed" and "h_T: " in (failed.message or ""), failed.message
    assert only_y_results[("impl.py:scan_keepdim", "float64")].outcome == "passed"
    peeking = only_y_results[("impl.py:scan_peeking", "float64")]
    assert peeking.outcome == "failed" and "y_t sees x_{<=t} only: y: " in (peeking.message or ""), peeking.message


def test_causality_with_outputs_of_different_ranks_needs_outputs(tmp_path: Path) -> None:
    exc = load_error(_file(tmp_path, _spec("ema", ["scan"], [{**CAUSAL, "output_axis": 1}])))
    assert exc.path.endswith("output_axis") and "different ranks" in exc.detail, exc
    specs = load_specs(
        [_file(tmp_path, _spec("ema", ["scan"], [{**CAUSAL, "output_axis": 1, "outputs": ["y"]}]), name="ok.yaml")], default=False
    )
    assert specs["ema"].invariants[0].options["outputs"] == ("y",)


@pytest.mark.parametrize(
    ("outputs", "words"),
    [(["nope"], "'nope' is not a declared output"), ([], "expected a non-empty list"), (["y", "y"], "named twice")],
)
def test_bad_causality_outputs_are_one_keyed_error(tmp_path: Path, outputs: list, words: str) -> None:
    exc = load_error(_file(tmp_path, _spec("ema", ["scan"], [{**CAUSAL, "output_axis": 1, "outputs": outputs}])))
    assert exc.path.endswith("invariants[0].outputs") and words in exc.detail, exc
