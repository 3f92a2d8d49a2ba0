"""One planted-defect table per spec (``conformance.defects.SpecTable``), as Python records.

Each module here is named for its spec and holds ``TABLE``. Defects live in ``tests/meta_tests/defects/``
(each with a docstring saying what is wrong and which spec line catches it); :func:`defect` names one
by file and attribute, as an absolute ``path.py:attr`` reference the harness imports by path.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from pathlib import Path

from conformance.defects import Baseline, PlantedDefect, SpecTable, baselines_for

DEFECTS_DIR = Path(__file__).resolve().parents[1] / "defects"


def defect(module: str, attr: str) -> str:
    """``defect("rmsnorm_defects.py", "NoEps")`` → the reference of that planted defect."""
    return f"{DEFECTS_DIR / module}:{attr}"


def in_module(module: str):
    """A :func:`defect` with the file fixed: ``ref = in_module("rope_defects.py"); ref("CosSinSwapped")``."""
    return lambda attr: defect(module, attr)


FINITE_DIFFERENCES = ("gradcheck", "gradgradcheck")


def recurrence_baselines(correct: tuple[str, ...], defects: tuple[PlantedDefect, ...], examples: int) -> tuple[Baseline, ...]:
    """Baselines for a spec whose finite-difference checks cost a call of the whole recurrence per input element
    (the Titans sequence specs: float64 gradgradcheck of the shipped implementation ~0.25 s an example for
    memory_linear, ~0.5-0.8 s for memory_mlp): the correct implementations run those cells at the rows'
    ``examples`` (the defects are caught at the first example), every other cell at the default baseline count."""
    fast = [r for r in defects if r.check not in FINITE_DIFFERENCES]
    slow = [r for r in defects if r.check in FINITE_DIFFERENCES]
    return baselines_for(correct, fast) + baselines_for(correct, slow, max_examples=examples)


@cache
def tables() -> tuple[SpecTable, ...]:
    """Every table, in spec order."""
    found = []
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        found.append(importlib.import_module(f"{__name__}.{info.name}").TABLE)
    return tuple(sorted(found, key=lambda t: t.spec))
