"""Tests for conformance.patterns.parameter_scaling: option validation, drawn trees, the comparisons, runs."""

from __future__ import annotations

import copy
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import Phase, given, settings
from torch import nn

from conformance.dtype_helpers import DTYPES, eps
from conformance.patterns import PatternContext, kinds
from conformance.patterns.parameter_scaling import validate
from conformance.patterns.runs.parameter_scaling import (
    Draw,
    Node,
    _as_module,
    _scaled,
    _untouched,
    measure,
    parameter_names,
    run,
    simpler,
    trees,
)
from conformance.spec import SpecError, load_specs
from tests.patterns.kind_helpers import validated
from tests.spec_helpers import load_error, write_spec

CORRECT = "implementations.initialization:init_residual_scaling"

_ENTRY: dict[str, Any] = {
    "id": "out",
    "kind": "parameter_scaling",
    "description": "output projections scaled",
    "params": {"n_layers": {"min": 1, "max": 8}},
    "call": {"args": ["n_layers"]},
    "select": ["W_o", "out_proj"],
    "factor": "1/sqrt(2*n_layers)",
    "names": ["W_q", "W_o", "attn", "out_proj"],
}


def _file(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema": 1,
        "paper": {"title": "A Paper", "authors": ["A. Author"], "url": "https://example.org/paper.pdf", "year": 2019},
        "specs": [
            {
                "id": "toy_scaling",
                "title": "Scaling",
                "equation": "none",
                "statement": "W",
                "implementations": [{"ref": CORRECT}],
                "patterns": [entry],
            }
        ],
    }


def _entry(**changes: Any) -> dict[str, Any]:
    entry = copy.deepcopy(_ENTRY)
    entry.update(changes)
    return entry


def _context(ref: str = CORRECT, dtype: str = "float32", examples: int = 10, **changes: Any) -> PatternContext:
    entry = _entry(**changes)
    options = validated(validate, {k: v for k, v in entry.items() if k not in ("id", "kind", "description")})
    spec = next(iter(load_specs([], default=True).values()))  # any spec: only its file's directory is used
    # no shrinking: failures come back faster
    quick = settings(max_examples=examples, derandomize=True, database=None, phases=[Phase.generate])
    return PatternContext(spec, ref, "cpu", dtype, options, quick)


def assert_error(exc: SpecError, file: Path, path: str, message: str) -> None:
    assert (exc.file, exc.path) == (str(file), path), str(exc)
    assert message in str(exc), str(exc)


# -- validation -----------------------------------------------------------------------------------------


def test_the_kind_is_discovered_and_a_valid_entry_loads(tmp_path: Path) -> None:
    assert "parameter_scaling" in kinds()
    (spec,) = load_specs([write_spec(tmp_path, _file(_entry()))], default=False).values()
    assert spec.patterns[0].check == "parameter_scaling:out"
    assert spec.patterns[0].options["depth"] == 3


BAD_ENTRIES = [
    ({"select": []}, "select", "non-empty list of name fragments"),
    ({"select": ["W_o", 3]}, "select", "non-empty list of name fragments"),
    ({"names": ["W_q", "attn"]}, "names", "names that contain one of"),
    ({"names": ["W_o", "out_proj"]}, "names", "names that contain one of"),
    ({"names": ["W_o", "W_o", "attn"]}, "names", "distinct attribute names"),
    ({"names": ["W_o", "training"]}, "names[1]", "that nn.Module does not use"),
    ({"names": ["W_o", "a.b"]}, "names[1]", "expected an attribute name"),
    ({"factor": "1/sqrt(2*depth)"}, "factor", "undeclared name(s) depth"),
    ({"factor": "sum(n_layers, 0)"}, "factor", "expected a scalar expression"),
    ({"call": {"args": ["layers"]}}, "call.args[0]", "'layers' is not declared"),
    ({"params": {"n_layers": {"min": 1}}}, "params.n_layers", "expected {min, max}"),
    ({"leaves": ["linear", "conv"]}, "leaves", "expected a non-empty list from linear"),
    ({"depth": 0}, "depth", "expected an integer 1..4"),
]


