"""An implementation entry's own ``interface``: the calling convention it declares where it differs from the spec's
(constructor arguments, parameter names, axis order), loaded with one clear error per bad key, and honoured by
every check — a right implementation in another layout passes, the same one without its declaration fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance import engine
from conformance.spec import load_specs
from tests.spec_helpers import load_error, minimal_spec, write_spec

IMPL = """\
import torch


def surprise_features_first(hidden, memory_pred):
    # hidden, memory_pred: [D, B] (features first) -> [B]
    return ((hidden - memory_pred) ** 2).sum(0)


def packed_pair(both, *, scale):
    # both: [B, 2D], hidden then memory_pred; returns (loss, a second value the spec has no output for)
    hidden, memory_pred = both.chunk(2, -1)
    return scale * ((hidden - memory_pred) ** 2).sum(-1), "not an output"


def squares_transposed(hidden, memory_pred):
    # [B, D] -> [D, B]: the elementwise squares with the output's axes swapped
    return ((hidden - memory_pred) ** 2).T
"""


def _spec(tmp_path: Path, interface: dict | None, ref: str = "impl.py:surprise_features_first") -> Path:
    (tmp_path / "impl.py").write_text(IMPL)
    data = minimal_spec()
    entry: dict = {"ref": ref}
    if interface is not None:
        entry["interface"] = interface
    data["specs"][0]["implementations"] = [entry]
    data["specs"][0]["gradients"] = {"wrt": ["hidden", "memory_pred"]}
    return write_spec(tmp_path, data)


def _rows(path: Path, *select: str) -> dict[tuple[str, str], str]:
    plan = engine.Plan(spec_dirs=(str(path),), select=("toy-", "-cpu-", *select), profile="conformance-dev")
    return {(r.check, r.dtype): r.outcome for r in engine.run(plan) if r.spec == "toy"}


def test_a_declared_input_layout_is_permuted_into_before_the_call(tmp_path: Path) -> None:
    layouts = {"layouts": {"hidden": ["D", "B"], "memory_pred": ["D", "B"]}}
    (spec,) = load_specs([_spec(tmp_path, layouts)], default=False).values()
    assert spec.implementations[0].interface.layouts == {"hidden": (1, 0), "memory_pred": (1, 0)}
    rows = _rows(tmp_path)
    assert rows and set(rows.values()) == {"passed"}, rows


def test_without_its_declaration_the_same_implementation_fails(tmp_path: Path) -> None:
    rows = _rows(_spec(tmp_path, None).parent, "float64")
    assert rows[("oracle", "float64")] in ("failed", "error"), rows


def _elementwise(tmp_path: Path, interface: dict | None) -> Path:
    path = _spec(tmp_path, interface, ref="impl.py:squares_transposed")
    data = minimal_spec()
    data["specs"][0].update(
        oracle={"expr": "(hidden - memory_pred)**2"}, outputs={"loss": {"shape": ["B", "D"]}},
        implementations=[{"ref": "impl.py:squares_transposed", **({"interface": interface} if interface else {})}],
    )
    return write_spec(path.parent, data)


def test_a_declared_output_layout_is_permuted_back_to_the_specs_axes(tmp_path: Path) -> None:
    path = _elementwise(tmp_path, {"output_layouts": {"loss": ["D", "B"]}})
    (spec,) = load_specs([path], default=False).values()
    assert spec.implementations[0].interface.output_layouts == {"loss": (1, 0)}
    rows = _rows(tmp_path, "float64")
    assert rows and set(rows.values()) == {"passed"}, rows
    undeclared = tmp_path / "undeclared"
    undeclared.mkdir()
    rows = _rows(_elementwise(undeclared, None).parent, "float64")
    assert rows[("output_contract", "float64")] == "failed", rows


PACKED = {
    "values": {"both": "cat(hidden, memory_pred, -1)"}, "args": ["both"], "constants": {"scale": 1.0}, "returns": 0,
}


def test_computed_values_constants_and_a_returned_tuple(tmp_path: Path) -> None:
    """A packed argument computed from the inputs (gradients flow through it), a literal keyword, and the output
    picked from a returned tuple: every check passes, the gradient ones included."""
    path = _spec(tmp_path, PACKED, ref="impl.py:packed_pair")
    (spec,) = load_specs([path], default=False).values()
    iface = spec.implementations[0].interface
    assert set(iface.values) == {"both"} and iface.constants == {"scale": 1.0} and iface.returns == (0,)
    rows = _rows(tmp_path, "float64")
    assert {"oracle", "gradient", "gradcheck"} <= {c for c, _ in rows} and set(rows.values()) == {"passed"}, rows


@pytest.mark.parametrize(
    ("interface", "key", "says"),
    [
        ({"layouts": {"nope": ["B", "D"]}}, "implementations[0].interface.layouts.nope", "'nope' is not a declared tensor here"),
        ({"layouts": {"hidden": ["B", "L"]}}, "implementations[0].interface.layouts.hidden", "a reordering of its shape"),
        ({"layouts": {"hidden": "D, B"}}, "implementations[0].interface.layouts.hidden", "a list"),
        ({"output_layouts": {"hidden": ["D", "B"]}}, "implementations[0].interface.output_layouts.hidden", "not a declared"),
        ({"kind": "module", "args": ["hidden"]}, "implementations[0].interface", "memory_pred are never passed"),
        ({"args": ["hidden", "nope"]}, "implementations[0].interface.args[1]", "'nope' is not a declared input"),
        ({"colour": "blue"}, "implementations[0].interface", "colour"),
        ({**PACKED, "values": {"hidden": "memory_pred"}}, "implementations[0].interface.values.hidden", "already a declared"),
        ({**PACKED, "values": {"both": "nope * 2"}}, "implementations[0].interface.values.both", "nope"),
        ({**PACKED, "returns": [0, 1]}, "implementations[0].interface.returns", "expected an index"),
        ({**PACKED, "constants": {"scale": [1]}}, "implementations[0].interface.constants.scale", "got list"),
        ({**PACKED, "args": ["both", "hidden"], "kwargs": {"scale": "hidden"}}, "implementations[0].interface.constants.scale",
         "also in 'kwargs'"),
    ],
)
def test_a_bad_implementation_interface_is_one_clear_error(tmp_path: Path, interface: dict, key: str, says: str) -> None:
    error = load_error(_spec(tmp_path, interface))
    assert key in str(error) and says in str(error), str(error)
