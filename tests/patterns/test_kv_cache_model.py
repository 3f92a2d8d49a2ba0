"""The ``append_cache`` pattern kind: options, value draws, bitwise comparison, error clarity,
the decoding comparison, and runs of the state machine (passing, and failing with the steps)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hypothesis import settings

from conformance.calling import ImplementationError
from conformance.patterns import PatternContext, kinds
from conformance.patterns import kv_cache_model as kv_kind
from conformance.patterns.runs import kv_cache_model as kv
from conformance.spec import SpecError, load_file, load_specs
from conformance.validation import Where
from implementations.attention import attention_manual
from implementations.kv_cache import KVCache, decode_attention
from tests.patterns.kind_helpers import dotted, rejected, validated

DEFECTS = Path(__file__).resolve().parent.parent / "meta_tests" / "defects" / "kv_cache_defects.py"
FAST = settings(max_examples=15, derandomize=True, deadline=None, database=None)


def _options(**extra) -> dict:
    return validated(kv_kind.validate, {"checks": ["contents"], **extra})


# -- options --------------------------------------------------------------------------------------


def test_kind_is_discovered() -> None:
    assert kinds()["append_cache"] is kv_kind.KIND
    assert kv_kind.KIND.dtypes == ("float64", "float32", "bfloat16", "float16") and kv_kind.KIND.devices == ("cpu", "cuda")


def test_defaults() -> None:
    out = _options()
    assert out["checks"] == ("contents",) and out["max_seq_len"] == (1, 12) and out["update_length"] == (0, 4)
    assert out["special_values"] is True and out["max_steps"] == 20 and "attention" not in out
    decoding = validated(kv_kind.validate, {"checks": ["decoding"], "attention": "implementations.kv_cache:decode_attention"})
    assert decoding["special_values"] is False


@pytest.mark.parametrize(
    "options, key, words",
    [
        ({"checks": []}, ("checks",), "non-empty list"),
        ({"checks": "contents"}, ("checks",), "non-empty list"),
        ({"checks": ["contents", "bogus"]}, ("checks", 1), "unknown check 'bogus'"),
        ({"checks": ["history", "history"]}, ("checks",), "at most once"),
        ({"checks": ["contents"], "max_seq_len": {"min": 0, "max": 4}}, ("max_seq_len",), "1 <= min <= max <= 256"),
        ({"checks": ["contents"], "batch_size": {"min": 3, "max": 2}}, ("batch_size",), "min <= max"),
        ({"checks": ["contents"], "head_dim": 8}, ("head_dim",), "{min, max}"),
        ({"checks": ["contents"], "n_heads": {"min": True, "max": 2}}, ("n_heads",), "min <= max"),
        ({"checks": ["contents"], "n_heads": [1, 2]}, ("n_heads",), "write {min: 1, max: 2}"),  # the old list form
        ({"checks": ["contents"], "update_length": {"min": -1, "max": 2}}, ("update_length",), "0 <= min"),
        ({"checks": ["contents"], "max_steps": 0}, ("max_steps",), "[1, 100]"),
        ({"checks": ["contents"], "special_values": "yes"}, ("special_values",), "true or false"),
        ({"checks": ["decoding"]}, ("attention",), "needs 'attention'"),
        ({"checks": ["decoding"], "attention": "no colon"}, ("attention",), "package.module:attribute"),
        ({"checks": ["decoding"], "attention": "a:b", "special_values": True}, ("special_values",), "inf/NaN"),
        ({"checks": ["contents"], "attention": "a:b"}, ("attention",), "only the decoding check"),
    ],
)
def test_bad_options_name_their_key(options: dict, key: tuple, words: str) -> None:
    path, message = rejected(kv_kind.validate, options)
    assert path == dotted(key) and words in message


def test_bad_option_fails_the_spec_on_load(tmp_path: Path) -> None:
    text = Path("specs/kv_cache.yaml").read_text(encoding="utf-8")
    text = text.replace("max_seq_len: {min: 1, max: 12}", "max_seq_len: {min: 1, max: 9999}", 1)
    bad = tmp_path / "kv.yaml"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError, match=r"specs\[0\]\.patterns\[0\]\.max_seq_len: expected integers 1 <= min <= max <= 256"):
        load_file(bad)


def test_unknown_option_fails_the_spec_on_load(tmp_path: Path) -> None:
    text = Path("specs/kv_cache.yaml").read_text(encoding="utf-8").replace("max_steps: 20", "max_step: 20", 1)
    bad = tmp_path / "kv.yaml"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError, match=r"patterns\[0\]\.max_step: unknown key"):
        load_file(bad)


def test_shipped_spec_lists_one_entry_per_check() -> None:
    spec = load_specs()["kv_cache"]
    assert [p.options["checks"] for p in spec.patterns] == [(c,) for c in kv_kind.CHECKS]
    assert spec.ambiguities and spec.paper.arxiv == "2211.05102"


# -- values and comparisons -----------------------------------------------------------------------


def test_draws_are_deterministic_and_wide() -> None:
    a = kv.draw_values((4, 64), 7, "float32", "cpu", special=False, wide=True)
    assert torch.equal(a, kv.draw_values((4, 64), 7, "float32", "cpu", special=False, wide=True))
    assert not torch.equal(a, kv.draw_values((4, 64), 8, "float32", "cpu", special=False, wide=True))
    exps = torch.frexp(a).exponent
    assert a.dtype == torch.float32 and torch.isfinite(a).all() and int(exps.max() - exps.min()) > 100


@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16", "float16"])
def test_special_values_are_drawn(dtype: str) -> None:
    x = kv.draw_values((64, 64), 0, dtype, "cpu", special=True, wide=True)
    assert x.isnan().any() and x.isposinf().any() and x.isneginf().any()
    assert ((x == 0) & x.signbit()).any(), "−0.0"
    assert ((x != 0) & (x.abs() < torch.finfo(x.dtype).smallest_normal)).any(), "a subnormal"


def test_narrow_draws_are_in_unit_range() -> None:
    x = kv.draw_values((64,), 3, "bfloat16", "cpu", special=False, wide=False)
    assert x.abs().max() <= 1


def test_first_difference_is_bitwise() -> None:
    x = torch.tensor([1.0, -0.0, math.inf, math.nan])
    assert kv.first_difference(x.clone(), x) is None
    text, err = kv.first_difference(torch.tensor([1.0, 0.0, math.inf, math.nan]), x)
    assert text.startswith("at (1,): expected -0.0, found 0.0") and err == 0.0
    assert kv.first_difference(x[:3], x)[0] == "shape (3,), expected (4,)"
    payload = x.clone()
    payload.view(torch.int32)[3] += 1  # another NaN
    assert payload[3].isnan() and kv.first_difference(payload, x) is not None


def test_first_difference_converts_and_forgives_nan_payloads_across_dtypes() -> None:
    x = torch.tensor([1.5, -0.0, math.nan], dtype=torch.float16)
    assert kv.first_difference(x.float(), x) is None
    text, err = kv.first_difference(torch.tensor([1.25, -0.0, math.nan]), x)
    assert "expected 1.5, found 1.25" in text and err == 0.25


class CacheFullError(Exception):
    """An implementation's own exception class (not a ValueError)."""