@pytest.mark.parametrize("changes, key, message", BAD_ENTRIES, ids=[f"{k}-{i}" for i, (_, k, _) in enumerate(BAD_ENTRIES)])
def test_bad_options_fail_on_load_naming_the_key(tmp_path: Path, changes: dict, key: str, message: str) -> None:
    file = write_spec(tmp_path, _file(_entry(**changes)))
    assert_error(load_error(file), file, f"specs[0].patterns[0].{key}", message)


# -- trees ----------------------------------------------------------------------------------------------


def test_a_tree_builds_the_modules_it_describes() -> None:
    leaf = Node("out_proj", "attention", 2)
    tree = Node(
        "root",
        "container",
        children=(
            Node("h", "module_list", children=(Node("W_o", "parameter", 2), Node("attn", "linear_no_bias", 3))),
            Node("attn", "container", children=(leaf, Node("W_q", "buffer", 1))),
        ),
    )
    module = tree.build()
    assert sorted(n for n, _ in module.named_parameters()) == [
        "attn.out_proj.in_proj_bias",
        "attn.out_proj.in_proj_weight",
        "attn.out_proj.out_proj.bias",
        "attn.out_proj.out_proj.weight",
        "h.0.W_o",  # a bare parameter in a ModuleList is wrapped under its name
        "h.1.weight",
    ]
    assert [n for n, _ in module.named_buffers()] == ["attn.W_q"]


@settings(max_examples=30, derandomize=True, deadline=None, database=None)
@given(tree=trees(("a", "b", "W_o"), ("linear", "parameter", "buffer"), 3))
def test_drawn_trees_build_with_unique_sibling_names(tree: Node) -> None:
    module = tree.build()
    assert isinstance(module, nn.Module)
    names = [n for n, _ in module.named_parameters()] + [n for n, _ in module.named_buffers()]
    assert len(names) == len(set(names))
    assert max(n.count(".") for n in names) <= 5  # 3 levels below the root, plus a list index and a leaf's own name


_ALL_LEAVES = ("linear", "linear_no_bias", "layer_norm", "rms_norm", "embedding", "attention", "parameter", "buffer")


@settings(max_examples=60, derandomize=True, deadline=None, database=None)
@given(tree=trees(("a", "b", "W_o"), _ALL_LEAVES, 3))
def test_parameter_names_are_the_built_modules_without_building(tree: Node) -> None:
    assert parameter_names(tree) == [n for n, _ in _as_module(tree).named_parameters()]


@settings(max_examples=30, derandomize=True, deadline=None, database=None)
@given(tree=trees(("a", "b", "W_o"), _ALL_LEAVES, 3))
def test_simpler_draws_are_smaller_mixed_trees_that_build(tree: Node) -> None:
    draw = Draw(tree, {"n_layers": 2}, 7)
    for candidate in simpler(draw, ("W_o",)):
        assert candidate.params == draw.params and candidate.seed == draw.seed and candidate.tree != tree
        names = parameter_names(candidate.tree)
        assert names == [n for n, _ in _as_module(candidate.tree).named_parameters()]
        assert {"W_o" in n for n in names} == {True, False}
        assert _size(candidate.tree) <= _size(tree)


def _size(node: Node) -> int:
    return node.width + sum(_size(c) + 1 for c in node.children)


def test_a_failing_run_reports_a_shrunk_example() -> None:
    ref = f"{Path(__file__).parents[1] / 'meta_tests' / 'defects' / 'residual_scaling_defects.py'}:sqrt_n_layers"
    drawn = run(_context(ref, examples=20))  # no shrink phase: the first failure as drawn
    ctx = _context(ref, examples=20)
    shrunk = run(replace(ctx, settings=settings(ctx.settings, phases=list(Phase))))
    assert not drawn.passed and not shrunk.passed
    assert drawn.examples < shrunk.examples <= drawn.examples + 20  # at most max_examples shrink judgements
    tree, drawn_tree = (m.detail.rsplit("tree=", 1)[1] for m in (shrunk, drawn))
    assert tree.count(":") < drawn_tree.count(":") and "[2]" not in tree and "[3]" not in tree and "[4]" not in tree


