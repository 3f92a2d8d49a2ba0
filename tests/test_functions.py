"""conformance.functions: an expression function added from outside the package is one record.

The example is the one in docs/spec-schema.md ("Extending: expression functions and reference
oracles"), read from the doc and written to a temporary directory: ``smoothmax`` (log Σ exp) registered with
``FUNCTIONS.register`` (or an entry point) parses, evaluates in NumPy, torch and SymPy, has
gradients and an error bound, and a spec using it checks a right implementation and fails a wrong
one, with a reference oracle given as a ref beside the spec.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import sympy
import torch
from hypothesis import settings

from conformance import registry
from conformance.checks import CheckFailure
from conformance.error_bounds import AbsBoundBackend
from conformance.evaluate import NumpyBackend, SymbolicBackend, TorchBackend, evaluate
from conformance.expr import ExprError, F, parse
from conformance.functions import BUILTIN, ExprFunction, LazyCallable
from conformance.registry import FUNCTIONS, RegistryError
from conformance.runner import run_case
from conformance.selection import build_cases
from conformance.spec import load_specs
from tests.spec_helpers import REPO_ROOT

DOC = REPO_ROOT / "docs" / "spec-schema.md"
SECTION = "## Extending: expression functions and reference oracles"
FAST = settings(max_examples=10, derandomize=True, deadline=None, database=None)
F64 = torch.float64
X = np.array([[0.5, -1.25, 2.0], [3.0, 3.0, -0.75]])


def doc_example(name: str) -> str:
    """The fenced code block of the doc's extension section whose first line is ``# name``."""
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    for block in re.findall(r"```\w+\n(.*?)```", section, flags=re.S):
        if block.startswith(f"# {name}\n"):
            return block
    raise AssertionError(f"{DOC}: no example '# {name}' in section {SECTION!r}")


@pytest.fixture
def my_functions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The doc's ``my_functions.py``, written to tmp_path and importable as ``my_functions``."""
    (tmp_path / "my_functions.py").write_text(doc_example("my_functions.py"))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_functions", None)
    yield importlib.import_module("my_functions")
    sys.modules.pop("my_functions", None)


@pytest.fixture
def logsumexp(my_functions: ModuleType) -> Iterator[ExprFunction]:
    """``smoothmax`` registered for one test, unregistered after."""
    record = FUNCTIONS.register(my_functions.SMOOTHMAX)
    yield record
    FUNCTIONS.unregister(record.name)
    assert "smoothmax" not in FUNCTIONS


def _reference_logsumexp(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.log(np.sum(np.exp(x), axis=axis))


# -- (a) one record: parsed, evaluated by every backend, differentiated, bounded ----------------------
def test_an_unregistered_function_is_refused_and_a_registered_one_parses(my_functions: ModuleType) -> None:
    with pytest.raises(ExprError, match="function 'smoothmax' is not allowed"):
        parse("smoothmax(x, -1)")
    FUNCTIONS.register(my_functions.SMOOTHMAX)
    try:
        x = sympy.Symbol("x")
        assert parse("smoothmax(x, -1, keepdim=True)") == F["smoothmax"](x, -1, sympy.true)
        assert parse("smoothmax(x, -1)") == F["smoothmax"](x, -1, sympy.false)
    finally:
        FUNCTIONS.unregister("smoothmax")
    with pytest.raises(ExprError, match="function 'smoothmax' is not allowed"):
        parse("smoothmax(x, -1)")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("smoothmax(x)", "smoothmax() takes 2 argument(s), got 1"),
        ("smoothmax(x, y)", "argument 2 of smoothmax() must be an integer constant"),
        ("smoothmax(x, -1, keepdim=y)", "keepdim of smoothmax() must be True or False"),
        ("smoothmax(x, -1, axis=0)", "keyword 'axis' is not allowed in smoothmax()"),
        ("smoothmax + x", "name 'smoothmax' is a function and must be called"),
    ],
)
def test_a_registered_function_has_its_arity_checked(logsumexp: ExprFunction, text: str, message: str) -> None:
    with pytest.raises(ExprError) as info:
        parse(text)
    assert message in str(info.value)


