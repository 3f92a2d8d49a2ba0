"""conformance.calling: finding an implementation by reference, and calling it as its spec says.

References are ``module:attr`` or ``path/file.py:attr`` (from the cwd, else from the spec's folder);
every way of getting one wrong is one clear ImplementationError. ``build_callable`` passes inputs,
params and optional inputs as the interface says; modules are built from ``init``, moved to the
dtype, put in eval mode and called with the drawn ``state`` tensors, so gradients reach them.

Each test writes its implementation files under a name of its own: resolution is cached per reference.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

from conformance.calling import ImplementationError, build_callable, resolve
from implementations.rmsnorm import RMSNorm
from implementations.surprise import compute_surprise
from tests.spec_helpers import shipped_specs


def write_module(directory: Path, name: str, source: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def resolve_error(ref: str, base: Path | None = None) -> str:
    with pytest.raises(ImplementationError) as info:
        resolve(ref, base)
    return str(info.value)


# -- resolve ---------------------------------------------------------------------------------------
def test_resolve_module_attribute() -> None:
    assert resolve("implementations.rmsnorm:RMSNorm") is RMSNorm
    assert resolve("implementations.surprise:compute_surprise") is compute_surprise


def test_resolve_file_relative_to_the_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_module(tmp_path / "pkg", "cwd_relative_impl.py", "def f():\n    return 'from the cwd'\n")
    monkeypatch.chdir(tmp_path)
    assert resolve("pkg/cwd_relative_impl.py:f")() == "from the cwd"


def test_resolve_file_relative_to_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = tmp_path / "specs"
    write_module(base, "base_relative_impl.py", "def f():\n    return 'from base'\n")
    monkeypatch.chdir(tmp_path)  # not found from here
    assert resolve("base_relative_impl.py:f", base=base)() == "from base"
    assert "not found" in resolve_error("base_relative_impl.py:f")


def test_a_relative_ref_resolves_from_its_base_else_from_the_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A spec's refs resolve from the spec's folder (their base), command-line refs from the working directory."""
    write_module(tmp_path / "cwd", "both_places_impl.py", "def f():\n    return 'cwd'\n")
    write_module(tmp_path / "base", "both_places_impl.py", "def f():\n    return 'base'\n")
    monkeypatch.chdir(tmp_path / "cwd")
    assert resolve("both_places_impl.py:f", base=tmp_path / "base")() == "base"
    assert resolve("both_places_impl.py:f")() == "cwd"
    write_module(tmp_path / "cwd", "only_in_cwd_impl.py", "def f():\n    return 'cwd'\n")
    assert "not found (in " in resolve_error("only_in_cwd_impl.py:f", base=tmp_path / "base")


def test_spec_refs_resolve_from_the_spec_folder_and_impl_refs_from_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conformance.selection import build_cases
    from tests.spec_helpers import load_one, minimal_spec, write_spec

    write_module(tmp_path / "specs", "impl.py", "def f(h, m):\n    return 'spec folder'\n")
    write_module(tmp_path / "work", "impl.py", "def f(h, m):\n    return 'working directory'\n")
    data = minimal_spec()
    data["specs"][0]["implementations"] = [{"ref": "impl.py:f"}]
    spec = load_one(write_spec(tmp_path / "specs", data))
    monkeypatch.chdir(tmp_path / "work")
    assert spec.ref_base("impl.py:f") == tmp_path / "specs"
    assert resolve("impl.py:f", spec.ref_base("impl.py:f"))(0, 0) == "spec folder"
    overridden = spec.with_implementations(["impl.py:f"])  # as --impl gives it: the working directory's
    assert overridden.ref_base("impl.py:f") is None
    (case, *_) = [c for c in build_cases({"toy": spec}, {"toy": ["impl.py:f"]}) if c.check == "oracle"]
    assert resolve("impl.py:f", case.spec.ref_base("impl.py:f"))(0, 0) == "working directory"


def test_resolve_absolute_file(tmp_path: Path) -> None:
    path = write_module(tmp_path, "absolute_impl.py", "VALUE = 42\n")
    assert resolve(f"{path}:VALUE") == 42


def test_implementation_error_is_a_value_error() -> None:
    assert issubclass(ImplementationError, ValueError)


