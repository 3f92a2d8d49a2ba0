"""Every ``>>>`` example in ``conformance`` and ``implementations`` runs and gives what it says."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil
from pathlib import Path

import pytest

import conformance
import implementations
from tests.spec_helpers import REPO_ROOT


def _modules_with_examples() -> list[str]:
    names = []
    for package in (conformance, implementations):
        names.append(package.__name__)
        names.extend(info.name for info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."))
    found = []
    for name in sorted(names):
        origin = importlib.util.find_spec(name).origin
        if origin and origin.endswith(".py") and ">>>" in Path(origin).read_text(encoding="utf-8"):
            found.append(name)
    return found


MODULES = _modules_with_examples()


def test_modules_with_examples_are_found() -> None:
    expected = {
        "conformance.expr",
        "conformance.evaluate",
        "conformance.spec",
        "conformance.tolerance",
        "conformance.symbolic",
        "conformance.strategies",
        "conformance.invariants",
        "implementations.attention",
    }
    assert expected <= set(MODULES)


@pytest.mark.parametrize("module_name", MODULES)
def test_doctests(module_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO_ROOT)  # examples use paths like "specs" relative to the repository root
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False, report=True)
    assert result.attempted > 0, f"{module_name} has '>>>' text but no example was collected"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {module_name} (details above)"
