"""The peer audit's adapters and declarations (``implementations/peers/``): each wraps the object it names, the way
its docstring says, and the harness's verdict on it is the one the report records. Skipped, with the reason,
where a library is not installed (the ``peers`` extra)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from conformance import peers
from conformance.spec import load_specs
from implementations.rope import apply_rotary_emb

F64 = torch.float64


def _cpu(rows: list, dtype: str = "float64") -> list:
    return [r for r in rows if r.device == "cpu" and r.dtype == dtype]


def test_the_known_audits_load_and_name_their_version() -> None:
    for ref in peers.KNOWN_AUDITS:
        audit = peers.load_audit(ref)
        assert audit.library and audit.version and audit.entries, ref


def test_llama_apply_rotary_is_the_rotate_half_rotation() -> None:
    pytest.importorskip("transformers", reason="transformers is not installed (pip install -e '.[peers]')")
    from implementations.peers.hf_transformers import llama_apply_rotary

    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 8, dtype=F64)
    angle = torch.arange(5, dtype=F64)[:, None] * 10000.0 ** (-torch.arange(4, dtype=F64) * 2 / 8)  # [L, D/2]
    assert torch.allclose(llama_apply_rotary(x, angle.cos(), angle.sin()), apply_rotary_emb(x, angle.cos(), angle.sin()))


def test_llama_rope_returns_the_half_width_tables() -> None:
    pytest.importorskip("transformers", reason="transformers is not installed (pip install -e '.[peers]')")
    from implementations.peers.hf_transformers import LlamaRope

    cos, sin = LlamaRope(8, 16, 10000)(torch.zeros(6, 8), 6)
    assert cos.shape == sin.shape == (6, 4)
    assert math.isclose(float(cos[3, 1]), math.cos(3 * 10000.0 ** (-2 / 8)), rel_tol=1e-6)


def test_llama_rmsnorm_is_diagnosed_as_computing_in_float32() -> None:
    """transformers' LlamaRMSNorm casts to float32 whatever the input: at float64 the harness says so."""
    pytest.importorskip("transformers", reason="transformers is not installed (pip install -e '.[peers]')")
    entry = peers.PeerEntry(
        "rmsnorm", "transformers.models.llama.modeling_llama:LlamaRMSNorm", "LlamaRMSNorm",
        interface={"init": {"hidden_size": "D", "eps": "eps"}},
    )
    rows = _cpu(peers.run_entry(entry, load_specs(), profile="conformance-dev", dtypes=("float64",), checks=("oracle",)))
    assert [r.outcome for r in rows] == ["failed"], [(r.outcome, r.message) for r in rows]
    assert peers.cause([r.to_json() for r in rows]).startswith("deviates — computed in float32?"), rows[0].detail


def test_x_transformers_rmsnorm_is_diagnosed_as_having_no_eps() -> None:
    pytest.importorskip("x_transformers", reason="x-transformers is not installed (pip install -e '.[peers]')")
    interface = {"init": {"dim": "D"}, "state": {"g": "weight"}}
    entry = peers.PeerEntry("rmsnorm", "x_transformers.x_transformers:RMSNorm", "RMSNorm(dim)", interface=interface)
    rows = _cpu(peers.run_entry(entry, load_specs(), profile="conformance-dev", dtypes=("float64",), checks=("oracle",)))
    assert peers.cause([r.to_json() for r in rows]).startswith("deviates — no ε"), rows[0].detail


def test_rotary_apply_passes_the_tables_as_the_librarys_angles() -> None:
    pytest.importorskip("rotary_embedding_torch", reason="rotary-embedding-torch is not installed (pip install -e '.[peers]')")
    from implementations.peers.rotary_embedding_torch import rotary_apply

    torch.manual_seed(1)
    x = torch.randn(1, 2, 4, 6, dtype=torch.float32)
    angle = torch.arange(4, dtype=F64)[:, None] * 10000.0 ** (-torch.arange(3, dtype=F64) * 2 / 6)  # [L, D/2]
    expected = apply_rotary_emb(x.double(), angle.cos(), angle.sin(), interleaved=True).float()
    assert torch.allclose(rotary_apply(x, angle.cos().float(), angle.sin().float()), expected, atol=1e-6)


def test_rotary_embedding_at_dim_2_divides_by_zero() -> None:
    """The library's ``theta_rescale_factor ** (dim / (dim - 2))`` at dim 2: the table the audit reports as an error."""
    pytest.importorskip("rotary_embedding_torch", reason="rotary-embedding-torch is not installed (pip install -e '.[peers]')")
    from implementations.peers.rotary_embedding_torch import RotaryTables

    with pytest.raises(ZeroDivisionError):
        RotaryTables(2, 8, 10000)
    cos, _ = RotaryTables(4, 8, 10000)(torch.zeros(3, 4), 3)
    assert cos.shape == (3, 2)