def test_missing_module() -> None:
    assert resolve_error("no_such_module_for_calling_tests:f") == (
        "cannot import 'no_such_module_for_calling_tests': ModuleNotFoundError: "
        "No module named 'no_such_module_for_calling_tests'"
    )


def test_missing_attribute() -> None:
    assert resolve_error("implementations.rmsnorm:Nope") == "module 'implementations.rmsnorm' has no attribute 'Nope'"


def test_missing_attribute_in_a_file(tmp_path: Path) -> None:
    path = write_module(tmp_path, "no_attr_impl.py", "def f():\n    return 1\n")
    assert resolve_error(f"{path}:g") == f"module '{path}' has no attribute 'g'"


def test_file_not_found(tmp_path: Path) -> None:
    assert resolve_error("missing_impl_file.py:f", base=tmp_path) == f"file 'missing_impl_file.py' not found (in {tmp_path})"


def test_module_raising_on_import(tmp_path: Path) -> None:
    path = write_module(tmp_path, "raises_on_import_impl.py", "def f():\n    return 1\n\nraise RuntimeError('boom at import')\n")
    assert resolve_error(f"{path}:f") == f"cannot import '{path}': RuntimeError: boom at import"


def test_reference_without_a_colon() -> None:
    assert resolve_error("implementations.rmsnorm.RMSNorm") == (
        "expected 'module:attribute' or 'file.py:attribute', got 'implementations.rmsnorm.RMSNorm'"
    )


def test_module_raising_on_import_fails_every_time(tmp_path: Path) -> None:
    path = write_module(tmp_path, "raises_twice_impl.py", "def f():\n    return 1\n\nraise RuntimeError('boom at import')\n")
    first = resolve_error(f"{path}:f")
    assert resolve_error(f"{path}:f") == first


def test_relative_file_follows_the_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("first", "second"):
        write_module(tmp_path / name, "cwd_cached_impl.py", f"def f():\n    return {name!r}\n")
    monkeypatch.chdir(tmp_path / "first")
    assert resolve("cwd_cached_impl.py:f")() == "first"
    monkeypatch.chdir(tmp_path / "second")
    assert resolve("cwd_cached_impl.py:f")() == "second"


# -- build_callable: functions ---------------------------------------------------------------------
RECORDING = """
import torch

CALLS = []

def attention(Q, K, V, **kwargs):
    CALLS.append(kwargs)
    return torch.softmax(Q @ K.transpose(-1, -2), -1) @ V

def difference(hidden, memory_pred):
    return (hidden - memory_pred).sum(-1)

def as_tuple(hidden, memory_pred):
    return ((hidden - memory_pred).pow(2).sum(-1),)

def two_outputs(hidden, memory_pred):
    return hidden.sum(-1), memory_pred.sum(-1)
"""


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_module(tmp_path_factory.mktemp("calling"), "recording_impl.py", RECORDING)


def test_function_spec_calls_the_implementation() -> None:
    spec = shipped_specs()["surprise"]
    call = build_callable(spec, "implementations.surprise:compute_surprise", {"B": 1, "L": 2, "D": 3}, "cpu", "float64", {})
    h, m = torch.randn(1, 2, 3, dtype=torch.float64), torch.randn(1, 2, 3, dtype=torch.float64)
    torch.testing.assert_close(call({"hidden": h, "memory_pred": m}), ((h - m) ** 2).sum(-1), rtol=0, atol=0)


def test_function_args_are_passed_in_the_interface_order(recording: Path) -> None:
    spec = shipped_specs()["surprise"]
    call = build_callable(spec, f"{recording}:difference", {"B": 1, "L": 1, "D": 2}, "cpu", "float64", {})
    h, m = torch.full((1, 1, 2), 5.0, dtype=torch.float64), torch.ones(1, 1, 2, dtype=torch.float64)
    assert call({"memory_pred": m, "hidden": h}).tolist() == [[8.0]]  # (5 - 1) · 2, not (1 - 5) · 2


