"""Adapters that put third-party implementations of the specified papers behind the harness's signatures.

Each module wraps one published library (an optional extra, ``pip install -e ".[peers]"``), imports it lazily
inside its functions so importing the adapter never fails without it, and names the library version and the
exact class it wraps. An adapter only translates: it feeds the drawn inputs to the library as closely as the
library's own options allow and documents every point of the interface it cannot honour; whether the library
conforms is the harness's verdict, not the adapter's.

- :mod:`implementations.peers.titans_pytorch`: ``titans_pytorch.NeuralMemory`` (titans-pytorch 0.5.5) behind
  ``memory_linear`` / ``memory_mlp`` of docs/titans.md, in a closest-to-the-paper and a default configuration.
- :mod:`implementations.peers.torch_nn`: torch's RMSNorm, rms_norm, MultiheadAttention and SDPA.
- :mod:`implementations.peers.hf_transformers`: transformers' Llama/Gemma RMSNorm and Llama rotary embedding.
- :mod:`implementations.peers.rotary_embedding_torch`, :mod:`implementations.peers.x_transformers`,
  :mod:`implementations.peers.torchtune`: those libraries' rotary embedding and RMSNorm.

Where a calling convention differs only in names, packing or axis order, an entry declares it (its ``interface``,
docs/spec-schema.md, Calling conventions) instead of adapter code. The two helpers below serve every module.
"""

from __future__ import annotations


def installed_version(distribution: str) -> str:
    """The installed version of ``distribution`` (a PyPI name), or ``"not installed"``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def not_installed(module: str, hint: str) -> str | None:
    """``None`` where ``module`` can be found, else why the audit cannot run (``hint``: how to install it)."""
    import importlib.util

    return None if importlib.util.find_spec(module) else f"{hint} is not installed (pip install -e '.[peers]')"
