"""Index inputs (``dtype: index, range: C``): loader errors, drawn values, int64 at every dtype, end to end."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import settings

from conformance import dtype_helpers as dh
from conformance import engine
from conformance.selection import Case
from conformance.spec import load_specs
from conformance.strategies import Example, materialize
from tests.spec_helpers import load_error, write_spec

FAST = settings(max_examples=5, derandomize=True, deadline=None, database=None)
SPEC = ("specs", 0)

CORRECT = """
import torch
import torch.nn.functional as F


def lsce(logits, target, eps):
    # the index arrives as int64 at every tested dtype, never cast to the float dtype
    assert target.dtype == torch.int64 and logits.dtype.is_floating_point, (target.dtype, logits.dtype)
    return F.cross_entropy(logits, target, label_smoothing=eps, reduction="none")


def over_wrong_classes(logits, target, eps):
    c = logits.shape[1]
    q = F.one_hot(target, c).to(logits.dtype)
    q = (1 - eps) * q + eps / (c - 1) * (1 - q)
    return -(q * F.log_softmax(logits, dim=1)).sum(dim=1)
"""


def lsce_spec() -> dict[str, Any]:
    """Label-smoothed cross-entropy with an index target; a permutation of the batch moves logits and target."""
    return {
        "schema": 1,
        "paper": {"title": "Rethinking Inception", "authors": ["C. Szegedy"], "arxiv": "1512.00567", "year": 2016},
        "specs": [
            {
                "id": "lsce",
                "title": "Label-smoothed cross-entropy",
                "equation": "7",
                "statement": "s",
                "symbols": {"N": {"min": 1, "max": 6}, "C": {"min": 2, "max": 7}},
                "params": {"eps": {"values": [0.0, 0.1]}},
                "inputs": {
                    "logits": {"shape": ["N", "C"], "magnitude": [1.0e-2, 1.0e1]},
                    "target": {"shape": ["N"], "dtype": "index", "range": "C"},
                },
                "outputs": {"loss": {"shape": ["N"]}},
                "interface": {"kind": "function", "args": ["logits", "target", "eps"]},
                "oracle": {"expr": "-sum(((1 - eps) * one_hot(target, C) + eps / C) * log_softmax(logits, 1), 1)"},
                "invariants": [
                    {
                        "id": "batch_order",
                        "kind": "permutation",
                        "description": "permuting the examples permutes the losses",
                        "permute": {"logits": 0, "target": 0},
                        "output_axis": 0,
                    },
                    {
                        "id": "picked_by_gather",
                        "kind": "identity",
                        "description": "at eps = 0 the loss is -log p[target] (gather takes the index too)",
                        "set": {"eps": "0"},
                        "lhs": "loss",
                        "rhs": "-reshape(gather(log_softmax(logits, 1), reshape(target, N, 1), 1), N)",
                    },
                ],
                "gradients": {"wrt": ["logits"]},
                "implementations": [{"ref": "impl.py:lsce"}],
            }
        ],
    }


def _set(data: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    target = data["specs"][0]["inputs"]["target"]
    if value is None:
        del target[key]
    else:
        target[key] = value
    return data


@pytest.mark.parametrize(
    ("key", "value", "path", "words"),
    [
        ("range", None, "inputs.target", ("missing required key 'range'",)),
        ("range", 0, "inputs.target.range", ("expected a positive integer",)),
        ("range", 2.5, "inputs.target.range", ("expected a positive integer",)),
        ("range", True, "inputs.target.range", ("expected a positive integer",)),
        ("range", "eps", "inputs.target.range", ("expression over symbols",)),
        ("range", "K", "inputs.target.range", ("declared symbol (N, C",)),
        ("magnitude", [1.0, 2.0], "inputs.target.magnitude", ("does not apply to an index input",)),
        ("magnitude_by_dtype", {"float16": [1.0, 2.0]}, "inputs.target.magnitude_by_dtype", ("does not apply",)),
        ("optional", True, "inputs.target.optional", ("does not apply to an index input",)),
        ("derive", "C - 1", "inputs.target.derive", ("does not apply to an index input",)),
    ],
)
def test_bad_index_inputs_are_refused_at_their_key(
    tmp_path: Path, key: str, value: Any, path: str, words: tuple[str, ...]
) -> None:
    file = write_spec(tmp_path, _set(lsce_spec(), key, value))
    exc = load_error(file)
    assert exc.file == str(file) and exc.path == f"specs[0].{path}", str(exc)
    assert all(w in exc.detail for w in words), exc.detail


def test_range_on_a_real_input_is_refused(tmp_path: Path) -> None:
    data = lsce_spec()
    data["specs"][0]["inputs"]["logits"]["range"] = "C"
    exc = load_error(write_spec(tmp_path, data))
    assert exc.path == "specs[0].inputs.logits.range" and "index inputs only" in exc.detail


def test_a_range_expression_must_be_positive_at_every_allowed_size(tmp_path: Path) -> None:
    exc = load_error(write_spec(tmp_path, _set(lsce_spec(), "range", "C - 2")))
    assert exc.path == "specs[0].inputs.target.range" and "expected a positive integer" in exc.detail, str(exc)


def test_gradients_refuse_an_index_input(tmp_path: Path) -> None:
    data = lsce_spec()
    data["specs"][0]["gradients"] = {"wrt": ["logits", "target"]}
    exc = load_error(write_spec(tmp_path, data))
    assert exc.path == "specs[0].gradients.wrt[1]" and "index input" in exc.detail and "no gradient" in exc.detail, str(exc)


def test_causality_refuses_to_perturb_an_index_input(tmp_path: Path) -> None:
    data = lsce_spec()
    data["specs"][0]["invariants"] = [
        {"id": "c", "kind": "causality", "description": "d", "perturb": {"target": 0}, "output_axis": 0}
    ]
    exc = load_error(write_spec(tmp_path, data))
    assert "perturb" in exc.path and "index input" in exc.detail, str(exc)


def _loaded(tmp_path: Path) -> Any:
    (tmp_path / "impl.py").write_text(textwrap.dedent(CORRECT))
    return load_specs([write_spec(tmp_path, lsce_spec())], default=False)["lsce"]


def test_materialize_draws_integers_in_range_from_the_seed(tmp_path: Path) -> None:
    spec = _loaded(tmp_path)
    seen: set[int] = set()
    for seed in range(40):
        example = Example({"N": 6, "C": 3}, {"eps": 0.1}, {"logits": 1.0}, {}, seed)
        env = materialize(spec, example)
        target = env["target"]
        assert target.dtype == np.int64 and target.shape == (6,)
        assert target.min() >= 0 and target.max() <= 2
        assert np.array_equal(target, materialize(spec, example)["target"])  # the seed determines the values
        seen |= set(target.tolist())
    assert seen == {0, 1, 2}  # every value of the range is drawn


@pytest.mark.parametrize("dtype", dh.DTYPES)
def test_index_values_pass_unrounded_as_int64(dtype: str) -> None:
    values = np.array([0, 3, 2**40 + 1], dtype=np.int64)
    assert dh.round_to(values, dtype) is values
    tensor = dh.to_torch(values, dtype, "cpu")
    assert tensor.dtype == torch.int64 and tensor.tolist() == values.tolist()


@pytest.mark.parametrize("dtype", dh.DTYPES)
def test_a_spec_with_an_index_input_runs_end_to_end(tmp_path: Path, dtype: str) -> None:
    spec = _loaded(tmp_path)
    ref = "impl.py:lsce"
    checks = ["oracle", "output_contract", "gradient", "invariant:batch_order", "invariant:picked_by_gather"]
    for check in checks:
        result = engine.run_case(Case(spec, ref, "cpu", dtype, check), FAST)
        assert result.outcome == "passed", (check, dtype, result.message)


def test_a_wrong_implementation_with_an_index_input_fails_the_oracle(tmp_path: Path) -> None:
    spec = _loaded(tmp_path)
    ref = f"{tmp_path / 'impl.py'}:over_wrong_classes"
    spec = spec.with_implementations([ref])
    assert engine.run_case(Case(spec, ref, "cpu", "float64", "oracle"), FAST).outcome == "failed"
    assert engine.run_case(Case(spec, ref, "cpu", "float64", "invariant:batch_order"), FAST).outcome == "passed"
