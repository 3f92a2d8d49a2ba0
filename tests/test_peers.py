"""conformance.peers: audits of other libraries run through the specs, with verdicts from the harness only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance import peers
from conformance.results import Result
from conformance.spec import load_specs
from tests.spec_helpers import run_cli

RIGHT = "implementations.titans:memory_linear"


def test_narrowed_holds_params_and_adds_constraints() -> None:
    spec = load_specs()["memory_linear"]
    narrow = peers.narrowed(spec, {"chunk_size": (2, 4), "start": (0, 0)}, ["T % chunk_size == 0"])
    assert (narrow.params["chunk_size"].low, narrow.params["chunk_size"].high) == (2, 4)
    assert (narrow.params["start"].low, narrow.params["start"].high) == (0, 0)
    assert narrow.constraints[-1][0] == "T % chunk_size == 0" and len(narrow.constraints) == len(spec.constraints) + 1
    assert spec.params["chunk_size"].low == 1, "the shipped spec is not changed"


@pytest.mark.parametrize(
    ("narrow", "constraints", "message"),
    [
        ({"retrieve": ("after", "after")}, (), "not a drawn param"),
        ({"chunk_size": (0, 9)}, (), "outside the spec's domain"),
        ({}, ("X % 2 == 0",), "names X, not a symbol or param"),
    ],
)
def test_narrowed_refuses_what_the_spec_does_not_have(narrow: dict, constraints: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        peers.narrowed(load_specs()["memory_linear"], narrow, constraints)


def _row(outcome: str, check: str = "oracle", **kw: object) -> Result:
    return Result("s", "m:f", "cpu", "float64", check, outcome, **kw)  # type: ignore[arg-type]


def test_verdict_words_come_from_the_rows() -> None:
    assert peers.verdict([_row("passed"), _row("passed", "determinism")]) == "conforms (2 checks)"
    cell = peers.verdict([_row("passed"), _row("failed", detail="y: max |error| 3 > tolerance 1", falsifying_example={
        "sizes": {"T": 2}, "params": {"chunk_size": 2}})])
    assert cell.startswith("deviates — oracle: y: max |error| 3 > tolerance 1 (at T=2; chunk_size=2)"), cell
    assert peers.verdict([_row("error", message="NotImplementedError: no")]).startswith("error — oracle: NotImplementedError")
    assert peers.verdict([_row("skipped", message="CUDA not available")]) == "cannot be tested: CUDA not available"


WRONG = """
from implementations.titans import memory_linear


def every_token_a_chunk(*args, chunk_size=1, **kw):
    # the plain recurrence whatever the chunk size: not Eq. 16's chunk-start gradients
    return memory_linear(*args, chunk_size=1, **kw)
"""


def test_an_entry_runs_through_the_engine_and_the_report_says_why(tmp_path: Path) -> None:
    """Our implementation conforms on a narrowed domain; a wrong one (every token its own chunk) deviates
    there, with the oracle's measured evidence."""
    (tmp_path / "wrong_memory.py").write_text(WRONG)
    specs = load_specs()
    domain = {"chunk_size": (2, 2), "start": (0, 0)}
    right = peers.PeerEntry("memory_linear", RIGHT, "ours", domain)
    wrong = peers.PeerEntry("memory_linear", f"{tmp_path / 'wrong_memory.py'}:every_token_a_chunk", "wrong", domain)
    done = []
    for entry in (right, wrong):
        done.append((entry, peers.run_entry(entry, specs, profile="conformance-dev", dtypes=("float64",), checks=("oracle",))))
    assert peers.verdict(done[0][1]) == "conforms (1 checks)"
    assert peers.verdict(done[1][1]).startswith("deviates — oracle:"), peers.verdict(done[1][1])
    audit = peers.PeerAudit("toy-lib", "1.0", "toy.Memory", (right, wrong), notes=("a note",))
    text = peers.render_markdown(audit, done, profile="conformance-dev")
    assert "# toy-lib 1.0 against the specs" in text and "chunk_size = 2, start = 0" in text and "- a note" in text
    assert text.count("| ours |") == 1 and "deviates — oracle:" in text


