"""Reference PyTorch implementations checked by the conformance harness.

Each module implements one paper equation or one pattern of the implementation guide, with the
guide's signatures, typed arguments and input validation; see the module docstrings for what is
cited and which of the guide's defects are fixed.
"""

from implementations.attention import attention_manual, attention_with_flash
from implementations.checkpointing import CheckpointedModule
from implementations.chunked_attention import chunked_attention
from implementations.config import ModelConfig
from implementations.initialization import init_residual_scaling, init_weights
from implementations.multihead_attention import PaperModule
from implementations.rmsnorm import RMSNorm
from implementations.surprise import SurpriseFunction, compute_surprise
from implementations.trainer import Trainer

__all__ = [
    "CheckpointedModule",
    "ModelConfig",
    "PaperModule",
    "RMSNorm",
    "SurpriseFunction",
    "Trainer",
    "attention_manual",
    "attention_with_flash",
    "chunked_attention",
    "compute_surprise",
    "init_residual_scaling",
    "init_weights",
]
