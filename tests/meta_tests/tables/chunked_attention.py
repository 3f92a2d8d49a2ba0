"""Planted defects for spec ``chunked_attention`` (``defects/chunked_attention_defects.py``)."""

from __future__ import annotations

from functools import partial

from conformance.defects import PlantedDefect, SpecTable, baselines_for
from tests.meta_tests.tables import in_module

SPEC = "chunked_attention"
F64, F32, F16 = "float64", "float32", "float16"
CORRECT = ("implementations.chunked_attention:chunked_attention",)
EXAMPLES = 25
ref = in_module("chunked_attention_defects.py")
planted = partial(PlantedDefect, SPEC)

DEFECTS = (
    planted(ref("unchunked"), "peak_memory:memory_linear_in_length", F32),
    planted(ref("drops_last_partial_chunk"), "output_contract"),
    planted(ref("keys_chunked_softmax"), "oracle"),
    planted(ref("keys_chunked_softmax"), "invariant:weights_sum_to_one"),
    planted(ref("no_scaling"), "oracle"),
    planted(ref("first_chunk_repeated"), "invariant:query_permutation"),
    planted(ref("values_squared"), "invariant:value_linearity"),
    planted(ref("keys_permuted_per_chunk"), "invariant:key_value_permutation"),
    planted(ref("detached_values"), "gradient"),
    planted(ref("detached_values"), "gradcheck"),
    planted(ref("upcast_output"), "output_contract", F16),
    planted(ref("nondeterministic"), "determinism", F32),
)

TABLE = SpecTable(SPEC, CORRECT, DEFECTS, baselines=baselines_for(CORRECT, DEFECTS, max_examples=EXAMPLES))
