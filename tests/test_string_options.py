"""String-valued params and implementation options (issue 8): ``mod:fn[approximate='tanh']``.

A string option is passed to the implementation as given and never evaluated; it round-trips through
implementation ids, the report and the reproduction snippet, and both drivers' ``--impl``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from conformance import engine
from conformance.checks import CheckFailure
from conformance.model import format_implementation, parse_implementation
from conformance.repro import reproduce
from conformance.results import Result
from conformance.spec import load_specs
from tests.spec_helpers import load_error, load_one, run_cli, run_suite, write_spec

FAST = settings(max_examples=8, derandomize=True, deadline=None, database=None)
GELU = "torch.nn.functional:gelu"
TANH_FORM = "0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3)))"


def _gelu_file(oracles: dict[str, str], approximate: dict[str, Any] | None = None) -> dict[str, Any]:
    """A paper file with one GELU spec per oracle, each with the implementation option ``approximate``."""
    param = approximate or {"values": ["none", "tanh"], "default": "none"}
    specs = [
        {
            "id": spec_id,
            "title": f"GELU ({spec_id})",
            "equation": "1",
            "statement": "GELU(x) = x Phi(x)",
            "symbols": {"N": {"min": 1, "max": 16}},
            # |x| <= 2 keeps the exact form away from its far negative tail, where x·Φ(x) is tiny next to
            # the terms it is computed from (the numerics of that are another test's subject, not options').
            "inputs": {"x": {"shape": ["N"], "magnitude": [1.0e-3, 2.0]}},
            "params": {"approximate": copy.deepcopy(param)},
            "outputs": {"y": {"shape": ["N"]}},
            "interface": {"kind": "function", "args": ["x"], "kwargs": {"approximate": "approximate"}},
            "oracle": {"expr": expr},
            "implementations": [{"ref": GELU}],
        }
        for spec_id, expr in oracles.items()
    ]
    paper = {"title": "Gaussian Error Linear Units", "authors": ["D. Hendrycks"], "arxiv": "1606.08415", "year": 2016}
    return {"schema": 1, "paper": paper, "specs": specs}


# -- ids ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text", [f"{GELU}[approximate='tanh']", f'{GELU}[approximate="tanh"]', f"{GELU}[ approximate = 'tanh' ]"]
)
def test_a_quoted_string_option_parses(text: str) -> None:
    assert parse_implementation(text) == (GELU, {"approximate": "tanh"})


def test_string_options_round_trip_through_the_id() -> None:
    params = {"approximate": "tanh", "scale": 0.5, "flag": True}
    text = format_implementation(GELU, params)
    assert text == f"{GELU}[approximate='tanh',scale=0.5,flag=true]"
    assert parse_implementation(text) == (GELU, params)


@pytest.mark.parametrize(
    ("option", "words"),
    [
        ("approximate='tanh", "unterminated string"),
        ("approximate=\"tanh'", "unterminated string"),
        ("approximate='", "unterminated string"),
        ("approximate=tanh", "a string in quotes (such as approximate='tanh')"),
        ("approximate='ta nh'", "letters, digits"),
        ("approximate='os.system(1)'", "letters, digits"),
    ],
)
def test_a_bad_string_option_is_refused(option: str, words: str) -> None:
    with pytest.raises(ValueError, match=None) as info:
        parse_implementation(f"{GELU}[{option}]")
    assert words in str(info.value)


# -- the loader ----------------------------------------------------------------------------------------
def test_a_spec_declares_a_string_option(tmp_path: Path) -> None:
    spec = load_one(write_spec(tmp_path, _gelu_file({"gelu": "x * Phi(x)"})))
    assert spec.params["approximate"].values == ("none", "tanh") and spec.params["approximate"].is_string
    assert spec.fixed_params(f"{GELU}[approximate='tanh']") == {"approximate": "tanh"}
    assert spec.fixed_params(GELU) == {"approximate": "none"}


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        (lambda d: d["specs"][0]["params"].update(approximate={"values": ["none", "tanh"], "default": "relu"}),
         "params.approximate.default", "expected a value of the param's domain, got 'relu'"),
        (lambda d: d["specs"][0]["implementations"][0].update(params={"approximate": "relu"}),
         "implementations[0].params.approximate", "'relu' is outside the domain of param 'approximate'"),
        (lambda d: d["specs"][0]["params"].update(approximate={"values": ["none", 1]}),
         "params.approximate.values", "or of strings (not both)"),
        (lambda d: d["specs"][0]["params"].update(approximate={"values": ["none", "a b"]}),
         "params.approximate.values[1]", "letters, digits"),
        (lambda d: d["specs"][0]["oracle"].update(expr="x * Phi(x) * approximate"),
         "oracle.expr", "param 'approximate' has string values"),
        (lambda d: d["specs"][0].update(constraints=["approximate == 1"]),
         "constraints[0]", "param 'approximate' has string values"),
    ],
)
def test_a_bad_string_param_is_one_keyed_error(tmp_path: Path, change: Any, key: str, words: str) -> None:
    data = _gelu_file({"gelu": "x * Phi(x)"})
    change(data)
    error = load_error(write_spec(tmp_path, data))
    assert key in str(error) and words in str(error), str(error)


def test_impl_with_a_string_outside_the_domain_is_refused(tmp_path: Path) -> None:
    write_spec(tmp_path, _gelu_file({"gelu": "x * Phi(x)"}))
    plan = engine.Plan(spec_dirs=(str(tmp_path),), impl=(f"gelu={GELU}[approximate='relu']",))
    with pytest.raises(ValueError, match="approximate='relu' is outside the domain"):
        plan.cases()


# -- end to end --------------------------------------------------------------------------------------
def _oracle_rows(tmp_path: Path, impl: tuple[str, ...]) -> dict[tuple[str, str], Result]:
    write_spec(tmp_path, _gelu_file({"gelu_exact": "x * Phi(x)", "gelu_tanh": TANH_FORM}))
    plan = engine.Plan(spec_dirs=(str(tmp_path),), impl=impl, select=("cpu-float64-oracle",))
    results = [engine.run_case(case, FAST) for case in plan.cases()]
    return {(r.spec, r.implementation): r for r in results}


def test_the_tanh_option_passes_the_tanh_form_and_fails_the_exact_one(tmp_path: Path) -> None:
    tanh, none = f"{GELU}[approximate='tanh']", f"{GELU}[approximate='none']"
    rows = _oracle_rows(tmp_path, (f"gelu_exact={tanh}", f"gelu_exact={none}", f"gelu_tanh={tanh}", f"gelu_tanh={none}"))
    assert rows["gelu_tanh", tanh].outcome == "passed"
    assert rows["gelu_exact", none].outcome == "passed"
    assert rows["gelu_exact", tanh].outcome == "failed"  # the approximation is off by ~1e-4 at float64
    assert rows["gelu_tanh", none].outcome == "failed"
    failed = rows["gelu_exact", tanh]
    assert failed.falsifying_example is not None and failed.falsifying_example["params"] == {"approximate": "tanh"}
    assert "approximate='tanh'" in (failed.repro or "")
    again = Result.from_json(json.loads(json.dumps(failed.to_json())))
    assert again.implementation == tanh and again.falsifying_example == failed.falsifying_example


def test_the_repro_of_a_string_option_failure_fails_again(tmp_path: Path) -> None:
    tanh = f"{GELU}[approximate='tanh']"
    failed = _oracle_rows(tmp_path, (f"gelu_exact={tanh}",))["gelu_exact", tanh]
    assert failed.falsifying_example is not None
    load_specs([str(tmp_path)])
    with pytest.raises(CheckFailure):
        reproduce("gelu_exact", tanh, check="oracle", device="cpu", dtype="float64",
                  example=failed.falsifying_example, spec_dirs=[str(tmp_path)], quiet=True)


def test_both_drivers_take_a_string_option(tmp_path: Path) -> None:
    write_spec(tmp_path, _gelu_file({"gelu_tanh": TANH_FORM}))
    tanh = f"{GELU}[approximate='tanh']"
    common = ["--spec-dir", ".", "--impl", f"gelu_tanh={tanh}", "--hypothesis-profile", "conformance-ci"]
    cli = run_cli(tmp_path, "run", *common, "-k", "cpu-float64-oracle", "--report-dir", "cli")
    assert cli.returncode == 0, cli.stdout + cli.stderr
    plugin = run_suite(tmp_path, *common, "-k", "gelu_tanh and cpu and float64 and oracle", "--report-dir", "plugin", "-q")
    assert plugin.returncode == 0, plugin.stdout[-3000:]
    for folder in ("cli", "plugin"):
        rows = json.loads((tmp_path / folder / "conformance.json").read_text())["results"]
        assert [(r["implementation"], r["outcome"]) for r in rows if r["check"] == "oracle"] == [(tanh, "passed")], folder
