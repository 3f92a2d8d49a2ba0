"""Pattern kind train_step: options, the loss-scale model, the reference loop, the probe, and whole runs."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.patterns import PatternContext, kinds
from conformance.patterns.runs.train_step import (
    Draw,
    LossScale,
    Probe,
    ProbeMLP,
    _unique_deprecations,
    draws,
    problem,
    reference_loop,
    setup,
)
from conformance.spec import SpecError, load_file, load_specs
from tests.patterns.kind_helpers import rejected, validated

KIND = kinds()["train_step"]
TRAINER = "implementations.trainer:Trainer"
_TWO = dict.fromkeys(("features", "hidden", "outputs"), {"min": 1, "max": 2})
GOOD = {"max_norm": 1.0, "steps": {"min": 1, "max": 3}, "optimizers": ["sgd", "adamw"]}
OVERFLOW = {"scale": 1024.0, "growth_interval": 2, "magnitude": 1.0e6}
FEW = settings(max_examples=6, derandomize=True, deadline=None, database=None)


def _context(options: dict, dtype: str, ref: str = TRAINER) -> PatternContext:
    spec = load_specs()["amp_train_step"]
    return PatternContext(spec, ref, "cpu", dtype, validated(KIND.validate, options), FEW)


def _draw(**change) -> Draw:
    base = dict(
        batch=3,
        features=4,
        hidden=5,
        outputs=2,
        seed=7,
        optimizer="sgd",
        lr=0.1,
        momentum=0.9,
        weight_decay=0.0,
        steps=2,
        input_magnitude=1.0,
        target_magnitude=4.0,
        planted_step=None,
    )
    return Draw(**{**base, **change})


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"max_norm": 0}, "max_norm"),
        ({"max_norm": True}, "max_norm"),
        ({"steps": {"min": 0, "max": 2}}, "steps"),
        ({"steps": {"min": 3, "max": 1}}, "steps"),
        ({"steps": 2}, "steps"),
        ({"optimizers": ["adam"]}, "optimizers"),
        ({"optimizers": []}, "optimizers"),
        ({"optimizers": ["sgd", "sgd"]}, "optimizers"),
        ({"learning_rate": {"min": 0, "max": 0.1}}, "learning_rate"),
        ({"learning_rate": {"min": 0.1, "max": 0.01}}, "learning_rate"),
        ({"sizes": {"batch": {"min": 1, "max": 2}}}, "sizes"),
        ({"sizes": {"batch": {"min": 0, "max": 2}, **_TWO}}, "sizes.batch"),
        ({"steps": [1, 3]}, "steps"),  # the old list form of a range
        ({"overflow": {**OVERFLOW, "scale": 1000.0}}, "overflow.scale"),
        ({"overflow": {**OVERFLOW, "growth_interval": 0}}, "overflow.growth_interval"),
        ({"overflow": {**OVERFLOW, "magnitude": 1000.0}}, "overflow.magnitude"),
        ({"overflow": {"scale": 1024.0}}, "overflow"),
    ],
)
def test_bad_options_name_their_key(change: dict, key: str) -> None:
    path, _ = rejected(KIND.validate, {**GOOD, **change})
    assert path == key


def test_the_old_list_form_of_a_range_says_what_to_write() -> None:
    path, message = rejected(KIND.validate, {**GOOD, "learning_rate": [0.001, 0.1]})
    assert path == "learning_rate" and "write {min: 0.001, max: 0.1}" in message


def test_options_are_normalised_with_defaults() -> None:
    options = validated(KIND.validate, {**GOOD, "steps": {"min": 0, "max": 2}, "overflow": OVERFLOW})
    assert options["steps"] == (0, 2) and options["optimizers"] == ("sgd", "adamw")
    assert options["sizes"]["hidden"] == (1, 8) and options["learning_rate"] == (1e-3, 1e-1)
    assert options["overflow"] == {"scale": 1024.0, "growth_interval": 2, "magnitude": 1e6}


def test_bad_spec_fails_on_load_naming_the_key(tmp_path: Path) -> None:
    text = Path("specs/mixed_precision_training.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("magnitude: 1.0e+6", "magnitude: 100.0"), encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_file(bad)
    assert "specs[0].patterns[2].overflow.magnitude" in str(info.value) and "float16's max" in str(info.value)


def test_shipped_spec_declares_the_three_checks() -> None:
    spec = load_specs()["amp_train_step"]
    assert [(p.check, p.dtypes) for p in spec.patterns] == [
        ("train_step:full_precision", ("float64", "float32")),
        ("train_step:mixed_precision", ("bfloat16", "float16")),
        ("train_step:overflow_skip", ("float16",)),
    ]
    assert all(p.options["max_norm"] == 1.0 for p in spec.patterns)


def test_loss_scale_follows_grad_scaler() -> None:
    """The reference's scale bookkeeping against torch.amp.GradScaler on the same overflow pattern."""
    pattern = [False, True, False, False, False, True, True, False, False, False, False]
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.0)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=3)
    ours = LossScale(2.0**10, 2.0, 0.5, 3)
    for found_inf in pattern:
        scaler.scale(torch.ones(()))  # initialises the scaler's state
        param.grad = torch.full((1,), math.inf if found_inf else 1.0)
        scaler.step(optimizer)
        scaler.update()
        ours.update(found_inf)
        assert scaler.get_scale() == ours.scale


