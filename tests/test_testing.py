"""Tests for conformance.testing: assert_close, count_parameters, check_gradient_flow and the fixtures.

Each utility must be able to fail: planted wrong results for ``assert_close`` and planted wrong
models for ``check_gradient_flow`` (an unused layer, a detached path, a NaN-producing op), with the
failure messages checked, beside the correct cases that pass.
"""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from conformance.dtype_helpers import eps
from conformance.testing import (
    accumulation_dtype,
    assert_close,
    check_gradient_flow,
    count_parameters,
    default_tolerance,
    device,  # noqa: F401  (the fixture, used by sample_batch and the test below)
    make_sample_batch,
    sample_batch,  # noqa: F401  (the fixture)
)
from conformance.tolerance import FALLBACK_ULPS


def _randn(*shape: int, dtype: torch.dtype = torch.float64, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# -- assert_close: the rule -------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
def test_default_tolerance_is_the_stated_rule(dtype: str) -> None:
    acc = "float32" if dtype in ("float16", "bfloat16") else dtype
    assert accumulation_dtype(dtype) == acc
    assert default_tolerance(dtype, 3.0) == pytest.approx((8 * eps(dtype) + FALLBACK_ULPS * eps(acc)) * 3.0, rel=1e-15)


def test_default_tolerance_values_in_the_docstring() -> None:
    values = {dt: default_tolerance(dt, 1.0) for dt in ("float64", "float32", "float16", "bfloat16")}
    assert f"{values['float64']:.2g}" == "1.6e-14"
    assert f"{values['float32']:.2g}" == "8.6e-06"
    assert f"{values['float16']:.2g}" == "0.0078"
    assert f"{values['bfloat16']:.2g}" == "0.063"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_rounding_to_the_dtype_passes(dtype: torch.dtype) -> None:
    x = _randn(4, 8) * 100
    m = assert_close(x.to(dtype), x)
    assert m.passed and m.max_abs_err > 0  # rounding is an error, within the bound


def test_float32_model_against_float64_passes() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 256), nn.GELU(), nn.Linear(256, 64), nn.LayerNorm(64)).double()
    x = _randn(8, 16, 64)
    expected = model(x)
    actual = model.float()(x.float())
    assert_close(actual, expected)


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
def test_error_just_beyond_the_bound_fails(dtype: str) -> None:
    expected = torch.ones(5, dtype=torch.float64)
    actual = expected.clone()
    actual[3] += default_tolerance(dtype, 1.0) * 1.01
    with pytest.raises(AssertionError, match=r"at index \(3,\)"):
        assert_close(actual, expected, dtype=dtype)
    actual[3] = 1 + default_tolerance(dtype, 1.0) * 0.99
    assert assert_close(actual, expected, dtype=dtype).passed


def test_planted_wrong_results_fail() -> None:
    x = _randn(3, 5)
    with pytest.raises(AssertionError):  # a missing 1/sqrt(2)-like factor, even in bfloat16
        assert_close((x * 1.2).bfloat16(), x)
    with pytest.raises(AssertionError):  # transposed
        assert_close(x.T.contiguous().reshape(3, 5), x)
    with pytest.raises(AssertionError):  # one element off by 1e-4 in float32
        y = x.float().clone()
        y[1, 2] += 1e-4
        assert_close(y, x)


def test_failure_message_says_errors_where_and_tolerance() -> None:
    expected = torch.tensor([[1.0, 2.0], [4.0, 0.5]], dtype=torch.float64)
    actual = torch.tensor([[1.0, 2.0], [3.0, 0.75]], dtype=torch.float32)
    with pytest.raises(AssertionError) as info:
        assert_close(actual, expected, msg="logits")
    text = str(info.value)
    assert text.startswith("logits: not close at float32: ")
    assert "max |actual - expected| = 1 at index (1, 0) (actual 3, expected 4)" in text
    assert "max |actual - expected| / |expected| = 0.5 at index (1, 1) (actual 0.75, expected 0.5)" in text
    assert "2 of 4 elements exceed the tolerance" in text
    tol = default_tolerance("float32", 4.0)
    assert f"tolerance {tol:.4g} = (8 ulps of float32 + 64 ulps of float32 accumulation) × scale 4 (max |expected|)" in text


def test_dtype_defaults_to_the_less_precise_input() -> None:
    x = _randn(6)
    with pytest.raises(AssertionError, match="not close at float16"):
        assert_close(x.half() * 1.1, x.float())
    with pytest.raises(AssertionError, match="not close at bfloat16"):
        assert_close(x, (x * 1.3).bfloat16())


