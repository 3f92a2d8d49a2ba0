"""Titans neural long-term memory (Behrouz, Zhong & Mirrokni, arXiv 2501.00663), to the conventions of docs/titans.md.

Row vectors (``M(k) = k @ W``), an absolute chunk grid set by ``start``, the anchor ``A`` (the memory at the start
of the current chunk), ``retrieve`` before/after, ``loss`` sum/mean and gates per token. ``memory_sequence`` and
its depth-1/depth-2 forms are the chunked parallel evaluation (a loop over chunks only); ``NeuralMemory`` is the
module around it.
"""

from implementations.titans.chunk_gates import memory_linear_chunk_gates
from implementations.titans.chunked import memory_linear, memory_mlp, memory_sequence
from implementations.titans.memory import gelu_derivative, memory_forward, token_gradients, token_loss
from implementations.titans.module import NeuralMemory, NeuralMemoryState
from implementations.titans.projections import keys_values, retrieve, retrieve_linear, retrieve_mlp
from implementations.titans.scan import linear_scan
from implementations.titans.steps import chunk_gradient_sum, forget_step, momentum_scan, momentum_step

__all__ = [
    "NeuralMemory",
    "NeuralMemoryState",
    "chunk_gradient_sum",
    "forget_step",
    "gelu_derivative",
    "keys_values",
    "linear_scan",
    "memory_forward",
    "memory_linear",
    "memory_linear_chunk_gates",
    "memory_mlp",
    "memory_sequence",
    "momentum_scan",
    "momentum_step",
    "retrieve",
    "retrieve_linear",
    "retrieve_mlp",
    "token_gradients",
    "token_loss",
]
