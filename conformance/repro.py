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

from conformance.checks import CheckFailure
from conformance.selection import Case
from conformance.spec import load_specs
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
    from conformance.judges import replay

    specs = load_specs([d for d in spec_dirs])
    case = Case(specs[spec_id], implementation, device, dtype, check)
    definition = case.definition
    if definition.draw is None:  # a check that runs whole replays its own example (a pattern kind's)
        m = replay(case, example)
    else:
        m = definition.judge_fn()(case, _example(example))
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
