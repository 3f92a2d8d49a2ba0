"""Per-spec claims about planted defects that are not rows of a defect table.

What a spec's shipped entry records (``model_config``'s Table 3, ``kv_cache``'s and
``residual_scaling``'s checks and dtypes), how the tables of one spec relate (the guide's cache is
caught at every dtype; each part of ``config_table`` catches a defect alone), a failure's full text
where the table states only fragments, and a whole ``--impl`` run of the conformance suite.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.calling import resolve
from conformance.defects import PlantedDefect, run_planted, shipped_specs
from conformance.dtype_helpers import DTYPES
from tests.meta_tests.tables import defect, kv_cache, model_config, residual_scaling

REPO = Path(__file__).resolve().parents[2]
SUITE = str(REPO / "conformance" / "test_conformance.py")


def _model_config_row(name: str) -> PlantedDefect:
    return next(r for r in model_config.DEFECTS if r.defect.endswith(f":{name}"))


# -- model_config: the config_table check --------------------------------------------------------------
@pytest.mark.parametrize("part", model_config.PARTS)
def test_every_part_catches_a_defect_alone(part: str) -> None:
    assert any(r.parts == {part} for r in model_config.DEFECTS), f"no defect is caught by [{part}] alone"


def test_the_guide_verbatim_is_reported_in_full() -> None:
    verdict = run_planted(_model_config_row("GuideVerbatim"))
    assert verdict.finding == "caught", verdict.explain()
    text = verdict.message
    assert "[table] from_paper('big') raised KeyError: 'big'" in text
    assert "[rejects] from_paper('xl') raised KeyError: 'xl'; expected ValueError mentioning" in text
    assert "[rejects] GuideVerbatim(d_model=500, n_heads=12, ...) returned GuideVerbatim(d_model=500" in text
    assert "[derived]" not in text  # it has no d_head, which neither the guide nor the paper defines


def test_probes_restore_a_shared_preset() -> None:
    verdict = run_planted(_model_config_row("SharedPresets"))
    assert "the constructor returns a shared instance — it is the same object" in verdict.message
    snapshot = resolve(defect("model_config_defects.py", "shared_presets_snapshot"))()
    assert snapshot == shipped_specs()["model_config"].patterns[0].options["table"]  # every field probed is back


def test_spec_records_table_3_and_the_guide_variants() -> None:
    spec = shipped_specs()["model_config"]
    (pattern,) = spec.patterns
    assert (pattern.kind, pattern.devices, pattern.dtypes) == ("config_table", ("cpu",), ("float32",))
    table = pattern.options["table"]
    columns = ("n_layers", "d_model", "d_ff", "n_heads", "dropout")  # N, d_model, d_ff, h, P_drop
    assert tuple(table["base"][c] for c in columns) == (6, 512, 2048, 8, 0.1)
    assert tuple(table["big"][c] for c in columns) == (6, 1024, 4096, 16, 0.3)
    assert tuple(table["large"][c] for c in columns) == (12, 1024, 2048, 16, 0.1)  # the guide's, not the paper's
    assert all(row == {"d_model / n_heads": 64} for row in pattern.options["derived"].values())  # d_k = d_v = 64
    assert any("large" in a.question + a.choice and "big" in a.choice for a in spec.ambiguities)
    assert [i.ref for i in spec.implementations] == list(model_config.CORRECT)


def test_suite_runs_with_impl_for_the_spec_id(pytester: pytest.Pytester) -> None:
    (correct,) = model_config.CORRECT
    wrong = defect("model_config_defects.py", "GuideKeyError")
    result = pytester.runpytest_subprocess(
        SUITE,
        "-p",
        "no:cacheprovider",
        "--report-dir",
        "rep",
        "--impl",
        f"model_config={correct}",
        "--impl",
        f"model_config={wrong}",
    )
    assert result.ret == 1, result.stdout.str()[-3000:]
    rows = {row["implementation"]: row for row in json.loads((pytester.path / "rep" / "conformance.json").read_text())["results"]}
    assert set(rows) == {correct, wrong}
    assert rows[correct]["outcome"] == "passed" and rows[correct]["check"] == model_config.CHECK
    assert rows[wrong]["outcome"] == "failed" and "[rejects] from_paper('xl') raised KeyError" in rows[wrong]["detail"]


# -- kv_cache -------------------------------------------------------------------------------------------
def test_every_kv_cache_check_runs_at_every_dtype() -> None:
    assert {p.dtypes for p in shipped_specs()["kv_cache"].patterns} == {DTYPES}


def test_the_guide_cache_is_caught_at_every_dtype() -> None:
    """The guide's cache fails some check at every dtype (float32: overflow only)."""
    caught = {r.dtype for r in kv_cache.DEFECTS if r.defect.endswith(":GuideKVCache")}
    assert caught == set(DTYPES)


