"""``conformance new-spec``: scaffold an equation entry and a stub implementation, never overwriting anything.

The entry is a complete, loadable spec of a placeholder equation (``y = x``) whose every field carries a
comment saying what to write there, so ``conformance validate`` passes at once and each edit after that
is checked. It goes into a new paper file, or is appended to the ``specs:`` list of an existing one
(which must end with that list, as the shipped files do); the file is validated after writing and
restored byte for byte if the result does not load. The stub implementation is written next to the
spec (its ref resolves from the spec's folder) and raises ``NotImplementedError`` until it is written.

Nothing is replaced without asking: an existing implementation file is kept unless the user, asked
interactively, says yes; without a terminal the command refuses.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from conformance.validation import SpecError

_ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_ARXIV_RE = re.compile(r"^\d{4}\.\d{4,5}(v\d+)?$")


class ScaffoldError(ValueError):
    """A scaffold that cannot be written as asked; nothing was changed."""


@dataclass(frozen=True)
class Request:
    """What to scaffold: the paper file, the entry's id and title, the paper, the stub implementation."""

    file: Path
    spec_id: str
    title: str
    equation: str
    paper_title: str | None = None
    authors: tuple[str, ...] = ()
    year: int | None = None
    arxiv: str | None = None
    implementation: str = ""  # file name beside the spec; default <spec_id>_impl.py


PAPER = """\
# {paper_title}
# Schema: docs/spec-schema.md. Check every edit with: conformance validate {file_name}
schema: 1
paper:
  title: {paper_title_yaml}
  authors: [{authors}]
  arxiv: "{arxiv}"        # quoted: unquoted, YAML reads 1706.03762 as a number
  year: {year}
specs:
"""

ENTRY = """\
  - id: {spec_id}
    title: {title_yaml}
    equation: "{equation}"          # the paper's own equation number
    statement: 'y = x'              # the equation as the paper writes it (LaTeX is fine)
    ambiguities:                    # every choice the paper leaves open, and the one this spec makes
      - question: What does the paper leave open?
        choice: The choice this spec makes, and why.
    symbols:                        # dimensions, drawn from [min, max]
      N: {{min: 1, max: 16}}
    inputs:                         # tensors, shaped by the symbols
      x: {{shape: [N], magnitude: [1.0e-3, 1.0e+3]}}
    outputs:
      y: {{shape: [N]}}
    interface:                      # how the implementation is called
      kind: function                # or module (with init: {{...}})
      args: [x]
    oracle:
      expr: "x"                     # the equation in the expression language (docs/spec-schema.md)
    invariants: []                  # relations the paper implies (permutation, homogeneity, identity, ...)
    gradients:
      wrt: [x]
    implementations:
      - ref: {implementation}:{function}     # resolves from this file's folder
"""

STUB = '''"""Implementation of {spec_id} ({title}): write it, then run

    conformance run --spec-dir {spec_dir} --impl {spec_id}={implementation}:{function}
"""


def {function}(x):
    raise NotImplementedError("{spec_id}: the implementation is not written yet")
'''


def scaffold(request: Request, *, confirm: Callable[[str], bool] | None = None) -> list[Path]:
    """Write the entry (and the stub, unless one exists and ``confirm`` does not allow replacing it).

    ``confirm(question)`` is asked before replacing an existing file; ``None`` (no terminal) refuses.
    Returns the paths written. Raises :class:`ScaffoldError` (nothing changed) or, if the written file
    does not load, restores it and raises the :class:`SpecError`.
    """
    _check(request)
    impl_name = request.implementation or f"{request.spec_id}_impl.py"
    impl_path = request.file.parent / impl_name
    function = request.spec_id
    entry = ENTRY.format(
        spec_id=request.spec_id,
        title_yaml=_yaml_text(request.title),
        equation=request.equation,
        implementation=impl_name,
        function=function,
    )
    if request.file.exists():
        original = request.file.read_bytes()
        text = original.decode("utf-8")
        indent = _check_appendable(request, text)
        entry = "\n".join((indent + line[2:]) if line.startswith("  ") else line for line in entry.splitlines()) + "\n"
        new_text = text + ("" if text.endswith("\n") else "\n") + entry
    else:
        original = None
        missing = [
            flag
            for flag, value in (
                ("--paper-title", request.paper_title),
                ("--authors", request.authors),
                ("--year", request.year),
                ("--arxiv", request.arxiv),
            )
            if not value
        ]
        if missing:
            raise ScaffoldError(f"{request.file} does not exist; a new paper file needs {', '.join(missing)}")
        new_text = (
            PAPER.format(
                paper_title=request.paper_title,
                paper_title_yaml=_yaml_text(request.paper_title or ""),
                authors=", ".join(_yaml_text(a) for a in request.authors),
                arxiv=request.arxiv,
                year=request.year,
                file_name=request.file.name,
            )
            + entry
        )
    write_stub = True
    if impl_path.exists():
        question = f"{impl_path} exists; replace it with a stub? [y/N] "
        if confirm is None:
            raise ScaffoldError(f"{impl_path} exists; not replaced (run interactively to be asked, or pick --implementation)")
        write_stub = confirm(question)
    request.file.parent.mkdir(parents=True, exist_ok=True)
    request.file.write_text(new_text, encoding="utf-8")
    try:
        from conformance.spec import load_file

        load_file(request.file)
    except SpecError:
        if original is None:
            request.file.unlink()
        else:
            request.file.write_bytes(original)
        raise
    written = [request.file]
    if write_stub:
        stub = STUB.format(
            spec_id=request.spec_id,
            title=request.title,
            spec_dir=request.file.parent,
            implementation=impl_name,
            function=function,
        )
        impl_path.write_text(stub, encoding="utf-8")
        written.append(impl_path)
    return written


def _check(request: Request) -> None:
    if not _ID_RE.match(request.spec_id):
        raise ScaffoldError(f"--id {request.spec_id!r}: expected a lower-case identifier like 'layer_norm'")
    if request.arxiv is not None and not _ARXIV_RE.match(request.arxiv):
        raise ScaffoldError(f"--arxiv {request.arxiv!r}: expected an arXiv id such as 1706.03762")
    if request.implementation and not re.match(r"^[A-Za-z_][\w]*\.py$", request.implementation):
        raise ScaffoldError(f"--implementation {request.implementation!r}: expected a file name such as my_impl.py")
    if request.file.suffix not in (".yaml", ".yml"):
        raise ScaffoldError(f"{request.file}: expected a .yaml file")


def _check_appendable(request: Request, text: str) -> str:
    """An existing paper file must load, not define the id already, and end with its ``specs:`` list.

    Returns the indentation of that list's items, which the appended entry takes.
    """
    from conformance.spec import load_file

    specs = load_file(request.file)  # a SpecError here: the file is already broken; nothing is written
    if any(s.id == request.spec_id for s in specs):
        raise ScaffoldError(f"{request.file} already defines {request.spec_id!r}")
    top_level = [line for line in text.splitlines() if line and not line[0].isspace() and not line.startswith("#")]
    if not top_level or not top_level[-1].startswith("specs:"):
        raise ScaffoldError(f"{request.file}: 'specs:' is not the last top-level key, so an entry cannot be appended safely")
    item = re.search(r"^specs:\s*\n(?:\s*#.*\n)*( *)- ", text, flags=re.MULTILINE)
    return item.group(1) if item else "  "


def _yaml_text(value: str) -> str:
    """A YAML single-quoted scalar."""
    return "'" + value.replace("'", "''") + "'"
