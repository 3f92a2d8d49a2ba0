"""Reference PyTorch implementations checked by the conformance harness.

Each module implements one paper equation with typed signatures and
input validation; see the module docstrings for the equation cited.
"""

from implementations.attention import attention_manual, attention_with_flash
from implementations.rmsnorm import RMSNorm
from implementations.surprise import SurpriseFunction, compute_surprise

__all__ = [
    "RMSNorm",
    "SurpriseFunction",
    "attention_manual",
    "attention_with_flash",
    "compute_surprise",
]
