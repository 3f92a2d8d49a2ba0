"""conformance.cli: ``conformance validate`` (and ``python -m conformance``) on good and bad specs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conformance.cli import main
from tests.spec_helpers import REPO_ROOT, minimal_spec, shipped_specs, with_key, write_spec


def test_validate_prints_each_shipped_spec(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    specs = shipped_specs()
    assert lines[-1] == f"{len(specs)} spec(s) valid"
    assert [line.split(":", 1)[0] for line in lines[:-1]] == sorted(specs)
    for spec in specs.values():
        (line,) = [ln for ln in lines if ln.startswith(f"{spec.id}:")]
        assert f"{spec.paper.title} Eq. {spec.equation}" in line
        assert f"{len(spec.invariants)} invariants, {len(spec.facts)} facts" in line
        assert all(impl.ref in line for impl in spec.implementations)
        assert line.endswith(f"({spec.file}:{spec.line})")
    assert err == ""


def test_validate_checks_only_the_given_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_spec(tmp_path, minimal_spec())
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("toy: A Test Paper Eq. 1 — 0 invariants, 0 facts")
    assert out.splitlines()[-1] == "1 spec(s) valid"


def test_the_former_only_flag_is_still_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--only", str(write_spec(tmp_path, minimal_spec()))]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 spec(s) valid"


def test_validate_bad_spec_exits_1_with_the_spec_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write_spec(tmp_path, with_key(minimal_spec(), ("specs", 0, "symbols", "B", "min"), 0))
    assert main(["validate", str(bad)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"invalid spec: {bad}: specs[0].symbols.B: expected 1 <= min <= max <= 4096")


def test_validate_missing_path_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 1
    assert "not found" in capsys.readouterr().err


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "validate" in capsys.readouterr().err


def test_python_dash_m_conformance_validate() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "conformance", "validate"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"{len(shipped_specs())} spec(s) valid"
    assert any(line.startswith("rmsnorm: Root Mean Square Layer Normalization Eq. 4") for line in result.stdout.splitlines())


def test_validate_imports_neither_torch_nor_an_implementation_unless_asked() -> None:
    """``conformance validate specs/`` checks every shipped spec without importing torch or any implementation;
    ``--resolve`` imports the implementations (and with them torch)."""
    probe = (
        "import sys\n"
        "from conformance.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'implementations'))\n"
        "print('RC', rc, 'HEAVY', len(heavy), heavy[:3])\n"
    )
    plain = subprocess.run(
        [sys.executable, "-c", probe, "validate", "specs"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert plain.stdout.splitlines()[-1] == "RC 0 HEAVY 0 []", plain.stdout + plain.stderr
    resolved = subprocess.run(
        [sys.executable, "-c", probe, "validate", "--resolve", "specs"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    last = resolved.stdout.splitlines()[-1]
    assert last.startswith("RC 0 HEAVY ") and not last.startswith("RC 0 HEAVY 0 "), resolved.stdout + resolved.stderr


def _write_report(directory: Path, rows: list[tuple[str, str, str, str]]) -> None:
    from conformance.report import write_reports
    from conformance.results import make_result

    results = [
        make_result({"spec": s, "implementation": i, "device": "cpu", "dtype": "float32", "check": c}, outcome=o)
        for s, i, c, o in rows
    ]
    write_reports(results, directory, profile="conformance-ci", argv=["conformance", "run"])


def test_list_names_papers_equations_implementations_and_the_last_reports_outcomes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rmsnorm = "implementations.rmsnorm:RMSNorm"
    _write_report(
        tmp_path,
        [
            ("rmsnorm", rmsnorm, "oracle", "passed"),
            ("rmsnorm", rmsnorm, "determinism", "passed"),
            ("rmsnorm", "my_norm.py:MyNorm", "oracle", "failed"),
            ("rmsnorm", "sympy", "fact:unit_rms_without_eps", "passed"),
        ],
    )
    assert main(["list", "--report-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith(f"last report: {tmp_path / 'conformance.json'} (")
    assert "Root Mean Square Layer Normalization (arXiv 1910.07467)" in out
    assert f"    {rmsnorm}: 2 passed" in out.splitlines()
    assert "    my_norm.py:MyNorm (not in the spec: from the report, e.g. --impl): FAILING: 1 failed" in out.splitlines()
    assert "    implementations.surprise:compute_surprise: not in the last report" in out.splitlines()
    assert "sympy" not in out


def test_list_without_a_report_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--report-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"last report: none in {tmp_path}"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("not json", "not a readable JSON report"),
        ('{"schema": "other"}', "not a conformance report"),
        ('{"schema": "conformance-report", "schema_version": "2.0", "results": []}', "schema version '2.0'"),
    ],
)
def test_list_refuses_a_file_that_is_not_a_report_it_can_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, words: str
) -> None:
    (tmp_path / "conformance.json").write_text(text)
    assert main(["list", "--report-dir", str(tmp_path)]) == 1
    assert words in capsys.readouterr().err