def test_multihead_attention_conforms_through_its_declared_packing_and_mask() -> None:
    """nn.MultiheadAttention's packed in_proj_weight, inverted mask and (output, weights) tuple, all declared: the
    equation and its gradient (through the packed weight to the drawn W_q, W_k, W_v) pass at float64."""
    from implementations.peers.torch_nn import AUDIT

    (entry,) = [e for e in AUDIT.entries if e.spec == "multihead_attention"]
    checks = ("oracle", "gradient")
    rows = _cpu(peers.run_entry(entry, load_specs(), profile="conformance-dev", dtypes=("float64",), checks=checks))
    assert sorted((r.check, r.outcome) for r in rows) == [("gradient", "passed"), ("oracle", "passed")], [r.message for r in rows]


def _entry(audit: object, spec: str, ref_part: str) -> peers.PeerEntry:
    (entry,) = [e for e in audit.AUDIT.entries if e.spec == spec and ref_part in e.ref]
    return entry


def _verdict(entry: peers.PeerEntry, checks: tuple[str, ...], dtype: str = "float64") -> str:
    rows = _cpu(peers.run_entry(entry, load_specs(), profile="conformance-dev", dtypes=(dtype,), checks=checks), dtype)
    return peers.cause([r.to_json() for r in rows])


def test_torchtune_kv_cache_is_read_through_its_buffer_and_size_and_has_no_capacity_error() -> None:
    """torchtune's KVCache returns its whole buffer (declared: returns buffer, length size): its contents conform;
    past capacity it asserts, which the overflow check names."""
    pytest.importorskip("torchtune", reason="torchtune is not installed (pip install -e '.[peers]')")
    from implementations.peers import torchtune

    entry = _entry(torchtune, "kv_cache", "KVCache")
    assert _verdict(entry, ("append_cache:contents", "append_cache:history"), "float32") == "conforms (2 checks)"
    assert _verdict(entry, ("append_cache:overflow",), "float32") == (
        "deviates — no capacity error (a bare AssertionError) (append_cache:overflow)"
    )


def test_transformers_caches_dynamic_without_capacity_static_with_an_index_error() -> None:
    pytest.importorskip("transformers", reason="transformers is not installed (pip install -e '.[peers]')")
    from implementations.peers import hf_transformers

    dynamic = _entry(hf_transformers, "kv_cache", "DynamicCache")
    assert _verdict(dynamic, ("append_cache:contents",), "float32") == "conforms (1 checks)"
    unbounded = _verdict(dynamic, ("append_cache:overflow",), "float32")
    assert unbounded.startswith("cannot be tested: the implementation declares no capacity"), unbounded
    static = _entry(hf_transformers, "kv_cache", "static_cache")
    assert _verdict(static, ("append_cache:contents",), "float32") == "conforms (1 checks)"
    assert _verdict(static, ("append_cache:overflow",), "float32").startswith("deviates — no capacity error (a bare IndexError)")


def test_torchtune_rotary_and_attention_conform_through_their_declared_conventions() -> None:
    """RotaryPositionalEmbeddings with the drawn tables as its cache buffer ([B, L, H, D], interleaved), and
    MultiHeadAttention called (x, x) with a [1, L, L] mask: the equation holds at float32."""
    pytest.importorskip("torchtune", reason="torchtune is not installed (pip install -e '.[peers]')")
    from implementations.peers import torchtune

    for spec, ref in (("rope_apply", "RotaryPositionalEmbeddings"), ("multihead_attention", "multi_head_attention")):
        assert _verdict(_entry(torchtune, spec, ref), ("oracle",), "float32") == "conforms (1 checks)", spec


def test_llama_attention_attends_causally_without_a_mask() -> None:
    """LlamaAttention called with its real inputs (identity rotary at position 0, additive mask) is the spec's
    attention with a mask; without one it attends causally, which the multihead_attention reading names."""
    pytest.importorskip("transformers", reason="transformers is not installed (pip install -e '.[peers]')")
    from implementations.peers import hf_transformers

    said = _verdict(_entry(hf_transformers, "multihead_attention", "LlamaSelfAttention"), ("oracle",), "float32")
    assert said.startswith("deviates — causal attention, each query attending the keys at or before it"), said


def test_x_transformers_rotary_is_the_interleaved_rotation_and_its_tables_divide_by_zero_at_dim_2() -> None:
    pytest.importorskip("x_transformers", reason="x-transformers is not installed (pip install -e '.[peers]')")
    from implementations.peers.x_transformers import XtRotaryTables, xt_apply_rotary

    torch.manual_seed(2)
    x = torch.randn(1, 2, 4, 6, dtype=F64)
    angle = torch.arange(4, dtype=F64)[:, None] * 10000.0 ** (-torch.arange(3, dtype=F64) * 2 / 6)  # [L, D/2]
    expected = apply_rotary_emb(x, angle.cos(), angle.sin(), interleaved=True)
    assert torch.allclose(xt_apply_rotary(x, angle.cos(), angle.sin()), expected)
    with pytest.raises(ZeroDivisionError):
        XtRotaryTables(2, 8, 10000)