# -- residual_scaling -----------------------------------------------------------------------------------
def test_the_spec_has_one_check_and_it_has_planted_defects() -> None:
    (pattern,) = shipped_specs()["residual_scaling"].patterns
    assert pattern.check == residual_scaling.CHECK
    assert tuple(pattern.dtypes) == residual_scaling.DTYPES, "the table's baselines run every dtype the spec lists"
    assert {r.dtype for r in residual_scaling.DEFECTS} <= set(pattern.dtypes)


# -- rmsnorm: the conventions an implementation declares -------------------------------------------------
def _rmsnorm_rows(ref: str, dtype: str) -> dict[str, str]:
    from conformance import engine
    from conformance.selection import build_cases
    from conformance.spec import load_specs

    spec = load_specs()["rmsnorm"].with_implementations([ref])
    cases = [c for c in build_cases({"rmsnorm": spec}, {}) if c.dtype == dtype and c.device == "cpu"]
    cases = [c for c in cases if c.check == "oracle" or c.check.startswith("invariant:")]
    return {r.check: r.outcome for r in engine.run(engine.Plan(profile="conformance-dev"), cases=cases)}


@pytest.mark.parametrize(
    "name, options",
    [("GainOffsetFromOne", "unit_offset=true"), ("NoEps", "no_eps=true"), ("EpsOutsideSqrt", "eps_outside=true"),
     ("NoEpsGainOffsetFromOne", "no_eps=true, unit_offset=true")],
)
def test_a_declared_rmsnorm_convention_is_judged_as_declared(name: str, options: str) -> None:
    """The planted conventions, declared, are correct implementations of what they declare: the oracle and every
    invariant that applies pass (gain linearity does not apply to a (1 + g) gain: skipped); the correct RMSNorm
    declared as following them is caught."""
    rows = _rmsnorm_rows(f"{defect('rmsnorm_defects.py', name)}[{options}]", "float64")
    assert rows["oracle"] == "passed" and all(o in ("passed", "skipped") for o in rows.values()), rows
    assert (rows["invariant:gain_linearity"] == "skipped") == ("unit_offset" in options), rows
    assert _rmsnorm_rows(f"implementations.rmsnorm:RMSNorm[{options}]", "float64")["oracle"] == "failed"


# -- Titans: the coarser reading step = chunk ------------------------------------------------------------
def _titans_rows(spec_id: str, ref: str, checks: tuple[str, ...]) -> dict[str, str]:
    from conformance import engine
    from conformance.peers import narrowed
    from conformance.selection import build_cases
    from conformance.spec import load_specs

    # Whole chunks of 2..4 only: where no chunk completes, no step is taken and nothing reaches k, v, θ, α, η, which
    # the gradient check refuses (no gradient reaches a wrt input) whatever the reading's zero gradient there; at chunk
    # size 1 the two recurrences are one, so every example here can tell them apart. Derandomized: the same examples
    # every run.
    spec = narrowed(load_specs()[spec_id], {"chunk_size": (2, 4)}, ("T % chunk_size == 0",)).with_implementations([ref])
    cases = [c for c in build_cases({spec_id: spec}, {}) if c.dtype == "float64" and c.device == "cpu" and c.check in checks]
    return {r.check: r.outcome for r in engine.run(engine.Plan(profile="conformance-ci"), cases=cases)}


@pytest.mark.parametrize(
    "spec_id, name", [("memory_linear", "memory_one_step_per_chunk"), ("memory_mlp", "memory_mlp_one_step_per_chunk")]
)
def test_one_step_per_chunk_declared_is_judged_against_that_reading(spec_id: str, name: str) -> None:
    """A recurrence that steps once per chunk, declared ``[step='chunk']``, passes the oracle and the gradient check
    against the spec's reference at that option (an independent torch loop against titans_reference.py); the
    per-token recurrence declared so is caught."""
    checks = ("oracle", "gradient")
    planted = _titans_rows(spec_id, f"{defect('titans_defects.py', name)}[step='chunk']", checks)
    assert planted == {"oracle": "passed", "gradient": "passed"}, planted
    ours = _titans_rows(spec_id, f"implementations.titans:{spec_id}[step='chunk']", ("oracle",))
    assert ours == {"oracle": "failed"}, ours