@pytest.mark.parametrize("text", ["smoothmax(x, -1)", "smoothmax(x, 0, keepdim=True)", "x - smoothmax(x, -1, keepdim=True)"])
def test_numpy_torch_and_symbolic_values_agree(logsumexp: ExprFunction, text: str) -> None:
    expr = parse(text)
    numpy_value = evaluate(expr, {"x": X}, NumpyBackend())
    torch_value = evaluate(expr, {"x": torch.from_numpy(X)}, TorchBackend(F64)).numpy()
    exact = np.vectorize(lambda v: sympy.Rational(int(v * 8), 8), otypes=[object])(X)
    symbolic_value = np.vectorize(lambda e: float(sympy.N(e, 30)), otypes=[np.float64])(
        np.asarray(evaluate(expr, {"x": exact}, SymbolicBackend()), dtype=object)
    )
    np.testing.assert_allclose(torch_value, numpy_value, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(symbolic_value, numpy_value, rtol=1e-14, atol=1e-14)
    if text == "smoothmax(x, -1)":
        np.testing.assert_allclose(numpy_value, _reference_logsumexp(X), rtol=1e-14)


def test_the_torch_backend_gives_gradients_and_abs_bound_backend_a_bound(logsumexp: ExprFunction) -> None:
    x = torch.from_numpy(X).requires_grad_(True)
    cot = torch.tensor([1.0, -2.0], dtype=F64)
    (grad,) = torch.autograd.grad(evaluate(parse("smoothmax(x, -1)"), {"x": x}, TorchBackend(F64)), x, cot)
    torch.testing.assert_close(grad, torch.softmax(x.detach(), -1) * cot[:, None])  # d logsumexp / dx = softmax(x)
    (bound,) = torch.autograd.grad(evaluate(parse("smoothmax(x, -1)"), {"x": x}, AbsBoundBackend(F64)), x, cot.abs())
    torch.testing.assert_close(bound, grad.abs())  # no cancellation inside: the bound is |gradient|


def test_abs_bound_backend_uses_a_records_abs_backward() -> None:
    def poly(b, x):  # noqa: ANN001, ANN202 - x² − 2x, whose terms cancel in the derivative at x = 1
        return x**2 - 2 * x

    def poly_terms(b, x):  # noqa: ANN001, ANN202 - the same through the backend's |partial| operators
        return b.add(b.power(x, b.const(2.0)), b.mul(b.const(-2.0), x))

    record = FUNCTIONS.register(ExprFunction("poly", numpy=poly, torch=poly, abs_backward=poly_terms))
    try:
        x = torch.tensor([1.0], dtype=F64, requires_grad=True)
        one = torch.ones(1, dtype=F64)
        (grad,) = torch.autograd.grad(evaluate(parse("poly(x)"), {"x": x}, TorchBackend(F64)), x, one)
        (bound,) = torch.autograd.grad(evaluate(parse("poly(x)"), {"x": x}, AbsBoundBackend(F64)), x, one)
        assert grad.tolist() == [0.0] and bound.tolist() == [4.0]  # 2x − 2 = 0; |2x| + |−2| = 4
        with pytest.raises(ExprError, match="'poly' has no symbolic form"):
            evaluate(parse("poly(x)"), {"x": np.ones(1, dtype=object)}, SymbolicBackend())
    finally:
        FUNCTIONS.unregister(record.name)


def test_an_elementwise_function_of_sympy_is_built_by_sympy_and_evaluated_by_its_record() -> None:
    record = ExprFunction(
        "sinh",
        numpy=lambda b, x: np.sinh(x),
        torch=lambda b, x: torch.sinh(x),
        symbolic=lambda b, x: np.vectorize(sympy.sinh, otypes=[object])(x),
        sympy_function=sympy.sinh,
    )
    FUNCTIONS.register(record)
    try:
        assert parse("sinh(x)") == sympy.sinh(sympy.Symbol("x"))
        assert parse("sinh(0)") == 0  # SymPy's own: it may simplify
        with pytest.raises(ExprError, match="sinh\\(\\) needs a number or tensor"):
            parse("sinh(x < 1)")
        np.testing.assert_allclose(evaluate(parse("sinh(x)"), {"x": X}, NumpyBackend()), np.sinh(X))
        t = torch.from_numpy(X)
        torch.testing.assert_close(evaluate(parse("sinh(x)"), {"x": t}, TorchBackend(F64)), torch.sinh(t))
    finally:
        FUNCTIONS.unregister("sinh")


# -- names: refused by the record or the registry, with a clear message -------------------------------
def _plain(b, x):  # noqa: ANN001, ANN202
    return x


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "pi"}, "'pi': the name is a constant of the expression language"),
        ({"name": "inf"}, "'inf': the name is a constant"),
        ({"name": "True"}, "'True': the name is a constant"),
        ({"name": "lambda"}, "'lambda': a Python keyword"),
        ({"name": "_hidden"}, "a name is a letter, then letters, digits and '_'"),
        ({"name": "2x"}, "a name is a letter"),
        ({"name": "f", "torch": None}, "'torch' must be a callable"),
        ({"name": "f", "min_args": 2, "max_args": 1}, "expected 0 <= min_args <= max_args"),
        ({"name": "f", "int_args": (1,)}, "int_args must be indices of required (or defaulted) arguments"),
        ({"name": "f", "max_args": 2, "defaults": (1, 2)}, "defaults must be one integer per optional argument (1)"),
        ({"name": "f", "sympy_function": sympy.sinh, "keepdim": True}, "takes exactly one argument"),
    ],
)
def test_a_bad_record_is_refused_when_built(fields: dict, message: str) -> None:
    with pytest.raises(RegistryError) as info:
        ExprFunction(**{"numpy": _plain, "torch": _plain, **fields})
    assert message in str(info.value)


