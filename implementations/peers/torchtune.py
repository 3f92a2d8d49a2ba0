"""torchtune's RMSNorm behind the ``rmsnorm`` spec, for the peer audit (``conformance audit-peers``).

Library: torchtune (PyPI), class ``torchtune.modules.RMSNorm(dim, eps=1e-6)`` with its gain named ``scale``:
declared in the entry (docs/spec-schema.md, Calling conventions), no adapter code. torchtune's ``__init__``
imports torchao and its quantisation types (``torchao.dtypes.nf4tensor``), so the library is usable only with a
torchao of its own generation: where it cannot be imported the audit records why (the table's *cannot be tested*
row) instead of running it. ``RotaryPositionalEmbeddings`` and ``KVCache`` are not audited yet.
"""

from __future__ import annotations

from typing import Any

from implementations.peers import installed_version

LIBRARY = "torchtune"
WRAPPED = "torchtune.modules.RMSNorm"


def _missing() -> str | None:
    """Why ``torchtune.modules`` cannot be imported here, or ``None``."""
    import importlib.util

    if importlib.util.find_spec("torchtune") is None:
        return "torchtune is not installed (pip install torchtune; it needs a torchao of its own generation)"
    try:
        import torchtune.modules  # noqa: F401
    except Exception as exc:  # an ImportError from torchao, typically
        return f"torchtune {_version()} cannot be imported here: {type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
    return None


def _version() -> str:
    return installed_version("torchtune")


def __getattr__(name: str) -> Any:
    """``AUDIT`` is built on first access."""
    if name != "AUDIT":
        raise AttributeError(name)
    from conformance.peers import PeerAudit, PeerEntry

    return PeerAudit(
        LIBRARY,
        _version(),
        WRAPPED,
        (PeerEntry("rmsnorm", "torchtune.modules:RMSNorm", "RMSNorm", interface={"init": {"dim": "D", "eps": "eps"},
                                                                                  "state": {"scale": "weight"}}),),
        importable=_missing,
        notes=("Adapter: implementations/peers/torchtune.py — declared calling convention (gain named scale).",),
    )