def test_llama_rope_cast_to_bfloat16_is_diagnosed_as_rounding_its_frequencies() -> None:
    """Cast with the module, LlamaRotaryEmbedding's inv_freq buffer is rounded to bfloat16, and the angles grow
    from the rounded frequencies: the rope_cache reading that names it."""
    pytest.importorskip("transformers", reason="transformers is not installed (pip install -e '.[peers]')")
    from implementations.peers import hf_transformers

    entry = dataclasses.replace(_entry(hf_transformers, "rope_cache", "LlamaRope"), narrow={"base": (500000, 500000)})
    said = _verdict(entry, ("oracle",), "bfloat16")
    assert said.startswith("deviates — frequencies θ_i rounded to bfloat16"), said


def test_titans_pytorch_ignoring_retrieve_is_diagnosed() -> None:
    """titans-pytorch reads each token's memory after its own update whatever ``retrieve`` says: at chunk size 1
    the reading ``retrieve = after`` matches."""
    pytest.importorskip("titans_pytorch", reason="titans-pytorch is not installed (pip install -e '.[peers]')")
    from implementations.peers import titans_pytorch

    wanted = "memory_linear_closest[retrieve='before',loss='sum']"
    (entry,) = [e for e in titans_pytorch.AUDIT.entries if e.ref.endswith(wanted) and e.variant.startswith("chunk_size = 1")]
    said = _verdict(entry, ("oracle",))
    assert said.startswith("deviates — retrieve = after, each token reading the memory after its own update"), said


def test_llama_apply_rotary_pos_emb_conforms_through_its_declared_tables() -> None:
    """``apply_rotary_pos_emb(x, x, cat(cos, cos), cat(sin, sin), unsqueeze_dim=0)[0]``, all declared (values,
    constants, returns): no adapter code, and the equation holds."""
    pytest.importorskip("transformers", reason="transformers is not installed (pip install -e '.[peers]')")
    from implementations.peers import hf_transformers

    entry = _entry(hf_transformers, "rope_apply", "apply_rotary_pos_emb")
    assert entry.ref == "transformers.models.llama.modeling_llama:apply_rotary_pos_emb"
    assert _verdict(entry, ("oracle", "gradient")) == "conforms (2 checks)"


@pytest.mark.parametrize(
    "dtype, seed",
    [
        ("float64", 23106),  # through torch.logit's backward: 1.49× the tolerance (∂S_T/∂η)
        ("float16", 86),  # through an exact logit backward after the library's float16 sigmoid backward: 1.04× (∂S_T/∂α)
    ],
)
def test_titans_gates_reach_the_library_exactly_and_their_gradients_come_back_unscaled(dtype: str, seed: int) -> None:
    """The adapter hands α and η to the library where it takes logits as tensors whose sigmoid is the gate itself:
    α reaches Eq. 13 unrounded and ∂/∂α comes back unscaled. Each example failed the gradient check while the
    adapter fed logits (the translation's error, not the library's): at float16 the library's sigmoid backward,
    grad · σ(1 − σ), rounds into the subnormals for a gate near 1, and undoing it amplified that 1 / (σ(1 − σ))×."""
    pytest.importorskip("titans_pytorch", reason="titans-pytorch is not installed (pip install -e '.[peers]')")
    from conformance.repro import reproduce

    example = {
        "sizes": {"Dk": 1, "Dv": 1, "B": 1, "T": 8}, "params": {"start": 0, "chunk_size": 1, "loss": "mean", "retrieve": "after"},
        "magnitudes": {"k": 1.0, "alpha": 1.0, "eta": 1.0, "A": 1.0, "theta": 0.015811388300841896, "S": 1.0, "q": 1.0,
                       "W": 1.0, "v": 1.0},
        "present": {}, "seed": seed,
    }
    ref = "implementations.peers.titans_pytorch:memory_linear_closest[retrieve='after',loss='mean']"
    m = reproduce("memory_linear", ref, check="gradient", device="cpu", dtype=dtype, example=example)
    assert m.passed, m.detail


def test_titans_gate_tensor_is_its_own_sigmoid_and_nothing_after_it_keeps_the_type() -> None:
    pytest.importorskip("titans_pytorch", reason="titans-pytorch is not installed (pip install -e '.[peers]')")
    from implementations.peers.titans_pytorch import _ChannelGate, _GateForSigmoid

    x = torch.tensor([[[0.2, 0.9621, 1.0], [0.4, 0.0161, 1.0]]], dtype=torch.float16, requires_grad=True)  # [1, 2, 3]
    gate = _ChannelGate(channel=1, one=2, sigmoid_follows=True)(x)
    assert isinstance(gate, _GateForSigmoid) and isinstance(gate.reshape(2, 1), _GateForSigmoid)
    alpha = gate.reshape(2, 1).sigmoid()
    assert type(alpha) is torch.Tensor and (alpha * 2).__class__ is torch.Tensor
    assert torch.equal(alpha.flatten(), x[0, :, 1].detach())
    (grad,) = torch.autograd.grad(alpha.sum() * 3, x)
    assert torch.equal(grad[0, :, 1], torch.full((2,), 3.0, dtype=torch.float16)), "identity backward, unscaled"
    plain = _ChannelGate(channel=0, one=2, sigmoid_follows=False)(x)
    assert type(plain) is torch.Tensor and torch.equal(plain.sigmoid(), x[..., :1].sigmoid())  # θ: no sigmoid trick
