"""The review flow end to end: a baseline run, a change that breaks an implementation, and ``report diff``
naming the broken rows as regressions (the README's "Review flow")."""

from __future__ import annotations

import json
from pathlib import Path

from tests.spec_helpers import minimal_spec, run_cli, write_spec

RIGHT = "def f(hidden, memory_pred):\n    return ((hidden - memory_pred) ** 2).sum(-1)\n"
WRONG = "def f(hidden, memory_pred):\n    return ((hidden - memory_pred) ** 2).mean(-1)  # a mean, not Eq. 1's sum\n"


def test_a_broken_implementation_is_a_regression_against_the_baseline(tmp_path: Path) -> None:
    write_spec(tmp_path, minimal_spec())
    impl = tmp_path / "impl.py"
    common = ["--spec-dir", "toy.yaml", "--impl", "toy=impl.py:f", "-k", "toy", "-k", "cpu"]
    common += ["--hypothesis-profile", "conformance-ci"]
    impl.write_text(RIGHT)
    assert run_cli(tmp_path, "run", *common, "--report-dir", "base").returncode == 0
    impl.write_text(WRONG)
    assert run_cli(tmp_path, "run", *common, "--report-dir", "head").returncode == 1
    done = run_cli(tmp_path, "report", "diff", "base/conformance.json", "head/conformance.json")
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.startswith("# Conformance diff: **regressions**")
    assert "`toy` `impl.py:f` cpu float64 `oracle`: passed → **failed**" in done.stdout
    listed = json.loads(run_cli(tmp_path, "report", "diff", "base/conformance.json", "head/conformance.json",
                                "--format", "json").stdout)
    assert {r["check"] for r in listed["regressions"]} >= {"oracle"} and not listed["new"] and not listed["removed"]
