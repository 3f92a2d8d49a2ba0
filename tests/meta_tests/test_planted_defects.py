"""Planted defects: every check the harness runs on an implementation must be able to fail.

One table per spec (``tests/meta_tests/tables/``, records of ``conformance.defects``) names
deliberately wrong implementations (``tests/meta_tests/defects/``, each with a docstring saying what
is wrong and which spec line should catch it), the check that must catch each, and the dtype.
``test_planted_defect_is_caught`` runs that one check under a fixed, derandomized Hypothesis profile
(``conformance.defects.run_planted``) and asserts a catch by that check, for the row's stated reason;
``test_correct_implementation_passes`` runs the spec's correct implementations on every (check, dtype)
of the table with at least as many examples, so a catch shows a discriminating check, not a broken
one. ``test_documented_blind_spot`` asserts, with the reason, where a check cannot see a defect that
another check catches (the claims are exact, not "some check failed"). The table tests below keep
the tables complete as specs grow.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from conformance.calling import resolve
from conformance.defects import (
    Baseline,
    BlindSpot,
    PlantedDefect,
    SpecTable,
    Verdict,
    generated_checks,
    run_blind_spot,
    run_correct,
    run_planted,
    shipped_specs,
)
from tests.meta_tests.tables import DEFECTS_DIR, tables

# A checkpointing defect (Reentrant) warns that no input requires grad: the situation it is caught in.
pytestmark = pytest.mark.filterwarnings("ignore:None of the inputs have requires_grad=True:UserWarning")

TABLES = tables()
DEFECTS = [row for table in TABLES for row in table.defects]
BLIND_SPOTS = [row for table in TABLES for row in table.blind_spots]
BASELINES = [row for table in TABLES for row in table.baselines]


def _judge(verdict: Verdict) -> None:
    if verdict.finding == "skipped":
        pytest.skip(verdict.message)
    assert verdict.holds, verdict.explain()


@pytest.mark.parametrize("row", DEFECTS, ids=lambda r: r.id)
def test_planted_defect_is_caught(row: PlantedDefect) -> None:
    _judge(run_planted(row))


@pytest.mark.parametrize("row", BASELINES, ids=lambda r: r.id)
def test_correct_implementation_passes(row: Baseline) -> None:
    _judge(run_correct(row))


@pytest.mark.parametrize("row", BLIND_SPOTS, ids=lambda r: r.id)
def test_documented_blind_spot(row: BlindSpot) -> None:
    _judge(run_blind_spot(row))


# -- the tables themselves ---------------------------------------------------------------------------
def test_every_shipped_spec_has_a_table() -> None:
    assert sorted(t.spec for t in TABLES) == sorted(shipped_specs())


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.spec)
def test_every_check_has_a_planted_defect(table: SpecTable) -> None:
    """Every check the harness generates for the spec (any device) has a planted defect; with
    ``every_dtype``, every (check, dtype)."""
    generated = generated_checks(shipped_specs()[table.spec])
    if table.every_dtype:
        planted = {(r.check, r.dtype) for r in table.defects}
        assert generated <= planted, f"no planted defect for {sorted(generated - planted)}"
    else:
        checks, planted = {c for c, _ in generated}, {r.check for r in table.defects}
        assert checks <= planted, f"no planted defect for {sorted(checks - planted)}"


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.spec)
def test_the_rows_name_the_spec_and_its_checks(table: SpecTable) -> None:
    spec = shipped_specs()[table.spec]
    known = {c for c, _ in generated_checks(spec)}
    for row in (*table.defects, *table.blind_spots, *table.baselines):
        assert row.spec == table.spec, row.id
        assert row.check in known, f"{row.id}: {row.check!r} is not a check of {table.spec!r}"


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.spec)
def test_the_baselines_are_the_shipped_implementations(table: SpecTable) -> None:
    assert sorted(table.correct) == sorted(impl.id for impl in shipped_specs()[table.spec].implementations)
    assert {b.implementation for b in table.baselines} == set(table.correct)


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.spec)
def test_every_cell_of_the_table_has_a_baseline(table: SpecTable) -> None:
    """Each correct implementation runs every (check, dtype, device) a defect or blind spot names,
    with at least as many examples."""
    runs = {(b.implementation, b.check, b.dtype, b.device): b.max_examples for b in table.baselines}
    for row in (*table.defects, *table.blind_spots):
        for ref in table.correct:
            key = (ref, row.check, row.dtype, row.device)
            assert key in runs, f"{row.id}: {ref} is not run on the same cell"
            assert runs[key] >= row.max_examples, f"{row.id}: {ref} runs fewer examples than the defect"


@pytest.mark.parametrize("table", [t for t in TABLES if t.blind_spots], ids=lambda t: t.spec)
def test_another_check_catches_every_blind_spot(table: SpecTable) -> None:
    """A blind spot is a defect that the named (check, dtype, device) cannot see *while another row catches it*."""
    for blind in table.blind_spots:
        others = [r for r in table.defects if r.defect == blind.defect and r.cell != blind.cell]
        assert others, f"{blind.id}: no other check catches {blind.defect}"


def test_row_ids_are_unique() -> None:
    ids = [r.id for r in (*DEFECTS, *BLIND_SPOTS, *BASELINES)]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})


def test_every_row_names_a_planted_defect() -> None:
    for row in (*DEFECTS, *BLIND_SPOTS):
        path, _, attr = row.defect.partition("[")[0].rpartition(":")
        assert Path(path).parent == DEFECTS_DIR, f"{row.id}: {row.defect} is not in {DEFECTS_DIR}"
        assert callable(resolve(row.defect.partition("[")[0])), row.id


# Public names in the defect modules that are helpers, not defects.
HELPERS = {
    "model_config_defects.py": {"shared_presets_snapshot"},  # what the probes left of the shared presets
    "surprise_defects.py": {"GuideSurpriseFunction"},  # the autograd.Function behind guide_saved_diff
}


@pytest.mark.parametrize("module", sorted(p.name for p in DEFECTS_DIR.glob("*_defects.py")))
def test_every_planted_defect_is_in_a_table(module: str) -> None:
    """Every defect a module defines is a row of some table (a defect no row runs proves nothing)."""
    any_row = next(r for r in DEFECTS if r.defect.partition("[")[0].rpartition(":")[0].endswith(module))
    loaded = inspect.getmodule(resolve(any_row.defect.partition("[")[0]))
    defined = {
        name
        for name, obj in vars(loaded).items()
        if not name.startswith("_") and (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__ == loaded.__name__
    }
    named = {r.defect.partition("[")[0].rpartition(":")[2] for r in DEFECTS if module in r.defect}
    assert defined - HELPERS.get(module, set()) <= named, f"not in any table: {sorted(defined - named)}"