@pytest.mark.parametrize("given", ["float32", torch.float32])
def test_explicit_dtype_sets_the_tolerance(given) -> None:
    x = _randn(6)
    y = x + 1e-9  # beyond float64's bound, far inside float32's
    with pytest.raises(AssertionError, match="not close at float64"):
        assert_close(y, x)
    assert assert_close(y, x, dtype=given).passed


def test_bad_dtype_and_complex_are_refused() -> None:
    with pytest.raises(ValueError, match="dtype must be one of float64, float32, bfloat16, float16, got 'int8'"):
        assert_close(torch.ones(2), torch.ones(2), dtype="int8")
    with pytest.raises(TypeError, match="actual: complex tensors are not supported"):
        assert_close(torch.ones(2, dtype=torch.complex64), torch.ones(2))


def test_shape_mismatch_is_never_broadcast() -> None:
    with pytest.raises(AssertionError, match=r"^out: shape \(1, 3\) != expected \(3,\)$"):
        assert_close(torch.ones(1, 3), torch.ones(3), msg="out")


def test_nan_and_infinity() -> None:
    inf = float("inf")
    assert assert_close(torch.tensor([inf, -inf, 1.0]), torch.tensor([inf, -inf, 1.0])).passed
    with pytest.raises(AssertionError, match=r"= inf at index \(1,\) \(actual nan, expected 1\)"):
        assert_close(torch.tensor([0.0, float("nan")]), torch.tensor([0.0, 1.0]))
    with pytest.raises(AssertionError, match="actual nan, expected nan"):  # NaN is never close, not even to NaN
        assert_close(torch.tensor([float("nan")]), torch.tensor([float("nan")]))
    with pytest.raises(AssertionError, match=r"actual inf, expected -inf"):
        assert_close(torch.tensor([inf]), torch.tensor([-inf]))


def test_integers_and_bools_compare_exactly() -> None:
    assert assert_close(torch.arange(4), torch.arange(4)).passed
    with pytest.raises(AssertionError, match=r"1 of 4 elements differ; first at index \(2,\) \(actual 2, expected 5\)"):
        assert_close(torch.arange(4), torch.tensor([0, 1, 5, 3]))
    with pytest.raises(AssertionError, match="compared exactly"):
        assert_close(torch.tensor([True, False]), torch.tensor([True, True]))


def test_all_zero_expected_needs_a_scale() -> None:
    with pytest.raises(AssertionError, match="expected is all zero.*pass scale="):
        assert_close(torch.full((3,), 1e-9), torch.zeros(3))
    m = assert_close(torch.full((3,), 1e-9), torch.zeros(3), scale=1.0)
    assert m.passed and m.tolerance.atol == pytest.approx(default_tolerance("float32", 1.0))


def test_scale_of_the_terms_for_a_cancelling_result() -> None:
    # 1e8 + 1 - 1e8 in float32 is 0: an error of 1 at result scale 1, but within rounding of the terms (1e8).
    a, b = torch.tensor([1e8], dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64)
    actual = (a.float() + b.float()) - a.float()
    with pytest.raises(AssertionError):
        assert_close(actual, b)
    assert assert_close(actual, b, scale=1e8).passed


def test_same_precision_reference_gives_the_harness_rule() -> None:
    x = _randn(4, 32)
    expected = torch.softmax(x, -1)
    reference = torch.softmax(x.bfloat16(), -1)  # a trusted implementation at the tested precision
    ref_err = float((reference.double() - expected).abs().max())
    scale = float(expected.abs().max())
    m = assert_close(torch.softmax(x.bfloat16().float(), -1).bfloat16(), expected, reference=reference)
    assert m.tolerance.atol == pytest.approx(2 * ref_err + 8 * eps("bfloat16") * scale)
    with pytest.raises(AssertionError, match=r"same-precision reference error"):
        assert_close((expected * 1.3).bfloat16(), expected, reference=reference)
    with pytest.raises(ValueError, match="reference shape"):
        assert_close(expected, expected, reference=reference[:2])


def test_accepts_numpy_lists_and_numbers_as_float64() -> None:
    assert assert_close(np.array([1.0, 2.0]), [1.0, 2.0]).passed
    with pytest.raises(AssertionError, match="not close at float64"):  # lists are float64, not torch's float32
        assert_close([1.0 + 1e-12], [1.0])
    assert assert_close(2.0, 2.0).passed


