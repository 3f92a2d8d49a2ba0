"""The names of the floating-point dtypes the harness tests, without importing torch.

Specs name dtypes (``tolerances``, ``compute_dtype``, ``magnitude_by_dtype``, pattern ``dtypes``);
the loader checks them against :data:`DTYPES`. Conversions and precision facts, which need torch,
live in :mod:`conformance.dtype_helpers`.

>>> DTYPES
('float64', 'float32', 'bfloat16', 'float16')
"""

from __future__ import annotations

DTYPES: tuple[str, ...] = ("float64", "float32", "bfloat16", "float16")
LOW_PRECISION = frozenset({"bfloat16", "float16"})
# Machine epsilon (the spacing of floats at 1) per dtype, exact powers of two, known without torch.
EPSILON: dict[str, float] = {"float64": 2.0**-52, "float32": 2.0**-23, "bfloat16": 2.0**-7, "float16": 2.0**-10}
