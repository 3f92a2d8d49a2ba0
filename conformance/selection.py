"""Cases: which checks a run generates, specs × implementations × devices × dtypes × checks.

Each check definition (:data:`conformance.registry.CHECKS`, see :mod:`conformance.check_defs`) says when
it applies; a :class:`Case` carries a typed :class:`~conformance.check_defs.CheckRef` to its check.
``--impl SPEC_ID=REF`` replaces a spec's implementations (several per spec allowed) and restricts the
run to the specs named. Per-spec checks (symbolic facts, the oracle cross-check) give one case per spec.
Building cases imports no implementation; :func:`resolve_cases` does, before a run.

>>> from conformance.spec import load_specs
>>> specs = load_specs()
>>> cases = build_cases({"rmsnorm": specs["rmsnorm"]}, {})
>>> [c.check for c in cases][:3]
['fact:scale_invariance_without_eps', 'fact:unit_rms_without_eps', 'oracle_agreement']
>>> cases[3].id
'rmsnorm-implementations.rmsnorm:RMSNorm-cpu-float64-oracle'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.check_defs import CheckDef, CheckRef
from conformance.dtype_names import DTYPES
from conformance.model import EquationSpec, UnsupportedEntry, XFail, XFailEntry, parse_implementation
from conformance.registry import CHECKS

DEVICES = ("cpu", "cuda")
IMPL_SYMPY = "sympy"


@dataclass(frozen=True, init=False)
class Case:
    """One (spec, implementation, device, dtype, check). ``ref`` is the typed check; ``check`` its report name."""

    spec: EquationSpec
    implementation: str
    device: str
    dtype: str
    ref: CheckRef

    def __init__(self, spec: EquationSpec, implementation: str, device: str, dtype: str, check: CheckRef | str) -> None:
        object.__setattr__(self, "spec", spec)
        object.__setattr__(self, "implementation", implementation)
        object.__setattr__(self, "device", device)
        object.__setattr__(self, "dtype", dtype)
        object.__setattr__(self, "ref", check if isinstance(check, CheckRef) else find_check(spec, check))

    @property
    def check(self) -> str:
        """The check's name in reports (``oracle``, ``invariant:<id>``, ``<kind>:<id>``...)."""
        return self.ref.name

    @property
    def definition(self) -> CheckDef:
        return self.ref.definition_record()

    @property
    def id(self) -> str:
        return f"{self.spec.id}-{self.implementation}-{self.device}-{self.dtype}-{self.check}"

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.spec.id, self.implementation, self.device, self.dtype, self.check)

    def identity(self) -> dict[str, Any]:
        """The row's identity and provenance: what the report needs even if the check never runs."""
        return {
            "spec": self.spec.id,
            "implementation": self.implementation,
            "device": self.device,
            "dtype": self.dtype,
            "check": self.check,
            "title": self.spec.title,
            "paper": self.spec.paper.title,
            "arxiv": self.spec.paper.arxiv,
            "url": self.spec.paper.url,
            "equation": self.spec.equation,
            "spec_file": _display_path(self.spec.file),
            "spec_line": self.line(),
            "family": self.definition.family,
        }

    row = identity  # the former name

    def line(self) -> int:
        return self.definition.line(self.spec, self.ref)


def find_check(spec: EquationSpec, name: str) -> CheckRef:
    """The check of ``spec`` whose report name is ``name`` (looked up among the spec's checks, not parsed)."""
    for definition in _definitions():
        refs: Iterable[CheckRef]
        if definition.scope == "spec":
            refs = definition.applies(spec, definition.spec_device, definition.spec_dtype)
        else:
            refs = (r for device in DEVICES for dtype in DTYPES for r in definition.applies(spec, device, dtype))
        for ref in refs:
            if ref.name == name:
                return ref
    raise ValueError(f"spec {spec.id!r} has no check {name!r}")


def _definitions() -> list[CheckDef]:
    return sorted((d for _, d in CHECKS.items()), key=lambda d: d.order)


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
    from conformance.refs import ImplementationError, resolve

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


def check_names(spec: EquationSpec) -> set[str]:
    """The report names of every check ``spec`` generates, on any device and dtype."""
    names = {
        r.name for device in DEVICES for dtype in DTYPES for audit in (False, True)
        for r in implementation_checks(spec, device, dtype, audit=audit)
    }
    spec_scoped = (d for d in _definitions() if d.scope == "spec")
    return names | {r.name for d in spec_scoped for r in d.applies(spec, d.spec_device, d.spec_dtype)}


def implementation_checks(spec: EquationSpec, device: str, dtype: str, *, audit: bool = False) -> list[CheckRef]:
    """The checks of one implementation of ``spec`` at ``device`` and ``dtype``, in report order: a conformance
    run's, or with ``audit`` a gradient audit's (the ``gradient`` family and the audit's own checks)."""
    return [
        r for d in _definitions() if d.scope == "implementation" and _in_run(d, audit) for r in d.applies(spec, device, dtype)
    ]


def _in_run(definition: CheckDef, audit: bool) -> bool:
    """Whether a check belongs to a conformance run (``audit`` false) or to a gradient audit."""
    return definition.family == "gradient" or definition.audit if audit else not definition.audit


def build_cases(
    specs: Mapping[str, EquationSpec],
    overrides: Mapping[str, list[str]],
    *,
    resolve: bool = True,
    xfails: Sequence[XFailEntry | UnsupportedEntry] = (),
    audit: bool = False,
) -> list[Case]:
    """Every case of the run, in a stable order (xdist workers must agree on it). With ``audit``, a gradient
    audit's cases instead: per implementation of a differentiable spec, the ``gradient`` family's checks and the
    audit's own (no spec-scoped checks).

    With ``resolve`` (the default), every implementation and reference ref the cases use is imported
    first (:func:`conformance.refs.resolve_implementations`). ``xfails`` (``--xfail-file``: expected failures
    and unsupported regions) are added to the implementations they name; one naming a spec or a check
    that does not exist is a ``SpecError``.
    """
    if xfails:
        from conformance.loader.xfail_file import check_entries

        check_entries(xfails, specs, {spec_id: check_names(spec) for spec_id, spec in specs.items()})
    from conformance.refs import resolve_implementations

    definitions = _definitions()
    cases: list[Case] = []
    for spec_id, spec in sorted(specs.items()):
        if overrides and spec_id not in overrides:
            continue
        if spec_id in overrides:
            spec = spec.with_implementations(overrides[spec_id])
        spec = spec.with_xfails(xfails)
        if resolve:
            resolve_implementations(spec)
        for d in definitions:
            if d.scope == "spec" and d.subject is not None and not audit:
                refs = list(d.applies(spec, d.spec_device, d.spec_dtype))
                cases.extend(Case(spec, d.subject(spec), d.spec_device, d.spec_dtype, r) for r in refs)
        for impl in spec.implementations:
            tested = spec.for_implementation(impl.id)  # its fixed params (options) are not drawn
            for device in DEVICES:
                for dtype in DTYPES:
                    checks = implementation_checks(spec, device, dtype, audit=audit)
                    cases.extend(Case(tested, impl.id, device, dtype, r) for r in checks)
    return cases


def xfail_for(case: Case) -> XFail | None:
    """The spec's reviewed expected-failure entry for this case, if any."""
    for impl in case.spec.implementations:
        if impl.id != case.implementation:
            continue
        for xf in impl.xfail:
            if xf.matches(case.check, case.device, case.dtype):
                return xf
    return None
