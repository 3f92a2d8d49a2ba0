"""Pattern kinds parameter_gradients and dropout_modes on small modules."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

from conformance.patterns import PatternContext, kinds
from conformance.spec import load_specs
from tests.patterns.kind_helpers import rejected, validated

MHA = "implementations.multihead_attention:PaperModule"
SIZES = {"B": 2, "L": 8, "D": 16, "H": 4}


def _run(kind: str, ref: str, options: dict, dtype: str = "float32"):
    spec = load_specs()["multihead_attention"]
    k = kinds()[kind]
    return k.run(PatternContext(spec, ref, "cpu", dtype, validated(k.validate, options), settings()))


def _module_file(tmp_path: Path, body: str) -> str:
    path = tmp_path / "mods.py"
    path.write_text("import torch\nfrom implementations.multihead_attention import PaperModule\n\n" + body)
    return f"{path}:M"


def test_parameter_gradients_pass_for_our_module() -> None:
    m = _run("parameter_gradients", MHA, {"sizes": SIZES, "params": {"dropout": 0.1}})
    assert m.passed and "W_o.weight" in m.detail


def test_parameter_gradients_name_every_offender(tmp_path: Path) -> None:
    ref = _module_file(
        tmp_path,
        (
            "class M(PaperModule):\n"
            "    def __init__(self, *a, **k):\n"
            "        super().__init__(*a, **k)\n"
            "        self.unused = torch.nn.Linear(2, 2)\n"
            "        self.zero = torch.nn.Parameter(torch.ones(1))\n"
            "    def forward(self, x, mask=None):\n"
            "        return super().forward(x, mask) + 0 * self.zero\n"
        ),
    )
    m = _run("parameter_gradients", ref, {"sizes": SIZES, "params": {"dropout": 0.0}})
    assert not m.passed
    assert "unused.weight: no gradient" in m.detail and "unused.bias: no gradient" in m.detail
    assert "zero: gradient identically zero" in m.detail


def test_dropout_modes_pass_for_our_module() -> None:
    options = {"sizes": SIZES, "params": {"dropout": 0.1}, "dropout_param": "dropout", "min_decisions": 512}
    assert _run("dropout_modes", MHA, options).passed


def test_dropout_modes_catch_dropout_in_eval(tmp_path: Path) -> None:
    ref = _module_file(
        tmp_path,
        (
            "class M(PaperModule):\n"
            "    def forward(self, x, mask=None):\n"
            "        self.dropout.train()\n"
            "        out = super().forward(x, mask)\n"
            "        return torch.nn.functional.dropout(out, p=self.dropout.p)\n"
        ),
    )
    options = {"sizes": SIZES, "params": {"dropout": 0.1}, "dropout_param": "dropout", "min_decisions": 512}
    m = _run("dropout_modes", ref, options)
    assert not m.passed and "eval mode: two calls differ" in m.detail


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"sizes": SIZES, "params": {"dropout": 0.0}, "dropout_param": "dropout", "min_decisions": 512}, "params"),
        ({"sizes": SIZES, "params": {"dropout": 0.1}, "dropout_param": "dropout", "min_decisions": 10}, "min_decisions"),
        ({"sizes": {}, "params": {"dropout": 0.1}, "dropout_param": "dropout", "min_decisions": 512}, "sizes"),
    ],
)
def test_dropout_modes_options_are_validated(options: dict, key: str) -> None:
    path, _ = rejected(kinds()["dropout_modes"].validate, options)
    assert path == key


# --- compile_equivalence ----------------------------------------------------------------------

_COMPILE_OPTIONS = {"sizes": {"B": 2, "L": 4, "D": 8, "H": 2}, "params": {"dropout": 0.1}}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_compile_equivalence_passes_for_our_module_with_a_nonzero_baseline(dtype: str) -> None:
    m = _run("compile_equivalence", MHA, _COMPILE_OPTIONS, dtype)
    assert m.passed, m.detail
    # float64: eager at float64 is the expected computation itself, so its float32 error, rescaled, stands in
    assert m.tolerance is not None and m.tolerance.baseline is not None and m.tolerance.baseline > 0
    assert m.tolerance.baseline < 1e-12 if dtype == "float64" else m.tolerance.baseline > 1e-9


def test_compile_equivalence_catches_a_compiled_only_difference(tmp_path: Path) -> None:
    body = (
        "class M(PaperModule):\n"
        "    def forward(self, x, mask=None):\n"
        "        y = super().forward(x, mask)\n"
        "        return y * (1 + 2**-12) if torch.compiler.is_compiling() else y\n"
    )
    for dtype in ("float32", "float64"):
        m = _run("compile_equivalence", _module_file(tmp_path, body), _COMPILE_OPTIONS, dtype)
        assert not m.passed and m.tolerance is not None, (dtype, m)
