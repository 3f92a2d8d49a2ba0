"""conformance.scaffold and ``conformance new-spec``: a loadable entry and a stub, never overwriting without asking."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conformance.cli import main
from conformance.scaffold import Request, ScaffoldError, scaffold
from conformance.spec import load_file
from tests.spec_helpers import SPEC_DIR

NEW = dict(paper_title="Gaussian Error Linear Units", authors=("Dan Hendrycks", "Kevin Gimpel"), year=2016, arxiv="1606.08415")


def test_a_new_paper_file_loads_and_its_stub_raises_until_written(tmp_path: Path) -> None:
    file = tmp_path / "papers" / "gelu.yaml"
    written = scaffold(Request(file, "gelu", "GELU", "1", **NEW))
    assert written == [file, tmp_path / "papers" / "gelu_impl.py"]
    (spec,) = load_file(file)
    assert (spec.id, spec.paper.arxiv, spec.implementations[0].ref) == ("gelu", "1606.08415", "gelu_impl.py:gelu")
    assert "# the equation in the expression language" in file.read_text()
    namespace: dict = {}
    exec((tmp_path / "papers" / "gelu_impl.py").read_text(), namespace)
    with pytest.raises(NotImplementedError, match="gelu: the implementation is not written yet"):
        namespace["gelu"](None)


def test_an_entry_is_appended_to_an_existing_paper_file_keeping_what_it_had(tmp_path: Path) -> None:
    file = tmp_path / "rmsnorm.yaml"
    shutil.copy(SPEC_DIR / "rmsnorm.yaml", file)
    before = file.read_bytes()
    scaffold(Request(file, "rms_variant", "A variant", "5"))
    assert file.read_bytes().startswith(before)
    assert [s.id for s in load_file(file)] == ["rmsnorm", "rms_variant"]


def test_a_duplicate_id_or_an_unsafe_file_changes_nothing(tmp_path: Path) -> None:
    file = tmp_path / "rmsnorm.yaml"
    shutil.copy(SPEC_DIR / "rmsnorm.yaml", file)
    before = file.read_bytes()
    with pytest.raises(ScaffoldError, match="already defines 'rmsnorm'"):
        scaffold(Request(file, "rmsnorm", "again", "4"))
    reordered = tmp_path / "reordered.yaml"
    text = before.decode()
    head, specs = text.split("specs:\n", 1)
    paper_block = head[head.index("paper:") :]
    reordered.write_text(head[: head.index("paper:")] + "specs:\n" + specs + paper_block)
    kept = reordered.read_bytes()
    with pytest.raises(ScaffoldError, match="'specs:' is not the last top-level key"):
        scaffold(Request(reordered, "x", "x", "1"))
    assert file.read_bytes() == before and reordered.read_bytes() == kept
    assert not (tmp_path / "rmsnorm_impl.py").exists() and not (tmp_path / "x_impl.py").exists()


def test_an_existing_implementation_is_replaced_only_when_the_user_says_so(tmp_path: Path) -> None:
    impl = tmp_path / "gelu_impl.py"
    impl.write_text("# my work\n")
    with pytest.raises(ScaffoldError, match="exists; not replaced"):
        scaffold(Request(tmp_path / "gelu.yaml", "gelu", "GELU", "1", **NEW))  # no terminal: refused
    assert not (tmp_path / "gelu.yaml").exists() and impl.read_text() == "# my work\n"
    asked: list[str] = []
    scaffold(Request(tmp_path / "gelu.yaml", "gelu", "GELU", "1", **NEW), confirm=lambda q: asked.append(q) or False)
    assert asked and impl.read_text() == "# my work\n" and (tmp_path / "gelu.yaml").exists()
    scaffold(Request(tmp_path / "other.yaml", "gelu", "GELU", "1", **NEW), confirm=lambda q: True)
    assert "NotImplementedError" in impl.read_text()


def test_a_new_file_needs_the_paper(tmp_path: Path) -> None:
    with pytest.raises(ScaffoldError, match="a new paper file needs --paper-title, --authors, --year, --arxiv"):
        scaffold(Request(tmp_path / "new.yaml", "gelu", "GELU", "1"))
    with pytest.raises(ScaffoldError, match="expected an arXiv id"):
        scaffold(Request(tmp_path / "new.yaml", "gelu", "GELU", "1", **{**NEW, "arxiv": "arXiv:1606"}))


def test_the_command_asks_for_missing_fields_on_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter(["GELU", "1", "Gaussian Error Linear Units", "Dan Hendrycks, Kevin Gimpel", "2016", "1606.08415"])
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
    assert main(["new-spec", str(tmp_path / "gelu.yaml"), "--id", "gelu"]) == 0
    (spec,) = load_file(tmp_path / "gelu.yaml")
    assert spec.paper.authors == ("Dan Hendrycks", "Kevin Gimpel") and spec.paper.year == 2016


def test_the_command_names_missing_flags_without_a_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new-spec", str(tmp_path / "gelu.yaml"), "--id", "gelu"]) == 2
    assert "missing --title, --equation, --paper-title, --authors, --year, --arxiv" in capsys.readouterr().err
