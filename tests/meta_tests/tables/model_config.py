"""Planted defects for spec ``model_config`` (``defects/model_config_defects.py``).

The spec's one check, ``config_table:paper_table``, is made of parts whose problems it tags in its
detail (``[table]``, ``[derived]``, ``[to_dict]``, ``[round trip]``, ``[fresh instance]``,
``[rejects]``): each defect must fail it with exactly the parts listed. The check probes fixed
cases (9 of them), not drawn examples.
"""

from __future__ import annotations

from conformance.defects import Baseline, PlantedDefect, SpecTable
from tests.meta_tests.tables import in_module

SPEC = "model_config"
CORRECT = ("implementations.config:ModelConfig",)
CHECK = "config_table:paper_table"
PARTS = ("table", "derived", "to_dict", "round trip", "fresh instance", "rejects")
PROBES = 9
ref = in_module("model_config_defects.py")


def planted(name: str, *parts: str) -> PlantedDefect:
    return PlantedDefect(
        SPEC, ref(name), CHECK, "float32", max_examples=1, shrink=True, parts=frozenset(parts),
        row_fields=("detail", "max_abs_err"), examples=PROBES,
    )  # fmt: skip


DEFECTS = (
    planted("GuideVerbatim", "table", "rejects"),
    planted("GuideKeyError", "rejects"),
    planted("NoHeadDivisibility", "rejects"),
    planted("VagueDivisibilityError", "rejects"),
    planted("BigDffDefault", "table"),
    planted("BigEnglishFrenchDropout", "table"),
    planted("FloatDModel", "table", "round trip"),
    planted("HeadsAttributeDisagrees", "derived"),
    planted("DropsPadToken", "table"),
    planted("RenamedHeads", "table", "round trip"),
    planted("LiveDict", "to_dict"),
    planted("ReadOnlyView", "to_dict"),
    planted("NoEquality", "round trip"),
    planted("SharedPresets", "fresh instance"),
)

BASELINES = (
    Baseline(
        SPEC,
        CORRECT[0],
        CHECK,
        "float32",
        max_examples=1,
        examples=PROBES,
        detail_has=("4 variants (base, big, small, large) match the table",),
    ),  # fmt: skip
)

TABLE = SpecTable(SPEC, CORRECT, DEFECTS, baselines=BASELINES)
