"""conformance.spec: the YAML schema, enforced on load.

Every bad spec fails with one SpecError naming the file, the key path and what was expected.
Each test starts from ``minimal_spec()`` (which loads) and breaks exactly one thing.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import sympy
import yaml

from conformance.calling import resolve
from conformance.dtype_helpers import DTYPES
from conformance.refs import resolve_implementations
from conformance.spec import (
    SCHEMA_VERSION,
    Param,
    SpecError,
    ToleranceRule,
    format_implementation,
    load_file,
    load_specs,
    parse_implementation,
)
from tests.spec_helpers import (
    SHIPPED_SPEC_FILES,
    load_error,
    load_one,
    minimal_spec,
    shipped_specs,
    with_key,
    without_key,
    write_spec,
)

SPEC = ("specs", 0)


def assert_error(exc: SpecError, file: Path, path: str, *words: str) -> None:
    """The error names ``file`` and ``path``, and its message contains each of ``words``."""
    assert exc.file == str(file)
    assert exc.path == path
    message = str(exc)
    assert message.startswith(f"{file}: {path}" if path else str(file)), message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


# -- the shipped specs -------------------------------------------------------------------------------
def test_shipped_specs_load() -> None:
    specs = shipped_specs()
    shipped = {"attention", "rmsnorm", "surprise", "multihead_attention", "chunked_attention", "rope_cache", "rope_apply"}
    assert shipped <= set(specs)
    for spec in specs.values():
        assert spec.implementations and spec.line > 0
        assert Path(spec.file).name in {f.name for f in SHIPPED_SPEC_FILES}
        if spec.oracle is None:  # a spec of pattern checks only
            assert spec.patterns and spec.interface is None and not spec.inputs
        else:  # one expression per output (oracle.expr is the single output's), or a reference function only
            assert (spec.oracle.exprs or spec.oracle.reference) and spec.invariants and spec.oracle.line > 0
            assert all(inv.line > 0 for inv in spec.invariants)
        assert all(p.line > 0 for p in spec.patterns)
        for impl in spec.implementations:
            assert callable(resolve(impl.ref))
    for spec_id in ("attention", "rmsnorm", "surprise"):
        assert specs[spec_id].oracle.reference and specs[spec_id].facts


def test_shipped_roformer_specs_are_read_as_written() -> None:
    specs = shipped_specs()
    cache, rope = specs["rope_cache"], specs["rope_apply"]
    assert cache.paper.arxiv == "2104.09864" and cache.equation == "15" and rope.equation == "34"
    assert list(cache.outputs) == ["cos_table", "sin_table"] and cache.oracle.expr is None
    assert cache.oracle.compute_dtype == {"float16": "float32", "bfloat16": "float32"} and set(cache.oracle.noise_scale) == {
        "cos_table",
        "sin_table",
    }
    assert [p.check for p in cache.patterns] == [
        "domain_error:seq_len_past_max",
        "compile_equivalence:compiled_cpu",
        "compile_equivalence:compiled_cuda",
    ]
    assert [name for name, inp in rope.inputs.items() if not inp.drawn] == ["cos_table", "sin_table"]
    assert rope.params["offset"].integer and rope.params["offset"].high == 4096 and rope.params["interleaved"].default is False
    assert [impl.id for impl in rope.implementations] == [
        "implementations.rope:apply_rotary_emb",
        "implementations.rope:apply_rotary_emb_interleaved[interleaved=true]",
    ]
    assert [d.say for d in rope.diagnoses] == [
        "matches the interleaved layout (RoFormer Eq. 34) instead of half",
        "matches the half layout (rotate-half) instead of interleaved (RoFormer Eq. 34)",
    ]


def test_shipped_spec_details_are_read_as_written() -> None:
    specs = shipped_specs()
    rms = specs["rmsnorm"]
    assert rms.paper.arxiv == "1910.07467" and rms.paper.year == 2019
    assert rms.symbols["D"].min == 1 and rms.symbols["D"].max == 64
    assert rms.inputs["x"].magnitude_by_dtype == {"float16": (1e-2, 1e4)}
    assert rms.params["eps"].log and rms.params["eps"].low == 1e-8
    assert rms.interface.kind == "module" and rms.interface.state == {"weight": "weight"}
    assert rms.interface.init == {"dim": sympy.Symbol("D"), "eps": sympy.Symbol("eps")}
    assert rms.oracle.compute_dtype == {"float16": "float32", "bfloat16": "float32"}
    assert rms.grad_wrt == ("x", "weight") and rms.grad_order == 1
    att = specs["attention"]
    assert att.inputs["mask"].kind == "bool" and att.inputs["mask"].optional and att.inputs["mask"].rows_nonempty
    assert att.params["is_causal"].values == (False, True)
    assert [name for name, _ in att.oracle.let] == ["allowed", "weights"] and set(att.oracle.noise_scale) == {"out"}
    assert specs["surprise"].grad_order == 2


def test_spec_without_tolerance_overrides_uses_default_rule() -> None:
    for spec in shipped_specs().values():
        for dtype in DTYPES:
            assert spec.tolerance_rule(dtype) == ToleranceRule()


def test_minimal_spec_loads(tmp_path: Path) -> None:
    spec = load_one(write_spec(tmp_path, minimal_spec()))
    assert spec.id == "toy" and spec.file == str(tmp_path / "toy.yaml")
    assert spec.oracle.expr == sympy.Function("sum", commutative=True)(
        (sympy.Symbol("hidden") - sympy.Symbol("memory_pred")) ** 2, -1, sympy.false
    )


def test_with_implementations_replaces_the_implementations() -> None:
    spec = shipped_specs()["surprise"].with_implementations(["implementations.attention:attention_manual"])
    assert [impl.ref for impl in spec.implementations] == ["implementations.attention:attention_manual"]


def test_load_specs_with_a_missing_path_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    assert_error(load_error(missing), missing, "", "not found")


# -- one broken key, one SpecError -------------------------------------------------------------------
def test_invalid_yaml(tmp_path: Path) -> None:
    file = write_spec(tmp_path, "schema: 1\npaper: {title: [unclosed\n")
    assert_error(load_error(file), file, "", "invalid YAML")


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    file = write_spec(tmp_path, "- just\n- a list\n")
    assert_error(load_error(file), file, "", "expected a mapping", "got a list")


def test_unknown_top_level_key(tmp_path: Path) -> None:
    file = write_spec(tmp_path, with_key(minimal_spec(), ("tolerance",), 1))
    assert_error(load_error(file), file, "tolerance", "unknown key", "expected one of: paper, schema, specs")


def test_unknown_key_inside_an_input(tmp_path: Path) -> None:
    file = write_spec(tmp_path, with_key(minimal_spec(), (*SPEC, "inputs", "hidden", "colour"), "red"))
    assert_error(load_error(file), file, "specs[0].inputs.hidden.colour", "unknown key", "magnitude", "shape")


@pytest.mark.parametrize("key", ["id", "oracle", "interface", "implementations", "symbols"])
def test_missing_required_spec_key(tmp_path: Path, key: str) -> None:
    file = write_spec(tmp_path, without_key(minimal_spec(), (*SPEC, key)))
    assert_error(load_error(file), file, "specs[0]", f"missing required key(s): {key}")


def test_missing_required_paper_key(tmp_path: Path) -> None:
    file = write_spec(tmp_path, without_key(minimal_spec(), ("paper", "year")))
    assert_error(load_error(file), file, "paper", "missing required key(s): year")


def test_paper_needs_an_arxiv_id_or_a_url(tmp_path: Path) -> None:
    file = write_spec(tmp_path, without_key(minimal_spec(), ("paper", "arxiv")))
    assert_error(load_error(file), file, "paper", "expected 'arxiv' (an arXiv id) or, for work not on arXiv, 'url'")
    with_url = with_key(without_key(minimal_spec(), ("paper", "arxiv")), ("paper", "url"), "https://example.org/paper.pdf")
    (spec,) = load_specs([write_spec(tmp_path, with_url, name="with_url.yaml")], default=False).values()
    assert spec.paper.arxiv is None and spec.paper.url == "https://example.org/paper.pdf"


def test_shape_naming_an_undeclared_symbol(tmp_path: Path) -> None:
    file = write_spec(tmp_path, with_key(minimal_spec(), (*SPEC, "inputs", "hidden", "shape"), ["B", "T"]))
    assert_error(load_error(file), file, "specs[0].inputs.hidden.shape[1]", "'T' is not a declared symbol", "declared: B, D")


def test_shape_with_a_non_positive_size(tmp_path: Path) -> None:
    file = write_spec(tmp_path, with_key(minimal_spec(), (*SPEC, "outputs", "loss", "shape"), [0]))
    assert_error(load_error(file), file, "specs[0].outputs.loss.shape[0]", "positive integer")


def test_unknown_invariant_kind(tmp_path: Path) -> None:
    invariant = {"id": "psychic", "kind": "telepathy", "description": "reads minds"}
    file = write_spec(tmp_path, with_key(minimal_spec(), (*SPEC, "invariants"), [invariant]))
    assert_error(load_error(file), file, "specs[0].invariants[0].kind", "unknown invariant kind 'telepathy'", "permutation")


def test_invariant_option_error_names_the_option(tmp_path: Path) -> None:
    invariant = {"id": "perm", "kind": "permutation", "description": "d", "permute": {"hidden": 5}}
    file = write_spec(tmp_path, with_key(minimal_spec(), (*SPEC, "invariants"), [invariant]))
    assert_error(load_error(file), file, "specs[0].invariants[0].permute", "axis 5 of 'hidden' is out of range")


def test_unknown_fact_kind(tmp_path: Path) -> None:
    fact = {"id": "f", "kind": "theorem", "description": "d"}
    file = write_spec(tmp_path, with_key(minimal_spec(), (*SPEC, "facts"), [fact]))
    assert_error(load_error(file), file, "specs[0].facts[0].kind", "unknown fact kind 'theorem'", "gradient, identity")


def test_fact_with_bad_sizes(tmp_path: Path) -> None:
    fact = {
        "id": "f",
        "kind": "identity",
        "description": "d",
        "lhs": "sum(s, -1)",
        "rhs": "sum(s, -1)",
        "shapes": {"s": ["N"]},
        "sizes": {"N": [0, 1]},
    }
    file = write_spec(tmp_path, with_key(minimal_spec(), (*SPEC, "facts"), [fact]))
    assert_error(load_error(file), file, "specs[0].facts[0].sizes", "integers in [1, 8]")


@pytest.mark.parametrize(
    ("ref", "words"),
    [
        ("implementations.no_such_module:f", ("cannot import 'implementations.no_such_module'", "ModuleNotFoundError")),
        ("implementations.surprise:no_such_function", ("module 'implementations.surprise' has no attribute 'no_such_function'",)),
        ("missing_file.py:fn", ("file 'missing_file.py' not found",)),
    ],
    ids=["bad-module", "missing-attribute", "missing-file"],
)
def test_implementation_that_cannot_be_imported(tmp_path: Path, ref: str, words: tuple[str, ...]) -> None:
    """Loading checks the ref's syntax only; the import error is keyed when implementations are resolved."""
    file = write_spec(tmp_path, with_key(minimal_spec(), (*SPEC, "implementations", 0, "ref"), ref))
    spec = load_one(file)
    with pytest.raises(SpecError) as info:
        resolve_implementations(spec)
    assert_error(info.value, file, "specs[0].implementations[0].ref", *words)


