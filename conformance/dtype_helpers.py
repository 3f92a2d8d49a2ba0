"""Dtype names, precision facts and conversions used across the harness.

>>> DTYPES
('float64', 'float32', 'bfloat16', 'float16')
>>> eps("bfloat16")
0.0078125
"""

from __future__ import annotations

import numpy as np
import torch

from conformance.dtype_names import DTYPES, LOW_PRECISION

__all__ = ["DTYPES", "LOW_PRECISION", "eps", "max_value", "round_to", "smallest_normal", "to_numpy64", "to_torch", "torch_dtype"]


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype called ``name`` (one of :data:`DTYPES`)."""
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; expected one of {', '.join(DTYPES)}")
    return getattr(torch, name)


def eps(name: str) -> float:
    """Machine epsilon: the gap between 1 and the next representable number."""
    return float(torch.finfo(torch_dtype(name)).eps)


def max_value(name: str) -> float:
    return float(torch.finfo(torch_dtype(name)).max)


def smallest_normal(name: str) -> float:
    return float(torch.finfo(torch_dtype(name)).smallest_normal)


def to_torch(array: np.ndarray, dtype: str, device: str) -> torch.Tensor:
    """A float64/bool/integer NumPy array as a tensor of ``dtype`` on ``device``; bools stay bool and
    integers (index inputs) become ``torch.int64``, never the tested float dtype."""
    array = np.asarray(array)
    if np.issubdtype(array.dtype, np.integer):
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64)).to(device)
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if tensor.dtype != torch.bool:
        tensor = tensor.to(torch_dtype(dtype))
    return tensor.to(device)


def to_numpy64(tensor: torch.Tensor) -> np.ndarray:
    """A tensor of any dtype and device as a float64 (or bool) NumPy array."""
    tensor = tensor.detach()
    if tensor.dtype == torch.bool:
        return tensor.cpu().numpy()
    return tensor.to(device="cpu", dtype=torch.float64).numpy()


def round_to(array: np.ndarray, dtype: str) -> np.ndarray:
    """``array`` rounded to ``dtype`` and back to float64: the values an implementation sees (bool and
    integer arrays, masks and index inputs, are passed as they are)."""
    if array.dtype == np.bool_ or np.issubdtype(array.dtype, np.integer):
        return array
    return to_numpy64(to_torch(array, dtype, "cpu"))
