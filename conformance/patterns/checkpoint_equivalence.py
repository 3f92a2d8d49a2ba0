"""Pattern kind ``checkpoint_equivalence``: a checkpointed layer stack against the plain one.

Gradient checkpointing (Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost", Sec. 4.3)
cuts a stack of n layers into segments, keeps only each segment's input for backward and recomputes
the segment's forward when its gradient is needed. It must change what is *kept*, never what is
*computed*. The implementation under test is called as ``target(layers, checkpoint_every=k)`` with
an ``nn.ModuleList`` (the layers are used, not copied) and then ``module(x)``.

Which layers k puts under a checkpoint is the implementation's declared option ``scheme`` (a spec
param with a default, fixed per implementation as ``mod:Cls[scheme='segments']``; see
:mod:`conformance.patterns.helpers.stack_plans`): ``per_layer`` (the default, the guide's reading:
layers 0, k, 2k, … each checkpointed alone, the others plain), ``segments`` (segments [0, k),
[k, 2k), … each under one checkpoint) or ``sequential`` (``torch.utils.checkpoint.checkpoint_sequential``
with ⌈n/k⌉ segments: the last one runs plainly). A spec that declares the param ``scheme`` must
take its values from those. Three properties, chosen by the option ``property``:

``equivalence``
    Hypothesis draws a stack (depth, widths, layer types: Linear + activation, LayerNorm, Dropout
    with p > 0, residual blocks, BatchNorm), k, a batch, whether the input requires grad, and a seed
    for values and dropout. In each mode (train, eval) the plain stack ``for layer in layers: x =
    layer(x)`` and the module run on identical fresh copies of the layers from the same RNG state; the
    output, the buffers after forward (BatchNorm running statistics: a layer run twice in forward
    shows here), the input's gradient and every parameter's gradient (cotangent drawn) must agree.
    In train mode the forward under ``torch.no_grad()`` is compared too. Dropout masks must be the
    same in recomputation (``preserve_rng_state``), or the gradients differ.

    Tolerance: recomputation is the same arithmetic on bitwise-equal inputs — the same kernels on
    the same device, in the same order — so the results are bitwise equal. The bound is derived, not
    assumed: 2 × the plain stack's own run-to-run difference (the plain stack run twice from the same
    state), with no floor. On CPU the kernels are deterministic, so this is 0 (bitwise); on CUDA it is
    0 too for these layers (matmul, normalisation and reduction kernels without atomics), and a
    nondeterministic kernel would show in the plain stack's own repeat and widen the bound by exactly
    what it causes.

``saved_memory``
    The saving is measured, not assumed (:mod:`conformance.patterns.helpers.saved_memory`: bytes of the
    distinct storages saved for backward, parameters and buffers excluded). In train mode a checkpointed
    region keeps only its input and a plain region what the plain stack's layers keep there, so the
    module must save exactly the bytes of the declared scheme's region inputs and of what its plain
    regions save (derived from one plain run, counting saved tensors only inside the plain regions);
    and strictly less than the plain stack where the scheme has a checkpointed region of two or more
    layers, or checkpoints the last layer, and no layer is a bare Dropout. Derivation: every other
    layer type keeps its own input (for its weight's gradient) and something more (its output,
    normalisation statistics or a pre-activation), so such a region drops its second layer's input,
    and a checkpointed last layer drops what it keeps besides its input. A bare Dropout keeps only its
    mask, which may be smaller than its input, so no saving is claimed for stacks that have one. In
    eval mode nothing is checkpointed: the module saves exactly what the plain stack saves. On CUDA the
    peak allocated memory of one larger stack is reported (not asserted: it depends on the allocator).

``compiled``
    ``torch.compile(module)`` against the float64 plain stack, with the eager module at the tested
    dtype as the same-precision reference (:mod:`conformance.patterns.checkpoint_compiled`): fixed
    stacks, one per ``checkpoint_every``, no dropout (compiled code draws other masks).

>>> from conformance.validation import SpecContext, Where
>>> validate({"property": "saved_memory", "checkpoint_every": [2]}, Where("s.yaml"), SpecContext("s.yaml"))["depth"]
{'min': 1, 'max': 6}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conformance.dtype_names import DTYPES
from conformance.patterns import PatternKind
from conformance.patterns.helpers.options import int_range, is_int, number_range, subset
from conformance.patterns.helpers.stack_plans import SCHEMES
from conformance.validation import SpecContext, Where

PROPERTIES = ("equivalence", "saved_memory", "compiled")
LAYER_KINDS = ("linear", "layernorm", "dropout", "residual", "batchnorm")
MODES = ("train", "eval")

_DEFAULTS: dict[str, Any] = {
    "property": "equivalence",
    "checkpoint_every": [1, 2, 3, 8],  # 8: larger than the default largest depth (one segment)
    "depth": {"min": 1, "max": 6},
    "width": {"min": 1, "max": 8},
    "batch": {"min": 2, "max": 4},  # ≥ 2: BatchNorm's training statistics need two rows
    "layers": list(LAYER_KINDS),
    "dropout": {"min": 0.1, "max": 0.9},
    "modes": list(MODES),
}
_LIMITS = {"depth": (1, 32), "width": (1, 256), "batch": (1, 256)}


# --- options -----------------------------------------------------------------------------------


def validate(options: Mapping[str, Any], where: Where, context: SpecContext) -> dict:
    """Normalised options (defaults filled in); a bad one raises at its key."""
    out = {**_DEFAULTS, **options}
    if out["property"] not in PROPERTIES:
        raise where.at("property").error(f"expected one of {', '.join(PROPERTIES)}, got {out['property']!r}")
    ks = out["checkpoint_every"]
    if not isinstance(ks, list) or not ks or any(not is_int(k) or k < 1 for k in ks):
        raise where.at("checkpoint_every").error(f"expected a non-empty list of positive integers, got {ks!r}")
    for key, (lo, hi) in _LIMITS.items():
        out[key] = int_range(out[key], where.at(key), lo, hi)
    out["layers"] = subset(out["layers"], where.at("layers"), LAYER_KINDS)
    out["modes"] = subset(out["modes"], where.at("modes"), MODES)
    if "batchnorm" in out["layers"] and "train" in out["modes"] and out["batch"]["min"] < 2:
        message = "must be at least 2 with batchnorm layers in train mode (batch statistics need two rows)"
        raise where.at("batch", "min").error(message)
    out["dropout"] = number_range(
        out["dropout"], where.at("dropout"), lambda lo, hi: 0 < lo <= hi < 1, "0 < min <= max < 1 (dropout must drop)"
    )
    _check_scheme_param(where, context)
    if out["property"] == "compiled" and "dropout" in out["layers"]:
        message = (
            "must not include dropout for property compiled (compiled code draws its masks from another random "
            "stream than eager code, so a correct module need not match); list the other layer kinds"
        )
        raise where.at("layers").error(message)
    return out


def _check_scheme_param(where: Where, context: SpecContext) -> None:
    """A declared param ``scheme`` (the implementations' option) takes its values from :data:`SCHEMES`."""
    param = context.params.get("scheme")
    if param is None:
        return
    unknown = [v for v in param.values if v not in SCHEMES] if param.values else ["a range"]
    if unknown:
        message = (
            f"the spec's param 'scheme' (each implementation's checkpointing scheme) must list values from "
            f"{', '.join(SCHEMES)}; got {', '.join(map(repr, unknown))}"
        )
        raise where.error(message)


KIND = PatternKind(
    name="checkpoint_equivalence",
    required=frozenset(),
    optional=frozenset(_DEFAULTS),
    validate=validate,
    run="conformance.patterns.runs.checkpoint_equivalence:run",
    dtypes=DTYPES,
    devices=("cpu", "cuda"),
    replay="conformance.patterns.runs.checkpoint_equivalence:replay",
    compares_numbers=True,
)