def test_implementation_ref_without_attribute(tmp_path: Path) -> None:
    file = write_spec(tmp_path, with_key(minimal_spec(), (*SPEC, "implementations", 0, "ref"), "implementations.surprise"))
    assert_error(load_error(file), file, "specs[0].implementations[0].ref", "expected 'package.module:attribute'")


def test_implementation_file_relative_to_the_spec_is_found(tmp_path: Path) -> None:
    (tmp_path / "my_impl.py").write_text("def loss(h, m):\n    return ((h - m) ** 2).sum(-1)\n")
    spec = load_one(write_spec(tmp_path, with_key(minimal_spec(), (*SPEC, "implementations", 0, "ref"), "my_impl.py:loss")))
    assert spec.implementations[0].ref == "my_impl.py:loss"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("__import__('os').system('touch X')", ("attribute access", "cannot be called")),
        ("hidden.__class__", ("attribute access",)),
        ("eval('1')", ("function 'eval' is not allowed",)),
        ("9**9**9", ("exponent 387420489 is too large",)),
    ],
    ids=["os-system", "dunder-attribute", "eval", "power-tower"],
)
def test_hostile_construct_in_oracle_expr(tmp_path: Path, text: str, words: tuple[str, ...]) -> None:
    file = write_spec(tmp_path, with_key(minimal_spec(), (*SPEC, "oracle", "expr"), text))
    assert_error(load_error(file), file, "specs[0].oracle.expr", *words, repr(text))