@pytest.mark.parametrize("mask_present", [True, False])
def test_function_kwargs_pass_params_and_only_present_optional_inputs(recording: Path, mask_present: bool) -> None:
    spec = shipped_specs()["attention"]
    scalars = {"B": 1, "H": 1, "Lq": 2, "Lk": 3, "Dk": 4, "Dv": 5, "is_causal": True, "dropout_p": 0.0}
    call = build_callable(spec, f"{recording}:attention", scalars, "cpu", "float32", {"mask": mask_present})
    tensors = {"Q": torch.randn(1, 1, 2, 4), "K": torch.randn(1, 1, 3, 4), "V": torch.randn(1, 1, 3, 5)}
    tensors["mask"] = torch.ones(2, 3, dtype=torch.bool)
    assert call(tensors).shape == (1, 1, 2, 5)
    kwargs = resolve(f"{recording}:CALLS")[-1]
    assert kwargs.pop("mask", None) is (tensors["mask"] if mask_present else None)
    assert kwargs == {"dropout_p": 0.0, "is_causal": True}


def test_a_one_tensor_tuple_is_accepted_and_two_outputs_are_refused(recording: Path) -> None:
    spec = shipped_specs()["surprise"]
    tensors = {"hidden": torch.ones(1, 2, 3), "memory_pred": torch.zeros(1, 2, 3)}
    single = build_callable(spec, f"{recording}:as_tuple", {"B": 1, "L": 2, "D": 3}, "cpu", "float32", {})
    torch.testing.assert_close(single(tensors), torch.full((1, 2), 3.0))
    pair = build_callable(spec, f"{recording}:two_outputs", {"B": 1, "L": 2, "D": 3}, "cpu", "float32", {})
    with pytest.raises(TypeError, match="returned tuple; the spec expects one tensor"):
        pair(tensors)


# -- build_callable: modules -----------------------------------------------------------------------
PROBE = """
import torch

INSTANCES = []

class Probe(torch.nn.Module):
    \"\"\"RMSNorm's interface; records how it was built and what forward saw.\"\"\"

    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.dim, self.eps = dim, eps
        self.weight = torch.nn.Parameter(torch.ones(dim))
        self.register_buffer("offset", torch.zeros(dim))
        INSTANCES.append(self)

    def forward(self, x):
        self.seen = {"training": self.training, "weight": self.weight}
        return x * self.weight + self.offset
"""


def rmsnorm_inputs(dtype: torch.dtype) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {
        "x": torch.randn(2, 3, 4, generator=gen, dtype=torch.float64).to(dtype),
        "weight": torch.rand(4, generator=gen, dtype=torch.float64).add(0.5).to(dtype).requires_grad_(True),
    }


def test_module_spec_uses_the_drawn_weight_and_gradients_reach_it() -> None:
    spec = shipped_specs()["rmsnorm"]
    scalars = {"B": 2, "L": 3, "D": 4, "eps": 1e-5}
    call = build_callable(spec, "implementations.rmsnorm:RMSNorm", scalars, "cpu", "float64", {})
    tensors = rmsnorm_inputs(torch.float64)
    x, w = tensors["x"], tensors["weight"]
    out = call(tensors)
    expected = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w
    torch.testing.assert_close(out, expected)
    (grad,) = torch.autograd.grad(out.sum(), w)
    (expected_grad,) = torch.autograd.grad(expected.sum(), w)
    torch.testing.assert_close(grad, expected_grad)
    assert grad.abs().sum() > 0


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_module_is_built_from_init_moved_to_the_dtype_and_in_eval_mode(tmp_path: Path, dtype: str) -> None:
    path = write_module(tmp_path, f"probe_{dtype}_impl.py", PROBE)
    spec = shipped_specs()["rmsnorm"]
    scalars = {"B": 2, "L": 3, "D": 4, "eps": 1e-4}
    call = build_callable(spec, f"{path}:Probe", scalars, "cpu", dtype, {})
    (module,) = resolve(f"{path}:INSTANCES")
    assert module.dim == 4 and type(module.dim) is int and module.eps == 1e-4
    assert module.offset.dtype == module.weight.dtype == getattr(torch, dtype)
    tensors = rmsnorm_inputs(getattr(torch, dtype))
    out = call(tensors)
    assert out.dtype == getattr(torch, dtype)
    assert module.seen["training"] is False
    assert module.seen["weight"] is tensors["weight"], "the drawn weight, not the module's own parameter"
