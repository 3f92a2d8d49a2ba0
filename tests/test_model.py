"""conformance.model: the spec records, importable without torch, YAML or the loader."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conformance.model import EquationSpec, Implementation, Oracle, Param, format_implementation, parse_implementation
from tests.spec_helpers import REPO_ROOT, shipped_specs


def test_the_model_imports_no_torch_and_no_loader() -> None:
    code = (
        "import sys\n"
        "import conformance.model\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'yaml', 'implementations')"
        " or m.startswith('conformance.loader'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]


def test_spec_module_re_exports_the_model() -> None:
    import conformance.spec as spec_module
    from conformance.validation import SpecError

    assert spec_module.EquationSpec is EquationSpec and spec_module.Param is Param and spec_module.SpecError is SpecError


def oracle(reference: str | None) -> Oracle:
    return Oracle(expr=None, expr_text=None, let=(), reference=reference, compute_dtype={}, line=1)


@pytest.mark.parametrize(("reference", "is_ref"), [(None, False), ("rmsnorm", False), ("my_refs.py:fn", True), ("pkg.m:f", True)])
def test_a_reference_is_a_name_or_a_ref(reference: str | None, is_ref: bool) -> None:
    assert oracle(reference).reference_is_ref is is_ref


def test_param_domains() -> None:
    assert Param("flip", values=(False, True)).allows(False) and not Param("flip", values=(False, True)).allows(0)
    assert Param("x", low=0.0, high=1.0).allows(0.5) and not Param("x", low=0.0, high=1.0).allows(2)


def test_implementation_ids_round_trip() -> None:
    impl = Implementation("mod:fn", params={"interleaved": True, "k": 2})
    assert impl.id == "mod:fn[interleaved=true,k=2]" == format_implementation("mod:fn", impl.params)
    assert parse_implementation(impl.id) == ("mod:fn", {"interleaved": True, "k": 2})


def test_shipped_specs_record_their_index_in_the_file() -> None:
    specs = shipped_specs()
    by_file: dict[str, list[int]] = {}
    for spec in specs.values():
        by_file.setdefault(spec.file, []).append(spec.index)
    assert all(sorted(indices) == list(range(len(indices))) for indices in by_file.values())
