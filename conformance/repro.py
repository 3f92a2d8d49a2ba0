"""Re-run one check on one example: the target of every failure's reproduction snippet.

>>> m = reproduce("surprise", "implementations.surprise:compute_surprise", check="oracle", device="cpu",
...               dtype="float32", example={"sizes": {"B": 1, "L": 2, "D": 3}, "params": {},
...               "magnitudes": {"hidden": 1.0, "memory_pred": 1.0}, "present": {}, "seed": 7}, quiet=True)
>>> m.passed
True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from conformance.checks import CheckFailure, check_oracle_agreement, run_check
from conformance.spec import EquationSpec, PatternCheck, load_specs
from conformance.strategies import Example
from conformance.tolerance import Measurement


def reproduce(
    spec_id: str,
    implementation: str,
    *,
    check: str,
    device: str,
    dtype: str,
    example: Mapping[str, Any],
    spec_dirs: Iterable[str] = (),
    quiet: bool = False,
) -> Measurement:
    """Run ``check`` once; print the measurement; raise :class:`CheckFailure` if it fails."""
    specs = load_specs([d for d in spec_dirs])
    spec = specs[spec_id]
    pattern = next((p for p in spec.patterns if p.check == check), None)
    if pattern is not None:
        m = _replay_pattern(spec, pattern, implementation, device, dtype, example)
    elif check == "oracle_agreement":
        m = check_oracle_agreement(spec, _example(example))
    else:
        m = run_check(spec, implementation, device, dtype, check, _example(example))
    if m is None:
        raise ValueError("this example is not applicable to the check (transformed inputs overflow the dtype)")
    if not quiet:
        tol = f"{m.tolerance.atol:.4g} = {m.tolerance.describe()}" if m.tolerance else "exact"
        print(
            f"{spec_id} {implementation} {device} {dtype} {check}: max_abs_err={m.max_abs_err:.4g} "
            f"tolerance={tol} -> {'passed' if m.passed else 'FAILED'}"
        )
    if not m.passed:
        raise CheckFailure(m.detail)
    return m


def _example(data: Mapping[str, Any]) -> Example:
    return Example(data["sizes"], data["params"], data["magnitudes"], data["present"], data["seed"])


def _replay_pattern(
    spec: EquationSpec, pattern: PatternCheck, implementation: str, device: str, dtype: str, example: Mapping[str, Any]
) -> Measurement:
    """A pattern check on its own example (its kind's ``replay``), with the spec's options."""
    from hypothesis import settings

    from conformance.patterns import PatternContext, kinds

    kind = kinds()[pattern.kind]
    if kind.replay is None:
        raise ValueError(f"pattern kind {kind.name!r} has no replay: run the check itself to reproduce it")
    return kind.replay(PatternContext(spec, implementation, device, dtype, pattern.options, settings()), example)
