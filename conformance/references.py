"""Plain float64 NumPy reference oracles, named by a spec's ``oracle.reference``.

Each is written independently of the spec's ``expr`` (different formulation, no torch), so that
where a spec has both, the cross-check between them (``oracle_agreement``) means something. A
reference receives the example's values by their spec names (inputs, params, symbols) as keyword
arguments and returns float64 (a tuple, one per output, where the spec has several).

A reference is a :class:`Reference` record in :data:`conformance.registry.REFERENCES` (the harness's
own are :data:`BUILTIN`; a user adds one with ``REFERENCES.register(Reference(...))`` or an entry point
in ``conformance.references``), or, with no registration at all, a ref written in the spec:
``oracle.reference: my_refs.py:fn`` (a file, relative to the spec's file) or ``my_pkg.refs:fn``.
:func:`reference_function` turns either into the function.

>>> import numpy as np
>>> surprise(hidden=np.array([[1.0, 2.0]]), memory_pred=np.array([[0.0, 0.0]]))
array([5.])
>>> REFERENCES["surprise"].doc
'Titans Eq. 12 per token: ‖h − M(k)‖²₂ as a sum over features (not a mean).'
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from conformance.refs import resolve
from conformance.registry import REFERENCES

__all__ = [
    "BUILTIN", "REFERENCES", "Reference", "accepts_namespace", "accepts_precision", "attention", "has_reference", "is_ref",
    "reference_function", "rmsnorm", "surprise",
]

ReferenceFn = Callable[..., Any]


@dataclass(frozen=True)
class Reference:
    """A float64 reference oracle: ``function(**values)``; ``doc`` says what it computes and cites its source.

    A record is callable as its function, so ``REFERENCES[name](**values)`` evaluates it.
    """

    name: str
    function: ReferenceFn
    doc: str = ""

    def __post_init__(self) -> None:
        if not callable(self.function):
            raise TypeError(f"reference oracle {self.name!r}: 'function' must be callable, got {type(self.function).__name__}")
        if ":" in self.name:
            raise ValueError(f"reference oracle {self.name!r}: a registered name has no ':' (that is a ref, 'file.py:fn')")

    def __call__(self, *args: Any, **values: Any) -> Any:
        return self.function(*args, **values)

    @classmethod
    def of(cls, function: ReferenceFn, name: str | None = None) -> Reference:
        """A record of ``function`` under its own name, its docstring's first line as ``doc``."""
        doc = (function.__doc__ or "").strip().splitlines()
        return cls(name or function.__name__, function, doc[0] if doc else "")


def attention(
    Q: np.ndarray, K: np.ndarray, V: np.ndarray, mask: np.ndarray, is_causal: bool, Lq: int, Lk: int, **_: Any
) -> np.ndarray:
    """Attention Is All You Need, Eq. 1, with log-sum-exp normalisation.

    ``mask`` True = may attend; ``is_causal`` keeps key j for query i iff j <= i (top-left).
    """
    allowed = np.broadcast_to(np.asarray(mask, dtype=bool), (Lq, Lk)).copy()
    if is_causal:
        allowed &= np.arange(Lk)[None, :] <= np.arange(Lq)[:, None]  # (Lq, Lk)
    scores = np.einsum("...qd,...kd->...qk", Q, K) / np.sqrt(Q.shape[-1])  # (..., Lq, Lk)
    scores = np.where(allowed, scores, -np.inf)
    lse = np.logaddexp.reduce(scores, axis=-1, keepdims=True)  # (..., Lq, 1)
    return np.einsum("...qk,...kv->...qv", np.exp(scores - lse), V)


def rmsnorm(
    x: np.ndarray, weight: np.ndarray, eps: float, unit_offset: bool = False, eps_outside: bool = False,
    no_eps: bool = False, **_: Any,
) -> np.ndarray:
    """RMSNorm, Zhang & Sennrich Eq. 4, ε inside the square root: RMS = ‖a‖₂ / sqrt(n); the spec's declared
    conventions as options: a (1 + g) gain, ε outside the root, no ε."""
    n = x.shape[-1]
    norm = np.linalg.norm(x, axis=-1, keepdims=True)  # (..., 1)
    e = 0.0 if no_eps else eps
    rms = np.sqrt(norm**2 / n) + e if eps_outside else np.sqrt(norm**2 / n + e)
    return x * (weight + 1 if unit_offset else weight) / rms


def surprise(hidden: np.ndarray, memory_pred: np.ndarray, **_: Any) -> np.ndarray:
    """Titans Eq. 12 per token: ‖h − M(k)‖²₂ as a sum over features (not a mean)."""
    diff = hidden - memory_pred
    return np.einsum("...d,...d->...", diff, diff)


BUILTIN: tuple[Reference, ...] = (Reference.of(attention), Reference.of(rmsnorm), Reference.of(surprise))


def accepts_precision(fn: Callable[..., Any]) -> bool:
    """Whether a reference function takes ``precision`` (a callable rounding an array to the tested dtype):
    then it can also serve as the same-precision reference of a spec without ``expr``."""
    try:
        return "precision" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def accepts_namespace(fn: Callable[..., Any]) -> bool:
    """Whether a reference function takes ``xp``, its array namespace: called with ``xp=torch`` on float64 tensors
    it builds an autograd graph, so the ``gradient`` check can differentiate it (a differentiable reference,
    docs/spec-schema.md)."""
    try:
        return "xp" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def has_reference(spec: Any) -> bool:
    """Whether the spec has a same-precision reference: its expressions, or a reference taking ``precision``."""
    if spec.oracle is None:
        return False
    return bool(spec.oracle.exprs) or (spec.oracle.reference is not None and accepts_precision(reference_function(spec)))


def is_ref(reference: str) -> bool:
    """Whether ``oracle.reference`` is a ref (``file.py:fn``, ``pkg.mod:fn``) rather than a registered name."""
    return ":" in reference


def reference_function(spec: Any) -> ReferenceFn:
    """The float64 function a spec's ``oracle.reference`` names: a registered name, or a ref resolved from the spec's file.

    Raises ``KeyError`` for an unknown name (the loader refuses those first), and
    :class:`conformance.refs.ImplementationError` for a ref that cannot be imported or is refused (the
    standard library, builtins).
    """
    reference = spec.oracle.reference
    if reference is None:
        raise ValueError(f"spec {spec.id!r} names no oracle.reference")
    if not is_ref(reference):
        return REFERENCES[reference].function
    value = resolve(reference, Path(spec.file).parent)
    if isinstance(value, Reference):
        return value.function
    if not callable(value):
        raise TypeError(f"{spec.file}: oracle.reference {reference!r} is not a function (got {type(value).__name__})")
    return value