def test_audit_peers_command_writes_both_files(tmp_path: Path) -> None:
    (tmp_path / "toy_audit.py").write_text(
        "from conformance.peers import PeerAudit, PeerEntry\n"
        "AUDIT = PeerAudit('toy-lib', '1.0', 'toy.Memory', (PeerEntry('forget_step', "
        "'implementations.titans:forget_step', 'ours'),))\n"
    )
    done = run_cli(tmp_path, "audit-peers", "--audit", "toy_audit.py:AUDIT", "--dtype", "float32", "--report-dir", "out")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "out" / "toy_lib.json").read_text())
    assert report["peer"] == {"library": "toy-lib", "version": "1.0", "wrapped": "toy.Memory"}
    assert {r["outcome"] for r in report["results"] if r["device"] == "cpu"} == {"passed"}
    assert {r["outcome"] for r in report["results"] if r["device"] == "cuda"} <= {"passed", "skipped"}
    assert report["results"][0]["peer"]["configuration"] == "ours"
    assert "conforms" in (tmp_path / "out" / "toy_lib.md").read_text()


def test_a_missing_library_is_skipped_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "gone_audit.py").write_text(
        "from conformance.peers import PeerAudit\n"
        "AUDIT = PeerAudit('gone-lib', '0', 'gone.X', (), importable=lambda: 'gone-lib is not installed')\n"
    )
    done = run_cli(tmp_path, "audit-peers", "--audit", "gone_audit.py:AUDIT", "--report-dir", "out")
    assert done.returncode == 0 and "skipped  gone-lib: gone-lib is not installed" in done.stdout
    assert not (tmp_path / "out").exists()


def test_titans_pytorch_closest_configuration() -> None:
    """The evidence the audit reports, at float64: titans-pytorch in its closest configuration computes the
    recurrence at chunk size 1 with the read after the update, and not Eq. 16's chunked form over whole chunks."""
    pytest.importorskip("titans_pytorch", reason="titans-pytorch is not installed (pip install -e '.[peers]')")
    specs = load_specs()
    ref = "implementations.peers.titans_pytorch:memory_linear_closest[retrieve='after',loss='sum']"
    one = peers.PeerEntry("memory_linear", ref, "closest", {"chunk_size": (1, 1), "start": (0, 0)})
    whole = peers.PeerEntry("memory_linear", ref, "closest", {"chunk_size": (2, 4), "start": (0, 0)}, ("T % chunk_size == 0",))
    run = {e.variant: peers.run_entry(e, specs, profile="conformance-dev", dtypes=("float64",), checks=("oracle",))
           for e in (one, whole)}
    assert peers.verdict(run[one.variant]) == "conforms (1 checks)"
    assert peers.verdict(run[whole.variant]).startswith("deviates — oracle:")


def test_an_entry_declares_its_calling_convention_instead_of_adapter_code() -> None:
    """``torch.nn.RMSNorm`` takes ``normalized_shape``, not the spec's ``dim``: declared in the entry, it is built and
    judged; undeclared, its construction fails; a bad declaration is one error naming the entry and the key."""
    from conformance.validation import SpecError

    specs = load_specs()
    init = {"init": {"normalized_shape": "D", "eps": "eps"}}

    def cpu_rows(entry: peers.PeerEntry) -> list[Result]:
        rows = peers.run_entry(entry, specs, profile="conformance-dev", dtypes=("float64",), checks=("oracle",))
        return [r for r in rows if r.device == "cpu"]

    rows = cpu_rows(peers.PeerEntry("rmsnorm", "torch.nn:RMSNorm", "declared", interface=init))
    assert [r.outcome for r in rows] == ["passed"], [(r.outcome, r.message) for r in rows]
    rows = cpu_rows(peers.PeerEntry("rmsnorm", "torch.nn:RMSNorm", "undeclared"))
    assert [r.outcome for r in rows] == ["error"] and "dim" in (rows[0].message or ""), [(r.outcome, r.message) for r in rows]
    bad = peers.PeerEntry("rmsnorm", "torch.nn:RMSNorm", "bad", interface={"layouts": {"x": ["D", "B"]}})
    with pytest.raises(SpecError, match=r"peer entry rmsnorm = torch.nn:RMSNorm \(bad\): interface.layouts.x: expected a"):
        cpu_rows(bad)


