"""The spec model: what a loaded spec is, as frozen dataclasses (no YAML, no torch, no validation).

:mod:`conformance.loader` builds these records from a spec file and validates them; everything
downstream (strategies, checks, reports) reads them. An implementation is named by its ref, a
string (``package.module:attribute`` or ``path/file.py:attribute``); nothing here imports it.

>>> Param("flip", values=(False, True)).allows(True)
True
>>> format_implementation("mod:fn", {"interleaved": True})
'mod:fn[interleaved=true]'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import sympy


@dataclass(frozen=True)
class Paper:
    title: str
    authors: tuple[str, ...]
    arxiv: str | None
    year: int
    url: str | None = None

    @property
    def short(self) -> str:
        return f"{self.title} (arXiv {self.arxiv})" if self.arxiv else f"{self.title} ({self.url})"


@dataclass(frozen=True)
class Symbol:
    """A dimension: an integer drawn from ``[min, max]``."""

    name: str
    min: int
    max: int


# A dimension: a symbol's name, a positive integer, or an expression over symbols (``D // 2``).
Dim = str | int | sympy.Basic


@dataclass(frozen=True)
class TensorInput:
    """An input tensor: shape in symbols, value domain, and how it is generated.

    A *derived* input (``derive``) is not drawn: its values are an expression over symbols, params
    and the inputs declared before it, evaluated in float64 and rounded to the tested dtype like
    any input (e.g. RoPE's cos/sin tables from drawn positions).

    An *index* input (``kind == "index"``: class labels, token ids) holds integers drawn uniformly
    in ``0 .. index_range - 1`` (``index_range`` a dimension: a symbol, an integer or an expression
    over symbols); it is passed as ``torch.int64`` at every tested dtype and never rounded.
    """

    name: str
    shape: tuple[Dim, ...]
    kind: str = "real"  # real | bool | index
    magnitude: tuple[float, float] = (1e-3, 1e3)
    magnitude_by_dtype: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    optional: bool = False
    rows_nonempty: bool = False  # bool masks: every row has a True at a column <= its row index
    default: bool = True  # value of an absent bool input in the oracle
    derive: sympy.Basic | None = None  # derived input: its value, from symbols, params and earlier inputs
    index_range: Dim | None = None  # index inputs: values in 0 .. index_range - 1 (the spec's ``range`` key)
    nonnegative: bool = False  # real inputs with ``sign: nonnegative``: elements uniform in [0, magnitude]

    @property
    def drawn(self) -> bool:
        """Whether Hypothesis draws the values (not derived)."""
        return self.derive is None


@dataclass(frozen=True)
class Param:
    """A non-tensor argument: a list of ``values``, or a range (floats, or integers with ``integer``).

    A param with a ``default`` is an *implementation option* (a layout, say): never drawn; each
    implementation is tested at the value its entry fixes (``params``), else at the default.
    ``values`` may be strings (``approximate: {values: [none, tanh]}``, see :data:`STRING_VALUE_RE`):
    such a param is passed to the implementation as given and never appears in an expression.
    """

    name: str
    values: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    default: Any = None

    def allows(self, value: Any) -> bool:
        """Whether ``value`` is in the param's domain (booleans and numbers are not mixed).

        >>> Param("k", values=(False, True)).allows(1)
        False
        >>> Param("n", low=0, high=8, integer=True).allows(3)
        True
        """
        if self.values:
            return any(isinstance(v, bool) == isinstance(value, bool) and v == value for v in self.values)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        assert self.low is not None and self.high is not None
        return self.low <= value <= self.high and (not self.integer or float(value).is_integer())

    @property
    def is_string(self) -> bool:
        """Whether the param's values are strings (an option passed as is, never in an expression).

        >>> Param("approximate", values=("none", "tanh")).is_string
        True
        """
        return bool(self.values) and all(isinstance(v, str) for v in self.values)


@dataclass(frozen=True)
class Output:
    name: str
    shape: tuple[Dim, ...]


@dataclass(frozen=True)
class Interface:
    """How an implementation is called: a function, or a module built from ``init``.

    ``layouts``: per input, the permutation of its axes the implementation takes (the spec's ``(B, L, H, D)`` passed
    as ``(B, H, L, D)``: ``(0, 2, 1, 3)``, applied with ``permute`` before the call); ``output_layouts``: per output,
    the axes the implementation returns it in, permuted back to the spec's order after the call. ``values``: tensors
    computed from the inputs by the safe expression language (a packed ``cat(Wq, Wk, Wv, 0)``, an inverted
    ``~mask``), passed by name where an input could be; ``constants``: keyword arguments passed as given;
    ``returns``: the position of each output in a returned tuple (``(attn_output, attn_weights)``). An implementation
    entry's own ``interface`` (its declared differences, :attr:`Implementation.interface`) replaces the spec's.
    """

    kind: str  # function | module
    args: tuple[str, ...]
    kwargs: Mapping[str, str]
    init: Mapping[str, sympy.Basic]
    state: Mapping[str, str]  # module attribute -> input name
    train: bool = False
    layouts: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    output_layouts: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    # named tensors computed from the inputs (a packed weight, an inverted mask), passed by name like an input
    values: Mapping[str, sympy.Basic] = field(default_factory=dict)
    constants: Mapping[str, Any] = field(default_factory=dict)  # keyword -> literal passed as is (need_weights: false)
    returns: tuple[int, ...] | None = None  # where the outputs are in a returned tuple (per output, in order)


@dataclass(frozen=True)
class Oracle:
    """The equation: one expression per output (``exprs``, in the outputs' order).

    ``expr`` is the expression of a single-output spec (``None`` with several outputs or none).
    ``noise_scale`` (per output, optional): the magnitude rounding errors scale with where that is
    more than the result's own (an ill-conditioned equation): the oracle's noise floor is taken there.
    ``reference`` is a registered reference name (:data:`conformance.registry.REFERENCES`) or a ref
    (``my_refs.py:fn``, ``package.module:fn``), resolved relative to the spec file like an
    implementation; :attr:`reference_is_ref` tells which. The loader checks a ref's syntax only.
    """

    expr: sympy.Basic | None
    expr_text: str | Mapping[str, str] | None
    let: tuple[tuple[str, sympy.Basic], ...]
    reference: str | None
    compute_dtype: Mapping[str, str]
    line: int
    exprs: Mapping[str, sympy.Basic] = field(default_factory=dict)
    noise_scale: Mapping[str, sympy.Basic] = field(default_factory=dict)

    @property
    def reference_is_ref(self) -> bool:
        """Whether ``reference`` is a ref to a function (``module:attr``) rather than a registered name."""
        return self.reference is not None and ":" in self.reference


@dataclass(frozen=True)
class Invariant:
    id: str
    kind: str
    description: str
    options: Mapping[str, Any]
    when: sympy.Basic | None
    line: int
    when_text: str = ""  # ``when`` as the spec writes it, for messages

    @property
    def condition(self) -> str:
        """``when`` in the spec's words (``not unit_offset``), else as parsed."""
        return self.when_text or str(self.when)


@dataclass(frozen=True)
class Fact:
    id: str
    kind: str  # gradient | identity
    description: str
    options: Mapping[str, Any]
    line: int


@dataclass(frozen=True)
class PatternCheck:
    """A behavioural check of a kind from :mod:`conformance.patterns` (``patterns`` in a spec)."""

    id: str
    kind: str
    description: str
    options: Mapping[str, Any]
    devices: tuple[str, ...]
    dtypes: tuple[str, ...]
    line: int

    @property
    def check(self) -> str:
        """The check's name in reports: ``<kind>:<id>``."""
        return f"{self.kind}:{self.id}"


@dataclass(frozen=True)
class ToleranceRule:
    factor: float = 2.0
    floor_ulps: float = 8.0
    reason: str | None = None


@dataclass(frozen=True)
class XFail:
    """A reviewed expected failure: the check (and optionally device, dtype) that fails, and why.

    ``strict`` (the default): a run where the check passes fails as a *stale* xfail, so the entry
    cannot outlive the defect it records. ``strict=False`` records a failure only some seeds find:
    a passing run is then a plain pass.
    """

    check: str
    device: str | None
    dtype: str | None
    reason: str
    strict: bool = True
    # where the entry is recorded (a spec file or an xfail file, and its line): for the report, not its meaning
    file: str = field(default="", compare=False)
    line: int = field(default=0, compare=False)

    def matches(self, check: str, device: str, dtype: str) -> bool:
        return self.check == check and self.device in (None, device) and self.dtype in (None, dtype)


@dataclass(frozen=True)
class XFailEntry:
    """An expected failure recorded outside the spec (``--xfail-file``, the repository's registry): for which
    spec and implementation (``None``: every implementation of the spec)."""

    spec: str
    implementation: str | None
    xfail: XFail
    file: str = ""
    line: int = 0


@dataclass(frozen=True)
class Diagnosis:
    """An alternative reading of the spec tried when a check fails (``diagnose`` in a spec).

    When ``check`` fails and ``when`` holds, the oracle is evaluated again on the same inputs as the
    reading has it: with the params of ``alternative`` (expressions over symbols and params), its
    ``let`` bindings replaced by ``let`` (name -> expression, in the oracle's order) and its output
    expressions by ``exprs`` (output name -> expression; outputs not named keep the oracle's). If the
    implementation matches that, ``say`` is appended to the failure's detail.
    """

    check: str
    alternative: Mapping[str, sympy.Basic | str]  # a string param's value as given (retrieve: after)
    say: str
    when: sympy.Basic | None
    line: int
    let: Mapping[str, sympy.Basic] = field(default_factory=dict)
    exprs: Mapping[str, sympy.Basic] = field(default_factory=dict)


# The builtin exceptions an ``unsupported`` entry may name in ``raises``: names only, looked up in
# :mod:`builtins` by the checks (never imported or evaluated from a spec).
UNSUPPORTED_EXCEPTIONS = (
    "ArithmeticError",
    "AssertionError",
    "Exception",
    "IndexError",
    "KeyError",
    "LookupError",
    "NotImplementedError",
    "OverflowError",
    "RuntimeError",
    "TypeError",
    "ValueError",
    "ZeroDivisionError",
)

# In an ``unsupported`` entry's ``when``, ``has_<input>`` is whether optional input ``<input>`` is passed.
PRESENCE_PREFIX = "has_"


def presence_name(input_name: str) -> str:
    """The name that stands for ``input_name``'s presence in an ``unsupported`` condition.

    >>> presence_name("mask")
    'has_mask'
    """
    return PRESENCE_PREFIX + input_name


def condition_names(symbols: Iterable[str], params: Mapping[str, Param], inputs: Mapping[str, TensorInput]) -> set[str]:
    """The names an ``unsupported`` condition may use: sizes, params that are not strings, and
    ``has_<input>`` for every optional input."""
    names = set(symbols) | {n for n, p in params.items() if not p.is_string}
    return names | {presence_name(n) for n, i in inputs.items() if i.optional}


@dataclass(frozen=True)
class Unsupported:
    """A region of the domain an implementation declares it does not support (``unsupported`` in a spec).

    ``when`` is an expression over sizes, (non-string) params and ``has_<input>`` for optional inputs;
    an example where it holds must make the implementation raise one of ``raises`` (builtin exception
    names from :data:`UNSUPPORTED_EXCEPTIONS`) with a non-empty message, and is not otherwise judged.
    """

    when: sympy.Basic
    when_text: str
    raises: tuple[str, ...]
    reason: str
    line: int = 0


@dataclass(frozen=True)
class UnsupportedEntry:
    """An ``unsupported`` region recorded outside the spec (``--xfail-file``): for which spec and implementation."""

    spec: str
    implementation: str
    unsupported: Unsupported
    file: str = ""
    line: int = 0


@dataclass(frozen=True)
class Departure:
    """One way an implementation's configuration departs from the paper, which it can also be run without.

    ``ref``: the implementation with this departure alone (its other departures undone, so it is
    :attr:`Implementation.baseline` plus this one); ``say``: the departure in words. Read on a failure by
    :func:`conformance.diagnosis.departures_note`, which names the departures that alone make the same example fail.
    """

    say: str
    ref: str


@dataclass(frozen=True)
class Implementation:
    """An implementation under test; ``params`` fixes some of the spec's params for it (its options).

    ``id`` names it in cases and reports: the ref, followed by its params in brackets, as
    ``--impl`` accepts it (``mod:fn[interleaved=true]``, ``mod:fn[approximate='tanh']``).
    ``unsupported``: regions of the domain it declares it refuses (see :class:`Unsupported`). ``interface``: where
    it is called otherwise than the spec says (constructor arguments, parameter names, axis order), the spec's
    interface with those differences, declared in the entry (docs/spec-schema.md, Calling conventions).
    """

    ref: str
    xfail: tuple[XFail, ...] = ()
    line: int = 0
    params: Mapping[str, Any] = field(default_factory=dict)
    label: str | None = None  # the id exactly as given on the command line
    unsupported: tuple[Unsupported, ...] = ()
    # its own calling convention: the spec's with its declared differences; in a spec of pattern checks only, its
    # pattern kind's convention as that kind validated it (a mapping, PatternKind.interface)
    interface: Interface | Mapping[str, Any] | None = None
    # a configurable implementation's departures from the paper (a peer audit's library default): ``baseline`` is the
    # implementation with none of them, each departure's ref the baseline with that one (conformance.diagnosis)
    baseline: str | None = None
    departures: tuple[Departure, ...] = ()

    @property
    def id(self) -> str:
        if self.label is not None:
            return self.label
        return format_implementation(self.ref, self.params)


_IMPL_ID_RE = re.compile(r"^(?P<ref>[^\[\]]+?)(?:\[(?P<params>[^\[\]]*)\])?$")


def format_implementation(ref: str, params: Mapping[str, Any]) -> str:
    """``ref`` with its fixed params in brackets.

    >>> format_implementation("implementations.rope:apply_rotary_emb_interleaved", {"interleaved": True})
    'implementations.rope:apply_rotary_emb_interleaved[interleaved=true]'
    """
    if not params:
        return ref
    text = ",".join(f"{k}={_format_value(v)}" for k, v in params.items())
    return f"{ref}[{text}]"


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"'{value}'" if isinstance(value, str) else repr(value)


# What a string param value may hold: it is written in implementation ids between quotes, unescaped.
STRING_VALUE_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


def parse_implementation(text: str) -> tuple[str, dict[str, Any]]:
    """Split ``mod:attr[name=value,...]`` into the ref and its params (booleans, numbers, quoted strings).

    >>> parse_implementation("implementations.rope:apply_rotary_emb_interleaved[interleaved=true]")
    ('implementations.rope:apply_rotary_emb_interleaved', {'interleaved': True})
    >>> parse_implementation("torch.nn.functional:gelu[approximate='tanh']")
    ('torch.nn.functional:gelu', {'approximate': 'tanh'})
    >>> parse_implementation("implementations.rmsnorm:RMSNorm")
    ('implementations.rmsnorm:RMSNorm', {})
    """
    match = _IMPL_ID_RE.match(text.strip())
    if match is None:
        raise ValueError(f"expected REF or REF[name=value,...], got {text!r}")
    params: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in (match["params"] or "").split(","))):
        name, sep, raw = item.partition("=")
        name, raw = name.strip(), raw.strip()
        if not sep or not re.match(r"^[A-Za-z]\w*$", name) or not raw:
            raise ValueError(f"expected name=value in {text!r}, got {item!r}")
        params[name] = _option_value(raw, name, text)
    return match["ref"].strip(), params


