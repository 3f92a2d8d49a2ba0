"""GPT-2 style weight initialisation (Radford et al. 2019, Sec. 2.3) and residual-path scaling.

GPT-2 "largely follows the details of the OpenAI GPT model", whose weights start from N(0, 0.02²);
its one change to initialisation scales "the weights of residual layers at initialization by a
factor of 1/sqrt(N) where N is the number of residual layers" (two per block: attention and MLP).

- :func:`init_weights` initialises **one** module (apply it to a model with ``model.apply``):
  ``nn.Linear`` weights by ``method`` — ``"xavier"`` (Glorot & Bengio 2010, Eq. 16:
  U(−a, a), a = sqrt(6 / (fan_in + fan_out))), ``"normal"`` (N(0, 0.02²)) or
  ``"truncated_normal"`` (N(0, 0.02²) cut at ±2σ) — and zero biases; ``nn.Embedding`` weights
  N(0, 0.02²); LayerNorm / RMSNorm gains one and biases zero.
- :func:`init_residual_scaling` multiplies every parameter whose qualified name contains ``W_o``
  or ``out_proj`` (the output projections of attention) by 1/sqrt(2·n_layers).

Fixed against the implementation guide: its ``trunc_normal_(w, std=0.02)`` keeps PyTorch's default
bounds a=−2, b=2, which are absolute (±100σ at σ = 0.02), so nothing was truncated; here the bounds
are ±2σ. An unknown ``method`` raises instead of leaving the weight as it was; norms without a gain
or bias (``elementwise_affine=False``, ``bias=False``) no longer crash; both functions run under
``torch.no_grad()`` and validate ``n_layers``.

>>> layer = nn.Linear(64, 32)
>>> init_weights(layer, n_layers=12, method="truncated_normal")
>>> bool(layer.weight.abs().max() <= 2 * INIT_STD) and bool((layer.bias == 0).all())
True
>>> block = nn.Module()
>>> block.W_o = nn.Linear(4, 4, bias=False)
>>> before = block.W_o.weight.detach().clone()
>>> init_residual_scaling(block, n_layers=8)
>>> torch.allclose(block.W_o.weight, before / 4)
True
"""

from __future__ import annotations

import math

import torch
from torch import nn

from implementations.rmsnorm import RMSNorm

INIT_STD = 0.02  # GPT (Radford et al. 2018, Sec. 4.1): N(0, 0.02²); GPT-2 keeps it
TRUNCATION_STDS = 2.0  # truncated normal: cut at ±2σ around the mean (BERT's truncated_normal)
RESIDUAL_PROJECTION_NAMES = ("W_o", "out_proj")  # the guide's names for residual output projections
METHODS = ("xavier", "normal", "truncated_normal")

_NORMS: tuple[type[nn.Module], ...] = (nn.LayerNorm, RMSNorm) + ((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ())


def init_weights(module: nn.Module, n_layers: int, method: str = "xavier") -> None:
    """Initialise ``module``'s own parameters in place (not its children's: use ``model.apply``).

    Args:
        module: the module to initialise; modules other than Linear, Embedding and norms are left as they are.
        n_layers: number of transformer blocks; validated, unused here (see :func:`init_residual_scaling`).
        method: how Linear weights are drawn: ``"xavier"``, ``"normal"`` or ``"truncated_normal"``.

    >>> emb = nn.Embedding(100, 16)
    >>> init_weights(emb, n_layers=2)
    >>> abs(emb.weight.std().item() - INIT_STD) < 0.002
    True
    """
    _check_n_layers(n_layers)
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    with torch.no_grad():
        if isinstance(module, nn.Linear):
            _init_linear_weight(module.weight, method)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=INIT_STD)
        elif isinstance(module, _NORMS):
            if getattr(module, "weight", None) is not None:
                nn.init.ones_(module.weight)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)


def _init_linear_weight(weight: torch.Tensor, method: str) -> None:
    """Draw a Linear weight (out_features, in_features) in place by ``method``."""
    if method == "xavier":
        nn.init.xavier_uniform_(weight)  # fan_in = in_features, fan_out = out_features, gain 1
    elif method == "normal":
        nn.init.normal_(weight, mean=0.0, std=INIT_STD)
    else:
        cut = TRUNCATION_STDS * INIT_STD  # bounds are absolute in trunc_normal_: pass ±2σ, not the default ±2
        nn.init.trunc_normal_(weight, mean=0.0, std=INIT_STD, a=-cut, b=cut)


def init_residual_scaling(module: nn.Module, n_layers: int) -> None:
    """Scale the residual output projections of ``module`` in place by 1/sqrt(2·n_layers).

    A parameter is an output projection when its qualified name (``named_parameters``) contains
    ``W_o`` or ``out_proj`` — weights and biases alike. A parameter shared under several names is
    scaled once if any of them matches (the guide looked only at the first name registered). Nothing
    else (other parameters, buffers) is touched.

    >>> attn = nn.MultiheadAttention(8, 2)
    >>> w, q = attn.out_proj.weight.detach().clone(), attn.in_proj_weight.detach().clone()
    >>> init_residual_scaling(attn, n_layers=2)
    >>> torch.allclose(attn.out_proj.weight, w / 2), torch.equal(attn.in_proj_weight, q)
    (True, True)
    """
    _check_n_layers(n_layers)
    factor = 1.0 / math.sqrt(2 * n_layers)
    selected: dict[int, nn.Parameter] = {}  # by identity: a tied parameter is scaled once, under any of its names
    for name, param in module.named_parameters(remove_duplicate=False):
        if any(pattern in name for pattern in RESIDUAL_PROJECTION_NAMES):
            selected[id(param)] = param
    with torch.no_grad():
        for param in selected.values():
            param.mul_(factor)


def _check_n_layers(n_layers: int) -> None:
    if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 1:
        raise ValueError(f"n_layers must be a positive int, got {n_layers!r}")
