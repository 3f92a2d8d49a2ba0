"""Equation specs: the model and the loader, under the name every module has always imported.

One YAML file per paper (see ``docs/spec-schema.md``). The records are defined in
:mod:`conformance.model`; loading and validation live in :mod:`conformance.loader`, the YAML
protections in :mod:`conformance.safe_yaml`, refs in :mod:`conformance.refs` and the error type in
:mod:`conformance.validation`. Any problem raises :class:`SpecError` naming the file, the key path
and what was expected. Nothing in a spec is executed and no implementation is imported on load
(:func:`conformance.refs.resolve_implementations` imports them).

>>> from conformance.spec import load_specs
>>> specs = load_specs(["specs"])
>>> specs["rmsnorm"].paper.arxiv
'1910.07467'
"""

from __future__ import annotations

from conformance.loader import MAX_EXAMPLE_BYTES, MAX_SPEC_BYTES, SCHEMA_VERSION, load_file, load_specs
from conformance.model import (
    Ambiguity,
    Diagnosis,
    Dim,
    EquationSpec,
    Fact,
    Implementation,
    Interface,
    Invariant,
    Oracle,
    Output,
    Paper,
    Param,
    PatternCheck,
    Symbol,
    TensorInput,
    ToleranceRule,
    XFail,
    format_implementation,
    parse_implementation,
)
from conformance.validation import SpecError

__all__ = [
    "MAX_EXAMPLE_BYTES",
    "MAX_SPEC_BYTES",
    "SCHEMA_VERSION",
    "Ambiguity",
    "Diagnosis",
    "Dim",
    "EquationSpec",
    "Fact",
    "Implementation",
    "Interface",
    "Invariant",
    "Oracle",
    "Output",
    "Paper",
    "Param",
    "PatternCheck",
    "SpecError",
    "Symbol",
    "TensorInput",
    "ToleranceRule",
    "XFail",
    "format_implementation",
    "load_file",
    "load_specs",
    "parse_implementation",
]
