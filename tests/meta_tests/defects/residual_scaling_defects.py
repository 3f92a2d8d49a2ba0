"""Deliberately wrong residual-path scalings (spec ``residual_scaling``, specs/gpt2_initialization.yaml).

Every function has the signature of ``implementations.initialization.init_residual_scaling``:
``(module, n_layers)``, scaling in place. Each is wrong in exactly one way; its docstring says what
and that ``parameter_scaling:output_projections`` must catch it.
``tests/meta_tests/tables/residual_scaling.py`` lists the check that must catch it.
"""

import math

import torch
from torch import nn

NAMES = ("W_o", "out_proj")


def _scale(module: nn.Module, factor: float, names=NAMES) -> None:
    with torch.no_grad():
        for name, param in module.named_parameters():
            if any(n in name for n in names):
                param.mul_(factor)


def sqrt_n_layers(module, n_layers):
    """Scaled by 1/sqrt(n_layers): N read as the number of blocks, not of residual layers (2 per block).

    Caught by: ``parameter_scaling:output_projections`` (factor off by sqrt(2)).
    """
    _scale(module, 1 / math.sqrt(n_layers))


def applied_twice(module, n_layers):
    """The scaling applied twice (say, once in the model's __init__ and again by the training script).

    Caught by: ``parameter_scaling:output_projections`` (factor squared).
    """
    _scale(module, 1 / math.sqrt(2 * n_layers))
    _scale(module, 1 / math.sqrt(2 * n_layers))


def touches_query(module, n_layers):
    """A name test too broad: every ``W_`` projection (W_q, W_k, W_v too) is scaled.

    Caught by: ``parameter_scaling:output_projections`` (W_q must stay bitwise unchanged).
    """
    _scale(module, 1 / math.sqrt(2 * n_layers), names=("W_", "out_proj"))


def name_typo(module, n_layers):
    """A typo in the name test (``W_0``, ``out_prj``): nothing is ever scaled.

    Caught by: ``parameter_scaling:output_projections`` (W_o / out_proj unchanged).
    """
    _scale(module, 1 / math.sqrt(2 * n_layers), names=("W_0", "out_prj"))


def weights_only(module, n_layers):
    """Only ``.weight`` parameters of output projections are scaled, their biases are not.

    GPT-2's own code scales weights only; the spec (the guide's rule) scales every parameter whose
    name matches. Caught by: ``parameter_scaling:output_projections`` (W_o.bias, out_proj.bias).
    """
    with torch.no_grad():
        for name, param in module.named_parameters():
            if any(n in name for n in NAMES) and name.endswith("weight"):
                param.mul_(1 / math.sqrt(2 * n_layers))


def scales_buffers(module, n_layers):
    """Iterates the state dict: buffers whose name matches are scaled too.

    Caught by: ``parameter_scaling:output_projections`` (buffers must stay bitwise unchanged).
    """
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if any(n in name for n in NAMES):
                tensor.mul_(1 / math.sqrt(2 * n_layers))


def redraws(module, n_layers):
    """Redraws output projections from N(0, (0.02/sqrt(2·n_layers))²) instead of scaling what is there.

    Caught by: ``parameter_scaling:output_projections`` (after/before is not the factor).
    """
    with torch.no_grad():
        for name, param in module.named_parameters():
            if any(n in name for n in NAMES):
                nn.init.normal_(param, std=0.02 / math.sqrt(2 * n_layers))


def rebinds_instead_of_in_place(module, n_layers):
    """``param = param * factor``: rebinds a local name, the module is unchanged.

    Caught by: ``parameter_scaling:output_projections`` (W_o / out_proj unchanged).
    """
    for name, param in module.named_parameters():
        if any(n in name for n in NAMES):
            param = param * (1 / math.sqrt(2 * n_layers))  # noqa: F841 (the defect: the result is dropped)


def factor_in_half_precision(module, n_layers):
    """The factor computed as a bfloat16 tensor whatever the parameter's dtype: ~3 significant digits.

    Caught by: ``parameter_scaling:output_projections`` in float32 and float64 (relative error ~1e-3 ≫ 2 eps).
    """
    factor = torch.tensor(2.0 * n_layers, dtype=torch.bfloat16).rsqrt()
    with torch.no_grad():
        for name, param in module.named_parameters():
            if any(n in name for n in NAMES):
                param.mul_(factor.to(param.dtype))