def test_a_name_taken_by_a_builtin_or_an_operator_is_refused_by_the_registry() -> None:
    for name in ("softmax", "matmul", "logical_not"):  # matmul, logical_not: what @ and ~ build
        with pytest.raises(RegistryError, match=f"expression function '{name}' .* is already registered"):
            FUNCTIONS.register(ExprFunction(name, numpy=_plain, torch=_plain))
    with pytest.raises(RegistryError, match="expected a ExprFunction, got function"):
        FUNCTIONS.register(_plain)  # type: ignore[arg-type]


# -- builtins, and no torch where none is needed ------------------------------------------------------
def test_every_builtin_is_registered_and_names_callables() -> None:
    assert {f.name for f in BUILTIN} <= set(FUNCTIONS)
    for record in BUILTIN:
        for slot in ("torch", "abs_backward"):
            fn = getattr(record, slot)
            if isinstance(fn, LazyCallable):
                assert callable(fn.resolve()), f"{record.name}.{slot}: {fn.ref}[{fn.key}]"
        assert record.symbolic is not None, f"builtin {record.name} has a symbolic form"


def test_the_numpy_and_symbolic_parts_import_no_torch() -> None:
    code = (
        "import sys\n"
        "import numpy as np\n"
        "import conformance.functions, conformance.expr, conformance.evaluate, conformance.references\n"
        "from conformance.evaluate import NumpyBackend, SymbolicBackend, evaluate\n"
        "from conformance.expr import parse\n"
        "evaluate(parse('softmax(abs(x) @ transpose(x), -1)'), {'x': np.ones((2, 2))}, NumpyBackend())\n"
        "evaluate(parse('sum(exp(x), -1)'), {'x': np.ones(2, dtype=object)}, SymbolicBackend())\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


# -- (c) an entry point in the group conformance.functions ----------------------------------------------
def test_an_entry_point_registers_the_function(my_functions: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = metadata.EntryPoint("smoothmax", "my_functions:SMOOTHMAX", "conformance.functions")

    def entry_points(*, group: str) -> list[metadata.EntryPoint]:
        return [entry] if group == "conformance.functions" else []

    monkeypatch.setattr(registry.metadata, "entry_points", entry_points)
    monkeypatch.setattr(FUNCTIONS, "_records", {})  # as if nothing were loaded yet: builtins, then entry points
    monkeypatch.setattr(FUNCTIONS, "_loaded", False)
    assert FUNCTIONS["smoothmax"] is my_functions.SMOOTHMAX
    assert "softmax" in FUNCTIONS  # the builtins still load first
    value = evaluate(parse("smoothmax(x, -1)"), {"x": X}, NumpyBackend())
    np.testing.assert_allclose(value, _reference_logsumexp(X), rtol=1e-14)


def test_a_broken_entry_point_names_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = metadata.EntryPoint("broken", "no_such_module_here:RECORD", "conformance.functions")
    monkeypatch.setattr(registry.metadata, "entry_points", lambda *, group: [entry] if group == "conformance.functions" else [])
    monkeypatch.setattr(FUNCTIONS, "_records", {})
    monkeypatch.setattr(FUNCTIONS, "_loaded", False)
    with pytest.raises(RegistryError, match="entry point 'broken' \\(no_such_module_here:RECORD\\) failed to load"):
        FUNCTIONS.get("softmax")


# -- end to end: a spec in tmp_path using the function, checked through build_cases and run_case ---------
def _write_example(directory: Path, *, reference: str = "my_refs.py:logsumexp") -> Path:
    """The doc's spec, reference and an implementation file (one right function, one wrong) in ``directory``."""
    (directory / "my_refs.py").write_text(doc_example("my_refs.py"))
    (directory / "wrong_refs.py").write_text(
        "import numpy as np\n\n\n"
        "def logsumexp(x, **_):\n    return np.logaddexp.reduce(x, axis=-1) - np.log(x.shape[-1])  # a mean, not a sum\n"
    )
    (directory / "my_impl.py").write_text(
        "import math\n\nimport torch\n\n\n"
        "def logsumexp(x):\n    return torch.logsumexp(x, dim=-1)\n\n\n"
        "def logmeanexp(x):\n    return torch.logsumexp(x, dim=-1) - math.log(x.shape[-1])  # wrong: a mean, not a sum\n"
    )
    spec_file = directory / "logsumexp.yaml"
    spec_file.write_text(doc_example("logsumexp.yaml").replace("my_refs.py:logsumexp", reference))
    return spec_file


def _cases(spec_file: Path, implementation: str | None = None) -> dict[tuple[str, str, str], object]:
    specs = load_specs([spec_file], default=False)
    overrides = {"logsumexp_pool": [implementation]} if implementation else {}
    return {(c.implementation, c.dtype, c.check): c for c in build_cases(specs, overrides) if c.device == "cpu"}


def test_a_spec_using_the_function_passes_a_right_implementation_and_fails_a_wrong_one(
    logsumexp: ExprFunction, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # an --impl override's file is found from the working directory
    cases = _cases(_write_example(tmp_path))
    for dtype in ("float64", "float32"):
        for check in ("oracle", "gradient"):
            right: list[dict] = []
            run_case(cases[("my_impl.py:logsumexp", dtype, check)], right.append, FAST)  # type: ignore[arg-type]
            assert right[0]["examples"] > 0 and right[0]["max_abs_err"] <= right[0]["tolerance"]
    wrong = _cases(tmp_path / "logsumexp.yaml", "my_impl.py:logmeanexp")
    rows: list[dict] = []
    with pytest.raises(CheckFailure, match="oracle failed"):
        run_case(wrong[("my_impl.py:logmeanexp", "float64", "oracle")], rows.append, FAST)  # type: ignore[arg-type]
    assert rows[0]["falsifying_example"]["sizes"]["D"] >= 2  # a mean is the sum only over one feature


def test_a_reference_ref_beside_the_spec_passes_oracle_agreement_when_right_and_fails_when_wrong(
    logsumexp: ExprFunction, tmp_path: Path
) -> None:
    rows: list[dict] = []
    right = _cases(_write_example(tmp_path))
    run_case(right[("reference:my_refs.py:logsumexp", "float64", "oracle_agreement")], rows.append, FAST)  # type: ignore[arg-type]
    assert rows[0]["examples"] > 0 and rows[0]["max_abs_err"] <= rows[0]["tolerance"]
    (tmp_path / "wrong").mkdir()
    wrong = _cases(_write_example(tmp_path / "wrong", reference="wrong_refs.py:logsumexp"))
    with pytest.raises(CheckFailure, match="oracle_agreement failed"):
        run_case(wrong[("reference:wrong_refs.py:logsumexp", "float64", "oracle_agreement")], rows.append, FAST)  # type: ignore[arg-type]
    assert rows[1]["falsifying_example"]["sizes"]["D"] >= 2


@pytest.mark.parametrize(("name", "dtype"), [("to_bfloat16", torch.bfloat16), ("to_float16", torch.float16)])
def test_rounding_to_a_narrow_format_is_the_formats_own_rounding(name: str, dtype: torch.dtype) -> None:
    """``to_bfloat16`` / ``to_float16`` (a reading of a value held in that format): torch's cast of every float32
    value, subnormals and ties included, in both backends; a float64 is rounded once, not via float32."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(20000) * np.exp(rng.uniform(-30, 10, 20000))).astype(np.float32).astype(np.float64)
    x = np.concatenate([x, [0.0, -0.0, 1 + 2.0**-8, 1 + 3 * 2.0**-8, 2.0**-130, 6e-8]])  # ties to even, subnormals
    x = x[np.abs(x) < 6e4]  # overflow is not modelled
    expected = torch.tensor(x).float().to(dtype).double().numpy()
    expr = parse(f"{name}(x)")
    assert np.array_equal(evaluate(expr, {"x": x}, NumpyBackend()), expected)
    torch_out = evaluate(expr, {"x": torch.tensor(x)}, TorchBackend("float64", "cpu"))
    assert np.array_equal(torch_out.numpy(), expected)
    once = 1 + 2.0**-8 + 2.0**-30  # just above a bfloat16 tie: float32 on the way would round it to the tie, then down
    if dtype == torch.bfloat16:
        assert float(evaluate(expr, {"x": np.array([once])}, NumpyBackend())[0]) == 1 + 2.0**-7
