"""Pattern kind ``train_step``: a mixed-precision training step against a float64 reference loop.

The implementation is a class ``Trainer(model, optimizer, use_amp=..., amp_dtype=...)`` with
``train_step(batch) -> float`` that calls ``model(**batch)`` and reads ``.loss`` from the result (the
guide's pattern). The check builds the model and the optimizer itself, so it can watch both: a two-layer
MLP with an MSE loss head whose forward records the autocast state and whose hidden activation records the
autocast state during backward, and an optimizer drawn from ``optimizers``. Hypothesis draws the sizes,
the seed of the initial weights and batches (a fresh batch every step), the optimizer and its
hyper-parameters, and the number of steps.

The row's dtype decides the mode (Micikevicius et al. 2018, arXiv 1710.03740, §3):

* float64, float32: ``use_amp=False``; the model and batches are in that dtype.
* bfloat16, float16: ``use_amp=True, amp_dtype=<dtype>``; the model keeps float32 master weights (§3.1)
  and the forward pass is autocast. float16 uses loss scaling (§3.2): ``trainer.scaler`` must be an enabled
  ``torch.amp.GradScaler``; bfloat16 has float32's exponent range and needs none.

Each example runs three loops from the same initial weights on the same batches:

1. the implementation;
2. a *same-precision reference*: the plain loop at the row's precision (zero grads, forward and loss under
   autocast, backward of loss × S outside autocast, unscale, ``clip_grad_norm_(max_norm)``, step unless a
   gradient is inf/NaN, update S: × backoff after an overflow, × growth after ``growth_interval`` clean
   steps), with S starting from the implementation's own scaler configuration;
3. the float64 reference: the same loop in float64 without autocast; it skips exactly the steps the
   same-precision reference skipped (whether float16 overflows is a property of float16, not of the
   mathematics).

Verified for every step: the returned value is a Python float equal to the loss; the parameters equal
the float64 reference's within a derived tolerance (``conformance.tolerance.compare``: twice the
same-precision reference's error plus a noise floor; for mixed precision the floor is float32's, the
precision of the master weights, and the low-precision arithmetic enters through the reference's error);
autocast is on at the row's dtype during every forward pass with gradients (off without AMP) and off
during backward (the torch.amp docs: "Backward passes under autocast are not recommended"); at float16, a
step the reference skipped leaves the parameters and the optimizer state bitwise unchanged, and the loss
scale after every step equals the reference's. Construction and all steps run under
``warnings.catch_warnings``: a FutureWarning/DeprecationWarning naming ``torch.cuda.amp`` (or ``torch.cpu.amp``)
fails the check
(the guide's deprecated API; on a machine without CUDA it also silently disables autocast and scaling).

With ``overflow``, the float16 scaler is set (``GradScaler.load_state_dict``) to ``scale`` and
``growth_interval``, and after ``steps`` clean steps one batch has an input of ``magnitude`` (finite in
float32, infinite in float16): that step must be skipped and the scale backed off, and after
``growth_interval`` further clean steps it must grow again.

Spec options::

    kind: train_step
    max_norm: 1.0                            # the clipping threshold the implementation uses
    steps: {min: 1, max: 4}                  # steps per example (with overflow: clean steps before the planted one)
    optimizers: [sgd, sgd_momentum, adamw]   # drawn per example
    learning_rate: {min: 1.0e-3, max: 1.0e-1}   # optional, drawn log-uniformly
    sizes:                                   # optional
      {batch: {min: 1, max: 4}, features: {min: 1, max: 6}, hidden: {min: 1, max: 8}, outputs: {min: 1, max: 3}}
    overflow: {scale: 1024.0, growth_interval: 2, magnitude: 1.0e+6}           # optional, float16 rows only
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from conformance.patterns import PatternKind
from conformance.patterns.helpers.options import int_pair, is_number, number_range
from conformance.validation import SpecContext, Where

OPTIMIZERS = ("sgd", "sgd_momentum", "adamw")
AMP_DTYPES = frozenset({"bfloat16", "float16"})
DEFAULT_SIZES = {"batch": (1, 4), "features": (1, 6), "hidden": (1, 8), "outputs": (1, 3)}
DEFAULT_LEARNING_RATE = (1e-3, 1e-1)


def validate(options: Mapping[str, Any], where: Where, context: SpecContext) -> dict:
    """Normalised options (ranges as ``(min, max)`` pairs), or an error at the bad key."""
    max_norm = options["max_norm"]
    if not is_number(max_norm) or max_norm <= 0:
        raise where.at("max_norm").error(f"expected a positive number, got {max_norm!r}")
    low_steps = 0 if "overflow" in options else 1  # with overflow: the clean steps before the planted one
    steps = int_pair(options["steps"], where.at("steps"), low_steps, 32)
    names = options["optimizers"]
    if not isinstance(names, list) or not names or any(n not in OPTIMIZERS for n in names) or len(set(names)) != len(names):
        message = f"expected a non-empty list of distinct names from {', '.join(OPTIMIZERS)}, got {names!r}"
        raise where.at("optimizers").error(message)
    low, high = DEFAULT_LEARNING_RATE
    given = options.get("learning_rate", {"min": low, "max": high})
    lr = number_range(given, where.at("learning_rate"), lambda lo, hi: 0 < lo <= hi <= 1, "0 < min <= max <= 1")
    sizes = options.get("sizes", {k: {"min": lo, "max": hi} for k, (lo, hi) in DEFAULT_SIZES.items()})
    if not isinstance(sizes, dict) or set(sizes) != set(DEFAULT_SIZES):
        raise where.at("sizes").error(f"expected a mapping with exactly the keys {', '.join(DEFAULT_SIZES)}, got {sizes!r}")
    out = {
        "max_norm": float(max_norm),
        "steps": steps,
        "optimizers": tuple(names),
        "learning_rate": (lr["min"], lr["max"]),
        "sizes": {name: int_pair(sizes[name], where.at("sizes", name), 1, 64) for name in DEFAULT_SIZES},
        "overflow": None,
    }
    if "overflow" in options:
        out["overflow"] = _validate_overflow(options["overflow"], where.at("overflow"))
    return out


def _validate_overflow(value: Any, where: Where) -> dict:
    if not isinstance(value, dict) or set(value) != {"scale", "growth_interval", "magnitude"}:
        raise where.error(f"expected {{scale, growth_interval, magnitude}}, got {value!r}")
    scale, interval, magnitude = value["scale"], value["growth_interval"], value["magnitude"]
    if not is_number(scale) or scale < 1 or not float(scale).is_integer() or math.frexp(scale)[0] != 0.5:
        raise where.at("scale").error(f"expected a power of two >= 1, got {scale!r}")
    if not isinstance(interval, int) or isinstance(interval, bool) or not 1 <= interval <= 8:
        raise where.at("growth_interval").error(f"expected an integer in [1, 8], got {interval!r}")
    f16_max, f32_max = float(np.finfo(np.float16).max), float(np.finfo(np.float32).max)
    if not is_number(magnitude) or not f16_max < magnitude < f32_max:
        message = f"expected a value beyond float16's max ({f16_max:g}) and finite in float32, got {magnitude!r}"
        raise where.at("magnitude").error(message)
    return {"scale": float(scale), "growth_interval": interval, "magnitude": float(magnitude)}


KIND = PatternKind(
    name="train_step",
    required=frozenset({"max_norm", "steps", "optimizers"}),
    optional=frozenset({"learning_rate", "sizes", "overflow"}),
    validate=validate,
    run="conformance.patterns.runs.train_step:run",
    dtypes=("float64", "float32", "bfloat16", "float16"),
    replay="conformance.patterns.runs.train_step:replay",
    compares_numbers=True,
)
