"""Declared unsupported regions (issue 8): an implementation may refuse a combination of arguments.

Examples in the region must raise a declared exception with a message and are not otherwise judged;
every other example is judged as usual. Bare ``F.scaled_dot_product_attention`` (through the adapter
``attention_sdpa_documented``) refuses ``mask`` with ``is_causal`` and passes every check of
``attention`` once that is declared; an implementation declaring the region but returning (wrong)
values there fails.
"""

from __future__ import annotations

import copy
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import settings

from conformance import engine
from conformance.loader.xfail_file import load_xfail_file
from conformance.model import Unsupported, UnsupportedEntry
from conformance.results import Result
from conformance.unsupported import Refusal, expect_refusal
from conformance.validation import SpecError
from tests.spec_helpers import REPO_ROOT, load_error, load_one, minimal_spec, write_spec

FAST = settings(max_examples=20, derandomize=True, deadline=None, database=None)
SDPA = "implementations.attention:attention_sdpa_documented"
REASON = "SDPA refuses attn_mask with is_causal"
REGION = {"when": "has_mask & is_causal", "raises": ["RuntimeError", "ValueError"], "reason": REASON}
IMPLS = "tests.unsupported_impls"


@cache
def _attention() -> dict[str, Any]:
    data = yaml.safe_load((REPO_ROOT / "specs" / "attention_is_all_you_need.yaml").read_text())
    return {"schema": 1, "paper": data["paper"], "specs": [data["specs"][0]]}


def _attention_with(tmp_path: Path, implementations: list[dict[str, Any]]) -> Path:
    """The shipped ``attention`` spec, unchanged but for its id (``attention_sdpa``) and implementations."""
    data = copy.deepcopy(_attention())
    data["specs"][0].update(id="attention_sdpa", implementations=implementations)
    return write_spec(tmp_path, data, "attention_sdpa.yaml")


def _run(tmp_path: Path, *select: str, impl: tuple[str, ...] = (), xfail_files: tuple[str, ...] = ()) -> list[Result]:
    plan = engine.Plan(spec_dirs=(str(tmp_path),), impl=impl, select=select, xfail_files=xfail_files)
    return [engine.run_case(case, FAST) for case in plan.cases()]


def _xfail_file(tmp_path: Path, implementation: str, spec: str = "attention", **region: Any) -> Path:
    entry = {"spec": spec, "implementation": implementation, **(region or REGION)}
    path = tmp_path / "known" / "known.yaml"  # not in the spec dir: it is no spec
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump({"unsupported": [entry]}, sort_keys=False))
    return path


# -- the shipped spec, SDPA declared as refusing mask with is_causal ------------------------------------
def test_sdpa_passes_every_check_of_attention_with_the_region_declared(tmp_path: Path) -> None:
    _attention_with(tmp_path, [{"ref": SDPA, "unsupported": [REGION]}])
    results = _run(tmp_path, "attention_sdpa-", "cpu-float32")
    rows = {r.check: r for r in results if r.implementation == SDPA}
    assert len(rows) >= 10 and {r.outcome for r in rows.values()} == {"passed"}, {c: r.message for c, r in rows.items()}
    detail = rows["oracle"].detail or ""
    assert "unsupported, raised RuntimeError: scaled_dot_product_attention: attn_mask and is_causal=True" in detail
    assert re.search(r"\d+ examples? in the declared region: has_mask & is_causal\)", detail)  # how many: the draws'
    assert "declared region" not in (rows["invariant:query_permutation"].detail or "")  # its when excludes is_causal


def test_without_the_declaration_sdpa_is_red(tmp_path: Path) -> None:
    _attention_with(tmp_path, [{"ref": SDPA}])
    (row,) = _run(tmp_path, "attention_sdpa-", "cpu-float32-oracle")
    assert row.outcome == "error" and "attn_mask and is_causal=True cannot both be set" in (row.message or "")