def test_an_invariant_whose_condition_cannot_hold_in_the_narrowed_domain_is_skipped_saying_so() -> None:
    """``attention``'s causality invariant holds ``when: is_causal``; an entry drawn at ``is_causal`` false only
    (F.scaled_dot_product_attention refuses a mask with is_causal) skips it, instead of failing to draw."""
    entry = peers.PeerEntry(
        "attention", "torch.nn.functional:scaled_dot_product_attention", "sdpa", narrow={"is_causal": (False, False)},
        interface={"kwargs": {"attn_mask": "mask", "dropout_p": "dropout_p", "is_causal": "is_causal"}},
    )
    rows = peers.run_entry(entry, load_specs(), profile="conformance-dev", dtypes=("float64",), checks=("invariant:causality",))
    cpu = [r for r in rows if r.device == "cpu"]
    assert [r.outcome for r in cpu] == ["skipped"], [(r.outcome, r.message) for r in cpu]
    assert "its condition when: is_causal never holds" in (cpu[0].message or ""), cpu[0].message
    # the condition is quoted as the spec writes it, not as parsed (logical_not(unit_offset))
    declared = peers.PeerEntry("rmsnorm", "implementations.rmsnorm:RMSNorm[unit_offset=true]", "declared")
    (skip,) = [r for r in peers.run_entry(declared, load_specs(), profile="conformance-dev", dtypes=("float64",),
                                          checks=("invariant:gain_linearity",)) if r.device == "cpu"]
    assert skip.outcome == "skipped" and "its condition when: not unit_offset never holds" in (skip.message or ""), skip.message


def test_an_entry_declares_the_region_its_library_refuses() -> None:
    """F.scaled_dot_product_attention refuses a mask with is_causal on its math path (dropout_p > 0 or Dk != Dv):
    declared ``unsupported``, the causal case is judged and the refusal is required there; undeclared, those
    examples are errors; a bad declaration is one error naming the entry and the key."""
    from conformance.validation import SpecError

    kwargs = {"kwargs": {"attn_mask": "mask", "dropout_p": "dropout_p", "is_causal": "is_causal"}}
    refused = {"when": "is_causal & has_mask & ((dropout_p > 0) | (Dk != Dv))", "raises": "RuntimeError", "reason": "r"}

    def outcomes(entry: peers.PeerEntry) -> list[str]:  # derandomized: the same examples, some in the region, every run
        rows = peers.run_entry(entry, load_specs(), profile="conformance-ci", dtypes=("float64",), checks=("oracle",))
        return [r.outcome for r in rows if r.device == "cpu"]

    sdpa = "torch.nn.functional:scaled_dot_product_attention"
    assert outcomes(peers.PeerEntry("attention", sdpa, "declared", interface=kwargs, unsupported=(refused,))) == ["passed"]
    assert outcomes(peers.PeerEntry("attention", sdpa, "undeclared", interface=kwargs)) == ["error"]
    bad = peers.PeerEntry("attention", sdpa, "bad", interface=kwargs, unsupported=({**refused, "raises": "Oops"},))
    with pytest.raises(SpecError, match=r"peer entry attention = .* \(bad\): unsupported\[0\]\.raises: expected a builtin"):
        outcomes(bad)


