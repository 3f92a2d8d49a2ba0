"""The ``gradient`` check through a reference oracle (``conformance/reference_gradient.py``): the rounding model
rounds both passes; the Titans references differentiated with ``xp=torch`` agree with finite differences of
themselves and with their NumPy selves; planted memory implementations whose gradient is wrong at one low
precision only are caught there, and the shipped one passes; a NumPy-only reference's rows are skipped, saying why.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch

from conformance import engine
from conformance.reference_gradient import Rounding
from conformance.results import Result

REPO_ROOT = Path(__file__).resolve().parents[1]
PLANTED = "tests/grad_audit/planted.py"


def _titans_reference():
    spec = importlib.util.spec_from_file_location("titans_reference_xp", REPO_ROOT / "specs" / "titans_reference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


R = _titans_reference()


# -- the rounding model --------------------------------------------------------------------------
def test_rounding_rounds_the_forward_value_and_the_backward_adjoint() -> None:
    x = torch.tensor([1.0 + 2.0**-12], dtype=torch.float64, requires_grad=True)  # between two float16 neighbours
    y = Rounding("float16")(x)
    assert y.item() == 1.0
    (g,) = torch.autograd.grad(3.0 * y, x, torch.tensor([1.0 + 2.0**-12], dtype=torch.float64))
    assert g.item() == 3.0  # the adjoint 3 (1 + 2^-12) rounded to float16 on its way back through the rounding


def test_later_draws_round_faithfully_and_differ_from_round_to_nearest() -> None:
    x = torch.linspace(1.0, 2.0, 1001, dtype=torch.float64)
    nearest, moved = Rounding("bfloat16", 0)(x), Rounding("bfloat16", 2)(x)
    eps = 2.0**-7  # bfloat16's: its spacing in [1, 2)
    assert torch.all((moved - x).abs() <= eps * x) and torch.all((nearest - x).abs() <= eps / 2 * x)
    assert not torch.equal(moved, nearest)
    assert torch.equal(moved, Rounding("bfloat16", 2)(x)), "a draw is reproducible"


# -- the Titans references with xp=torch --------------------------------------------------------------
def _memory_inputs(rng: np.random.Generator, B: int = 1, T: int = 3, Dk: int = 2, Dv: int = 2) -> dict[str, np.ndarray]:
    u = lambda *shape: rng.uniform(0.1, 0.9, shape)  # noqa: E731
    return {"k": u(B, T, Dk), "v": u(B, T, Dv), "q": u(B, T, Dk), "theta": 0.25 * u(B, T), "alpha": u(B, T),
            "eta": u(B, T), "W": u(B, Dk, Dv), "S": u(B, Dk, Dv), "A": u(B, Dk, Dv)}


def _cases() -> list[tuple[str, dict[str, np.ndarray], dict[str, object]]]:
    rng = np.random.default_rng(11)
    m = _memory_inputs(rng)
    mlp = {**{n: m[n] for n in ("k", "v", "q", "theta", "alpha", "eta")}, "W1": rng.normal(size=(1, 2, 3)),
           "W2": rng.normal(size=(1, 3, 2)), "S1": rng.normal(size=(1, 2, 3)), "S2": rng.normal(size=(1, 3, 2)),
           "A1": rng.normal(size=(1, 2, 3)), "A2": rng.normal(size=(1, 3, 2))}
    gates = {**{n: m[n] for n in ("v", "k", "q")}, "theta": m["theta"][:, :1], "alpha": m["alpha"][:, :1],
             "eta": m["eta"][:, :1], "W": m["W"], "S": m["S"]}
    gates = {n: (a[:, :2] if n in ("k", "v", "q") else a) for n, a in gates.items()}
    nm = {"x": rng.normal(size=(1, 3, 4)), "Wk": rng.normal(size=(4, 4)), "Wv": rng.normal(size=(4, 4)),
          "Wq": rng.normal(size=(4, 4)), "Wo": rng.normal(size=(4, 4)), "M0": rng.normal(size=(2, 2, 2)),
          "theta": m["theta"], "alpha": m["alpha"], "eta": m["eta"]}
    return [
        ("memory_linear", m, {"start": 1, "chunk_size": 2}),
        ("memory_mlp", mlp, {"start": 0, "chunk_size": 2, "retrieve": "after", "loss": "mean"}),
        ("memory_linear_chunk_gates", gates, {"C": 2}),
        ("chunk_gradient_sum", {n: m[n] for n in ("k", "v", "W", "theta", "alpha")}, {}),
        ("momentum_scan", {"eta": m["eta"], "theta": m["theta"], "u": rng.normal(size=(1, 3, 2, 2)), "S": m["S"]}, {}),
        ("neural_memory", nm, {"H": 2, "C": 2, "qk_norm": True}),
    ]


@pytest.mark.parametrize(("name", "arrays", "scalars"), _cases(), ids=[c[0] for c in _cases()])
def test_a_titans_reference_differentiated_through_torch_agrees_with_its_finite_differences_and_its_numpy_self(
    name: str, arrays: dict[str, np.ndarray], scalars: dict[str, object]
) -> None:
    fn = getattr(R, name)
    names = list(arrays)
    leaves = [torch.tensor(arrays[n], dtype=torch.float64, requires_grad=True) for n in names]

    def f(*xs: torch.Tensor):
        return fn(**dict(zip(names, xs)), **scalars, xp=torch)

    assert torch.autograd.gradcheck(f, tuple(leaves), fast_mode=True)
    as_torch = f(*leaves)
    as_numpy = fn(**arrays, **scalars)
    several = isinstance(as_numpy, tuple)
    for t, a in zip(as_torch if several else (as_torch,), as_numpy if several else (as_numpy,)):
        np.testing.assert_allclose(t.detach().numpy(), a, rtol=1e-14, atol=1e-15)


# -- the check: planted defects caught at the dtype they break, the shipped implementation passing ---------------
@cache
def _gradient_rows(impl: str | None = None) -> tuple[Result, ...]:
    plan = engine.Plan(impl=(f"memory_linear={impl}",) if impl else (), select=("memory_linear-", "-cpu-", "-gradient"),
                       profile="conformance-ci")
    return tuple(r for r in engine.run(plan) if r.spec == "memory_linear" and r.check == "gradient")


def test_the_shipped_memory_passes_the_gradient_check_at_every_dtype() -> None:
    rows = _gradient_rows()
    assert {r.dtype for r in rows} == {"float64", "float32", "bfloat16", "float16"}
    bad = [(r.implementation, r.dtype, r.outcome, r.detail) for r in rows if r.outcome != "passed" or not r.examples]
    assert not bad, bad


@pytest.mark.parametrize(
    ("defect", "failing", "fragment"),
    [
        ("memory_linear_w_grad_overflows", {"float16"}, "∂/∂W"),
        ("memory_linear_k_grad_in_bfloat16", {"float64", "float32"}, "∂/∂k"),
    ],
)
def test_a_memory_gradient_wrong_at_low_precision_only_fails_there(defect: str, failing: set[str], fragment: str) -> None:
    rows = {r.dtype: r for r in _gradient_rows(f"{PLANTED}:{defect}")}
    assert {d for d, r in rows.items() if r.outcome == "failed"} == failing, {d: (r.outcome, r.detail) for d, r in rows.items()}
    assert all(fragment in (rows[d].detail or "") for d in failing), {d: rows[d].detail for d in failing}
    assert {d for d, r in rows.items() if r.outcome == "passed"} == set(rows) - failing


# -- a NumPy-only reference ----------------------------------------------------------------------
SPEC = """\
schema: 1
paper: {title: A Test Paper, authors: [A. Author], arxiv: "2501.00663", year: 2024}
specs:
  - id: numpy_only
    title: Squared distance per row, its oracle a NumPy function
    equation: "1"
    statement: '\\ell = \\lVert h - m \\rVert_2^2'
    symbols: {B: {min: 1, max: 2}, D: {min: 1, max: 4}}
    inputs: {hidden: {shape: [B, D]}, memory_pred: {shape: [B, D]}}
    outputs: {loss: {shape: [B]}}
    interface: {kind: function, args: [hidden, memory_pred]}
    oracle: {reference: "refs.py:squared_distance"}
    gradients: {wrt: [hidden, memory_pred]}
    implementations: [{ref: implementations.surprise:compute_surprise}]
"""


def test_a_numpy_only_reference_has_its_gradient_rows_skipped_saying_why(tmp_path: Path) -> None:
    (tmp_path / "refs.py").write_text(
        "def squared_distance(hidden, memory_pred, **_):\n    return ((hidden - memory_pred) ** 2).sum(-1)\n"
    )
    (tmp_path / "numpy_only.yaml").write_text(SPEC)
    plan = engine.Plan(spec_dirs=(str(tmp_path),), select=("numpy_only-", "-cpu-"), profile="conformance-dev")
    rows = [r for r in engine.run(plan) if r.spec == "numpy_only"]
    gradient = [r for r in rows if r.check == "gradient"]
    assert gradient and all(r.outcome == "skipped" for r in gradient)
    assert all("'refs.py:squared_distance' takes no 'xp'" in (r.message or r.detail or "") for r in gradient), gradient[0]
    others = [r for r in rows if r.check != "gradient"]
    assert others and all(r.outcome == "passed" for r in others), [(r.check, r.dtype, r.outcome) for r in others]
