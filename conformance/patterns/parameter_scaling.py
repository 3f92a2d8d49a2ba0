"""Pattern kind ``parameter_scaling``: selected parameters are scaled by a factor, nothing else changes.

For each example the check draws ``params`` (e.g. ``n_layers``), a seed and a small module tree:
containers and ``nn.ModuleList`` s whose children are named from the spec's ``names`` and whose
leaves are Linear layers (with and without bias), LayerNorm, RMSNorm, Embedding,
``nn.MultiheadAttention`` (``out_proj`` inside), bare parameters and buffers. Every parameter and
buffer is filled with N(0, 1) values from the seed, the implementation is called as
``f(module, *args, **kwargs)`` (the spec's ``call``), and then:

- every parameter whose qualified name (``named_parameters()``) contains one of the ``select``
  strings equals its old value times ``factor`` (an expression over the params), elementwise
  within 2 eps(dtype) relative plus the dtype's smallest subnormal: the factor rounded to the dtype,
  its computation (``1/sqrt``) and the product are three roundings of at most half an eps each;
- every other parameter and every buffer is bitwise unchanged;
- names, shapes, dtypes and devices of all parameters and buffers are unchanged.

Only trees with at least one selected and one unselected parameter are tried, so that every
example can see a wrong factor, a missed selection and a spill onto other parameters. The check is
deterministic: no false alarms to budget.

>>> from conformance.patterns import kinds
>>> sorted(kinds()["parameter_scaling"].required)
['factor', 'names', 'select']
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from conformance.patterns import PatternKind
from conformance.patterns.helpers.options import parse_call, parse_params, parse_scalar
from conformance.validation import SpecContext, Where

MAX_DEPTH = 4
LEAVES = ("linear", "linear_no_bias", "layer_norm", "rms_norm", "embedding", "attention", "parameter", "buffer")
_IDENT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
# The public attributes of ``nn.Module()``: a child named so would shadow one (kept without importing
# torch; tests/patterns/test_parameter_scaling.py checks it against torch's).
MODULE_ATTRIBUTES = frozenset(
    """T_destination add_module apply bfloat16 buffers call_super_init children compile cpu cuda double dump_patches
    eval extra_repr float forward get_buffer get_extra_state get_parameter get_submodule half ipu load_state_dict
    modules mtia named_buffers named_children named_modules named_parameters parameters register_backward_hook
    register_buffer register_forward_hook register_forward_pre_hook register_full_backward_hook
    register_full_backward_pre_hook register_load_state_dict_post_hook register_load_state_dict_pre_hook
    register_module register_parameter register_state_dict_post_hook register_state_dict_pre_hook requires_grad_
    set_extra_state set_submodule share_memory state_dict to to_empty train training type xpu zero_grad""".split()
)


def validate(options: Mapping[str, Any], where: Where, context: SpecContext) -> dict:
    """Normalise the options of one ``parameter_scaling`` entry (see ``docs/spec-schema.md``)."""
    params = parse_params(options.get("params", {}), where.at("params"), {"seed"})
    call = parse_call(options.get("call", {}), where.at("call"), set(params))
    factor = parse_scalar(options["factor"], where.at("factor"), {n for n, p in params.items() if p.numeric})
    select = options["select"]
    if not isinstance(select, list) or not select or not all(isinstance(s, str) and s for s in select):
        raise where.at("select").error(f"expected a non-empty list of name fragments (strings), got {select!r}")
    names = _names(options["names"], where.at("names"), select)
    leaves = options.get("leaves", list(LEAVES))
    if not isinstance(leaves, list) or not leaves or any(leaf not in LEAVES for leaf in leaves):
        raise where.at("leaves").error(f"expected a non-empty list from {', '.join(LEAVES)}, got {leaves!r}")
    depth = options.get("depth", 3)
    if not isinstance(depth, int) or isinstance(depth, bool) or not 1 <= depth <= MAX_DEPTH:
        raise where.at("depth").error(f"expected an integer 1..{MAX_DEPTH}, got {depth!r}")
    return {
        "params": params,
        "call": call,
        "factor": factor,
        "factor_text": str(options["factor"]),
        "select": tuple(select),
        "names": names,
        "leaves": tuple(leaves),
        "depth": depth,
    }


def _names(value: Any, where: Where, select: list[str]) -> tuple[str, ...]:
    if not isinstance(value, list) or len(set(map(str, value))) != len(value):
        raise where.error(f"expected a list of distinct attribute names, got {value!r}")
    reserved = MODULE_ATTRIBUTES
    for i, name in enumerate(value):
        if not isinstance(name, str) or not _IDENT_RE.match(name) or name in reserved:
            raise where.at(i).error(f"expected an attribute name (letters, digits, '_') that nn.Module does not use, got {name!r}"
            )
    if not any(s in n for n in value for s in select) or all(any(s in n for s in select) for n in value):
        raise where.error(f"expected names that contain one of {select} and names that do not (both kinds are drawn)")
    return tuple(value)


KIND = PatternKind(
    name="parameter_scaling",
    required=frozenset({"select", "factor", "names"}),
    optional=frozenset({"params", "call", "leaves", "depth"}),
    validate=validate,
    run="conformance.patterns.runs.parameter_scaling:run",
    dtypes=("float32",),
)