def test_reference_loop_is_the_plain_loop_in_float64() -> None:
    """One SGD step by hand: gradient of this batch only, clipped to norm 1, θ − lr·g."""
    d = _draw(steps=1)
    prob = problem(d, "float64", None)
    s = setup(d, prob, "cpu", torch.float64)
    params = [p.detach().clone().requires_grad_() for p in s.model.parameters()]
    x, y = s.batches[0]["x"], s.batches[0]["y"]
    loss = torch.nn.functional.mse_loss(torch.tanh(x @ params[0].T + params[1]) @ params[2].T + params[3], y)
    grads = torch.autograd.grad(loss, params)
    norm = torch.sqrt(sum((g**2).sum() for g in grads))
    assert norm > 1  # clipping acts
    expected = torch.cat([(p - d.lr * g / (norm + 1e-6)).reshape(-1) for p, g in zip(params, grads)])
    trace = reference_loop(s, max_norm=1.0, amp_dtype=None, loss_scale=None, skip=None)
    assert trace.losses == [loss.item()] and trace.skipped == [False]
    torch.testing.assert_close(torch.from_numpy(trace.params[0]), expected.detach(), rtol=0, atol=1e-15)


def test_reference_skips_the_planted_overflow_and_backs_off() -> None:
    d = _draw(planted_step=1, steps=4)
    prob = problem(d, "float32", OVERFLOW)
    assert prob.batches[1]["x"][0, 0] == 1e6
    trace = reference_loop(
        setup(d, prob, "cpu", torch.float32),
        max_norm=1.0,
        amp_dtype=torch.float16,
        loss_scale=LossScale(1024.0, 2.0, 0.5, 2),
        skip=None,
    )
    assert trace.skipped == [False, True, False, False]
    assert trace.scales == [1024.0, 512.0, 512.0, 1024.0]
    assert (trace.params[1] == trace.params[0]).all()  # the loss itself may stay finite: tanh saturates at ±inf


def test_problem_rounds_to_the_storage_dtype() -> None:
    prob = problem(_draw(), "float32", None)
    w = prob.weights["fc1.weight"]
    assert (torch.from_numpy(w).float().double().numpy() == w).all()


@pytest.mark.parametrize("backward_inside", [False, True])
def test_probe_sees_autocast_in_forward_and_backward(backward_inside: bool) -> None:
    probe = Probe("cpu")
    model = ProbeMLP(3, 4, 2, probe)
    x, y = torch.randn(2, 3), torch.randn(2, 2)
    with torch.amp.autocast("cpu", dtype=torch.bfloat16):
        out = model(x=x, y=y)
        if backward_inside:
            out.loss.backward()
    if not backward_inside:
        out.loss.backward()
    assert probe.forward == [(True, torch.bfloat16)]
    assert probe.backward == [backward_inside]
    assert out.prediction.dtype == torch.bfloat16 and out.loss.dtype == torch.float32  # mse_loss runs in float32


def test_only_device_specific_amp_deprecations_count() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.warn("`torch.cuda.amp.autocast(args...)` is deprecated.", FutureWarning, stacklevel=1)
        warnings.warn("`torch.cuda.amp.autocast(args...)` is deprecated.", FutureWarning, stacklevel=1)
        warnings.warn("`torch.cpu.amp.autocast(args...)` is deprecated.", FutureWarning, stacklevel=1)
        warnings.warn("something else is deprecated", DeprecationWarning, stacklevel=1)
        warnings.warn("torch.cuda.amp: CUDA is not available", UserWarning, stacklevel=1)
    assert [str(w.message) for w in _unique_deprecations(caught)] == [
        "`torch.cuda.amp.autocast(args...)` is deprecated.",
        "`torch.cpu.amp.autocast(args...)` is deprecated.",
    ]


