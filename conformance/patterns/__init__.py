"""Pattern checks: conformance properties that are not one equation against an oracle.

Some patterns of the implementation guide are judged by behaviour rather than by a formula: a
configuration table, the statistics of an initialisation, a stateful cache, a training step. A spec
lists them under ``patterns``; each entry names a *kind*, a :class:`PatternKind` record of the
registry :data:`conformance.registry.PATTERN_KINDS`, which validates its options on load and runs
the check for one (implementation, device, dtype).

The harness's own kinds are :data:`BUILTIN`, one module of this package each (listed explicitly,
nothing is discovered). A kind module holds the record and its option validation and imports no
torch: its ``run`` and ``replay`` are ``"module:function"`` refs (:class:`Lazy`), imported on the
first call, so loading and validating a spec imports no torch. What runs lives in
:mod:`conformance.patterns.runs`; what several kinds share in :mod:`conformance.patterns.helpers`.
A user adds a kind from outside the package with ``PATTERN_KINDS.register(PatternKind(...))``.

A kind's ``validate(options, where, context)`` returns the normalised options or raises
``where.at("key").error("expected ...")`` (:mod:`conformance.validation`). Its ``run`` returns a
:class:`conformance.tolerance.Measurement` whose ``detail`` says, on failure, what was expected and
what was found. A kind that compares numbers (``compares_numbers=True``) takes its tolerance rule
from :attr:`PatternContext.rule`, so a spec's ``tolerances`` override reaches it.

>>> "train_step" in kinds() and kinds()["train_step"].compares_numbers
True
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hypothesis import settings

    from conformance.model import EquationSpec, ToleranceRule
    from conformance.tolerance import Measurement
    from conformance.validation import SpecContext, Where

KIND_MODULES = (
    "checkpoint_equivalence",
    "compile_equivalence",
    "config_table",
    "domain_error",
    "dropout_modes",
    "init_statistics",
    "kv_cache_model",
    "parameter_gradients",
    "parameter_scaling",
    "peak_memory",
    "train_step",
)


@dataclass(frozen=True)
class PatternContext:
    """Everything one run of a pattern check gets.

    ``tolerance`` is the spec's tolerance rule at the tested dtype (``tolerances`` in the spec;
    the default rule where it has none); taken from the spec when not given.
    """

    spec: EquationSpec
    ref: str
    device: str
    dtype: str
    options: Mapping[str, Any]
    settings: settings
    tolerance: ToleranceRule | None = None

    @property
    def rule(self) -> ToleranceRule:
        """The tolerance rule every numeric comparison of this check uses."""
        return self.tolerance if self.tolerance is not None else self.spec.tolerance_rule(self.dtype)

    @property
    def interface(self) -> Any:
        """How the implementation is called: its entry's own calling convention, else the spec's interface."""
        return self.spec.implementation(self.ref).interface or self.spec.interface

    def target(self) -> Any:
        """The implementation under test (class, function or module attribute).

        ``ref`` is the implementation's id: the params it fixes in brackets (``mod:Cls[scheme='segments']``)
        are its options, read with ``spec.fixed_params(ref)``, not part of what is imported.
        """
        from conformance.calling import resolve

        ref = self.spec.implementation(self.ref).ref
        return resolve(ref, self.spec.ref_base(ref))


class Lazy:
    """A callable named by ``"module:function"``, imported on its first call.

    >>> Lazy("math:sqrt")(4.0), Lazy("math:sqrt")
    (2.0, Lazy('math:sqrt'))
    """

    def __init__(self, ref: str) -> None:
        self.ref = ref
        self._function: Callable[..., Any] | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._function is None:
            module, _, name = self.ref.partition(":")
            self._function = getattr(importlib.import_module(module), name)
        return self._function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Lazy({self.ref!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Lazy) and other.ref == self.ref

    def __hash__(self) -> int:
        return hash(self.ref)


def _callable(value: str | Callable[..., Any] | None) -> Callable[..., Any] | None:
    return Lazy(value) if isinstance(value, str) else value


@dataclass(frozen=True)
class PatternKind:
    """A kind of pattern check: its option keys, their validation, and the check itself.

    ``validate(options, where, context)`` returns the normalised options; ``run(context)`` the
    measurement; ``replay(context, example)`` re-runs the check on one failing example
    (``Measurement.example``), what reproduction snippets call. ``run`` and ``replay`` may be
    ``"module:function"`` refs, imported on first call. ``dtypes`` and ``devices`` are the defaults
    of a spec entry that names none. ``compares_numbers``: the check compares numbers under the
    spec's tolerance rule (:attr:`PatternContext.rule`). ``interface(body, where)``: the calling convention an
    implementation entry may declare (its ``interface:``) validated and normalised; ``None`` where the kind calls
    every implementation one way. :attr:`PatternContext.interface` hands it to ``run``.
    """

    name: str
    required: frozenset[str]
    optional: frozenset[str]
    validate: Callable[[Mapping[str, Any], Where, SpecContext], dict]
    run: Callable[[PatternContext], Measurement] | str
    dtypes: tuple[str, ...] = ("float32",)
    devices: tuple[str, ...] = ("cpu", "cuda")
    replay: Callable[[PatternContext, Mapping[str, Any]], Measurement] | str | None = None
    compares_numbers: bool = False
    interface: Callable[[Mapping[str, Any], Where], dict] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "run", _callable(self.run))
        object.__setattr__(self, "replay", _callable(self.replay))


def _builtin() -> list[PatternKind]:
    return [importlib.import_module(f"{__name__}.{name}").KIND for name in KIND_MODULES]


def __getattr__(name: str) -> Any:
    if name == "BUILTIN":  # the harness's own kinds, imported on first use (the registry's builtins ref)
        return _builtin()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def kinds() -> Mapping[str, PatternKind]:
    """Every registered kind by name (the harness's, entry points', ``register``-ed)."""
    from conformance.registry import PATTERN_KINDS

    return dict(PATTERN_KINDS.items())
