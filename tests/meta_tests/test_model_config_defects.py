"""Planted defects for ``model_config``: the config_table check catches each, in the part it names.

The spec has one check, ``config_table:paper_table``, made of parts whose problems are tagged in its
detail (``[table]``, ``[derived]``, ``[to_dict]``, ``[round trip]``, ``[fresh instance]``,
``[rejects]``). Every defect in ``defects/model_config_defects.py`` must fail the check with exactly
the tags listed here, our ``implementations.config:ModelConfig`` must pass it, and every part must
catch some defect that no other part sees.

The spec entry is read from the shipped specs once it is there, and until then from
``specs/model_config.entry.yaml.txt`` under the paper header of ``specs/attention_is_all_you_need.yaml``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import settings

from conformance.calling import resolve
from conformance.checks import CheckFailure
from conformance.runner import run_case
from conformance.selection import Case
from conformance.spec import EquationSpec, load_file
from tests.meta_tests.defect_helpers import defect_ref

REPO = Path(__file__).resolve().parents[2]
ENTRY = REPO / "specs" / "model_config.entry.yaml.txt"
PAPER_FILE = REPO / "specs" / "attention_is_all_you_need.yaml"
SUITE = str(REPO / "conformance" / "test_conformance.py")
CORRECT = "implementations.config:ModelConfig"
CHECK = "config_table:paper_table"
PARTS = ("table", "derived", "to_dict", "round trip", "fresh instance", "rejects")
SETTINGS = settings(max_examples=1, derandomize=True, deadline=None, database=None)

# defect in defects/model_config_defects.py -> the parts of the check that must report it (exactly).
DEFECTS: dict[str, set[str]] = {
    "GuideVerbatim": {"table", "derived", "rejects"},
    "GuideKeyError": {"rejects"},
    "NoHeadDivisibility": {"rejects"},
    "VagueDivisibilityError": {"rejects"},
    "BigDffDefault": {"table"},
    "BigEnglishFrenchDropout": {"table"},
    "FloatDModel": {"table", "derived", "round trip"},
    "TrueDivisionHeadDim": {"derived"},
    "DropsPadToken": {"table"},
    "RenamedHeads": {"table", "round trip"},
    "LiveDict": {"to_dict"},
    "ReadOnlyView": {"to_dict"},
    "NoEquality": {"round trip"},
    "SharedPresets": {"fresh instance"},
}


def paper_header(text: str) -> str:
    """A spec file's text up to and including its ``specs:`` line."""
    lines = text.splitlines(keepends=True)
    end = next(i for i, line in enumerate(lines) if line.rstrip() == "specs:")
    return "".join(lines[: end + 1])


def write_entry_spec(directory: Path) -> Path:
    """The entry under the paper's header, as a complete spec file in ``directory``."""
    path = directory / "attention_is_all_you_need_model_config.yaml"
    path.write_text(paper_header(PAPER_FILE.read_text(encoding="utf-8")) + ENTRY.read_text(encoding="utf-8"), encoding="utf-8")
    return path


def shipped_file() -> Path | None:
    """The shipped spec file that holds ``model_config`` once it is integrated (read alone, not every spec)."""
    for path in sorted((REPO / "specs").glob("*.yaml")):
        if re.search(r"^\s*- id: model_config\s*$", path.read_text(encoding="utf-8"), re.MULTILINE):
            return path
    return None


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> EquationSpec:
    path = shipped_file() or write_entry_spec(tmp_path_factory.mktemp("model_config"))
    (entry,) = (s for s in load_file(path) if s.id == "model_config")
    return entry


def run(spec: EquationSpec, ref: str) -> tuple[CheckFailure | None, list[dict]]:
    rows: list[dict] = []
    case = Case(spec.with_implementations([ref]), ref, "cpu", "float32", CHECK)
    try:
        run_case(case, rows.append, SETTINGS)
    except CheckFailure as failure:
        return failure, rows
    return None, rows


def parts(failure: BaseException) -> set[str]:
    return set(re.findall(r"\[(" + "|".join(PARTS) + r")\]", str(failure)))


