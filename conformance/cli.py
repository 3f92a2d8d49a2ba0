"""The ``conformance`` command.

- ``conformance run [PYTEST ARGS...]`` — run the conformance suite (same as ``pytest conformance``
  from a checkout, but works from any directory once the package is installed).
- ``conformance validate [SPEC_FILE_OR_DIR...]`` — load and check specs against the schema, print
  one line per equation, exit 1 with the schema error otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="conformance", description="Paper-to-code conformance harness for PyTorch.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the conformance suite (extra arguments go to pytest)")
    run.add_argument("pytest_args", nargs=argparse.REMAINDER)
    validate = sub.add_parser("validate", help="check spec files against the schema")
    validate.add_argument("paths", nargs="*", help="spec files or directories (default: the shipped specs)")
    validate.add_argument("--only", action="store_true", help="check only PATHS, not the shipped specs too")
    args = parser.parse_args(argv)
    if args.command == "run":
        return _run(args.pytest_args)
    return _validate(args.paths, include_default=not args.only)


def _run(pytest_args: list[str]) -> int:
    import pytest

    suite = Path(__file__).resolve().parent / "test_conformance.py"
    return int(pytest.main([str(suite), *pytest_args]))


def _validate(paths: list[str], include_default: bool) -> int:
    from conformance.spec import SpecError, load_specs

    try:
        specs = load_specs(paths, default=include_default)
    except SpecError as exc:
        print(f"invalid spec: {exc}", file=sys.stderr)
        return 1
    for spec in specs.values():
        impls = ", ".join(i.ref for i in spec.implementations)
        print(
            f"{spec.id}: {spec.paper.title} Eq. {spec.equation} — {len(spec.invariants)} invariants, "
            f"{len(spec.facts)} facts; implementations: {impls} ({spec.file}:{spec.line})"
        )
    print(f"{len(specs)} spec(s) valid")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
