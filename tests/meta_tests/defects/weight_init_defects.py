"""Deliberately wrong weight initialisations (spec ``weight_init``, specs/gpt2_initialization.yaml).

Every function has the signature of ``implementations.initialization.init_weights``:
``(module, n_layers, method="xavier")``, initialising one module in place. Each is the correct
implementation with exactly one thing wrong; its docstring says what and which pattern check
(``init_statistics:<id>``) must catch it; ``tests/meta_tests/tables/weight_init.py`` lists the rows.
"""

import math

import torch
from torch import nn

from implementations.rmsnorm import RMSNorm

STD = 0.02


def _linear_weight(weight: torch.Tensor, method: str) -> None:
    if method == "xavier":
        nn.init.xavier_uniform_(weight)
    elif method == "normal":
        nn.init.normal_(weight, std=STD)
    else:
        nn.init.trunc_normal_(weight, std=STD, a=-2 * STD, b=2 * STD)


def _correct(module: nn.Module, method: str, linear_weight=_linear_weight) -> None:
    with torch.no_grad():
        if isinstance(module, nn.Linear):
            linear_weight(module.weight, method)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=STD)
        elif isinstance(module, (nn.LayerNorm, RMSNorm)):
            nn.init.ones_(module.weight)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)


def guide_trunc_normal(module, n_layers, method="xavier"):
    """The guide's ``nn.init.trunc_normal_(w, std=0.02)``: default bounds ±2 are absolute (±100σ).

    Nothing is cut: about 4.6 % of the values lie beyond ±2σ. Caught by:
    ``init_statistics:linear_truncated_normal`` (the support check; the KS distance is only 0.023).
    """

    def weight(w, m):
        if m == "truncated_normal":
            nn.init.trunc_normal_(w, std=STD)
        else:
            _linear_weight(w, m)

    _correct(module, method, weight)


def xavier_normal(module, n_layers, method="xavier"):
    """Xavier *normal* (N(0, 2/(fan_in + fan_out))) where the uniform one is specified.

    Same variance, other law: 8 % of the values lie beyond a. Caught by:
    ``init_statistics:linear_xavier_uniform`` (support).
    """

    def weight(w, m):
        if m == "xavier":
            nn.init.xavier_normal_(w)
        else:
            _linear_weight(w, m)

    _correct(module, method, weight)


def xavier_fan_in_only(module, n_layers, method="xavier"):
    """U(−a, a) with a = sqrt(3/fan_in) (LeCun uniform), not sqrt(6/(fan_in + fan_out)).

    Equal when fan_in = fan_out. Caught by: ``init_statistics:linear_xavier_uniform`` (support
    where fan_out > fan_in, KS distance where fan_out is well below fan_in).
    """

    def weight(w, m):
        if m == "xavier":
            a = math.sqrt(3.0 / w.shape[1])  # weight: (out_features, in_features)
            nn.init.uniform_(w, -a, a)
        else:
            _linear_weight(w, m)

    _correct(module, method, weight)


def std_point_two(module, n_layers, method="xavier"):
    """N(0, 0.2²) for ``method="normal"``: a misplaced decimal point.

    Caught by: ``init_statistics:linear_normal`` (KS distance 0.40).
    """

    def weight(w, m):
        if m == "normal":
            nn.init.normal_(w, std=0.2)
        else:
            _linear_weight(w, m)

    _correct(module, method, weight)


def variance_for_std(module, n_layers, method="xavier"):
    """N(0, 0.02) read as a variance: std sqrt(0.02) = 0.141 for ``method="normal"``.

    Caught by: ``init_statistics:linear_normal`` (KS).
    """

    def weight(w, m):
        if m == "normal":
            nn.init.normal_(w, std=math.sqrt(STD))
        else:
            _linear_weight(w, m)

    _correct(module, method, weight)


def method_ignored(module, n_layers, method="xavier"):
    """Always Xavier uniform, whatever ``method`` says.

    Caught by: ``init_statistics:linear_normal`` (KS) and ``linear_truncated_normal`` (support).
    """
    _correct(module, "xavier")


def bias_left_default(module, n_layers, method="xavier"):
    """Linear biases left as they were (PyTorch's default, or whatever they held).

    Caught by: ``init_statistics:linear_xavier_uniform`` (bias: exactly 0; the check fills it with NaN first).
    """
    with torch.no_grad():
        if isinstance(module, nn.Linear):
            _linear_weight(module.weight, method)
        else:
            _correct(module, method)


def bias_default_init(module, n_layers, method="xavier"):
    """Linear biases drawn like PyTorch's default: U(−1/sqrt(fan_in), 1/sqrt(fan_in)), not zero.

    Caught by: ``init_statistics:linear_normal`` (bias: exactly 0).
    """
    _correct(module, method)
    if isinstance(module, nn.Linear) and module.bias is not None:
        bound = 1 / math.sqrt(module.in_features)
        with torch.no_grad():
            nn.init.uniform_(module.bias, -bound, bound)


def embedding_untouched(module, n_layers, method="xavier"):
    """Embeddings left as they were (only Linear and norms handled).

    Caught by: ``init_statistics:embedding_normal`` (values not finite: still the check's NaN).
    """
    if not isinstance(module, nn.Embedding):
        _correct(module, method)


def embedding_unit_normal(module, n_layers, method="xavier"):
    """Embeddings N(0, 1) (PyTorch's default init) instead of N(0, 0.02²).

    Caught by: ``init_statistics:embedding_normal`` (KS distance 0.48).
    """
    if isinstance(module, nn.Embedding):
        with torch.no_grad():
            nn.init.normal_(module.weight)
    else:
        _correct(module, method)


def norm_weight_normal(module, n_layers, method="xavier"):
    """Norm gains drawn N(0, 0.02²) like every other weight (a generic "all weights" loop).

    Caught by: ``init_statistics:layer_norm_unit`` and ``rms_norm_unit`` (weight: exactly 1).
    """
    if isinstance(module, (nn.LayerNorm, RMSNorm)):
        with torch.no_grad():
            nn.init.normal_(module.weight, std=STD)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
    else:
        _correct(module, method)


def layer_norm_bias_one(module, n_layers, method="xavier"):
    """LayerNorm bias set to one along with the gain.

    Caught by: ``init_statistics:layer_norm_unit`` (bias: exactly 0).
    """
    _correct(module, method)
    if isinstance(module, nn.LayerNorm) and module.bias is not None:
        with torch.no_grad():
            nn.init.ones_(module.bias)


def rms_norm_not_recognised(module, n_layers, method="xavier"):
    """Only ``nn.LayerNorm`` is treated as a norm: RMSNorm's gain keeps whatever it held.

    Caught by: ``init_statistics:rms_norm_unit`` (weight: exactly 1; the check fills it with NaN first).
    """
    if not isinstance(module, RMSNorm):
        _correct(module, method)


def layer_norm_needs_bias(module, n_layers, method="xavier"):
    """A LayerNorm is initialised only when it has a bias (``bias=False`` norms are skipped).

    Caught by: ``init_statistics:layer_norm_without_bias`` (weight: exactly 1).
    """
    if isinstance(module, nn.LayerNorm) and module.bias is None:
        return
    _correct(module, method)


def linear_needs_bias(module, n_layers, method="xavier"):
    """A Linear is initialised only when it has a bias (``bias=False`` layers are skipped).

    Caught by: ``init_statistics:linear_without_bias`` (weight values not finite: still the check's NaN).
    """
    if isinstance(module, nn.Linear) and module.bias is None:
        return
    _correct(module, method)
