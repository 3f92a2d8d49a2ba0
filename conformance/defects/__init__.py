"""Planted defects as data: table rows (:mod:`.records`) and the runner that judges them (:mod:`.run`).

Every check the harness runs must be able to fail. A table names, per spec, deliberately wrong
implementations and the check that must catch each, where a check cannot see a defect (and why),
and the correct implementations that must pass the same checks. ``run_planted(row)`` returns a
typed :class:`Verdict`; ``score(rows)`` summarises many.
"""

from conformance.defects.records import (
    BASELINE_EXAMPLES,
    DEFAULT_EXAMPLES,
    Baseline,
    BlindSpot,
    PlantedDefect,
    SpecTable,
    baselines_for,
    generated_checks,
)
from conformance.defects.run import (
    Score,
    Verdict,
    build_case,
    execute,
    finding,
    fixed_settings,
    run_blind_spot,
    run_correct,
    run_planted,
    run_row,
    score,
    shipped_specs,
)

__all__ = [
    "BASELINE_EXAMPLES",
    "DEFAULT_EXAMPLES",
    "Baseline",
    "BlindSpot",
    "PlantedDefect",
    "Score",
    "SpecTable",
    "Verdict",
    "baselines_for",
    "build_case",
    "execute",
    "finding",
    "fixed_settings",
    "generated_checks",
    "run_blind_spot",
    "run_correct",
    "run_planted",
    "run_row",
    "score",
    "shipped_specs",
]