@pytest.mark.parametrize(
    ("ref", "words"),
    [
        ("sdpa_wrong_in_region", f"declared unsupported (has_mask & is_causal: {REASON}) but returned a result"),
        (
            "sdpa_refuses_with_type_error",
            "but raised TypeError: mask and is_causal together, not a declared exception (RuntimeError, ValueError)",
        ),
        ("sdpa_refuses_silently", "raised RuntimeError with an empty message"),
    ],
)
def test_an_implementation_that_does_not_refuse_the_region_as_declared_fails(tmp_path: Path, ref: str, words: str) -> None:
    _attention_with(tmp_path, [{"ref": f"{IMPLS}:{ref}", "unsupported": [REGION]}])
    (row,) = _run(tmp_path, "attention_sdpa-", "cpu-float32-oracle")
    assert row.outcome == "failed" and words in (row.message or ""), row.message
    assert row.falsifying_example is not None
    assert row.falsifying_example["present"]["mask"] and row.falsifying_example["params"]["is_causal"]


# -- --impl: the declaration in an --xfail-file ---------------------------------------------------------
def test_an_xfail_file_declares_the_region_for_an_impl(tmp_path: Path) -> None:
    known = str(_xfail_file(tmp_path, SDPA))
    (row,) = _run(tmp_path, "cpu-float32-oracle", impl=(f"attention={SDPA}",), xfail_files=(known,))
    assert row.outcome == "passed" and re.search(r"\d+ examples? in the declared region: has_mask & is_causal", row.detail or "")
    wrong = f"{IMPLS}:sdpa_wrong_in_region"
    known = str(_xfail_file(tmp_path, wrong))
    (row,) = _run(tmp_path, "cpu-float32-oracle", impl=(f"attention={wrong}",), xfail_files=(known,))
    assert row.outcome == "failed" and "but returned a result" in (row.message or "")


def test_a_spec_declaration_carries_over_under_impl(tmp_path: Path) -> None:
    _attention_with(tmp_path, [{"ref": SDPA, "unsupported": [REGION]}])
    (row,) = _run(tmp_path, "cpu-float32-oracle", impl=(f"attention_sdpa={SDPA}",))
    assert row.outcome == "passed" and "declared region" in (row.detail or "")


def test_an_xfail_file_region_is_read_and_checked_against_its_spec(tmp_path: Path) -> None:
    (entry,) = load_xfail_file(_xfail_file(tmp_path, SDPA))
    assert isinstance(entry, UnsupportedEntry) and entry.unsupported.raises == ("RuntimeError", "ValueError")
    bad = str(_xfail_file(tmp_path, SDPA, when="has_bias & is_causal", raises="RuntimeError", reason="r"))
    with pytest.raises(SpecError, match="undeclared name.*has_bias.*a condition may name: .*has_mask"):
        engine.Plan(impl=(f"attention={SDPA}",), xfail_files=(bad,)).cases()


# -- a check whose every example is in the region -------------------------------------------------------
def _flag_spec(tmp_path: Path) -> Path:
    data = minimal_spec()
    spec = data["specs"][0]
    spec.update(
        id="flagged",
        symbols={"N": {"min": 1, "max": 4}},
        inputs={"x": {"shape": ["N"], "magnitude": [0.5, 2.0]}},
        params={"flag": {"values": [False, True]}},
        outputs={"y": {"shape": ["N"]}},
        interface={"kind": "function", "args": ["x"], "kwargs": {"flag": "flag"}},
        oracle={"expr": "2 * x"},
        implementations=[
            {"ref": f"{IMPLS}:only_flag_false", "unsupported": [{"when": "flag", "raises": "ValueError", "reason": "no flag"}]},
            {
                "ref": f"{IMPLS}:only_flag_false",
                "params": {"flag": True},
                "unsupported": [{"when": "flag", "raises": "ValueError", "reason": "no flag"}],
            },
        ],
    )
    return write_spec(tmp_path, data, "flagged.yaml")


def test_a_row_that_draws_only_refused_examples_is_skipped(tmp_path: Path) -> None:
    _flag_spec(tmp_path)
    rows = {(r.implementation, r.check): r for r in _run(tmp_path, "flagged-", "cpu-float64")}
    fixed = f"{IMPLS}:only_flag_false[flag=true]"
    skipped = rows[fixed, "oracle"]
    assert skipped.outcome == "skipped"
    assert (skipped.message or "").startswith("every example drawn is in the declared unsupported region: unsupported, raised")
    assert {r.outcome for (impl, _), r in rows.items() if impl == fixed} == {"skipped"}
    drawn = rows[f"{IMPLS}:only_flag_false", "oracle"]
    assert drawn.outcome == "passed" and "ValueError: flag=True is not supported" in (drawn.detail or "")


