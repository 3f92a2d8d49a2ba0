"""Planted defects for spec ``kv_cache`` (``defects/kv_cache_defects.py``).

Every catch's report row carries the falsifying step sequence (shrunk) and names the property that
broke. The ``causal_decoding`` check judges the pair (cache, attention): its defect is a wrong
``attention`` option, planted in the loaded spec while our cache runs.
"""

from __future__ import annotations

from conformance.defects import BlindSpot, PlantedDefect, SpecTable, baselines_for
from tests.meta_tests.tables import in_module

SPEC = "kv_cache"
CORRECT = ("implementations.kv_cache:KVCache",)
F64, F32, BF16, F16 = "float64", "float32", "bfloat16", "float16"
ref = in_module("kv_cache_defects.py")


def planted(name: str, check: str, dtype: str = F32, device: str = "cpu") -> PlantedDefect:
    prop = "decoding" if check == "causal_decoding" else check
    return PlantedDefect(
        SPEC,
        ref(name),
        f"append_cache:{check}",
        dtype,
        device,
        shrink=True,
        as_option="attention" if name[0].islower() else None,  # an attention function, not a cache
        detail_has=("Falsifying steps:", "state.build(", "state.teardown()", f"{prop}: "),
    )


def blind(name: str, check: str, dtype: str, reason: str) -> BlindSpot:
    return BlindSpot(SPEC, ref(name), f"append_cache:{check}", dtype, reason)


DEFECTS = (
    planted("GuideKVCache", "dtype_device", F16),
    planted("GuideKVCache", "dtype_device", BF16),
    planted("GuideKVCache", "dtype_device", F64),
    planted("GuideKVCache", "contents", F64),
    planted("GuideKVCache", "overflow", F32),
    planted("ResetKeepsLength", "contents"),
    planted("ReturnsWholeBuffer", "contents"),
    planted("OffByOneOffset", "contents"),
    planted("OffByOneOffset", "contents", F16),
    planted("OffByOneOffset", "causal_decoding"),
    planted("AddsZero", "contents"),
    planted("MutatesBeforeRaising", "overflow"),
    planted("UnclearOverflowError", "overflow"),
    planted("ShiftingBuffer", "history"),
    planted("ShiftingBuffer", "history", F16),
    planted("top_left_decode_attention", "causal_decoding", F32),
    planted("top_left_decode_attention", "causal_decoding", BF16),
    planted("top_left_decode_attention", "causal_decoding", F16),
    planted("IgnoresDevice", "dtype_device", F32, "cuda"),
)

BLIND_SPOTS = (
    blind("GuideKVCache", "contents", F16, "float16 → float32 storage is exact; only dtype_device sees the wrong dtype"),
    blind("GuideKVCache", "dtype_device", F32, "float32 inputs are what the guide stores; only overflow catches it then"),
    blind("ShiftingBuffer", "contents", F32, "every result is right when returned; only history sees it change afterwards"),
    blind("MutatesBeforeRaising", "contents", F32, "contents never sends an update past capacity; overflow does"),
    blind("IgnoresDevice", "dtype_device", F32, "on the CPU, allocating on the CPU is right"),
    blind("AddsZero", "history", F32, "history compares results with their own copies, which hold the same +0.0"),
)

TABLE = SpecTable(SPEC, CORRECT, DEFECTS, BLIND_SPOTS, baselines_for(CORRECT, DEFECTS + BLIND_SPOTS, min_examples=40))
