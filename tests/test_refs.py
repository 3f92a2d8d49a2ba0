"""conformance.refs: ref syntax, refs into the standard library refused (nothing imported), keyed resolution."""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

import pytest

from conformance.refs import ImplementationError, parse_ref, ref_problem, resolve, resolve_implementations
from conformance.validation import SpecError
from tests.spec_helpers import load_error, load_one, minimal_spec, with_key, write_spec

SPEC = ("specs", 0)
REFUSED = ["os:system", "builtins:eval", "antigravity:geohash", "this:s", "subprocess:run", "sys:exit", "__main__:main"]


@pytest.mark.parametrize("ref", ["implementations.rmsnorm:RMSNorm", "my/impl.py:fn", "pkg.sub.mod:Class"])
def test_well_formed_refs_have_no_problem(ref: str) -> None:
    assert ref_problem(ref) is None


@pytest.mark.parametrize(
    ("ref", "words"),
    [
        ("implementations.rmsnorm", "expected 'package.module:attribute'"),
        ("mod:", "expected 'package.module:attribute'"),
        (3, "expected 'package.module:attribute'"),
        ("implementations.rmsnorm:__class__", "dunder attributes are refused"),
        ("pkg.__init__:f", "without empty or dunder parts"),
        ("pkg..mod:f", "without empty or dunder parts"),
    ],
)
def test_malformed_refs_are_named(ref: object, words: str) -> None:
    problem = ref_problem(ref)
    assert problem is not None and words in problem


@pytest.mark.parametrize("ref", REFUSED)
def test_refs_into_the_standard_library_or_builtins_are_refused(ref: str) -> None:
    problem = ref_problem(ref)
    assert problem is not None and "refs into the standard library or builtins are refused" in problem
    with pytest.raises(ImplementationError, match="refused"):
        resolve(ref)


@pytest.mark.parametrize("ref", ["antigravity:geohash", "this:s"])
def test_a_refused_ref_in_a_spec_is_keyed_and_imports_nothing(tmp_path: Path, ref: str) -> None:
    module = ref.partition(":")[0]
    assert module not in sys.modules, "a test before this one imported it"
    file = write_spec(tmp_path, with_key(minimal_spec(), (*SPEC, "implementations", 0, "ref"), ref))
    exc = load_error(file)
    assert exc.file == str(file) and exc.path == "specs[0].implementations[0].ref"
    assert f"{module!r} is a standard library module" in exc.detail
    assert module not in sys.modules


def test_a_file_ref_into_the_standard_library_is_refused_on_resolve() -> None:
    os_file = Path(sysconfig.get_paths()["stdlib"]) / "os.py"
    with pytest.raises(ImplementationError, match="is a standard library file"):
        resolve(f"{os_file}:system")


def test_parse_ref() -> None:
    ref = parse_ref("path/to/f.py:g")
    assert ref.is_file and ref.attr == "g" and ref.top_module == ""
    assert parse_ref("a.b:c").top_module == "a"
    with pytest.raises(ImplementationError, match="refused"):
        parse_ref("os:system")


def test_loading_imports_no_implementation(tmp_path: Path) -> None:
    (tmp_path / "loud.py").write_text(f"open({str(tmp_path / 'imported')!r}, 'w').close()\ndef f(h, m):\n    return h\n")
    spec = load_one(write_spec(tmp_path, with_key(minimal_spec(), (*SPEC, "implementations", 0, "ref"), "loud.py:f")))
    assert not (tmp_path / "imported").exists(), "loading a spec imported its implementation"
    resolve_implementations(spec)
    assert (tmp_path / "imported").exists()


@pytest.mark.parametrize(
    ("ref", "words"),
    [
        ("implementations.no_such_module:f", "cannot import 'implementations.no_such_module': ModuleNotFoundError"),
        ("implementations.surprise:nope", "module 'implementations.surprise' has no attribute 'nope'"),
        ("missing_file.py:fn", "file 'missing_file.py' not found"),
    ],
)
def test_resolve_implementations_keys_the_failing_implementation(tmp_path: Path, ref: str, words: str) -> None:
    impls = [{"ref": "implementations.surprise:compute_surprise"}, {"ref": ref}]
    file = write_spec(tmp_path, with_key(minimal_spec(), (*SPEC, "implementations"), impls))
    spec = load_one(file)
    with pytest.raises(SpecError) as info:
        resolve_implementations([spec])
    assert info.value.file == str(file) and info.value.path == "specs[0].implementations[1].ref"
    assert words in info.value.detail


def test_resolve_implementations_names_a_command_line_implementation(tmp_path: Path) -> None:
    spec = load_one(write_spec(tmp_path, minimal_spec())).with_implementations(["implementations.surprise:nope"])
    with pytest.raises(SpecError) as info:
        resolve_implementations(spec)
    assert str(info.value).startswith("--impl: toy=implementations.surprise:nope: module 'implementations.surprise'")


def test_a_reference_ref_is_checked_on_load_and_resolved_relative_to_the_spec(tmp_path: Path) -> None:
    source = "def loss(hidden, memory_pred, **_):\n    return ((hidden - memory_pred) ** 2).sum(-1)\n"
    (tmp_path / "my_refs.py").write_text(source)
    data = with_key(minimal_spec(), (*SPEC, "oracle", "reference"), "my_refs.py:loss")
    spec = load_one(write_spec(tmp_path, data))
    assert spec.oracle.reference == "my_refs.py:loss" and spec.oracle.reference_is_ref
    resolve_implementations(spec)
    assert callable(resolve("my_refs.py:loss", tmp_path))
    data = with_key(minimal_spec(), (*SPEC, "oracle", "reference"), "my_refs.py:nope")
    file = write_spec(tmp_path, data, "bad.yaml")
    with pytest.raises(SpecError) as info:
        resolve_implementations(load_one(file))
    assert info.value.path == "specs[0].oracle.reference" and "has no attribute 'nope'" in info.value.detail


@pytest.mark.parametrize(
    ("reference", "words"),
    [
        ("os:system", "refs into the standard library or builtins are refused"),
        ("telepathy", "unknown reference function 'telepathy'; known: attention"),
        ("my refs.py:", "expected 'package.module:attribute'"),
    ],
)
def test_a_bad_reference_is_keyed_on_load(tmp_path: Path, reference: str, words: str) -> None:
    file = write_spec(tmp_path, with_key(minimal_spec(), (*SPEC, "oracle", "reference"), reference))
    exc = load_error(file)
    assert exc.path == "specs[0].oracle.reference" and words in exc.detail