@settings(max_examples=30, derandomize=True, deadline=None, database=None)
@given(data=st.data())
def test_draws_respect_the_options(data: st.DataObject) -> None:
    options = validated(KIND.validate, {**GOOD, "steps": {"min": 0, "max": 2}, "overflow": OVERFLOW})
    d = data.draw(draws(options))
    assert d.optimizer in ("sgd", "adamw") and 1e-3 <= d.lr <= 1e-1
    assert d.planted_step is not None and d.steps == d.planted_step + 1 + OVERFLOW["growth_interval"]
    assert 1 <= d.batch <= 4 and 1 <= d.hidden <= 8


@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16", "float16"])
def test_our_trainer_passes(dtype: str) -> None:
    m = KIND.run(_context(GOOD, dtype))
    assert m.passed, m.detail
    assert m.examples == FEW.max_examples and m.tolerance is not None


def test_our_trainer_passes_the_overflow_scenario() -> None:
    m = KIND.run(_context({**GOOD, "steps": {"min": 0, "max": 2}, "overflow": OVERFLOW}, "float16"))
    assert m.passed, m.detail


def test_overflow_scenario_needs_float16() -> None:
    with pytest.raises(ValueError, match="float16 rows only"):
        KIND.run(_context({**GOOD, "steps": {"min": 0, "max": 2}, "overflow": OVERFLOW}, "bfloat16"))


def test_a_failure_names_the_problem_and_the_example(tmp_path: Path) -> None:
    path = tmp_path / "trainers.py"
    path.write_text(
        "from implementations.trainer import Trainer\n"
        "class T(Trainer):\n"
        "    def train_step(self, batch):\n"
        "        super().train_step(batch)\n"
        "        return 1.0\n"
    )
    m = KIND.run(_context(GOOD, "float64", f"{path}:T"))
    assert not m.passed
    assert "returned losses vs the float64 reference loop" in m.detail and "example: {" in m.detail
    # the failing draw travels as data, and the kind's replay finds the same failure on it
    assert m.example is not None and m.example["optimizer"] in GOOD["optimizers"]
    again = KIND.replay(_context(GOOD, "float64", f"{path}:T"), m.example)
    assert not again.passed and again.max_abs_err == m.max_abs_err


GUIDE_SIGNATURE_TRAINER = '''
from implementations.trainer import Trainer


class GuideTrainer(Trainer):
    """The guide's signature: Trainer(model, optimizer, use_amp=True), no amp_dtype keyword."""

    def __init__(self, model, optimizer, use_amp=True):
        super().__init__(model, optimizer, use_amp=use_amp)
'''


def test_a_guide_signature_trainer_is_judged_through_the_guides_signature(tmp_path: Path) -> None:
    """Issue 8: no hidden demand for an amp_dtype keyword. At the device's autocast dtype (bfloat16 on CPU) the
    trainer is called as the guide writes it and judged; a dtype it cannot be asked for is skipped, saying why."""
    from hypothesis import settings

    from conformance.engine import run_case
    from conformance.selection import build_cases
    from tests.spec_helpers import shipped_specs

    (tmp_path / "guide_trainer.py").write_text(GUIDE_SIGNATURE_TRAINER)
    ref = f"{tmp_path / 'guide_trainer.py'}:GuideTrainer"
    fast = settings(max_examples=2, derandomize=True, deadline=None, database=None)
    cases = [
        c
        for c in build_cases({"amp_train_step": shipped_specs()["amp_train_step"]}, {"amp_train_step": [ref]})
        if c.device == "cpu"
    ]
    by_dtype = {}
    for case in cases:
        by_dtype.setdefault(case.dtype, []).append(run_case(case, fast))
    assert {r.outcome for r in by_dtype["bfloat16"]} == {"passed"}
    assert {r.outcome for r in by_dtype["float32"]} == {"passed"}
    assert by_dtype["float16"] and {r.outcome for r in by_dtype["float16"]} == {"skipped"}
    assert all("guide's signature" in r.message and "bfloat16" in r.message for r in by_dtype["float16"])
