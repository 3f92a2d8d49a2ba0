"""conformance.loader: a spec's meaning validated on load (shapes, constraints, memory), kinds from outside.

Every bad spec gives one SpecError naming the file and key path; nothing of it is executed.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conformance.loader import MAX_EXAMPLE_BYTES, MAX_SIZE_GRID, load_specs
from conformance.loader.meaning import example_bytes
from conformance.registry import INVARIANT_KINDS
from conformance.validation import SpecError
from tests.spec_helpers import REPO_ROOT, SHIPPED_SPEC_FILES, load_error, load_one, minimal_spec, with_key, write_spec

SPEC = ("specs", 0)


def assert_error(exc: SpecError, file: Path, path: str, *words: str) -> None:
    assert exc.file == str(file) and exc.path == path, str(exc)
    for word in words:
        assert word in exc.detail, f"{word!r} not in {exc.detail!r}"


def scores() -> dict:
    """A spec of attention scores, Q Kᵀ: (B, Lq, D) and (B, Lk, D) -> (B, Lq, Lk)."""
    data = minimal_spec()
    spec = data["specs"][0]
    spec["symbols"] = {name: {"min": 1, "max": 8} for name in ("B", "Lq", "Lk", "D")}
    spec["inputs"] = {"Q": {"shape": ["B", "Lq", "D"]}, "K": {"shape": ["B", "Lk", "D"]}}
    spec["outputs"] = {"s": {"shape": ["B", "Lq", "Lk"]}}
    spec["interface"] = {"kind": "function", "args": ["Q", "K"]}
    spec["oracle"] = {"expr": "Q @ transpose(K)"}
    return data


# -- the shipped specs -------------------------------------------------------------------------------
def test_shipped_specs_still_load() -> None:
    specs = load_specs()
    assert {Path(s.file).name for s in specs.values()} == {f.name for f in SHIPPED_SPEC_FILES}
    for spec in specs.values():
        assert example_bytes(spec)[0] <= MAX_EXAMPLE_BYTES


def test_loading_the_shipped_specs_imports_neither_torch_nor_an_implementation() -> None:
    code = (
        "import sys\n"
        "from conformance.spec import load_specs\n"
        "assert load_specs()\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'implementations'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"imported on load: {result.stdout.strip()} {result.stderr[-2000:]}"


# -- oracle shapes -----------------------------------------------------------------------------------
def test_the_right_equation_loads(tmp_path: Path) -> None:
    assert load_one(write_spec(tmp_path, scores())).oracle.expr is not None


def test_q_at_k_where_q_at_k_transposed_was_meant(tmp_path: Path) -> None:
    file = write_spec(tmp_path, with_key(scores(), (*SPEC, "oracle", "expr"), "Q @ K"))
    assert_error(load_error(file), file, "specs[0].oracle.expr", "cannot be evaluated at sizes", "matmul")


def test_an_expression_of_the_wrong_shape(tmp_path: Path) -> None:
    file = write_spec(tmp_path, with_key(scores(), (*SPEC, "outputs", "s", "shape"), ["B", "Lk", "Lq"]))
    exc = load_error(file)
    assert_error(exc, file, "specs[0].oracle.expr", "expression has shape (2, 3, 4)", "declared ['B', 'Lk', 'Lq'] = (2, 4, 3)")


def test_a_reduction_over_the_wrong_axis(tmp_path: Path) -> None:
    file = write_spec(tmp_path, with_key(minimal_spec(), (*SPEC, "oracle", "expr"), "sum((hidden - memory_pred)**2, 0)"))
    assert_error(load_error(file), file, "specs[0].oracle.expr", "has shape (3,)", "declared ['B'] = (2,)")


def test_each_output_of_several_is_checked(tmp_path: Path) -> None:
    data = minimal_spec()
    spec = data["specs"][0]
    spec["outputs"] = {"loss": {"shape": ["B"]}, "gap": {"shape": ["B"]}}
    spec["oracle"] = {"expr": {"loss": "sum((hidden - memory_pred)**2, -1)", "gap": "hidden - memory_pred"}}
    file = write_spec(tmp_path, data)
    assert_error(load_error(file), file, "specs[0].oracle.expr.gap", "has shape (2, 3)")


def test_a_let_that_cannot_be_evaluated(tmp_path: Path) -> None:
    data = with_key(minimal_spec(), (*SPEC, "oracle", "let"), {"bad": "hidden @ memory_pred"})
    file = write_spec(tmp_path, data)
    assert_error(load_error(file), file, "specs[0].oracle.let.bad", "cannot be evaluated")


def test_a_derived_input_of_the_wrong_shape(tmp_path: Path) -> None:
    data = minimal_spec()
    spec = data["specs"][0]
    spec["inputs"]["table"] = {"shape": ["D"], "derive": "arange(B)"}
    spec["interface"]["args"].append("table")
    file = write_spec(tmp_path, data)
    assert_error(load_error(file), file, "specs[0].inputs.table.derive", "does not broadcast to the declared shape")


# -- constraints ---------------------------------------------------------------------------------------
def test_constraints_no_size_satisfies(tmp_path: Path) -> None:
    file = write_spec(tmp_path, with_key(minimal_spec(), (*SPEC, "constraints"), ["D % 2 == 0", "D < 2"]))
    exc = load_error(file)
    assert_error(exc, file, "specs[0].constraints", "no sizes within the symbols' ranges satisfy", "'D % 2 == 0', 'D < 2'")
    assert "searched all 24" in exc.detail


def test_a_grid_too_large_to_search_fully_is_said_so(tmp_path: Path) -> None:
    data = with_key(minimal_spec(), (*SPEC, "symbols"), {"B": {"min": 1, "max": 4096}, "D": {"min": 1, "max": 64}})
    data = with_key(data, (*SPEC, "symbols", "L"), {"min": 1, "max": 4096})
    data = with_key(data, (*SPEC, "constraints"), ["B > 4000"])
    file = write_spec(tmp_path, data)
    exc = load_error(file)
    assert_error(exc, file, "specs[0].constraints", "too many to search fully", f"at most {MAX_SIZE_GRID}", "1.07e+09")


def test_constraints_on_a_param_are_searched(tmp_path: Path) -> None:
    data = with_key(minimal_spec(), (*SPEC, "params"), {"k": {"values": [1, 3]}})
    data = with_key(data, (*SPEC, "constraints"), ["D % k == 0", "k > 1"])
    assert load_one(write_spec(tmp_path, data)).constraints


def test_the_shape_check_uses_sizes_the_constraints_allow(tmp_path: Path) -> None:
    data = with_key(minimal_spec(), (*SPEC, "inputs", "hidden", "shape"), ["B", "D // 2"])
    data = with_key(data, (*SPEC, "inputs", "memory_pred", "shape"), ["B", "D // 2"])
    data = with_key(data, (*SPEC, "constraints"), ["D >= 2"])
    assert load_one(write_spec(tmp_path, data))
    file = write_spec(tmp_path, with_key(data, (*SPEC, "constraints"), []), "no_constraint.yaml")
    assert_error(load_error(file), file, "specs[0].inputs.hidden.shape[1]", "floor(D/2) is 0 at sizes {'B': 1, 'D': 1}")


# -- memory budget -------------------------------------------------------------------------------------
def test_an_example_over_the_memory_budget_is_refused_with_the_figure(tmp_path: Path) -> None:
    data = with_key(minimal_spec(), (*SPEC, "symbols"), {"B": {"min": 1, "max": 4096}, "D": {"min": 1, "max": 4096}})
    file = write_spec(tmp_path, data)
    exc = load_error(file)
    assert_error(exc, file, "specs[0].symbols", "B=4096, D=4096", "256.0 MiB", "budget of 256.0 MiB (MAX_EXAMPLE_BYTES)")


# -- arXiv ids read as numbers ----------------------------------------------------------------------------
@pytest.mark.parametrize("arxiv", ["1706.03762", "2104.09860"])
def test_an_unquoted_arxiv_id_is_refused(tmp_path: Path, arxiv: str) -> None:
    text = yaml.safe_dump(minimal_spec(), sort_keys=False).replace("arxiv: '2501.00663'", f"arxiv: {arxiv}")
    assert f"arxiv: {arxiv}\n" in text
    file = write_spec(tmp_path, text)
    assert_error(load_error(file), file, "paper.arxiv", "YAML read the arXiv id as a number", "quote it")


def test_a_quoted_arxiv_id_keeps_its_trailing_zero(tmp_path: Path) -> None:
    spec = load_one(write_spec(tmp_path, with_key(minimal_spec(), ("paper", "arxiv"), "2104.09860")))
    assert spec.paper.arxiv == "2104.09860"


# -- kinds from outside the package ----------------------------------------------------------------------
KIND_MODULE = '''
from conformance.invariants import InvariantKind, Plan

CALLS = []


def validate(options, where, context):
    CALLS.append((dict(options), where.dotted, sorted(context.outputs)))
    if not isinstance(options["factor"], int):
        raise where.at("factor").error(f"expected an integer, got {options['factor']!r}")
    return {"factor": options["factor"]}


def plan(options, env, rng, out_name):
    return Plan(env, env, lambda a, b, *_: (a, b))


KIND = InvariantKind("outside_kind", frozenset({"factor"}), frozenset(), validate, plan)
'''


def test_an_invariant_kind_registered_from_outside_is_validated(tmp_path: Path) -> None:
    (tmp_path / "outside_kinds.py").write_text(KIND_MODULE)
    module_spec = importlib.util.spec_from_file_location("outside_kinds", tmp_path / "outside_kinds.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    INVARIANT_KINDS.register(module.KIND)
    try:
        invariant = {"id": "outside", "kind": "outside_kind", "description": "d", "factor": 2}
        spec = load_one(write_spec(tmp_path, with_key(minimal_spec(), (*SPEC, "invariants"), [invariant])))
        assert spec.invariants[0].kind == "outside_kind" and spec.invariants[0].options == {"factor": 2}
        assert module.CALLS == [({"factor": 2}, "specs[0].invariants[0]", ["loss"])]
        invariant["factor"] = "two"
        file = write_spec(tmp_path, with_key(minimal_spec(), (*SPEC, "invariants"), [invariant]), "bad.yaml")
        assert_error(load_error(file), file, "specs[0].invariants[0].factor", "expected an integer, got 'two'")
    finally:
        INVARIANT_KINDS.unregister("outside_kind")
    assert "outside_kind" not in INVARIANT_KINDS


def test_an_unknown_kind_lists_the_registered_ones(tmp_path: Path) -> None:
    invariant = {"id": "x", "kind": "telepathy", "description": "d"}
    file = write_spec(tmp_path, with_key(minimal_spec(), (*SPEC, "invariants"), [invariant]))
    assert_error(load_error(file), file, "specs[0].invariants[0].kind", "unknown invariant kind 'telepathy'", "bounds, causality")


def test_the_spec_index_is_recorded(tmp_path: Path) -> None:
    data = minimal_spec()
    data["specs"].append({**yaml.safe_load(yaml.safe_dump(data["specs"][0])), "id": "toy_two"})
    specs = load_specs([write_spec(tmp_path, data)], default=False)
    assert [specs["toy"].index, specs["toy_two"].index] == [0, 1]
