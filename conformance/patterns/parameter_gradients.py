"""Pattern kind ``parameter_gradients``: every trainable parameter receives a gradient.

The module is built as a user gets it (its own initialisation), called in the chosen mode on
random inputs, and a random cotangent is back-propagated. Every parameter with ``requires_grad``
must then have a gradient that is present, finite and not identically zero — a layer created but
never used in ``forward`` (the implementation guide's module template creates a LayerNorm it never
calls) fails here, as does a detached path.

Spec options::

    kind: parameter_gradients
    sizes: {B: 2, L: 5, D: 16, H: 4}
    params: {dropout: 0.1}
    train: true        # the mode to call the module in
    seeds: 3           # independent draws of inputs and cotangents
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conformance.patterns import PatternKind
from conformance.patterns.helpers.options import boolean, integer, sizes_and_params
from conformance.validation import SpecContext, Where


def validate(options: Mapping[str, Any], where: Where, context: SpecContext) -> dict:
    """``sizes``, ``params``, ``train`` (default true) and ``seeds`` (default 3)."""
    out = sizes_and_params(options, where)
    train = boolean(options.get("train", True), where.at("train"))
    seeds = integer(options.get("seeds", 3), where.at("seeds"), 1, 100)
    return {**out, "train": train, "seeds": seeds}


KIND = PatternKind(
    name="parameter_gradients",
    required=frozenset({"sizes"}),
    optional=frozenset({"params", "train", "seeds"}),
    validate=validate,
    run="conformance.patterns.runs.parameter_gradients:run",
    dtypes=("float64", "float32"),
)
