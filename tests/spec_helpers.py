"""Shared helpers for the harness's own unit tests: a minimal valid spec, mutated one key at a time.

``minimal_spec()`` is a complete, loadable spec (one equation, a squared distance, implemented by
``implementations.surprise:compute_surprise``). Each schema test changes exactly one key with
:func:`with_key` / :func:`without_key`, writes it with :func:`write_spec` and checks the single
:class:`~conformance.spec.SpecError` that :func:`load_error` returns.
"""

from __future__ import annotations

import copy
import functools
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.spec import EquationSpec, SpecError, load_file, load_specs

REPO_ROOT = Path(__file__).resolve().parent.parent
SPEC_DIR = REPO_ROOT / "specs"
SHIPPED_SPEC_FILES = sorted(SPEC_DIR.glob("*.yaml"))

_MINIMAL: dict[str, Any] = {
    "schema": 1,
    "paper": {"title": "A Test Paper", "authors": ["A. Author"], "arxiv": "2501.00663", "year": 2024},
    "specs": [
        {
            "id": "toy",
            "title": "Squared distance per row",
            "equation": "1",
            "statement": r"\ell = \lVert h - m \rVert_2^2",
            "symbols": {"B": {"min": 1, "max": 3}, "D": {"min": 1, "max": 8}},
            "inputs": {"hidden": {"shape": ["B", "D"]}, "memory_pred": {"shape": ["B", "D"]}},
            "outputs": {"loss": {"shape": ["B"]}},
            "interface": {"kind": "function", "args": ["hidden", "memory_pred"]},
            "oracle": {"expr": "sum((hidden - memory_pred)**2, -1)"},
            "implementations": [{"ref": "implementations.surprise:compute_surprise"}],
        }
    ],
}


def minimal_spec() -> dict[str, Any]:
    """A fresh copy of a minimal spec file's data that loads without error."""
    return copy.deepcopy(_MINIMAL)


def pattern_spec(kind: str, pattern: dict[str, Any], ref: str, spec_id: str = "s") -> dict[str, Any]:
    """A pattern-only spec file with one check ``<kind>:p`` of ``pattern``'s options and one implementation."""
    return {
        "schema": 1,
        "paper": {"title": "T", "authors": ["A"], "arxiv": "1604.06174", "year": 2016},
        "specs": [
            {
                "id": spec_id,
                "title": "t",
                "equation": "1",
                "statement": "s",
                "implementations": [{"ref": ref}],
                "patterns": [{"id": "p", "kind": kind, "description": "d", **pattern}],
            }
        ],
    }


def pattern_case(directory: Path, kind: str, pattern: dict[str, Any], ref: str, spec_id: str = "s") -> Any:
    """The CPU float32 ``Case`` of check ``<kind>:p`` of a :func:`pattern_spec` file written to ``directory``."""
    from conformance.selection import Case

    file = write_spec(directory, pattern_spec(kind, pattern, ref, spec_id), name=f"{spec_id}.yaml")
    spec = load_specs([file], default=False)[spec_id]
    return Case(spec, ref, "cpu", "float32", f"{kind}:p")


def with_key(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """``data`` with the value at ``path`` (keys and list indices) set to ``value``; returns ``data``."""
    target = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return data


def without_key(data: dict[str, Any], path: tuple[Any, ...]) -> dict[str, Any]:
    """``data`` with the key at ``path`` removed; returns ``data``."""
    target = data
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]
    return data


def write_spec(directory: Path, data: dict[str, Any] | str, name: str = "toy.yaml") -> Path:
    """Write spec data (or raw YAML text) to ``directory/name`` and return the path."""
    path = directory / name
    text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    return path


def load_error(*paths: Path) -> SpecError:
    """The one :class:`SpecError` raised by loading ``paths`` (without the shipped specs)."""
    with pytest.raises(SpecError) as info:
        load_specs(list(paths), default=False)
    return info.value


def load_one(path: Path) -> EquationSpec:
    """The single spec defined in ``path``."""
    (spec,) = load_file(path)
    return spec


@functools.cache
def shipped_specs() -> dict[str, EquationSpec]:
    """The specs under ``specs/``, loaded once per test session."""
    return load_specs()


_EXPRESSION_KEYS = {"expr", "lower", "upper", "lhs", "rhs", "of", "equals", "when", "noise_scale", "derive"}
_SUBSTITUTION_KEYS = ("set", "first", "second", "try")  # a tuple: xdist workers must collect the same order


def _strings(value: Any) -> list[str]:
    """An expression, or a mapping of them (an oracle with several outputs, per-output noise scales)."""
    return [str(v) for v in value.values()] if isinstance(value, dict) else [str(value)]


def shipped_expression_texts() -> list[str]:
    """Every expression string in the shipped spec files (oracle, let, constraints, invariants, facts)."""
    texts: list[str] = []
    for file in SHIPPED_SPEC_FILES:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
        for spec in data["specs"]:
            if "oracle" not in spec:
                continue  # a spec of pattern checks only
            texts.extend(spec.get("constraints", []))
            texts.extend(spec["oracle"].get("let", {}).values())
            entries = [spec["oracle"], *spec["inputs"].values(), *spec.get("invariants", []), *spec.get("facts", [])]
            for entry in entries + spec.get("diagnose", []):
                texts.extend(t for k, v in entry.items() if k in _EXPRESSION_KEYS for t in _strings(v))
                strings = {n for n, p in spec.get("params", {}).items() if all(isinstance(v, str) for v in p.get("values", [0]))}
                texts.extend(  # a string param's value in a reading's try is a value, not an expression
                    str(v) for k in _SUBSTITUTION_KEYS for n, v in entry.get(k, {}).items() if not (k == "try" and n in strings)
                )
    return texts


SUITE = REPO_ROOT / "conformance" / "test_conformance.py"


def run_cli(cwd: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """``python -m conformance ARGS`` run in ``cwd`` (a fresh process, as a user runs it)."""
    return subprocess.run([sys.executable, "-m", "conformance", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def run_suite(cwd: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """``python -m pytest <the conformance suite> -p no:cacheprovider ARGS`` run in ``cwd``."""
    command = [sys.executable, "-m", "pytest", str(SUITE), "-p", "no:cacheprovider", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
