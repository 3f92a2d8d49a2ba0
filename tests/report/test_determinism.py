"""Two runs on the ``conformance-ci`` profile (derandomized) of the same code give identical rows: the same
outcomes, and the same measured errors (the same examples were drawn)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.spec_helpers import REPO_ROOT, run_cli


def test_two_ci_runs_give_identical_rows(tmp_path: Path) -> None:
    select = ["-k", "rmsnorm", "-k", "cpu", "--hypothesis-profile", "conformance-ci"]
    rows = []
    for name in ("first", "second"):
        done = run_cli(REPO_ROOT, "run", *select, "-q", "--report-dir", str(tmp_path / name))
        assert done.returncode == 0, done.stdout + done.stderr
        report = json.loads((tmp_path / name / "conformance.json").read_text())
        rows.append({(r["spec"], r["implementation"], r["device"], r["dtype"], r["check"]): (r["outcome"], r["max_abs_err"])
                     for r in report["results"]})
    assert rows[0] and rows[0] == rows[1]
    first, second = (str(tmp_path / name / "conformance.json") for name in ("first", "second"))
    diff = run_cli(REPO_ROOT, "report", "diff", first, second)
    assert diff.returncode == 0 and "0 regressions" in diff.stdout and "0 with error drift" in diff.stdout
