"""Pattern kind ``compile_equivalence``: ``torch.compile(module)`` computes what eager mode does.

The module (built as a user gets it, its parameters then moved off their default initialisation by
seeded noise) runs eagerly and compiled on the same inputs
at the tested dtype, and eagerly in float64 with the same weights as the reference. The compiled
output's max error against the float64 output may be at most ``factor`` × the eager output's error
plus the noise floor — the rule of :mod:`conformance.tolerance`, with eager mode as the
same-precision reference (fused kernels may round differently, not worse). At float64 the eager
module is the expected computation itself (its error is 0 by construction), so the eager module at
float32 stands in, its error scaled by eps(float64)/eps(float32)
(:func:`conformance.tolerance.rescaled_baseline`).

Spec options::

    kind: compile_equivalence
    sizes: {B: 2, L: 5, D: 16}
    params: {eps: 1.0e-6}
    devices: [cpu]          # compilation is slow on CPU: one dtype there, all of them on CUDA
    dtypes: [float32]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conformance.patterns import PatternKind
from conformance.patterns.helpers.options import sizes_and_params
from conformance.validation import SpecContext, Where


def validate(options: Mapping[str, Any], where: Where, context: SpecContext) -> dict:
    """``sizes`` and ``params`` of the module call."""
    return sizes_and_params(options, where)


KIND = PatternKind(
    name="compile_equivalence",
    required=frozenset({"sizes"}),
    optional=frozenset({"params"}),
    validate=validate,
    run="conformance.patterns.runs.compile_equivalence:run",
    dtypes=("float32",),
    compares_numbers=True,
)