def test_hostile_spec_executes_nothing(tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    data = with_key(minimal_spec(), (*SPEC, "oracle", "expr"), f"__import__('os').system('touch {sentinel}')")
    load_error(write_spec(tmp_path, data))
    assert not sentinel.exists()


def test_expression_naming_an_undeclared_name(tmp_path: Path) -> None:
    file = write_spec(tmp_path, with_key(minimal_spec(), (*SPEC, "oracle", "expr"), "sum((hidden - target)**2, -1)"))
    exc = load_error(file)
    assert_error(exc, file, "specs[0].oracle.expr", "undeclared name(s) target", "declared: B, D, hidden, memory_pred")


def test_constraint_referencing_an_undeclared_symbol(tmp_path: Path) -> None:
    file = write_spec(tmp_path, with_key(minimal_spec(), (*SPEC, "constraints"), ["D % H == 0"]))
    assert_error(load_error(file), file, "specs[0].constraints[0]", "undeclared name(s) H")


def test_constraint_may_not_name_tensor_inputs(tmp_path: Path) -> None:
    file = write_spec(tmp_path, with_key(minimal_spec(), (*SPEC, "constraints"), ["B < 2", "sum(hidden, -1) > 0"]))
    assert_error(load_error(file), file, "specs[0].constraints[1]", "undeclared name(s) hidden")


def test_declared_constraint_loads(tmp_path: Path) -> None:
    data = with_key(minimal_spec(), (*SPEC, "symbols", "H"), {"min": 1, "max": 4})
    data = with_key(data, (*SPEC, "constraints"), ["D % H == 0"])
    spec = load_one(write_spec(tmp_path, data))
    assert spec.constraints == (("D % H == 0", sympy.Eq(sympy.Mod(sympy.Symbol("D"), sympy.Symbol("H")), 0)),)


@pytest.mark.parametrize(
    ("path", "value", "error_path", "words"),
    [
        ((*SPEC, "interface", "args"), "hidden", "specs[0].interface.args", ("expected a list of input/param", "got a string")),
        ((*SPEC, "inputs", "hidden", "shape"), "B, D", "specs[0].inputs.hidden.shape", ("expected a list", "got a string")),
        ((*SPEC, "constraints"), "D > 1", "specs[0].constraints", ("expected a list of expressions", "got a string")),
        (("paper", "authors"), "A. Author", "paper.authors", ("expected a list of author names",)),
        (("specs",), {"id": "toy"}, "specs", ("expected a list of equation specs", "got a mapping")),
        ((*SPEC, "symbols", "B", "min"), "1", "specs[0].symbols.B.min", ("expected a positive integer", "got a string")),
        ((*SPEC, "symbols", "B", "max"), True, "specs[0].symbols.B.max", ("got a boolean",)),
        ((*SPEC, "inputs", "hidden", "optional"), "yes please", "specs[0].inputs.hidden.optional", ("expected true or false",)),
        ((*SPEC, "oracle", "expr"), ["sum(hidden, -1)"], "specs[0].oracle.expr", ("expected an expression string", "got a list")),
        (("paper", "year"), "2024", "paper.year", ("expected a year",)),
    ],
    ids=[
        "args-string",
        "shape-string",
        "constraints-string",
        "authors-string",
        "specs-mapping",
        "min-string",
        "max-boolean",
        "optional-string",
        "expr-list",
        "year-string",
    ],
)
def test_wrong_types(tmp_path: Path, path: tuple, value: object, error_path: str, words: tuple[str, ...]) -> None:
    file = write_spec(tmp_path, with_key(minimal_spec(), path, value))
    assert_error(load_error(file), file, error_path, *words)


def test_duplicate_spec_ids_across_two_files(tmp_path: Path) -> None:
    first = write_spec(tmp_path, minimal_spec(), "a.yaml")
    second = write_spec(tmp_path, minimal_spec(), "b.yaml")
    exc = load_error(tmp_path)
    assert_error(exc, second, "specs[id=toy]", "duplicate id", str(first))


def test_duplicate_of_a_shipped_id_is_rejected(tmp_path: Path) -> None:
    file = write_spec(tmp_path, with_key(minimal_spec(), (*SPEC, "id"), "surprise"))
    with pytest.raises(SpecError) as info:
        load_specs([file])
    assert_error(info.value, file, "specs[id=surprise]", "duplicate id", "titans.yaml")


def test_tolerance_override_without_reason(tmp_path: Path) -> None:
    file = write_spec(tmp_path, with_key(minimal_spec(), (*SPEC, "tolerances"), {"float16": {"factor": 4}}))
    assert_error(load_error(file), file, "specs[0].tolerances.float16", "missing required key(s): reason")


def test_tolerance_override_with_blank_reason(tmp_path: Path) -> None:
    file = write_spec(tmp_path, with_key(minimal_spec(), (*SPEC, "tolerances"), {"float16": {"factor": 4, "reason": "  "}}))
    assert_error(load_error(file), file, "specs[0].tolerances.float16.reason", "non-empty string")


def test_tolerance_override_out_of_range(tmp_path: Path) -> None:
    file = write_spec(tmp_path, with_key(minimal_spec(), (*SPEC, "tolerances"), {"float16": {"factor": 1000, "reason": "r"}}))
    assert_error(load_error(file), file, "specs[0].tolerances.float16", "1 <= factor <= 100")


def test_tolerance_override_with_reason_loads(tmp_path: Path) -> None:
    override = {"bfloat16": {"factor": 4, "floor_ulps": 16, "reason": "fused kernel accumulates in bfloat16"}}
    spec = load_one(write_spec(tmp_path, with_key(minimal_spec(), (*SPEC, "tolerances"), override)))
    assert spec.tolerance_rule("bfloat16") == ToleranceRule(4.0, 16.0, "fused kernel accumulates in bfloat16")
    assert spec.tolerance_rule("float32") == ToleranceRule()


@pytest.mark.parametrize("version", [SCHEMA_VERSION + 1, 0, "1"])
def test_schema_version_mismatch(tmp_path: Path, version: object) -> None:
    file = write_spec(tmp_path, with_key(minimal_spec(), ("schema",), version))
    assert_error(load_error(file), file, "schema", f"expected schema version {SCHEMA_VERSION}", repr(version))


def test_name_declared_twice_across_symbols_and_inputs(tmp_path: Path) -> None:
    file = write_spec(tmp_path, with_key(minimal_spec(), (*SPEC, "inputs", "D"), {"shape": ["B"]}))
    assert_error(load_error(file), file, "specs[0]", "name 'D' is declared twice")


def test_input_never_passed_to_the_implementation(tmp_path: Path) -> None:
    file = write_spec(tmp_path, with_key(minimal_spec(), (*SPEC, "interface", "args"), ["hidden"]))
    assert_error(load_error(file), file, "specs[0].interface", "memory_pred are never passed")


def test_private_input_name_is_rejected(tmp_path: Path) -> None:
    data = minimal_spec()
    data["specs"][0]["inputs"]["_hidden"] = data["specs"][0]["inputs"].pop("hidden")
    file = write_spec(tmp_path, data)
    assert_error(load_error(file), file, "specs[0].inputs._hidden", "must not start with '_'")


# -- YAML is read safely -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "tag",
    ["!!python/object/apply:os.system", "!!python/object/apply:subprocess.call", "!!python/object/new:os.system"],
)
def test_python_object_tag_is_rejected_and_creates_nothing(tmp_path: Path, tag: str) -> None:
    sentinel = tmp_path / "pwned"
    arg = f'["touch {sentinel}"]' if "subprocess" not in tag else f'[["touch", "{sentinel}"]]'
    file = write_spec(tmp_path, f"schema: 1\npaper: {tag} {arg}\nspecs: []\n")
    assert_error(load_error(file), file, "", "invalid YAML", "python/object")
    assert not sentinel.exists()