# -- judging one refusal --------------------------------------------------------------------------------
def _region(*raises: str) -> Unsupported:
    from conformance.expr import parse

    return Unsupported(parse("is_causal"), "is_causal", raises, "r")


def _raise(exc: BaseException) -> Any:
    def call() -> None:
        raise exc

    return call


def test_a_refusal_is_judged_by_its_exception_and_message() -> None:
    ok = expect_refusal(_raise(RuntimeError("no")), _region("RuntimeError"))
    assert isinstance(ok, Refusal) and ok.passed and ok.raised == "RuntimeError: no"
    subclass = expect_refusal(_raise(NotImplementedError("later")), _region("RuntimeError"))
    assert subclass.passed  # NotImplementedError is a RuntimeError
    assert not expect_refusal(_raise(KeyError("k")), _region("ValueError")).passed
    assert not expect_refusal(_raise(ValueError("  ")), _region("ValueError")).passed
    assert not expect_refusal(lambda: 1, _region("ValueError")).passed


# -- the loader -----------------------------------------------------------------------------------------
def _impl_with(tmp_path: Path, unsupported: Any) -> Path:
    data = copy.deepcopy(_attention())
    data["specs"][0]["implementations"] = [{"ref": SDPA, "unsupported": unsupported}]
    return write_spec(tmp_path, data)


def test_a_declared_region_loads(tmp_path: Path) -> None:
    spec = load_one(_impl_with(tmp_path, [dict(REGION, raises="RuntimeError")]))
    (region,) = spec.implementations[0].unsupported
    assert region.when_text == "has_mask & is_causal" and region.raises == ("RuntimeError",)


@pytest.mark.parametrize(
    ("region", "key", "words"),
    [
        (dict(REGION, raises=["SystemExit"]), "unsupported[0].raises[0]", "expected a builtin exception name from"),
        (dict(REGION, raises="os.system"), "unsupported[0].raises", "expected a builtin exception name from"),
        (dict(REGION, raises=[]), "unsupported[0].raises", "at least one exception name"),
        (dict(REGION, when="has_bias"), "unsupported[0].when", "undeclared name(s) has_bias"),
        (dict(REGION, when="mask & is_causal"), "unsupported[0].when", "undeclared name(s) mask"),
        (dict(REGION, when="has_mask & __import__('os')"), "unsupported[0].when", "not allowed"),
        (dict(REGION, when=True), "unsupported[0].when", "expected a condition string"),
        ({"when": "is_causal", "raises": "RuntimeError"}, "unsupported[0]", "missing required key(s): reason"),
        (dict(REGION, why="x"), "unsupported[0].why", "unknown key"),
        (REGION, "unsupported", "a list of {when, raises, reason}"),
    ],
)
def test_a_bad_region_is_one_keyed_error(tmp_path: Path, region: Any, key: str, words: str) -> None:
    error = load_error(_impl_with(tmp_path, region if region is REGION else [region]))
    assert f"implementations[0].{key}" in str(error) and words in str(error), str(error)


def test_a_presence_name_that_is_also_declared_is_refused(tmp_path: Path) -> None:
    data = copy.deepcopy(_attention())
    data["specs"][0]["params"]["has_mask"] = {"values": [0.0]}
    error = load_error(write_spec(tmp_path, data))
    assert "inputs.mask" in str(error) and "'has_mask' names the presence of optional input 'mask'" in str(error)


def test_a_pattern_only_spec_has_no_region(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO_ROOT / "specs" / "attention_is_all_you_need.yaml").read_text())
    (config,) = [s for s in data["specs"] if "patterns" in s and "oracle" not in s][:1]
    config["implementations"][0]["unsupported"] = [{"when": "True", "raises": "ValueError", "reason": "r"}]
    error = load_error(write_spec(tmp_path, {"schema": 1, "paper": data["paper"], "specs": [config]}))
    assert "implementations[0].unsupported" in str(error) and "applies to an equation's implementations" in str(error)
