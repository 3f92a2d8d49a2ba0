"""Tests for conformance.patterns.init_statistics: option validation, the KS/DKW statistics, the laws, runs."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import settings

from conformance.patterns import PatternContext, kinds
from conformance.patterns.init_statistics import validate
from conformance.patterns.runs.init_statistics import (
    Draw,
    dkw_epsilon,
    ks_distance,
    measure,
    normal_law,
    run,
    truncated_normal_law,
    uniform_law,
)
from conformance.spec import SpecError, load_specs
from tests.patterns.kind_helpers import validated
from tests.spec_helpers import load_error, write_spec

CORRECT = "implementations.initialization:init_weights"

_ENTRY: dict[str, Any] = {
    "id": "xavier",
    "kind": "init_statistics",
    "description": "Xavier uniform",
    "module": "linear",
    "sizes": {"fan_in": {"min": 1, "max": 32}, "fan_out": {"min": 1, "max": 32}},
    "params": {"n_layers": {"min": 1, "max": 4}, "method": {"values": ["xavier"]}},
    "call": {"args": ["n_layers"], "kwargs": {"method": "method"}},
    "expect": {
        "weight": {"distribution": "uniform", "bound": "sqrt(6/(fan_in + fan_out))"},
        "bias": {"distribution": "constant", "value": 0},
    },
    "samples": 2048,
}


def _file(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema": 1,
        "paper": {"title": "A Paper", "authors": ["A. Author"], "url": "https://example.org/paper.pdf", "year": 2019},
        "specs": [
            {
                "id": "toy_init",
                "title": "Initialisation",
                "equation": "none",
                "statement": "W",
                "implementations": [{"ref": CORRECT}],
                "patterns": [entry],
            }
        ],
    }


def assert_error(exc: SpecError, file: Path, path: str, message: str) -> None:
    """The error names ``file`` and the key ``path``, and says ``message``."""
    assert (exc.file, exc.path) == (str(file), path), str(exc)
    assert message in str(exc), str(exc)


def _entry(**changes: Any) -> dict[str, Any]:
    entry = copy.deepcopy(_ENTRY)
    for key, value in changes.items():
        if value is None:
            del entry[key]
        else:
            entry[key] = value
    return entry


def _context(entry: dict[str, Any], ref: str = CORRECT, dtype: str = "float32", examples: int = 3) -> PatternContext:
    options = validated(validate, {k: v for k, v in entry.items() if k not in ("id", "kind", "description")})
    spec = next(iter(load_specs([], default=True).values()))  # any spec: only its file's directory is used
    return PatternContext(spec, ref, "cpu", dtype, options, settings(max_examples=examples, derandomize=True, database=None))


# -- validation -----------------------------------------------------------------------------------------


def test_the_kind_is_discovered() -> None:
    assert kinds()["init_statistics"].dtypes == ("float32",)


def test_a_valid_entry_loads(tmp_path: Path) -> None:
    (spec,) = load_specs([write_spec(tmp_path, _file(_entry()))], default=False).values()
    (pattern,) = spec.patterns
    assert pattern.check == "init_statistics:xavier"
    assert pattern.options["samples"] == 2048 and pattern.options["false_alarm"] == 1e-6


BAD_ENTRIES = [
    ({"module": "conv"}, "module", "expected one of linear, embedding, layer_norm, rms_norm"),
    ({"module": "embedding", "bias": False}, "bias", "has no bias to leave out"),
    ({"bias": "no"}, "bias", "expected true or false"),
    ({"sizes": {"fan_in": {"min": 1, "max": 4}}}, "sizes", "needs exactly the sizes fan_in, fan_out"),
    ({"sizes": {"fan_in": {"min": 0, "max": 4}, "fan_out": {"min": 1, "max": 4}}}, "sizes.fan_in", "1 <= min <= max <= 4096"),
    ({"params": {"method": {"values": []}}}, "params.method.values", "non-empty list"),
    ({"params": {"fan_in": {"min": 1, "max": 2}}}, "params.fan_in", "expected a new plain name"),
    ({"call": {"args": ["depth"]}}, "call.args[0]", "'depth' is not declared"),
    ({"call": {"kwargs": {"method": "style"}}}, "call.kwargs.method", "'style' is not declared"),
    ({"expect": {"weight": {"distribution": "uniform", "bound": "1"}}}, "expect", "one entry for each parameter"),
    (
        {"expect": {"weight": {"distribution": "laplace", "scale": 1}, "bias": {"distribution": "constant", "value": 0}}},
        "expect.weight.distribution",
        "expected one of constant, uniform, normal, truncated_normal",
    ),
    (
        {"expect": {"weight": {"distribution": "uniform", "std": 1}, "bias": {"distribution": "constant", "value": 0}}},
        "expect.weight",
        "distribution uniform takes bound",
    ),
    (
        {"expect": {"weight": {"distribution": "normal", "std": "0.02*width"}, "bias": {"distribution": "constant", "value": 0}}},
        "expect.weight.std",
        "undeclared name(s) width",
    ),
    (
        {
            "expect": {
                "weight": {"distribution": "normal", "std": "mean(fan_in, -1)"},
                "bias": {"distribution": "constant", "value": 0},
            }
        },
        "expect.weight.std",
        "expected a scalar expression",
    ),
    (
        {"expect": {"weight": {"distribution": "normal", "std": "method"}, "bias": {"distribution": "constant", "value": 0}}},
        "expect.weight.std",
        "undeclared name(s) method",  # a string-valued param is not a number
    ),
    (
        {"expect": {"weight": {"distribution": "normal", "std": "fan_in > 1"}, "bias": {"distribution": "constant", "value": 0}}},
        "expect.weight.std",
        "expected a scalar expression",
    ),
    ({"samples": 10}, "samples", "expected an integer 1000..4194304"),
    ({"false_alarm": 0.01}, "false_alarm", "0 < false_alarm <= 1e-6"),
]


@pytest.mark.parametrize("changes, key, message", BAD_ENTRIES, ids=[k for _, k, _ in BAD_ENTRIES])
def test_bad_options_fail_on_load_naming_the_key(tmp_path: Path, changes: dict, key: str, message: str) -> None:
    file = write_spec(tmp_path, _file(_entry(**changes)))
    assert_error(load_error(file), file, f"specs[0].patterns[0].{key}", message)


def test_a_required_option_is_required(tmp_path: Path) -> None:
    file = write_spec(tmp_path, _file(_entry(expect=None)))
    assert_error(load_error(file), file, "specs[0].patterns[0]", "missing required key(s): expect")


# -- statistics -----------------------------------------------------------------------------------------


def test_ks_distance_of_a_point_mass() -> None:
    law = uniform_law(1.0)
    assert ks_distance(torch.zeros(5, dtype=torch.float64), law.cdf) == pytest.approx(0.5)


def test_ks_distance_matches_a_brute_force_supremum() -> None:
    x = torch.tensor([-0.5, 0.1, 0.1, 0.7], dtype=torch.float64)  # a tie included
    law = uniform_law(1.0)
    grid = torch.linspace(-1.5, 1.5, 300_001, dtype=torch.float64)
    ecdf = (x[None, :] <= grid[:, None]).double().mean(1)
    brute = float((ecdf - law.cdf(grid)).abs().max())
    assert ks_distance(x, law.cdf) == pytest.approx(brute, abs=1e-4)


def test_dkw_epsilon() -> None:
    assert dkw_epsilon(8192, 5e-8) == pytest.approx(math.sqrt(math.log(2 / 5e-8) / (2 * 8192)))


def test_dkw_bound_holds_empirically() -> None:
    """At α = 0.05 the bound is exceeded in at most 5 % of 400 samples from the law itself (fixed seed)."""
    g = torch.Generator().manual_seed(1234)
    law = normal_law(0.0, 0.02)
    exceed = sum(
        ks_distance(0.02 * torch.randn(500, generator=g, dtype=torch.float64), law.cdf) > dkw_epsilon(500, 0.05)
        for _ in range(400)
    )
    assert exceed <= 20


def test_laws_cdf_pdf_and_moments() -> None:
    x = torch.linspace(-0.2, 0.2, 400_001, dtype=torch.float64)
    for law in (uniform_law(0.1), normal_law(0.0, 0.02), truncated_normal_law(0.0, 0.02, 2.0), normal_law(0.05, 0.01)):
        assert float(law.cdf(torch.tensor([law.mean], dtype=torch.float64))) == pytest.approx(0.5, abs=1e-12), law.text
        f = law.pdf(x)
        assert float(torch.trapezoid(f, x)) == pytest.approx(1.0, abs=1e-3), law.text
        mean = float(torch.trapezoid(x * f, x))
        std = math.sqrt(float(torch.trapezoid((x - mean) ** 2 * f, x)))
        assert mean == pytest.approx(law.mean, abs=1e-6) and std == pytest.approx(law.std, rel=1e-3), law.text


def test_truncated_normal_support_and_std() -> None:
    law = truncated_normal_law(0.0, 0.02, 2.0)
    assert law.support == (-0.04, 0.04)
    assert float(law.cdf(torch.tensor([-0.04, 0.04], dtype=torch.float64)).sub(torch.tensor([0.0, 1.0])).abs().max()) < 1e-12
    assert law.std == pytest.approx(0.02 * 0.8796, rel=1e-3)


def test_rounding_slack_is_delta_times_sup_x_density() -> None:
    assert uniform_law(0.3).rounding_slack(1e-3) == pytest.approx(0.5e-3, rel=0.02)
    phi_1 = math.exp(-0.5) / math.sqrt(2 * math.pi)  # sup |x|·φ(x) at |x| = 1
    assert normal_law(0.0, 0.02).rounding_slack(1e-3) == pytest.approx(phi_1 * 1e-3, rel=0.02)


# -- runs -------------------------------------------------------------------------------------------------


def test_correct_implementation_passes_with_the_bound_and_examples_reported() -> None:
    m = run(_context(_entry(), examples=4))
    assert m.passed and m.examples == 4
    alpha = 1e-6 / 4  # one random parameter, 4 examples: Bonferroni
    assert f"α′ = {alpha:.3g}" in m.tolerance.describe() or m.tolerance.describe().startswith("exactly")


def test_one_example_judges_every_parameter() -> None:
    ctx = _context(_entry())
    draw = Draw({"fan_in": 3, "fan_out": 5}, {"n_layers": 2, "method": "xavier"}, seed=7)
    m = measure(ctx, ctx.target(), draw, alpha=1e-7)
    assert m.passed
    assert "weight: within [-0.866025, 0.866025]" in m.detail and "bias: exactly 0" in m.detail and "KS distance" in m.detail


def _write_impl(tmp_path: Path, body: str) -> str:
    path = tmp_path / "impl.py"
    path.write_text(
        "import torch\nfrom torch import nn\n\n\ndef init(module, n_layers, method='xavier'):\n" + body, encoding="utf-8"
    )
    return f"{path}:init"


def test_an_untouched_parameter_is_seen(tmp_path: Path) -> None:
    ref = _write_impl(tmp_path, "    with torch.no_grad():\n        nn.init.xavier_uniform_(module.weight)\n")
    m = run(_context(_entry(), ref=ref))
    assert not m.passed and "bias: 2048 of 2048 values differ from 0 (NaN: not initialised?)" in m.detail
    assert "example: sizes=" in m.detail


def test_nan_left_in_a_random_parameter_is_reported(tmp_path: Path) -> None:
    ref = _write_impl(tmp_path, "    with torch.no_grad():\n        nn.init.zeros_(module.bias)\n")
    m = run(_context(_entry(), ref=ref))
    assert not m.passed and "not finite" in m.detail and m.tolerance.describe() == "every value finite"


def test_a_replaced_parameter_is_reported(tmp_path: Path) -> None:
    ref = _write_impl(tmp_path, "    module.weight = nn.Parameter(torch.zeros(module.weight.shape, dtype=torch.float64))\n")
    m = run(_context(_entry(), ref=ref))
    assert not m.passed and "parameters changed name, shape, dtype or device" in m.detail


def test_a_scale_error_is_caught_by_ks_inside_the_support(tmp_path: Path) -> None:
    body = (
        "    a = (6 / (module.in_features + module.out_features)) ** 0.5\n"
        "    with torch.no_grad():\n"
        "        nn.init.uniform_(module.weight, -0.7 * a, 0.7 * a)\n"
        "        nn.init.zeros_(module.bias)\n"
    )
    m = run(_context(_entry(), ref=_write_impl(tmp_path, body)))
    assert not m.passed and "KS distance" in m.detail and "within" not in m.detail.split("; example")[0].split("KS")[0][-1:]


def test_a_law_argument_that_is_not_positive_raises() -> None:
    entry = _entry(
        expect={"weight": {"distribution": "normal", "std": "fan_in - fan_in"}, "bias": {"distribution": "constant", "value": 0}}
    )
    with pytest.raises(ValueError, match="std = fan_in - fan_in evaluates to 0.0"):
        run(_context(entry))


def test_a_law_argument_that_is_not_a_real_number_raises() -> None:
    entry = _entry(
        expect={
            "weight": {"distribution": "normal", "std": "1/(fan_in - 1)"},
            "bias": {"distribution": "constant", "value": 0},
        }
    )
    with pytest.raises(ValueError, match="not a real number"):
        run(_context(entry))
