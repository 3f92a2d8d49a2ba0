"""docs/adding-a-spec.md, run as written: its files are written and its commands run in order, in a fresh folder.

A command with a trailing ``# fails: CHECK`` comment must exit 1 with that check failing on the CPU rows;
with ``says: TEXT`` after it, every failing CPU row of that check must say TEXT (the diagnosis the doc
promises). Every other command must exit 0. The correct implementation must pass every CPU row.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "adding-a-spec.md"
_BLOCK = re.compile(r"<!-- (file: (?P<file>\S+)|run) -->\n```\w*\n(?P<body>.*?)```", re.DOTALL)


def _steps() -> list[tuple[str, str]]:
    """("file", name and body) and ("run", command line) in the order the doc gives them."""
    steps: list[tuple[str, str]] = []
    for match in _BLOCK.finditer(DOC.read_text(encoding="utf-8")):
        if match["file"]:
            steps.append(("file", f"{match['file']}\n{match['body']}"))
        else:
            steps.extend(("run", line) for line in match["body"].splitlines() if line.strip())
    return steps


def test_the_walkthrough_runs_as_written(tmp_path: Path) -> None:
    steps = _steps()
    assert [kind for kind, _ in steps].count("file") == 3 and len(steps) >= 8
    for kind, text in steps:
        if kind == "file":
            name, body = text.split("\n", 1)
            (tmp_path / name).write_text(body, encoding="utf-8")
            continue
        command, _, comment = text.partition("#")
        argv = shlex.split(command)
        assert argv[0] == "conformance"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "conformance",
                *argv[1:],
                *(["-q"] if argv[1] == "run" else []),
                *(["--hypothesis-profile", "conformance-ci"] if argv[1] == "run" and "--hypothesis-profile" not in argv else []),
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
        expected_failure = re.search(r"fails: (\S+)", comment)
        if expected_failure is None:
            assert result.returncode == 0, (text, result.stdout[-2000:], result.stderr[-2000:])
            continue
        assert result.returncode == 1, (text, result.stdout[-2000:])
        report_dir = argv[argv.index("--report-dir") + 1]
        rows = json.loads((tmp_path / report_dir / "conformance.json").read_text())["results"]
        failed = {r["check"] for r in rows if r["outcome"] == "failed" and r["device"] == "cpu"}
        assert expected_failure[1] in failed, (text, sorted(failed))
        said = re.search(r"says: (.+)$", comment)
        if said is not None:
            messages = [r["message"] for r in rows if r["outcome"] == "failed" and r["check"] == expected_failure[1]]
            assert all(said[1].strip() in m for m in messages), (said[1], messages)
    rows = json.loads((tmp_path / "reports" / "latest" / "conformance.json").read_text())["results"]
    cpu = [r for r in rows if r["device"] == "cpu"]
    assert (
        cpu
        and {r["outcome"] for r in cpu} == {"passed"}
        and {r["implementation"] for r in cpu} == {"label_smoothed_ce_impl.py:label_smoothed_ce"}
    )
