"""junit.xml: one testcase per report row; failures carry the detail and the repro, skips their reason."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from conformance.report import build_report
from conformance.report.junit import render_junit
from conformance.results import Result


def rows() -> list[dict]:
    results = [
        Result("rmsnorm", "m:f", "cpu", "float32", "oracle", "passed", max_abs_err=1e-8, tolerance=1e-6, spec_line=12),
        Result("rmsnorm", "m:f", "cpu", "float16", "oracle", "failed", message="oracle failed: max |error| 3 > tol",
               detail="max |error| 3 > tolerance 1e-3", repro="from conformance.repro import reproduce\nreproduce(...)"),
        Result("rmsnorm", "m:f", "cuda", "float32", "oracle", "skipped", message="CUDA not available"),
        Result("attention", "m:g", "cpu", "float64", "gradient", "error", message="TypeError: bad", error="TypeError: bad"),
        Result("attention", "m:g", "cpu", "float64", "oracle", "xfailed", message="known: issue 3"),
    ]
    return build_report(results, profile="conformance-ci", argv=["test"])["results"]


def test_one_testcase_per_row_grouped_by_spec() -> None:
    root = ET.fromstring(render_junit(rows()))
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {"rmsnorm", "attention"}
    norm = suites["rmsnorm"]
    assert (norm.get("tests"), norm.get("failures"), norm.get("skipped")) == ("3", "1", "1")
    assert sum(len(s.findall("testcase")) for s in suites.values()) == 5


def test_failures_carry_detail_and_repro_and_skips_their_reason() -> None:
    cases = {c.get("name"): c for c in ET.fromstring(render_junit(rows())).iter("testcase")}
    failure = cases["m:f cpu float16 oracle"].find("failure")
    assert failure is not None and failure.get("message") == "oracle failed: max |error| 3 > tol"
    assert "max |error| 3 > tolerance 1e-3" in failure.text and "reproduce(...)" in failure.text
    assert cases["m:f cuda float32 oracle"].find("skipped").get("message") == "CUDA not available"
    assert cases["m:g cpu float64 gradient"].find("error").get("type") == "TypeError"
    assert "expected failure: known: issue 3" in cases["m:g cpu float64 oracle"].find("system-out").text
    passed = cases["m:f cpu float32 oracle"]
    assert passed.find("failure") is None and {p.get("name") for p in passed.iter("property")} >= {"max_abs_err", "spec_line"}
