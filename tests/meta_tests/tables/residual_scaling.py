"""Planted defects for spec ``residual_scaling`` (``defects/residual_scaling_defects.py``).

The spec's one check, ``parameter_scaling:output_projections``, is deterministic (no statistics);
every catch names the failing example, and the correct scaling runs at every dtype the spec lists.
"""

from __future__ import annotations

from conformance.defects import PlantedDefect, SpecTable, baselines_for
from tests.meta_tests.tables import in_module

SPEC = "residual_scaling"
CORRECT = ("implementations.initialization:init_residual_scaling",)
CHECK = "parameter_scaling:output_projections"
DTYPES = ("float64", "float32", "bfloat16", "float16")  # the spec's (test_spec_claims checks they agree)
ref = in_module("residual_scaling_defects.py")


def planted(name: str, dtype: str) -> PlantedDefect:
    return PlantedDefect(SPEC, ref(name), CHECK, dtype, detail_has=("example: params=",))


DEFECTS = (
    planted("sqrt_n_layers", "float32"),
    planted("sqrt_n_layers", "bfloat16"),
    planted("applied_twice", "float32"),
    planted("applied_twice", "float16"),
    planted("touches_query", "float32"),
    planted("name_typo", "float32"),
    planted("name_typo", "float64"),
    planted("weights_only", "float32"),
    planted("scales_buffers", "float32"),
    planted("redraws", "float32"),
    planted("rebinds_instead_of_in_place", "float32"),
    planted("factor_in_half_precision", "float32"),
    planted("factor_in_half_precision", "float64"),
)

BASELINES = baselines_for(CORRECT, (), extra_cells=[(SPEC, CHECK, dtype, "cpu") for dtype in DTYPES], min_examples=40)
TABLE = SpecTable(SPEC, CORRECT, DEFECTS, baselines=BASELINES)