@pytest.mark.parametrize(
    "exc, why",
    [
        (ValueError("capacity 4 exceeded: update of 3 positions needs 5"), None),
        (ValueError("max_seq_len=4, requested 5"), None),
        (CacheFullError("full: 4 positions, asked for 3 more"), None),
        (RuntimeError("capacity 4, requested 5"), "expected ValueError or an exception class"),
        (IndexError("capacity 4, requested 5"), "expected ValueError or an exception class"),
        (ValueError("cache is full"), "must name the capacity (4)"),
        (ValueError("capacity 48, requested 5"), "must name the capacity (4)"),
        (ValueError("capacity 4"), "requested length (3 or 5)"),
    ],
)
def test_overflow_error_clarity(exc: Exception, why: str | None) -> None:
    found = kv._clear_error(exc, capacity=4, used=2, length=3)
    assert found is None if why is None else why in found


# -- decoding -------------------------------------------------------------------------------------


def _setup(dtype: str = "float32", attention=decode_attention, **options) -> kv.Setup:
    opts = validated(kv_kind.validate, {"checks": ["decoding"], "attention": "a.b:c", **options})
    return kv.Setup(KVCache, attention, "cpu", dtype, opts, load_specs()["kv_cache"].tolerance_rule(dtype))


def _sequence(n: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return tuple((torch.rand(2, 2, n, 4, generator=g, dtype=torch.float64) * 2 - 1).to(dtype) for _ in range(3))


@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16", "float16"])
def test_bottom_right_decoding_passes_and_top_left_fails(dtype: str) -> None:
    Q, K, V = _sequence(7, getattr(torch, dtype))
    chunk = 3
    good = kv.decoding_error(decode_attention(Q[..., -chunk:, :], K, V), chunk, Q, K, V, _setup(dtype))
    assert good.passed and good.tolerance is not None
    bad = attention_manual(Q[..., -chunk:, :], K, V, is_causal=True)  # top-left: query 0 of the chunk sees key 0 only
    wrong = kv.decoding_error(bad, chunk, Q, K, V, _setup(dtype))
    assert not wrong.passed and "tolerance" in wrong.detail


def test_decoding_of_the_whole_sequence_is_plain_causal_attention() -> None:
    Q, K, V = _sequence(5, torch.float64)
    m = kv.decoding_error(attention_manual(Q, K, V, is_causal=True), 5, Q, K, V, _setup("float64"))
    assert m.passed and m.max_abs_err < 1e-14


def test_decoding_output_of_another_dtype_fails() -> None:
    Q, K, V = _sequence(4, torch.float32)
    m = kv.decoding_error(decode_attention(Q, K, V).double(), 4, Q, K, V, _setup("float32"))
    assert not m.passed and "torch.float64" in m.detail


# -- running the machine --------------------------------------------------------------------------


def _ctx(check: str, ref: str = "implementations.kv_cache:KVCache", dtype: str = "float32", **replace) -> PatternContext:
    spec = load_specs()["kv_cache"]
    pattern = next(p for p in spec.patterns if p.id == check)
    return PatternContext(spec, ref, "cpu", dtype, {**pattern.options, **replace}, FAST)


@pytest.mark.parametrize("check", ["contents", "history", "overflow", "dtype_device", "causal_decoding"])
def test_our_cache_passes(check: str) -> None:
    m = kv.run(_ctx(check))
    assert m.passed and m.examples >= 15, m.detail
    assert "runs:" in m.detail


def test_overflow_runs_refuse_updates() -> None:
    m = kv.run(_ctx("overflow"))
    refused = int(m.detail.split(" refused")[0].rsplit(", ", 1)[1])
    assert m.passed and refused > 0


def test_a_failure_carries_the_step_sequence() -> None:
    m = kv.run(_ctx("contents", f"{DEFECTS}:OffByOneOffset"))
    assert not m.passed and m.tolerance is None
    assert m.detail.startswith("contents: after an update of length")
    steps = m.detail.split("Falsifying steps:\n", 1)[1]
    assert "state = KVCacheMachine()" in steps and "state.build(" in steps and "Draw 1 (length):" in steps


def test_decoding_failure_keeps_its_tolerance() -> None:
    m = kv.run(_ctx("causal_decoding", attention=f"{DEFECTS}:top_left_decode_attention"))
    assert not m.passed and m.tolerance is not None and m.max_abs_err > m.tolerance.atol


def test_the_guide_accepts_an_update_into_a_full_cache() -> None:
    """The guide's silent path: full cache, update of length 1 broadcasts into an empty slice."""
    from tests.meta_tests.defects.kv_cache_defects import GuideKVCache

    machine = kv.build_machine(kv.Setup(GuideKVCache, None, "cpu", "float32", _options(checks=["overflow"]), None))()
    machine.build(batch_size=1, n_heads=1, head_dim=1, max_seq_len=1, seed=0)
    machine._send(1)
    accepted = r"overflow: no capacity error \(the update is accepted\) — an update of length 1 .* was accepted"
    with pytest.raises(kv.Violation, match=accepted):
        machine.overflow(excess=1)
    assert machine.cache.current_len == 2  # the length went past capacity


class NotAPair:
    def __init__(self, **_: object) -> None:
        pass

    def update(self, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return k

    def reset(self) -> None:
        pass


class BrokenConstructor:
    def __init__(self, batch_size: int, max_seq_len: int, n_heads: int, head_dim: int, device: str) -> None:
        raise TypeError("no device argument expected")


def test_interface_and_crashes_are_failures_with_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = _ctx("contents")
    monkeypatch.setattr(PatternContext, "target", lambda self: NotAPair)
    m = kv.run(ctx)
    assert not m.passed and m.detail.startswith("interface: an update of length") and "state.build(" in m.detail
    monkeypatch.setattr(PatternContext, "target", lambda self: BrokenConstructor)
    m = kv.run(ctx)
    assert not m.passed and "valid call: BrokenConstructor(batch_size=1" in m.detail and "TypeError: no device" in m.detail


def test_an_unresolvable_attention_is_an_error_not_a_failure() -> None:
    with pytest.raises(ImplementationError):
        kv.run(_ctx("causal_decoding", attention="no_such_module:attend"))


# -- calling conventions (an implementation entry's interface) -------------------------------------


class BufferCache:
    """A correct cache that returns its whole preallocated buffer and says how much is filled (torchtune's way):
    built ``(bsz, capacity, heads, width, dtype)``, updated ``push(k, v, layer=0)``, cleared ``clear()``."""

    def __init__(self, bsz: int, capacity: int, heads: int, width: int, dtype: torch.dtype) -> None:
        self.k = torch.zeros(bsz, heads, capacity, width, dtype=dtype)  # (B, H, capacity, Dh)
        self.v = torch.zeros_like(self.k)
        self.filled = 0

    def push(self, k: torch.Tensor, v: torch.Tensor, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        assert layer == 0
        n = k.size(2)
        if self.filled + n > self.k.size(2):
            raise ValueError(f"capacity {self.k.size(2)} exceeded: {self.filled + n} positions")
        self.k[:, :, self.filled : self.filled + n] = k
        self.v[:, :, self.filled : self.filled + n] = v
        self.filled += n
        return self.k, self.v

    def clear(self) -> None:
        self.filled = 0

    def to(self, device: str) -> BufferCache:
        return self


class MiscountingBufferCache(BufferCache):
    """Reports one position more than it holds once anything is cached."""

    @property
    def size(self) -> int:
        return self.filled + 1 if self.filled else 0


BUFFER = {
    "init": {"bsz": "batch_size", "capacity": "max_seq_len", "heads": "n_heads", "width": "head_dim", "dtype": "dtype"},
    "update": "push", "constants": {"layer": 0}, "returns": "buffer", "length": "filled", "reset": "clear",
    "to_device": True,
}


def _with_interface(check: str, target: type, interface: dict, monkeypatch: pytest.MonkeyPatch) -> PatternContext:
    ctx = _ctx(check)
    monkeypatch.setattr(PatternContext, "target", lambda self: target)
    declared = kv_kind.validate_interface(interface, Where("t.yaml"))
    monkeypatch.setattr(PatternContext, "interface", property(lambda self: declared))
    return ctx


@pytest.mark.parametrize("check", ["contents", "history", "overflow", "dtype_device", "causal_decoding"])
def test_a_whole_buffer_with_its_length_conforms(check: str, monkeypatch: pytest.MonkeyPatch) -> None:
    m = kv.run(_with_interface(check, BufferCache, BUFFER, monkeypatch))
    assert m.passed, m.detail


def test_a_buffer_cut_at_a_wrong_length_fails_contents(monkeypatch: pytest.MonkeyPatch) -> None:
    m = kv.run(_with_interface("contents", MiscountingBufferCache, {**BUFFER, "length": "size"}, monkeypatch))
    assert not m.passed and m.detail.startswith("interface: after an update") and "the cache's size is" in m.detail


def test_without_the_declared_buffer_the_same_cache_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    contents = {k: v for k, v in BUFFER.items() if k not in ("returns", "length")}
    m = kv.run(_with_interface("contents", BufferCache, contents, monkeypatch))
    assert not m.passed and "contents:" in m.detail and "shape" in m.detail


def test_a_cache_without_capacity_skips_overflow_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from conformance.checks import CheckSkipped

    unbounded = {"capacity": False}
    with pytest.raises(CheckSkipped, match="declares no capacity"):
        kv.run(_with_interface("overflow", KVCache, unbounded, monkeypatch))
    assert kv.run(_with_interface("contents", KVCache, unbounded, monkeypatch)).passed


@pytest.mark.parametrize(
    "body, key, words",
    [
        ({"bogus": 1}, "interface.bogus", "unknown key"),
        ({"init": {"n": "heads"}}, "interface.init.n", "expected one of batch_size"),
        ({"init": ["batch_size"]}, "interface.init", "expected a mapping"),
        ({"update": "not a name"}, "interface.update", "the name of the cache's method"),
        ({"constants": {"layer": [0]}}, "interface.constants", "a literal"),
        ({"returns": "all"}, "interface.returns", "'contents'"),
        ({"returns": "buffer"}, "interface.length", "with returns: buffer"),
        ({"length": "size"}, "interface.length", "returns: buffer only"),
        ({"capacity": "no"}, "interface.capacity", "true (max_seq_len is a capacity)"),
        ({"to_device": 1}, "interface.to_device", "true (moved with .to(device)"),
    ],
)
def test_a_bad_cache_interface_names_its_key(body: dict, key: str, words: str) -> None:

    with pytest.raises(SpecError) as info:
        kv_kind.validate_interface(body, Where("s.yaml", ("interface",)))
    assert info.value.path == key and words in str(info.value)


def test_a_cache_interface_in_a_spec_file_is_validated_by_the_kind(tmp_path: Path) -> None:
    text = Path("specs/kv_cache.yaml").read_text(encoding="utf-8")
    declared = text.replace("- ref: implementations.kv_cache:KVCache", "- ref: implementations.kv_cache:KVCache\n"
                            "        interface: {returns: buffer, length: size}")
    good = tmp_path / "kv.yaml"
    good.write_text(declared, encoding="utf-8")
    (spec,) = load_file(good)
    assert spec.implementations[0].interface["length"] == "size" and spec.implementations[0].interface["capacity"] is True
    bad = tmp_path / "bad.yaml"
    bad.write_text(declared.replace("length: size", "length: 3"), encoding="utf-8")
    with pytest.raises(SpecError, match=r"specs\[0\]\.implementations\[0\]\.interface\.length: with returns: buffer"):
        load_file(bad)
