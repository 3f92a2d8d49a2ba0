"""The rows of a planted-defect table: what a deliberately wrong implementation must make a check do.

A table (:class:`SpecTable`) holds, for one spec, its correct implementations and three kinds of rows:

- :class:`PlantedDefect`: the named check must catch the named wrong implementation (fail with a
  ``CheckFailure`` of that check), for the stated reason where the row says one;
- :class:`BlindSpot`: the named check must *not* see the defect (another row's check does), with why;
- :class:`Baseline`: a correct implementation passes the same (check, dtype), so a catch shows a
  check that discriminates, not one that always fails.

Every field is read by :mod:`conformance.defects.run`; the ones under "expectations" only where set.
Rows hold implementation references (``module:attr`` or ``path/file.py:attr``, optionally with fixed
params ``[name=value]``), resolved when the row runs.

>>> row = PlantedDefect("rmsnorm", "tests/meta_tests/defects/rmsnorm_defects.py:NoEps", "oracle")
>>> row.id
'rmsnorm-NoEps-oracle-float64'
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from conformance.checks import checks_for
from conformance.dtype_helpers import DTYPES
from conformance.spec import EquationSpec

DEFAULT_EXAMPLES = 25  # Hypothesis examples per planted row; every shipped defect is caught within a few
BASELINE_EXAMPLES = 40  # a correct implementation runs at least this many (more than any defect needs)


def ref_name(ref: str) -> str:
    """``"path/defects.py:Name[opt=1]"`` → ``"Name[opt=1]"``: the part of a reference that names it in an id."""
    return ref.rsplit(":", 1)[-1] if ":" in ref else ref


def _cell_id(spec: str, ref: str, check: str, dtype: str, device: str) -> str:
    name = ref_name(ref).replace("[", "-").replace("]", "").replace("=", "-")
    return f"{spec}-{name}-{check}-{dtype}" + ("" if device == "cpu" else f"-{device}")


@dataclass(frozen=True)
class PlantedDefect:
    """One (defect, check) claim: ``check`` run on ``defect`` at ``dtype`` on ``device`` fails.

    ``as_option`` plants the defect as the value of that option of the check's pattern (the spec's
    shipped implementation runs), for checks that judge a pair such as (cache, attention function).
    """

    spec: str
    defect: str
    check: str
    dtype: str = "float64"
    device: str = "cpu"
    max_examples: int = DEFAULT_EXAMPLES
    # The defect also crashes on part of the domain: Hypothesis shrinks and tells the distinct failures
    # apart (report_multiple_bugs), and the one the case reports must be the check's own failure.
    all_failures: bool = False
    shrink: bool = False  # shrink the falsifying example (a stateful check's step sequence)
    as_option: str | None = None
    # expectations on the catch (the stated reason, not some other one)
    message_has: tuple[str, ...] = ()  # fragments of the CheckFailure's text
    detail_has: tuple[str, ...] = ()  # fragments of the report row's detail
    detail_ends: str | None = None  # how the row's detail ends (a spec's diagnosis)
    parts: frozenset[str] | None = None  # exactly these ``[part]`` tags in the failure's text
    row_fields: tuple[str, ...] = ()  # report-row fields the catch must fill (tolerance_basis, ...)
    examples: int | None = None  # exactly this many examples in the report row
    tag: str = ""  # tells apart, in ids, two rows of one (defect, check, dtype) that state different reasons

    @property
    def id(self) -> str:
        return _cell_id(self.spec, self.defect, self.check, self.dtype, self.device) + (f"-{self.tag}" if self.tag else "")

    @property
    def cell(self) -> tuple[str, str, str, str]:
        return (self.spec, self.check, self.dtype, self.device)


@dataclass(frozen=True)
class BlindSpot:
    """``check`` cannot see ``defect`` at ``dtype`` (it passes), for ``reason``; another row's check catches it."""

    spec: str
    defect: str
    check: str
    dtype: str = "float64"
    reason: str = ""
    device: str = "cpu"
    max_examples: int = BASELINE_EXAMPLES

    @property
    def id(self) -> str:
        return _cell_id(self.spec, self.defect, self.check, self.dtype, self.device) + "-blind"

    @property
    def cell(self) -> tuple[str, str, str, str]:
        return (self.spec, self.check, self.dtype, self.device)


@dataclass(frozen=True)
class Baseline:
    """A correct ``implementation`` passes ``check`` at ``dtype`` with ``max_examples`` examples."""

    spec: str
    implementation: str
    check: str
    dtype: str
    device: str = "cpu"
    max_examples: int = BASELINE_EXAMPLES
    min_examples: int = 1  # at least this many examples in the report row
    examples: int | None = None  # exactly this many (a check of fixed cases)
    max_abs_err: float | None = None  # exactly this error (0.0: bitwise results)
    detail_has: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return _cell_id(self.spec, self.implementation, self.check, self.dtype, self.device) + "-correct"


@dataclass(frozen=True)
class SpecTable:
    """One spec's planted defects, blind spots and correct-implementation runs.

    ``every_dtype``: every (check, dtype) the spec generates has a planted defect, not only every check.
    """

    spec: str
    correct: tuple[str, ...]
    defects: tuple[PlantedDefect, ...]
    blind_spots: tuple[BlindSpot, ...] = ()
    baselines: tuple[Baseline, ...] = ()
    every_dtype: bool = False


def baselines_for(
    correct: Iterable[str],
    rows: Iterable[PlantedDefect | BlindSpot],
    *,
    max_examples: int = BASELINE_EXAMPLES,
    extra_cells: Iterable[tuple[str, str, str, str]] = (),
    **expect: object,
) -> tuple[Baseline, ...]:
    """A :class:`Baseline` for each correct implementation on every (spec, check, dtype, device) cell
    of ``rows`` (and ``extra_cells``), with at least ``max_examples`` and at least what any row of the
    cell runs; ``expect`` sets the other :class:`Baseline` fields."""
    most: dict[tuple[str, str, str, str], int] = {cell: max_examples for cell in extra_cells}
    for row in rows:
        most[row.cell] = max(most.get(row.cell, max_examples), row.max_examples)
    return tuple(
        Baseline(spec, ref, check, dtype, device, n, **expect)  # type: ignore[arg-type]
        for (spec, check, dtype, device), n in sorted(most.items())
        for ref in correct
    )


def generated_checks(spec: EquationSpec, device: str | None = None) -> set[tuple[str, str]]:
    """Every (check, dtype) the harness generates for one implementation of ``spec`` (on ``device``, or any)."""
    cells = {(check, dtype) for dtype in DTYPES for check in checks_for(spec, dtype)}
    cells |= {(p.check, dtype) for p in spec.patterns if device is None or device in p.devices for dtype in p.dtypes}
    return {(check, dtype) for check, dtype in cells if dtype in DTYPES}
