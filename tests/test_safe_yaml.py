"""conformance.safe_yaml: YAML refused before anything is constructed, each problem keyed by file and path."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest

from conformance.safe_yaml import MAX_DEPTH, MAX_INT_DIGITS, load_yaml
from conformance.validation import SpecError
from tests.spec_helpers import load_error, write_spec

FILE = "s.yaml"


def error(text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_yaml(text, FILE)
    assert info.value.file == FILE
    return info.value


def test_plain_data_and_its_lines() -> None:
    document = load_yaml("schema: 1\nspecs:\n  - id: x\n    n: [1, 2]\n", FILE)
    assert document.data == {"schema": 1, "specs": [{"id": "x", "n": [1, 2]}]}
    assert document.lines[("specs", 0, "id")] == 3 and document.lines[("specs", 0, "n", 1)] == 4


def test_duplicate_key_names_its_path_and_both_lines() -> None:
    exc = error("a: 1\nb:\n  c: 2\n  c: 3\n")
    assert exc.path == "b.c" and exc.detail == "duplicate key 'c' (first at line 3, again at line 4)"


def test_duplicate_key_after_resolution_is_refused() -> None:
    exc = error("a:\n  1: x\n  0x1: y\n")  # two spellings of the integer 1
    assert exc.path.startswith("a") and "duplicate key 1 (first at line 2, again at line 3)" in exc.detail


@pytest.mark.parametrize(
    ("text", "path", "words"),
    [
        ("a: &x [1, 2]\nb: 3\n", "a", "YAML anchors are refused (&x at line 1)"),
        ("a: [1, 2]\nb: *x\n", "b", "YAML aliases are refused (*x at line 2)"),
    ],
    ids=["anchor", "alias"],
)
def test_anchors_and_aliases_are_refused(text: str, path: str, words: str) -> None:
    exc = error(text)
    assert exc.path == path and words in str(exc)


def test_an_alias_bomb_is_refused_before_it_expands() -> None:
    """The classic 'billion laughs': 9 levels of 9 aliases each would construct 9**9 strings."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 10):
        lines.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 9) + "]")
    text = "\n".join(lines) + "\n"
    assert len(text) < 4096
    tracemalloc.start()
    started = time.perf_counter()
    try:
        exc = error(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "YAML anchors are refused" in exc.detail and exc.path == "l0"
    assert peak < 5 * 2**20 and time.perf_counter() - started < 5


def test_nesting_too_deep_is_keyed() -> None:
    exc = error("a:\n  b: " + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + "\n")
    assert exc.path.startswith("a.b[0]") and f"nested more than {MAX_DEPTH} levels deep" in exc.detail


def test_very_deep_nesting_is_refused_without_a_recursion_error() -> None:
    exc = error("a: " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert "levels deep" in exc.detail


@pytest.mark.parametrize("digits", [MAX_INT_DIGITS + 1, 5000])  # 5000: past Python's int-string limit
def test_integers_with_too_many_digits_are_keyed(digits: int) -> None:
    exc = error("a:\n  - 1\n  - " + "9" * digits + "\n")
    assert exc.path == "a[1]" and f"an integer of {digits} digits (at most {MAX_INT_DIGITS})" in exc.detail


def test_an_explicitly_tagged_huge_integer_is_refused() -> None:
    exc = error(f"a: !!int '{'1' * 200}'\n")
    assert exc.path == "a" and "an integer of 200 digits" in exc.detail


def test_collection_as_key_is_refused() -> None:
    exc = error("? [a, b]\n: 1\n")
    assert "expected a plain key" in exc.detail


def test_python_tags_stay_invalid_yaml() -> None:
    exc = error("a: !!python/object/apply:os.system ['true']\n")
    assert exc.path == "" and "invalid YAML" in str(exc) and "python/object" in str(exc)


def test_a_spec_file_with_a_duplicate_key_is_refused(tmp_path: Path) -> None:
    text = "schema: 1\npaper:\n  title: T\n  title: U\n  authors: [A]\n  year: 2024\n  arxiv: '2501.00663'\nspecs: []\n"
    file = write_spec(tmp_path, text)
    exc = load_error(file)
    assert exc.file == str(file) and exc.path == "paper.title" and "duplicate key 'title'" in exc.detail