# -- comparisons ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_layers", [1, 3, 12, 96])
def test_in_place_scalings_pass_in_every_dtype(dtype: str, n_layers: int) -> None:
    before = torch.randn(64, 64, generator=torch.Generator().manual_seed(n_layers), dtype=torch.float64).to(getattr(torch, dtype))
    factor = 1 / math.sqrt(2 * n_layers)
    for after in (before * factor, before / math.sqrt(2 * n_layers), before * (2 * n_layers) ** -0.5):
        m = _scaled("W_o.weight", before, after, factor, "1/sqrt(2*n_layers)", dtype)
        assert m.passed, m.detail


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16"])
def test_a_factor_off_by_a_few_eps_fails(dtype: str) -> None:
    before = torch.randn(16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64).to(getattr(torch, dtype))
    factor = 1 / math.sqrt(6)
    after = (before.double() * factor * (1 + 8 * eps(dtype))).to(before.dtype)
    m = _scaled("W_o.weight", before, after, factor, "1/sqrt(2*n_layers)", dtype)
    assert not m.passed and "got after/before" in m.detail


def test_untouched_means_bitwise() -> None:
    before = torch.tensor([0.0, 1.0])
    assert _untouched("w", before, before.clone(), "not selected").passed
    negative_zero = torch.tensor([-0.0, 1.0])
    m = _untouched("w", before, negative_zero, "not selected")
    assert not m.passed and "must stay bitwise unchanged" in m.detail


# -- runs -------------------------------------------------------------------------------------------------


def test_correct_implementation_passes_with_a_bound() -> None:
    m = run(_context(examples=15))
    assert m.passed and m.examples == 15
    assert "eps(float32)" in m.tolerance.describe()


def test_one_example() -> None:
    ctx = _context()
    tree = Node("root", "container", children=(Node("W_o", "linear", 2), Node("W_q", "linear", 2), Node("attn", "buffer", 2)))
    m = measure(ctx, ctx.target(), Draw(tree, {"n_layers": 2}, seed=3))
    assert m.passed and "2 scaled" in m.detail  # W_o.weight and W_o.bias


def _write_impl(tmp_path: Path, body: str) -> str:
    path = tmp_path / "impl.py"
    path.write_text("import torch\nfrom torch import nn\n\n\ndef scale(module, n_layers):\n" + body, encoding="utf-8")
    return f"{path}:scale"


def test_a_changed_dtype_is_reported(tmp_path: Path) -> None:
    body = (
        "    for name, p in module.named_parameters():\n"
        "        p.data = p.data.double() if 'W_o' in name or 'out_proj' in name else p.data\n"
    )
    m = run(_context(ref=_write_impl(tmp_path, body)))
    assert not m.passed and "names, shapes, dtypes or devices changed" in m.detail


def test_every_example_has_a_selected_parameter(tmp_path: Path) -> None:
    """Trees without a selected parameter are not tried: an implementation that does nothing fails on every example."""
    ctx = _context(ref=_write_impl(tmp_path, "    pass\n"), examples=5)
    m = run(ctx)
    assert not m.passed and "expected × " in m.detail


def test_reserved_attribute_names_cover_the_installed_torch() -> None:
    """The fixed list (kept so validation imports no torch) misses no public attribute of ``nn.Module``."""
    from torch import nn

    from conformance.patterns.parameter_scaling import MODULE_ATTRIBUTES

    public = {name for name in dir(nn.Module()) if not name.startswith("_")}
    assert public <= MODULE_ATTRIBUTES, sorted(public - MODULE_ATTRIBUTES)