def test_the_table_names_each_deviation_by_the_cause_the_harness_diagnosed() -> None:
    def row(check: str, outcome: str, dtype: str = "float64", **fields: str) -> dict:
        return {"check": check, "outcome": outcome, "dtype": dtype, "device": "cpu", "spec": "rmsnorm",
                "implementation": "lib:Norm", "peer": {"configuration": "default", "variant": ""}, **fields}

    diagnosed = row("oracle", "failed", detail="max |error| 1e-05 > tolerance 1e-15; matches the reading: no ε, x / "
                    "sqrt(mean(x²)) · g (Eq. 4 as printed) (at B=1, D=1; eps=1e-05); gradient: …")
    words = "no ε, x / sqrt(mean(x²)) · g (Eq. 4 as printed)"
    assert peers.cause([diagnosed, row("gradcheck", "passed")]) == f"deviates — {words} (oracle)"
    bracketed = row("oracle", "failed", detail="y: max |error| 1 > tolerance 1e-15; matches the reading: retrieve = after "
                    "(each token reads M_t; the error averaged); gradient: …")
    assert peers.cause([bracketed]) == "deviates — retrieve = after (each token reads M_t; the error averaged) (oracle)"
    undiagnosed = row("oracle", "failed", message="y: max |error| 2 > tolerance 1 = 2×0.5 [2× the tolerance; 1 of …]")
    assert peers.cause([undiagnosed]) == "deviates — y: off by 2, 2× the tolerance (oracle)", "no reading: the evidence"
    only = row("oracle", "failed", message="max |error| 2 > tolerance 1 [2× …]; fails only when base = 500000 (changing it, …)")
    assert peers.cause([only]) == "deviates — fails only when base = 500000 (oracle)"
    overflow = row("append_cache:overflow", "failed", message="overflow: no capacity error (a bare AssertionError) — an "
                   "update of length 2 with 0 of max_seq_len=1 positions cached raised AssertionError ()")
    assert peers.cause([overflow]) == "deviates — no capacity error (a bare AssertionError) (append_cache:overflow)"
    assert peers.cause([row("oracle", "passed"), row("gradient", "passed")]) == "conforms (2 checks)"
    assert peers.cause([row("oracle", "error", message="TypeError: no dim")]) == "error — TypeError: no dim (oracle)"
    both = [row("oracle", "error", message="ZeroDivisionError: division by zero"), row("pattern:p", "failed", detail="x")]
    assert peers.cause(both) == "deviates — x (pattern:p); error — ZeroDivisionError: division by zero (oracle)"
    assert peers.cause([row("oracle", "skipped", message="CUDA not available")]) == "cannot be tested: CUDA not available"
    refused = row("invariant:streaming", "error", message="NotImplementedError: lib 1.0: start=1 is inside a chunk (at T=2)")
    assert peers.cause([row("oracle", "passed"), refused]) == (
        "conforms (1 checks); cannot be tested — lib 1.0: start=1 is inside a chunk (invariant:streaming)"
    )
    report = {"peer": {"library": "lib", "version": "1.0"}, "results": [diagnosed, row("oracle", "passed", "float32")]}
    table = peers.render_index([report])
    assert "| lib 1.0 | `Norm` | default | `rmsnorm` | deviates — no ε" in table and "| conforms (1 checks) | not run |" in table


def test_a_library_that_cannot_be_used_is_listed_in_the_table_with_why_and_a_report_is_never_replaced(tmp_path: Path) -> None:
    audit = peers.PeerAudit("gone-lib", "0.1", "gone.Norm", (peers.PeerEntry("rmsnorm", "gone:Norm", "default"),))
    stub = peers.write_skipped(audit, "gone-lib cannot be imported here: ImportError: no torchao", tmp_path)
    assert stub == tmp_path / "gone_lib.json"
    assert peers.write_skipped(audit, "another reason", tmp_path) is None, "an existing report is kept"
    table = peers.write_index(tmp_path).read_text()
    assert "| gone-lib 0.1 | `Norm` | default | `rmsnorm` | cannot be tested: gone-lib cannot be imported here" in table