@pytest.mark.parametrize(("defect", "expected"), sorted(DEFECTS.items()), ids=sorted(DEFECTS))
def test_planted_defect_is_caught(spec: EquationSpec, defect: str, expected: set[str]) -> None:
    failure, rows = run(spec, defect_ref(f"model_config_defects.py:{defect}"))
    assert failure is not None, f"{defect} passed: {rows}"
    assert str(failure).startswith(f"{CHECK} failed: ")
    assert parts(failure) == expected, str(failure)
    assert rows[-1]["detail"] and rows[-1]["max_abs_err"] >= 1 and rows[-1]["examples"] == 9


def test_correct_implementation_passes(spec: EquationSpec) -> None:
    failure, rows = run(spec, CORRECT)
    assert failure is None, str(failure)
    assert rows[-1]["examples"] == 9 and "4 variants (base, big, small, large) match the table" in rows[-1]["detail"]


@pytest.mark.parametrize("part", PARTS)
def test_every_part_catches_a_defect_alone(part: str) -> None:
    assert any(expected == {part} for expected in DEFECTS.values()), f"no defect is caught by [{part}] alone"


def test_the_guide_verbatim_is_reported_in_full(spec: EquationSpec) -> None:
    failure, _ = run(spec, defect_ref("model_config_defects.py:GuideVerbatim"))
    text = str(failure)
    assert "[table] from_paper('big') raised KeyError: 'big'" in text
    assert "[rejects] from_paper('xl') raised KeyError: 'xl'; expected ValueError mentioning" in text
    assert "[rejects] GuideVerbatim(d_model=500, n_heads=12, ...) returned GuideVerbatim(d_model=500" in text
    assert "[derived] from_paper('base').d_head raised AttributeError" in text


def test_probes_restore_a_shared_preset(spec: EquationSpec) -> None:
    failure, _ = run(spec, defect_ref("model_config_defects.py:SharedPresets"))
    assert "the constructor returns a shared instance — it is the same object" in str(failure)
    snapshot = resolve(defect_ref("model_config_defects.py:shared_presets_snapshot"))()
    assert snapshot == spec.patterns[0].options["table"]  # every field probed is back, nothing added


def test_spec_records_table_3_and_the_guide_variants(spec: EquationSpec) -> None:
    (pattern,) = spec.patterns
    assert (pattern.kind, pattern.devices, pattern.dtypes) == ("config_table", ("cpu",), ("float32",))
    table = pattern.options["table"]
    columns = ("n_layers", "d_model", "d_ff", "n_heads", "dropout")  # N, d_model, d_ff, h, P_drop
    assert tuple(table["base"][c] for c in columns) == (6, 512, 2048, 8, 0.1)
    assert tuple(table["big"][c] for c in columns) == (6, 1024, 4096, 16, 0.3)
    assert tuple(table["large"][c] for c in columns) == (12, 1024, 2048, 16, 0.1)  # the guide's, not the paper's
    assert all(row == {"d_head": 64} for row in pattern.options["derived"].values())  # d_k = d_v = 64
    assert any("large" in a.question + a.choice and "big" in a.choice for a in spec.ambiguities)
    assert [i.ref for i in spec.implementations] == [CORRECT]


def test_suite_runs_with_impl_for_the_spec_id(pytester: pytest.Pytester) -> None:
    spec_dir = [] if shipped_file() else ["--spec-dir", str(write_entry_spec(pytester.path))]
    defect = defect_ref("model_config_defects.py:GuideKeyError")
    result = pytester.runpytest_subprocess(
        SUITE,
        "-p",
        "no:cacheprovider",
        "--report-dir",
        "rep",
        *spec_dir,
        "--impl",
        f"model_config={CORRECT}",
        "--impl",
        f"model_config={defect}",
    )
    assert result.ret == 1, result.stdout.str()[-3000:]
    rows = {row["implementation"]: row for row in json.loads((pytester.path / "rep" / "conformance.json").read_text())["results"]}
    assert set(rows) == {CORRECT, defect}
    assert rows[CORRECT]["outcome"] == "passed" and rows[CORRECT]["check"] == CHECK
    assert rows[defect]["outcome"] == "failed" and "[rejects] from_paper('xl') raised KeyError" in rows[defect]["detail"]