def test_tensors_that_require_grad_are_compared() -> None:
    x = _randn(3).requires_grad_()
    assert assert_close(x * 1, x.detach()).passed


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors_are_compared_on_the_cpu() -> None:
    x = _randn(4, 8)
    assert assert_close(x.cuda().float(), x).passed
    with pytest.raises(AssertionError, match=r"not close at float16: .* at index \("):
        assert_close((x * 1.01).cuda().half(), x.cuda())
    with pytest.raises(AssertionError, match="compared exactly"):
        assert_close(torch.arange(3, device="cuda"), torch.tensor([0, 1, 3]))


# -- count_parameters -------------------------------------------------------------------------------
def test_count_parameters_trainable_frozen_shared_and_buffers() -> None:
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 10, bias=True), nn.BatchNorm1d(10))
    assert count_parameters(model) == 40 + 50 + 20  # BatchNorm's running stats are buffers, not counted
    model[2].requires_grad_(False)
    assert count_parameters(model) == 90
    assert count_parameters(model, trainable_only=False) == 110


def test_count_parameters_counts_a_tied_weight_once() -> None:
    embed = nn.Embedding(10, 4)
    head = nn.Linear(4, 10, bias=False)
    head.weight = embed.weight  # tied input and output embeddings
    assert count_parameters(nn.ModuleDict({"embed": embed, "head": head})) == 40


def test_count_parameters_refuses_uninitialised_lazy_modules() -> None:
    model = nn.Sequential(nn.LazyLinear(3))
    with pytest.raises(ValueError, match="0.weight, 0.bias are not initialised yet"):
        count_parameters(model)
    model(torch.randn(2, 5))
    assert count_parameters(model) == 18


# -- check_gradient_flow ----------------------------------------------------------------------------
class Healthy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(100, 8)
        self.proj = nn.Linear(8, 8)
        self.out = nn.Linear(8, 3)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.proj(self.embed(input_ids % 100)))  # (B, L, 8)
        return self.out(h * attention_mask.unsqueeze(-1))  # (B, L, 3)


class UnusedLayer(Healthy):
    """A layer created and never called (the guide's module template has one)."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(8)


class DetachedPath(Healthy):
    """The projection's output is detached: no gradient reaches ``proj``."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.proj(self.embed(input_ids % 100)).detach())  # (B, L, 8)
        return self.out(h * attention_mask.unsqueeze(-1))


class NaNGradient(Healthy):
    """sqrt inside a where: the forward pass is finite, the gradient of the masked branch is NaN."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.proj(self.embed(input_ids % 100))  # (B, L, 8)
        h = torch.where(h > 0, h.sqrt(), torch.zeros_like(h))
        return self.out(h * attention_mask.unsqueeze(-1))


def _batch() -> dict[str, torch.Tensor]:
    return make_sample_batch("cpu", seed=1)


def test_healthy_model_passes_and_grads_are_returned() -> None:
    torch.manual_seed(0)
    model = Healthy()
    grads = check_gradient_flow(model, _batch())
    assert sorted(grads) == sorted(name for name, _ in model.named_parameters())
    assert all(torch.isfinite(g).all() for g in grads.values())
    assert all(p.grad is None for p in model.parameters())  # .grad left untouched


def test_unused_layer_is_reported() -> None:
    torch.manual_seed(0)
    with pytest.raises(AssertionError) as info:
        check_gradient_flow(UnusedLayer(), _batch())
    text = str(info.value)
    assert text.startswith("gradient flow: 2 of 7 trainable parameters have no finite gradient:")
    assert "norm.weight: no gradient (None)" in text and "norm.bias: no gradient (None)" in text


def test_unused_layer_with_stale_grad_is_still_reported() -> None:
    """The guide's check reads ``.grad``, which a stale value from earlier fills; autograd.grad does not."""
    torch.manual_seed(0)
    model = UnusedLayer()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # what zero_grad(set_to_none=False) leaves behind
    with pytest.raises(AssertionError, match="norm.weight: no gradient"):
        check_gradient_flow(model, _batch())


def test_detached_path_is_reported() -> None:
    torch.manual_seed(0)
    with pytest.raises(AssertionError) as info:
        check_gradient_flow(DetachedPath(), _batch())
    text = str(info.value)
    for name in ("embed.weight", "proj.weight", "proj.bias"):
        assert f"{name}: no gradient (None): not used to compute the loss, or only through a detached path" in text
    assert "out.weight" not in text and "3 of 5 trainable parameters" in text