def _option_value(raw: str, name: str, text: str) -> bool | int | float | str:
    """``true``/``false`` (any case), an integer, a number or a string in quotes; anything else is an error.

    A string is never evaluated: it is the text between matching quotes (``'tanh'`` or ``"tanh"``),
    letters, digits, ``_``, ``.`` and ``-`` only (:data:`STRING_VALUE_RE`).
    """
    if raw[0] in "'\"":
        if len(raw) < 2 or raw[-1] != raw[0]:
            raise ValueError(f"unterminated string in the value of {name!r} in {text!r}: {raw!r} (expected {raw[0]}...{raw[0]})")
        inner = raw[1:-1]
        if not STRING_VALUE_RE.match(inner):
            raise ValueError(
                f"the string value of {name!r} in {text!r} may hold letters, digits, '_', '.' and '-' only"
                f" (1 to 64 of them), got {raw}"
            )
        return inner
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    for parse in (int, float):
        try:
            return parse(raw)
        except ValueError:
            pass
    raise ValueError(
        f"the value of {name!r} in {text!r} must be true, false, a number or a string in quotes"
        f" (such as {name}='{raw}'), got {raw!r}"
    )


@dataclass(frozen=True)
class Ambiguity:
    question: str
    choice: str


@dataclass(frozen=True)
class EquationSpec:
    id: str
    title: str
    paper: Paper
    equation: str
    section: str | None
    statement: str
    ambiguities: tuple[Ambiguity, ...]
    symbols: Mapping[str, Symbol]
    constraints: tuple[tuple[str, sympy.Basic], ...]
    inputs: Mapping[str, TensorInput]
    params: Mapping[str, Param]
    outputs: Mapping[str, Output]
    interface: Interface | None  # None for a spec of pattern checks only
    oracle: Oracle | None  # None for a spec of pattern checks only
    invariants: tuple[Invariant, ...]
    facts: tuple[Fact, ...]
    grad_wrt: tuple[str, ...]
    grad_order: int
    tolerances: Mapping[str, ToleranceRule]
    implementations: tuple[Implementation, ...]
    file: str
    line: int
    patterns: tuple[PatternCheck, ...] = ()
    diagnoses: tuple[Diagnosis, ...] = ()
    index: int = 0  # the position in its file's ``specs`` list (key paths name it: ``specs[index]``)

    def tolerance_rule(self, dtype: str) -> ToleranceRule:
        return self.tolerances.get(dtype, ToleranceRule())

    def with_implementations(self, refs: Iterable[str]) -> EquationSpec:
        """The same spec with ``refs`` as its only implementations (``--impl``).

        A ref may fix params in brackets, ``mod:fn[interleaved=true]`` (see :func:`parse_implementation`);
        each names its implementation exactly as given.
        The spec's reviewed expected failures, declared unsupported regions and calling convention of an
        implementation it lists (same ref and params) carry over.
        """
        recorded = {(impl.ref, tuple(sorted(impl.params.items()))): impl for impl in self.implementations}
        impls = []
        for text in refs:
            ref, params = parse_implementation(text)
            self.check_implementation_params(params)
            known = recorded.get((ref, tuple(sorted(params.items()))))
            xfail, unsupported = (known.xfail, known.unsupported) if known else ((), ())
            interface = known.interface if known else None
            label = text if params else None
            impls.append(
                Implementation(ref=ref, xfail=xfail, params=params, label=label, unsupported=unsupported, interface=interface)
            )
        return replace(self, implementations=tuple(impls))

    def with_xfails(self, entries: Iterable[XFailEntry | UnsupportedEntry]) -> EquationSpec:
        """The same spec with ``entries`` (``--xfail-file``: expected failures, unsupported regions) added
        to the implementations they name."""
        xfails: dict[str, list[XFail]] = {}
        regions: dict[str, list[Unsupported]] = {}
        for entry in entries:
            if entry.spec != self.id:
                continue
            if isinstance(entry, UnsupportedEntry):
                regions.setdefault(entry.implementation, []).append(entry.unsupported)
            else:
                xfails.setdefault(entry.implementation, []).append(entry.xfail)  # None: every implementation
        if not xfails and not regions:
            return self
        impls = tuple(
            replace(
                i,
                xfail=i.xfail + tuple(xfails.get(i.id, ())) + tuple(xfails.get(None, ())),
                unsupported=i.unsupported + tuple(regions.get(i.id, ())),
            )
            for i in self.implementations
        )
        return replace(self, implementations=impls)

    def check_implementation_params(self, params: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` unless every fixed param is declared and its value in the param's domain."""
        for name, value in params.items():
            if name not in self.params:
                raise ValueError(f"{name!r} is not a param of spec {self.id!r} (params: {', '.join(self.params) or 'none'})")
            if not self.params[name].allows(value):
                raise ValueError(f"{name}={_format_value(value)} is outside the domain of param {name!r} of spec {self.id!r}")

    def implementation(self, implementation_id: str) -> Implementation:
        """The implementation called ``implementation_id`` (one of the spec's, or one parsed from the id)."""
        for impl in self.implementations:
            if impl.id == implementation_id:
                return impl
        ref, params = parse_implementation(implementation_id)
        self.check_implementation_params(params)
        return Implementation(ref=ref, params=params, label=implementation_id if params else None)

    def ref_base(self, ref: str) -> Path | None:
        """Where a relative file ref of an implementation resolves from.

        The spec file's folder for an implementation the file declares; the working directory
        (``None``) for one given on the command line (``--impl``) or to ``reproduce``.
        """
        declared = any(impl.ref == ref and impl.line for impl in self.implementations)
        return Path(self.file).parent if declared else None

    def fixed_params(self, implementation_id: str) -> dict[str, Any]:
        """The params an implementation is tested at, whatever is drawn: its own, else the spec's defaults."""
        fixed = {name: p.default for name, p in self.params.items() if p.default is not None}
        fixed.update(self.implementation(implementation_id).params)
        return fixed

    def for_implementation(self, implementation_id: str) -> EquationSpec:
        """The spec as one implementation is tested: its fixed params are no longer drawn."""
        fixed = self.fixed_params(implementation_id)
        if not fixed:
            return self
        params = {name: replace(p, default=fixed[name]) if name in fixed else p for name, p in self.params.items()}
        return replace(self, params=params)
