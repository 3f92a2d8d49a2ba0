"""What a run ran on: Python, libraries, and each device with its name (or why it was skipped)."""

from __future__ import annotations

import platform
import sys
from typing import Any


def environment() -> dict[str, Any]:
    import hypothesis
    import numpy
    import sympy
    import torch

    cuda: dict[str, Any] = {"name": "cuda", "available": torch.cuda.is_available()}
    if cuda["available"]:
        cuda["description"] = torch.cuda.get_device_name(0)
        cuda["count"] = torch.cuda.device_count()
        cuda["cuda_version"] = torch.version.cuda
    else:
        cuda["skip_reason"] = "CUDA not available (torch.cuda.is_available() is False)"
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "sympy": sympy.__version__,
        "hypothesis": hypothesis.__version__,
        "devices": [
            {
                "name": "cpu",
                "available": True,
                "description": platform.processor() or platform.machine(),
                "threads": torch.get_num_threads(),
            },
            cuda,
        ],
    }