def test_nan_gradient_is_reported_with_counts() -> None:
    torch.manual_seed(0)
    with pytest.raises(AssertionError) as info:
        check_gradient_flow(NaNGradient(), _batch())
    text = str(info.value)
    assert "proj.weight: non-finite gradient: " in text and "NaN and 0 infinite of 64 entries" in text
    assert "embed.weight: non-finite gradient" in text and "out.weight" not in text
    assert "(the loss itself" not in text  # the forward pass is finite


def test_all_offenders_reported_at_once() -> None:
    class Everything(NaNGradient):
        def __init__(self) -> None:
            super().__init__()
            self.unused = nn.Linear(2, 2)

    torch.manual_seed(0)
    with pytest.raises(AssertionError) as info:
        check_gradient_flow(Everything(), _batch())
    lines = str(info.value).splitlines()
    assert lines[0] == "gradient flow: 5 of 7 trainable parameters have no finite gradient:"
    assert len(lines) == 6


def test_nan_loss_and_inf_gradient_are_named() -> None:
    class Inf(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.zeros(3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (self.w * x).abs().sqrt()  # d sqrt|u| / du at u = 0 is infinite

    with pytest.raises(AssertionError, match=r"w: non-finite gradient: \d+ NaN and \d+ infinite of 3 entries"):
        check_gradient_flow(Inf(), torch.ones(3))
    with pytest.raises(AssertionError, match=r"\(the loss itself is nan\)"):
        check_gradient_flow(Inf(), torch.ones(3), loss_fn=lambda out: out.sum() * float("nan"))


def test_loss_fn_frozen_parameters_and_inputs_forms() -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    x = torch.randn(4, 3)
    assert sorted(check_gradient_flow(model, x)) == ["bias", "weight"]
    assert sorted(check_gradient_flow(model, (x,))) == ["bias", "weight"]
    assert sorted(check_gradient_flow(model, {"input": x})) == ["bias", "weight"]
    model.bias.requires_grad_(False)
    assert sorted(check_gradient_flow(model, x, loss_fn=lambda y: (y**2).mean())) == ["weight"]  # frozen: not checked
    with pytest.raises(AssertionError, match=r"1 of 1 .*\(the loss does not require grad"):
        check_gradient_flow(model, x, loss_fn=lambda y: y.detach().sum())
    with pytest.raises(ValueError, match="the loss must be a tensor with one element, got Tensor of shape"):
        check_gradient_flow(model, x, loss_fn=lambda y: y)
    model.weight.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        check_gradient_flow(model, x)


def test_default_loss_uses_outputs_loss_and_nested_outputs() -> None:
    class WithLoss(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(2, 2), nn.Linear(2, 2)

        def forward(self, x: torch.Tensor) -> SimpleNamespace:
            return SimpleNamespace(loss=self.a(x).sum(), logits=self.b(x))  # b is computed but not in the loss

    with pytest.raises(AssertionError, match="b.weight: no gradient"):
        check_gradient_flow(WithLoss(), torch.ones(1, 2))

    class Nested(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(2, 2), nn.Linear(2, 2)

        def forward(self, x: torch.Tensor):
            return {"h": (self.a(x).half(), [self.b(x)]), "ids": torch.arange(2)}

    assert len(check_gradient_flow(Nested(), torch.ones(1, 2))) == 4

    class Text(nn.Linear):
        def forward(self, x: torch.Tensor) -> str:
            return "text"

    with pytest.raises(TypeError, match="cannot build a loss from outputs of type str; pass loss_fn"):
        check_gradient_flow(Text(2, 2), torch.ones(2))


# -- fixtures -----------------------------------------------------------------------------------------
def test_device_fixture(device: torch.device) -> None:  # noqa: F811
    assert device.type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_sample_batch_fixture(sample_batch: dict[str, torch.Tensor], device: torch.device) -> None:  # noqa: F811
    assert set(sample_batch) == {"input_ids", "attention_mask"}
    ids, mask = sample_batch["input_ids"], sample_batch["attention_mask"]
    assert ids.shape == mask.shape == (2, 10) and ids.dtype == mask.dtype == torch.int64
    assert ids.device.type == mask.device.type == device.type
    assert 0 <= int(ids.min()) and int(ids.max()) < 1000 and bool((mask == 1).all())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gradient_flow_and_sample_batch_on_cuda() -> None:
    assert torch.equal(make_sample_batch("cuda")["input_ids"].cpu(), make_sample_batch()["input_ids"])  # same tokens
    torch.manual_seed(0)
    assert check_gradient_flow(Healthy().cuda(), make_sample_batch("cuda"))
    for planted, offender in ((UnusedLayer, "norm.weight: no gradient"), (NaNGradient, "proj.weight: non-finite")):
        with pytest.raises(AssertionError, match=offender):
            check_gradient_flow(planted().cuda(), make_sample_batch("cuda"))


def test_sample_batch_is_reproducible_and_seeded() -> None:
    a, b = make_sample_batch(), make_sample_batch()
    assert torch.equal(a["input_ids"], b["input_ids"])
    assert not torch.equal(a["input_ids"], make_sample_batch(seed=1)["input_ids"])
    big = make_sample_batch(batch_size=3, seq_len=7, vocab_size=5)
    assert big["input_ids"].shape == (3, 7) and int(big["input_ids"].max()) < 5


def test_sample_batch_feeds_a_model(sample_batch: dict[str, torch.Tensor], device: torch.device) -> None:  # noqa: F811
    torch.manual_seed(0)
    assert check_gradient_flow(Healthy().to(device), sample_batch)


def test_importing_the_module_does_not_import_torch() -> None:
    """The plugin may expose the fixtures without making every pytest session import torch."""
    code = "import sys, conformance.testing; print(json.dumps(['torch' in sys.modules, 'numpy' in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [False, False]


def test_fixtures_reach_users_through_a_plugin_that_imports_them(pytester: pytest.Pytester) -> None:
    """What the pytest plugin does to expose them: import the two fixtures. A user's own fixture wins."""
    pytester.makepyfile(exposing_plugin="from conformance.testing import device, sample_batch  # noqa: F401\n")
    pytester.makepyfile(
        test_user="""
        def test_uses_both(device, sample_batch):
            assert sample_batch["input_ids"].device.type == device.type
        """,
        test_override="""
        import pytest

        @pytest.fixture
        def device():
            return "mine"

        def test_own_device_wins(device):
            assert device == "mine"
        """,
    )
    pytester.syspathinsert()
    result = pytester.runpytest("-p", "exposing_plugin", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


# -- assert_tensor_equal (the guide's helper) ------------------------------------------------------
def test_assert_tensor_equal_has_the_guide_semantics() -> None:
    from conformance.testing import assert_tensor_equal

    b = torch.tensor([1.0, -2.0, 1e3])
    assert_tensor_equal(b + torch.tensor([9e-6, 0.0, 0.0]), b)  # within atol
    assert_tensor_equal(b + torch.tensor([0.0, 0.0, 1e-2]), b)  # within rtol·|b| = 1e-2
    with pytest.raises(AssertionError, match=r"^w: max diff = 0.03125 \(1 of 3 elements differ; worst at index \(2,\)"):
        assert_tensor_equal(b + torch.tensor([0.0, 0.0, 2**-5]), b, msg="w")  # exact in float32
    assert_tensor_equal(torch.tensor([1.0]), torch.tensor([1.5]), rtol=0.0, atol=0.5)


def test_assert_tensor_equal_closes_the_guide_gaps() -> None:
    from conformance.testing import assert_tensor_equal

    with pytest.raises(AssertionError, match=r"shape \(3,\) != \(1, 3\)"):
        assert_tensor_equal(torch.ones(3), torch.ones(1, 3))  # torch.allclose broadcasts these
    with pytest.raises(AssertionError, match="a NaN is never equal"):
        assert_tensor_equal(torch.tensor([float("nan")]), torch.tensor([float("nan")]))
    with pytest.raises(AssertionError, match="max diff = inf"):
        assert_tensor_equal(torch.tensor([float("inf")]), torch.tensor([1.0]))
    assert_tensor_equal(torch.tensor([float("inf")]), torch.tensor([float("inf")]))
    assert_tensor_equal(torch.ones(2, dtype=torch.float16), torch.ones(2, dtype=torch.float64))  # allclose raised


def test_assert_tensor_equal_raises_under_python_dash_o() -> None:
    import subprocess
    import sys

    code = "import torch\nfrom conformance.testing import assert_tensor_equal\nassert_tensor_equal(torch.ones(2), torch.zeros(2))"
    result = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "AssertionError: max diff = 1" in result.stderr