def test_python_object_tag_nested_inside_an_expression_is_rejected(tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    text = yaml.safe_dump(minimal_spec(), sort_keys=False).replace(
        "expr: sum((hidden - memory_pred)**2, -1)", f'expr: !!python/object/apply:os.system ["touch {sentinel}"]'
    )
    assert "python/object" in text
    file = write_spec(tmp_path, text)
    assert_error(load_error(file), file, "", "invalid YAML")
    assert not sentinel.exists()


def test_oversized_file_is_rejected_before_parsing(tmp_path: Path) -> None:
    file = write_spec(tmp_path, "# " + "x" * (256 * 1024) + "\n")
    assert_error(load_error(file), file, "", "bytes (at most")


def test_non_utf8_file_is_rejected(tmp_path: Path) -> None:
    file = tmp_path / "latin1.yaml"
    file.write_bytes("schema: 1 # caf\xe9\n".encode("latin-1"))
    assert_error(load_error(file), file, "", "expected UTF-8 text")


def test_load_file_returns_every_spec_of_a_paper(tmp_path: Path) -> None:
    data = minimal_spec()
    second = dict(copy.deepcopy(data["specs"][0]), id="toy_two")  # shared objects would be dumped as YAML aliases
    data["specs"].append(second)
    assert [s.id for s in load_file(write_spec(tmp_path, data))] == ["toy", "toy_two"]


# -- several outputs ---------------------------------------------------------------------------------
def two_outputs() -> dict:
    """The minimal spec with two outputs: the squared distance and the plain difference summed."""
    data = minimal_spec()
    spec = data["specs"][0]
    spec["outputs"] = {"loss": {"shape": ["B"]}, "gap": {"shape": ["B"]}}
    spec["oracle"] = {"expr": {"loss": "sum((hidden - memory_pred)**2, -1)", "gap": "sum(hidden - memory_pred, -1)"}}
    return data


def test_several_outputs_keep_their_order_and_one_expression_each(tmp_path: Path) -> None:
    spec = load_one(write_spec(tmp_path, two_outputs()))
    assert list(spec.outputs) == ["loss", "gap"] and list(spec.oracle.exprs) == ["loss", "gap"]
    assert spec.oracle.expr is None, "expr is the single output's expression only"
    assert spec.oracle.exprs["gap"] == sympy.Function("sum", commutative=True)(
        sympy.Symbol("hidden") - sympy.Symbol("memory_pred"), -1, sympy.false
    )
    single = load_one(write_spec(tmp_path, minimal_spec(), "single.yaml"))
    assert list(single.oracle.exprs) == ["loss"] and single.oracle.exprs["loss"] == single.oracle.expr


@pytest.mark.parametrize(
    ("expr", "error_path", "words"),
    [
        ("sum(hidden, -1)", "specs[0].oracle.expr", ("expected a mapping output name -> expression", "loss, gap")),
        ({"loss": "sum(hidden, -1)"}, "specs[0].oracle.expr", ("one expression per output (loss, gap)", "got loss")),
        ({"loss": "sum(hidden, -1)", "gap": "sum(target, -1)"}, "specs[0].oracle.expr.gap", ("undeclared name(s) target",)),
    ],
    ids=["string", "missing-output", "bad-expression"],
)
def test_several_outputs_need_one_expression_each(tmp_path: Path, expr: object, error_path: str, words: tuple) -> None:
    file = write_spec(tmp_path, with_key(two_outputs(), (*SPEC, "oracle", "expr"), expr))
    assert_error(load_error(file), file, error_path, *words)


def test_no_outputs_is_an_error(tmp_path: Path) -> None:
    file = write_spec(tmp_path, with_key(minimal_spec(), (*SPEC, "outputs"), {}))
    assert_error(load_error(file), file, "specs[0].outputs", "expected at least one output")


def test_noise_scale_for_every_output_or_per_output(tmp_path: Path) -> None:
    data = with_key(two_outputs(), (*SPEC, "oracle", "noise_scale"), "abs(hidden) + 1")
    spec = load_one(write_spec(tmp_path, data))
    assert set(spec.oracle.noise_scale) == {"loss", "gap"}
    data = with_key(two_outputs(), (*SPEC, "oracle", "noise_scale"), {"gap": "abs(hidden)"})
    assert set(load_one(write_spec(tmp_path, data, "per.yaml")).oracle.noise_scale) == {"gap"}
    file = write_spec(tmp_path, with_key(two_outputs(), (*SPEC, "oracle", "noise_scale"), {"gapp": "1"}), "bad.yaml")
    assert_error(load_error(file), file, "specs[0].oracle.noise_scale.gapp", "'gapp' is not a declared output")


# -- derived inputs, shape expressions, integer params, options ----------------------------------------
def rotary() -> dict:
    """The minimal spec with a derived input (a table from a drawn integer offset) and a shape expression."""
    data = minimal_spec()
    spec = data["specs"][0]
    spec["constraints"] = ["D % 2 == 0"]
    spec["params"] = {
        "offset": {"min": 0, "max": 4096, "integer": True},
        "flip": {"values": [False, True], "default": False},
    }
    spec["inputs"]["table"] = {"shape": ["D // 2"], "derive": "cos(arange(D // 2) + offset)"}
    spec["interface"]["args"] = ["hidden", "memory_pred", "table"]
    return data


def test_derived_input_shape_expression_and_integer_param_load(tmp_path: Path) -> None:
    spec = load_one(write_spec(tmp_path, rotary()))
    table = spec.inputs["table"]
    assert not table.drawn and spec.inputs["hidden"].drawn
    assert table.shape == (sympy.floor(sympy.Symbol("D") / 2),)
    assert table.derive == sympy.cos(
        sympy.Function("arange", commutative=True)(sympy.floor(sympy.Symbol("D") / 2)) + sympy.Symbol("offset")
    )
    offset = spec.params["offset"]
    assert offset.integer and (offset.low, offset.high) == (0, 4096) and offset.default is None
    assert spec.params["flip"].default is False


@pytest.mark.parametrize(
    ("path", "value", "error_path", "words"),
    [
        ((*SPEC, "inputs", "table", "magnitude"), [1, 2], "specs[0].inputs.table.magnitude", ("applies to drawn inputs only",)),
        ((*SPEC, "inputs", "table", "optional"), True, "specs[0].inputs.table.optional", ("this input is derived",)),
        ((*SPEC, "inputs", "table", "derive"), "cos(later)", "specs[0].inputs.table.derive", ("undeclared name(s) later",)),
        (
            (*SPEC, "inputs", "table", "shape"),
            ["E // 2"],
            "specs[0].inputs.table.shape[0]",
            ("'E // 2' is not a declared symbol",),
        ),
        ((*SPEC, "params", "offset", "min"), 0.5, "specs[0].params.offset.min", ("expected an integer",)),
        ((*SPEC, "params", "offset", "log"), True, "specs[0].params.offset.log", ("drawn uniformly",)),
        ((*SPEC, "params", "flip", "default"), 1, "specs[0].params.flip.default", ("a value of the param's domain",)),
        (
            (*SPEC, "interface", "args"),
            ["hidden", "memory_pred", "table", "E"],
            "specs[0].interface.args[3]",
            ("not a declared input, param or symbol",),
        ),
    ],
    ids=[
        "derived-magnitude",
        "derived-optional",
        "derive-later-name",
        "shape-unknown",
        "integer-float",
        "integer-log",
        "default-outside",
        "arg-unknown",
    ],
)
def test_derived_inputs_and_params_errors(tmp_path: Path, path: tuple, value: object, error_path: str, words: tuple) -> None:
    file = write_spec(tmp_path, with_key(rotary(), path, value))
    assert_error(load_error(file), file, error_path, *words)


def test_a_symbol_may_be_passed_to_the_implementation(tmp_path: Path) -> None:
    data = with_key(rotary(), (*SPEC, "interface", "args"), ["hidden", "memory_pred", "table", "D"])
    assert load_one(write_spec(tmp_path, data)).interface.args[-1] == "D"


def test_params_allow_their_domain_only() -> None:
    flip = Param("flip", values=(False, True))
    assert flip.allows(True) and not flip.allows(1) and not flip.allows(0.0)
    count = Param("n", values=(1, 2))
    assert count.allows(2) and count.allows(2.0) and not count.allows(True)
    offset = Param("offset", low=0, high=8, integer=True)
    assert offset.allows(8) and not offset.allows(2.5) and not offset.allows(9) and not offset.allows(False)


# -- implementations with options ----------------------------------------------------------------------
def test_implementation_params_fix_options_and_name_the_implementation(tmp_path: Path) -> None:
    data = with_key(
        rotary(),
        (*SPEC, "implementations"),
        [
            {"ref": "implementations.surprise:compute_surprise"},
            {"ref": "implementations.surprise:compute_surprise", "params": {"flip": True, "offset": 7}},
        ],
    )
    spec = load_one(write_spec(tmp_path, data))
    plain, flipped = spec.implementations
    assert plain.id == "implementations.surprise:compute_surprise" and plain.params == {}
    assert flipped.id == "implementations.surprise:compute_surprise[flip=true,offset=7]"
    assert spec.fixed_params(plain.id) == {"flip": False}, "an option not fixed takes the spec's default"
    assert spec.fixed_params(flipped.id) == {"flip": True, "offset": 7}
    tested = spec.for_implementation(flipped.id)
    assert tested.params["flip"].default is True and tested.params["offset"].default == 7
    assert spec.for_implementation(plain.id).params["offset"].default is None, "drawn params stay drawn"


@pytest.mark.parametrize(
    ("entry", "error_path", "words"),
    [
        ({"params": {"flop": True}}, "specs[0].implementations[0].params.flop", ("'flop' is not a declared param",)),
        ({"params": {"flip": "yes"}}, "specs[0].implementations[0].params.flip", ("outside the domain of param 'flip'",)),
        ({"params": {"offset": 5000}}, "specs[0].implementations[0].params.offset", ("outside the domain",)),
        ({"params": [True]}, "specs[0].implementations[0].params", ("expected a mapping param name -> value",)),
    ],
)
def test_implementation_params_errors(tmp_path: Path, entry: dict, error_path: str, words: tuple) -> None:
    data = with_key(rotary(), (*SPEC, "implementations"), [{"ref": "implementations.surprise:compute_surprise", **entry}])
    file = write_spec(tmp_path, data)
    assert_error(load_error(file), file, error_path, *words)


def test_two_entries_with_the_same_ref_and_params_are_refused(tmp_path: Path) -> None:
    entry = {"ref": "implementations.surprise:compute_surprise"}
    file = write_spec(tmp_path, with_key(minimal_spec(), (*SPEC, "implementations"), [entry, dict(entry)]))
    assert_error(load_error(file), file, "specs[0].implementations", "must differ in ref or params")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mod:fn", ("mod:fn", {})),
        ("mod:fn[interleaved=true]", ("mod:fn", {"interleaved": True})),
        ("path/to/f.py:g[ a = 2 , b=false, c=0.5 ]", ("path/to/f.py:g", {"a": 2, "b": False, "c": 0.5})),
        ("mod:fn[]", ("mod:fn", {})),
    ],
)
def test_parse_implementation(text: str, expected: tuple) -> None:
    assert parse_implementation(text) == expected
    ref, params = expected
    assert parse_implementation(format_implementation(ref, params)) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("mod:fn[a]", "expected name=value"),
        ("mod:fn[a=yes]", "must be true, false, a number or a string in quotes"),
        ("mod:fn[a=1", "REF[name=value"),
    ],
)
def test_parse_implementation_errors(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=re.escape(words)):
        parse_implementation(text)


