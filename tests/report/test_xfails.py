"""conformance.report.xfails: every reviewed expected failure in effect, with what became of it in a run —
an expected failure, an entry that now passes (stale), one that matches no row, one not in this run — each
with the file and line it is recorded at and the spec line it concerns."""

from __future__ import annotations

import textwrap
from pathlib import Path

from hypothesis import settings

from conformance import engine
from conformance.loader.xfail_file import REGISTRY, load_xfail_file, registry_files
from conformance.report.xfails import FLAGGED, xfail_statuses
from conformance.selection import build_cases, xfail_for
from tests.spec_helpers import shipped_specs

FAST = settings(max_examples=5, derandomize=True, deadline=None, database=None)
MEAN = "def f(hidden, memory_pred):\n    return ((hidden - memory_pred) ** 2).mean(-1)\n"  # a mean where Eq. 12 sums
SUM = "def g(hidden, memory_pred):\n    return ((hidden - memory_pred) ** 2).sum(-1)\n"  # Eq. 12 as written


def _entries(tmp_path: Path, text: str) -> list:
    path = tmp_path / "known.yaml"
    path.write_text(textwrap.dedent(text))
    return load_xfail_file(path)


def test_an_entry_without_implementation_concerns_every_implementation(tmp_path: Path) -> None:
    (entry,) = _entries(tmp_path, "xfail:\n  - {spec: surprise, check: oracle, dtype: float16, reason: every one}\n")
    assert entry.implementation is None and entry.xfail.line == 2 and entry.xfail.file.endswith("known.yaml")
    spec = shipped_specs()["surprise"]
    cases = [c for c in build_cases({"surprise": spec}, {}, xfails=[entry], resolve=False) if c.check == "oracle"]
    implementations = {c.implementation for c in cases}
    assert len(implementations) >= 1
    at_float16 = [c for c in cases if c.dtype == "float16"]
    assert {c.implementation for c in at_float16} == implementations and all(xfail_for(c) is not None for c in at_float16)
    assert all(xfail_for(c) is None for c in cases if c.dtype != "float16")


def test_statuses_are_read_off_the_rows(tmp_path: Path) -> None:
    (tmp_path / "mean.py").write_text(MEAN)
    (tmp_path / "sum.py").write_text(SUM)
    mean, good = f"{tmp_path / 'mean.py'}:f", f"{tmp_path / 'sum.py'}:g"
    entries = _entries(
        tmp_path,
        f"""
        xfail:
          - {{spec: surprise, implementation: "{mean}", check: oracle, dtype: float64, reason: sums as a mean}}
          - {{spec: surprise, implementation: "{good}", check: oracle, dtype: float64, reason: fixed since}}
          - {{spec: surprise, implementation: "{good}", check: oracle, dtype: float64, device: cuda, reason: never run}}
          - {{spec: surprise, implementation: "{good}", check: gradcheck, dtype: float16, reason: not generated there}}
          - {{spec: rmsnorm, implementation: "{good}", check: oracle, reason: another spec}}
        """,
    )
    specs = {"surprise": shipped_specs()["surprise"], "rmsnorm": shipped_specs()["rmsnorm"]}
    cases = build_cases(specs, {"surprise": [mean, good], "rmsnorm": [good]}, xfails=entries)
    ran = [c for c in cases if c.spec.id == "surprise" and c.check == "oracle" and c.dtype == "float64"]
    results = [engine.run_case(c, FAST) for c in ran]
    statuses = xfail_statuses({c.spec.id: c.spec for c in cases}.values(), entries, results)
    by_reason = {s["reason"]: s for s in statuses}
    assert by_reason["sums as a mean"]["status"] == "expected failure"
    assert by_reason["sums as a mean"]["rows"] == {"xfailed": 1, "skipped": 1}  # cpu, and cuda (absent here)
    assert by_reason["fixed since"]["status"] == "now passes" and by_reason["fixed since"]["rows"] == {"failed": 1, "skipped": 1}
    assert by_reason["never run"]["status"] == "not run here"  # CUDA absent: its row was skipped
    assert by_reason["not generated there"]["status"] == "matches nothing"
    assert by_reason["another spec"]["status"] == "not in this run"
    assert {s["status"] for s in statuses if s["status"] in FLAGGED} == {"now passes", "matches nothing"}
    first = by_reason["sums as a mean"]
    assert (first["file"], first["line"]) == (str(tmp_path / "known.yaml"), 3)
    oracle_row = next(r for r in results if r.implementation == mean and r.device == "cpu")
    assert first["spec_line"] == f"{oracle_row.spec_file}:{oracle_row.spec_line}"


def test_an_every_implementation_entry_is_listed_once(tmp_path: Path) -> None:
    (entry,) = _entries(tmp_path, 'xfail:\n  - {spec: attention, check: oracle, dtype: float64, reason: "r"}\n')
    spec = shipped_specs()["attention"]
    assert len(spec.implementations) > 1
    cases = build_cases({"attention": spec}, {}, xfails=[entry], resolve=False)
    statuses = xfail_statuses({c.spec.id: c.spec for c in cases}.values(), [entry], [])
    assert len(statuses) == 1 and statuses[0]["implementation"] is None and statuses[0]["status"] == "not in this run"


def test_the_repository_registry_is_found_in_the_run_root(tmp_path: Path) -> None:
    assert registry_files(tmp_path) == []
    (tmp_path / REGISTRY).write_text("xfail: []\n")
    assert registry_files(tmp_path) == [tmp_path / REGISTRY]
    assert load_xfail_file(tmp_path / REGISTRY) == []


def test_the_shipped_registry_loads() -> None:
    root = Path(__file__).parents[2]
    (path,) = registry_files(root)
    entries = load_xfail_file(path)
    build_cases(shipped_specs(), {}, xfails=entries, resolve=False)  # every entry names a spec and a check that exist
