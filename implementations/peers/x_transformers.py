"""x-transformers' RMSNorm behind the ``rmsnorm`` spec, for the peer audit (``conformance audit-peers``).

Library: x-transformers 2.31 (PyPI), class ``x_transformers.x_transformers.RMSNorm(dim, unit_offset=False)``:
``F.normalize(x, dim=-1) * dim ** 0.5 * (g + unit_offset)``. Declared differences from the spec's interface
(docs/spec-schema.md, Calling conventions), no adapter code:

- the constructor takes ``dim`` only (no ε: ``F.normalize`` clamps the norm at 1e-12 instead), so the spec's drawn
  ``eps`` is not passed — the harness judges what that changes;
- the gain is the parameter ``g`` (the spec's ``weight``); ``unit_offset=True`` stores it as an offset from 1
  (Gemma's ``(1 + w)``), audited as a second configuration with the spec's ``weight`` as that offset's base — the
  diagnosis names the reading it matches.

Imported lazily: this module imports without x-transformers; the audit skips, saying why, where it is missing.
"""

from __future__ import annotations

from typing import Any

from implementations.peers import installed_version, not_installed

LIBRARY = "x-transformers"
WRAPPED = "x_transformers.x_transformers.RMSNorm"


def _missing() -> str | None:
    return not_installed("x_transformers", "x-transformers")


def _version() -> str:
    return installed_version("x-transformers")


def _entries() -> tuple[Any, ...]:
    from conformance.peers import PeerEntry

    ref = "x_transformers.x_transformers:RMSNorm"
    return (
        PeerEntry("rmsnorm", ref, "RMSNorm(dim)", interface={"init": {"dim": "D"}, "state": {"g": "weight"}}),
        PeerEntry(
            "rmsnorm", ref, "RMSNorm(dim, unit_offset=True)",
            interface={"init": {"dim": "D", "unit_offset": "1"}, "state": {"g": "weight"}},
        ),
    )


def __getattr__(name: str) -> Any:
    """``AUDIT`` is built on first access."""
    if name != "AUDIT":
        raise AttributeError(name)
    from conformance.peers import PeerAudit

    return PeerAudit(
        LIBRARY,
        _version(),
        WRAPPED,
        _entries(),
        importable=_missing,
        notes=("Adapter: implementations/peers/x_transformers.py — declared calling conventions only (constructor, gain name).",),
    )
