"""Which cases a run generates: specs × implementations × devices × dtypes × checks.

``--impl SPEC_ID=REF`` replaces a spec's implementations (several per spec allowed) and restricts
the run to the specs named. Per-spec cases (symbolic facts, the oracle cross-check) are generated
once per selected spec.

>>> from conformance.spec import load_specs
>>> specs = load_specs()
>>> cases = build_cases({"rmsnorm": specs["rmsnorm"]}, {})
>>> [c.check for c in cases][:3]
['fact:scale_invariance_without_eps', 'fact:unit_rms_without_eps', 'oracle_agreement']
>>> cases[3].id
'rmsnorm-implementations.rmsnorm:RMSNorm-cpu-float64-oracle'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.calling import ImplementationError, resolve
from conformance.checks import checks_for, source_line
from conformance.dtype_helpers import DTYPES
from conformance.spec import EquationSpec, XFail, parse_implementation

DEVICES = ("cpu", "cuda")
IMPL_SYMPY = "sympy"


@dataclass(frozen=True)
class Case:
    spec: EquationSpec
    implementation: str
    device: str
    dtype: str
    check: str

    @property
    def id(self) -> str:
        return f"{self.spec.id}-{self.implementation}-{self.device}-{self.dtype}-{self.check}"

    def row(self) -> dict[str, Any]:
        """The row's identity: what the report needs even if the test never runs."""
        return {
            "spec": self.spec.id,
            "title": self.spec.title,
            "paper": self.spec.paper.title,
            "arxiv": self.spec.paper.arxiv,
            "url": self.spec.paper.url,
            "equation": self.spec.equation,
            "spec_file": _display_path(self.spec.file),
            "spec_line": self.line(),
            "implementation": self.implementation,
            "device": self.device,
            "dtype": self.dtype,
            "check": self.check,
        }

    def line(self) -> int:
        if self.check.startswith("fact:"):
            return next(f.line for f in self.spec.facts if f.id == self.check.split(":", 1)[1])
        return source_line(self.spec, self.check)


def _display_path(file: str) -> str:
    """Spec paths relative to the working directory where possible, so reports are portable."""
    path = Path(file).resolve()
    try:
        return path.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def parse_impl_options(options: Iterable[str], specs: Mapping[str, EquationSpec]) -> dict[str, list[str]]:
    """``["rmsnorm=my.mod:Norm", ...]`` → ``{"rmsnorm": ["my.mod:Norm"]}``, each ref importable.

    A ref may fix params of its spec in brackets, ``rope_apply=my.mod:rope[interleaved=true]``
    (its declared options); without them an implementation is tested at the spec's defaults.
    """
    overrides: dict[str, list[str]] = {}
    for option in options:
        spec_id, sep, ref = option.partition("=")
        if not sep or not spec_id or not ref:
            raise ValueError(f"--impl {option!r}: expected SPEC_ID=MODULE:ATTR or SPEC_ID=path/file.py:ATTR")
        if spec_id not in specs:
            raise ValueError(f"--impl {option!r}: unknown spec id {spec_id!r}; known: {', '.join(specs)}")
        try:
            plain, params = parse_implementation(ref)
            specs[spec_id].check_implementation_params(params)
            resolve(plain)
        except (ImplementationError, ValueError) as exc:
            raise ValueError(f"--impl {option!r}: {exc}") from None
        refs = overrides.setdefault(spec_id, [])
        if ref not in refs:  # the same implementation named twice runs once: one row per case
            refs.append(ref)
    return overrides


def build_cases(specs: Mapping[str, EquationSpec], overrides: Mapping[str, list[str]]) -> list[Case]:
    """Every case of the run, in a stable order (xdist workers must agree on it)."""
    cases: list[Case] = []
    for spec_id, spec in sorted(specs.items()):
        if overrides and spec_id not in overrides:
            continue
        if spec_id in overrides:
            spec = spec.with_implementations(overrides[spec_id])
        for fact in spec.facts:
            cases.append(Case(spec, IMPL_SYMPY, "cpu", "exact", f"fact:{fact.id}"))
        if spec.oracle is not None and spec.oracle.exprs and spec.oracle.reference:
            cases.append(Case(spec, f"reference:{spec.oracle.reference}", "cpu", "float64", "oracle_agreement"))
        for impl in spec.implementations:
            tested = spec.for_implementation(impl.id)  # its fixed params (options) are not drawn
            for device in DEVICES:
                for dtype in DTYPES:
                    cases.extend(Case(tested, impl.id, device, dtype, check) for check in checks_for(spec, dtype))
                    cases.extend(
                        Case(tested, impl.id, device, dtype, p.check)
                        for p in spec.patterns
                        if device in p.devices and dtype in p.dtypes
                    )
    return cases


def xfail_for(case: Case) -> XFail | None:
    """The spec's reviewed expected-failure entry for this case, if any."""
    for impl in case.spec.implementations:
        if impl.id != case.implementation:
            continue
        for xf in impl.xfail:
            if xf.check == case.check and xf.device in (None, case.device) and xf.dtype in (None, case.dtype):
                return xf
    return None
