"""conformance.report.xfails: every reviewed expected failure in effect, with what became of it in a run —
an expected failure, an entry that now passes (stale), one that matches no row, one not in this run — each
with the file and line it is recorded at and the spec line it concerns."""

from __future__ import annotations

import json
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


def test_both_drivers_read_the_registry_and_report_each_entry(tmp_path: Path) -> None:
    """A run started in a directory with ``xfails.yaml`` applies it, and both drivers' reports list its entries
    with their status: the planted mean recorded as expected, an entry that matches nothing flagged."""
    from tests.spec_helpers import run_cli, run_suite

    (tmp_path / "mean.py").write_text(MEAN)
    (tmp_path / REGISTRY).write_text(
        textwrap.dedent(
            """
            xfail:
              - {spec: surprise, implementation: "mean.py:f", check: oracle, dtype: float64, reason: sums as a mean}
              - {spec: surprise, check: oracle, dtype: float64, device: cuda, reason: only on a GPU}
              - {spec: surprise, implementation: "mean.py:f", check: gradcheck, dtype: float16, reason: never generated}
            """
        )
    )
    common = ["--impl", "surprise=mean.py:f", "--hypothesis-profile", "conformance-ci"]
    cli = run_cli(tmp_path, "run", *common, "--report-dir", "cli", "-k", "float64-oracle", "-q", timeout=300)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    plugin = run_suite(tmp_path, *common, "--report-dir", "plugin", "-k", "float64 and oracle", "-q", "-n", "2", timeout=300)
    assert plugin.returncode == 0, plugin.stdout[-3000:]
    for folder in ("cli", "plugin"):
        report = json.loads((tmp_path / folder / "conformance.json").read_text())
        statuses = {x["reason"]: x["status"] for x in report["xfails"]}
        assert statuses == {"sums as a mean": "expected failure", "only on a GPU": "not run here",
                            "never generated": "matches nothing"}, folder
        markdown = (tmp_path / folder / "conformance.md").read_text()
        assert "| ⚠️ matches nothing | `surprise` | `mean.py:f` | gradcheck | float16 | never generated |" in markdown, folder
        assert "surprise" in report["specs"], "the spec's summary is in the report (under xdist too)"
