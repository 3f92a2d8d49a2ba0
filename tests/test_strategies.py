"""conformance.strategies: Hypothesis examples drawn from a spec's declared domain.

Drawn examples must satisfy the spec's constraints and symbol bounds, keep magnitudes inside the
range each dtype can hold, never produce a fully masked row where the spec says
``rows_nonempty``, and materialize to the same arrays for the same seed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from conformance.dtype_helpers import DTYPES, round_to
from conformance.expr import parse
from conformance.spec import EquationSpec
from conformance.strategies import (
    GRADCHECK_MAGNITUDE,
    GRADCHECK_MAX_SIZE,
    Example,
    cotangent,
    derive_inputs,
    examples,
    magnitude_range,
    materialize,
    representative,
    shape_of,
)
from tests.spec_helpers import load_one, minimal_spec, shipped_specs, write_spec

FEW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def constrained(tmp_path_factory: pytest.TempPathFactory) -> EquationSpec:
    """A spec with constraints between symbols, params of every kind and a very wide magnitude range."""
    data = minimal_spec()
    spec = data["specs"][0]
    spec["symbols"] = {"B": {"min": 1, "max": 2}, "H": {"min": 1, "max": 4}, "D": {"min": 1, "max": 16}}
    spec["constraints"] = ["D % H == 0", "D >= 2*H"]
    spec["params"] = {"p": {"values": [1, 2, 3]}, "q": {"min": 0.1, "max": 10.0, "log": True}, "r": {"min": -1.0, "max": 1.0}}
    spec["inputs"] = {
        "hidden": {"shape": ["B", "D"], "magnitude": [1.0e-30, 1.0e30]},
        "memory_pred": {"shape": ["D"], "magnitude_by_dtype": {"float16": [0.5, 2.0]}},
    }
    directory = Path(tmp_path_factory.mktemp("constrained"))
    return load_one(write_spec(directory, data))


SPEC_DTYPES = [(spec_id, dtype) for spec_id in ("attention", "rmsnorm", "surprise") for dtype in DTYPES]


# -- magnitude_range ---------------------------------------------------------------------------------
def test_magnitude_range_clips_to_normal_numbers_and_a_quarter_of_the_max(constrained: EquationSpec) -> None:
    hidden = constrained.inputs["hidden"]
    assert magnitude_range(hidden, "float16") == (2.0**-14, 65504.0 / 4)
    assert magnitude_range(hidden, "bfloat16") == (1e-30, 1e30)
    assert magnitude_range(hidden, "float32") == (1e-30, 1e30)
    assert magnitude_range(hidden, "float64") == (1e-30, 1e30)


def test_magnitude_range_prefers_the_per_dtype_range(constrained: EquationSpec) -> None:
    pred = constrained.inputs["memory_pred"]
    assert magnitude_range(pred, "float16") == (0.5, 2.0)
    assert magnitude_range(pred, "float32") == (1e-3, 1e3)


# -- shrinking toward a representative scale ----------------------------------------------------------
SHRINK = settings(database=None, derandomize=True, max_examples=200)


def test_representative_is_one_inside_the_range_else_its_geometric_middle() -> None:
    assert representative(1e-30, 1e30) == representative(1.0, 8.0) == representative(0.25, 1.0) == 1.0
    assert representative(1e-8, 1e-2) == pytest.approx(1e-5)
    assert representative(1e-2, 0.3) == pytest.approx((1e-2 * 0.3) ** 0.5)
    assert representative(4.0, 4.0) == 4.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_failure_anywhere_shrinks_to_representative_scale_and_smallest_sizes(constrained: EquationSpec, dtype: str) -> None:
    """Shrinking simplifies sizes, not scale: the shrunk magnitude is the representative one, not an edge."""
    found = find(examples(constrained, dtype), lambda ex: True, settings=SHRINK)
    for name, inp in constrained.inputs.items():
        assert found.magnitudes[name] == representative(*magnitude_range(inp, dtype))
    assert found.params["q"] == 1.0, "a log-scaled param shrinks toward its representative too"
    assert found.sizes == {"B": 1, "H": 1, "D": 2}


def test_a_failure_only_at_an_edge_keeps_the_edge(constrained: EquationSpec) -> None:
    found = find(examples(constrained, "float64"), lambda ex: ex.magnitudes["hidden"] >= 1e30, settings=SHRINK)
    assert found.magnitudes["hidden"] == 1e30 and found.magnitudes["memory_pred"] == 1.0


# -- drawn examples ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@FEW
@given(data=st.data())
def test_examples_satisfy_constraints_and_symbol_bounds(constrained: EquationSpec, dtype: str, data: st.DataObject) -> None:
    ex = data.draw(examples(constrained, dtype))
    for name, symbol in constrained.symbols.items():
        assert symbol.min <= ex.sizes[name] <= symbol.max
    assert ex.sizes["D"] % ex.sizes["H"] == 0 and ex.sizes["D"] >= 2 * ex.sizes["H"]
    assert ex.params["p"] in (1, 2, 3)
    assert 0.1 <= ex.params["q"] <= 10.0 and -1.0 <= ex.params["r"] <= 1.0


@pytest.mark.parametrize("dtype", DTYPES)
@FEW
@given(data=st.data())
def test_magnitudes_stay_within_the_clipped_range(constrained: EquationSpec, dtype: str, data: st.DataObject) -> None:
    ex = data.draw(examples(constrained, dtype))
    env = materialize(constrained, ex)
    for name, inp in constrained.inputs.items():
        lo, hi = magnitude_range(inp, dtype)
        assert lo <= ex.magnitudes[name] <= hi
        assert np.all(np.abs(env[name]) <= ex.magnitudes[name])
        assert np.all(np.isfinite(round_to(env[name], dtype)))  # representable in the tested dtype


@pytest.mark.parametrize(("spec_id", "dtype"), SPEC_DTYPES)
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_shipped_spec_examples_respect_bounds_shapes_and_magnitudes(spec_id: str, dtype: str, data: st.DataObject) -> None:
    spec = shipped_specs()[spec_id]
    ex = data.draw(examples(spec, dtype))
    env = materialize(spec, ex)
    for name, symbol in spec.symbols.items():
        assert symbol.min <= ex.sizes[name] <= symbol.max
    for name, param in spec.params.items():
        assert ex.params[name] in param.values if param.values else param.low <= ex.params[name] <= param.high
    for name, inp in spec.inputs.items():
        assert env[name].shape == shape_of(inp.shape, ex.sizes)
        if inp.kind == "real":
            lo, hi = magnitude_range(inp, dtype)
            assert lo <= ex.magnitudes[name] <= hi and np.all(np.abs(env[name]) <= hi)
            assert env[name].dtype == np.float64
        else:
            assert env[name].dtype == np.bool_


@FEW
@given(data=st.data())
def test_gradcheck_examples_are_small_and_near_unit_scale(data: st.DataObject) -> None:
    spec = shipped_specs()["rmsnorm"]
    ex = data.draw(examples(spec, "float64", for_gradcheck=True))
    for name, symbol in spec.symbols.items():
        assert ex.sizes[name] <= max(symbol.min, GRADCHECK_MAX_SIZE)
    for magnitude in ex.magnitudes.values():
        assert GRADCHECK_MAGNITUDE[0] <= magnitude <= GRADCHECK_MAGNITUDE[1]


@FEW
@given(data=st.data())
def test_when_condition_filters_examples(data: st.DataObject) -> None:
    ex = data.draw(examples(shipped_specs()["attention"], "float32", when=parse("is_causal")))
    assert ex.params["is_causal"] is True


# -- masks ---------------------------------------------------------------------------------------------
def _rows_without_allowed_key(mask: np.ndarray) -> list[int]:
    """Rows i of an (..., Lq, Lk) mask with no True at a column <= i (fully masked once causal applies)."""
    lq, lk = mask.shape[-2:]
    return [i for i in range(lq) if not np.all(mask[..., i, : min(i, lk - 1) + 1].any(-1))]


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_rows_nonempty_mask_always_has_an_allowed_key_at_or_before_the_diagonal(data: st.DataObject) -> None:
    spec = shipped_specs()["attention"]
    ex = data.draw(examples(spec, "float32"))
    mask = materialize(spec, ex)["mask"]
    assert mask.shape == (ex.sizes["Lq"], ex.sizes["Lk"])
    assert _rows_without_allowed_key(mask) == []


def test_without_rows_nonempty_masks_do_have_empty_rows() -> None:
    # the check above is not vacuous: the same draws without the guarantee leave rows empty
    spec = shipped_specs()["attention"]
    loose_mask = dataclasses.replace(spec.inputs["mask"], rows_nonempty=False)
    loose = dataclasses.replace(spec, inputs={**spec.inputs, "mask": loose_mask})
    sizes = {"B": 1, "H": 1, "Lq": 8, "Lk": 8, "Dk": 2, "Dv": 2}
    magnitudes = {"Q": 1.0, "K": 1.0, "V": 1.0}
    empty = [
        seed
        for seed in range(50)
        if _rows_without_allowed_key(materialize(loose, Example(sizes, {}, magnitudes, {"mask": True}, seed))["mask"])
    ]
    assert empty, "with rows_nonempty off, some of 50 seeds should leave a row without an allowed key"
    for seed in empty:
        assert _rows_without_allowed_key(materialize(spec, Example(sizes, {}, magnitudes, {"mask": True}, seed))["mask"]) == []


def test_absent_optional_mask_is_filled_with_its_default() -> None:
    spec = shipped_specs()["attention"]
    sizes = {"B": 1, "H": 1, "Lq": 3, "Lk": 5, "Dk": 2, "Dv": 2}
    env = materialize(spec, Example(sizes, {}, {"Q": 1.0, "K": 1.0, "V": 1.0}, {"mask": False}, 3))
    assert env["mask"].shape == (3, 5) and env["mask"].all()


# -- determinism ---------------------------------------------------------------------------------------
@FEW
@given(data=st.data())
def test_materialize_is_deterministic_in_the_seed(data: st.DataObject) -> None:
    spec = shipped_specs()[data.draw(st.sampled_from(["attention", "rmsnorm", "surprise"]))]
    ex = data.draw(examples(spec, "float32"))
    first, second = materialize(spec, ex), materialize(spec, Example(**ex.as_dict()))
    assert first.keys() == second.keys()
    for name in spec.inputs:
        np.testing.assert_array_equal(first[name], second[name])
    other = materialize(spec, dataclasses.replace(ex, seed=(ex.seed + 1) % 2**32))
    real = [n for n, i in spec.inputs.items() if i.kind == "real"]
    assert any(not np.array_equal(first[n], other[n]) for n in real)


def test_materialize_passes_sizes_and_params_through() -> None:
    spec = shipped_specs()["rmsnorm"]
    env = materialize(spec, Example({"B": 2, "L": 1, "D": 5}, {"eps": 1e-5}, {"x": 3.0, "weight": 0.5}, {}, 11))
    assert (env["B"], env["L"], env["D"], env["eps"]) == (2, 1, 5, 1e-5)
    assert env["x"].shape == (2, 1, 5) and env["weight"].shape == (5,)


def test_cotangent_is_deterministic_random_and_shaped() -> None:
    np.testing.assert_array_equal(cotangent((3, 4), 7), cotangent((3, 4), 7))
    assert cotangent((3, 4), 7).shape == (3, 4)
    assert not np.array_equal(cotangent((3, 4), 7), cotangent((3, 4), 8))
    assert not np.allclose(cotangent((3, 4), 7), 1.0)


def test_example_as_dict_round_trips() -> None:
    ex = Example({"B": 1}, {"eps": 0.1}, {"x": 2.0}, {"mask": False}, 5)
    assert Example(**ex.as_dict()) == ex and ex.as_dict()["seed"] == 5


# -- derived inputs, integer params, options, shape expressions ---------------------------------------
@pytest.fixture(scope="module")
def derived(tmp_path_factory: pytest.TempPathFactory) -> EquationSpec:
    """A spec with a derived table (from a drawn integer offset), a shape expression and an option param."""
    data = minimal_spec()
    spec = data["specs"][0]
    spec["symbols"] = {"B": {"min": 1, "max": 3}, "D": {"min": 2, "max": 8}}
    spec["constraints"] = ["D % 2 == 0"]
    spec["params"] = {"offset": {"min": 0, "max": 4096, "integer": True}, "flip": {"values": [False, True], "default": True}}
    spec["inputs"]["table"] = {
        "shape": ["B", "D // 2"],
        "derive": "cos(unsqueeze(arange(D // 2), 0) + offset) + 0*sum(hidden, -1, keepdim=True)",
    }
    spec["interface"]["args"] = ["hidden", "memory_pred", "table"]
    return load_one(write_spec(Path(tmp_path_factory.mktemp("derived")), data))


@FEW
@given(data=st.data())
def test_derived_inputs_are_computed_not_drawn(derived: EquationSpec, data: st.DataObject) -> None:
    ex = data.draw(examples(derived, "float32"))
    assert set(ex.magnitudes) == {"hidden", "memory_pred"}, "no magnitude is drawn for a derived input"
    assert isinstance(ex.params["offset"], int) and 0 <= ex.params["offset"] <= 4096
    assert ex.params["flip"] is True, "an option param is its default, never drawn"
    env = materialize(derived, ex)
    half = ex.sizes["D"] // 2
    expected = np.broadcast_to(np.cos(np.arange(half) + ex.params["offset"]), (ex.sizes["B"], half))
    assert env["table"].shape == shape_of(derived.inputs["table"].shape, ex.sizes) == (ex.sizes["B"], half)
    np.testing.assert_array_equal(env["table"], expected)


def test_derived_inputs_leave_the_drawn_ones_unchanged(derived: EquationSpec) -> None:
    ex = Example({"B": 2, "D": 4}, {"offset": 3, "flip": True}, {"hidden": 1.0, "memory_pred": 2.0}, {}, 9)
    plain = materialize(shipped_specs()["surprise"], Example({"B": 2, "L": 1, "D": 4}, {}, ex.magnitudes, {}, 9))
    env = materialize(derived, ex)
    np.testing.assert_array_equal(env["hidden"], plain["hidden"].reshape(2, 4))


def test_integer_params_are_drawn_with_their_edges(derived: EquationSpec) -> None:
    drawn: list[int] = []

    @settings(max_examples=60, derandomize=True, deadline=None, database=None)
    @given(ex=examples(derived, "float64"))
    def collect(ex: Example) -> None:
        drawn.append(ex.params["offset"])

    collect()
    assert all(isinstance(v, int) for v in drawn) and {0, 4096} <= set(drawn) and len(set(drawn)) > 3


def test_derive_inputs_recomputes_what_a_plan_did_not_replace(derived: EquationSpec) -> None:
    env = materialize(derived, Example({"B": 1, "D": 4}, {"offset": 0, "flip": True}, {"hidden": 1.0, "memory_pred": 1.0}, {}, 2))
    moved = derive_inputs(derived, {**env, "offset": 5}, keep=env)
    np.testing.assert_array_equal(moved["table"], np.cos(np.arange(2) + 5.0)[None, :])
    replaced = derive_inputs(derived, {**env, "offset": 5, "table": np.zeros((1, 2))}, keep=env)
    np.testing.assert_array_equal(replaced["table"], np.zeros((1, 2)))


def test_shape_expressions_evaluate_to_positive_integers() -> None:
    half = parse("D // 2")
    assert shape_of(("B", half, 3), {"B": 2, "D": 6}) == (2, 3, 3)
    with pytest.raises(ValueError, match="expected a positive integer"):
        shape_of((half,), {"D": 1})


def test_a_derived_input_that_does_not_fit_its_shape_is_an_error(derived: EquationSpec) -> None:
    table = dataclasses.replace(derived.inputs["table"], derive=parse("arange(D)"))
    spec = dataclasses.replace(derived, inputs={**derived.inputs, "table": table})
    with pytest.raises(ValueError, match="derived input 'table' has shape \\(4,\\), which does not broadcast to \\(1, 2\\)"):
        materialize(spec, Example({"B": 1, "D": 4}, {"offset": 0, "flip": True}, {"hidden": 1.0, "memory_pred": 1.0}, {}, 2))