def test_with_implementations_accepts_options_and_keeps_the_text(tmp_path: Path) -> None:
    spec = load_one(write_spec(tmp_path, rotary()))
    (impl,) = spec.with_implementations(["implementations.surprise:compute_surprise[flip=True]"]).implementations
    assert impl.ref == "implementations.surprise:compute_surprise" and impl.params == {"flip": True}
    assert impl.id == "implementations.surprise:compute_surprise[flip=True]", "named exactly as given"
    with pytest.raises(ValueError, match="'flop' is not a param of spec 'toy'"):
        spec.with_implementations(["implementations.surprise:compute_surprise[flop=true]"])
    assert spec.implementation("other.py:f[offset=3]").params == {"offset": 3}


# -- diagnose -------------------------------------------------------------------------------------------
def test_diagnose_loads(tmp_path: Path) -> None:
    entry = {"when": "not flip", "try": {"flip": True}, "say": "matches the flipped reading"}
    spec = load_one(write_spec(tmp_path, with_key(rotary(), (*SPEC, "diagnose"), [entry])))
    (d,) = spec.diagnoses
    assert d.check == "oracle" and d.alternative == {"flip": sympy.true} and d.say == "matches the flipped reading"
    assert d.when is not None and d.line > 0


@pytest.mark.parametrize(
    ("entry", "error_path", "words"),
    [
        ({"try": {"flop": True}, "say": "s"}, "specs[0].diagnose[0].try.flop", ("'flop' is not a declared param",)),
        ({"try": {}, "say": "s"}, "specs[0].diagnose[0].try", ("at least one param",)),
        ({"try": {"flip": True}}, "specs[0].diagnose[0]", ("missing required key(s): say",)),
        ({"try": {"flip": True}, "say": "s", "when_failing": "gradient"}, "specs[0].diagnose[0].when_failing", ("oracle",)),
        ({"try": {"flip": "hidden"}, "say": "s"}, "specs[0].diagnose[0].try.flip", ("undeclared name(s) hidden",)),
    ],
)
def test_diagnose_errors(tmp_path: Path, entry: dict, error_path: str, words: tuple) -> None:
    file = write_spec(tmp_path, with_key(rotary(), (*SPEC, "diagnose"), [entry]))
    assert_error(load_error(file), file, error_path, *words)


def test_diagnose_tries_a_string_params_value_as_written(tmp_path: Path) -> None:
    """A reading of a string param (``try: {retrieve: after}``) keeps the value; one outside its values is refused."""
    shipped = Path("specs/titans.yaml").read_text(encoding="utf-8")
    spec = next(s for s in load_file(Path("specs/titans.yaml")) if s.id == "memory_linear")
    assert {"retrieve": "after"} in [dict(d.alternative) for d in spec.diagnoses]
    bad = tmp_path / "titans.yaml"
    bad.write_text(shipped.replace("- try: {retrieve: after}", "- try: {retrieve: later}", 1), encoding="utf-8")
    with pytest.raises(SpecError, match=r"diagnose\[0\]\.try\.retrieve: expected one of the param's values \(before, after\)"):
        load_file(bad)
